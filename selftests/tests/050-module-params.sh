# Absurd module parameters are refused at load with a message naming the setting; a sane
# one takes effect.
override_all orion_nvme
for bad in 0 65 4294967295; do
    dmesg -c > /dev/null
    if load_orion queue_count=$bad 2>/dev/null; then
        tap_fail "params: queue_count=$bad refused at insmod"
        unload_orion
    else
        tap_check "params: queue_count=$bad refused at insmod, with the reason in dmesg" \
            sh -c "dmesg | grep -q 'orion_nvme: module parameter queue_count = $bad is out of range (1..=64)'"
    fi
done
tap_check "params: queue_count=lots (not a number) refused" sh -c '! insmod $MODDIR/orion_nvme.ko queue_count=lots 2>/dev/null'
tap_check "params: nothing left loaded after refusals" sh -c '! grep -q "^orion_nvme " /proc/modules'
dmesg -c > /dev/null
if load_orion queue_count=1; then
    d=$(nvme_pci_devs | head -n1)
    tap_check "params: queue_count=1 asks the controller for one I/O queue" \
        sh -c "dmesg | grep -q '$d: orion_nvme: 1 I/O queues granted (1 asked)'"
    unload_orion
else
    tap_fail "params: queue_count=1 asks the controller for one I/O queue"
fi
tap_check "params: no kernel warnings" dmesg_clean || diag_file /tmp/bad.txt
override_all none
