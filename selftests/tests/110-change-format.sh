# Namespace revalidation at a reset (issue #6): two controllers of one NVM subsystem share a
# namespace (the changes profile). Through the second controller the namespace is formatted
# to another LBA size (nvme format on its disk, which must take effect there at once),
# behind the first controller's back; after a reset of the first, its
# disk must have the new logical block size and the same capacity in bytes, I/O through it
# must work (fio verify) and be seen through the other controller; then the same back to
# the original format. Without a shared namespace the test skips loudly.
# ORION_TEST_DRIVER=nvme runs the same on the C driver.
dmesg -c > /dev/null
cnvme_facts || tap_fail "revalidate: the C driver's view of every namespace (the reference)"
# Two controllers of one NVM subsystem (the same SUBNQN) with an NSID in common: the same
# namespace, since NSIDs are the subsystem's (controllers that only happen to both have a
# namespace 1, as in the dual profile, do not count).
attach_all "$TEST_DRIVER" > /dev/null 2>&1
for b in $(nvme_pci_devs); do
    c=$(ctrl_node_for "$TEST_DRIVER" "$b") &&
        nvme id-ctrl "/dev/$c" 2>/dev/null | sed -n 's/^subnqn *: *//p' > "/tmp/facts/$b/subnqn"
done
fa= fb= fnsid=
for a in $(nvme_pci_devs); do
    for b in $(nvme_pci_devs); do
        [ "$a" = "$b" ] && continue
        [ -s "/tmp/facts/$a/subnqn" ] && [ "$(fact "$a" subnqn)" = "$(fact "$b" subnqn)" ] || continue
        for n in $(fact "$a" nsids); do
            fact "$b" nsids | grep -qx "$n" || continue
            fa=$a fb=$b fnsid=$n
            break 3
        done
    done
done
diag "revalidate: subsystem NQNs: $(for b in $(nvme_pci_devs); do echo "$b=$(fact "$b" subnqn)"; done | tr '\n' ' ')"
case $TEST_DRIVER in
    nvme) reset_attr() { echo "/sys/bus/pci/devices/$1/nvme/$2/reset_controller"; } ;;
    *) reset_attr() { echo "/sys/class/misc/$2/reset_controller"; } ;;
esac
if [ -z "$fa" ]; then
    tap_skip "revalidate: a format behind the driver's back, seen at a reset" \
        "no two controllers here share a namespace (the changes profile has)"
elif ! attach_all "$TEST_DRIVER" || ! DA=$(disk_for "$TEST_DRIVER" "$fa" "$fnsid") ||
        ! DB=$(disk_for "$TEST_DRIVER" "$fb" "$fnsid") || ! CA=$(ctrl_node_for "$TEST_DRIVER" "$fa"); then
    tap_fail "revalidate: $TEST_DRIVER bound $fa and $fb, each with a disk for namespace $fnsid"
else
    tap_ok "revalidate: namespace $fnsid is $DA through $fa and $DB through $fb"
    nvme id-ns "/dev/$DA" > /tmp/rv.idns 2>&1
    lbaf4k=$(sed -n 's/^lbaf *\([0-9]*\) *: *ms:0 *lbads:12 .*/\1/p' /tmp/rv.idns | head -n1)
    lbaf512=$(sed -n 's/^lbaf *\([0-9]*\) *: *ms:0 *lbads:9 .*/\1/p' /tmp/rv.idns | head -n1)
    lbs0=$(qattr "$DA" logical_block_size)
    bytes0=$(disk_bytes "$DA")
    if [ -z "$lbaf4k" ] || [ -z "$lbaf512" ]; then
        tap_skip "revalidate: a format behind the driver's back" "namespace $fnsid offers no 512 B and 4 KiB formats"
    else
        # change LBAF LBS: format through B, check A still has its old view (unless an event
        # told it), reset A, check A's disk has LBS and the same bytes, verify I/O through A
        # and read it back through B.
        change() {
            local lbaf=$1 lbs=$2 seen n=0
            nvme format "/dev/$DB" --lbaf="$lbaf" --force > /tmp/rv.fmt 2>&1
            tap_check "revalidate: nvme format $DB (through $fb) to LBA format $lbaf ($lbs B)" \
                grep -q 'Success formatting' /tmp/rv.fmt || diag_file /tmp/rv.fmt
            # The driver the format went through rescans at once (no ns-rescan needed).
            wait_for "d=\$(disk_for $TEST_DRIVER $fb $fnsid) && [ \"\$(qattr \$d logical_block_size)\" = $lbs ]" 10
            DB=$(disk_for "$TEST_DRIVER" "$fb" "$fnsid")
            tap_same "revalidate: $fb's disk, the format's path, has $lbs B logical blocks at once" \
                "$(qattr "$DB" logical_block_size 2>/dev/null)" "$lbs"
            DA=$(disk_for "$TEST_DRIVER" "$fa" "$fnsid")
            seen=$(qattr "$DA" logical_block_size 2>/dev/null)
            diag "revalidate: before the reset $DA shows ${seen:-no disk} B blocks (an event may already have told it)"
            echo 1 2> /tmp/rv.err > "$(reset_attr "$fa" "$CA")"
            tap_check "revalidate: reset of $fa through sysfs reset_controller" test $? = 0 || diag_file /tmp/rv.err
            # The disk may be replaced (a new block size): wait for one with the new size.
            wait_for "d=\$(disk_for $TEST_DRIVER $fa $fnsid) && [ \"\$(qattr \$d logical_block_size)\" = $lbs ]" 20
            DA=$(disk_for "$TEST_DRIVER" "$fa" "$fnsid")
            tap_same "revalidate: after the reset $fa's disk for namespace $fnsid has $lbs B logical blocks" \
                "$(qattr "$DA" logical_block_size 2>/dev/null)" "$lbs"
            tap_same "revalidate: and the same capacity in bytes" "$(disk_bytes "$DA" 2>/dev/null)" "$bytes0"
            fio_verify_check rv "revalidate: fio verify with $lbs B blocks through $DA" \
                "$DA" --rw=randwrite --bs="$lbs" --size=8m --iodepth=8
            head -c 65536 /dev/urandom > /tmp/rv.bin
            dd if=/tmp/rv.bin of="/dev/$DA" bs=65536 seek=512 count=1 oflag=direct 2>/dev/null
            dd if="/dev/$DB" of=/tmp/rv.back bs=65536 skip=512 count=1 iflag=direct 2>/dev/null
            tap_check "revalidate: what $DA wrote reads back through $DB" cmp -s /tmp/rv.bin /tmp/rv.back
        }
        if [ "$lbs0" = 4096 ]; then first="$lbaf512 512" back="$lbaf4k 4096"; else first="$lbaf4k 4096" back="$lbaf512 512"; fi
        change $first
        change $back
        if [ "$TEST_DRIVER" = orion_nvme ]; then
            tap_check "revalidate: orion_nvme logged the disk replaced after the resets" \
                sh -c "dmesg | grep -q 'orion_nvme: $CA: after reset: 1 disks added, 1 removed'" ||
                dmesg | grep orion_nvme | tail -n 20 | diag_file
        fi
    fi
fi
detach_all
tap_check "revalidate: no kernel warnings" dmesg_clean || diag_file /tmp/bad.txt
