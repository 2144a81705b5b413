# The Orion driver API conformance kit from orion-compat, run in the kernel on the Linux
# implementations (DMA-coherent memory, clock, BAR0 bounds, read-only register access,
# IRQ-safe spin lock and mutex, shared reference-counted values), then, with the controller
# up, PCI configuration space and bus mastering, vector allocation, and interrupt delivery on
# vector 0 (raised by admin commands: exactly once, held back while disabled, replayed once on
# enable).
override_all orion_nvme
dmesg -c > /dev/null
if load_orion conformance=1; then
    for d in $(nvme_pci_devs); do
        dmesg | grep "$d: orion_nvme: conformance" > /tmp/conf.txt
        diag_file /tmp/conf.txt
        for check in dma.coherent clock mmio.bounds mmio.read_only sync.locks sync.share; do
            tap_check "conformance: $d $check (Linux)" grep -q "conformance $check: ok" /tmp/conf.txt
        done
        tap_check "conformance: $d summary reports no failure" grep -q "conformance: 6 passed, 0 failed" /tmp/conf.txt
        for check in pci.config pci.vectors; do
            tap_check "conformance: $d $check (Linux)" grep -q "conformance $check: ok" /tmp/conf.txt
        done
        if grep -q "conformance irq.delivery: SKIPPED" /tmp/conf.txt; then
            tap_skip "conformance: $d irq.delivery (Linux)" "$(sed -n 's/.*irq.delivery: SKIPPED: //p' /tmp/conf.txt)"
            want="2 passed, 0 failed"
        else
            tap_check "conformance: $d irq.delivery (Linux)" grep -q "conformance irq.delivery: ok" /tmp/conf.txt
            want="3 passed, 0 failed"
        fi
        tap_check "conformance: $d pci/irq summary reports no failure" \
            grep -q "conformance (pci/irq): $want" /tmp/conf.txt
        tap_check "conformance: $d block I/O set up after the kit (vectors freed)" \
            sh -c "dmesg | grep -q '$d: orion_nvme: disk onvme'"
    done
    unload_orion
else
    tap_fail "conformance: insmod orion_nvme.ko conformance=1"
fi
tap_check "conformance: no kernel warnings" dmesg_clean || diag_file /tmp/bad.txt
override_all none
