#!/usr/bin/env bash
# Builds (or finds in the cache) the orion-nvme test kernel.
#   kernel.sh [--debug|--alt] [--print-dir]
# --alt prepares a second configuration (kconfig/alt.config on top of orion.config) for
# building the module only: `modules_prepare`, which builds the kernel crate, no kernel image.
# The build lives outside the checkout, keyed by kernel version, config fragments and toolchain,
# so a warm run never rebuilds it. --print-dir prints the build dir without building.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

variant=std
print_only=0
for a in "$@"; do
    case $a in
        --debug) variant=debug ;;
        --alt) variant=alt ;;
        --print-dir) print_only=1 ;;
        *) die "kernel.sh: unknown argument $a" ;;
    esac
done
frags=("$here/kconfig/orion.config")
[ "$variant" = debug ] && frags+=("$here/kconfig/debug.config")
[ "$variant" = alt ] && frags+=("$here/kconfig/alt.config")

key_input() {
    cat "${frags[@]}"
    cat "$KSRC/.orion-debversion" 2>/dev/null || echo nosrc
    /usr/bin/rustc --version 2>/dev/null || true
    clang-19 --version 2>/dev/null | head -n1 || true
    "$BINDGEN" --version 2>/dev/null || true
}
key=$(key_input | sha256sum | cut -c1-12)
out=$ORION_CACHE/kbuild/$variant-$key
if [ "$print_only" = 1 ]; then echo "$out"; exit 0; fi
if [ -f "$out/.orion-built" ]; then
    log "kernel ($variant) cached: $out"
    exit 0
fi
[ -f "$KSRC/.orion-unpacked" ] || die "kernel source missing: run 'make setup'"

kmake() {
    make -C "$KSRC" O="$out" LLVM=-19 RUSTC=/usr/bin/rustc HOSTRUSTC=/usr/bin/rustc \
        BINDGEN="$BINDGEN" "$@"
}
mkdir -p "$out"
start=$(date +%s)
log "building kernel ($variant) in $out; this takes 10-15 minutes on 2 cores"
kmake -s tinyconfig >/dev/null
KCONFIG_CONFIG="$out/.config" "$KSRC/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "${frags[@]}" >/dev/null
kmake -s olddefconfig >/dev/null
# Every option we asked for must have survived olddefconfig (a missing dependency drops it
# silently). A later fragment overrides an earlier one, as in merge_config.
declare -A want_line=()
names=()
for f in "${frags[@]}"; do
    while IFS= read -r line; do
        case $line in ''|'#'*) continue ;; esac
        name=${line%%=*}
        [ -n "${want_line[$name]:-}" ] || names+=("$name")
        want_line[$name]=$line
    done < "$f"
done
bad=0
for name in "${names[@]}"; do
    line=${want_line[$name]}; want=${line#*=}
    if [ "$want" = n ]; then
        grep -qx "$name=[ym]" "$out/.config" && { log "config: $name wanted n, got $(grep "^$name=" "$out/.config")"; bad=1; }
    else
        grep -qx "$line" "$out/.config" || { log "config: $line wanted, got '$(grep -E "^(# )?$name[= ]" "$out/.config" || echo unset)'"; bad=1; }
    fi
done
[ "$bad" = 0 ] || die "kernel config fragment not satisfied (see above)"
targets=(bzImage modules)
[ "$variant" = alt ] && targets=(modules_prepare)
kmake -j"$(nproc)" "${targets[@]}" >"$out/build.log" 2>&1 || { tail -n 40 "$out/build.log" >&2; die "kernel build failed; log: $out/build.log"; }
touch "$out/.orion-built"
log "kernel ($variant) built in $(( $(date +%s) - start )) s"
