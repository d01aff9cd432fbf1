#!/usr/bin/env bash
# Builds static edge-metrics-exporter, shelly-bridge, edge-metrics-config-server and shelly-sim
# (the plug simulator, for the demo and tests; not shipped) binaries for linux/arm64 (and, with
# ARCHS="amd64 arm64", for linux/amd64 too) without `cross`:
#   arm64: Debian's rustc-web/cargo-web with libstd-rust-web-dev:arm64, linked by
#          aarch64-linux-gnu-gcc (scripts/setup/arm64.sh installs them);
#   amd64: the machine's default toolchain.
# Both link glibc statically (-C target-feature=+crt-static) so they run FROM scratch; the
# config server's SQLite is compiled in (rusqlite `bundled`) by the same cross C compiler.
# Output: dist/bin/<arch>/{edge-metrics-exporter,shelly-bridge,edge-metrics-config-server,shelly-sim}. Target dirs: target-dist-<arch>.
# Env: ARCHS (default "arm64"), PROFILE (default release), SKIP_SETUP=1 to skip installs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
ARCHS="${ARCHS:-arm64}"
PROFILE="${PROFILE:-release}"
BINS=(edge-metrics-exporter shelly-bridge edge-metrics-config-server shelly-sim)
log() { printf 'build-arm64.sh: %s\n' "$*" >&2; }

build_one() {
    local arch="$1" triple cargo rustc linker_env=() start
    case "$arch" in
        arm64)
            [ "${SKIP_SETUP:-0}" = 1 ] || bash scripts/setup/arm64.sh
            triple=aarch64-unknown-linux-gnu
            cargo=/usr/bin/cargo
            rustc=/usr/bin/rustc
            linker_env=(CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc)
            ;;
        amd64)
            triple=x86_64-unknown-linux-gnu
            cargo="$(command -v cargo)"
            rustc="$(command -v rustc)"
            ;;
        *) log "error: unknown arch '$arch' (use arm64 or amd64)"; exit 64 ;;
    esac
    for tool in "$cargo" "$rustc"; do
        [ -x "$tool" ] || { log "error: $tool missing; run scripts/setup/arm64.sh"; exit 1; }
    done
    start=$SECONDS
    log "building $arch ($triple, profile $PROFILE) with $("$rustc" --version)"
    # RUSTFLAGS applies to the target only because --target is given, so build scripts and
    # proc macros stay dynamic host binaries.
    env "${linker_env[@]}" RUSTC="$rustc" RUSTFLAGS="-C target-feature=+crt-static" \
        CARGO_TARGET_DIR="$root/target-dist-$arch" \
        "$cargo" build --locked --profile "$PROFILE" --target "$triple" \
        -p edge-metrics-exporter -p shelly-bridge -p edge-metrics-config-server -p shelly-sim
    local outdir="dist/bin/$arch" profdir="$PROFILE"
    [ "$PROFILE" = dev ] && profdir=debug
    mkdir -p "$outdir"
    for b in "${BINS[@]}"; do
        install -m 0755 "target-dist-$arch/$triple/$profdir/$b" "$outdir/$b"
        if file "$outdir/$b" | grep -q 'dynamically linked'; then
            log "error: $outdir/$b is dynamically linked; it would not run FROM scratch"; exit 1
        fi
        log "$outdir/$b: $(stat -c %s "$outdir/$b") bytes"
    done
    log "built $arch in $((SECONDS - start)) s"
}

for arch in $ARCHS; do build_one "$arch"; done
