#!/usr/bin/env bash
# Installs the Debian aarch64 toolchain used instead of `cross` on this machine:
# rustc-web/cargo-web (/usr/bin/rustc, /usr/bin/cargo) with the arm64 standard library,
# the aarch64 GNU linker and C library, and qemu-user-static with binfmt registered with flag F
# (the interpreter is opened at registration, so it also works inside containers and chroots).
# Idempotent.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    [ "$(id -u)" -eq 0 ] || die "need root to add the arm64 dpkg architecture; run: sudo $0"
    log "dpkg --add-architecture arm64"
    dpkg --add-architecture arm64
    APT_UPDATED=0
fi
apt_install rustc-web cargo-web libstd-rust-web-dev:arm64 libc6:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
    qemu-user-static binfmt-support
require_cmd aarch64-linux-gnu-gcc qemu-aarch64-static
[ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] || die "/usr/bin/rustc or /usr/bin/cargo missing after installing rustc-web cargo-web"
[ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu/lib ] \
    || die "the aarch64 standard library is missing (/usr/lib/rustlib/aarch64-unknown-linux-gnu); install libstd-rust-web-dev:arm64"

# binfmt: register qemu-aarch64 with flag F (fix binary). update-binfmts needs a mounted
# binfmt_misc; containers often lack it, so mount it when we may.
binfmt=/proc/sys/fs/binfmt_misc
if [ ! -e "$binfmt/register" ]; then
    mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null || true
fi
if [ -e "$binfmt/register" ]; then
    entry="$binfmt/qemu-aarch64"
    if [ -e "$entry" ] && ! grep -q '^flags:.*F' "$entry"; then
        log "re-registering qemu-aarch64 with flag F"
        echo -1 >"$entry"
    fi
    if [ ! -e "$entry" ]; then
        # Same magic/mask as Debian's /usr/share/binfmts/qemu-aarch64, with flags OCF.
        printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:OCF' \
            >"$binfmt/register" || die "cannot register qemu-aarch64 in $binfmt; is binfmt_misc writable?"
    fi
    grep -q '^flags:.*F' "$entry" || die "qemu-aarch64 binfmt entry lacks flag F: $(cat "$entry")"
    log "binfmt: $(tr '\n' ' ' <"$entry")"
else
    msg="binfmt_misc is not available; aarch64 binaries run only through the explicit runner qemu-aarch64-static"
    # The arm64 stage runs binaries through the explicit runner and needs no binfmt; whoever
    # does (EDGE_NEED_BINFMT=1) fails here unless EDGE_METRICS_ALLOW_SKIP names binfmt.
    if [ "${EDGE_NEED_BINFMT:-0}" = 1 ]; then
        missing binfmt "$msg; needs a writable /proc/sys/fs/binfmt_misc (root, privileged container)"
    else
        log "warning: $msg"
    fi
fi
log "ok: $(/usr/bin/rustc --version); $(aarch64-linux-gnu-gcc --version | head -1); $(qemu-aarch64-static --version | head -1)"
