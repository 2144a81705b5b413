# Controller reset under load (issue #6): fio writes with crc32c verify running in the
# background (verify_backlog: written blocks are read back and checked while the run goes on)
# on every CPU, while the controller is reset again and again through sysfs reset_controller,
# then once through NVME_IOCTL_RESET (`nvme reset`). Every reset must return success, fio must
# end without an error or a verify mismatch, data written before the resets (a region fio
# does not touch) must read back unchanged, every disk must still be there, and the driver's
# own count of resets must match. RESETS=N sets the count (make check: 50; long mode: 500).
# QEMU completes commands so fast that a reset rarely finds one in flight, so the resets run
# with the namespace's drive throttled inside QEMU (QMP block_set_io_throttle, 200 IOPS):
# commands wait in QEMU, a reset interrupts them, and the driver must resubmit them. After a
# reset the test waits until the disk has completed as many writes as were in flight at it
# (QEMU's throttle queue is first in, first out, so those are the resubmitted ones) before
# the next reset: a request interrupted by 5 resets in a row fails by design, as with the
# reference driver, and this test is about resubmission, not about that limit.
# ORION_TEST_DRIVER=nvme runs the same on the C driver.
RESETS=${ORION_RESETS:-50}
dmesg -c > /dev/null
rm -f /tmp/rs-ioctl.rc
ncpu=$(nproc)
cnvme_facts || tap_fail "reset: the C driver's view of every namespace (the reference)"
bdf=$(nvme_pci_devs | head -n1)
nsid=$(fact "$bdf" nsids | head -n1)

# reset_attr: the controller's sysfs reset_controller attribute under the driver under test.
reset_attr() {
    case $TEST_DRIVER in
        nvme) echo "/sys/bus/pci/devices/$bdf/nvme/$CTRL/reset_controller" ;;
        *) echo "/sys/class/misc/$CTRL/reset_controller" ;;
    esac
}

if ! attach_all "$TEST_DRIVER" || ! DISK=$(disk_for "$TEST_DRIVER" "$bdf" "$nsid") ||
        ! CTRL=$(ctrl_node_for "$TEST_DRIVER" "$bdf"); then
    tap_fail "reset: $TEST_DRIVER bound $bdf with a disk and a controller node"
else
    tap_ok "reset: $TEST_DRIVER bound $bdf: disk $DISK, controller /dev/$CTRL"
    # The last MiB of the disk stays out of fio's way: written now, compared at the end.
    bytes=$(disk_bytes "$DISK")
    keep_at=$(( bytes / 1048576 - 1 ))
    head -c 1048576 /dev/urandom > /tmp/keep.bin
    dd if=/tmp/keep.bin of="/dev/$DISK" bs=1M seek="$keep_at" count=1 oflag=direct 2>/dev/null
    # fio on everything before it: one job per CPU on its own slice, random writes of 4-64 KiB,
    # each block read back and verified soon after it is written. Rounds of at most 10 s (a
    # random map without wrap-around, so verification is exact) run back to back; the resets
    # go on while a round runs.
    work=$(( (bytes / 1048576 - 1) * 1048576 ))
    fio_jobs "$DISK" "$ncpu" rw=randwrite bsrange=4k-64k ioengine=io_uring iodepth=16 \
        verify=crc32c verify_backlog=32 verify_fatal=1 runtime=10 > /tmp/rs.fio
    sed -i "s/^size=.*/size=$(( work / ncpu / 1048576 * 1048576 ))/" /tmp/rs.fio
    attr=$(reset_attr)
    # The drive behind the first namespace (query-block lists drives in command-line order).
    drv=$(qmp '{"execute":"query-block"}' | tr '{' '\n' | sed -n 's/.*"device": *"\([^"]*\)".*/\1/p' | grep -v '^$' | head -n1)
    throttle() { [ -n "$drv" ] && qemu_throttle "$1" "$drv"; }
    throttled=0
    if throttle 200; then
        throttled=1; diag "reset: drive $drv throttled to 200 IOPS inside QEMU"
    else
        diag "reset: could not throttle drive '$drv': commands in flight at a reset will be rare"
    fi
    ok=0 bad=0 rounds=0 fio_bad=0 wbytes=0 rbytes=0 t0=$(date +%s)
    # Rounds go on until the resets are done and the NVME_IOCTL_RESET had a round to run in
    # (with few resets, the round they ran in may be over by then).
    while { [ "$((ok + bad))" -lt "$RESETS" ] || [ ! -f /tmp/rs-ioctl.rc ]; } &&
            [ "$rounds" -lt $(( RESETS + 5 )) ]; do
        rounds=$((rounds + 1))
        fio --output-format=json --output=/tmp/rs.json /tmp/rs.fio > /tmp/rs.err 2>&1 &
        fio_pid=$!
        w0=$(disk_stat "$DISK" 5)
        wait_for "[ \$(disk_stat $DISK 5) -gt $((w0 + 32)) ] || ! kill -0 $fio_pid 2>/dev/null" 20
        while kill -0 "$fio_pid" 2>/dev/null && [ "$((ok + bad))" -lt "$RESETS" ]; do
            inflight=$(awk '{ print $1 + $2 }' "/sys/block/$DISK/inflight")
            w1=$(disk_stat "$DISK" 5)
            if echo 1 2> /tmp/rs.err1 > "$attr"; then
                ok=$((ok + 1))
            else
                bad=$((bad + 1)); diag "reset $((ok + bad)): $(cat /tmp/rs.err1)"
            fi
            sleep 0.2
            wait_for "[ \$(disk_stat $DISK 5) -ge $((w1 + inflight + 8)) ] || ! kill -0 $fio_pid 2>/dev/null" 20
        done
        # The last round also takes the NVME_IOCTL_RESET (nvme reset) under load.
        if [ "$((ok + bad))" -ge "$RESETS" ] && kill -0 "$fio_pid" 2>/dev/null; then
            nvme reset "/dev/$CTRL" > /tmp/rs-ioctl.out 2>&1; echo $? > /tmp/rs-ioctl.rc
        fi
        wait "$fio_pid"
        rc=$?
        fio_parse rs
        wbytes=$((wbytes + FIO_WBYTES)) rbytes=$((rbytes + FIO_RBYTES))
        if [ "$rc" != 0 ] || [ "$FIO_ERR" != 0 ]; then
            fio_bad=$((fio_bad + 1)); diag "reset: fio round $rounds: rc $rc, error $FIO_ERR"; fio_diag rs
        fi
    done
    took=$(( $(date +%s) - t0 ))
    # Function-level resets by the PCI core (sysfs reset; the driver's reset_prepare and
    # reset_done bracket it with the two halves of a controller reset), under a fio round.
    methods=$(cat "/sys/bus/pci/devices/$bdf/reset_method" 2>/dev/null)
    flr_ok=0
    if [ -n "$methods" ]; then
        fio --output-format=json --output=/tmp/rs.json /tmp/rs.fio > /tmp/rs.err 2>&1 &
        fio_pid=$!
        w0=$(disk_stat "$DISK" 5)
        wait_for "[ \$(disk_stat $DISK 5) -gt $((w0 + 32)) ] || ! kill -0 $fio_pid 2>/dev/null" 20
        for k in 1 2 3; do
            kill -0 "$fio_pid" 2>/dev/null || break
            inflight=$(awk '{ print $1 + $2 }' "/sys/block/$DISK/inflight")
            w1=$(disk_stat "$DISK" 5)
            if echo 1 2> /tmp/rs.err1 > "/sys/bus/pci/devices/$bdf/reset"; then
                flr_ok=$((flr_ok + 1))
            else
                diag "function reset $k: $(cat /tmp/rs.err1)"
            fi
            wait_for "[ \$(disk_stat $DISK 5) -ge $((w1 + inflight + 8)) ] || ! kill -0 $fio_pid 2>/dev/null" 20
        done
        wait "$fio_pid"
        rc=$?
        fio_parse rs
        tap_same "reset: 3 function resets (sysfs reset, method $methods) under fio succeeded" "$flr_ok" 3
        tap_check "reset: fio verified through the function resets (rc $rc, error $FIO_ERR, $FIO_RBYTES bytes read back)" \
            test "$rc" = 0 -a "$FIO_ERR" = 0 -a "$FIO_RBYTES" -gt 0 || fio_diag rs
    else
        tap_skip "reset: function resets under fio" "$bdf offers no reset method"
    fi
    [ "$throttled" = 1 ] && throttle 0 > /dev/null
    tap_same "reset: $RESETS resets through $attr under fio succeeded (${took}s, $rounds fio rounds)" "$ok" "$RESETS"
    if [ -f /tmp/rs-ioctl.rc ] && [ "$(cat /tmp/rs-ioctl.rc)" = 0 ]; then
        tap_ok "reset: nvme reset /dev/$CTRL (NVME_IOCTL_RESET) under fio"
    else
        tap_fail "reset: nvme reset /dev/$CTRL (NVME_IOCTL_RESET) under fio"; diag_file /tmp/rs-ioctl.out 2>/dev/null
    fi
    tap_same "reset: every fio round ended without an error or a verify mismatch" "$fio_bad" 0
    diag "reset: fio wrote $wbytes bytes and read back and verified $rbytes bytes in $rounds rounds"
    tap_check "reset: fio verified data read back during the resets" test "$rbytes" -gt 0
    dd if="/dev/$DISK" of=/tmp/keep.back bs=1M skip="$keep_at" count=1 iflag=direct 2>/dev/null
    tap_check "reset: data written before the resets reads back unchanged" cmp -s /tmp/keep.bin /tmp/keep.back
    missing=
    for n in $(fact "$bdf" nsids); do disk_for "$TEST_DRIVER" "$bdf" "$n" > /dev/null || missing="$missing $n"; done
    tap_same "reset: every namespace still has its disk" "${missing:-none}" none
    if [ "$TEST_DRIVER" = orion_nvme ]; then
        done_n=$(dmesg | grep -c "orion_nvme: $CTRL: reset [0-9]* done")
        want=$((ok + flr_ok)); [ "$(cat /tmp/rs-ioctl.rc 2>/dev/null)" = 0 ] && want=$((want + 1))
        tap_same "reset: orion_nvme logged every reset as done" "$done_n" "$want"
        resub=$(dmesg | grep "orion_nvme: $CTRL: reset [0-9]* done" | awk '{ for (i = 1; i <= NF; i++) if ($i == "resubmitted,") r += $(i - 2) } END { print r + 0 }')
        failed_n=$(dmesg | grep "orion_nvme: $CTRL: reset [0-9]* done" | awk '{ for (i = 1; i <= NF; i++) if ($i == "failed") r += $(i - 1) } END { print r + 0 }')
        diag "reset: requests in flight at a reset: $resub resubmitted, $failed_n failed"
        if [ "$throttled" = 1 ]; then
            tap_check "reset: resets interrupted commands in flight, which were resubmitted" test "$resub" -gt 0
        else
            tap_skip "reset: resets interrupted commands in flight" "the drive could not be throttled"
        fi
        tap_same "reset: no interrupted request failed" "$failed_n" 0
        tap_same "reset: orion_nvme brackets each function reset with its own" \
            "$(dmesg | grep -c "orion_nvme: $CTRL: reset [0-9]* done (function reset)")" "$flr_ok"
        tap_check "reset: sysfs state is live again" sh -c "grep -qx live /sys/class/misc/$CTRL/state"
        # The namespace scan after a reset changed nothing here.
        tap_check "reset: no disk added or removed by the resets" \
            sh -c "! dmesg | grep -q 'after reset: .* disks added'"
    fi
fi
detach_all
tap_check "reset: no kernel warnings" dmesg_clean || diag_file /tmp/bad.txt
