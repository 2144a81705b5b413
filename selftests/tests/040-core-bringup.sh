# The portable core brings every controller up (enable, Identify, Number of Queues, namespace
# discovery) and shuts it down on unbind; what it found matches nvme-cli under the C driver,
# which can take the controller over afterwards.

_cli() { sed -n "s/^$1 *: *//p" "$2" | head -n1 | sed 's/ *$//'; }

for d in $(nvme_pci_devs); do
    override_all none
    unload_cnvme
    unload_orion 2>/dev/null
    dmesg -c > /dev/null
    bind "$d" orion_nvme 2>/dev/null || { load_orion; bind "$d" orion_nvme; }
    dmesg > /tmp/orion-up.txt
    ready=$(grep "$d: orion_nvme: ready:" /tmp/orion-up.txt | tail -n1)
    tap_check "core: $d brought up by the core (ready logged)" test -n "$ready"
    granted=$(sed -n "s/.*$d: orion_nvme: \([0-9]*\) I\/O queues granted.*/\1/p" /tmp/orion-up.txt)
    tap_check "core: $d I/O queues granted ($granted)" test -n "$granted"
    grep "$d: orion_nvme: namespace " /tmp/orion-up.txt | sed -n 's/.*namespace \([0-9]*\): \([0-9]*\) blocks of \([0-9]*\) bytes/\1 \2 \3/p' > /tmp/orion-ns.txt
    diag "$d orion: $(echo "$ready" | sed 's/.*ready: //')"
    unbind "$d"
    tap_check "core: $d orderly shutdown on unbind" sh -c "dmesg | grep -q '$d: orion_nvme: shutdown complete'"

    if ! ctrl=$(bind_cnvme "$d") || ! nvme id-ctrl "/dev/$ctrl" -o normal > /tmp/idctrl.txt; then
        tap_fail "core: $d the C driver takes the controller over after orion_nvme"
        continue
    fi
    tap_ok "core: $d the C driver takes the controller over after orion_nvme"
    o_mn=$(echo "$ready" | sed -n "s/.*model '\([^']*\)'.*/\1/p")
    o_sn=$(echo "$ready" | sed -n "s/.*serial '\([^']*\)'.*/\1/p")
    o_fr=$(echo "$ready" | sed -n "s/.*firmware '\([^']*\)'.*/\1/p")
    o_nn=$(echo "$ready" | sed -n 's/.* nn \([0-9]*\).*/\1/p')
    tap_same "core: $d model matches nvme id-ctrl" "$o_mn" "$(_cli mn /tmp/idctrl.txt)"
    tap_same "core: $d serial matches nvme id-ctrl" "$o_sn" "$(_cli sn /tmp/idctrl.txt)"
    tap_same "core: $d firmware matches nvme id-ctrl" "$o_fr" "$(_cli fr /tmp/idctrl.txt)"
    tap_same "core: $d NN matches nvme id-ctrl" "$o_nn" "$(_cli nn /tmp/idctrl.txt)"
    # Both drivers use one I/O queue per CPU, bounded by what the controller grants and by
    # the interrupt vectors they get (one with INTx); the C driver's queue_count includes the
    # admin queue.
    used=$(sed -n "s/.*$d: orion_nvme: [0-9]* [A-Za-z-]* vectors, \([0-9]*\) I\/O queues.*/\1/p" /tmp/orion-up.txt)
    tap_same "core: $d I/O queues in use match the C driver's ($granted granted)" \
        "$((used + 1))" "$(cat /sys/class/nvme/$ctrl/queue_count)"
    # Namespaces: the C driver's view, one "nsid blocks block-size" line each.
    : > /tmp/c-ns.txt
    for ns in $(nvme list-ns "/dev/$ctrl" 2>/dev/null | sed -n 's/.*:0x\([0-9a-f]*\)/\1/p'); do
        nsid=$((0x$ns))
        nvme id-ns "/dev/$ctrl" -n "$nsid" -o normal > /tmp/idns.txt
        nsze=$(( $(_cli nsze /tmp/idns.txt) ))
        lbads=$(sed -n 's/.*lbads:\([0-9]*\).*(in use).*/\1/p' /tmp/idns.txt)
        echo "$nsid $nsze $((1 << lbads))" >> /tmp/c-ns.txt
    done
    diag "$d namespaces (orion):" $(tr '\n' ';' < /tmp/orion-ns.txt)
    diag "$d namespaces (C):" $(tr '\n' ';' < /tmp/c-ns.txt)
    tap_same "core: $d namespaces and geometry match nvme list-ns/id-ns" \
        "$(cat /tmp/orion-ns.txt)" "$(cat /tmp/c-ns.txt)"
    unbind "$d"
done
override_all none
unload_cnvme
unload_orion 2>/dev/null
true
