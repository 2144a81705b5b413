# Management nodes and passthrough (issue #5): every controller bound to orion_nvme gets a
# controller node /dev/onvme<C>; nvme-cli reaches the controller through it and through the
# disks with the Linux NVMe ioctls; data moves correctly in both directions (one page, two
# pages, a PRP list); vendor-specific and queue-management opcodes are refused; the node goes
# away with the controller.

override_all none
unload_cnvme
unload_orion 2>/dev/null
dmesg -c > /dev/null
load_orion
for d in $(nvme_pci_devs); do bind "$d" orion_nvme; done

for disk in $(orion_disks); do
    c=${disk%n*}            # onvme<C>
    nsid=${disk##*n}
    bdf=$(disk_bdf "$disk")
    if [ ! -c "/dev/$c" ]; then
        tap_fail "mgmt: $bdf has a controller node /dev/$c"
        continue
    fi
    tap_ok "mgmt: $bdf has a controller node /dev/$c"
    # The serial the probe logged, against Identify Controller through the node.
    sn=$(dmesg | sed -n "s/.*$bdf: orion_nvme: ready: model '.*' serial '\([^']*\)'.*/\1/p" | tail -n1)
    got=$(nvme id-ctrl "/dev/$c" | sed -n 's/^sn *: *\(.*[^ ]\) *$/\1/p')
    tap_same "mgmt: nvme id-ctrl /dev/$c serial" "$got" "$sn"
    got=$(nvme get-ns-id "/dev/$disk" | sed -n 's/.*namespace-id: *\([0-9]*\).*/\1/p')
    tap_same "mgmt: nvme get-ns-id /dev/$disk (NVME_IOCTL_ID)" "$got" "$nsid"
    # Identify Namespace through the disk: NSZE in blocks against the disk's size.
    bs=$(cat "/sys/block/$disk/queue/logical_block_size")
    nsze=$(nvme id-ns "/dev/$disk" | sed -n 's/^nsze *: *\(0x[0-9a-f]*\).*/\1/p')
    tap_same "mgmt: nvme id-ns /dev/$disk nsze" "$((nsze))" "$(( $(cat /sys/block/$disk/size) * 512 / bs ))"
    # Admin passthrough with a one-page read, byte for byte what id-ctrl shows raw.
    nvme id-ctrl "/dev/$c" -b > /tmp/idc.bin 2>/dev/null
    nvme admin-passthru "/dev/$c" --opcode=0x06 --cdw10=1 --data-len=4096 -r -b > /tmp/pt.bin 2>/dev/null
    tap_check "mgmt: admin-passthru Identify through /dev/$c equals id-ctrl" cmp -s /tmp/idc.bin /tmp/pt.bin
    # I/O passthrough: 16 KiB (a PRP list) or the controller's limit if lower, written at LBA 0,
    # reads back through the block layer; then an 8 KiB (two-page) read at an offset.
    max=$(( $(cat "/sys/block/$disk/queue/max_hw_sectors_kb") * 1024 ))
    len=16384
    if [ "$max" -lt "$len" ]; then
        # Beyond MDTS: refused before the device sees it.
        nvme io-passthru "/dev/$disk" --opcode=0x02 --namespace-id="$nsid" --data-len=$len -r \
            --cdw12=$((len / bs - 1)) > /tmp/pt.out 2>&1
        tap_check "mgmt: io-passthru of $len bytes beyond the $max-byte limit of /dev/$disk is EINVAL" \
            grep -q 'Invalid argument' /tmp/pt.out || diag_file /tmp/pt.out
        len=$max
    fi
    n=$((len / bs))
    dd if=/dev/urandom of=/tmp/w.bin bs=16384 count=1 2>/dev/null
    dd if=/tmp/w.bin of=/tmp/w1.bin bs=$len count=1 2>/dev/null
    nvme io-passthru "/dev/$disk" --opcode=0x01 --namespace-id="$nsid" --data-len=$len -w \
        --cdw10=0 --cdw11=0 --cdw12=$((n - 1)) -i /tmp/w1.bin > /tmp/pt.out 2>&1
    dd if="/dev/$disk" of=/tmp/r.bin bs=$len count=1 iflag=direct 2>/dev/null
    tap_check "mgmt: io-passthru write of $len bytes to /dev/$disk reads back through the block layer" \
        cmp -s /tmp/w1.bin /tmp/r.bin || diag_file /tmp/pt.out
    dd if=/tmp/w.bin of=/dev/$disk bs=16384 count=1 oflag=direct 2>/dev/null
    m=$((8192 / bs))
    nvme io-passthru "/dev/$disk" --opcode=0x02 --namespace-id="$nsid" --data-len=8192 -r -b \
        --cdw10=$m --cdw11=0 --cdw12=$((m - 1)) > /tmp/r2.bin 2>/dev/null
    dd if=/tmp/w.bin of=/tmp/w2.bin bs=8192 skip=1 count=1 2>/dev/null
    tap_check "mgmt: io-passthru read of 8 KiB at an offset of /dev/$disk" cmp -s /tmp/w2.bin /tmp/r2.bin
    # An I/O command naming another namespace through this disk is refused (EINVAL).
    if nvme io-passthru "/dev/$disk" --opcode=0x02 --namespace-id=$((nsid + 1)) --data-len="$bs" -r \
        --cdw12=0 > /tmp/pt.out 2>&1; then
        tap_fail "mgmt: io-passthru naming another namespace through /dev/$disk is refused"
    else
        tap_check "mgmt: io-passthru naming another namespace through /dev/$disk is refused" \
            grep -q 'Invalid argument' /tmp/pt.out || diag_file /tmp/pt.out
    fi
done

# sysfs and `nvme list` against the C driver on the same controller: the controller's
# attributes, each namespace's, and the list rows (through orion-nvme-cli, which makes orion's
# controllers visible to libnvme; see scripts/orion-nvme-cli), device node names aside.
bdf=$(nvme_pci_devs | head -n1)
cn=$(bind_cnvme "$bdf")
if [ -z "$cn" ]; then
    tap_fail "mgmt: C driver binds $bdf for the sysfs comparison"
else
    for a in model serial firmware_rev cntlid transport address subsysnqn numa_node state queue_count sqsize; do
        cat "/sys/class/nvme/$cn/$a" > "/tmp/c-$a" 2>/dev/null
    done
    for b in $(cnvme_disks); do
        [ "$(disk_bdf "$b")" = "$bdf" ] || continue
        nsid=$(cat "/sys/block/$b/nsid")
        for a in nsid wwid uuid nguid eui csi; do
            cat "/sys/block/$b/$a" > "/tmp/c-ns$nsid-$a" 2>/dev/null || echo absent > "/tmp/c-ns$nsid-$a"
        done
    done
    # The Generic column: nvme-cli shows /dev/ngXnY when that node exists and a bare ngXnY
    # (which stays as it is here, so the rows differ) when it does not.
    norm() { sed 's#/dev/nvme[0-9]*n[0-9]*#NODE#; s#/dev/ng[0-9]*n[0-9]*#GENERIC#' | tr -s ' ' | sort; }
    # Only this controller's rows (in dual, the other controller is orion's too).
    sn=$(tr -d ' ' < /tmp/c-serial)
    nvme list | tail -n +3 | grep " $sn " | norm > /tmp/c-list
    bind "$bdf" orion_nvme
    c=$(ctrl_node_for orion_nvme "$bdf")
    for a in model serial firmware_rev cntlid transport address subsysnqn numa_node state queue_count sqsize; do
        tap_same "mgmt: sysfs $a of /dev/$c is the C driver's" "$(cat "/sys/class/misc/$c/$a")" "$(cat "/tmp/c-$a")"
    done
    # The node is a child of its PCI device, as the C driver's /dev/nvmeX: a tool starting
    # from the PCI device finds it and its attributes there.
    tap_same "mgmt: /sys/class/misc/$c/device is the controller's PCI device" \
        "$(basename "$(readlink -f "/sys/class/misc/$c/device")")" "$bdf"
    tap_same "mgmt: $bdf/misc/$c is the node, with its attributes" \
        "$(cat "/sys/bus/pci/devices/$bdf/misc/$c/state" 2>/dev/null)" live
    tap_check "mgmt: $bdf/misc/$c/reset_controller is there (write-only)" \
        test -f "/sys/bus/pci/devices/$bdf/misc/$c/reset_controller"
    for b in /sys/block/${c}n*; do
        [ -e "$b" ] || continue
        nsid=${b##*n}
        for a in nsid wwid uuid nguid eui csi; do
            got=$(cat "$b/$a" 2>/dev/null || echo absent)
            tap_same "mgmt: sysfs $a of ${b##*/} is the C driver's" "$got" "$(cat "/tmp/c-ns$nsid-$a")"
        done
    done
    orion-nvme-cli list > /tmp/o-list.raw 2>&1
    tail -n +3 /tmp/o-list.raw | grep " $sn " | norm > /tmp/o-list
    if [ -s /tmp/o-list ] && cmp -s /tmp/c-list /tmp/o-list; then
        tap_ok "mgmt: orion-nvme-cli list shows $c's namespaces as nvme list does under the C driver"
    else
        tap_fail "mgmt: orion-nvme-cli list shows $c's namespaces as nvme list does under the C driver"
        diag "C driver:"; diag_file /tmp/c-list; diag "orion:"; diag_file /tmp/o-list
        orion-nvme-cli list 2>&1 | diag_file
    fi
    # Each namespace's Generic column names its generic node, which nvme-cli reaches there.
    k=$((1000 + ${c#onvme}))
    for b in /sys/block/${c}n*; do
        [ -e "$b" ] || continue
        nsid=${b##*n}
        tap_check "mgmt: orion-nvme-cli list shows /dev/ng${k}n$nsid in the Generic column" \
            grep -q " /dev/ng${k}n$nsid " /tmp/o-list.raw || diag_file /tmp/o-list.raw
        got=$(orion-nvme-cli get-ns-id "/dev/ng${k}n$nsid" 2>&1 | sed -n 's/.*namespace-id: *\([0-9]*\).*/\1/p')
        tap_same "mgmt: orion-nvme-cli get-ns-id /dev/ng${k}n$nsid reaches /dev/ong${c#onvme}n$nsid" "$got" "$nsid"
    done
    # The command ran in a private mount namespace: nothing is left behind.
    tap_check "mgmt: orion-nvme-cli leaves /sys/class and /dev as they were" \
        test ! -e /sys/class/nvme-subsystem/nvme-subsys1000 -a ! -e /dev/nvme1000 -a ! -e "/dev/ng${k}n$nsid"
    unload_cnvme
fi

# Namespace attachment (subsys profile: NSID 7 is allocated but detached): attach-ns through
# the controller node; the controller's Namespace Attribute Changed event makes orion rescan,
# so the disk appears by itself (an explicit ns-rescan must then change nothing); detach-ns
# removes it the same way.
bdf=$(nvme_pci_devs | head -n1)
c=$(ctrl_node_for orion_nvme "$bdf")
if [ -n "$c" ] && nvme list-ns "/dev/$c" -a 2>/dev/null | grep -q ':0x7$'; then
    cntlid=$(cat "/sys/class/misc/$c/cntlid")
    nvme attach-ns "/dev/$c" -n 7 -c "$cntlid" > /tmp/att.out 2>&1
    tap_check "mgmt: attach-ns 7 to controller $cntlid through /dev/$c" grep -q 'attach-ns: Success' /tmp/att.out \
        || diag_file /tmp/att.out
    tap_check "mgmt: namespace 7's disk appears without a rescan (asynchronous event)" \
        wait_for "test -b /dev/${c}n7" 10 || dmesg | tail -n 5 | diag_file
    tap_check "mgmt: and its generic node /dev/ong${c#onvme}n7" wait_for "test -c /dev/ong${c#onvme}n7" 5
    nvme ns-rescan "/dev/$c" > /tmp/att.out 2>&1
    tap_check "mgmt: after ns-rescan, namespace 7 still has its disk" test -b "/dev/${c}n7" || diag_file /tmp/att.out
    dd if=/dev/urandom of=/tmp/w.bin bs=4096 count=4 2>/dev/null
    dd if=/tmp/w.bin of="/dev/${c}n7" bs=4096 oflag=direct 2>/dev/null
    dd if="/dev/${c}n7" of=/tmp/r.bin bs=4096 count=4 iflag=direct 2>/dev/null
    tap_check "mgmt: the attached namespace's disk reads back what was written" cmp -s /tmp/w.bin /tmp/r.bin
    tap_same "mgmt: sysfs nsid of ${c}n7" "$(cat /sys/block/${c}n7/nsid 2>/dev/null)" 7
    nvme detach-ns "/dev/$c" -n 7 -c "$cntlid" > /tmp/att.out 2>&1
    tap_check "mgmt: detach-ns 7 from controller $cntlid" grep -q 'detach-ns: Success' /tmp/att.out \
        || diag_file /tmp/att.out
    tap_check "mgmt: namespace 7's disk goes without a rescan (asynchronous event)" \
        wait_for "test ! -e /dev/${c}n7" 10
    tap_check "mgmt: and its generic node" wait_for "test ! -e /dev/ong${c#onvme}n7" 5
    tap_check "mgmt: the other disks stayed" test -b "/dev/$(ls /sys/bus/pci/devices/$bdf/block | head -n1)"
else
    tap_skip "mgmt: attach-ns/detach-ns with rescan" "no detached namespace on $bdf (the subsys profile has one)"
fi

# Format NVM takes effect (subsys profile, NSID 5, 512-byte blocks): formatted to a 4 KiB
# LBA format through the disk, the rescan gives it a 4 KiB-block disk; then back to 512.
if [ -n "$c" ] && [ -b "/dev/${c}n5" ]; then
    lbaf4k=$(nvme id-ns "/dev/${c}n5" | sed -n 's/^lbaf *\([0-9]*\) *: *ms:0 *lbads:12 .*/\1/p' | head -n1)
    lbaf512=$(nvme id-ns "/dev/${c}n5" | sed -n 's/^lbaf *\([0-9]*\) *: *ms:0 *lbads:9 .*/\1/p' | head -n1)
    if [ -n "$lbaf4k" ] && [ -n "$lbaf512" ]; then
        nvme format "/dev/${c}n5" --lbaf="$lbaf4k" --force > /tmp/fmt.out 2>&1
        tap_check "mgmt: nvme format ${c}n5 to LBA format $lbaf4k (4 KiB)" grep -q 'Success formatting' /tmp/fmt.out \
            || diag_file /tmp/fmt.out
        nvme ns-rescan "/dev/$c" > /dev/null 2>&1
        wait_for "test \"\$(cat /sys/block/${c}n5/queue/logical_block_size 2>/dev/null)\" = 4096" 5
        tap_same "mgmt: after format and rescan, ${c}n5 has 4 KiB blocks" \
            "$(cat /sys/block/${c}n5/queue/logical_block_size 2>/dev/null)" 4096
        dd if=/dev/urandom of=/tmp/w.bin bs=4096 count=4 2>/dev/null
        dd if=/tmp/w.bin of="/dev/${c}n5" bs=4096 oflag=direct 2>/dev/null
        dd if="/dev/${c}n5" of=/tmp/r.bin bs=4096 count=4 iflag=direct 2>/dev/null
        tap_check "mgmt: the reformatted disk reads back what was written" cmp -s /tmp/w.bin /tmp/r.bin
        nvme format "/dev/${c}n5" --lbaf="$lbaf512" --force > /tmp/fmt.out 2>&1
        nvme ns-rescan "/dev/$c" > /dev/null 2>&1
        wait_for "test \"\$(cat /sys/block/${c}n5/queue/logical_block_size 2>/dev/null)\" = 512" 5
        tap_same "mgmt: formatted back, ${c}n5 has 512-byte blocks again" \
            "$(cat /sys/block/${c}n5/queue/logical_block_size 2>/dev/null)" 512
    else
        tap_skip "mgmt: Format NVM" "${c}n5 offers no 512-byte and 4 KiB formats without metadata"
    fi
else
    tap_skip "mgmt: Format NVM" "no namespace 5 (the subsys profile has one)"
fi

# A SMART critical warning (QEMU's smart_critical_warning property, set over QMP) reaches
# dmesg through the asynchronous event, decoded.
bdf=$(nvme_pci_devs | head -n1)
c=$(ctrl_node_for orion_nvme "$bdf")
reply=$(qmp '{"execute":"qom-set","arguments":{"path":"/machine/peripheral/nvme0","property":"smart_critical_warning","value":2}}')
if echo "$reply" | grep -q '"return"'; then
    tap_check "mgmt: SMART critical warning (temperature) reported in dmesg" \
        wait_for "dmesg | grep -q '$c: SMART/Health event .*critical warning 0x02 \[temperature\]'" 10 \
        || dmesg | tail -n 5 | diag_file
    qmp '{"execute":"qom-set","arguments":{"path":"/machine/peripheral/nvme0","property":"smart_critical_warning","value":0}}' > /dev/null
    got=$(nvme smart-log "/dev/$c" | sed -n 's/^critical_warning[[:space:]]*:[[:space:]]*\([0-9]*\).*/\1/p')
    tap_same "mgmt: smart-log shows the warning cleared again" "$got" 0
else
    tap_fail "mgmt: QMP qom-set smart_critical_warning"; diag "$reply"
fi

# Vendor-specific opcodes need listing; queue management is the driver's.
c=$(orion_disks | head -n1); c=${c%n*}
if [ -n "$c" ]; then
    nvme admin-passthru "/dev/$c" --opcode=0xc1 > /tmp/pt.out 2>&1
    tap_check "mgmt: unlisted vendor admin opcode 0xc1 is refused with EPERM" \
        grep -q 'Operation not permitted' /tmp/pt.out || diag_file /tmp/pt.out
    nvme admin-passthru "/dev/$c" --opcode=0x01 --cdw10=0x10001 > /tmp/pt.out 2>&1
    tap_check "mgmt: Create I/O SQ through passthrough is refused with EINVAL" \
        grep -q 'Invalid argument' /tmp/pt.out || diag_file /tmp/pt.out
fi
bdf=$(nvme_pci_devs | head -n1)
unbind "$bdf"
left=$(ls /dev | grep '^onvme[0-9]*$' | wc -l)
tap_same "mgmt: controller nodes after unbinding $bdf" "$left" "$(( $(nvme_pci_devs | wc -l) - 1 ))"
unload_orion
# Listed, the vendor opcode reaches the device (QEMU answers Invalid Command Opcode).
load_orion vendor_admin_opcodes=0xc1
bind "$bdf" orion_nvme
c=$(orion_disk_for "$bdf" "$(ls /sys/block | sed -n 's/^onvme[0-9]*n\([0-9]*\)$/\1/p' | head -n1)")
c=${c%n*}
nvme admin-passthru "/dev/$c" --opcode=0xc1 > /tmp/pt.out 2>&1
tap_check "mgmt: listed vendor admin opcode 0xc1 reaches the controller" \
    grep -qi 'INVALID_OPCODE\|Invalid Command Opcode' /tmp/pt.out || diag_file /tmp/pt.out
unload_orion
# An opcode that is not vendor specific in the list is an absurd parameter: the load fails.
if load_orion vendor_admin_opcodes=0x06 2>/dev/null; then
    tap_fail "mgmt: vendor_admin_opcodes=0x06 (Identify) is refused at load"
    unload_orion
else
    dmesg | grep -q 'vendor_admin_opcodes: opcode 0x06 is not vendor specific'
    tap_check "mgmt: vendor_admin_opcodes=0x06 (Identify) is refused at load, with the reason" test $? = 0
fi
tap_check "mgmt: no kernel warnings" dmesg_clean || diag_file /tmp/bad.txt
