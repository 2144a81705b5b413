# orion_nvme loads and binds every NVMe controller in the VM (chosen via driver_override).
devs=$(nvme_pci_devs)
ndev=$(echo $devs | wc -w)
diag "NVMe controllers: "$devs
if [ "$ndev" -eq 0 ]; then
    tap_fail "load-bind: the VM has NVMe controllers"
else
    dmesg -c >/dev/null
    override_all orion_nvme
    tap_check "load-bind: insmod orion_nvme.ko" load_orion
    for d in $devs; do
        tap_check "load-bind: $d bound to orion_nvme" test "$(driver_of "$d")" = orion_nvme
        tap_check "load-bind: $d register decode logged" \
            sh -c "dmesg | grep -q '$d: orion_nvme: bound .*NVMe [0-9]*\.[0-9]*\.[0-9]* cap 0x'"
        tap_check "load-bind: $d PCI device enabled" test "$(cat /sys/bus/pci/devices/$d/enable)" = 1
    done
    tap_check "load-bind: rmmod orion_nvme" unload_orion
    for d in $devs; do
        tap_check "load-bind: $d unbound and disabled after rmmod" \
            test "$(driver_of "$d"),$(cat /sys/bus/pci/devices/$d/enable)" = "none,0"
    done
    tap_check "load-bind: no kernel warnings" dmesg_clean || diag_file /tmp/bad.txt
fi
