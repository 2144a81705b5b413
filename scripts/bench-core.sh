#!/usr/bin/env bash
# Benchmark, not a test: instructions the driver core executes per 4 KiB read (build command +
# PRPs, submit, doorbell, reap), counted by callgrind on the simulated controller. Only the
# core's own code is counted (instructions whose source is in src/ or orion-compat/src/,
# wherever the compiler inlined them); the simulator's work (the controller model, simulated
# DMA memory, its allocations) is reported separately. Instruction counts are
# repeatable for the same binary, unlike times on a shared machine.
# Usage: bench-core.sh [READS] ; prints per-read figures for batch sizes 1 and 16.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
. "$here/lib.sh"
command -v valgrind >/dev/null || die "valgrind not installed (make setup)"
reads=${1:-20000}
cd "$top"
cargo build --quiet --release -p orion-sim --example io_cost
bin=$top/target/release/examples/io_cost
out=$top/out/bench-core; mkdir -p "$out"
printf '%-6s %14s %14s %14s\n' batch core/read sim/read total/read
for batch in 1 16; do
    for n in 1000 "$reads"; do
        valgrind --tool=callgrind --callgrind-out-file="$out/cg.$batch.$n" "$bin" "$n" "$batch" >/dev/null 2>&1
    done
    # Self cost by source file: instructions from the core's files (src/, and the API crate
    # orion-compat/src/), wherever inlined, against everything else. The difference between two
    # run lengths removes start-up.
    count() {
        callgrind_annotate --auto=no --threshold=100 --inclusive=no "$1" 2>/dev/null | python3 -c '
import re, sys
core = total = 0
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(\S[^:]*):", line)
    if m:
        n = int(m.group(1).replace(",", ""))
        total += n
        if m.group(2).startswith(("src/", "orion-compat/src/")):
            core += n
print(core, total)'
    }
    read -r c1 t1 < <(count "$out/cg.$batch.1000")
    read -r c2 t2 < <(count "$out/cg.$batch.$reads")
    core=$(( (c2 - c1) / (reads - 1000) ))
    all=$(( (t2 - t1) / (reads - 1000) ))
    printf '%-6s %14d %14d %14d\n' "$batch" "$core" "$((all - core))" "$all"
done
