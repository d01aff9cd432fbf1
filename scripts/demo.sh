#!/usr/bin/env bash
# Runs the monitoring pair on this machine, on 127.0.0.1:
#   edge-metrics-exporter  :9102/metrics (Prometheus), :9101 (management API)
#   shelly-bridge          :8765 (plug WebSocket), :8766 (HTTP API)
#   one simulated Shelly plug (shelly-sim) dialling the bridge (unless --no-plug)
# On a Jetson (an executable /usr/bin/tegrastats) the exporter runs the real tegrastats with the
# model read from the device tree; elsewhere it replays a recorded Orin tegrastats log once a
# second (demo mode).
#
#   scripts/demo.sh                 run until Ctrl-C
#   scripts/demo.sh --check         start, check all three answer with data, stop (exit 0/1)
#   scripts/demo.sh --release       use an optimised build
#   scripts/demo.sh --replay FILE   replay another recorded log (see testdata/tegrastats/)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

check=0 profile=debug replay="$root/testdata/tegrastats/orin-agx-jp6.log" plug=1
while [ $# -gt 0 ]; do
    case $1 in
        --check) check=1 ;;
        --release) profile=release ;;
        --replay) replay=$(realpath "$2"); shift ;;
        --no-plug) plug=0 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "demo.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { printf 'demo: %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
    # A fresh Debian 12 without rustup: Debian's own current Rust toolchain.
    log "cargo not found: installing Debian's rustc-web and cargo-web"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web gcc >/dev/null
fi
command -v curl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }

for port in 9101 9102 8765 8766; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        log "port $port on 127.0.0.1 is already in use: stop what runs there (another demo?) and retry"
        exit 1
    fi
done

log "building (${profile})"
if [ "$profile" = release ]; then
    cargo build -q --release -p edge-metrics-exporter -p shelly-bridge -p shelly-sim
else
    cargo build -q -p edge-metrics-exporter -p shelly-bridge -p shelly-sim
fi
bin="$root/target/$profile"

work="$root/.demo"
mkdir -p "$work"
host=demo-jetson
if [ -x /usr/bin/tegrastats ]; then
    model=$(tr -d '\0' </proc/device-tree/model 2>/dev/null || true)
    case $model in
        *Orin*) device=jetson_orin ;;
        *Xavier*) device=jetson_xavier ;;
        *Nano*) device=jetson_nano ;;
        *) device=jetson ;;
    esac
    host=$(hostname)
    source_yaml="  path: /usr/bin/tegrastats"
    log "tegrastats found: ${model:-unknown model} → device_type ${device}"
else
    device=jetson_orin
    source_yaml="  replay: ${replay}"
    log "no /usr/bin/tegrastats: demo mode, replaying ${replay#"$root"/}"
fi
# A config without a `metrics:` map: the exporter enables its default set and writes every
# metric it discovers back into this file (edit it, or use the API, to switch them).
cat >"$work/config.yaml" <<YAML
device_type: ${device}
interval: 1
port: 9102
reload_port: 9101
bind_address: 127.0.0.1
reload_bind_address: 127.0.0.1
hostname: ${host}
tegrastats:
${source_yaml}
shelly:
  enabled: true
  server_url: http://127.0.0.1:8766
  device_id: ${host}
YAML

pids=()
stop() {
    trap - EXIT INT TERM
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop EXIT
trap 'exit 130' INT TERM

"$bin/shelly-bridge" --bind 127.0.0.1 >"$work/bridge.log" 2>&1 &
pids+=($!)
"$bin/edge-metrics-exporter" --config "$work/config.yaml" >"$work/exporter.log" 2>&1 &
pids+=($!)
if [ "$plug" = 1 ]; then
    "$bin/shelly-sim" --url "ws://127.0.0.1:8765/${host}" --profile plug-s-gen3 >"$work/plug.log" 2>&1 &
    pids+=($!)
fi

# Wait (bounded) until the exporter serves a Jetson reading and, with a plug, the wall power.
want='^jetson_ram_used_mb'
[ "$plug" = 1 ] && want='^power_total_watts'
ok=0
for _ in $(seq 1 60); do
    if curl -fsS --max-time 2 http://127.0.0.1:9102/metrics 2>/dev/null | grep -q "$want"; then ok=1; break; fi
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { log "a process exited early; logs in .demo/"; tail -n 20 "$work"/*.log >&2; exit 1; }; done
    sleep 1
done
if [ "$ok" != 1 ]; then
    log "no data on :9102/metrics after 60 s; logs in .demo/"; tail -n 20 "$work"/*.log >&2; exit 1
fi

cat <<MSG
edge-metrics is running (logs and config in .demo/):
  Prometheus metrics   http://127.0.0.1:9102/metrics
  management API       http://127.0.0.1:9101/health  /config  /metrics/list
  shelly-bridge        http://127.0.0.1:8766/devices  /metrics/${host}
MSG
curl -fsS http://127.0.0.1:9102/metrics | grep -E '^(jetson_power_|jetson_temp_cpu|jetson_cpu_avg|power_total_watts)' | head -n 8

if [ "$check" = 1 ]; then
    curl -fsS http://127.0.0.1:9101/health | grep -q '"status": *"healthy"' \
        || { log "management /health is not healthy: $(curl -sS http://127.0.0.1:9101/health)"; exit 1; }
    if [ "$plug" = 1 ]; then
        curl -fsS http://127.0.0.1:8766/devices | grep -q "\"${host}\"" \
            || { log "the simulated plug is not listed by the bridge"; exit 1; }
    fi
    log "check passed"
    exit 0
fi
echo "Ctrl-C stops everything."
wait
