#!/usr/bin/env bash
# Builds the VM's initramfs in two layers:
#   base    busybox-static, fio, nvme-cli, util-linux's blkdiscard (busybox's cannot write
#           zeroes) and their libraries; cached in $ORION_CACHE, keyed by
#           package versions and this script, so a warm run never rebuilds it.
#   overlay /init, the selftests (with the C ones compiled) and the modules; rebuilt every
#           run (it takes a second).
# Usage: initramfs.sh KBUILD_DIR MODULE_KO OUTPUT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
. "$here/lib.sh"
kbuild=$1 ko=$2 output=$3

tools=(/bin/busybox /usr/bin/fio /usr/sbin/nvme /usr/sbin/blkdiscard)
key=$( { dpkg-query -W busybox-static fio nvme-cli libnvme1 util-linux 2>/dev/null; cat "$0"; } | sha256sum | cut -c1-12)
base=$ORION_CACHE/initramfs/base-$key.cpio.gz
if [ ! -f "$base" ]; then
    log "building initramfs base layer (busybox, fio, nvme-cli, blkdiscard)"
    stage=$(mktemp -d)
    trap 'rm -rf "$stage"' EXIT
    mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,etc,proc,sys,dev,tmp,root,run,mnt}
    for t in "${tools[@]}"; do
        [ -x "$t" ] || die "missing $t (run make setup)"
        install -D "$t" "$stage$t"
        # Copy every shared library the tool needs, at the same path (ldd prints "name => path").
        { ldd "$t" 2>/dev/null || true; } | grep -o '/[^ ]*' | while read -r lib; do
            [ -e "$stage$lib" ] || install -D "$(readlink -f "$lib")" "$stage$lib"
        done || true
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/tmp:/bin/sh\n' > "$stage/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' > "$stage/etc/group"
    mkdir -p "$(dirname "$base")"
    (cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) > "$base.tmp"
    mv "$base.tmp" "$base"
    rm -rf "$stage"; trap - EXIT
fi

kver=$(cat "$kbuild/include/config/kernel.release")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mods=$stage/lib/modules/$kver
mkdir -p "$mods" "$stage/selftests"
install -m 0644 "$ko" "$mods/"
for m in drivers/nvme/host/nvme-core.ko drivers/nvme/host/nvme.ko; do
    [ -f "$kbuild/$m" ] && install -m 0644 "$kbuild/$m" "$mods/"
done
cp -r "$top/selftests/." "$stage/selftests/"
# The C selftests, built on the kernel's kselftest harness (static: the guest has no libc of its own).
mkdir -p "$stage/usr/bin"
for c in "$top"/selftests/ioctl/*.c; do
    gcc -static -O2 -Wall -Werror -Wno-missing-field-initializers -I"$KSRC/tools/testing/selftests" \
        -o "$stage/usr/bin/$(basename "$c" .c)" "$c" || die "building ${c#"$top"/} failed"
done
install -m 0755 "$here/guest-init.sh" "$stage/init"
install -D -m 0755 "$here/orion-nvme-cli" "$stage/usr/sbin/orion-nvme-cli"
(cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) > "$stage.overlay"
cat "$base" "$stage.overlay" > "$output"
rm -f "$stage.overlay"
