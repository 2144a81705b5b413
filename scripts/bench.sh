#!/usr/bin/env bash
# `make bench`: the C nvme driver against orion_nvme on two identical emulated controllers in
# one VM (profile bench), the same fio workloads alternating between the drivers (A B in odd
# rounds, B A in even ones), controllers swapped between rounds. Results: out/bench/results.json and a table on stdout.
#   BENCH_C_ONLY=1    the C driver on both controllers (checks the bench itself; ratios ~1)
#   BENCH_ROUNDS=4    rounds (even: each driver gets each controller equally often)
#   BENCH_RUNTIME=5   seconds measured per run (after 1 s of ramp)
# Usage: bench.sh KERNEL_BUILD_DIR INITRD
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
. "$here/lib.sh"
kdir=$1 initrd=$2
out=$top/out/bench
mkdir -p "$out"

b=orion_nvme
[ "${BENCH_C_ONLY:-0}" = 1 ] && b=nvme
args="BENCH_B=$b,BENCH_ROUNDS=${BENCH_ROUNDS:-4},BENCH_RUNTIME=${BENCH_RUNTIME:-5}"
log "bench: A = nvme (C), B = $b; guest args $args"
rc=0
"$here/vm.py" --kernel "$kdir/arch/x86/boot/bzImage" --initrd "$initrd" --profile bench \
    --mode bench --args "$args" --smp 2 --rundir "$out/vm" --results "$out/raw.txt" \
    --timeout "${VM_TIMEOUT:-1800}" || rc=$?
if grep -q '^BENCH-ERROR' "$out/raw.txt"; then
    grep '^BENCH-ERROR' "$out/raw.txt" | sed 's/^/[orion] /' >&2
    die "bench failed in the guest (console: $out/vm/console.log)"
fi
[ "$rc" = 0 ] || die "bench VM failed (status $rc; console: $out/vm/console.log)"
python3 "$here/bench_report.py" "$out/raw.txt" "$out/results.json"
