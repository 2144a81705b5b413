# Block I/O smoke test: every namespace of every controller bound to orion_nvme gets a disk
# named onvme<C>n<NSID> whose data survives a write/read round trip through the page cache
# bypass (O_DIRECT) and whose size matches the namespace.

override_all none
unload_cnvme
unload_orion 2>/dev/null
dmesg -c > /dev/null
load_orion
for d in $(nvme_pci_devs); do bind "$d" orion_nvme; done
# Vectors: MSI-X on QEMU's controller, INTx when the guest runs with pci=nomsi (intx profile).
want_kind=MSI-X
grep -q 'pci=nomsi' /proc/cmdline && want_kind=INTx
for d in $(nvme_pci_devs); do
    kind=$(dmesg | sed -n "s/.*$d: orion_nvme: [0-9]* \([A-Za-z-]*\) vectors.*/\1/p" | tail -n1)
    tap_same "blk: $d interrupt vectors are $want_kind" "$want_kind" "$kind"
done
for d in $(nvme_pci_devs); do
    nss=$(dmesg | sed -n "s/.*$d: orion_nvme: namespace \([0-9]*\): \([0-9]*\) blocks of \([0-9]*\) bytes/\1:\2:\3/p")
    for ns in $nss; do
        nsid=${ns%%:*}; rest=${ns#*:}; blocks=${rest%%:*}; bs=${rest#*:}
        disk=$(for b in /sys/block/onvme*n$nsid; do
            [ "$(basename "$(readlink -f "$b/device")")" = "$d" ] && basename "$b"; done)
        if [ -z "$disk" ] || [ ! -b "/dev/$disk" ]; then
            tap_fail "blk: $d namespace $nsid has a block device"
            continue
        fi
        tap_ok "blk: $d namespace $nsid has a block device ($disk)"
        tap_same "blk: $disk logical block size" "$bs" "$(cat /sys/block/$disk/queue/logical_block_size)"
        tap_same "blk: $disk size in 512-byte sectors" "$((blocks * bs / 512))" "$(cat /sys/block/$disk/size)"
        dd if=/dev/urandom of=/tmp/pat bs=64k count=16 2>/dev/null
        dd if=/tmp/pat of=/dev/$disk bs=64k oflag=direct 2>/dev/null
        dd if=/dev/$disk of=/tmp/back bs=64k count=16 iflag=direct 2>/dev/null
        tap_check "blk: $disk 1 MiB O_DIRECT write reads back identically" cmp -s /tmp/pat /tmp/back
    done
done
# One fio job pinned to each CPU: blk-mq maps each CPU to its own interrupt queue (as far as
# the controller granted queues), and the driver's per-queue command counts, logged on unbind,
# show every interrupt queue was used.
ncpu=$(nproc)
for d in $(nvme_pci_devs); do
    disk=$(basename "$(ls -d /sys/bus/pci/devices/$d/block/onvme* 2>/dev/null | head -n1)")
    [ -n "$disk" ] || continue
    fio --name=percpu --filename=/dev/$disk --ioengine=libaio --direct=1 --rw=randread \
        --bs=4k --size=16m --iodepth=4 --numjobs="$ncpu" --cpus_allowed=0-$((ncpu - 1)) \
        --cpus_allowed_policy=split --output=/tmp/fio-percpu.txt
    dmesg -c > /dev/null
    unbind "$d"
    dmesg | grep "$d: orion_nvme: I/O queue" | sed 's/.*orion_nvme: /# /'
    nirq=$(dmesg | grep -c "$d: orion_nvme: I/O queue [0-9]* (interrupt)")
    idle=$(dmesg | grep -c "$d: orion_nvme: I/O queue [0-9]* (interrupt): 0 commands")
    tap_check "blk: $d all $nirq interrupt queues used by $ncpu pinned fio jobs" \
        test "$nirq" -ge 1 -a "$idle" -eq 0
done
unload_orion
tap_check "blk: no kernel warnings" dmesg_clean

# Poll queues: io_uring with IOPOLL (fio --hipri) completes through the poll queue.
dmesg -c > /dev/null
load_orion poll_queues=1
d=$(nvme_pci_devs | head -n1)
bind "$d" orion_nvme
disk=$(basename "$(ls -d /sys/bus/pci/devices/$d/block/onvme* 2>/dev/null | head -n1)")
dmesg | grep "$d: orion_nvme: .* I/O queues" | sed 's/^/# /'
granted=$(dmesg | sed -n "s/.*$d: orion_nvme: \([0-9]*\) I\/O queues granted.*/\1/p" | tail -n1)
if [ -z "$disk" ]; then
    tap_fail "blk: poll_queues=1 gives a disk"
elif [ "${granted:-0}" -lt 2 ]; then
    # A poll queue never takes the last interrupt queue: with one queue pair there is none.
    tap_same "blk: $disk io_poll is off when the controller grants one queue pair" 0 \
        "$(cat /sys/block/$disk/queue/io_poll)"
    tap_skip "blk: $disk io_uring IOPOLL" "the controller grants $granted I/O queue pair(s), none left to poll"
else
    tap_same "blk: $disk io_poll is on with poll_queues=1" 1 "$(cat /sys/block/$disk/queue/io_poll)"
    npoll=$(dmesg | sed -n "s/.*$d: orion_nvme: .*interrupt, \([0-9]*\) poll.*/\1/p")
    tap_same "blk: $d one poll queue created" 1 "$npoll"
    tap_check "blk: $disk io_uring IOPOLL write+verify (fio --hipri)" \
        fio --name=poll --filename=/dev/$disk --ioengine=io_uring --hipri --direct=1 \
            --rw=randwrite --bs=4k --size=8m --iodepth=8 --verify=crc32c --do_verify=1 \
            --output=/tmp/fio-poll.txt
    # The driver reports each queue's command count on unbind; 8 MiB written and read back
    # in 4 KiB requests is 4096 commands on the poll queue.
    unbind "$d"
    dmesg | grep "$d: orion_nvme: I/O queue" | sed 's/.*orion_nvme: /# /'
    polled=$(dmesg | sed -n "s/.*$d: orion_nvme: I\/O queue [0-9]* (poll): \([0-9]*\) commands/\1/p")
    tap_check "blk: $disk polled I/O went through the poll queue (${polled:-none} commands)" \
        test "${polled:-0}" -ge 4096
fi
unbind "$d" 2>/dev/null
unload_orion
tap_check "blk: no kernel warnings after polled I/O" dmesg_clean
