#!/bin/sh
# Runs every selftest in order as one TAP 13 stream, then the summary line.
# Usage: run.sh [TEST-NAME-PATTERN] [NAME=VALUE...]  (NAME=VALUE settings are exported first,
# e.g. ORION_TEST_DRIVER=nvme)
cd /selftests || exit 1
pat=
for a in "$@"; do
    case $a in
        [A-Z]*=*) export "$a" ;;
        *) pat=$a ;;
    esac
done
. ./lib.sh
echo "TAP version 13"
for t in tests/[0-9]*.sh; do
    name=$(basename "$t" .sh)
    case $name in *$pat*) ;; *) continue ;; esac
    echo "# --- $name"
    _t0=$(date +%s)
    # A test still running after ORION_TEST_WATCHDOG seconds (default 480) dumps the blocked
    # tasks and every task's stack to the console (console.log on the host), so a hang leaves
    # evidence before the host's VM timeout kills the guest.
    ( sleep "${ORION_TEST_WATCHDOG:-480}"
      echo "# watchdog: $name still running after ${ORION_TEST_WATCHDOG:-480} s; task dump on the console"
      echo "orion watchdog: $name still running; sysrq w, t follow" > /dev/kmsg
      echo w > /proc/sysrq-trigger; echo t > /proc/sysrq-trigger ) &
    _wd=$!
    . "./$t"
    kill "$_wd" 2>/dev/null
    echo "# --- $name took $(( $(date +%s) - _t0 )) s"
done
echo "1..$_n"
echo "# $_pass passed, $_fail failed, $_skip skipped"
[ "$_fail" -eq 0 ] && [ "$_n" -gt 0 ]
