# The device vanishing mid-I/O (issue #6): while fio writes with verify, the controller's
# Memory Space Enable is cleared in its PCI command register, which is what a controller
# that fell off the bus looks like from the host: doorbell writes go nowhere and register
# reads no longer reach it, and the commands in flight never complete. The driver must end
# every outstanding and later I/O with an error within a bound (the timeout ladder: Abort,
# which cannot be answered, then a reset that cannot bring the controller back), hang
# nothing, and unbind cleanly; with memory space enabled again, a fresh bind must find the
# data written before. Memory space is kept disabled until then (the C driver enables it
# again at each reset). Runs on the single profile (ORION_PROFILE, from vm.py).
# ORION_TEST_DRIVER=nvme runs the same on the C driver (which removes the controller when
# its reset fails).
if [ "${ORION_PROFILE:-}" != single ]; then
    tap_skip "vanish: the device vanishing mid-I/O" "runs on the single profile (this is ${ORION_PROFILE:-unknown})"
else
    dmesg -c > /dev/null
    cnvme_facts || tap_fail "vanish: the C driver's view of every namespace (the reference)"
    bdf=$(nvme_pci_devs | head -n1)
    nsid=$(fact "$bdf" nsids | head -n1)
    cfg=/sys/bus/pci/devices/$bdf/config
    # cmd_word / set_cmd WORD: the PCI command register (config offset 4, little endian).
    cmd_word() { echo $(( 0x$(od -An -tx2 -j4 -N2 "$cfg" | tr -d ' ') )); }
    set_cmd() {
        printf "$(printf '\\%03o\\%03o' $(( $1 & 255 )) $(( $1 >> 8 )))" |
            dd of="$cfg" bs=1 seek=4 count=2 conv=notrunc 2>/dev/null
    }
    if ! attach_all "$TEST_DRIVER" || ! DISK=$(disk_for "$TEST_DRIVER" "$bdf" "$nsid"); then
        tap_fail "vanish: $TEST_DRIVER bound $bdf with a disk"
    else
        CTRL=$(ctrl_node_for "$TEST_DRIVER" "$bdf")
        tap_ok "vanish: $TEST_DRIVER bound $bdf: disk $DISK"
        echo 5000 > "/sys/block/$DISK/queue/io_timeout"
        bytes=$(disk_bytes "$DISK")
        keep_at=$(( bytes / 1048576 - 1 ))
        head -c 1048576 /dev/urandom > /tmp/vn-keep.bin
        dd if=/tmp/vn-keep.bin of="/dev/$DISK" bs=1M seek="$keep_at" count=1 oflag=direct conv=fsync 2>/dev/null
        fio --name=vn --filename="/dev/$DISK" --direct=1 --rw=randwrite --bs=4k --size=256m \
            --ioengine=io_uring --iodepth=16 --numjobs=2 --verify=crc32c --verify_backlog=32 \
            --time_based --runtime=300 --output-format=json --output=/tmp/vn.json > /tmp/vn.err 2>&1 &
        fio_pid=$!
        w0=$(disk_stat "$DISK" 5)
        wait_for "[ \$(disk_stat $DISK 5) -gt $((w0 + 200)) ] || ! kill -0 $fio_pid 2>/dev/null" 30
        cmd0=$(cmd_word)
        set_cmd $(( cmd0 & ~2 ))
        t0=$(date +%s)
        # The device stays gone: a driver that enables memory space again in its reset (the
        # C driver does) finds it cleared again within 0.2 s.
        rm -f /tmp/vn.stop
        ( while [ ! -f /tmp/vn.stop ]; do set_cmd $(( cmd0 & ~2 )); sleep 0.2; done ) &
        gone_pid=$!
        tap_same "vanish: Memory Space Enable cleared in $bdf's command register" $(( $(cmd_word) & 2 )) 0
        # fio must end on its own, with errors: nothing may wait forever.
        wait_for "! kill -0 $fio_pid 2>/dev/null" 150
        took=$(( $(date +%s) - t0 ))
        if kill -0 "$fio_pid" 2>/dev/null; then
            tap_fail "vanish: fio ended after the device vanished (still running after ${took}s)"
            echo w > /proc/sysrq-trigger
            kill -9 "$fio_pid" 2>/dev/null
        else
            wait "$fio_pid"
            rc=$?
            fio_parse vn
            tap_check "vanish: fio ended ${took}s after the device vanished, with an I/O error (rc $rc, error $FIO_ERR)" \
                test "$rc" != 0 -a "$FIO_ERR" != 0 || fio_diag vn
        fi
        dmesg | grep -E "orion_nvme|nvme nvme" | grep -iE "timed out|abort|reset|dead|remov|come back" | head -n 12 | diag_file
        dead_disk_check vanish "$bdf" "$nsid"
        if [ "$TEST_DRIVER" = orion_nvme ]; then
            tap_same "vanish: sysfs state of $CTRL" "$(cat /sys/class/misc/$CTRL/state 2>/dev/null)" dead
        fi
        touch /tmp/vn.stop; wait "$gone_pid"
        set_cmd "$cmd0"
        t1=$(date +%s)
        # io_uring closes fio's files from a worker after fio exits: wait for the last close
        # (an open disk holds the module) before unloading.
        wait_module_unused "$TEST_DRIVER"
        detach_all
        left="$(driver_of "$bdf")$(lsmod | grep -E '^(orion_nvme|nvme) ' | cut -d' ' -f1)"
        tap_same "vanish: unbind and unload afterwards ($(( $(date +%s) - t1 ))s): no driver or module left" \
            "${left:-none}" none || { lsmod | diag_file; dmesg | tail -n 5 | diag_file; }
        # The function reset puts the controller back into a known state for the next bind.
        echo 1 > "/sys/bus/pci/devices/$bdf/reset" 2>/dev/null
        if ! attach_all "$TEST_DRIVER" || ! DISK=$(disk_for "$TEST_DRIVER" "$bdf" "$nsid"); then
            tap_fail "vanish: $TEST_DRIVER binds $bdf again with a disk"
        else
            tap_ok "vanish: $TEST_DRIVER binds $bdf again: disk $DISK"
            dd if="/dev/$DISK" of=/tmp/vn-keep.back bs=1M skip="$keep_at" count=1 iflag=direct 2>/dev/null
            tap_check "vanish: data written before reads back unchanged" cmp -s /tmp/vn-keep.bin /tmp/vn-keep.back
            fio_verify_check vn2 "vanish: fio verify on the rebound disk" \
                "$DISK" --rw=randwrite --bs=4k --size=16m --iodepth=16
        fi
    fi
    detach_all
    tap_check "vanish: no kernel warnings" dmesg_clean || diag_file /tmp/bad.txt
fi
