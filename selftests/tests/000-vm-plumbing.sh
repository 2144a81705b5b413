# The test box itself: the guest reaches the host's QMP through the control port, and QEMU's
# view of the NVMe controllers agrees with the guest's.
reply=$(qmp '{"execute":"query-status"}')
tap_same "vm: QMP query-status from the guest says running" \
    "$(echo "$reply" | sed -n 's/.*"status": *"\([a-z-]*\)".*/\1/p')" running
# query-pci lists every device under every bus; NVMe controllers have class 0x0108 (mass
# storage / NVM) in QEMU's "class_info".
reply=$(qmp '{"execute":"query-pci"}')
host_n=$(echo "$reply" | grep -o '"class": *264' | wc -l)
guest_n=$(nvme_pci_devs | wc -l)
tap_same "vm: QEMU and the guest both see $guest_n NVMe controllers" "$host_n" "$guest_n"
tap_check "vm: the C nvme driver is not loaded at boot" sh -c '! grep -q "^nvme " /proc/modules'
