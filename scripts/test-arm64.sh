#!/usr/bin/env bash
# Runs the workspace's tests as aarch64 binaries under qemu-user, without `cross`:
# Debian's rustc-web/cargo-web build them for aarch64-unknown-linux-gnu (linker
# aarch64-linux-gnu-gcc) into target-arm64/, and cargo runs each test binary through
# qemu-aarch64-static (CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER). The aarch64 loader and
# libc come from Debian's multiarch libc6:arm64 (/lib/ld-linux-aarch64.so.1), so binaries the
# tests spawn themselves run through binfmt the same way. Not `-L /usr/aarch64-linux-gnu`:
# with qemu 7.2 that makes every thread join hang (libtest never finishes a test).
# Prints how long the build and the run took.
# Env: ARM64_TEST_ARGS (default "--workspace"), e.g. "-p edge-metrics-exporter".
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
read -r -a args <<<"${ARM64_TEST_ARGS:---workspace}"

start=$SECONDS
log "building tests for aarch64 ($(/usr/bin/rustc --version))"
/usr/bin/cargo test --locked --target aarch64-unknown-linux-gnu "${args[@]}" --no-run
built=$((SECONDS - start))
log "running tests under $(qemu-aarch64-static --version | head -1)"
/usr/bin/cargo test --locked --no-fail-fast --target aarch64-unknown-linux-gnu "${args[@]}"
log "ok: build ${built} s, run $((SECONDS - start - built)) s"
