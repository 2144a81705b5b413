# A completion that never arrives: with a write held inside QEMU (blkdebug "break", only in
# the "faults" profile), the request times out after the disk's io_timeout; the timeout
# handler first reaps the queue, then fails the request (the writer gets EIO, nothing hangs).
# When QEMU finally completes the held write, its completion carries a CID the driver has
# cancelled: it is refused as bogus and completes nothing. The queue keeps working.

hm() { qmp "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"$1\"}}"; }

drive=$(qmp '{"execute":"query-block"}' | tr '{' '\n' | grep -o '"filename": *"blkdebug:[^"]*"' | head -n1)
if [ -z "$drive" ]; then
    tap_skip "timeout: a held command times out and fails" "no blkdebug drive in this VM profile (the faults profile has one)"
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
        echo 2000 > /sys/block/$disk/queue/io_timeout
        dd if=/dev/urandom of=/tmp/blk4k bs=4k count=1 2>/dev/null
        hm 'qemu-io f0 \"break write_aio held\"' > /dev/null
        start=$(date +%s)
        timeout 60 dd if=/tmp/blk4k of=/dev/$disk bs=4k seek=10 count=1 oflag=direct 2> /tmp/dd.err
        rc=$?
        took=$(( $(date +%s) - start ))
        diag "dd: rc $rc after ${took}s: $(tr '\n' ' ' < /tmp/dd.err)"
        tap_check "timeout: the held write fails with an I/O error (not a hang)" \
            sh -c "[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -qi 'error' /tmp/dd.err"
        tap_check "timeout: it took about the io_timeout (${took}s, 2s asked)" test "$took" -le 20
        tap_check "timeout: the driver logged the timeout" \
            sh -c "dmesg | grep -q 'orion_nvme: onvme[0-9]*: qid [0-9]* tag [0-9]* timed out'"
        hm 'qemu-io f0 \"resume held\"' > /dev/null
        wait_for "dmesg | grep -q 'orion_nvme: qid [0-9]*: bogus completion'" 10
        tap_check "timeout: the late completion is refused as bogus" \
            sh -c "dmesg | grep 'bogus completion' | grep -q StaleGeneration\\\\\\|NotInFlight"
        dmesg | grep -E 'timed out|bogus' | sed 's/^/# /'
        dd if=/dev/urandom of=/tmp/pat bs=64k count=4 2>/dev/null
        dd if=/tmp/pat of=/dev/$disk bs=64k oflag=direct 2>/dev/null
        dd if=/dev/$disk of=/tmp/back bs=64k count=4 iflag=direct 2>/dev/null
        tap_check "timeout: the queue still works afterwards (write/read back)" cmp -s /tmp/pat /tmp/back
    fi
    unbind "$d"
    unload_orion
    tap_check "timeout: no kernel warnings" dmesg_clean
fi
