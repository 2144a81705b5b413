# The number of I/O queues changing across a reset (issue #6): a controller with SR-IOV
# (the changes profile) has flexible queue resources that the host moves to or from the
# primary controller with Virtualization Management (nvme virt-mgmt); the change takes
# effect at the next function reset. The driver binds with 6 queues (4 interrupt-driven,
# one per CPU, and 2 polled), the flexible resources are taken away and the function is
# reset under fio with crc32c verify on every CPU (the drive throttled in QEMU so commands
# are in flight on every CPU's queue): the controller then grants its 2 private queues. The
# driver must carry on with 2 hardware contexts, the requests held by the contexts that
# went away must be submitted again (fio ends without an error or a verify mismatch), and a
# second round gives the resources back: 6 queues again, polled I/O works again; a third
# round (orion_nvme) makes the controller stop completing during the remap. Controllers without
# Virtualization Management skip loudly. ORION_TEST_DRIVER=nvme runs the same on the C
# driver.
dmesg -c > /dev/null
cnvme_facts || tap_fail "queues: the C driver's view of every namespace (the reference)"
qc_bdf= qc_cntlid= qc_flex=0 qc_priv=0 qc_stuck=0 stuck_ran=
attach_all "$TEST_DRIVER" > /dev/null 2>&1
for b in $(nvme_pci_devs); do
    c=$(ctrl_node_for "$TEST_DRIVER" "$b") || continue
    oacs=$(nvme id-ctrl "/dev/$c" 2>/dev/null | sed -n 's/^oacs *: *//p')
    [ -n "$oacs" ] && [ $(( oacs & 0x8 )) != 0 ] || continue
    flex=$(nvme primary-ctrl-caps "/dev/$c" 2>/dev/null | sed -n 's/^vqfrt *: *//p')
    [ "${flex:-0}" -ge 1 ] || continue
    qc_bdf=$b qc_flex=$flex
    # Private queue resources, the admin queue's among them.
    qc_priv=$(( $(nvme primary-ctrl-caps "/dev/$c" | sed -n 's/^vqprt *: *//p') - 1 ))
    qc_cntlid=$(nvme id-ctrl "/dev/$c" | sed -n 's/^cntlid *: *//p')
    break
done
if [ -z "$qc_bdf" ]; then
    tap_skip "queues: the I/O queue count changing across a reset" \
        "no controller here has Virtualization Management with flexible queue resources (the changes profile has)"
else
    bdf=$qc_bdf
    nsid=$(fact "$bdf" nsids | head -n1)
    ncpu=$(nproc)
    # virt_queues N: N flexible queue resources for the primary controller from the next
    # function reset on (Virtualization Management, Primary Controller Flexible Allocation).
    virt_queues() {
        nvme virt-mgmt "/dev/$CTRL" --cntlid="$qc_cntlid" --rt=0 --act=1 --nr="$1" > /tmp/qc.virt 2>&1
    }
    # flr: a function reset through sysfs (the driver's reset_prepare/reset_done bracket it).
    flr() { echo 1 2> /tmp/qc.flr > "/sys/bus/pci/devices/$bdf/reset"; }
    hctxs() { ls -d /sys/block/"$DISK"/mq/[0-9]* 2>/dev/null | wc -l; }
    # Step 1: the flexible resources to the primary controller, and a function reset with no
    # driver bound, so the driver's probe finds private + flexible queues.
    CTRL=$(ctrl_node_for "$TEST_DRIVER" "$bdf")
    tap_check "queues: virt-mgmt gives $qc_flex flexible queue resources to controller $qc_cntlid" virt_queues "$qc_flex" ||
        diag_file /tmp/qc.virt
    detach_all
    tap_check "queues: function reset of the unbound $bdf" flr || diag_file /tmp/qc.flr
    param=poll_queues=2   # both drivers' parameter
    if ! attach_all "$TEST_DRIVER" "$param" || ! DISK=$(disk_for "$TEST_DRIVER" "$bdf" "$nsid") ||
            ! CTRL=$(ctrl_node_for "$TEST_DRIVER" "$bdf"); then
        tap_fail "queues: $TEST_DRIVER ($param) bound $bdf with a disk and a controller node"
    else
        want=$(( ncpu + 2 )); [ "$want" -gt $(( qc_priv + qc_flex )) ] && want=$(( qc_priv + qc_flex ))
        less=$(( ncpu + 2 )); [ "$less" -gt "$qc_priv" ] && less=$qc_priv
        diag "queues: $qc_priv private and $qc_flex flexible queue resources; $ncpu CPUs"
        tap_same "queues: $TEST_DRIVER made $want hardware contexts for $DISK" "$(hctxs)" "$want"
        bytes=$(disk_bytes "$DISK")
        keep_at=$(( bytes / 1048576 - 1 ))
        head -c 1048576 /dev/urandom > /tmp/qc-keep.bin
        dd if=/tmp/qc-keep.bin of="/dev/$DISK" bs=1M seek="$keep_at" count=1 oflag=direct 2>/dev/null
        work=$(( (bytes / 1048576 - 1) * 1048576 ))
        fio_jobs "$DISK" "$ncpu" rw=randwrite bsrange=4k-64k ioengine=io_uring iodepth=16 \
            verify=crc32c verify_backlog=32 verify_fatal=1 runtime=8 > /tmp/qc.fio
        sed -i "s/^size=.*/size=$(( work / ncpu / 1048576 * 1048576 ))/" /tmp/qc.fio
        drv=$(qmp '{"execute":"query-block"}' | tr '{' '\n' | sed -n 's/.*"device": *"\([^"]*\)".*/\1/p' | grep -v '^$' | head -n1)
        throttle() { [ -n "$drv" ] && qemu_throttle "$1" "$drv"; }
        throttled=0
        throttle 200 && throttled=1
        # round NAME FLEX EXPECT: fio with verify on every CPU; FLEX resources from the next
        # function reset on; the function reset while fio runs; fio must end clean and the
        # disk have EXPECT hardware contexts.
        round() {
            fio --output-format=json --output=/tmp/qc.json /tmp/qc.fio > /tmp/qc.err 2>&1 &
            fio_pid=$!
            w0=$(disk_stat "$DISK" 5)
            wait_for "[ \$(disk_stat $DISK 5) -gt $((w0 + 32)) ] || ! kill -0 $fio_pid 2>/dev/null" 20
            inflight=$(awk '{ print $1 + $2 }' "/sys/block/$DISK/inflight")
            virt_queues "$2" || { diag "queues: virt-mgmt $2: $(cat /tmp/qc.virt)"; }
            if flr; then r_flr=ok; else r_flr="failed: $(cat /tmp/qc.flr)"; fi
            wait "$fio_pid"
            rc=$?
            fio_parse qc
            diag "queues: $1: $inflight requests in flight at the function reset"
            tap_same "queues: $1: function reset under fio" "$r_flr" ok
            tap_check "queues: $1: fio verified through it (rc $rc, error $FIO_ERR, $FIO_RBYTES bytes read back)" \
                test "$rc" = 0 -a "$FIO_ERR" = 0 -a "$FIO_RBYTES" -gt 0 || fio_diag qc
            tap_same "queues: $1: hardware contexts of $DISK" "$(hctxs)" "$3"
        }
        round "shrink" 0 "$less"
        if [ "$TEST_DRIVER" = orion_nvme ]; then
            line=$(dmesg | grep "orion_nvme: $CTRL: I/O queues in service: $want -> $less;" | tail -n1)
            tap_check "queues: shrink: orion_nvme logged $want -> $less queues in service" test -n "$line" ||
                dmesg | grep orion_nvme | tail -n 20 | diag_file
            back=$(echo "$line" | sed -n 's/.*; \([0-9]*\) bios given back.*/\1/p')
            lost=$(echo "$line" | sed -n 's/.*resubmitted, \([0-9]*\) requests failed.*/\1/p')
            diag "queues: shrink: ${back:-?} bios given back by the contexts that went away and resubmitted"
            tap_same "queues: shrink: no request failed" "${lost:-?}" 0
            tap_check "queues: shrink: sysfs state is live" sh -c "grep -qx live /sys/class/misc/$CTRL/state"
        fi
        # Polled I/O with no poll queue left is refused (EOPNOTSUPP) by the block layer.
        round "grow" "$qc_flex" "$want"
        [ "$throttled" = 1 ] && throttle 0 > /dev/null
        if [ "$TEST_DRIVER" = orion_nvme ]; then
            tap_check "queues: grow: orion_nvme logged $less -> $want queues in service" \
                sh -c "dmesg | grep -q 'orion_nvme: $CTRL: I/O queues in service: $less -> $want;'"
        fi
        fio_verify_check qc-poll "queues: grow: polled I/O (io_uring hipri) verified on the poll queues again" \
            "$DISK" --rw=randrw --bs=4k --size=16m --hipri=1 --iodepth=8
        dd if="/dev/$DISK" of=/tmp/qc-keep.back bs=1M skip="$keep_at" count=1 iflag=direct 2>/dev/null
        tap_check "queues: data written before the changes reads back unchanged" cmp -s /tmp/qc-keep.bin /tmp/qc-keep.back
        # Back to the profile's boot state: no flexible resources, applied by a function reset.
        virt_queues 0 || diag "queues: virt-mgmt 0: $(cat /tmp/qc.virt)"
        # A controller that stops completing commands while the contexts are remapped: the
        # function reset that shrinks the queues again runs with the drive throttled to 2 IOPS
        # (fio keeps about 32 commands waiting inside QEMU) and io_timeout at 2 s. orion_nvme
        # bounds the remap's wait by one I/O timeout: requests still in flight then mean the
        # controller is not working, so the reset gives it up. It must be dead, fio must end
        # with an error (nothing waits forever), and after unbind and a function reset the
        # controller binds again with its data.
        if [ "$TEST_DRIVER" != orion_nvme ]; then
            tap_skip "queues: stuck remap" "orion_nvme's own bound on the remap wait (the C driver disables the controller at a timeout during its reset)"
        elif [ "$throttled" != 1 ]; then
            tap_skip "queues: stuck remap" "drive '$drv' could not be throttled inside QEMU"
        else
            stuck_ran=1
            dmesg_mark
            throttle 2
            fio --output-format=json --output=/tmp/qc-stuck.json /tmp/qc.fio > /tmp/qc-stuck.err 2>&1 &
            fio_pid=$!
            wait_for "[ \$(awk '{ print \$1 + \$2 }' /sys/block/$DISK/inflight) -ge 8 ] || ! kill -0 $fio_pid 2>/dev/null" 20
            echo 2000 > "/sys/block/$DISK/queue/io_timeout"
            t0=$(date +%s)
            if flr; then r_flr=ok; else r_flr="failed: $(cat /tmp/qc.flr)"; fi
            diag "queues: stuck: the function reset took $(( $(date +%s) - t0 ))s"
            wait_for "! kill -0 $fio_pid 2>/dev/null" 60
            if kill -0 "$fio_pid" 2>/dev/null; then
                qc_stuck=1
                tap_fail "queues: stuck: fio ended (still running 60 s after the function reset)"
                echo w > /proc/sysrq-trigger
                kill -9 "$fio_pid" 2>/dev/null
            fi
            throttle 0 > /dev/null
            tap_same "queues: stuck: function reset" "$r_flr" ok
            tap_check "queues: stuck: orion_nvme found requests still in flight 2000 ms after dispatch resumed" \
                dmesg_logged 'requests still in flight 2000 ms after dispatch resumed' ||
                dmesg_since | grep orion_nvme | tail -n 20 | diag_file
            tap_check "queues: stuck: orion_nvme gave the controller up" \
                dmesg_logged 'did not come back from reset'
            tap_same "queues: stuck: sysfs state of $CTRL" "$(cat /sys/class/misc/$CTRL/state 2>/dev/null)" dead
            if [ "${qc_stuck:-0}" != 1 ]; then
                wait "$fio_pid"
                rc=$?
                fio_parse qc-stuck
                tap_check "queues: stuck: fio ended with an I/O error (rc $rc, error $FIO_ERR)" \
                    test "$rc" != 0 -a "$FIO_ERR" != 0 || fio_diag qc-stuck
                dead_disk_check "queues: stuck" "$bdf" "$nsid"
                wait_module_unused "$TEST_DRIVER"
            fi
        fi
    fi
    if [ "${qc_stuck:-0}" != 1 ]; then
        detach_all
        flr || diag "queues: function reset back to the boot state: $(cat /tmp/qc.flr)"
        if [ -n "${stuck_ran:-}" ]; then
            if ! attach_all "$TEST_DRIVER" || ! DISK=$(disk_for "$TEST_DRIVER" "$bdf" "$nsid"); then
                tap_fail "queues: after the stuck remap, $TEST_DRIVER binds $bdf again with a disk"
            else
                rm -f /tmp/qc-keep.back
                dd if="/dev/$DISK" of=/tmp/qc-keep.back bs=1M skip="$keep_at" count=1 iflag=direct 2>/dev/null
                tap_check "queues: after the stuck remap, $TEST_DRIVER binds $bdf again and its data reads back" \
                    cmp -s /tmp/qc-keep.bin /tmp/qc-keep.back
            fi
        fi
    fi
fi
[ "${qc_stuck:-0}" = 1 ] || detach_all
tap_check "queues: no kernel warnings" dmesg_clean || diag_file /tmp/bad.txt
