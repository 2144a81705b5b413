# The driver under test and the C driver agree on every namespace:
#   limits: the queue limits in sysfs that describe the namespace itself must match the C
#     driver's, transfer, discard and write-zeroes limits must stay within the controller's
#     (MDTS, DMRSL, DMRL, WZSL); the rest are each driver's own choice, shown side by side;
#   data: what one driver wrote (fio random writes with crc32c headers, fixed seed, and a
#     pattern over the first and last blocks) reads back the same through the other, both
#     ways round (fio verify_only, and sha256 of the first, middle and last 4 MiB).
dmesg -c > /dev/null
ncpu=$(nproc)
cnvme_facts || tap_fail "cross: the C driver's view of every namespace (the reference)"

# Sysfs queue attributes: must equal the C driver's / only shown.
CROSS_SAME="size logical_block_size physical_block_size write_cache fua rotational"
CROSS_SHOW="max_hw_sectors_kb max_segments discard_max_hw_bytes discard_granularity write_zeroes_max_bytes
 dma_alignment virt_boundary_mask minimum_io_size optimal_io_size"
attach_all "$TEST_DRIVER"
tap_check "cross: $TEST_DRIVER made a disk for every namespace" test $? = 0
for bdf in $(nvme_pci_devs); do
    for nsid in $(fact "$bdf" nsids); do
        ns="$bdf ns $nsid"
        disk=$(disk_for "$TEST_DRIVER" "$bdf" "$nsid")
        if [ -z "$disk" ]; then
            tap_fail "cross: $ns has a $TEST_DRIVER disk"
            continue
        fi
        for a in $CROSS_SAME; do
            if [ "$a" = size ]; then v=$(cat "/sys/block/$disk/size"); else v=$(qattr "$disk" "$a"); fi
            tap_same "cross: $ns $a matches the C driver's" "$v" "$(fact "$bdf" "$nsid/$a")"
        done
        # Discard and write zeroes: offered by one driver exactly when by the other.
        for a in discard_max_hw_bytes write_zeroes_max_bytes; do
            tap_same "cross: $ns ${a%%_max*} offered as by the C driver" \
                "$([ "$(qattr "$disk" "$a")" -gt 0 ] && echo yes || echo no)" \
                "$([ "$(fact "$bdf" "$nsid/$a")" -gt 0 ] && echo yes || echo no)"
        done
        # The controller's own limits on discard and write zeroes (0: none). QEMU silently
        # ignores a discard range over DMRSL, so going over it loses discards.
        lbs=$(qattr "$disk" logical_block_size)
        dmrsl=$(fact "$bdf" dmrsl); dmrl=$(fact "$bdf" dmrl); wzsl=$(fact "$bdf" wzsl)
        [ "${dmrsl:-0}" -gt 0 ] &&
            tap_check "cross: $ns discard_max_hw_bytes $(qattr "$disk" discard_max_hw_bytes) within the controller's DMRSL ($dmrsl blocks)" \
                test "$(qattr "$disk" discard_max_hw_bytes)" -le $((dmrsl * lbs))
        [ "${dmrl:-0}" -gt 0 ] &&
            tap_check "cross: $ns max_discard_segments within the controller's DMRL ($dmrl ranges)" \
                test "$(qattr "$disk" max_discard_segments)" -le "$dmrl"
        [ "${wzsl:-0}" -gt 0 ] &&
            tap_check "cross: $ns write_zeroes_max_bytes within the controller's WZSL (4 KiB << $wzsl)" \
                test "$(qattr "$disk" write_zeroes_max_bytes)" -le $((4096 << wzsl))
        # The C driver's transfer limit here is the controller's MDTS; going over it is a bug.
        v=$(qattr "$disk" max_hw_sectors_kb)
        tap_check "cross: $ns max_hw_sectors_kb $v within the controller's limit ($(fact "$bdf" "$nsid/max_hw_sectors_kb"))" \
            test "$v" -gt 0 -a "$v" -le "$(fact "$bdf" "$nsid/max_hw_sectors_kb")"
        for a in $CROSS_SHOW; do
            diag "$ns $a: $TEST_DRIVER $(qattr "$disk" "$a"), nvme $(fact "$bdf" "$nsid/$a")"
        done
        diag "$ns hardware queues: $TEST_DRIVER $(ls "/sys/block/$disk/mq" | wc -l), nvme $(fact "$bdf" queue_count)"
    done
done

# cross_job DISK SEED [KEY=VALUE...]: random writes with crc32c headers over all of DISK,
# 16 MiB per CPU, blocks from one logical block to 128 KiB.
cross_job() {
    local disk=$1 seed=$2 lbs
    shift 2
    lbs=$(qattr "$disk" logical_block_size)
    fio_jobs "$disk" "$ncpu" rw=randwrite io_size=16m ioengine=io_uring iodepth=8 \
        "bssplit=$lbs:$((3 * lbs)):8k:36k:128k" verify=crc32c randseed="$seed" "$@"
}
# region_sums DISK: sha256 of the first, middle and last 4 MiB of DISK, on one line.
region_sums() {
    local mib
    mib=$(( $(disk_bytes "$1") / 1048576 ))
    for at in 0 $((mib / 2)) $((mib - 4)); do
        dd if="/dev/$1" bs=1048576 skip="$at" count=4 iflag=direct 2>/dev/null | sha256sum | cut -c1-16
    done | tr '\n' ' '
}
# cross_write DRIVER SEED: writes every namespace through DRIVER and records region sums.
cross_write() {
    local bdf nsid disk
    for bdf in $(nvme_pci_devs); do
        for nsid in $(fact "$bdf" nsids); do
            disk=$(disk_for "$1" "$bdf" "$nsid")
            [ -n "$disk" ] || { tap_fail "cross: $bdf ns $nsid has a $1 disk to write"; continue; }
            # A pattern over the first and the last 64 KiB, where off-by-one LBAs would land.
            dd if=/tmp/pat of="/dev/$disk" bs=65536 count=1 oflag=direct 2>/dev/null
            dd if=/tmp/pat of="/dev/$disk" bs=65536 count=1 seek=$(( $(disk_bytes "$disk") / 65536 - 1 )) \
                oflag=direct 2>/dev/null
            cross_job "$disk" "$2" do_verify=0 > /tmp/cross.fio
            fio_json fio-cross /tmp/cross.fio
            if [ $? = 0 ] && [ "$FIO_ERR" = 0 ] && [ "$FIO_WBYTES" -gt 0 ]; then
                tap_ok "cross: $bdf ns $nsid written through $1 ($((FIO_WBYTES >> 20)) MiB, seed $2)"
            else
                tap_fail "cross: $bdf ns $nsid written through $1 (seed $2, error $FIO_ERR)"
                fio_diag fio-cross
            fi
            echo "$FIO_WBYTES" > "/tmp/cross-$bdf-$nsid.bytes"
            region_sums "$disk" > "/tmp/cross-$bdf-$nsid.sums"
        done
    done
}
# cross_read DRIVER SEED WRITER: checks every namespace through DRIVER against what WRITER wrote.
cross_read() {
    local bdf nsid disk want rc
    for bdf in $(nvme_pci_devs); do
        for nsid in $(fact "$bdf" nsids); do
            disk=$(disk_for "$1" "$bdf" "$nsid")
            [ -n "$disk" ] || { tap_fail "cross: $bdf ns $nsid has a $1 disk to read"; continue; }
            cross_job "$disk" "$2" verify_only=1 > /tmp/cross.fio
            fio_json fio-cross /tmp/cross.fio
            rc=$?
            want=$(cat "/tmp/cross-$bdf-$nsid.bytes" 2>/dev/null)
            if [ "$rc" = 0 ] && [ "$FIO_ERR" = 0 ] && [ "$FIO_RBYTES" -gt 0 ] && [ "$FIO_RBYTES" = "${want:-0}" ]; then
                tap_ok "cross: $bdf ns $nsid: $3's writes verify through $1 ($((FIO_RBYTES >> 20)) MiB)"
            else
                tap_fail "cross: $bdf ns $nsid: $3's writes verify through $1 (verified $FIO_RBYTES of ${want:-?} bytes, error $FIO_ERR)"
                fio_diag fio-cross
            fi
            tap_same "cross: $bdf ns $nsid: first/middle/last 4 MiB read through $1 match $3's" \
                "$(region_sums "$disk")" "$(cat "/tmp/cross-$bdf-$nsid.sums" 2>/dev/null)"
        done
    done
}

head -c 65536 /dev/urandom > /tmp/pat
other=nvme   # (with ORION_TEST_DRIVER=nvme the test checks itself, C driver against C driver)
cross_write "$TEST_DRIVER" 9001
attach_all "$other"
tap_check "cross: $other took every controller over and made its disks" test $? = 0
cross_read "$other" 9001 "$TEST_DRIVER"
head -c 65536 /dev/urandom > /tmp/pat
cross_write "$other" 9002
attach_all "$TEST_DRIVER"
tap_check "cross: $TEST_DRIVER took every controller back and made its disks" test $? = 0
cross_read "$TEST_DRIVER" 9002 "$other"
detach_all
tap_check "cross: no kernel warnings" dmesg_clean || diag_file /tmp/bad.txt
