# Malformed passthrough ioctls (selftests/ioctl/nvme_ioctl_abuse.c, kselftest harness) against
# every controller node, namespace node and generic node of the C driver and of the driver
# under test: bad
# lengths, unmapped pointers, foreign NSIDs, reserved fields, absurd timeouts, unknown ioctls,
# vendor-specific opcodes, the same as nobody; each case must return what the C driver returns,
# except where orion_nvme differs on purpose (marked DELIBERATE in the C source).
# Then the node must still serve an Identify Controller, and the kernel log must stay clean.
ABUSE=/usr/bin/nvme_ioctl_abuse
dmesg -c > /dev/null
cnvme_facts || tap_fail "abuse: the C driver's view of every namespace (the reference)"

# abuse_node DRIVER NODE SHOWTABLE: one TAP line for the harness run on /dev/NODE (mode 0666
# meanwhile, for the unprivileged cases); SHOWTABLE=1 prints every measured case.
abuse_node() {
    local drv=$1 node=/dev/$2 mode rc out=/tmp/abuse-$1-$2.txt
    mode=$(stat -c %a "$node")
    chmod 0666 "$node"
    NVME_NODE=$node NVME_DRIVER=$drv timeout 600 "$ABUSE" > "$out" 2>&1
    rc=$?
    chmod "$mode" "$node"
    [ "$3" = 1 ] && grep '^# case ' "$out" | sed "s/^# case /$drv /" | diag_file
    case $rc in
        0) tap_ok "abuse: $drv $node: $(grep -c '^# case ' "$out") malformed ioctl cases as the C driver, then Identify works" ;;
        4) tap_skip "abuse: $drv $node" "$(grep -m1 'SKIP' "$out")" ;;
        *) tap_fail "abuse: $drv $node (harness exit $rc)"
           grep -E '^not ok|FAIL|: got |Expected|Test terminated|[Tt]imed out' "$out" | head -n 40 | diag_file ;;
    esac
}

# nobody must be able to reach /dev (the initramfs root may be mode 0700); put back at the end.
rootmode=$(stat -c %a /) devmode=$(stat -c %a /dev)
chmod go+x / /dev
if [ ! -x "$ABUSE" ]; then
    tap_skip "abuse: malformed ioctls" "$ABUSE is not in the initramfs"
else
    drivers="nvme"
    [ "$TEST_DRIVER" != nvme ] && drivers="nvme $TEST_DRIVER"
    for drv in $drivers; do
        attach_all "$drv"
        tap_check "abuse: $drv bound every controller and made its disks" test $? = 0
        shown_ctrl=0 shown_ns=0 shown_ng=0
        for bdf in $(nvme_pci_devs); do
            # The C driver's table once per node type and profile, for the record.
            show=0; [ "$drv" = nvme ] && [ "$shown_ctrl" = 0 ] && show=1 && shown_ctrl=1
            if c=$(ctrl_node_for "$drv" "$bdf"); then
                abuse_node "$drv" "$c" "$show"
            else
                tap_skip "abuse: $drv $bdf controller node" "$drv has no controller node for $bdf"
            fi
            nodes=$(ns_nodes_for "$drv" "$bdf")
            [ -n "$nodes" ] || tap_skip "abuse: $drv $bdf namespace nodes" "$drv has no namespace node for $bdf"
            for nd in $nodes; do
                show=0; [ "$drv" = nvme ] && [ "$shown_ns" = 0 ] && show=1 && shown_ns=1
                abuse_node "$drv" "${nd#*:}" "$show"
                # The namespace's generic node takes the same ioctls (as a whole namespace).
                if g=$(generic_node_for "$drv" "$bdf" "${nd%%:*}"); then
                    show=0; [ "$drv" = nvme ] && [ "$shown_ng" = 0 ] && show=1 && shown_ng=1
                    abuse_node "$drv" "$g" "$show"
                else
                    tap_fail "abuse: $drv ${nd#*:} has a generic node"
                fi
            done
        done
    done
    detach_all
fi
chmod "$rootmode" /; chmod "$devmode" /dev
tap_check "abuse: no kernel warnings (BUG, Oops, WARNING, KASAN, ...)" dmesg_clean || diag_file /tmp/bad.txt
