#!/usr/bin/env bash
# Benchmark of edge-metrics-config-server: 10,000 simulated exporters, each fetching and pushing
# its config once a minute (about 333 requests/s, spread evenly), against the release build on
# SQLite and on a throwaway PostgreSQL cluster. Prints latency per route, achieved rate,
# errors, the server's RSS and CPU; asserts nothing. Details: config-server/examples/fleet_load.rs.
#
#   scripts/bench-config-server.sh                          # both backends, 90 s each
#   scripts/bench-config-server.sh --backend sqlite --seconds 60
#   SERVER=dist/bin/amd64/edge-metrics-config-server scripts/bench-config-server.sh   # the image's binary
#
# PostgreSQL needs Debian's `postgresql` (apt-get install -y postgresql); as root its programs
# run as the postgres user.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ -z "${SERVER:-}" ]; then
    cargo build -q --release -p edge-metrics-config-server --bin edge-metrics-config-server
    SERVER=target/release/edge-metrics-config-server
fi
# The load generator needs no optimisation: it spends its time waiting.
cargo build -q -p edge-metrics-config-server --example fleet_load
exec target/debug/examples/fleet_load "$SERVER" "$@"
