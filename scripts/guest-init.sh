#!/bin/busybox sh
# PID 1 of the test VM: mount the basics, run what the kernel command line asks
# (orion.mode=check|run|shell|probe|bench), report on the control port (ttyS1), power off.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
hostname orion-vm

mode=check
for arg in $(cat /proc/cmdline); do
    case $arg in
        orion.mode=*) mode=${arg#orion.mode=} ;;
        orion.args=*) export ORION_ARGS=$(echo "${arg#orion.args=}" | tr ',' ' ') ;;
    esac
done
stty -F /dev/ttyS1 raw -echo 2>/dev/null
export ORION_CTL=/dev/ttyS1
export ORION_KVER=$(uname -r)
echo "ORION-BOOTED $(uname -r) mode=$mode" > /dev/ttyS1

rc=0
case $mode in
    probe) ;;
    check) sh /selftests/run.sh $ORION_ARGS > /dev/ttyS1 2>&1; rc=$? ;;
    run) sh /selftests/demo.sh > /dev/ttyS1 2>&1; rc=$? ;;
    bench) sh /selftests/bench.sh $ORION_ARGS > /dev/ttyS1 2>&1; rc=$? ;;
    shell) setsid cttyhack sh; rc=0 ;;
    *) echo "unknown orion.mode=$mode" > /dev/ttyS1; rc=2 ;;
esac
echo "ORION-DONE rc=$rc" > /dev/ttyS1
sync
poweroff -f
