# Teardown with I/O in flight on a disk of the driver under test (fio, QD32 per CPU):
#   1. rmmod: refused while the disk is open, or done; either way it returns, and if refused
#      an unbind of the controller ends the I/O and rmmod then succeeds;
#   2. unbind alone, with the module staying loaded, then a rebind of the same controller;
# each time fio must end (I/O errors are expected), no task may hang, dmesg stays clean, and
# after the rebind a verify run passes. Every wait is bounded; a hang fails the test, dumps the
# blocked tasks to the console and skips the rest (which could block too). Kept last, so a hang
# here cannot stall another test.
dmesg -c > /dev/null
ncpu=$(nproc)
cnvme_facts || tap_fail "teardown: the C driver's view of every namespace (the reference)"
bdf=$(nvme_pci_devs | head -n1)
nsid=$(fact "$bdf" nsids | head -n1)

# gone_within SECONDS PID: waits for PID to exit.
gone_within() { wait_for "! kill -0 $2 2>/dev/null" "$1"; }
# hung_tasks: tasks in uninterruptible sleep (D), as "pid name" lines.
hung_tasks() {
    grep -l '^State:.*D (disk sleep)' /proc/[0-9]*/status 2>/dev/null | while read -r f; do
        echo "$(basename "$(dirname "$f")") $(sed -n 's/^Name:[[:space:]]*//p' "$f")"
    done
}
# stuck WHAT: fails the test for a hang, shows the blocked tasks, returns 1.
stuck() {
    tap_fail "teardown: $1"
    diag "blocked tasks:" $(hung_tasks | tr '\n' ';')
    echo w > /proc/sysrq-trigger
    return 1
}
# load_io DISK: starts fio in the background on DISK (60 s of mixed random I/O, QD32 per CPU)
# and sets FIO_PID; ok when I/O is seen completing within 10 s.
load_io() {
    fio_jobs "$1" "$ncpu" rw=randrw bsrange=4k-128k ioengine=io_uring iodepth=32 time_based=1 \
        runtime=60 > /tmp/td.fio
    fio /tmp/td.fio > /tmp/td.out 2>&1 &
    FIO_PID=$!
    local r0
    r0=$(disk_stat "$1" 1)
    wait_for "[ \$(disk_stat $1 1 2>/dev/null || echo 0) -gt $((r0 + 64)) ]" 10
}
# unbind_within SECONDS BDF: unbinds BDF in the background; ok when that returns in time.
unbind_within() {
    ( echo "$2" > "/sys/bus/pci/devices/$2/driver/unbind" ) 2>/dev/null &
    gone_within "$1" $!
}
# attached: attaches every controller to the driver under test; sets DISK for ($bdf, $nsid).
attached() {
    attach_all "$TEST_DRIVER" && DISK=$(disk_for "$TEST_DRIVER" "$bdf" "$nsid")
}

# 1. rmmod under I/O (and unbind if rmmod is refused while the disk is open).
td_rmmod() {
    tap_check "teardown: fio I/O flowing on $DISK" load_io "$DISK"
    ( rmmod "$TEST_DRIVER" > /tmp/rmmod.out 2>&1; echo $? > /tmp/rmmod.rc ) &
    gone_within 30 $! || { stuck "rmmod $TEST_DRIVER under I/O returned within 30 s"; return 1; }
    tap_ok "teardown: rmmod $TEST_DRIVER under I/O returned ($(cat /tmp/rmmod.out))"
    if grep -q "^$TEST_DRIVER " /proc/modules; then
        diag "rmmod refused while $DISK is open (status $(cat /tmp/rmmod.rc)); unbinding $bdf under I/O"
        unbind_within 60 "$bdf" || { stuck "unbind of $bdf under I/O returned within 60 s"; return 1; }
        tap_ok "teardown: unbind of $bdf under I/O returned"
    fi
    gone_within 60 "$FIO_PID" || { stuck "fio ended within 60 s of the teardown"; return 1; }
    tap_ok "teardown: fio ended after the teardown"
    diag "fio: $(grep -E 'err=|error' /tmp/td.out | head -n 3 | tr '\n' ' ')"
    [ -z "$(hung_tasks)" ] || { stuck "no task left blocked"; return 1; }
    tap_ok "teardown: no task left blocked"
    tap_check "teardown: $TEST_DRIVER unloads (rmmod now if it was refused)" \
        sh -c "! grep -q '^$TEST_DRIVER ' /proc/modules || rmmod $TEST_DRIVER"
    tap_check "teardown: $DISK is gone" test ! -e "/sys/block/$DISK"
}

# 2. Unbind under I/O with the module loaded, then bind the controller again and verify.
td_unbind_rebind() {
    tap_check "teardown: fio I/O flowing on $DISK again" load_io "$DISK"
    unbind_within 60 "$bdf" || { stuck "unbind of $bdf under I/O (module loaded) returned within 60 s"; return 1; }
    tap_ok "teardown: unbind of $bdf under I/O (module loaded) returned"
    gone_within 60 "$FIO_PID" || { stuck "fio ended within 60 s of the unbind"; return 1; }
    tap_ok "teardown: fio ended after the unbind"
    [ -z "$(hung_tasks)" ] || { stuck "no task left blocked after the unbind"; return 1; }
    tap_ok "teardown: no task left blocked after the unbind"
    echo "$bdf" > /sys/bus/pci/drivers_probe 2>/dev/null
    tap_same "teardown: $bdf binds to $TEST_DRIVER again" "$(driver_of "$bdf")" "$TEST_DRIVER"
    wait_for "disk_for $TEST_DRIVER $bdf $nsid > /dev/null" 20
    DISK=$(disk_for "$TEST_DRIVER" "$bdf" "$nsid")
    if [ -z "$DISK" ]; then
        tap_fail "teardown: the rebound controller serves a verify run (no disk)"
        return 0
    fi
    lbs=$(qattr "$DISK" logical_block_size)
    fio_jobs "$DISK" "$ncpu" rw=randwrite io_size=32m bsrange=$lbs-1m ioengine=io_uring iodepth=16 \
        verify=crc32c do_verify=1 verify_fatal=1 > /tmp/td-verify.fio
    fio_json td-verify /tmp/td-verify.fio
    rc=$?
    if [ "$rc" = 0 ] && [ "$FIO_ERR" = 0 ] && [ "$FIO_WBYTES" -gt 0 ] && [ "$FIO_RBYTES" = "$FIO_WBYTES" ]; then
        tap_ok "teardown: the rebound controller serves a verify run ($((FIO_WBYTES >> 20)) MiB)"
    else
        tap_fail "teardown: the rebound controller serves a verify run (fio status $rc, error $FIO_ERR)"
        fio_diag td-verify
    fi
}

ok=1
if [ -z "$nsid" ]; then
    tap_fail "teardown: a namespace to run I/O on"
elif ! attached; then
    tap_fail "teardown: $bdf ns $nsid has a $TEST_DRIVER disk"
elif ! td_rmmod; then
    ok=0
elif ! attached; then
    tap_fail "teardown: $TEST_DRIVER loads again and makes its disks"
elif ! td_unbind_rebind; then
    ok=0
fi
if [ "$ok" = 1 ]; then
    detach_all
else
    diag "something is stuck: no cleanup (it could block too)"
fi
tap_check "teardown: no kernel warnings" dmesg_clean || diag_file /tmp/bad.txt
