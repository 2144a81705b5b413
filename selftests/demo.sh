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
echo "== block devices:"
for b in /sys/block/onvme*; do
    [ -e "$b" ] || { echo "   none"; rc=1; break; }
    disk=$(basename "$b")
    echo "   /dev/$disk: $(($(cat $b/size) / 2048)) MiB, $(cat $b/queue/logical_block_size)-byte blocks, $(ls -d $b/mq/* | wc -l) hardware queues"
    echo "== fio on /dev/$disk: 4 KiB random writes, then verify (crc32c)"
    fio --name=demo --filename=/dev/$disk --ioengine=io_uring --direct=1 --rw=randwrite \
        --bs=4k --size=32m --iodepth=16 --verify=crc32c --do_verify=1 --output-format=terse \
        > /tmp/demo.fio 2>&1 || rc=1
    awk -F';' '{ printf "   wrote %d KiB at %d IOPS, verified %d KiB, errors %d\n", $47, $49, $6, $5 }' /tmp/demo.fio
done
echo "== rmmod orion_nvme"
unload_orion || rc=1
dmesg | grep -E 'orion_nvme: (unbinding|shutdown)' | sed 's/^/   /'
exit $rc
