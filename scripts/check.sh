#!/usr/bin/env bash
# `make check`: every test, in stages, each timed. Ends with "N passed, N failed".
#   host:  cargo test, clippy -D warnings, rustfmt --check
#   VM:    the selftests (TAP) on each controller profile, under our own 7.3 kernel
# DEBUG=1 uses the KASAN/lockdep/kmemleak kernel. PROFILES overrides the VM profile list.
# SELFTEST_ARGS goes to the guest's runner, comma separated: a test-name pattern and NAME=VALUE
# settings (SELFTEST_ARGS=ORION_TEST_DRIVER=nvme runs the block I/O tests on the C driver).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
cd "$top"
. "$here/lib.sh"

DEBUG=${DEBUG:-0}
# LONG=1: the long fault runs, 500 controller resets (106) and 50 hot-unplugs (107).
if [ "${LONG:-0}" = 1 ]; then
    SELFTEST_ARGS="${SELFTEST_ARGS:+$SELFTEST_ARGS,}ORION_RESETS=500,ORION_UNPLUGS=50"
elif [ "$DEBUG" = 1 ]; then
    # The debug kernel runs TCG ten times slower (a reset under fio takes ~3 s): fewer
    # repetitions, and an hour per profile.
    SELFTEST_ARGS="${SELFTEST_ARGS:+$SELFTEST_ARGS,}ORION_RESETS=10,ORION_UNPLUGS=2"
    VM_TIMEOUT=${VM_TIMEOUT:-3600}
fi
PROFILES=${PROFILES:-single dual subsys odd faults changes}
variant=(); [ "$DEBUG" = 1 ] && variant=(--debug)
out=$top/out; [ "$DEBUG" = 1 ] && out=$top/out/debug
mkdir -p "$out"
passed=0 failed=0 skipped=0
timings=()

stage() { # stage NAME CMD...: run, time, and record a stage; a failed build stage stops here.
    local name=$1; shift
    local t0=$(date +%s)
    log "stage $name ..."
    "$@"
    local rc=$?
    local dt=$(( $(date +%s) - t0 ))
    timings+=("$(printf '%-22s %5d s  %s' "$name" "$dt" "$([ $rc = 0 ] && echo ok || echo FAILED)")")
    log "stage $name: $([ $rc = 0 ] && echo ok || echo FAILED) in ${dt} s"
    return $rc
}
finish() {
    echo
    echo "== stage timings"
    printf '   %s\n' "${timings[@]}"
    [ "$skipped" -gt 0 ] && echo "($skipped skipped; see '# SKIP' lines in out/results-*.tap)"
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ] && [ "$passed" -gt 0 ]
    exit $?
}
fatal_stage() { failed=$((failed + 1)); finish; }

stage setup "$here/setup.sh" || fatal_stage
stage kernel "$here/kernel.sh" "${variant[@]}" || fatal_stage
kdir=$("$here/kernel.sh" "${variant[@]}" --print-dir)
kbuild_module() { # kbuild_module [EXTRA MAKE ARGS]: build the module; any compiler warning fails it.
    make -s -C "$kdir" M="$top" LLVM=-19 RUSTC=/usr/bin/rustc HOSTRUSTC=/usr/bin/rustc "$@" modules \
        > "$out/kbuild.log" 2>&1
    local rc=$?
    cat "$out/kbuild.log"
    [ "$rc" = 0 ] && ! grep -q 'warning:' "$out/kbuild.log"
}
# The module must build on a kernel configured otherwise too (kconfig/alt.config: no debugfs,
# so no blk_mq_ops.show_rq): a module-only build against a prepared tree, from a copy of the
# sources (Kbuild refuses MO= on a source tree holding the other build's objects), so the
# module under test is the one built next. The prepared tree has no Module.symvers: modpost's
# unresolved symbols are expected there and only reported.
kbuild_alt() {
    local adir src=$out/alt-src alog=$out/kbuild-alt.log
    adir=$("$here/kernel.sh" --alt --print-dir)
    rm -rf "$src"; mkdir -p "$src"
    cp -r "$top/Kbuild" "$top/src" "$top/orion-compat" "$src/"
    local k=(-C "$adir" M="$src" LLVM=-19 RUSTC=/usr/bin/rustc HOSTRUSTC=/usr/bin/rustc)
    make -s "${k[@]}" clean > /dev/null 2>&1
    make -s "${k[@]}" KBUILD_MODPOST_WARN=1 modules > "$alog" 2>&1
    local rc=$?
    grep -v -e 'WARNING: modpost: .* undefined!' -e 'unresolved symbol warnings' \
        -e 'Module.symvers is missing' "$alog"
    [ "$rc" = 0 ] && [ -f "$src/orion_nvme.ko" ] && ! grep -q 'warning:' "$alog"
}
stage kernel-alt "$here/kernel.sh" --alt || fatal_stage
stage module-alt kbuild_alt || fatal_stage
# The kernel's own clippy lints (undocumented_unsafe_blocks among them) over the module crate.
stage module-clippy kbuild_module CLIPPY=1 CLIPPY_DRIVER=/usr/bin/clippy-driver || fatal_stage
stage module kbuild_module || fatal_stage

cargo_test() {
    cargo test --workspace --color never 2>&1 | tee "$out/cargo-test.log"
    local rc=${PIPESTATUS[0]}
    local p f
    p=$(grep -o 'test result: [a-zA-Z]*\. [0-9]* passed; [0-9]* failed' "$out/cargo-test.log" | awk '{s+=$4} END {print s+0}')
    f=$(grep -o 'test result: [a-zA-Z]*\. [0-9]* passed; [0-9]* failed' "$out/cargo-test.log" | awk '{s+=$6} END {print s+0}')
    [ "$rc" != 0 ] && [ "$f" = 0 ] && f=1   # a build failure is a failure
    passed=$((passed + p)); failed=$((failed + f))
    return "$rc"
}
one() { # one NAME CMD...: a pass/fail check counted as one test
    local name=$1; shift
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); log "$name FAILED"; return 1; fi
}
stage host-test cargo_test
stage clippy one clippy cargo clippy --workspace --all-targets --color never -- -D warnings
# The core stays portable: no unsafe, no OS named anywhere in it.
core_rules() {
    grep -q '^#!\[forbid(unsafe_code)\]' "$top/src/lib.rs" || { log "src/lib.rs lost #![forbid(unsafe_code)]"; return 1; }
    ! grep -rnw -e Linux -e linux -e Windows -e macOS -e FreeBSD "$top/src" || { log "src/ names an OS (above)"; return 1; }
    ! grep -rnE '\bunsafe *(\{|fn|impl|trait|extern)' "$top/src" || { log "src/ has unsafe code (above)"; return 1; }
}
stage core-rules one core-rules core_rules

fmt_all() {
    cargo fmt --all -- --check && rustfmt --check --edition 2021 "$top"/orion-compat/linux/orion_nvme_main.rs
}
stage rustfmt one rustfmt fmt_all

# Fuzz every parser of device data for a short while (FUZZ_SECONDS each; 0 skips, loudly).
fuzz_all() {
    local t rc=0
    for t in identify log_pages cq_reap; do
        if (cd "$top/orion-compat/sim/fuzz" && RUSTC_BOOTSTRAP=1 "$CARGO_FUZZ" run "$t" -- \
                -max_total_time="${FUZZ_SECONDS:-15}" > "$out/fuzz-$t.log" 2>&1); then
            passed=$((passed + 1)); log "fuzz $t: $(grep -o 'Done [0-9]* runs' "$out/fuzz-$t.log")"
        else
            failed=$((failed + 1)); rc=1; log "fuzz $t FAILED:"; tail -n 30 "$out/fuzz-$t.log" >&2
        fi
    done
    return $rc
}
if [ "${FUZZ_SECONDS:-15}" = 0 ]; then
    log "SKIP fuzz (FUZZ_SECONDS=0)"; skipped=$((skipped + 3))
else
    stage fuzz fuzz_all
fi

initrd=$out/initramfs-check.cpio.gz
stage initramfs "$here/initramfs.sh" "$kdir" "$top/orion_nvme.ko" "$initrd" || fatal_stage

# changes_args: the guest runner's arguments on the changes profile, which exists for the
# tests of a configuration changing under the driver (109-change-*, 110-change-*; 4 vCPUs
# under TCG make the whole suite slow there): SELFTEST_ARGS, with "change-" as the pattern
# unless SELFTEST_ARGS names one.
changes_args() {
    local a
    for a in $(echo "${SELFTEST_ARGS:-}" | tr ',' ' '); do
        case $a in [A-Z]*=*) ;; *) echo "$SELFTEST_ARGS"; return ;; esac
    done
    echo "change-${SELFTEST_ARGS:+,$SELFTEST_ARGS}"
}
vm_profile() {
    local p=$1 res=$out/vm-$p/../results-$p.tap args=${SELFTEST_ARGS:-}
    [ "$p" = changes ] && args=$(changes_args)
    "$here/vm.py" --kernel "$kdir/arch/x86/boot/bzImage" --initrd "$initrd" --profile "$p" \
        --mode check --rundir "$out/vm-$p" --results "$out/results-$p.tap" --timeout "${VM_TIMEOUT:-1200}" \
        ${args:+--args="$args"}
    local rc=$?
    local p_ok p_fail
    p_ok=$(grep '^ok ' "$out/results-$p.tap" | grep -vc '# SKIP')
    skipped=$((skipped + $(grep '^ok ' "$out/results-$p.tap" | grep -c '# SKIP')))
    p_fail=$(grep -c '^not ok ' "$out/results-$p.tap")
    # The console must be free of oopses and warnings whatever the tests said.
    if grep -E 'WARNING:|BUG:|Oops|Kernel panic|KASAN|Call Trace' "$out/vm-$p/console.log" > "$out/console-bad-$p.txt"; then
        log "profile $p: kernel warnings on the console:"; head -n 20 "$out/console-bad-$p.txt" >&2
        p_fail=$((p_fail + 1))
    fi
    # The power-off test's host half (selftests/tests/990-poweroff.sh): the driver shut the
    # controller down at power-off, and the marker written before it is in the backing file.
    local mark
    mark=$(sed -n 's/^# poweroff-mark: //p' "$out/results-$p.tap" | tail -n1)
    if [ -n "$mark" ]; then
        set -- $mark
        if [ "$(dd if="$1" bs=4096 skip=$(( $2 / 4096 )) count=1 2>/dev/null | sha256sum | cut -d' ' -f1)" = "$4" ]; then
            p_ok=$((p_ok + 1)); log "profile $p: the marker written before the power-off is in $1"
        else
            p_fail=$((p_fail + 1)); log "profile $p: the marker written before the power-off is NOT in $1"
        fi
        if [ "$5" != orion_nvme ]; then
            :
        elif grep -q 'orion_nvme: onvme[0-9]*: shutdown complete (power off)' "$out/vm-$p/console.log"; then
            p_ok=$((p_ok + 1)); log "profile $p: orion_nvme shut the controller down at power-off"
        else
            p_fail=$((p_fail + 1)); log "profile $p: no orion_nvme shutdown at power-off on the console"
        fi
    fi
    # No verdict from the guest (crash, hang, timeout) counts as a failure too.
    if [ "$rc" != 0 ] && [ "$p_fail" = 0 ]; then p_fail=1; fi
    passed=$((passed + p_ok)); failed=$((failed + p_fail))
    [ "$p_fail" = 0 ]
}
for p in $PROFILES; do
    stage "vm-$p" vm_profile "$p"
done
finish
