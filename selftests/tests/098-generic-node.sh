# Generic nodes (issue #5): every disk of orion_nvme gets a character device /dev/ong<C>n<NSID>
# (the role of the C driver's /dev/ngXnY, under a name the C driver never uses) that takes the
# namespace ioctls and io_uring passthrough. Checked here: names and sysfs placement; Identify
# through it as through the disk; fio's io_uring_cmd engine writing and crc32c-verifying data
# on it, the same blocks verified again through the block device, and read back as nobody;
# selftests/ioctl/nvme_uring.c (io_uring I/O and admin commands, IO64_CMD_VEC, malformed
# commands, unprivileged callers) on every generic node of both drivers, each case with the C
# driver's measured answer (or orion's deliberate one); files held open across an unbind;
# rmmod refused while a node is open; nodes gone with their controller; dmesg clean.
URING=/usr/bin/nvme_uring
dmesg -c > /dev/null
cnvme_facts || tap_fail "generic: the C driver's view of every namespace (the reference)"

# uring_node DRIVER BDF NSID [HARNESS ARGS]: one TAP line for nvme_uring on that namespace's
# generic node (the generic and controller nodes mode 0666 meanwhile, for the nobody cases).
uring_node() {
    local drv=$1 bdf=$2 nsid=$3 g c d rc out gm cm
    shift 3
    g=$(generic_node_for "$drv" "$bdf" "$nsid") || { tap_fail "generic: $drv $bdf ns $nsid has a generic node"; return; }
    c=$(ctrl_node_for "$drv" "$bdf") || { tap_fail "generic: $drv $bdf has a controller node"; return; }
    d=$(disk_for "$drv" "$bdf" "$nsid")
    out=/tmp/uring-$drv-$g.txt
    # The admin case compares its Identify Controller with what nvme-cli reads.
    nvme id-ctrl "/dev/$c" -b > "/tmp/idctrl-$c.bin" 2> /dev/null
    gm=$(stat -c %a "/dev/$g") cm=$(stat -c %a "/dev/$c")
    chmod 0666 "/dev/$g" "/dev/$c"
    NVME_NODE=/dev/$g NVME_CTRL=/dev/$c NVME_BLOCK=/dev/$d NVME_DRIVER=$drv NVME_UNBIND=$unbind \
        NVME_IDCTRL=/tmp/idctrl-$c.bin \
        timeout 600 "$URING" "$@" > "$out" 2>&1
    rc=$?
    # (After an unbind test the nodes are gone.)
    chmod "$gm" "/dev/$g" 2> /dev/null; chmod "$cm" "/dev/$c" 2> /dev/null
    [ "$drv" = nvme ] && [ "$shown" = 0 ] && shown=1 && grep '^# case ' "$out" | sed "s/^# case /$drv /" | diag_file
    grep '^# iopoll: ' "$out" | sed "s/^# /$drv \/dev\/$g /" | diag_file
    case $rc in
        0) tap_ok "generic: $drv /dev/$g: $(grep -c '^# case ' "$out") io_uring/vectored cases as the C driver ($*)" ;;
        4) tap_skip "generic: $drv /dev/$g" "$(grep -m1 'SKIP' "$out")" ;;
        *) tap_fail "generic: $drv /dev/$g ($*) (harness exit $rc)"
           grep -E '^not ok|FAIL|: got |Expected|Test terminated|[Tt]imed out' "$out" | head -n 40 | diag_file ;;
    esac
}

# fio_gen NAME FILE ENGINE RW [KEY=VALUE...]: a verify job on FILE (the first 32 MiB, random
# block sizes from 4 KiB to 128 KiB or the disk's transfer limit ($bsmax KiB), fixed seed so a
# verify-only run regenerates the same pattern).
fio_gen() {
    local name=$1 file=$2 engine=$3 rw=$4 kv
    shift 4
    {
        printf '[global]\nfilename=%s\nioengine=%s\nrw=%s\nsize=32m\nbsrange=4k-%sk\n' "$file" "$engine" "$rw" "$bsmax"
        printf 'iodepth=16\nverify=crc32c\nverify_fatal=1\nrandseed=4242\nrandrepeat=1\n'
        [ "$engine" = io_uring_cmd ] && printf 'cmd_type=nvme\n'
        [ "$engine" = libaio ] && printf 'direct=1\n'
        for kv in "$@"; do echo "$kv"; done
        echo "[$name]"
    } > "/tmp/$name.fio"
    fio_json "$name" "/tmp/$name.fio"
}

if [ ! -x "$URING" ]; then
    tap_skip "generic: io_uring passthrough" "$URING is not in the initramfs"
fi

attach_all orion_nvme
tap_check "generic: orion_nvme bound every controller and made its disks" test $? = 0
# No node of orion_nvme takes a name of the C driver's (which is not loaded here).
bad=$(ls /dev | grep -E '^(nvme[0-9]|ng[0-9])' | tr '\n' ' ')
tap_same "generic: no /dev/nvme* or /dev/ng* names while only orion_nvme is loaded" "${bad:-none}" none
for bdf in $(nvme_pci_devs); do
    for nd in $(ns_nodes_for orion_nvme "$bdf"); do
        nsid=${nd%%:*} disk=${nd#*:}
        g=ong${disk#onvme}
        if [ ! -c "/dev/$g" ]; then
            tap_fail "generic: $disk has a generic character device /dev/$g"
            continue
        fi
        tap_ok "generic: $disk has a generic character device /dev/$g"
        bsmax=$(qattr "$disk" max_hw_sectors_kb); [ "$bsmax" -gt 128 ] && bsmax=128
        tap_same "generic: /sys/class/misc/$g/device is the controller's PCI device" \
            "$(basename "$(readlink -f "/sys/class/misc/$g/device")")" "$bdf"
        tap_same "generic: /dev/$g is mode 600 (as the C driver's ng nodes)" "$(stat -c %a "/dev/$g")" 600
        got=$(nvme get-ns-id "/dev/$g" 2>&1 | sed -n 's/.*namespace-id: *\([0-9]*\).*/\1/p')
        tap_same "generic: nvme get-ns-id /dev/$g (NVME_IOCTL_ID)" "$got" "$nsid"
        nvme id-ns "/dev/$disk" > /tmp/idns-disk.txt 2>&1
        nvme id-ns "/dev/$g" > /tmp/idns-gen.txt 2>&1
        tap_check "generic: nvme id-ns /dev/$g is what it is through /dev/$disk" \
            cmp -s /tmp/idns-disk.txt /tmp/idns-gen.txt || diff /tmp/idns-disk.txt /tmp/idns-gen.txt | head | diag_file

        # fio's io_uring_cmd engine on the generic node: random writes, crc32c verified.
        fio_gen "gen-w-$g" "/dev/$g" io_uring_cmd randwrite do_verify=1
        rc=$?
        if [ "$rc" = 0 ] && [ "$FIO_ERR" = 0 ] && [ "$FIO_WBYTES" -ge 33554432 ] && [ "$FIO_RBYTES" -ge 33554432 ]; then
            tap_ok "generic: fio io_uring_cmd on /dev/$g wrote $FIO_WBYTES bytes and crc32c-verified $FIO_RBYTES"
        else
            tap_fail "generic: fio io_uring_cmd on /dev/$g (rc $rc, error $FIO_ERR, $FIO_WBYTES written, $FIO_RBYTES verified)"
            fio_diag "gen-w-$g"
        fi
        # The same blocks through the block device: fio regenerates the pattern and verifies.
        fio_gen "gen-v-$g" "/dev/$disk" libaio randwrite verify_only=1
        rc=$?
        if [ "$rc" = 0 ] && [ "$FIO_ERR" = 0 ] && [ "$FIO_RBYTES" -ge 33554432 ]; then
            tap_ok "generic: the blocks written through /dev/$g verify through /dev/$disk ($FIO_RBYTES bytes)"
        else
            tap_fail "generic: the blocks written through /dev/$g verify through /dev/$disk (rc $rc, error $FIO_ERR, $FIO_RBYTES read)"
            fio_diag "gen-v-$g"
        fi
        # As nobody (the node mode 0666 meanwhile): io_uring reads of the same blocks verify.
        # (fio opens the node for writing even when it only reads; refused writes on a node
        # opened read-only are nvme_uring's unprivileged cases below.)
        mode=$(stat -c %a "/dev/$g"); rootmode=$(stat -c %a /) devmode=$(stat -c %a /dev)
        chmod go+x / /dev; chmod 0666 "/dev/$g"
        fio_gen "gen-n-$g" "/dev/$g" io_uring_cmd randwrite verify_only=1
        su -s /bin/sh nobody -c "fio --output-format=json /tmp/gen-n-$g.fio" \
            > /tmp/gen-n-$g.json 2> /tmp/gen-n-$g.err
        rc=$?
        chmod "$mode" "/dev/$g"; chmod "$rootmode" /; chmod "$devmode" /dev
        rb=$(awk '/^ *"read" : \{/ { r = 1 } r && /"io_bytes" :/ { v = $3; gsub(/[^0-9]/, "", v); print v; exit }' /tmp/gen-n-$g.json 2>/dev/null)
        if [ "$rc" = 0 ] && [ "${rb:-0}" -ge 33554432 ]; then
            tap_ok "generic: as nobody, fio io_uring_cmd reads and verifies /dev/$g ($rb bytes)"
        else
            tap_fail "generic: as nobody, fio io_uring_cmd reads and verifies /dev/$g (rc $rc, ${rb:-0} bytes)"
            fio_diag "gen-n-$g"
        fi
    done
done

# While a generic node is open, the module stays (its file operations are ours).
g=$(ls /dev | grep '^ong[0-9]*n[0-9]*$' | head -n1)
if [ -n "$g" ]; then
    exec 3< "/dev/$g"
    if rmmod orion_nvme 2> /tmp/rmmod.err; then
        tap_fail "generic: rmmod orion_nvme is refused while /dev/$g is open"
        exec 3<&-
        attach_all orion_nvme > /dev/null
    else
        tap_ok "generic: rmmod orion_nvme is refused while /dev/$g is open ($(head -n1 /tmp/rmmod.err))"
        exec 3<&-
    fi
fi

# The harness on every generic node, the C driver's first (its table printed once). nobody
# must be able to reach /dev (the initramfs root may be mode 0700); put back at the end.
shown=0
rootmode=$(stat -c %a /) devmode=$(stat -c %a /dev)
chmod go+x / /dev
for drv in nvme orion_nvme; do
    attach_all "$drv"
    tap_check "generic: $drv bound every controller and made its disks" test $? = 0
    for bdf in $(nvme_pci_devs); do
        for nsid in $(fact "$bdf" nsids); do
            unbind=
            disk_for "$drv" "$bdf" "$nsid" > /dev/null && uring_node "$drv" "$bdf" "$nsid" -T held_across_unbind
        done
    done
    # Files held open across the controller's unbind: commands fail cleanly (first
    # namespace of the first controller; the controller is rebound after).
    bdf=$(nvme_pci_devs | head -n1)
    nsid=$(fact "$bdf" nsids | head -n1)
    if disk_for "$drv" "$bdf" "$nsid" > /dev/null; then
        unbind=$bdf
        uring_node "$drv" "$bdf" "$nsid" -t held_across_unbind
        unbind=
    fi
done
detach_all
chmod "$rootmode" /; chmod "$devmode" /dev

# Nodes go with their controller.
attach_all orion_nvme > /dev/null
n=$(ls /dev | grep -c '^ong[0-9]*n[0-9]*$')
tap_same "generic: one generic node per orion disk" "$n" "$(orion_disks | wc -l)"
bdf=$(nvme_pci_devs | head -n1)
unbind "$bdf"
left=$(ls /dev | grep '^ong[0-9]*n[0-9]*$' | while read -r g; do
    [ "$(basename "$(readlink -f "/sys/class/misc/$g/device")")" = "$bdf" ] && echo "$g"; done)
tap_same "generic: no generic node of $bdf after unbinding it" "${left:-none}" none
detach_all
tap_check "generic: no kernel warnings (BUG, Oops, WARNING, KASAN, ...)" dmesg_clean || diag_file /tmp/bad.txt
