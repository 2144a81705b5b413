#!/bin/sh
# `make bench`, inside the VM (profile bench): the C nvme driver (A) on one controller,
# orion_nvme (B) on the other, the same fio workloads on each one's null-co namespace (NSID 1),
# alternating A B, then B A in the next round; the controllers swap drivers between rounds.
# First a verify pass on each driver's file-backed namespace (NSID 2): no benchmark of a
# driver that loses data.
# Usage: bench.sh [NAME=VALUE...]
#   BENCH_B=orion_nvme   driver B (BENCH_B=nvme: the C driver on both, to check the bench itself)
#   BENCH_ROUNDS=4       rounds (each runs every workload once on A and once on B)
#   BENCH_RUNTIME=5      seconds measured per run, after BENCH_RAMP=1 s of ramp
# Output on stdout (the control port), read by scripts/bench_report.py on the host:
#   BENCH-RUN id=N round=R workload=W side=A|B driver=D bdf=B disk=X busy=T total=T ios=N
#             (/proc/stat ticks and disk I/Os over the same window)
#   BENCH-FIO N <a line of fio's JSON output>
#   BENCH-ERROR <why>   (and exit status 1)
cd /selftests || exit 1
for a in "$@"; do case $a in [A-Z]*=*) export "$a" ;; esac; done
. ./lib.sh
B=${BENCH_B:-orion_nvme}
ROUNDS=${BENCH_ROUNDS:-4}
RUNTIME=${BENCH_RUNTIME:-5}
RAMP=${BENCH_RAMP:-1}
ncpu=$(nproc)
[ "$RUNTIME" -ge 2 ] || RUNTIME=2
WORKLOADS="randread-4k-qd1 randread-4k-qd32xcpu randwrite-4k-qd32 seqread-128k-qd8"

fail() { echo "BENCH-ERROR $*"; exit 1; }

# cpu_ticks: "busy total" jiffies over all CPUs; busy counts user, nice, system, irq, softirq
# and steal, so interrupt and completion work is in it.
cpu_ticks() { awk '$1 == "cpu" { b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6 }' /proc/stat; }

# setup DRIVER-FOR-CTRL0 DRIVER-FOR-CTRL1: binds each controller to its driver, waits for both
# namespaces' disks.
setup() {
    local i=0 drv bdf nsid
    for bdf in $CTRLS; do unbind "$bdf"; done
    grep -q '^orion_nvme ' /proc/modules || load_orion || fail "insmod orion_nvme.ko failed"
    load_cnvme || fail "insmod nvme.ko failed"
    for drv in "$@"; do
        bdf=$(echo $CTRLS | cut -d' ' -f$((i + 1)))
        bind "$bdf" "$drv" || fail "$bdf does not bind to $drv"
        for nsid in 1 2; do
            wait_for "disk_for $drv $bdf $nsid > /dev/null" 20 ||
                fail "$drv made no disk for $bdf namespace $nsid (disks: $(ls /sys/block | tr '\n' ' '))"
        done
        i=$((i + 1))
    done
}

# disk_ios DISK: reads plus writes the disk has completed.
disk_ios() { awk '{ print $1 + $5 }' "/sys/block/$1/stat"; }

# run_fio ID ROUND WORKLOAD SIDE DRIVER BDF: one measured run on DRIVER's null-co disk on BDF. fio
# reports IOPS and latency for the RUNTIME after its RAMP; CPU per I/O comes from /proc/stat and
# the disk's I/O count over a window inside that (from 1/2 s after the ramp, RUNTIME - 1 s long).
run_fio() {
    local id=$1 round=$2 w=$3 side=$4 drv=$5 bdf=$6 disk opts c0 c1 n0 n1 pid
    disk=$(disk_for "$drv" "$bdf" 1)
    case $w in
        randread-4k-qd1) opts="--rw=randread --bs=4k --iodepth=1 --numjobs=1" ;;
        randread-4k-qd32xcpu) opts="--rw=randread --bs=4k --iodepth=32 --numjobs=$ncpu" ;;
        randwrite-4k-qd32) opts="--rw=randwrite --bs=4k --iodepth=32 --numjobs=1" ;;
        seqread-128k-qd8) opts="--rw=read --bs=128k --iodepth=8 --numjobs=1" ;;
    esac
    n0=$(disk_ios "$disk")
    fio --name="$w" --filename="/dev/$disk" --direct=1 --ioengine=io_uring $opts \
        --time_based=1 --runtime="$RUNTIME" --ramp_time="$RAMP" --group_reporting=1 \
        --clat_percentiles=1 --lat_percentiles=1 --output-format=json --output=/tmp/bench.json > /tmp/bench.err 2>&1 &
    pid=$!
    wait_for "[ \$(disk_ios $disk) -gt $n0 ]" 20 || fail "fio $w on $drv ($disk) does no I/O"
    sleep "$RAMP"; sleep 0.5
    c0=$(cpu_ticks); n0=$(disk_ios "$disk")
    sleep $((RUNTIME - 1))
    c1=$(cpu_ticks); n1=$(disk_ios "$disk")
    wait "$pid" || { cat /tmp/bench.err; fail "fio $w on $drv ($disk) failed"; }
    echo "BENCH-RUN id=$id round=$round workload=$w side=$side driver=$drv bdf=$bdf disk=$disk" \
        "busy=$(( ${c1% *} - ${c0% *} )) total=$(( ${c1#* } - ${c0#* } )) ios=$((n1 - n0))"
    sed "s/^/BENCH-FIO $id /" /tmp/bench.json
    echo "# $id round $round $w on $side = $drv ($bdf $disk): $(awk '/"iops" :/ { v = $3; sub(",", "", v)
        if (v + 0 > 0) { printf "%d IOPS", v; exit } }' /tmp/bench.json)"
}

CTRLS=$(nvme_pci_devs | head -n 2 | tr '\n' ' ')
[ "$(echo $CTRLS | wc -w)" = 2 ] || fail "the bench profile needs two NVMe controllers (have: $CTRLS)"
set -- $CTRLS
C0=$1 C1=$2
override_all none
echo "# bench: A = nvme, B = $B; $ROUNDS rounds; ${RUNTIME} s per run after ${RAMP} s ramp; $ncpu CPUs"

# Verify pass on each driver's file-backed namespace.
setup nvme "$B"
for pair in "nvme $C0" "$B $C1"; do
    set -- $pair
    disk=$(disk_for "$1" "$2" 2)
    lbs=$(qattr "$disk" logical_block_size)
    fio_jobs "$disk" "$ncpu" rw=randwrite io_size=32m bsrange=$lbs-1m ioengine=io_uring iodepth=16 \
        mem_align=512 verify=crc32c do_verify=1 verify_fatal=1 > /tmp/bench-verify.fio
    fio_json bench-verify /tmp/bench-verify.fio
    rc=$?
    if [ "$rc" != 0 ] || [ "$FIO_ERR" != 0 ] || [ "$FIO_WBYTES" = 0 ] || [ "$FIO_RBYTES" != "$FIO_WBYTES" ]; then
        fio_diag bench-verify
        fail "verify pass on $1 ($2 $disk) failed: fio status $rc, error $FIO_ERR"
    fi
    echo "BENCH-VERIFY driver=$1 bdf=$2 disk=$disk bytes=$FIO_WBYTES ok"
done

id=0
r=1
while [ "$r" -le "$ROUNDS" ]; do
    # Odd rounds: A on the first controller; even rounds: swapped.
    if [ $((r % 2)) = 1 ]; then a_bdf=$C0 b_bdf=$C1; else a_bdf=$C1 b_bdf=$C0; fi
    if [ "$a_bdf" = "$C0" ]; then setup nvme "$B"; else setup "$B" nvme; fi
    for w in $WORKLOADS; do
        # A B in odd rounds, B A in even ones: neither side always goes first.
        if [ $((r % 2)) = 1 ]; then
            id=$((id + 1)); run_fio "$id" "$r" "$w" A nvme "$a_bdf"
            id=$((id + 1)); run_fio "$id" "$r" "$w" B "$B" "$b_bdf"
        else
            id=$((id + 1)); run_fio "$id" "$r" "$w" B "$B" "$b_bdf"
            id=$((id + 1)); run_fio "$id" "$r" "$w" A nvme "$a_bdf"
        fi
    done
    r=$((r + 1))
done
for bdf in $CTRLS; do unbind "$bdf"; done
dmesg_clean || { diag_file /tmp/bad.txt; fail "kernel warnings during the bench"; }
echo "# bench: $id runs done"
