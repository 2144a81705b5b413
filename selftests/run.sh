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
    . "./$t"
    echo "# --- $name took $(( $(date +%s) - _t0 )) s"
done
echo "1..$_n"
echo "# $_pass passed, $_fail failed, $_skip skipped"
[ "$_fail" -eq 0 ] && [ "$_n" -gt 0 ]
