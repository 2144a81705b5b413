# nvme-cli through the driver under test gives what it gives through the C driver: the same
# commands run on the same controller, first bound to the C driver (the reference), then to
# $TEST_DRIVER, outputs and exit codes compared after normalising device node names and the
# few fields that change by themselves between two runs (NORMALISE below). One TAP line per
# command; a closing matrix "command: identical|differs|error" as diagnostics.
CLI=/tmp/cli
rm -rf "$CLI"; mkdir -p "$CLI"
dmesg -c > /dev/null
cnvme_facts || tap_fail "cli: the C driver's view of every namespace (the reference)"

# Feature IDs asked with get-feature: every FID NVMe Base 2.0 defines up to Host Behavior
# Support and the host-side ones (0x80-0x84). Those the controller does not support fail the
# same way under both drivers and are reported as such.
CLI_FIDS="0x01 0x02 0x03 0x04 0x05 0x06 0x07 0x08 0x09 0x0a 0x0b 0x0c 0x0d 0x0e 0x0f 0x10 0x11
 0x12 0x13 0x14 0x15 0x16 0x17 0x18 0x19 0x1a 0x1b 0x1c 0x1d 0x80 0x81 0x82 0x83 0x84"

# cli_norm FILE: normalises FILE in place.
#   Node names: nvme0 / onvme0 (controller), nvme0n1 / onvme0n1 and ng0n1 / ong0n1 (namespace
#     and its generic node; the C driver's N in nvmeXnN is not the NSID, orion's is).
#   smart-log Data Units Read/Written, host_read/write_commands: QEMU counts every read and
#     write, and the drivers' own I/O (partition scan on bind, the io-passthru below, earlier
#     tests) runs between the two runs.
#   smart-log power_on_hours and controller_busy_time: QEMU derives them from the clock.
#   get-feature 0x0e (Timestamp): the controller's clock, milliseconds since the epoch (the
#     value and its hex dump).
cli_norm() {
    sed -E -i 's#o?nvme[0-9]+n[0-9]+#<ns-node>#g; s#o?ng[0-9]+n[0-9]+#<ns-node>#g; s#o?nvme[0-9]+#<ctrl-node>#g
        s#^(Data Units Read|Data Units Written|host_read_commands|host_write_commands|power_on_hours|controller_busy_time)([[:space:]]*:).*#\1\2 <volatile>#
        s#^(get-feature:0x0e .*Current value:).*#\1<volatile>#' "$1"
    grep -q '^get-feature:0x0e ' "$1" && sed -E -i 's#^(0000:).*#\1 <volatile>#' "$1"
    return 0
}

# cli NAME CMD...: runs CMD, its output and exit code into $dir/NAME (normalised).
cli() {
    local name=$1 rc
    shift
    "$@" > "$dir/$name" 2>&1
    rc=$?
    echo "exit $rc" >> "$dir/$name"
    cli_norm "$dir/$name"
    echo "$name" >> "$dir/.order"
    return $rc
}

# feat_value FILE: the value get-feature printed in FILE ("Current value:0x00015f" -> 0x15f).
feat_value() { sed -n 's/.*Current value:\(0x\)\{0,1\}\([0-9a-fA-F]*\).*/0x\2/p' "$1" | head -n1; }

# cli_side SIDE DRIVER BDF: every command on controller BDF bound to DRIVER, into $CLI/SIDE/BDF.
cli_side() {
    local side=$1 drv=$2 bdf=$3 c nd nsid ns fid v lbs last
    dir=$CLI/$side/$bdf
    mkdir -p "$dir"
    if ! c=$(ctrl_node_for "$drv" "$bdf"); then
        echo "$drv has no controller node for $bdf" > "$dir/.noctrl"
        return 1
    fi
    c=/dev/$c
    cli id-ctrl nvme id-ctrl "$c"
    cli list-ns nvme list-ns "$c"
    for nd in $(ns_nodes_for "$drv" "$bdf"); do
        nsid=${nd%%:*}; ns=/dev/${nd#*:}
        cli "id-ns-$nsid" nvme id-ns "$ns"
        cli "id-ns-$nsid-via-ctrl" nvme id-ns "$c" -n "$nsid"
        # Through the namespace's generic node (ngXnY, ong<C>n<NSID>) as through its disk.
        if g=$(generic_node_for "$drv" "$bdf" "$nsid"); then
            cli "id-ns-$nsid-via-generic" nvme id-ns "/dev/$g"
        else
            echo "$drv has no generic node for $bdf namespace $nsid" > "$dir/id-ns-$nsid-via-generic"
            echo "id-ns-$nsid-via-generic" >> "$dir/.order"
        fi
    done
    cli smart-log nvme smart-log "$c"
    cli error-log nvme error-log "$c"
    cli fw-log nvme fw-log "$c"
    for fid in $CLI_FIDS; do cli "get-feature-$fid" nvme get-feature "$c" -f "$fid"; done
    # set-feature: Temperature Threshold (still above QEMU's 323 K, so no warning fires) and
    # Volatile Write Cache off, each read back, then the first value put back and read back.
    for fv in 0x04:0x150 0x06:0; do
        fid=${fv%:*}
        v=$(feat_value "$dir/get-feature-$fid")
        cli "set-feature-$fid" nvme set-feature "$c" -f "$fid" --value="${fv#*:}"
        cli "set-feature-$fid-readback" nvme get-feature "$c" -f "$fid"
        if [ -n "$v" ]; then
            cli "set-feature-$fid-restore" nvme set-feature "$c" -f "$fid" --value="$v"
        else
            echo "no value to restore in get-feature-$fid" > "$dir/set-feature-$fid-restore"
            echo "set-feature-$fid-restore" >> "$dir/.order"
        fi
        cli "set-feature-$fid-restored" nvme get-feature "$c" -f "$fid"
        diag "cli: $drv $bdf set-feature $fid: ${v:-?} -> $(feat_value "$dir/set-feature-$fid-readback") (set ${fv#*:}) -> $(feat_value "$dir/set-feature-$fid-restored") (restored)"
    done
    cli admin-passthru-identify nvme admin-passthru "$c" --opcode=6 --cdw10=1 --data-len=4096 -r
    # io-passthru: the last LBA of each namespace, read as it is (what the other side wrote),
    # written with this side's pattern, read back.
    for nd in $(ns_nodes_for "$drv" "$bdf"); do
        nsid=${nd%%:*}; ns=/dev/${nd#*:}
        lbs=$(fact "$bdf" "$nsid/logical_block_size")
        last=$(( $(fact "$bdf" "$nsid/size") / (lbs / 512) - 1 ))
        set -- --namespace-id="$nsid" --cdw10=$((last & 0xffffffff)) --cdw11=$((last >> 32)) \
            --cdw12=0 --data-len="$lbs"
        nvme io-passthru "$ns" --opcode=2 "$@" -r -b > "$dir/io-$nsid-before.bin" 2> "$dir/io-$nsid-before.err"
        head -c "$lbs" /dev/urandom > "$dir/io-$nsid-pattern.bin"
        cli "io-passthru-write-$nsid" nvme io-passthru "$ns" --opcode=1 "$@" -w \
            --input-file="$dir/io-$nsid-pattern.bin"
        nvme io-passthru "$ns" --opcode=2 "$@" -r -b > "$dir/io-$nsid-after.bin" 2> "$dir/io-$nsid-after.err"
    done
    # Controller reset and namespace rescan last; each must leave every disk in place.
    cli reset nvme reset "$c"
    cli ns-rescan nvme ns-rescan "$c"
    for nsid in $(fact "$bdf" nsids); do
        wait_for "disk_for $drv $bdf $nsid > /dev/null" 20 ||
            diag "cli: $drv $bdf namespace $nsid has no disk after reset and rescan"
    done
    return 0
}

# cli_cmp BDF NAME: one TAP line comparing the two sides' NAME; records the matrix entry.
cli_cmp() {
    local bdf=$1 name=$2 ref=$CLI/ref/$1/$2 got=$CLI/test/$1/$2 verdict rcr rct
    rcr=$(tail -n1 "$ref" 2>/dev/null); rct=$(tail -n1 "$got" 2>/dev/null)
    if [ "$name" = get-feature-0x0b ] && [ "$TEST_DRIVER" = orion_nvme ] && [ -f "$got" ]; then
        # DELIBERATE: Asynchronous Event Configuration. The C driver enables only the notices
        # (0x100 here); orion_nvme also enables every SMART / Health critical warning (bits
        # 7:0), so a critical warning reaches dmesg. Anything else must match.
        local vr vt
        vr=$(feat_value "$ref"); vt=$(feat_value "$got")
        if [ -n "$vr" ] && [ "$(( vr | 0xff ))" = "$(( vt ))" ]; then
            tap_ok "cli: $bdf $name through $TEST_DRIVER as through nvme, plus SMART warnings ($vr -> $vt)"
            echo "$name: differs on purpose (SMART critical warning events enabled: $vr -> $vt)" >> "$CLI/matrix-$bdf"
            return
        fi
    fi
    if [ ! -f "$got" ]; then
        verdict=error
        tap_fail "cli: $bdf $name through $TEST_DRIVER as through nvme (not run)"
    elif [ "$rcr" != "exit 0" ] && case $name in get-feature-*) false ;; *) true ;; esac; then
        # Only get-feature may fail on the reference (a feature QEMU lacks); anything else
        # failing under the C driver is a broken test.
        verdict="error (fails under nvme itself, $rcr)"
        tap_fail "cli: $bdf $name through nvme (the reference) succeeds"
        head -n 5 "$ref" | diag_file
    elif diff -u "$ref" "$got" > "$CLI/diff" 2>&1; then
        verdict=identical
        [ "$rcr" != "exit 0" ] && verdict="identical (fails on both, $rcr: $(head -n1 "$ref"))"
        tap_ok "cli: $bdf $name through $TEST_DRIVER as through nvme"
    else
        verdict=differs
        [ "$rcr" != "$rct" ] && verdict="error (nvme $rcr, $TEST_DRIVER $rct)"
        tap_fail "cli: $bdf $name through $TEST_DRIVER as through nvme"
        head -n 60 "$CLI/diff" | diag_file
    fi
    echo "$name: $verdict" >> "$CLI/matrix-$bdf"
}

# io_check BDF NSID SIDE WHAT FILE WANT: one TAP line, FILE's content equals WANT's.
io_check() {
    if [ -s "$5" ] && cmp -s "$5" "$6"; then
        tap_ok "cli: $1 ns $2 io-passthru through $3: $4"
        echo "io-passthru-$2 ($3, $4): identical" >> "$CLI/matrix-$1"
    else
        tap_fail "cli: $1 ns $2 io-passthru through $3: $4"
        echo "io-passthru-$2 ($3, $4): differs" >> "$CLI/matrix-$1"
        { cat "${5%.bin}.err"; cmp "$5" "$6"; } 2>&1 | head -n 5 | diag_file
    fi
}

attach_all nvme
tap_check "cli: nvme bound every controller and made its disks" test $? = 0
for bdf in $(nvme_pci_devs); do cli_side ref nvme "$bdf"; done
attach_all "$TEST_DRIVER"
tap_check "cli: $TEST_DRIVER bound every controller and made its disks" test $? = 0
for bdf in $(nvme_pci_devs); do cli_side test "$TEST_DRIVER" "$bdf"; done
detach_all

for bdf in $(nvme_pci_devs); do
    rm -f "$CLI/matrix-$bdf"
    if [ ! -f "$CLI/ref/$bdf/.order" ]; then
        tap_fail "cli: $bdf commands ran through nvme (the reference)"
        cat "$CLI/ref/$bdf/.noctrl" 2>/dev/null | diag_file
        continue
    fi
    if [ -f "$CLI/test/$bdf/.noctrl" ]; then
        # nvme-cli needs the controller node: a driver without one cannot be compared at all.
        tap_skip "cli: $bdf nvme-cli through $TEST_DRIVER" "$(cat "$CLI/test/$bdf/.noctrl")"
        diag "cli matrix for $bdf ($TEST_DRIVER against nvme): every command: error (no controller node)"
        continue
    fi
    for cli_name in $(cat "$CLI/ref/$bdf/.order"); do cli_cmp "$bdf" "$cli_name"; done
    for nsid in $(fact "$bdf" nsids); do
        cli_r=$CLI/ref/$bdf cli_t=$CLI/test/$bdf
        io_check "$bdf" "$nsid" nvme "written pattern reads back" "$cli_r/io-$nsid-after.bin" "$cli_r/io-$nsid-pattern.bin"
        io_check "$bdf" "$nsid" "$TEST_DRIVER" "reads what nvme wrote" "$cli_t/io-$nsid-before.bin" "$cli_r/io-$nsid-pattern.bin"
        io_check "$bdf" "$nsid" "$TEST_DRIVER" "written pattern reads back" "$cli_t/io-$nsid-after.bin" "$cli_t/io-$nsid-pattern.bin"
    done
    diag "cli matrix for $bdf ($TEST_DRIVER against nvme):"
    diag_file "$CLI/matrix-$bdf"
done
tap_check "cli: no kernel warnings" dmesg_clean || diag_file /tmp/bad.txt
