# fio random writes read back with crc32c verify on every namespace, through the driver under
# test (orion_nvme, loaded with poll_queues=1): at least 1 GiB written and verified per
# namespace, split over libaio, io_uring and io_uring --hipri (polled, when the controller has
# room for a poll queue); block sizes from one logical block to 1 MiB, buffers at page offset
# 512 in two of the runs; one job per CPU, each pinned to its CPU and owning its own slice of
# the disk, so every hardware queue takes I/O (checked on the controller's MSI-X vectors).
FIO_TOTAL=${FIO_TOTAL:-1073741824}   # bytes to write and verify per namespace
ncpu=$(nproc)
dmesg -c > /dev/null
for e in libaio io_uring; do
    tap_check "fio: the guest's fio has the $e engine" sh -c "fio --enghelp | grep -qw $e"
done
cnvme_facts || tap_fail "fio: the C driver's view of every namespace (the reference)"
attach_all "$TEST_DRIVER" poll_queues=1
tap_check "fio: $TEST_DRIVER (poll_queues=1) made a disk for every namespace" test $? = 0

for bdf in $(nvme_pci_devs); do
    for nsid in $(fact "$bdf" nsids); do
        ns="$bdf ns $nsid"
        disk=$(disk_for "$TEST_DRIVER" "$bdf" "$nsid")
        if [ -z "$disk" ]; then
            tap_fail "fio: $ns has a $TEST_DRIVER disk"
            continue
        fi
        tap_ok "fio: $ns has a $TEST_DRIVER disk ($disk)"
        tap_same "fio: $ns $disk size matches the C driver's (512-byte sectors)" \
            "$(cat /sys/block/$disk/size)" "$(fact "$bdf" "$nsid/size")"
        lbs=$(qattr "$disk" logical_block_size)
        tap_same "fio: $ns $disk logical block size matches the C driver's" "$lbs" \
            "$(fact "$bdf" "$nsid/logical_block_size")"
        # A poll queue needs a second I/O queue (the C driver's rule): the controller has room
        # for one when the C driver got at least two.
        want_poll=0; [ "$(fact "$bdf" queue_count)" -ge 2 ] && want_poll=1
        # orion_nvme says what it created; with one interrupt vector (INTx) it can still have
        # a poll queue next to its single interrupt queue where the C driver keeps one queue.
        npoll=$(dmesg | sed -n "s/.*$bdf: orion_nvme: .* interrupt, \([0-9]*\) poll).*/\1/p" | tail -n1)
        [ "$TEST_DRIVER" = orion_nvme ] && [ -n "$npoll" ] && { want_poll=0; [ "$npoll" -ge 1 ] && want_poll=1; }
        tap_same "fio: $ns $disk io_poll with poll_queues=1 (C driver got $(fact "$bdf" queue_count) I/O queues, orion ${npoll:-?} poll)" \
            "$(qattr "$disk" io_poll)" "$want_poll"
        # Hardware contexts that take interrupt-driven I/O (not poll ones), as blk-mq sees them.
        nq=0
        for h in /sys/kernel/debug/block/$disk/hctx*; do
            [ "$(cat "$h/type" 2>/dev/null)" = poll ] || nq=$((nq + 1))
        done
        diag "$ns $disk: lbs $lbs, $(disk_bytes "$disk") bytes, $nq interrupt-driven hardware queues, $ncpu CPUs"

        runs="libaio io_uring"; [ "$want_poll" = 1 ] && runs="$runs hipri"
        [ "$want_poll" = 1 ] || tap_skip "fio: $ns io_uring --hipri (polled) verify" \
            "no poll queue: the controller grants one I/O queue"
        # Shares of FIO_TOTAL: libaio 2, io_uring 2, hipri 1 (its small blocks take longest).
        shares=4; [ "$want_poll" = 1 ] && shares=5
        slice=$(( $(disk_bytes "$disk") / ncpu / 1048576 * 1048576 ))
        split="bssplit=$lbs/15:$((3 * lbs))/10:8k/15:36k/10:128k/15:516k/10:1m/25"
        # Polled I/O stays polled only if the block layer need not split it (a split bio is
        # completed by interrupt), so --hipri keeps to 128 KiB and the disk's transfer limit.
        cap=$(qattr "$disk" max_hw_sectors_kb); [ "$cap" -gt 128 ] && cap=128
        psplit=bssplit=$lbs:$((3 * lbs))   # sizes without a share get equal shares
        for kb in 8 36 128; do
            [ "$kb" -le "$cap" ] && [ $((kb * 1024)) -gt $((3 * lbs)) ] && psplit=$psplit:${kb}k
        done
        written=0
        for run in $runs; do
            case $run in
                libaio) opts="ioengine=libaio bsrange=$lbs-1m mem_align=512" ;;
                io_uring) opts="ioengine=io_uring $split" ;;
                hipri) opts="ioengine=io_uring hipri=1 $psplit mem_align=512" ;;
            esac
            share=2; [ "$run" = hipri ] && share=1
            # Bytes per job, in whole MiB; more than a slice becomes several loops.
            per=$(( (FIO_TOTAL / shares * share / ncpu + 1048575) / 1048576 * 1048576 ))
            loops=$(( (per + slice - 1) / slice ))
            iosz=$(( (per / loops + 1048575) / 1048576 * 1048576 ))
            fio_jobs "$disk" "$ncpu" rw=randwrite io_size=$iosz loops=$loops iodepth=16 \
                verify=crc32c do_verify=1 verify_fatal=1 randseed=$((nsid * 10 + ${#run})) \
                $opts > /tmp/fio-verify.fio
            dev_irqs "$bdf" > /tmp/irq0
            t0=$(date +%s)
            fio_json fio-verify /tmp/fio-verify.fio
            rc=$?
            dt=$(( $(date +%s) - t0 ))
            dev_irqs "$bdf" > /tmp/irq1
            irq_delta /tmp/irq0 /tmp/irq1 > /tmp/irqd
            diag "$ns $run: $opts; loops $loops x $ncpu jobs x $((iosz >> 20)) MiB: wrote $((FIO_WBYTES >> 20)) MiB, verified $((FIO_RBYTES >> 20)) MiB, $FIO_IOS I/Os in $dt s; interrupts per vector:" $(tr ' \n' '+ ' < /tmp/irqd)
            if [ "$rc" = 0 ] && [ "$FIO_ERR" = 0 ] && [ "$FIO_WBYTES" -gt 0 ] && [ "$FIO_RBYTES" = "$FIO_WBYTES" ]; then
                tap_ok "fio: $ns $run random write + crc32c verify ($((FIO_WBYTES >> 20)) MiB)"
                written=$((written + FIO_WBYTES))
            else
                tap_fail "fio: $ns $run random write + crc32c verify (fio status $rc, error $FIO_ERR)"
                fio_diag fio-verify
            fi
            fired=$(awk '$2 > 0' /tmp/irqd | wc -l)
            case $run in
                libaio|io_uring)
                    want=$nq; [ "$want" -gt 2 ] && want=2
                    tap_check "fio: $ns $run I/O completed through $fired interrupt vectors (want >= $want)" \
                        test "$fired" -ge "$want" ;;
                hipri)
                    irqs=$(awk '{ s += $2 } END { print s + 0 }' /tmp/irqd)
                    tap_check "fio: $ns hipri I/O completed by polling ($irqs interrupts for $FIO_IOS I/Os)" \
                        test $((irqs * 10)) -lt "$FIO_IOS" ;;
            esac
        done
        tap_check "fio: $ns wrote and verified $((written >> 20)) MiB in all (want >= $((FIO_TOTAL >> 20)) MiB)" \
            test "$written" -ge "$FIO_TOTAL"
    done
done
detach_all
tap_check "fio: no kernel warnings" dmesg_clean || diag_file /tmp/bad.txt
