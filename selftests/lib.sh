# Shared helpers for the orion-nvme VM selftests (busybox sh). Sourced, not run.
# Output is TAP 13 (kselftest): "ok N desc", "not ok N desc", "ok N desc # SKIP why".

KSFT_PASS=0 KSFT_FAIL=1 KSFT_SKIP=4
: "${ORION_KVER:=$(uname -r)}"
MODDIR=/lib/modules/$ORION_KVER
NVME_CLASS=0x010802
_n=0 _pass=0 _fail=0 _skip=0

tap_ok()   { _n=$((_n + 1)); _pass=$((_pass + 1)); echo "ok $_n $*"; }
tap_fail() { _n=$((_n + 1)); _fail=$((_fail + 1)); echo "not ok $_n $*"; }
tap_skip() { _n=$((_n + 1)); _skip=$((_skip + 1)); echo "ok $_n $1 # SKIP $2"; }
# tap_check DESC CMD...: ok when CMD succeeds; returns CMD's verdict, so `tap_check ... || diag ...`
# explains a failure.
tap_check() { local desc=$1; shift; if "$@"; then tap_ok "$desc"; else tap_fail "$desc"; return 1; fi; }
# tap_same DESC GOT WANT: ok when both are non-empty and equal (an empty value never matches).
tap_same() {
    if [ -n "$2" ] && [ "$2" = "$3" ]; then tap_ok "$1"; else tap_fail "$1"; diag "got '$2', want '$3'"; fi
}
diag() { echo "# $*"; }
# Prints a file (or stdin) as TAP diagnostics.
diag_file() { sed 's/^/#   /' "${1:--}"; }

# PCI addresses of every NVMe controller (class 01:08:02) present.
nvme_pci_devs() {
    local d
    for d in /sys/bus/pci/devices/*; do
        [ "$(cat "$d/class")" = "$NVME_CLASS" ] && basename "$d"
    done
}

# driver_of BDF: the name of the driver bound to BDF, or "none".
driver_of() {
    if [ -e "/sys/bus/pci/devices/$1/driver" ]; then
        basename "$(readlink "/sys/bus/pci/devices/$1/driver")"
    else
        echo none
    fi
}

# bind BDF DRIVER: unbind BDF from whatever holds it, then bind it to DRIVER via driver_override.
bind() {
    local cur
    cur=$(driver_of "$1")
    [ "$cur" = "$2" ] && return 0
    [ "$cur" != none ] && echo "$1" > "/sys/bus/pci/devices/$1/driver/unbind"
    echo "$2" > "/sys/bus/pci/devices/$1/driver_override"
    echo "$1" > /sys/bus/pci/drivers_probe 2>/dev/null
    [ "$(driver_of "$1")" = "$2" ]
}

unbind() {
    [ "$(driver_of "$1")" = none ] || echo "$1" > "/sys/bus/pci/devices/$1/driver/unbind"
}

# Sets driver_override on every NVMe controller, so a module loaded later binds only those.
override_all() {
    local d
    for d in $(nvme_pci_devs); do echo "$1" > "/sys/bus/pci/devices/$d/driver_override"; done
}

load_orion()   { insmod "$MODDIR/orion_nvme.ko" "$@"; }
unload_orion() { rmmod orion_nvme; }
load_cnvme() {
    grep -q '^nvme_core ' /proc/modules || insmod "$MODDIR/nvme-core.ko" || return 1
    grep -q '^nvme ' /proc/modules || insmod "$MODDIR/nvme.ko"
}
# bind_cnvme BDF: loads the C driver if needed, binds BDF to it, waits for its controller
# character device and prints its name (nvmeN); fails if any step does.
bind_cnvme() {
    local c
    load_cnvme && bind "$1" nvme || return 1
    c=$(ls "/sys/bus/pci/devices/$1/nvme" 2>/dev/null | head -n1)
    [ -n "$c" ] && wait_for "test -c /dev/$c" 10 && echo "$c"
}

unload_cnvme() {
    grep -q '^nvme ' /proc/modules && rmmod nvme
    grep -q '^nvme_core ' /proc/modules && rmmod nvme_core
    return 0
}

# Kernel messages that mean something went wrong, whatever the test.
KERNEL_BAD='WARNING:|BUG:|Oops|general protection|Call Trace|refcount_t|KASAN|kmemleak|UBSAN|list_del corruption|hung_task|soft lockup|rcu_sched detected|Kernel panic'
dmesg_clean() { ! dmesg | grep -E "$KERNEL_BAD" > /tmp/bad.txt; }

# qmp JSON: runs a QMP command on this VM through the host and prints the reply.
qmp() {
    echo "ORION-QMP $1" > "$ORION_CTL"
    local tag reply
    read -r tag reply < "$ORION_CTL"
    echo "$reply"
}

# qemu_drives_of ID [QUERY-BLOCK-REPLY]: the QEMU block backends that name device ID (e.g.
# nvme0, a controller with its drive= namespace) as theirs, one per line in QEMU's order.
# After 107's replug cycles QEMU may still list an old drive under the same device id before
# the one in use, so a caller that needs the live one acts on all of them.
qemu_drives_of() {
    local blk=${2:-$(qmp '{"execute":"query-block"}')}
    echo "$blk" | sed 's/"device"/\n&/g' | grep -E "\"qdev\": *\"(/machine/peripheral/)?$1\"" |
        sed -n 's/^"device": *"\([^"]*\)".*/\1/p'
}

# qemu_throttle IOPS DRIVE...: QMP block_set_io_throttle on each QEMU drive (IOPS 0 lifts
# it); succeeds if QEMU accepted it for at least one.
qemu_throttle() {
    local iops=$1 d r=1
    shift
    for d in "$@"; do
        qmp "{\"execute\":\"block_set_io_throttle\",\"arguments\":{\"device\":\"$d\",\"bps\":0,\"bps_rd\":0,\"bps_wr\":0,\"iops\":$iops,\"iops_rd\":0,\"iops_wr\":0}}" |
            grep -q '"return"' && r=0
    done
    return $r
}

# dmesg_mark: remembers how long the kernel log is; dmesg_since prints what came after it and
# dmesg_logged TEXT succeeds when that contains TEXT.
dmesg_mark() { MARK=$(dmesg | wc -l); }
dmesg_since() { dmesg | tail -n +$((MARK + 1)); }
dmesg_logged() { dmesg_since | grep -q "$1"; }

# wait_module_unused DRIVER: waits up to 20 s until nothing holds module DRIVER (the files
# and I/O of a test have let go of its disks), so it can be unloaded.
wait_module_unused() {
    wait_for "[ \"\$(cat /sys/module/$1/refcnt 2>/dev/null || echo 0)\" = 0 ]" 20
}

# Waits up to $2 seconds (default 10) for the command in $1 to succeed.
wait_for() {
    local t
    t=$(( ${2:-10} * 10 ))
    while [ "$t" -gt 0 ]; do
        eval "$1" && return 0
        sleep 0.1; t=$((t - 1))
    done
    return 1
}

# ---- Block I/O (issue #4): disks by controller and namespace, the C driver's view, fio ----
# orion_nvme names its disks onvme<C>n<NSID> and links /sys/block/X/device to the PCI device;
# the C driver names them nvme<N>n<M> (M is not the NSID) under /sys/.../<BDF>/nvme/nvme<N>.

# The driver the block I/O tests run on. ORION_TEST_DRIVER=nvme runs them on the C driver's
# disks instead, to check the tests themselves (make check SELFTEST_ARGS=ORION_TEST_DRIVER=nvme).
TEST_DRIVER=${ORION_TEST_DRIVER:-orion_nvme}
# util-linux's blkdiscard (busybox's has no -z); -f: the disks hold no file system to protect.
BLKDISCARD="/usr/sbin/blkdiscard -f"

orion_disks() { ls /sys/block | grep '^onvme[0-9]*n[0-9]*$'; }
cnvme_disks() { ls /sys/block | grep '^nvme[0-9]*n[0-9]*$'; }
# disk_bdf DISK: the PCI address of the controller behind DISK.
disk_bdf() {
    local p
    p=$(readlink -f "/sys/block/$1/device")
    case $p in */nvme/nvme[0-9]*) p=${p%/nvme/nvme*} ;; esac
    basename "$p"
}
# orion_disk_for BDF NSID, cnvme_disk_for BDF NSID: prints the disk; fails when there is none.
orion_disk_for() {
    local d
    for d in $(orion_disks); do
        [ "${d##*n}" = "$2" ] && [ "$(disk_bdf "$d")" = "$1" ] && echo "$d" && return 0
    done
    return 1
}
cnvme_disk_for() {
    local d
    for d in $(cnvme_disks); do
        [ "$(cat "/sys/block/$d/nsid" 2>/dev/null)" = "$2" ] && [ "$(disk_bdf "$d")" = "$1" ] && echo "$d" && return 0
    done
    return 1
}
# disk_for DRIVER BDF NSID: the disk DRIVER made for namespace NSID of controller BDF.
disk_for() {
    case $1 in
        orion_nvme) orion_disk_for "$2" "$3" ;;
        nvme) cnvme_disk_for "$2" "$3" ;;
        *) return 1 ;;
    esac
}
disk_bytes() { echo $(( $(cat "/sys/block/$1/size") * 512 )); }
qattr() { cat "/sys/block/$1/queue/$2"; }

# The C driver's view of every namespace, gathered once per boot (it binds each controller to
# the C driver, so call it before setting up the driver under test):
#   /tmp/facts/BDF/nsids          active NSIDs, one a line
#   /tmp/facts/BDF/queue_count    I/O queues the C driver got (its queue_count less the admin queue)
#   /tmp/facts/BDF/{dmrsl,dmrl,wzsl}  the controller's Dataset Management and Write Zeroes
#                                 limits (Identify Controller, NVM Command Set; 0: none)
#   /tmp/facts/BDF/NSID/ATTR      the disk's queue/ATTR, size, and dlfeat from id-ns
FACT_QUEUE_ATTRS="logical_block_size physical_block_size max_hw_sectors_kb max_segments write_cache fua
 discard_max_hw_bytes discard_granularity write_zeroes_max_bytes dma_alignment virt_boundary_mask
 minimum_io_size optimal_io_size rotational io_poll"
cnvme_facts() {
    local bdf ctrl nsid disk a f rc=0
    [ -f /tmp/facts/done ] && return 0
    override_all none
    unload_orion 2>/dev/null
    for bdf in $(nvme_pci_devs); do
        f=/tmp/facts/$bdf
        rm -rf "$f"; mkdir -p "$f"
        if ! ctrl=$(bind_cnvme "$bdf"); then
            diag "facts: $bdf does not bind to the C driver"; rc=1; continue
        fi
        echo $(( $(cat "/sys/class/nvme/$ctrl/queue_count") - 1 )) > "$f/queue_count"
        nvme nvm-id-ctrl "/dev/$ctrl" > /tmp/nvm-id-ctrl.txt 2>/dev/null
        for a in dmrsl dmrl wzsl; do sed -n "s/^$a *: *//p" /tmp/nvm-id-ctrl.txt > "$f/$a"; done
        nvme list-ns "/dev/$ctrl" 2>/dev/null | sed -n 's/.*:0x\([0-9a-f]*\)/\1/p' |
            while read -r ns; do echo $((0x$ns)); done > "$f/nsids"
        for nsid in $(cat "$f/nsids"); do
            if ! wait_for "[ -n \"\$(cnvme_disk_for $bdf $nsid)\" ]" 20; then
                diag "facts: $bdf namespace $nsid has no C driver disk"; rc=1; continue
            fi
            disk=$(cnvme_disk_for "$bdf" "$nsid")
            mkdir -p "$f/$nsid"
            for a in $FACT_QUEUE_ATTRS; do qattr "$disk" "$a" > "$f/$nsid/$a"; done
            cat "/sys/block/$disk/size" > "$f/$nsid/size"
            nvme id-ns "/dev/$ctrl" -n "$nsid" -o normal 2>/dev/null |
                sed -n 's/^dlfeat *: *//p' > "$f/$nsid/dlfeat"
        done
        unbind "$bdf"
    done
    override_all none
    unload_cnvme
    [ "$rc" = 0 ] && touch /tmp/facts/done
    return $rc
}
fact() { cat "/tmp/facts/$1/$2" 2>/dev/null; }   # fact BDF NSID/ATTR | fact BDF nsids

# attach_all DRIVER [PARAM=VALUE...]: (re)loads DRIVER (orion_nvme or nvme) with PARAMs, binds
# every controller to it and waits for a disk per active namespace (the C driver's list). Fails,
# with the reason as a diagnostic, if anything is missing.
attach_all() {
    local drv=$1 bdf nsid rc=0 t0 left
    shift
    override_all none
    unload_orion 2>/dev/null
    unload_cnvme
    override_all "$drv"
    case $drv in
        orion_nvme) load_orion "$@" || { diag "insmod orion_nvme.ko $* failed"; return 1; } ;;
        nvme) { insmod "$MODDIR/nvme-core.ko" && insmod "$MODDIR/nvme.ko" "$@"; } ||
                  { diag "insmod nvme.ko $* failed"; return 1; } ;;
    esac
    t0=$(date +%s)
    for bdf in $(nvme_pci_devs); do
        if [ "$(driver_of "$bdf")" != "$drv" ]; then
            diag "$bdf is not bound to $drv"; rc=1; continue
        fi
        for nsid in $(fact "$bdf" nsids); do
            # 20 s for all disks together, so a driver that makes none fails quickly.
            left=$(( 20 - ($(date +%s) - t0) )); [ "$left" -lt 1 ] && left=1
            wait_for "[ -n \"\$(disk_for $drv $bdf $nsid)\" ]" "$left" && continue
            diag "$drv made no disk for $bdf namespace $nsid (disks: $(ls /sys/block | tr '\n' ' '))"
            rc=1
        done
    done
    return $rc
}
# detach_all: unbinds every controller and unloads both drivers.
detach_all() {
    local bdf
    for bdf in $(nvme_pci_devs); do unbind "$bdf"; done
    override_all none
    unload_orion 2>/dev/null
    unload_cnvme
}

# dev_irqs BDF: "IRQ COUNT" for each MSI/MSI-X vector of BDF (its INTx line when it has none),
# COUNT summed over CPUs.
dev_irqs() {
    local irqs
    irqs=$(ls "/sys/bus/pci/devices/$1/msi_irqs" 2>/dev/null | tr '\n' ' ')
    [ -n "$irqs" ] || irqs="$(cat "/sys/bus/pci/devices/$1/irq") "
    awk -v want=" $irqs" '{ i = $1; sub(":", "", i); if (index(want, " " i " ") == 0) next
        s = 0; for (k = 2; k <= NF && $k ~ /^[0-9]+$/; k++) s += $k; print i, s }' /proc/interrupts
}
# irq_delta BEFORE AFTER: "IRQ DELTA" for every vector (files written by dev_irqs).
irq_delta() { awk 'NR == FNR { b[$1] = $2; next } { print $1, $2 - b[$1] }' "$1" "$2"; }
# disk_stat DISK FIELD: a /sys/block/DISK/stat counter (1 read I/Os, 5 write I/Os, 7 write
# sectors, 12 discard I/Os, 16 flush I/Os).
disk_stat() { awk -v f="$2" '{ print $f }' "/sys/block/$1/stat"; }

# fio_json NAME JOBFILE: runs fio on JOBFILE with JSON output into /tmp/NAME.json (its
# messages into /tmp/NAME.err) and sets FIO_RBYTES, FIO_WBYTES and FIO_IOS (totals over every
# job) and FIO_ERR (the first nonzero job error, 0 when none); returns fio's exit status.
fio_json() {
    local rc
    fio --output-format=json --output="/tmp/$1.json" "$2" > "/tmp/$1.err" 2>&1
    rc=$?
    fio_parse "$1"
    return $rc
}
# fio_parse NAME: sets FIO_RBYTES, FIO_WBYTES, FIO_IOS and FIO_ERR from /tmp/NAME.json (a run
# started by hand, e.g. in the background).
fio_parse() {
    local j=/tmp/$1.json
    set -- $(awk '/^ *"read" : \{/ { d = "r" } /^ *"write" : \{/ { d = "w" } /^ *"(trim|sync)" : \{/ { d = "" }
        /"io_bytes" :/ && d != "" { v = $3; gsub(/[^0-9]/, "", v); b[d] += v }
        /"total_ios" :/ && d != "" { v = $3; gsub(/[^0-9]/, "", v); n += v }
        END { print b["r"] + 0, b["w"] + 0, n + 0 }' "$j" 2>/dev/null)
    FIO_RBYTES=${1:-0} FIO_WBYTES=${2:-0} FIO_IOS=${3:-0}
    FIO_ERR=$(sed -n 's/^ *"error" : \([0-9]*\),*$/\1/p' "$j" 2>/dev/null | grep -v '^0$' | head -n1)
    FIO_ERR=${FIO_ERR:-0}
    [ -s "$j" ] || FIO_ERR=nojson
}
# fio_verify_check NAME DESC DISK FIO-OPTION...: a short io_uring run on DISK with crc32c
# verify (verify_fatal) and the given options; one TAP line DESC (rc, error appended), passing
# when fio succeeded, reported no error and read data back.
fio_verify_check() {
    local name=$1 desc=$2 disk=$3 rc
    shift 3
    fio --name="$name" --filename="/dev/$disk" --direct=1 --ioengine=io_uring \
        --verify=crc32c --verify_fatal=1 "$@" \
        --output-format=json --output="/tmp/$name.json" > "/tmp/$name.err" 2>&1
    rc=$?
    fio_parse "$name"
    tap_check "$desc (rc $rc, error $FIO_ERR)" \
        test "$rc" = 0 -a "$FIO_ERR" = 0 -a "$FIO_RBYTES" -gt 0 || fio_diag "$name"
}
# dead_disk_check PREFIX BDF NSID: after controller BDF died, its disk for NSID (if the driver
# kept one) returns no data at once: a read ends with an error or at its end (a dead disk has
# no capacity left), reads nothing, and does not wait. One TAP line.
dead_disk_check() {
    local d r got
    d=$(disk_for "$TEST_DRIVER" "$2" "$3")
    if [ -n "$d" ]; then
        rm -f /tmp/dead.out
        timeout 60 dd if="/dev/$d" of=/tmp/dead.out bs=4k count=1 iflag=direct 2> /tmp/dead.dd
        r=$? got=$(wc -c < /tmp/dead.out 2>/dev/null)
        tap_check "$1: a read of $d afterwards returns no data at once (dd rc $r, ${got:-0} bytes; 124 would be a hang)" \
            test "$r" != 124 -a "${got:-0}" = 0 || diag_file /tmp/dead.dd
        diag "$1: $d has $(cat "/sys/block/$d/size") sectors now"
    else
        tap_ok "$1: the disk is gone ($TEST_DRIVER removed it)"
    fi
}
# fio_diag NAME: fio's messages (verify failures among them) and job errors of run NAME.
fio_diag() {
    { grep -v '^$' "/tmp/$1.err"; grep '"error" : [1-9]' "/tmp/$1.json"; } 2>/dev/null | head -n 30 | diag_file
}

# fio_jobs DISK NJOBS [KEY=VALUE...]: a job file on stdout with one job per CPU, job i pinned to
# CPU i and owning slice i of DISK (slices are whole MiB, so every block size fits), KEY=VALUE
# lines in [global].
fio_jobs() {
    local disk=$1 n=$2 slice i kv
    shift 2
    slice=$(( $(disk_bytes "$disk") / n / 1048576 * 1048576 ))
    echo "[global]"
    echo "filename=/dev/$disk"
    echo "direct=1"
    echo "group_reporting=1"
    echo "size=$slice"
    for kv in "$@"; do echo "$kv"; done
    i=0
    while [ "$i" -lt "$n" ]; do
        printf '[job%d]\noffset=%d\ncpus_allowed=%d\n' "$i" $((i * slice)) "$i"
        i=$((i + 1))
    done
}

# ---- Management interface (issue #5): controller nodes, nvme-cli, passthrough ioctls ----
# ctrl_node_for DRIVER BDF: the controller character device DRIVER made for BDF, without /dev/
# (nvmeN for the C driver; onvme<C> for orion_nvme, C read from its disks' names
# onvme<C>n<NSID>, so a controller without a disk has none); fails when there is none.
ctrl_node_for() {
    local d c=
    case $1 in
        nvme) c=$(ls "/sys/bus/pci/devices/$2/nvme" 2>/dev/null | head -n1) ;;
        orion_nvme)
            for d in $(orion_disks); do
                [ "$(disk_bdf "$d")" = "$2" ] && c=${d%n*} && break
            done ;;
    esac
    [ -n "$c" ] && [ -c "/dev/$c" ] && echo "$c"
}
# ns_nodes_for DRIVER BDF: "NSID:DISK" for every active namespace of BDF (the C driver's list,
# cnvme_facts) that DRIVER made a disk for, one a line.
ns_nodes_for() {
    local nsid disk
    for nsid in $(fact "$2" nsids); do
        disk=$(disk_for "$1" "$2" "$nsid") && echo "$nsid:$disk"
    done
}

# ---- Generic nodes (issue #5): the per-namespace character devices for io_uring passthrough ----
# generic_node_for DRIVER BDF NSID: the generic node DRIVER made for namespace NSID of BDF,
# without /dev/: the C driver's ngXnY is its disk nvmeXnY's twin (same controller and head
# instance); orion_nvme's is ong<C>n<NSID> beside its disk onvme<C>n<NSID>. Fails when there is
# none.
generic_node_for() {
    local d g
    d=$(disk_for "$1" "$2" "$3") || return 1
    case $1 in
        nvme) g=ng${d#nvme} ;;
        orion_nvme) g=ong${d#onvme} ;;
        *) return 1 ;;
    esac
    [ -c "/dev/$g" ] && echo "$g"
}
