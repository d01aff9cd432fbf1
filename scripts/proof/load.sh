#!/usr/bin/env bash
# Load, side by side in one run, on 127.0.0.1 only:
#  1. wrk against the exporter's GET /metrics and against Debian's prometheus-node-exporter
#     (default collectors), same connections and duration: requests/s, latency percentiles,
#     RSS after the run and peak, CPU seconds used, and the ratios.
#  2. The management API under a burst of concurrent POST /metrics/enable (burst.py).
#  3. The bridge with --plugs simulated plugs and concurrent GET /metrics/{device} callers.
#
#   scripts/proof/load.sh                               # 10 s per wrk run, 1000 plugs
#   scripts/proof/load.sh --duration 3 --plugs 200      # short (scripts/proof/run.sh)
#
# PROFILE=release (default here) or debug. Performance targets are printed, not enforced;
# the run fails only on wrong answers (non-2xx under load, a lost write, a dead process).
set -euo pipefail
export PROFILE=${PROFILE:-release}
. "$(dirname "$0")/lib.sh"
trap proof_cleanup EXIT
# 1,000 plugs are 1,000 sockets in the bridge and as many in the simulator.
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

duration=10 connections=16 threads=2 plugs=1000 burst=200
while [ $# -gt 0 ]; do
    case $1 in
        --duration) duration=$2; shift 2 ;;
        --connections) connections=$2; shift 2 ;;
        --plugs) plugs=$2; shift 2 ;;
        --burst) burst=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "load.sh: unknown option $1 (known: --duration S --connections N --plugs N --burst N)" >&2; exit 2 ;;
    esac
done
for tool in wrk prometheus-node-exporter curl python3; do
    command -v "$tool" >/dev/null || { echo "load.sh: $tool is missing (apt-get install wrk prometheus-node-exporter curl python3)" >&2; exit 1; }
done
proof_build
work=$(mktemp -d /tmp/edge-load.XXXXXX)
echo "load: profile ${PROFILE}, ${duration} s per run, ${connections} connections, ${threads} wrk threads; logs in ${work}"
failed=0

# --- the pair: bridge + one plug + exporter fed by a tegrastats stand-in -------------------
start_bridge "$work"
start_plugs "$work" 1 jetson-01
write_fake_tegrastats "$work/tegrastats" "$PROOF_ROOT/testdata/tegrastats/orin-agx-jp6.log"
cat >"$work/config.yaml" <<YAML
device_type: jetson_orin
interval: 1
port: 0
reload_port: 0
bind_address: 127.0.0.1
reload_bind_address: 127.0.0.1
hostname: load-test
tegrastats:
  path: $work/tegrastats
shelly:
  enabled: true
  server_url: http://$BRIDGE_HTTP
  device_id: jetson-01
YAML
start_exporter "$work" "$work/config.yaml"
WANT_POWER=1 enable_all_metrics "$EXPORTER_API"
proof_wait_http "http://$EXPORTER_METRICS/metrics" 20 "jetson_ram_used_mb"

node_port=$(proof_free_port)
prometheus-node-exporter --web.listen-address="127.0.0.1:$node_port" >"$work/node-exporter.log" 2>&1 &
NODE_PID=$!
PROOF_PIDS+=("$NODE_PID")
proof_wait_http "http://127.0.0.1:$node_port/metrics" 15 "node_"

to_ms() { # "1.23ms" | "456.78us" | "1.02s" -> milliseconds
    awk -v v="$1" 'BEGIN{ if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v+0} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000} else print v }'
}
# bench NAME PID URL [wrk args...] -> sets R_RPS R_P50 R_P90 R_P99 R_CPU R_RSS R_HWM R_ERR
bench() {
    local name=$1 pid=$2 url=$3
    shift 3
    local out=$work/wrk-$name.txt t0 t1
    curl -fsS -o /dev/null "$url" || true # warm
    t0=$(proc_cpu_ticks "$pid")
    wrk -t"$threads" -c"$connections" -d"${duration}s" --timeout 10s --latency "$@" "$url" >"$out" 2>&1
    t1=$(proc_cpu_ticks "$pid")
    R_RPS=$(awk '/^Requests\/sec:/{print $2}' "$out")
    R_P50=$(to_ms "$(awk '$1=="50%"{print $2}' "$out")")
    R_P90=$(to_ms "$(awk '$1=="90%"{print $2}' "$out")")
    R_P99=$(to_ms "$(awk '$1=="99%"{print $2}' "$out")")
    R_ERR=$(awk '/Non-2xx or 3xx responses:/{print $NF} /Socket errors:/{print "socket:" $0}' "$out" | tr '\n' ' ')
    R_CPU=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/hz}')
    R_RSS=$(proc_rss_kib "$pid")
    R_HWM=$(proc_hwm_kib "$pid")
    kill -0 "$pid" 2>/dev/null || { echo "load: $name died during the run" >&2; failed=1; }
    printf '%-16s %10s req/s  p50 %7s ms  p90 %7s ms  p99 %7s ms  cpu %6s s  rss %6s KiB  peak %6s KiB  %s\n' \
        "$name" "$R_RPS" "$R_P50" "$R_P90" "$R_P99" "$R_CPU" "$R_RSS" "$R_HWM" "${R_ERR:+errors: $R_ERR}"
    if [ -n "$R_ERR" ]; then failed=1; fi
}

echo "=== 1. GET /metrics: exporter vs prometheus-node-exporter $(prometheus-node-exporter --version 2>&1 | head -1 | awk '{print $3}')"
bench exporter "$EXPORTER_PID" "http://$EXPORTER_METRICS/metrics"
E_RPS=$R_RPS E_RSS=$R_RSS E_HWM=$R_HWM E_CPU=$R_CPU E_P99=$R_P99
bench node_exporter "$NODE_PID" "http://127.0.0.1:$node_port/metrics"
N_RPS=$R_RPS N_RSS=$R_RSS N_HWM=$R_HWM N_CPU=$R_CPU N_P99=$R_P99
E_BYTES=$(curl -fsS "http://$EXPORTER_METRICS/metrics" | wc -c)
N_BYTES=$(curl -fsS "http://127.0.0.1:$node_port/metrics" | wc -c)
awk -v er="$E_RPS" -v nr="$N_RPS" -v ers="$E_RSS" -v nrs="$N_RSS" -v eh="$E_HWM" -v nh="$N_HWM" \
    -v ec="$E_CPU" -v nc="$N_CPU" -v eb="$E_BYTES" -v nb="$N_BYTES" -v d="$duration" 'BEGIN{
    printf "ratios: throughput exporter/node_exporter %.1fx (target >= 5x)\n", er/nr
    printf "        RSS node_exporter/exporter %.1fx after load, %.1fx peak (target >= 3x)\n", nrs/ers, nh/eh
    printf "        CPU per 1000 requests: exporter %.3f s, node_exporter %.3f s (%.1fx)\n", 1000*ec/(er*d), 1000*nc/(nr*d), (nc/(nr*d))/(ec/(er*d))
    printf "        body size: exporter %d B, node_exporter %d B\n", eb, nb
}'

echo "=== 2. management API: burst of concurrent POST /metrics/enable"
python3 "$PROOF_ROOT/scripts/proof/burst.py" "$EXPORTER_API" "$work/config.yaml" "$burst" || failed=1
kill -0 "$EXPORTER_PID" 2>/dev/null || { echo "load: the exporter died during the burst" >&2; failed=1; }

echo "=== 3. bridge: ${plugs} simulated plugs, concurrent GET /metrics/{device}"
start_t=$SECONDS
start_plugs "$work" "$plugs" plug
echo "bridge: ${plugs} plugs connected in $((SECONDS - start_t)) s; rss $(proc_rss_kib "$BRIDGE_PID") KiB, fds $(proc_fds "$BRIDGE_PID")"
cat >"$work/devices.lua" <<LUA
local n = $plugs
math.randomseed(7)
request = function()
  return wrk.format("GET", "/metrics/plug-" .. math.random(1, n))
end
LUA
bench bridge "$BRIDGE_PID" "http://$BRIDGE_HTTP/metrics/plug-1" -s "$work/devices.lua"
echo "bridge after load: fds $(proc_fds "$BRIDGE_PID"), plugs listed $(curl -fsS "http://$BRIDGE_HTTP/devices" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')"

if [ "$failed" -ne 0 ]; then echo "load: FAILED (see above; logs in $work)"; exit 1; fi
echo "load: ok"
rm -rf "$work"
