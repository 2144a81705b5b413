#!/bin/sh
# `make run`: load orion_nvme, bind every NVMe controller, show what it decoded.
cd /selftests && . ./lib.sh
echo "== NVMe controllers (class 01:08:02):"
for d in $(nvme_pci_devs); do
    echo "   $d  vendor $(cat /sys/bus/pci/devices/$d/vendor) device $(cat /sys/bus/pci/devices/$d/device)"
done
override_all orion_nvme
echo "== insmod orion_nvme.ko"
load_orion || { echo "insmod failed"; exit 1; }
rc=0
for d in $(nvme_pci_devs); do
    echo "   $d bound to: $(driver_of "$d")"
    [ "$(driver_of "$d")" = orion_nvme ] || rc=1
done
echo "== orion_nvme in dmesg:"
dmesg | grep orion_nvme | sed 's/^/   /'
echo "== rmmod orion_nvme"
unload_orion || rc=1
dmesg | grep -E 'orion_nvme: (unbinding|shutdown)' | sed 's/^/   /'
exit $rc
