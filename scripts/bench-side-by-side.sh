#!/usr/bin/env bash
# Two builds of the pair side by side, at the same time on the same machine, so that both see
# the same load: for each build an exporter (replayed AGX Orin corpus, interval 1 s, every
# discovered metric on, Shelly polled every cycle, /metrics scraped every second) and its own
# bridge with one simulated plug. Prints CPU-s per minute (from /proc/PID/schedstat, in
# nanoseconds rather than 10 ms ticks) and RSS (at the end, and the peak) of each daemon.
# Asserts nothing: the figures go to docs/PERFORMANCE.md.
#
#   scripts/bench-side-by-side.sh OLD_DIR NEW_DIR [SIM]
#
# OLD_DIR and NEW_DIR each hold an edge-metrics-exporter and a shelly-bridge binary (e.g. a
# `target/release` of an older checkout and of this one). SIM is the plug simulator both
# bridges get (default target/release/shelly-sim of this checkout). DURATION (seconds, default
# 120) sets the measured window; SHELLY=off runs the exporters without polling their bridges.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/check-lib.sh"
[ $# -ge 2 ] || fail "usage: scripts/bench-side-by-side.sh OLD_DIR NEW_DIR [SIM]"
OLD="$(cd "$1" && pwd)" NEW="$(cd "$2" && pwd)"
SIM="${3:-$root/target/release/shelly-sim}"
DURATION=${DURATION:-120}
SHELLY=${SHELLY:-on}
case "$SHELLY" in
    on) shelly_enabled=true probe=power_total_watts ;;
    off) shelly_enabled=false probe=jetson_ram_used_mb ;;
    *) fail "SHELLY is on or off, not $SHELLY" ;;
esac
CORPUS="$root/testdata/tegrastats/orin-agx-jp6.log"
for b in "$OLD/edge-metrics-exporter" "$OLD/shelly-bridge" "$NEW/edge-metrics-exporter" \
    "$NEW/shelly-bridge" "$SIM"; do
    [ -x "$b" ] || fail "$b is missing: build it first (cargo build --release)"
done

work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The address a daemon logged for `server="<name>"`, once it has.
logged_addr() { sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -o "server=\"$2\" address=[0-9.:]*" | head -1 | sed 's/.*address=//'; }

start_side() { # side dir
    local side="$1" bin="$2" d="$work/$1"
    mkdir -p "$d"
    NO_COLOR=1 "$bin/shelly-bridge" --bind 127.0.0.1 --ws-port 0 --http-port 0 >"$d/bridge.log" 2>&1 &
    pids+=($!); echo $! >"$d/bridge.pid"
    wait_for "$side bridge listening" 10 sh -c "grep -q 'Serving the HTTP API' '$d/bridge.log'" \
        || { cat "$d/bridge.log"; fail "$side bridge did not start"; }
    local ws http
    ws=$(sed 's/\x1b\[[0-9;]*m//g' "$d/bridge.log" | grep 'plug WebSocket' | grep -o 'address=[0-9.:]*' | sed 's/address=//')
    http=$(sed 's/\x1b\[[0-9;]*m//g' "$d/bridge.log" | grep 'HTTP API' | grep -o 'address=[0-9.:]*' | sed 's/address=//')
    "$SIM" --url "ws://$ws/edge-01" --jitter 1 >"$d/sim.log" 2>&1 &
    pids+=($!)
    wait_for "$side plug connected" 10 sh -c "curl -sf 'http://$http/devices' | grep -q edge-01" \
        || { cat "$d/bridge.log" "$d/sim.log"; fail "$side plug did not connect"; }
    { exporter_yaml edge-01; cat <<YAML; } >"$d/config.yaml"
tegrastats:
  replay: $CORPUS
shelly:
  enabled: $shelly_enabled
  server_url: http://$http
  device_id: edge-01
YAML
    NO_COLOR=1 RUST_LOG=warn,edge_metrics_exporter=info "$bin/edge-metrics-exporter" --config "$d/config.yaml" \
        >"$d/exporter.log" 2>&1 &
    pids+=($!); echo $! >"$d/exporter.pid"
    wait_for "$side exporter listening" 10 sh -c \
        "grep -q 'server=\"management\" address=' '$d/exporter.log' && grep -q 'server=\"metrics\" address=' '$d/exporter.log'" \
        || { cat "$d/exporter.log"; fail "$side exporter did not start"; }
    logged_addr "$d/exporter.log" metrics >"$d/metrics.addr"
    logged_addr "$d/exporter.log" management >"$d/api.addr"
}

enable_all() { # side
    local d="$work/$1" api
    api=$(cat "$d/api.addr")
    wait_for "$1 discovered its metrics" 15 sh -c \
        "curl -sf 'http://$api/metrics/list' | grep -q $probe"
    curl -sf "http://$api/metrics/list" \
        | python3 -c 'import json,sys; print(json.dumps({k: True for k in json.load(sys.stdin)["metrics"]}))' \
        | curl -sf -X POST -H 'Content-Type: application/json' -d @- "http://$api/metrics/enable" >/dev/null
}

cpu_ns() { awk '{ print $1 }' "/proc/$1/schedstat"; }
rss_kib() { awk "/^$2:/ { print \$2 }" "/proc/$1/status"; }

start_side old "$OLD"
start_side new "$NEW"
enable_all old
enable_all new
# Let the first full renders and the header caches settle before the window opens.
wait_for "both exporters serve $probe" 10 sh -c \
    "curl -sf http://$(cat "$work/old/metrics.addr")/metrics | grep -q '^$probe' &&
     curl -sf http://$(cat "$work/new/metrics.addr")/metrics | grep -q '^$probe'"

declare -A c0
for side in old new; do
    for daemon in exporter bridge; do
        pid=$(cat "$work/$side/$daemon.pid")
        c0[$side.$daemon]=$(cpu_ns "$pid")
    done
done
load0=$(cut -d' ' -f1 /proc/loadavg)
t0=$(date +%s.%N)
for _ in $(seq "$DURATION"); do
    for side in old new; do
        curl -sf -o "$work/$side/body" "http://$(cat "$work/$side/metrics.addr")/metrics" \
            || fail "$side exporter stopped answering"
    done
    sleep 1
done
t1=$(date +%s.%N)
load1=$(cut -d' ' -f1 /proc/loadavg)
minutes=$(awk "BEGIN { print ($t1 - $t0) / 60 }")

echo "Shelly $SHELLY; machine: $(nproc) cores, load ${load0} -> ${load1}, window $(awk "BEGIN { printf \"%.0f\", $t1 - $t0 }") s"
for side in old new; do
    echo "$side exporter: $(grep -vc '^#' "$work/$side/body") samples, $(wc -c <"$work/$side/body") bytes per scrape"
done
printf '%-6s %-9s %14s %10s %10s\n' side daemon CPU-s/min RSS_KiB peak_KiB
for side in old new; do
    for daemon in exporter bridge; do
        pid=$(cat "$work/$side/$daemon.pid")
        c1=$(cpu_ns "$pid")
        printf '%-6s %-9s %14.4f %10s %10s\n' "$side" "$daemon" \
            "$(awk "BEGIN { print ($c1 - ${c0[$side.$daemon]}) / 1e9 / $minutes }")" \
            "$(rss_kib "$pid" VmRSS)" "$(rss_kib "$pid" VmHWM)"
    done
done
