# The CAP/VS values orion_nvme decodes match what nvme-cli's `show-regs` prints for the same
# controller under the C driver (nvme-cli reads BAR0 through sysfs resource0).

# field NAME FILE: the value nvme-cli -H prints for "(NAME):", first word only.
_cli_field() { sed -n "s/.*($1)[^:]*: *\([^ ]*\).*/\1/p" "$2" | head -n1; }
# orion_field NAME LINE: the value after "NAME " in orion's decode line.
_orion_field() { echo "$2" | sed -n "s/.* $1 \([^ ]*\).*/\1/p"; }

for d in $(nvme_pci_devs); do
    override_all none
    unload_orion 2>/dev/null
    dmesg -c >/dev/null
    bind "$d" orion_nvme 2>/dev/null || { load_orion; bind "$d" orion_nvme; }
    line=$(dmesg | grep "$d: orion_nvme: bound" | tail -n1)
    unbind "$d"
    if [ -z "$line" ]; then
        tap_fail "regs: $d orion_nvme decode line present"
        continue
    fi
    if ! ctrl=$(bind_cnvme "$d"); then
        tap_fail "regs: $d binds to the C nvme driver for reference"
        continue
    fi
    nvme show-regs "/dev/$ctrl" > /tmp/regs.txt 2>&1
    nvme show-regs -H "/dev/$ctrl" > /tmp/regsH.txt 2>&1
    unbind "$d"
    cli_cap=$(sed -n 's/^cap *: *\([0-9a-fA-F]*\).*/\1/p' /tmp/regs.txt)
    cli_vs=$(sed -n 's/^version *: *\([0-9a-fA-F]*\).*/\1/p' /tmp/regs.txt)
    if [ -z "$cli_cap" ]; then
        tap_fail "regs: $d nvme show-regs printed CAP"; diag_file /tmp/regs.txt
        continue
    fi
    o_cap=$(_orion_field cap "$line")
    o_vs=$(_orion_field NVMe "$line")
    diag "$d orion: $line"
    diag "$d nvme-cli: cap $cli_cap version $cli_vs;$(grep -E "\((MQES|TO|DSTRD|MPSMIN|MPSMAX)\)" /tmp/regsH.txt | tr -s " \t" " " | tr "\n" ";")"
    tap_same "regs: $d CAP raw value matches nvme-cli ($o_cap)" \
        "$(printf '%x' "$o_cap")" "$(printf '%x' "0x$cli_cap")"
    want_vs="$(( 0x$cli_vs >> 16 )).$(( (0x$cli_vs >> 8) & 0xff )).$(( 0x$cli_vs & 0xff ))"
    tap_same "regs: $d VS matches nvme-cli ($o_vs)" "$o_vs" "$want_vs"
    tap_same "regs: $d MQES entries match nvme-cli" \
        "$(echo "$line" | sed -n 's/.*mqes [0-9]* (\([0-9]*\) entries).*/\1/p')" "$(_cli_field MQES /tmp/regsH.txt)"
    tap_same "regs: $d TO matches nvme-cli" \
        "$(echo "$line" | sed -n 's/.* to [0-9]* (\([0-9]*\) ms).*/\1/p')" "$(_cli_field TO /tmp/regsH.txt)"
    tap_same "regs: $d DSTRD matches nvme-cli" \
        "$(echo "$line" | sed -n 's/.* dstrd [0-9]* (\([0-9]*\) B).*/\1/p')" "$(_cli_field DSTRD /tmp/regsH.txt)"
    tap_same "regs: $d MPSMIN matches nvme-cli" \
        "$(( $(echo "$line" | sed -n 's/.* mpsmin [0-9]* (\([0-9]*\) KiB).*/\1/p') * 1024 ))" "$(_cli_field MPSMIN /tmp/regsH.txt)"
    tap_same "regs: $d MPSMAX matches nvme-cli" \
        "$(( $(echo "$line" | sed -n 's/.* mpsmax [0-9]* (\([0-9]*\) KiB).*/\1/p') * 1024 ))" "$(_cli_field MPSMAX /tmp/regsH.txt)"
done
override_all none
unload_cnvme
unload_orion 2>/dev/null
true
