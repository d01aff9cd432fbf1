#!/usr/bin/env bash
# Shared by the proof scripts (sourced, not run): build, start and stop the real binaries on
# 127.0.0.1 with ephemeral ports, read their bound addresses from their logs, and sample a
# process's RSS, open file descriptors and CPU time from /proc. Every wait has a deadline.
#
#   PROFILE=release|debug (default debug)   which target/<profile>/ binaries to use
#   PROOF_NO_BUILD=1                         use the binaries as they are

PROOF_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PROFILE=${PROFILE:-debug}
BIN_DIR=$PROOF_ROOT/target/$PROFILE
PROOF_PIDS=()

proof_build() {
    [ "${PROOF_NO_BUILD:-0}" = 1 ] && return 0
    local flag=()
    [ "$PROFILE" = release ] && flag=(--release)
    (cd "$PROOF_ROOT" && cargo build -q "${flag[@]}" -p edge-metrics-exporter -p shelly-bridge -p shelly-sim)
}

proof_cleanup() {
    local p
    for p in "${PROOF_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PROOF_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PROOF_PIDS=()
}

# proof_wait_addr LOG NEEDLE [SECONDS] -> prints the first 127.0.0.1:PORT on a line with NEEDLE
proof_wait_addr() {
    local log=$1 needle=$2 limit=${3:-15} addr
    local deadline=$((SECONDS + limit))
    while [ $SECONDS -lt $deadline ]; do
        addr=$(grep -a -- "$needle" "$log" 2>/dev/null | grep -aoE '127\.0\.0\.1:[1-9][0-9]*' | head -1)
        if [ -n "$addr" ]; then echo "$addr"; return 0; fi
        sleep 0.1
    done
    echo "no address on a line with '$needle' in $log within ${limit}s:" >&2
    tail -20 "$log" >&2
    return 1
}

# proof_wait_http URL [SECONDS] [EXPECT_SUBSTRING]
proof_wait_http() {
    local url=$1 limit=${2:-15} want=${3:-}
    local deadline=$((SECONDS + limit)) body
    while [ $SECONDS -lt $deadline ]; do
        if body=$(curl -fsS --max-time 2 "$url" 2>/dev/null) && [[ $body == *"$want"* ]]; then
            return 0
        fi
        sleep 0.1
    done
    echo "no answer${want:+ containing '$want'} from $url within ${limit}s" >&2
    return 1
}

# proof_free_port -> an unused loopback port (for programs that cannot bind port 0 and report it)
proof_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_bridge DIR -> BRIDGE_PID BRIDGE_HTTP BRIDGE_WS (host:port), log DIR/bridge.log
start_bridge() {
    local dir=$1
    RUST_LOG=${RUST_LOG:-info} "$BIN_DIR/shelly-bridge" --bind 127.0.0.1 --ws-port 0 --http-port 0 \
        >"$dir/bridge.log" 2>&1 &
    BRIDGE_PID=$!
    PROOF_PIDS+=("$BRIDGE_PID")
    BRIDGE_WS=$(proof_wait_addr "$dir/bridge.log" "plug WebSocket")
    BRIDGE_HTTP=$(proof_wait_addr "$dir/bridge.log" "HTTP API")
}

# start_plugs DIR COUNT ALIAS [extra shelly-sim flags...] -> SIM_PID; waits until all are listed
start_plugs() {
    local dir=$1 count=$2 alias=$3 base
    shift 3
    base=$(curl -fsS --max-time 2 "http://$BRIDGE_HTTP/devices" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
    RUST_LOG=${SIM_LOG:-warn} "$BIN_DIR/shelly-sim" --url "ws://$BRIDGE_WS/$alias" \
        --count "$count" --backoff-min-ms 100 --backoff-max-ms 2000 "$@" >"$dir/sim-$alias.log" 2>&1 &
    SIM_PID=$!
    PROOF_PIDS+=("$SIM_PID")
    local deadline=$((SECONDS + 60)) n=0
    while [ $SECONDS -lt $deadline ]; do
        n=$(curl -fsS --max-time 2 "http://$BRIDGE_HTTP/devices" 2>/dev/null |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])' 2>/dev/null || echo 0)
        [ "$n" -ge $((base + count)) ] && return 0
        sleep 0.2
    done
    echo "only $((n - base)) of $count simulated plugs connected within 60 s" >&2
    tail -5 "$dir/sim-$alias.log" >&2
    return 1
}

# write_fake_tegrastats PATH CORPUS: a tegrastats stand-in that prints CORPUS lines in a loop
# at the --interval (ms) it is given, as the real one does.
write_fake_tegrastats() {
    cat >"$1" <<SH
#!/bin/sh
ms=1000
while [ \$# -gt 0 ]; do
    case \$1 in --interval) ms=\$2; shift 2 ;; *) shift ;; esac
done
secs=\$(awk "BEGIN{print \$ms/1000}")
while :; do
    while IFS= read -r line; do
        printf '%s\n' "\$line" || exit 0
        sleep "\$secs"
    done <"$2"
done
SH
    chmod +x "$1"
}

# start_exporter DIR CONFIG -> EXPORTER_PID EXPORTER_METRICS EXPORTER_API, log DIR/exporter.log
start_exporter() {
    local dir=$1 config=$2
    RUST_LOG=${RUST_LOG:-info} "$BIN_DIR/edge-metrics-exporter" --config "$config" \
        >"$dir/exporter.log" 2>&1 &
    EXPORTER_PID=$!
    PROOF_PIDS+=("$EXPORTER_PID")
    EXPORTER_METRICS=$(proof_wait_addr "$dir/exporter.log" "${EXPORTER_METRICS_NEEDLE:-server=\"metrics\"}")
    EXPORTER_API=$(proof_wait_addr "$dir/exporter.log" "${EXPORTER_API_NEEDLE:-server=\"management\"}")
}

# proc_rss_kib PID, proc_fds PID, proc_cpu_ticks PID (utime+stime), CLK_TCK
proc_rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
proc_hwm_kib() { awk '/^VmHWM:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
proc_fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
proc_cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
CLK_TCK=$(getconf CLK_TCK)

# enable_all_metrics API [TOKEN]: waits until the exporter has discovered metrics (including
# `power_*` when WANT_POWER=1), then turns every one on through POST /metrics/enable.
enable_all_metrics() {
    python3 - "$1" "${2:-}" "${WANT_POWER:-0}" <<'PY'
import json, sys, time, urllib.request
api, token, want_power = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
hdr = {"Authorization": f"Bearer {token}"} if token else {}
deadline = time.time() + 30
while True:
    with urllib.request.urlopen(urllib.request.Request(f"http://{api}/metrics/list", headers=hdr), timeout=5) as r:
        names = json.load(r)["metrics"]
    if names and (not want_power or any(n.startswith("power_") for n in names)):
        break
    if time.time() > deadline:
        sys.exit(f"metrics not discovered within 30 s: {sorted(names)}")
    time.sleep(0.2)
body = json.dumps({n: True for n in names}).encode()
req = urllib.request.Request(f"http://{api}/metrics/enable", data=body, method="POST",
                             headers={"Content-Type": "application/json", **hdr})
with urllib.request.urlopen(req, timeout=10) as r:
    print(f"enabled {json.load(r)['updated']} metrics")
PY
}
