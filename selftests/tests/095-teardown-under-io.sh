# Teardown with I/O in flight on a disk of the driver under test (fio, QD32 per CPU):
#   1. rmmod: refused while the disk is open, or done; either way it returns, and if refused
#      an unbind of the controller ends the I/O and rmmod then succeeds;
#   2. unbind alone, with the module staying loaded, then a rebind of the same controller;
# each time fio must end (I/O errors are expected), no task may hang, dmesg stays clean, and
# after the rebind a verify run passes. Every wait is bounded; a hang fails the test and dumps
# the blocked tasks to the console. Kept last: a hang here cannot stall another test.
dmesg -c > /dev/null
ncpu=$(nproc)
cnvme_facts || tap_fail "teardown: the C driver's view of every namespace (the reference)"
bdf=$(nvme_pci_devs | head -n1)
nsid=$(fact "$bdf" nsids | head -n1)

# gone_within SECONDS PID: waits for PID to exit.
gone_within() { wait_for "! kill -0 $2 2>/dev/null" "$1"; }
# hung_tasks: tasks in uninterruptible sleep (D), as "pid name" lines.
hung_tasks() { grep -l '^State:.*D (disk sleep)' /proc/[0-9]*/status 2>/dev/null |
    while read -r f; do echo "$(basename "$(dirname "$f")") $(sed -n "s/^Name:[[:space:]]*//p" "$f")"; done; }
dump_hung() { diag "blocked tasks:"; hung_tasks | diag_file; echo w > /proc/sysrq-trigger; }
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

if [ -z "$nsid" ]; then
    tap_fail "teardown: a namespace to run I/O on"
elif ! attach_all "$TEST_DRIVER" || ! disk=$(disk_for "$TEST_DRIVER" "$bdf" "$nsid") || [ -z "$disk" ]; then
    tap_fail "teardown: $bdf ns $nsid has a $TEST_DRIVER disk"
else
    # 1. rmmod under I/O.
    tap_check "teardown: fio I/O flowing on $disk" load_io "$disk"
    ( rmmod "$TEST_DRIVER" > /tmp/rmmod.out 2>&1; echo $? > /tmp/rmmod.rc ) &
    if gone_within 30 $!; then
        tap_ok "teardown: rmmod $TEST_DRIVER under I/O returned ($(cat /tmp/rmmod.out))"
    else
        tap_fail "teardown: rmmod $TEST_DRIVER under I/O returned"; dump_hung
    fi
    if grep -q "^$TEST_DRIVER " /proc/modules; then
        diag "rmmod refused while $disk is open (status $(cat /tmp/rmmod.rc 2>/dev/null)); unbinding $bdf under I/O"
        tap_check "teardown: unbind of $bdf under I/O returned" unbind_within 60 "$bdf" || dump_hung
    fi
    tap_check "teardown: fio ended after the teardown" gone_within 60 "$FIO_PID" || dump_hung
    diag "fio: $(grep -E 'err=|error' /tmp/td.out | head -n 3 | tr '\n' ' ')"
    tap_check "teardown: $TEST_DRIVER unloads (rmmod now if it was refused)" \
        sh -c "! grep -q '^$TEST_DRIVER ' /proc/modules || rmmod $TEST_DRIVER"
    tap_check "teardown: no task left blocked" test -z "$(hung_tasks)" || dump_hung
    tap_check "teardown: $disk is gone" test ! -e "/sys/block/$disk"

    # 2. Unbind under I/O with the module loaded, then bind the controller again.
    if ! attach_all "$TEST_DRIVER" || ! disk=$(disk_for "$TEST_DRIVER" "$bdf" "$nsid") || [ -z "$disk" ]; then
        tap_fail "teardown: $TEST_DRIVER loads again and makes its disks"
    else
        tap_check "teardown: fio I/O flowing on $disk again" load_io "$disk"
        tap_check "teardown: unbind of $bdf under I/O (module loaded) returned" unbind_within 60 "$bdf" || dump_hung
        tap_check "teardown: fio ended after the unbind" gone_within 60 "$FIO_PID" || dump_hung
        tap_check "teardown: no task left blocked after the unbind" test -z "$(hung_tasks)" || dump_hung
        echo "$bdf" > /sys/bus/pci/drivers_probe 2>/dev/null
        tap_same "teardown: $bdf binds to $TEST_DRIVER again" "$(driver_of "$bdf")" "$TEST_DRIVER"
        wait_for "[ -n \"\$(disk_for $TEST_DRIVER $bdf $nsid)\" ]" 20
        disk=$(disk_for "$TEST_DRIVER" "$bdf" "$nsid")
        if [ -z "$disk" ]; then
            tap_fail "teardown: the rebound controller serves a verify run (no disk)"
        else
            lbs=$(qattr "$disk" logical_block_size)
            fio_jobs "$disk" "$ncpu" rw=randwrite io_size=32m bsrange=$lbs-1m ioengine=io_uring iodepth=16 \
                verify=crc32c do_verify=1 verify_fatal=1 > /tmp/td-verify.fio
            fio_json td-verify /tmp/td-verify.fio
            rc=$?
            if [ "$rc" = 0 ] && [ "$FIO_ERR" = 0 ] && [ "$FIO_WBYTES" -gt 0 ] && [ "$FIO_RBYTES" = "$FIO_WBYTES" ]; then
                tap_ok "teardown: the rebound controller serves a verify run ($((FIO_WBYTES >> 20)) MiB)"
            else
                tap_fail "teardown: the rebound controller serves a verify run (fio status $rc, error $FIO_ERR)"
                fio_diag td-verify
            fi
        fi
    fi
fi
detach_all
tap_check "teardown: no kernel warnings" dmesg_clean || diag_file /tmp/bad.txt
