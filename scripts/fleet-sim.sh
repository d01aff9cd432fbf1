#!/usr/bin/env bash
# A simulated fleet on this machine, to price a real one (docs/SCALE.md):
#   N exporters in replay mode (distinct hostnames fleet-0001..; models and JetPack releases
#   taken in turn from testdata/tegrastats/, each with its device_type), one metrics and one
#   management port each, all on 127.0.0.1;
#   one shelly-bridge holding N simulated plugs (shelly-sim --count N), plug i polled by
#   exporter i through shelly.device_id;
#   one Prometheus agent scraping every exporter and the bridge (each target labelled with its
#   node, as a per-node agent's external label would), remote-writing to one receiver (a second
#   Prometheus with --web.enable-remote-write-receiver). All native, no containers.
# After every target is up at the receiver, it measures for WINDOW seconds and prints one row
# per N: series per node at the receiver, samples/s the receiver appends, bytes/s the agent
# sends (compressed, as on the link), the agent's RSS and CPU (total and per target), the
# exporters' RSS (mean and max) and CPU, and the load average.
#
#   scripts/fleet-sim.sh 10               # one fleet size
#   scripts/fleet-sim.sh 10 50 200        # several, one after another, one table
# Env: INTERVAL (scrape interval and exporter interval, seconds; 1), WINDOW (60),
#      FLEET_BIN_DIR (dist/bin/amd64, built by `ARCHS=amd64 scripts/build-arm64.sh` if missing),
#      KEEP_TMP=1 keeps the logs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=setup/lib.sh
. scripts/setup/lib.sh
log() { printf '[%(%H:%M:%S)T] fleet-sim.sh: %s\n' -1 "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
[ $# -gt 0 ] || { sed -n '2,20p' "$0" >&2; exit 64; }
for n in "$@"; do [[ $n =~ ^[1-9][0-9]*$ ]] || fail "N must be a positive integer, got '$n'"; done
INTERVAL="${INTERVAL:-1}"
WINDOW="${WINDOW:-60}"
bin="${FLEET_BIN_DIR:-$root/dist/bin/amd64}"

for t in prometheus curl python3; do
    command -v "$t" >/dev/null && continue
    missing "$t" "not on PATH; scripts/setup/deps.sh installs it (Debian packages prometheus, curl, python3)"
    exit 0
done
for b in edge-metrics-exporter shelly-bridge shelly-sim; do
    if [ ! -x "$bin/$b" ]; then
        [ -z "${FLEET_BIN_DIR:-}" ] || fail "$bin/$b missing"
        log "no $bin/$b: building release binaries (scripts/build-arm64.sh, minutes)"
        ARCHS=amd64 SKIP_SETUP=1 bash scripts/build-arm64.sh
        break
    fi
done

# Model → device_type, in the order nodes take them.
models=(
    orin-agx-jp6:jetson_orin orin-nx-jp6:jetson_orin orin-nano-jp6:jetson_orin orin-agx-jp5:jetson_orin
    xavier-agx-jp5:jetson_xavier xavier-nx-jp5:jetson_xavier xavier-agx-jp4:jetson_xavier
    xavier-nx-jp4:jetson_xavier tx2-jp4:jetson_xavier nano-jp4:jetson_nano thor-jp7:jetson
)

pids=()
tmp=""
stop_all() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
}
cleanup() {
    local rc=$?
    stop_all
    if [ -n "$tmp" ] && [ "${KEEP_TMP:-0}" != 1 ]; then rm -rf "$tmp"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_ports K: K distinct free ports on 127.0.0.1 (all held open while choosing).
free_ports() {
    python3 -c '
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
ports = [s.getsockname()[1] for s in socks]
for s in socks:
    s.close()   # before printing: the caller starts binding as soon as it reads the line
print(" ".join(map(str, ports)))' "$1"
}
now() { python3 -c 'import time; print(f"{time.time():.3f}")'; }
# metric URL NAME: the sum of NAME's samples on a /metrics page.
metric() {
    curl -fsS --max-time 10 "$1" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $2 } END { printf "%.6f\n", s }'
}
# value QUERY: the single value of an instant query at the receiver, or empty.
value() {
    curl -fsS --max-time 10 "http://127.0.0.1:$recv_port/api/v1/query" --data-urlencode "query=$1" \
        | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if len(r)==1 else "")'
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz="$(getconf CLK_TCK)"

rows=()
run_fleet() {
    local n=$1 i ports port_list ws_port http_port agent_port recv_port
    tmp="$(mktemp -d /tmp/edge-metrics-fleet.XXXXXX)"
    log "N=$n: starting $n exporters, a bridge with $n plugs, an agent and a receiver"
    read -r -a port_list <<<"$(free_ports $((2 * n + 4)))"
    ws_port=${port_list[0]} http_port=${port_list[1]} agent_port=${port_list[2]} recv_port=${port_list[3]}

    "$bin/shelly-bridge" --bind 127.0.0.1 --ws-port "$ws_port" --http-port "$http_port" \
        >"$tmp/bridge.log" 2>&1 &
    bridge_pid=$!; pids+=("$bridge_pid")
    "$bin/shelly-sim" --url "ws://127.0.0.1:$ws_port/fleet" --count "$n" --backoff-max-ms 2000 \
        >"$tmp/sim.log" 2>&1 &
    sim_pid=$!; pids+=("$sim_pid")

    exporter_pids=()
    {
        printf 'global:\n  scrape_interval: %ss\n  scrape_timeout: %ss\n' "$INTERVAL" "$INTERVAL"
        printf '  external_labels: {cluster: sim, site: fleet-sim}\n'
        printf 'scrape_configs:\n  - job_name: edge-metrics-exporter\n    static_configs:\n'
    } >"$tmp/agent.yml"
    for ((i = 0; i < n; i++)); do
        local host entry log_name device mport rport plug
        host="$(printf 'fleet-%04d' "$((i + 1))")"
        entry="${models[$((i % ${#models[@]}))]}"
        log_name="${entry%%:*}" device="${entry#*:}"
        mport=${port_list[$((4 + 2 * i))]} rport=${port_list[$((5 + 2 * i))]}
        # shelly-sim --count N: plug i (from 1) dials PATH-i; a single plug dials PATH itself.
        plug=fleet
        [ "$n" -gt 1 ] && plug="fleet-$((i + 1))"
        mkdir -p "$tmp/$host"
        cat >"$tmp/$host/config.yaml" <<YAML
device_type: $device
interval: $INTERVAL
port: $mport
reload_port: $rport
bind_address: 127.0.0.1
hostname: $host
tegrastats:
  replay: $root/testdata/tegrastats/$log_name.log
shelly:
  enabled: true
  server_url: http://127.0.0.1:$http_port
  device_id: $plug
YAML
        "$bin/edge-metrics-exporter" --config "$tmp/$host/config.yaml" >"$tmp/$host/exporter.log" 2>&1 &
        exporter_pids+=($!); pids+=($!)
        printf '      - targets: ["127.0.0.1:%s"]\n        labels: {node: %s}\n' "$mport" "$host" >>"$tmp/agent.yml"
    done
    cat >>"$tmp/agent.yml" <<YAML
  - job_name: shelly-bridge
    metrics_path: /bridge/metrics
    static_configs: [{targets: ["127.0.0.1:$http_port"], labels: {node: fleet-bridge}}]
remote_write:
  - url: http://127.0.0.1:$recv_port/api/v1/write
    queue_config: {max_samples_per_send: 2000, max_shards: 10, retry_on_http_429: true}
YAML
    printf 'global: {}\n' >"$tmp/receiver.yml"
    prometheus --config.file="$tmp/receiver.yml" --storage.tsdb.path="$tmp/receiver-data" \
        --web.listen-address="127.0.0.1:$recv_port" --web.enable-remote-write-receiver \
        >"$tmp/receiver.log" 2>&1 &
    recv_pid=$!; pids+=("$recv_pid")
    prometheus --enable-feature=agent --config.file="$tmp/agent.yml" \
        --storage.agent.path="$tmp/agent-wal" --web.listen-address="127.0.0.1:$agent_port" \
        >"$tmp/agent.log" 2>&1 &
    agent_pid=$!; pids+=("$agent_pid")

    # Every exporter up, with its plug's reading, at the receiver (bounded).
    local deadline=$((SECONDS + 120 + n)) up="" plugs=""
    while :; do
        up="$(value 'count(up{job="edge-metrics-exporter"} == 1)' 2>/dev/null || true)"
        plugs="$(value 'count(power_total_watts)' 2>/dev/null || true)"
        [ "${up:-0}" = "$n" ] && [ "${plugs:-0}" = "$n" ] && break
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -5 "$tmp/agent.log" "$tmp/bridge.log" "$tmp/sim.log" >&2 || true
            fail "N=$n: after $((120 + n)) s the receiver has ${up:-0} exporters up and ${plugs:-0} plug readings, want $n"
        fi
        for p in "$bridge_pid" "$sim_pid" "$recv_pid" "$agent_pid"; do
            kill -0 "$p" 2>/dev/null || fail "N=$n: a process exited early; logs in $tmp (KEEP_TMP=1 keeps them)"
        done
        sleep 1
    done
    log "N=$n: all $n exporters up with plug readings at the receiver; measuring for $WINDOW s"

    local t0 t1 s0 s1 b0 b1 a0 a1 e0 e1 p
    t0="$(now)"
    s0="$(metric "http://127.0.0.1:$recv_port/metrics" prometheus_tsdb_head_samples_appended_total)"
    b0="$(metric "http://127.0.0.1:$agent_port/metrics" prometheus_remote_storage_bytes_total)"
    a0="$(ticks "$agent_pid")"
    e0=0; for p in "${exporter_pids[@]}"; do e0=$((e0 + $(ticks "$p"))); done
    sleep "$WINDOW"   # the measurement window: a deliberate wait
    t1="$(now)"
    s1="$(metric "http://127.0.0.1:$recv_port/metrics" prometheus_tsdb_head_samples_appended_total)"
    b1="$(metric "http://127.0.0.1:$agent_port/metrics" prometheus_remote_storage_bytes_total)"
    a1="$(ticks "$agent_pid")"
    e1=0; for p in "${exporter_pids[@]}"; do e1=$((e1 + $(ticks "$p"))); done

    local series series_bridge agent_rss recv_rss bridge_rss sim_rss exp_rss load
    series="$(value 'count({job="edge-metrics-exporter"})')"
    series_bridge="$(value 'count({job="shelly-bridge"})')"
    agent_rss="$(rss_kib "$agent_pid")" recv_rss="$(rss_kib "$recv_pid")"
    bridge_rss="$(rss_kib "$bridge_pid")" sim_rss="$(rss_kib "$sim_pid")"
    exp_rss="$(for p in "${exporter_pids[@]}"; do rss_kib "$p"; done | awk '{ s += $1; if ($1 > m) m = $1 } END { printf "%.0f %d", s / NR, m }')"
    load="$(cut -d' ' -f1-3 /proc/loadavg)"
    rows+=("$(python3 - "$n" "$t0" "$t1" "$s0" "$s1" "$b0" "$b1" "$a0" "$a1" "$e0" "$e1" "$hz" \
        "$series" "$series_bridge" "$agent_rss" "$recv_rss" "$bridge_rss" "$sim_rss" "$exp_rss" "$load" <<'PY'
import sys
a = sys.argv[1:]
n = int(a[0]); dt = float(a[2]) - float(a[1])
samples = (float(a[4]) - float(a[3])) / dt
link = (float(a[6]) - float(a[5])) / dt
hz = float(a[11])
agent_cpu = (float(a[8]) - float(a[7])) / hz / dt * 100      # % of one core
exp_cpu = (float(a[10]) - float(a[9])) / hz / dt * 100 / n
series, sbridge = int(float(a[12])), int(float(a[13]))
agent_rss, recv_rss, bridge_rss, sim_rss = (int(x) / 1024 for x in a[14:18])
exp_mean, exp_max = (int(x) / 1024 for x in a[18].split())
print(f"{n:>5} | {series / n:>7.1f} | {sbridge:>6} | {samples:>9.0f} | {samples / n:>7.1f} | {link:>9.0f} | {link / n:>7.0f} | "
      f"{agent_rss:>7.1f} | {agent_rss / n * 1024:>8.0f} | {agent_cpu:>6.1f} | {agent_cpu / n:>7.3f} | "
      f"{exp_mean:>6.1f} / {exp_max:<5.1f} | {exp_cpu:>6.2f} | {bridge_rss:>6.1f} | {recv_rss:>7.1f} | {a[19]}")
PY
)")
    log "N=$n: ${rows[-1]}"
    stop_all
    [ "${KEEP_TMP:-0}" = 1 ] && log "N=$n: logs kept in $tmp" || rm -rf "$tmp"
    tmp=""
}

for n in "$@"; do run_fleet "$n"; done

printf '\nfleet simulation on %s (%s cores, %s), scrape and exporter interval %s s, window %s s:\n' \
    "$(hostname)" "$(nproc)" "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$INTERVAL" "$WINDOW"
printf '%5s | %7s | %6s | %9s | %7s | %9s | %7s | %7s | %8s | %6s | %7s | %14s | %6s | %6s | %7s | %s\n' \
    N series/node "bridge" "samples/s" "per node" "link B/s" "B/s/node" "agt MiB" "KiB/tgt" "agt %" "%/tgt" \
    "exp MiB mean/max" "exp %" "brg MiB" "recv MiB" "load 1/5/15 at end"
printf '%s\n' "${rows[@]}"
