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
