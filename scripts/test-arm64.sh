#!/usr/bin/env bash
# Runs the workspace's tests as aarch64 binaries under qemu-user, without `cross`:
# Debian's rustc-web/cargo-web build them for aarch64-unknown-linux-gnu (linker
# aarch64-linux-gnu-gcc) into target-arm64/, and cargo runs each test binary through
# qemu-aarch64-static (CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER). The aarch64 loader and
# libc come from Debian's multiarch libc6:arm64 (/lib/ld-linux-aarch64.so.1), so binaries the
# tests spawn themselves run through binfmt the same way. Not `-L /usr/aarch64-linux-gnu`:
# with qemu 7.2 that makes every thread join hang (libtest never finishes a test).
# Prints how long the build and the run took.
# What runs: every test of both daemons (unit, golden corpus, end to end) and the cross-binary,
# Helm and Grafana tests. The fault-injection and OpenAPI suites (tests/tests/faults_*.rs,
# openapi.rs) assert response-time and timeout budgets that an emulated CPU cannot meet; they
# test behaviour, not the architecture, and run natively in the `rust` stage.
# Env: ARM64_TEST_ARGS replaces that selection, e.g. "-p edge-metrics-exporter".
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { printf 'test-arm64.sh: %s\n' "$*" >&2; }

bash scripts/setup/arm64.sh
for t in /usr/bin/cargo /usr/bin/rustc aarch64-linux-gnu-gcc qemu-aarch64-static; do
    command -v "$t" >/dev/null || { log "FAIL: $t missing after scripts/setup/arm64.sh"; exit 1; }
done
[ -e /lib/ld-linux-aarch64.so.1 ] || { log "FAIL: no aarch64 loader at /lib/ld-linux-aarch64.so.1 (libc6:arm64)"; exit 1; }

export RUSTC=/usr/bin/rustc
export CARGO_TARGET_DIR="$root/target-arm64"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64-static
unset QEMU_LD_PREFIX


# Each selection is one cargo invocation (cargo cannot exclude test targets by name).
if [ -n "${ARM64_TEST_ARGS:-}" ]; then
    selections=("$ARM64_TEST_ARGS")
else
    # Doc tests are left out: cargo would run the rustup rustdoc, which has no aarch64 std.
    selections=("-p edge-metrics-exporter -p shelly-bridge -p shelly-sim --lib --bins --tests" "-p e2e --test shelly_pair --test grafana --test helm")
fi
cargo_arm64() { /usr/bin/cargo test --locked --target aarch64-unknown-linux-gnu "$@"; }

start=$SECONDS
log "building tests for aarch64 ($(/usr/bin/rustc --version))"
for sel in "${selections[@]}"; do
    read -r -a args <<<"$sel"
    cargo_arm64 "${args[@]}" --no-run
done
# The Helm test runs the rendered Config Server too: its binary, not its tests (those need
# PostgreSQL and Chromium, which run natively).
/usr/bin/cargo build --locked --target aarch64-unknown-linux-gnu -p edge-metrics-config-server --bin edge-metrics-config-server
built=$((SECONDS - start))
log "running tests under $(qemu-aarch64-static --version | head -1)"
status=0
for sel in "${selections[@]}"; do
    read -r -a args <<<"$sel"
    cargo_arm64 --no-fail-fast "${args[@]}" || status=1
done
log "build ${built} s, run $((SECONDS - start - built)) s"
exit "$status"
