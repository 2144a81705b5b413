#!/usr/bin/env bash
# Installs everything orion-nvme's build and VM tests need on a Debian bookworm machine.
# Idempotent: a second run only checks, and takes seconds.
#   - Debian packages (toolchain, QEMU, guest userland)
#   - bindgen-cli, pinned, built with cargo into the cache
#   - linux-source-7.3 from trixie-backports through the machine's own configured Debian mirror
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

PKGS=(rustc-web rust-web-src rust-web-clippy clang-19 lld-19 llvm-19 libclang-19-dev flex bison bc libelf-dev
      libssl-dev cpio qemu-system-x86 busybox-static fio nvme-cli kmod xz-utils python3 make gcc
      libc6-dev socat valgrind util-linux)
BINDGEN_VERSION=0.73.2
CARGO_FUZZ_VERSION=0.13.1
KSRC_PKG=linux-source-7.3
KSRC_SUITE=trixie-backports

sudo_=""
[ "$(id -u)" = 0 ] || sudo_="sudo"

# 1. Debian packages: install only what is missing.
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    $sudo_ apt-get update -q >/dev/null || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
        || die "cannot install Debian packages: ${missing[*]}"
fi

# 2. bindgen-cli (Linux 7.3 needs >= 0.71.1; Debian's is too old).
if ! "$BINDGEN" --version 2>/dev/null | grep -q "$BINDGEN_VERSION"; then
    command -v cargo >/dev/null || die "cargo not found: bindgen-cli is built with cargo"
    log "building bindgen-cli $BINDGEN_VERSION with cargo"
    cargo install --quiet --locked --root "$ORION_CACHE/tools" "bindgen-cli@$BINDGEN_VERSION" \
        || die "cannot install bindgen-cli $BINDGEN_VERSION with cargo"
fi

# 2b. cargo-fuzz for the parser fuzz targets (run with RUSTC_BOOTSTRAP=1 on the stable toolchain).
if ! "$CARGO_FUZZ" --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    log "building cargo-fuzz $CARGO_FUZZ_VERSION with cargo"
    cargo install --quiet --locked --root "$ORION_CACHE/tools" "cargo-fuzz@$CARGO_FUZZ_VERSION" \
        || die "cannot install cargo-fuzz $CARGO_FUZZ_VERSION with cargo"
fi

# 3. Kernel source from trixie-backports through this machine's own Debian mirror.
if [ ! -f "$KSRC/.orion-unpacked" ]; then
    mirror=$(debian_mirror) || die "no Debian mirror found in the apt configuration"
    apt_dir=$ORION_CACHE/apt
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/parts" "$apt_dir/archives/partial" "$apt_dir/dl"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $KSRC_SUITE main" \
        > "$apt_dir/sources.list"
    aptopts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/parts"
             -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
             -o "APT::Get::List-Cleanup=0" -o "APT::Sandbox::User=root")
    log "fetching $KSRC_PKG from $KSRC_SUITE"
    apt-get -q "${aptopts[@]}" update >/dev/null || die "apt-get update of $KSRC_SUITE failed"
    rm -f "$apt_dir/dl"/*.deb
    (cd "$apt_dir/dl" && apt-get -q "${aptopts[@]}" download "$KSRC_PKG/$KSRC_SUITE" >/dev/null) \
        || die "package $KSRC_PKG is not available from $KSRC_SUITE; refusing to build another kernel"
    rm -rf "$apt_dir/x" && mkdir -p "$apt_dir/x"
    dpkg -x "$apt_dir/dl"/"$KSRC_PKG"_*.deb "$apt_dir/x"
    tarball=$(ls "$apt_dir/x/usr/src/$KSRC_PKG".tar.* 2>/dev/null | head -n1)
    [ -n "$tarball" ] || die "$KSRC_PKG package holds no source tarball"
    rm -rf "$KSRC" && mkdir -p "$KSRC"
    tar -xf "$tarball" -C "$KSRC" --strip-components=1
    dpkg-deb -f "$apt_dir/dl"/"$KSRC_PKG"_*.deb Version > "$KSRC/.orion-debversion"
    rm -rf "$apt_dir/x"
    touch "$KSRC/.orion-unpacked"
fi
log "setup ok: $(cat "$KSRC/.orion-debversion") source, bindgen $("$BINDGEN" --version | awk '{print $2}')"
