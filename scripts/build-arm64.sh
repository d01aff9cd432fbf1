#!/usr/bin/env bash
# Builds static edge-metrics-exporter, shelly-bridge, edge-metrics-config-server and shelly-sim
# (the plug simulator, for the demo and tests; not shipped) binaries for linux/arm64 (and, with
# ARCHS="amd64 arm64", for linux/amd64 too) without `cross`:
#   arm64: Debian's rustc-web/cargo-web with libstd-rust-web-dev:arm64, linked by
#          aarch64-linux-gnu-gcc (scripts/setup/arm64.sh installs them);
#   amd64: the machine's default toolchain; so is arm64 on an aarch64 machine (a Jetson).
# Both link glibc statically (-C target-feature=+crt-static) so they run FROM scratch; the
# config server's SQLite is compiled in (rusqlite `bundled`) by the same cross C compiler.
# Output: dist/bin/<arch>/{edge-metrics-exporter,shelly-bridge,edge-metrics-config-server,shelly-sim}. Target dirs: target-dist-<arch>.
# Env: ARCHS (default "arm64"), PROFILE (default release), SKIP_SETUP=1 to skip installs.
# BUILDER=cross builds static musl binaries with `cross` and the images pinned in Cross.toml
# instead (the release workflow, where cross's images can be pulled); same output paths.
# The binaries carry `git describe`'s version and the commit (scripts/version.sh, the rule of
# scripts/build-version.rs), computed once per run and passed to every build as
# EDGE_METRICS_VERSION and EDGE_METRICS_REVISION (Cross.toml lets them into cross's container,
# which may have no git).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=build-lib.sh
. scripts/build-lib.sh
ARCHS="${ARCHS:-arm64}"
PROFILE="${PROFILE:-release}"
BINS=(edge-metrics-exporter shelly-bridge edge-metrics-config-server shelly-sim)
log() { printf 'build-arm64.sh: %s\n' "$*" >&2; }
# One version for every arch of this run: git describe once, handed to each build (a commit
# landing between the amd64 and the arm64 build must not give them different versions).
eval "$(bash scripts/version.sh)"
export EDGE_METRICS_VERSION="$VERSION" EDGE_METRICS_REVISION="$REVISION"

build_one() {
    local arch="$1" triple cargo rustc linker_env=() start
    if [ "${BUILDER:-cargo}" = cross ]; then build_cross "$arch"; return; fi
    local native
    native="$(native_arch)" || native=""
    case "$arch" in
        "$native")
            # This machine's own arch (amd64 on a PC, arm64 on a Jetson): its default toolchain.
            case "$arch" in arm64) triple=aarch64-unknown-linux-gnu ;; *) triple=x86_64-unknown-linux-gnu ;; esac
            cargo="$(command -v cargo || true)"
            rustc="$(command -v rustc || true)"
            ;;
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
        [ -n "$tool" ] && [ -x "$tool" ] || { log "error: cargo/rustc missing (rustup, or scripts/setup/arm64.sh for the cross build)"; exit 1; }
    done
    start=$SECONDS
    log "building $arch ($triple, profile $PROFILE, $VERSION) with $("$rustc" --version)"
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

# install_bins ARCH DIR: copies the binaries from DIR to dist/bin/ARCH; each must be static.
install_bins() {
    local arch="$1" dir="$2" outdir="dist/bin/$1" b
    mkdir -p "$outdir"
    for b in "${BINS[@]}"; do
        install -m 0755 "$dir/$b" "$outdir/$b"
        if file "$outdir/$b" | grep -q 'dynamically linked'; then
            log "error: $outdir/$b is dynamically linked; it would not run FROM scratch"; exit 1
        fi
        log "$outdir/$b: $(stat -c %s "$outdir/$b") bytes"
    done
}

build_cross() {
    local arch="$1" triple start
    case "$arch" in
        arm64) triple=aarch64-unknown-linux-musl ;;
        amd64) triple=x86_64-unknown-linux-musl ;;
        *) log "error: unknown arch '$arch' (use arm64 or amd64)"; exit 64 ;;
    esac
    command -v cross >/dev/null || { log "error: cross missing: cargo install cross --locked --version 0.2.5"; exit 1; }
    start=$SECONDS
    log "building $arch ($triple, profile $PROFILE) with cross ($VERSION, $REVISION)"
    cross build --locked --profile "$PROFILE" --target "$triple" \
        -p edge-metrics-exporter -p shelly-bridge -p edge-metrics-config-server -p shelly-sim
    local profdir="$PROFILE"
    [ "$PROFILE" = dev ] && profdir=debug
    install_bins "$arch" "target/$triple/$profdir"
    log "built $arch in $((SECONDS - start)) s"
}

for arch in $ARCHS; do build_one "$arch"; done
