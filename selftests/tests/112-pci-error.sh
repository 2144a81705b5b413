# PCI error recovery (issue #6, item 6): QEMU's pcie_aer_inject_error reports an
# uncorrectable error at the root port above a controller while fio writes with verify on
# its disk, and the kernel's AER driver runs its recovery over the devices below that port,
# calling the driver's pci_error_handlers. QEMU's NVMe device has no AER capability of its
# own, hence the root port.
# single profile, first controller (root port rp0, 5 GT/s):
# - a non-fatal error (Completion Timeout): error_detected (channel normal), then
#   mmio_enabled, which finds the controller healthy; no reset.
# - a fatal one (Data Link Protocol Error): error_detected (channel frozen) quiesces and
#   disables the controller, the port's secondary bus reset resets the function and clears
#   its configuration space, slot_reset restores it and brings the controller back; the
#   requests in flight are resubmitted.
#   Both times the PCI core logs "device recovery successful", fio ends with no error and no
#   verify mismatch, and data written before reads back.
# dual profile, second controller (root port rp1 at QEMU's default 16 GT/s, whose link QEMU
# never reports active): the fatal error's link reset fails the PCI core's link wait, so the
# recovery fails and the driver hears "permanent failure": the I/O must end with errors
# (no hang), the controller is dead, unbind and unload are clean, and after the device is
# removed and rescanned (what an administrator does next) it binds again with its data.
# ORION_TEST_DRIVER=nvme runs the same on the C driver.
case ${ORION_PROFILE:-} in
    single) which=1 ;;
    dual) which=2 ;;
    *) which= ;;
esac
if [ -z "$which" ]; then
    tap_skip "pci error: AER recovery under I/O" "runs on the single and dual profiles (this is ${ORION_PROFILE:-unknown})"
else
    dmesg -c > /dev/null
    cnvme_facts || tap_fail "pci error: the C driver's view of every namespace (the reference)"
    bdf=$(nvme_pci_devs | sed -n "${which}p")
    nsid=$(fact "$bdf" nsids | head -n1)
    # The port above it (vm.py puts controller nvme<i> on root port rp<i>).
    port=$(basename "$(dirname "$(readlink -f "/sys/bus/pci/devices/$bdf")")")
    PORT_ID=rp$((which - 1))
    said_ok() { echo "$1" | grep -q '"return": *"OK id:'; }
    hmp() {
        qmp "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"$1\"}}"
    }
    # The kernel's messages since the last mark (the ring is not cleared: a warning anywhere
    # in the test must reach dmesg_clean).
    if [ ! -e "/sys/bus/pci/devices/$port/aer_rootport_total_err_fatal" ]; then
        tap_skip "pci error: AER recovery under I/O" \
            "root port $port has no AER service (kernel without CONFIG_PCIEAER, or the firmware kept AER)"
    elif ! attach_all "$TEST_DRIVER" || ! DISK=$(disk_for "$TEST_DRIVER" "$bdf" "$nsid"); then
        tap_fail "pci error: $TEST_DRIVER bound $bdf with a disk"
    else
        CTRL=$(ctrl_node_for "$TEST_DRIVER" "$bdf")
        tap_ok "pci error: $TEST_DRIVER bound $bdf below root port $port: disk $DISK"
        # The drive throttled inside QEMU (as in 106), so commands are in flight at the reset.
        # (Every drive QEMU lists for the controller: after 107's replugs an old one may come
        # first; throttling it as well does no harm.)
        drvs=$(qemu_drives_of "nvme$((which - 1))")
        throttle() { qemu_throttle "$1" $drvs; }
        throttled=0
        if [ -n "$drvs" ] && throttle 200; then
            throttled=1; diag "pci error: drives $(echo $drvs) throttled to 200 IOPS inside QEMU"
        else
            diag "pci error: could not throttle drives '$(echo $drvs)': commands in flight at the reset will be rare"
        fi
        keep_at=$(( $(disk_bytes "$DISK") / 1048576 - 1 ))
        head -c 1048576 /dev/urandom > /tmp/pe-keep.bin
        dd if=/tmp/pe-keep.bin of="/dev/$DISK" bs=1M seek="$keep_at" count=1 oflag=direct conv=fsync 2>/dev/null
        total() { cat "/sys/bus/pci/devices/$port/aer_rootport_total_err_$1" 2>/dev/null || echo 0; }
        # inject KIND ERROR NAME: one error under fio (a 15 s run); sets OUTCOME (successful,
        # failed or none: the PCI core's verdict) and the fio results (FIO_RC and fio_parse's).
        inject() {
            local kind=$1 err=$2 name=$3 before fio_pid reply t0
            before=$(total "$kind")
            dmesg_mark
            fio --name="$name" --filename="/dev/$DISK" --direct=1 --rw=randwrite --bs=4k --size=64m \
                --ioengine=io_uring --iodepth=16 --numjobs=2 --verify=crc32c --verify_backlog=32 \
                --verify_fatal=1 --time_based --runtime=15 --output-format=json \
                --output="/tmp/$name.json" > "/tmp/$name.err" 2>&1 &
            fio_pid=$!
            w0=$(disk_stat "$DISK" 5)
            wait_for "[ \$(disk_stat $DISK 5) -gt $((w0 + 200)) ] || ! kill -0 $fio_pid 2>/dev/null" 30
            t0=$(date +%s)
            reply=$(hmp "pcie_aer_inject_error $PORT_ID $err")
            # QEMU answers "OK id: ..." or why not.
            tap_check "pci error: $kind error $err injected at $PORT_ID ($port) under fio" \
                said_ok "$reply" || diag "QMP: $reply"
            OUTCOME=none
            wait_for "dmesg_since | grep -qE 'device recovery (successful|failed)'" 60 &&
                OUTCOME=$(dmesg_since | sed -n 's/.*device recovery \(successful\|failed\).*/\1/p' | head -n1)
            diag "pci error: $kind: recovery $OUTCOME after $(( $(date +%s) - t0 ))s"
            tap_same "pci error: $kind: the port counted one more $kind error" "$(total "$kind")" $((before + 1))
            # fio ends on its own either way: nothing may wait forever.
            STUCK=0
            wait_for "! kill -0 $fio_pid 2>/dev/null" 120
            if kill -0 "$fio_pid" 2>/dev/null; then
                tap_fail "pci error: $kind: fio ended (still running 120 s after the error)"
                echo w > /proc/sysrq-trigger
                # I/O that never ends leaves fio's io_uring workers unkillable, and any other
                # I/O to the disk waits as well: nothing more can be tested here.
                kill -9 "$fio_pid" 2>/dev/null
                STUCK=1
                FIO_RC=124
                return
            fi
            wait "$fio_pid"
            FIO_RC=$?
            fio_parse "$name"
            dmesg_since | grep -E "$bdf|$port|orion_nvme" | grep -E "AER|error|recover|reset|healthy|dead" | head -n 12 | diag_file
        }
        # recovered KIND NAME: the recovery succeeded and fio verified across it.
        recovered() {
            tap_same "pci error: $1: the PCI core's verdict" "$OUTCOME" successful ||
                dmesg_since | grep -E "AER|$bdf|$port" | tail -n 20 | diag_file
            tap_check "pci error: $1: fio verify across the recovery (rc $FIO_RC, error $FIO_ERR, $FIO_WBYTES bytes written)" \
                test "$FIO_RC" = 0 -a "$FIO_ERR" = 0 -a "$FIO_WBYTES" -gt 0 || fio_diag "$2"
        }
        if [ "$which" = 1 ]; then
            # Completion Timeout (uncorrectable status bit 14): non-fatal in the default severity.
            inject nonfatal 0x4000 pe1
            recovered nonfatal pe1
            if [ "$TEST_DRIVER" = orion_nvme ]; then
                tap_check "pci error: nonfatal: error_detected saw the link up, mmio_enabled found the controller healthy" \
                    dmesg_logged "orion_nvme: controller healthy after the PCI error"
                tap_check "pci error: nonfatal: no controller reset" \
                    test -z "$(dmesg_since | grep -E 'resetting the controller|quiescing|reset [0-9]+ done')"
            fi
            # Data Link Protocol Error (bit 4): fatal in the default severity.
            if [ "$STUCK" != 1 ]; then
                inject fatal 0x10 pe2
                recovered fatal pe2
                if [ "$TEST_DRIVER" = orion_nvme ]; then
                    tap_check "pci error: fatal: the controller was reset by the recovery and came back" \
                        dmesg_logged "done (PCI error recovery)"
                    line=$(dmesg_since | grep "done (PCI error recovery)" | tail -n1)
                    resub=$(echo "$line" | sed -n 's/.*: \([0-9]*\) requests resubmitted, \([0-9]*\) failed.*/\1/p')
                    failed_n=$(echo "$line" | sed -n 's/.*: \([0-9]*\) requests resubmitted, \([0-9]*\) failed.*/\2/p')
                    if [ "$throttled" = 1 ]; then
                        tap_check "pci error: fatal: commands in flight at the link reset were resubmitted (${resub:-?})" \
                            test "${resub:-0}" -gt 0
                    else
                        tap_skip "pci error: fatal: commands in flight at the link reset" "drives '$(echo $drvs)' could not be throttled"
                    fi
                    tap_same "pci error: fatal: no interrupted request failed" "${failed_n:-?}" 0
                    tap_same "pci error: sysfs state of $CTRL" "$(cat /sys/class/misc/$CTRL/state 2>/dev/null)" live
                fi
            fi
            [ "$throttled" = 1 ] && throttle 0 > /dev/null
        else
            inject fatal 0x10 pe2
            [ "$throttled" = 1 ] && throttle 0 > /dev/null
            if [ "$STUCK" = 1 ]; then
                tap_fail "pci error: the rest (unbind, rescan, rebind): fio's I/O never ended, so it cannot exit"
            elif [ "$OUTCOME" = successful ]; then
                recovered fatal pe2
                tap_skip "pci error: a failed recovery" \
                    "the recovery at $PORT_ID succeeded (QEMU reports its link active now?): nothing failed"
            else
                tap_same "pci error: fatal at $PORT_ID: the PCI core's verdict (its link wait fails)" "$OUTCOME" failed
                tap_check "pci error: failed recovery: fio ended with an I/O error (rc $FIO_RC, error $FIO_ERR)" \
                    test "$FIO_RC" != 0 -a "$FIO_ERR" != 0 || fio_diag pe2
                if [ "$TEST_DRIVER" = orion_nvme ]; then
                    tap_check "pci error: failed recovery: orion_nvme gave the controller up" \
                        dmesg_logged "PCI error recovery failed: controller dead"
                    tap_same "pci error: failed recovery: sysfs state of $CTRL" \
                        "$(cat /sys/class/misc/$CTRL/state 2>/dev/null)" dead
                fi
                dead_disk_check "pci error: failed recovery" "$bdf" "$nsid"
                t1=$(date +%s)
                wait_module_unused "$TEST_DRIVER"
                detach_all
                left="$(driver_of "$bdf")$(lsmod | grep -E '^(orion_nvme|nvme) ' | cut -d' ' -f1)"
                tap_same "pci error: failed recovery: unbind and unload afterwards ($(( $(date +%s) - t1 ))s)" \
                    "${left:-none}" none
                # The link reset cleared the function's configuration space and nothing restored
                # it: removal and a rescan enumerate it afresh.
                echo 1 > "/sys/bus/pci/devices/$bdf/remove"
                echo 1 > /sys/bus/pci/rescan
                wait_for "[ -e /sys/bus/pci/devices/$bdf ]" 10
                if ! attach_all "$TEST_DRIVER" || ! DISK=$(disk_for "$TEST_DRIVER" "$bdf" "$nsid"); then
                    tap_fail "pci error: after remove and rescan, $TEST_DRIVER binds $bdf again with a disk"
                else
                    tap_ok "pci error: after remove and rescan, $TEST_DRIVER binds $bdf again: disk $DISK"
                fi
            fi
        fi
        if [ "$STUCK" != 1 ]; then
            dd if="/dev/$DISK" of=/tmp/pe-keep.back bs=1M skip="$keep_at" count=1 iflag=direct 2>/dev/null
            tap_check "pci error: data written before reads back unchanged" cmp -s /tmp/pe-keep.bin /tmp/pe-keep.back
            fio_verify_check pe3 "pci error: fio verify afterwards" \
                "$DISK" --rw=randwrite --bs=4k --size=16m --iodepth=16
        fi
    fi
    if [ "${STUCK:-0}" != 1 ]; then
        wait_module_unused "$TEST_DRIVER"
        detach_all
    fi
    tap_check "pci error: no kernel warnings" dmesg_clean || diag_file /tmp/bad.txt
fi
