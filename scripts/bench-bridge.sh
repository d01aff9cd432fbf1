#!/usr/bin/env bash
# Benchmark of shelly-bridge: RSS with 1 and with 1,000 simulated plugs (shelly-sim), and the
# /metrics/{device} round trip on loopback. Prints numbers; asserts nothing.
#
#   scripts/bench-bridge.sh                # release build, 1000 plugs, 2000 requests
#   PROFILE=dev scripts/bench-bridge.sh    # debug build (faster to build, slower to run)
#   scripts/bench-bridge.sh 2000 5000      # plugs, requests
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
PLUGS=${1:-1000}
REQUESTS=${2:-2000}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$PROFILE" = dev ]; then dir=debug; flag=(); else dir=release; flag=(--release); fi
cargo build -q "${flag[@]}" -p shelly-bridge --bin shelly-bridge --example bench_bridge -p shelly-sim --bin shelly-sim
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), profile ${PROFILE}"
"target/${dir}/examples/bench_bridge" "target/${dir}/shelly-bridge" "$PLUGS" "$REQUESTS"
