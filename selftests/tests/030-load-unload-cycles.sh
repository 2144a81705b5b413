# 20 load/unload cycles with every controller bound each time leave no warning in dmesg.
devs=$(nvme_pci_devs)
override_all orion_nvme
dmesg -c >/dev/null
KMEMLEAK=/sys/kernel/debug/kmemleak
[ -w "$KMEMLEAK" ] && echo clear > "$KMEMLEAK"
cycles=0
bound_all=1
for i in $(seq 1 20); do
    load_orion || break
    for d in $devs; do [ "$(driver_of "$d")" = orion_nvme ] || bound_all=0; done
    unload_orion || break
    cycles=$i
done
tap_check "cycles: 20 insmod/rmmod cycles completed ($cycles)" test "$cycles" = 20
tap_check "cycles: every controller bound in every cycle" test "$bound_all" = 1
n_bound=$(dmesg | grep -c 'orion_nvme: bound')
n_unbound=$(dmesg | grep -c 'orion_nvme: unbinding')
want=$(( 20 * $(echo $devs | wc -w) ))
tap_check "cycles: $n_bound binds and $n_unbound unbinds logged (want $want each)" \
    test "$n_bound,$n_unbound" = "$want,$want"
tap_check "cycles: no kernel warnings after 20 cycles" dmesg_clean || diag_file /tmp/bad.txt
if [ -w "$KMEMLEAK" ]; then
    # Two scans: kmemleak reports an object only once it has looked unreferenced twice.
    echo scan > "$KMEMLEAK"; sleep 1; echo scan > "$KMEMLEAK"
    cat "$KMEMLEAK" > /tmp/leaks.txt
    tap_check "cycles: kmemleak finds no leak after 20 cycles" test ! -s /tmp/leaks.txt || head -n 40 /tmp/leaks.txt | diag_file
else
    tap_skip "cycles: kmemleak finds no leak after 20 cycles" "kernel without CONFIG_DEBUG_KMEMLEAK (make check DEBUG=1 runs it)"
fi
override_all none
