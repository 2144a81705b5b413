# Orderly shutdown at power-off (issue #6), the guest's half: the driver under test is bound to
# every controller and left bound, and a marker block is written to the first controller's
# namespace with O_DIRECT (no flush: it may sit in the controller's volatile write cache).
# Then the run ends and the guest powers off (poweroff -f: the kernel shuts devices down).
# The host's half (scripts/check.sh) checks that the console shows orion_nvme's shutdown at
# power-off and that the marker is in the backing file the next boot would read. Last, so
# the power-off follows it directly.
drv_json=$(qmp '{"execute":"query-block"}' | sed 's/"device"/\n&/g' | grep -E '"qdev": *"(/machine/peripheral/)?nvme0"')
file=$(echo "$drv_json" | sed -n 's/.*"file": *"\([^"]*\)".*/\1/p' | head -n1)
bdf=$(nvme_pci_devs | head -n1)
if [ -z "$file" ] || case $file in *:*) true ;; *) false ;; esac; then
    tap_skip "poweroff: marker written before the power-off" "controller nvme0 has no plain file-backed drive here"
elif ! cnvme_facts || ! attach_all "$TEST_DRIVER" || ! disk=$(disk_for "$TEST_DRIVER" "$bdf" 1); then
    tap_fail "poweroff: $TEST_DRIVER bound with a disk for $bdf namespace 1"
else
    off=$((3 * 1048576))
    { echo "orion-nvme power-off marker $(date +%s) $$"; head -c 8192 /dev/urandom; } | head -c 4096 > /tmp/mark.bin
    if dd if=/tmp/mark.bin of="/dev/$disk" bs=4096 seek=$((off / 4096)) count=1 oflag=direct 2>/dev/null; then
        tap_ok "poweroff: marker written to $disk at $off through $TEST_DRIVER; it stays bound for the power-off"
        echo "# poweroff-mark: $file $off 4096 $(sha256sum < /tmp/mark.bin | cut -d' ' -f1) $TEST_DRIVER"
    else
        tap_fail "poweroff: marker written to $disk"
    fi
fi
