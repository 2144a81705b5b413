# The timeout ladder's first rungs against a completion that does not arrive: with a write
# held inside QEMU (blkdebug "break", only in the "faults" profile), the request's timer
# expires after the disk's io_timeout; the handler reaps the queue (nothing there), then sends
# Abort for the command (QEMU's controller never aborts: "not aborted") and gives it another
# period. The write is released before that period ends: it completes with success, the
# writer sees no error, no reset happens, and the data is on the disk.
# The last rung (a reset when the command is still outstanding after the Abort) cannot be
# driven this way: QEMU's controller reset drains the namespace first and so waits, inside
# the guest's register write, for the held request: the VM stops. It is covered by the core's
# host tests against the simulated controller (fault_timeout_abort_fails_then_reset_*), and
# resets under load by 106.

hm() { qmp "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"$1\"}}"; }

drive=$(qmp '{"execute":"query-block"}' | tr '{' '\n' | grep -o '"filename": *"blkdebug:[^"]*"' | head -n1)
if [ -z "$drive" ]; then
    tap_skip "timeout: a held command gets an Abort, then completes" "no blkdebug drive in this VM profile (the faults profile has one)"
else
    override_all none
    unload_cnvme
    unload_orion 2>/dev/null
    dmesg -c > /dev/null
    load_orion
    d=$(nvme_pci_devs | head -n1)
    bind "$d" orion_nvme
    disk=$(basename "$(ls -d /sys/bus/pci/devices/$d/block/onvme* 2>/dev/null | head -n1)")
    if [ -z "$disk" ]; then
        tap_fail "timeout: $d has a disk"
    else
        echo 10000 > /sys/block/$disk/queue/io_timeout
        dd if=/dev/urandom of=/tmp/blk4k bs=4k count=1 2>/dev/null
        hm 'qemu-io f0 \"break write_aio held\"' > /dev/null
        start=$(date +%s)
        ( timeout 90 dd if=/tmp/blk4k of=/dev/$disk bs=4k seek=10 count=1 oflag=direct 2> /tmp/dd.err
          echo $? > /tmp/dd.rc ) &
        dd_pid=$!
        wait_for "dmesg | grep -q 'orion_nvme: onvme[0-9]*: qid [0-9]* tag [0-9]* (cid 0x[0-9a-f]*) timed out; Abort'" 40
        seen=$?
        took=$(( $(date +%s) - start ))
        dmesg | grep -E 'timed out|Abort|resetting' | sed 's/^/# /'
        tap_check "timeout: the held write's timer expired and the driver sent Abort (${took}s, 10s asked)" \
            test "$seen" = 0
        tap_check "timeout: QEMU did not abort it (its Abort never does)" \
            sh -c "dmesg | grep -q 'Abort: not aborted'"
        hm 'qemu-io f0 \"resume held\"' > /dev/null
        gone=1
        wait_for "! kill -0 $dd_pid 2>/dev/null" 30 && gone=0
        tap_check "timeout: the released write ends the dd" test "$gone" = 0
        diag "dd: rc $(cat /tmp/dd.rc 2>/dev/null): $(tr '\n' ' ' < /tmp/dd.err)"
        tap_check "timeout: the write succeeded (no error after the Abort)" \
            sh -c "[ \"\$(cat /tmp/dd.rc 2>/dev/null)\" = 0 ]"
        tap_check "timeout: no reset was needed" sh -c "! dmesg | grep -q 'resetting the controller'"
        dd if=/dev/$disk of=/tmp/blk4k.back bs=4k skip=10 count=1 iflag=direct 2>/dev/null
        tap_check "timeout: the held write's data is on the disk" cmp -s /tmp/blk4k /tmp/blk4k.back
        dd if=/dev/urandom of=/tmp/pat bs=64k count=4 2>/dev/null
        dd if=/tmp/pat of=/dev/$disk bs=64k oflag=direct 2>/dev/null
        dd if=/dev/$disk of=/tmp/back bs=64k count=4 iflag=direct 2>/dev/null
        tap_check "timeout: the queue still works afterwards (write/read back)" cmp -s /tmp/pat /tmp/back
    fi
    unbind "$d"
    unload_orion
    tap_check "timeout: no kernel warnings" dmesg_clean
fi
