# The other block operations through the driver under test, on every namespace:
#   discard (blkdiscard): the range reads back as zeroes when the namespace says deallocated
#     blocks read as zeroes (DLFEAT), its neighbours keep their data, the disk counts discards;
#   write zeroes (blkdiscard -z): the range reads back as zeroes, neighbours intact;
#   both at unaligned spots, over the last block, and over large ranges the driver must split;
#   flush: with a volatile write cache, fsync/fdatasync after each direct write reach the disk
#     as flush requests;
#   FUA: O_SYNC|O_DIRECT async writes reach the disk as FUA writes when it advertises FUA (no
#     flush needed), and the data verifies.
# write_cache and fua must match the C driver's view of the same namespace.
dmesg -c > /dev/null
cnvme_facts || tap_fail "ops: the C driver's view of every namespace (the reference)"
attach_all "$TEST_DRIVER"
tap_check "ops: $TEST_DRIVER made a disk for every namespace" test $? = 0
head -c 1048576 /dev/urandom > /tmp/pat

# region_check NAME DISK OFF LEN ZOFF ZLEN: writes /tmp/pat's first LEN bytes at byte OFF of DISK,
# then runs the command in $op on [OFF+ZOFF, OFF+ZOFF+ZLEN) and checks that [OFF, OFF+LEN)
# reads back as the pattern with that range zeroed.
region_check() {
    local name=$1 disk=$2 off=$3 len=$4 zoff=$5 zlen=$6 lbs
    lbs=$(qattr "$disk" logical_block_size)
    head -c "$len" /tmp/pat > /tmp/want
    dd if=/dev/zero of=/tmp/want bs="$lbs" seek=$((zoff / lbs)) count=$((zlen / lbs)) conv=notrunc 2>/dev/null
    dd if=/tmp/pat of="/dev/$disk" bs="$lbs" seek=$((off / lbs)) count=$((len / lbs)) oflag=direct 2>/dev/null &&
        $op -o $((off + zoff)) -l "$zlen" "/dev/$disk" > /tmp/op.err 2>&1 &&
        dd if="/dev/$disk" of=/tmp/got bs="$lbs" skip=$((off / lbs)) count=$((len / lbs)) iflag=direct 2>/dev/null &&
        cmp /tmp/want /tmp/got > /tmp/cmp.txt 2>&1
    local rc=$?
    [ "$rc" = 0 ] || { diag "$name:"; diag_file /tmp/op.err; diag_file /tmp/cmp.txt; }
    return $rc
}

for bdf in $(nvme_pci_devs); do
    for nsid in $(fact "$bdf" nsids); do
        ns="$bdf ns $nsid"
        disk=$(disk_for "$TEST_DRIVER" "$bdf" "$nsid")
        if [ -z "$disk" ]; then
            tap_fail "ops: $ns has a $TEST_DRIVER disk"
            continue
        fi
        lbs=$(qattr "$disk" logical_block_size)
        size=$(disk_bytes "$disk")
        wc=$(qattr "$disk" write_cache)
        fua=$(qattr "$disk" fua)
        tap_same "ops: $ns $disk write_cache matches the C driver's" "$wc" "$(fact "$bdf" "$nsid/write_cache")"
        tap_same "ops: $ns $disk fua matches the C driver's" "$fua" "$(fact "$bdf" "$nsid/fua")"
        dlfeat=$(fact "$bdf" "$nsid/dlfeat")
        diag "$ns $disk: lbs $lbs, $size bytes, write_cache '$wc', fua $fua, dlfeat $dlfeat," \
            "discard_max_hw_bytes $(qattr "$disk" discard_max_hw_bytes) (controller DMRSL: $(fact "$bdf" dmrsl) blocks)," \
            "write_zeroes_max_bytes $(qattr "$disk" write_zeroes_max_bytes)"

        # Discard: NVMe DLFEAT bits 2:0 = 001b means deallocated blocks read as zeroes.
        if [ "$(qattr "$disk" discard_max_hw_bytes)" = 0 ]; then
            tap_fail "ops: $ns $disk supports discard (the C driver's: $(fact "$bdf" "$nsid/discard_max_hw_bytes"))"
        elif [ $(( ${dlfeat:-0} & 7 )) != 1 ]; then
            tap_skip "ops: $ns discard reads back zeroes" "DLFEAT $dlfeat: deallocated blocks need not read as zeroes"
        else
            op=$BLKDISCARD
            d0=$(disk_stat "$disk" 12)
            tap_check "ops: $ns discard of 77 blocks at block 3 of a 1 MiB region: zeroes there, data around" \
                region_check discard "$disk" $((8 << 20)) 1048576 $((3 * lbs)) $((77 * lbs))
            tap_check "ops: $ns discard of the last block only" \
                region_check discard-last "$disk" $((size - 65536)) 65536 $((65536 - lbs)) "$lbs"
            tap_check "ops: $ns discard of the first block only" \
                region_check discard-first "$disk" 0 65536 0 "$lbs"
            d1=$(disk_stat "$disk" 12)
            tap_check "ops: $ns the disk counted the discards ($((d1 - d0)) discard requests)" test $((d1 - d0)) -ge 3
            # The whole namespace in one call: the driver gets as much as its limits allow.
            dd if=/tmp/pat of="/dev/$disk" bs=1048576 count=1 seek=$((size / 1048576 - 1)) oflag=direct 2>/dev/null
            dd if=/tmp/pat of="/dev/$disk" bs=1048576 count=1 oflag=direct 2>/dev/null
            if $BLKDISCARD "/dev/$disk" > /tmp/op.err 2>&1 &&
                    dd if="/dev/$disk" bs=1048576 count=1 iflag=direct 2>/dev/null | cmp -s -n 1048576 - /dev/zero &&
                    dd if="/dev/$disk" bs=1048576 count=1 skip=$((size / 1048576 - 1)) iflag=direct 2>/dev/null |
                        cmp -s -n 1048576 - /dev/zero; then
                tap_ok "ops: $ns discard of the whole namespace: first and last MiB read back as zeroes"
            else
                tap_fail "ops: $ns discard of the whole namespace: first and last MiB read back as zeroes"
                diag_file /tmp/op.err
            fi
        fi

        # Write zeroes (BLKZEROOUT; the block layer sends Write Zeroes commands when the disk
        # offers them, else writes zero pages).
        op="$BLKDISCARD -z"
        tap_same "ops: $ns $disk offers write zeroes as the C driver does" \
            "$([ "$(qattr "$disk" write_zeroes_max_bytes)" -gt 0 ] && echo yes || echo no)" \
            "$([ "$(fact "$bdf" "$nsid/write_zeroes_max_bytes")" -gt 0 ] && echo yes || echo no)"
        tap_check "ops: $ns write zeroes of 77 blocks at block 3 of a 1 MiB region: zeroes there, data around" \
            region_check wzeroes "$disk" $((16 << 20)) 1048576 $((3 * lbs)) $((77 * lbs))
        tap_check "ops: $ns write zeroes of the last block only" \
            region_check wzeroes-last "$disk" $((size - 65536)) 65536 $((65536 - lbs)) "$lbs"
        # 3 MiB + 5 blocks from 1 block into a 4 MiB region: several commands at most
        # write_zeroes_max_bytes each.
        head -c 4194304 /dev/urandom > /tmp/pat4
        mv /tmp/pat /tmp/pat1; mv /tmp/pat4 /tmp/pat
        tap_check "ops: $ns write zeroes of 3 MiB + 5 blocks (split into several commands)" \
            region_check wzeroes-big "$disk" $((24 << 20)) 4194304 "$lbs" $((3145728 + 5 * lbs))
        mv /tmp/pat1 /tmp/pat

        # Flush: fsync and fdatasync after every direct write.
        for sync in fsync fdatasync; do
            f0=$(disk_stat "$disk" 16)
            fio_jobs "$disk" 1 rw=write bs=$((2 * lbs)) io_size=256k ioengine=psync $sync=1 \
                verify=crc32c do_verify=1 verify_fatal=1 > /tmp/ops.fio
            fio_json fio-ops /tmp/ops.fio
            rc=$?
            f1=$(disk_stat "$disk" 16)
            writes=$((262144 / (2 * lbs)))
            if [ "$rc" = 0 ] && [ "$FIO_ERR" = 0 ] && [ "$FIO_WBYTES" = 262144 ] && [ "$FIO_RBYTES" = 262144 ]; then
                tap_ok "ops: $ns $writes direct writes with $sync after each verify"
            else
                tap_fail "ops: $ns $writes direct writes with $sync after each verify (fio status $rc, error $FIO_ERR)"
                fio_diag fio-ops
            fi
            if [ "$wc" = "write back" ]; then
                # fio syncs before the write that follows, so N writes make N - 1 syncs.
                tap_check "ops: $ns $sync reached the disk as flushes ($((f1 - f0)) for $writes writes)" \
                    test $((f1 - f0)) -ge $((writes - 1))
            else
                tap_check "ops: $ns write-through disk: $sync sent no flush ($((f1 - f0)))" test $((f1 - f0)) = 0
            fi
        done

        # FUA: async O_SYNC|O_DIRECT writes are FUA writes; without FUA the block layer would
        # follow each with a flush.
        f0=$(disk_stat "$disk" 16)
        fio_jobs "$disk" 1 rw=randwrite bsrange=$lbs-64k io_size=2m ioengine=libaio iodepth=8 sync=1 \
            verify=crc32c do_verify=1 verify_fatal=1 > /tmp/ops.fio
        fio_json fio-ops /tmp/ops.fio
        rc=$?
        f1=$(disk_stat "$disk" 16)
        if [ "$rc" = 0 ] && [ "$FIO_ERR" = 0 ] && [ "$FIO_WBYTES" -ge 2097152 ] && [ "$FIO_RBYTES" = "$FIO_WBYTES" ]; then
            tap_ok "ops: $ns O_SYNC|O_DIRECT libaio writes verify"
        else
            tap_fail "ops: $ns O_SYNC|O_DIRECT libaio writes verify (fio status $rc, error $FIO_ERR)"
            fio_diag fio-ops
        fi
        if [ "$wc" = "write back" ] && [ "$fua" = 1 ]; then
            tap_check "ops: $ns O_SYNC writes went to the disk as FUA writes ($((f1 - f0)) flushes)" test $((f1 - f0)) = 0
        elif [ "$wc" = "write back" ]; then
            tap_check "ops: $ns no FUA: O_SYNC writes were followed by flushes ($((f1 - f0)))" test $((f1 - f0)) -gt 0
        fi
    done
done
detach_all
tap_check "ops: no kernel warnings" dmesg_clean || diag_file /tmp/bad.txt
