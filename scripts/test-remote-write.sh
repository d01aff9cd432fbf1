#!/usr/bin/env bash
# The remote-write outage test, for real: no sample taken while the central store is away is
# lost.
#  1. build the amd64 images FROM scratch with the project's Dockerfiles: the exporter, the
#     bridge and the plug simulator from static dev binaries built into this run's own context
#     (or RW_BIN_DIR's), the Prometheus agent from Debian's binary
#     (docker/prometheus-agent.Dockerfile);
#  2. bring up compose.yaml + compose.demo.yaml + compose.remote-write.yaml: the exporter
#     replaying testdata/tegrastats/orin-agx-jp6.log, the bridge with a simulated plug, and the
#     agent scraping both every second, its WAL on the named volume, its config made from
#     deploy/prometheus-agent/agent.yml (ports and URL substituted, nothing else);
#  3. a second, native Prometheus on 127.0.0.1 is the receiver (--web.enable-remote-write-
#     receiver, basic auth from a web config): it must answer PromQL for the exporter's series
#     carrying the external labels cluster, site and node;
#  4. the receiver is stopped for 60 s and started again on the same data; once the agent has
#     sent past the outage, count_over_time over the outage window must hold at least 95 % of
#     the samples one per second gives, for a Jetson series and for the plug's wall power. The
#     percentages are printed, with the agent's memory, CPU and WAL size.
# Everything listens on 127.0.0.1 (host network) on ports picked free at start, and is torn
# down on exit. About 2 minutes once the dev build is current (the 60 s outage included).
# Env: KEEP=1 leaves the stack up; OUTAGE_SECONDS (60); RW_BIN_DIR (e.g. dist/bin/amd64);
# RW_CONTROL=lose-wal runs the control instead: the agent loses its WAL halfway through the
# outage, and the run passes only if the measurement then falls below 95 %.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=setup/lib.sh
. scripts/setup/lib.sh
# shellcheck source=check-lib.sh
. scripts/check-lib.sh
DOCKER=/usr/bin/docker
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
OUTAGE_SECONDS="${OUTAGE_SECONDS:-60}"
MIN_PERCENT=95

# --- 0. tools -------------------------------------------------------------------------------
# A missing tool fails the check unless EDGE_METRICS_ALLOW_SKIP names it (scripts/setup/lib.sh
# `missing`: the skip is then announced and written to the ledger).
bash scripts/setup/deps.sh || log "scripts/setup/deps.sh failed"
bash scripts/setup/docker.sh || log "scripts/setup/docker.sh failed"
for t in docker-compose prometheus promtool curl python3 ldd cargo; do
    command -v "$t" >/dev/null && continue
    missing "$t" "not on PATH after scripts/setup/deps.sh (Debian packages docker-compose, prometheus, curl, python3, libc-bin; cargo from rustup or cargo-web)"
    exit 0
done
if ! "$DOCKER" info >/dev/null 2>&1; then
    missing docker "no Docker engine answers $DOCKER info after scripts/setup/docker.sh (package docker.io)"
    exit 0
fi

tmp="$(mktemp -d /tmp/edge-metrics-rw.XXXXXX)"
project="emrw$$"
# compose.remote-write.yaml requires these; set before anything can fail, so teardown can too.
cluster="rw-cluster" site="rw-site-$$" node="rw-node-$$" plug="rw-plug"
export EDGE_CLUSTER="$cluster" EDGE_SITE="$site" NODE_NAME="$node"
recv_pid=""
compose_files=(-f compose.yaml -f compose.demo.yaml -f compose.remote-write.yaml)
teardown() {
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        log "logs of the failed stack:"
        docker-compose -p "$project" "${compose_files[@]}" logs --no-color --tail=30 >&2 || true
        [ -f "$tmp/receiver.log" ] && tail -20 "$tmp/receiver.log" >&2
    fi
    if [ "${KEEP:-0}" = 1 ]; then log "KEEP=1: left project $project and $tmp"; return; fi
    if [ -n "$recv_pid" ]; then kill "$recv_pid" 2>/dev/null || true; wait "$recv_pid" 2>/dev/null || true; fi
    docker-compose -p "$project" "${compose_files[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
    rm -rf "$tmp"
    exit "$rc"
}
trap teardown EXIT

# --- 1. binaries and images -----------------------------------------------------------------
# Static binaries for the FROM scratch images, as scripts/build-arm64.sh makes them (glibc
# linked in), but with the dev profile into a directory of this run: a release build with fat
# LTO takes minutes, and dist/ stays whatever its owner built. RW_BIN_DIR=dist/bin/amd64 uses
# binaries a caller built instead (after `ARCHS=amd64 scripts/build-arm64.sh`).
bins=(edge-metrics-exporter shelly-bridge shelly-sim)
mkdir -p "$tmp/dist/bin/amd64"
if [ -n "${RW_BIN_DIR:-}" ]; then
    for b in "${bins[@]}"; do
        [ -x "$RW_BIN_DIR/$b" ] || fail "RW_BIN_DIR: $RW_BIN_DIR/$b missing"
        cp "$RW_BIN_DIR/$b" "$tmp/dist/bin/amd64/$b"
    done
    log "using the binaries in $RW_BIN_DIR"
else
    start=$SECONDS
    triple=x86_64-unknown-linux-gnu
    RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$root/target-dist-amd64" \
        cargo build -q --locked --target "$triple" -p edge-metrics-exporter -p shelly-bridge -p shelly-sim
    for b in "${bins[@]}"; do
        cp "target-dist-amd64/$triple/debug/$b" "$tmp/dist/bin/amd64/$b"
        if file "$tmp/dist/bin/amd64/$b" | grep -q 'dynamically linked'; then fail "$b is dynamically linked: it would not run FROM scratch"; fi
    done
    log "static dev binaries built in $((SECONDS - start)) s"
fi
revision="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
start=$SECONDS
for img in edge-metrics-exporter shelly-bridge shelly-sim; do
    "$DOCKER" build -q --build-arg TARGETARCH=amd64 --build-arg REVISION="$revision" \
        --build-arg CREATED="$created" -f "docker/$img.Dockerfile" -t "$img:rw-test" "$tmp/dist" >/dev/null
done
bash deploy/prometheus-agent/image-context.sh "$tmp/agent-image"
"$DOCKER" build -q --build-arg REVISION="$revision" --build-arg CREATED="$created" \
    -f docker/prometheus-agent.Dockerfile -t prometheus-agent:rw-test "$tmp/agent-image" >/dev/null
[ "$("$DOCKER" image inspect -f '{{.Config.User}}' prometheus-agent:rw-test)" = "65532:65532" ] \
    || fail "the agent image must run as 65532"
"$DOCKER" run --rm --network none prometheus-agent:rw-test --version 2>&1 | grep -q '^prometheus, version 2\.' \
    || fail "the agent image does not run its prometheus (missing library?)"
log "images built in $((SECONDS - start)) s; agent image $("$DOCKER" image inspect -f '{{.Size}}' prometheus-agent:rw-test) bytes"

# --- 2. configs -----------------------------------------------------------------------------
metrics_port="$(free_port)" mgmt_port="$(free_port)" ws_port="$(free_port)" http_port="$(free_port)"
agent_port="$(free_port)" recv_port="$(free_port)"
mkdir -p "$tmp/config" "$tmp/agent" "$tmp/receiver-data"
cat >"$tmp/config/config.yaml" <<YAML
device_type: jetson_orin
interval: 1
port: $metrics_port
reload_port: $mgmt_port
bind_address: 127.0.0.1
hostname: $node
tegrastats:
  replay: /replay/orin-agx-jp6.log
shelly:
  enabled: true
  server_url: http://127.0.0.1:$http_port
  device_id: $plug
YAML
# The shipped example with this run's ports, URL and a one-second interval; every other line
# (external labels, jobs, relabelling, queue settings, credentials by file) is as shipped.
password="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
sed -e "s|scrape_interval: 15s|scrape_interval: 1s|" \
    -e "s|scrape_timeout: 5s|scrape_timeout: 1s|" \
    -e "s|127\.0\.0\.1:9102|127.0.0.1:$metrics_port|" \
    -e "s|127\.0\.0\.1:8766|127.0.0.1:$http_port|" \
    -e "s|127\.0\.0\.1:9090|127.0.0.1:$agent_port|" \
    -e "s|url: https://metrics\.example\.com/api/v1/write|url: http://127.0.0.1:$recv_port/api/v1/write|" \
    deploy/prometheus-agent/agent.yml >"$tmp/agent/agent.yml"
for want in "scrape_interval: 1s" "127.0.0.1:$metrics_port" "127.0.0.1:$http_port" "127.0.0.1:$agent_port" "127.0.0.1:$recv_port"; do
    grep -qF "$want" "$tmp/agent/agent.yml" || fail "deploy/prometheus-agent/agent.yml changed shape: no '$want' after substitution"
done
printf '%s' "$password" >"$tmp/agent/password"
# The agent runs as 65532 and reads the directory read-only.
chmod 0755 "$tmp/agent" && chmod 0644 "$tmp/agent/agent.yml" "$tmp/agent/password"
EDGE_CLUSTER=x EDGE_SITE=x NODE_NAME=x promtool check config --agent "$tmp/agent/agent.yml" >/dev/null \
    || fail "promtool rejects the agent config"
# The receiver asks for the same basic-auth credentials (bcrypt, low cost: it hashes per request).
hash="$(python3 -W ignore -c 'import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))' "$password")"
printf 'basic_auth_users:\n  edge: %s\n' "$hash" >"$tmp/receiver-web.yml"
printf 'global: {}\n' >"$tmp/receiver.yml"

start_receiver() {
    prometheus --config.file="$tmp/receiver.yml" --web.config.file="$tmp/receiver-web.yml" \
        --storage.tsdb.path="$tmp/receiver-data" --web.listen-address="127.0.0.1:$recv_port" \
        --web.enable-remote-write-receiver >>"$tmp/receiver.log" 2>&1 &
    recv_pid=$!
}
rq() { curl -fsS --max-time 5 -u "edge:$password" "$@"; }
receiver_ready() { rq "http://127.0.0.1:$recv_port/-/ready"; }
# instant QUERY [TIME]: the receiver's result as JSON.
instant() {
    local args=(--data-urlencode "query=$1")
    [ $# -gt 1 ] && args+=(--data-urlencode "time=$2")
    rq "http://127.0.0.1:$recv_port/api/v1/query" "${args[@]}"
}
# value QUERY [TIME]: the single value of an instant query, or empty.
value() {
    instant "$@" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if len(r)==1 else "")'
}

start_receiver
wait_for "the receiver (native Prometheus, remote-write receiver) is ready" 60 receiver_ready
[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$recv_port/api/v1/query?query=up")" = 401 ] \
    || fail "the receiver should ask for basic auth"

# --- 3. the stack ---------------------------------------------------------------------------
export EXPORTER_IMAGE=edge-metrics-exporter:rw-test BRIDGE_IMAGE=shelly-bridge:rw-test
export SIM_IMAGE=shelly-sim:rw-test PROMETHEUS_AGENT_IMAGE=prometheus-agent:rw-test
export EDGE_METRICS_CONFIG_DIR="$tmp/config" DEMO_REPLAY_DIR="$root/testdata/tegrastats"
export SHELLY_WS_PORT="$ws_port" SHELLY_HTTP_PORT="$http_port" DEMO_PLUG_ALIAS="$plug"
export SHELLY_WS_TOKEN="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
export PROMETHEUS_AGENT_CONFIG_DIR="$tmp/agent" PROMETHEUS_AGENT_PORT="$agent_port"
export RUST_LOG=info
docker-compose -p "$project" "${compose_files[@]}" config -q
log "compose up: exporter :$metrics_port, bridge :$ws_port/:$http_port, agent :$agent_port -> receiver :$recv_port"
start=$SECONDS
docker-compose -p "$project" "${compose_files[@]}" up -d --no-build exporter-demo shelly-bridge plug prometheus-agent

labels="cluster=\"$cluster\",site=\"$site\",node=\"$node\""
temp_series="jetson_temp_cpu_celsius{$labels,hostname=\"$node\",job=\"edge-metrics-exporter\"}"
power_series="power_total_watts{$labels,hostname=\"$node\",job=\"edge-metrics-exporter\"}"
has() { [ -n "$(value "$1")" ]; }
wait_for "the agent is ready" 60 curl -fsS --max-time 5 "http://127.0.0.1:$agent_port/-/ready"
wait_for "the receiver answers $temp_series" 90 has "$temp_series"
wait_for "the receiver answers $power_series (plug -> bridge -> exporter -> agent)" 60 has "$power_series"
wait_for "the bridge's own metrics arrive too" 30 has "up{$labels,job=\"shelly-bridge\"} == 1"
log "data flowing $((SECONDS - start)) s after compose up"
# The external labels are exactly the three from the agent's environment, on every series.
instant "count by (cluster, site, node) ({job=~\"edge-metrics-exporter|shelly-bridge\"})" \
    | python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
want = {"cluster": sys.argv[1], "site": sys.argv[2], "node": sys.argv[3]}
got = [x["metric"] for x in r]
if got != [want]:
    sys.exit("series carry other external labels: %s, want %s" % (got, want))
print("%s series from the exporter and the bridge, all labelled %s" % (r[0]["value"][1], want))' "$cluster" "$site" "$node" >&2 \
    || fail "external labels"

agent_pid="$("$DOCKER" inspect -f '{{.State.Pid}}' "$(docker-compose -p "$project" "${compose_files[@]}" ps -q prometheus-agent)")"
# agent_stat: "RSS_KiB CPU_ticks" of the agent process.
agent_stat() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$agent_pid/status" | tr '\n' ' '
    awk '{ print $14 + $15 }' "/proc/$agent_pid/stat"
}
agent_metric() {
    curl -fsS --max-time 5 "http://127.0.0.1:$agent_port/metrics" \
        | awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2; n++ } END { if (n) printf "%.3f\n", s }'
}
# Let the agent settle: it has sent at least 5 s past now, so the queue is drained before the cut.
settle_to="$(date +%s)"
sent_past() { awk -v a="$(agent_metric prometheus_remote_storage_queue_highest_sent_timestamp_seconds)" -v b="$1" 'BEGIN { exit !(a >= b) }'; }
wait_for "the agent's queue is drained (sent past $settle_to + 5)" 60 sent_past $((settle_to + 5))
read -r rss_before ticks_before < <(agent_stat)

# --- 4. the outage --------------------------------------------------------------------------
down_at="$(python3 -c 'import time; print(f"{time.time():.3f}")')"
kill -TERM "$recv_pid"
wait "$recv_pid" 2>/dev/null || true
recv_pid=""
down_at_s="${down_at%.*}"
log "receiver stopped at $down_at; the link stays down for ${OUTAGE_SECONDS} s"
if [ "${RW_CONTROL:-}" = lose-wal ]; then
    # The control: halfway through the outage the agent is replaced with an empty WAL, so the
    # samples of the first half are gone; the measurement must see it.
    sleep $((OUTAGE_SECONDS / 2))   # the outage itself: a deliberate wait
    docker-compose -p "$project" "${compose_files[@]}" rm -sf prometheus-agent >/dev/null 2>&1
    "$DOCKER" volume rm "${project}_prometheus-agent-wal" >/dev/null
    docker-compose -p "$project" "${compose_files[@]}" up -d --no-build prometheus-agent >/dev/null 2>&1
    log "control: the agent restarted with an empty WAL halfway through the outage"
    wait_for "the new agent is ready" 60 curl -fsS --max-time 5 "http://127.0.0.1:$agent_port/-/ready"
    agent_pid="$("$DOCKER" inspect -f '{{.State.Pid}}' "$(docker-compose -p "$project" "${compose_files[@]}" ps -q prometheus-agent)")"
    read -r rss_before ticks_before < <(agent_stat)
    sleep $((down_at_s + OUTAGE_SECONDS - $(date +%s) > 0 ? down_at_s + OUTAGE_SECONDS - $(date +%s) : 0))
else
    sleep "$OUTAGE_SECONDS"   # the outage itself: a deliberate wait
fi
failed_during="$(agent_metric prometheus_remote_storage_samples_failed_total)"
pending_during="$(agent_metric prometheus_remote_storage_samples_pending)"
start_receiver
wait_for "the receiver is back" 60 receiver_ready
up_at="$(python3 -c 'import time; print(f"{time.time():.3f}")')"
outage_start=$SECONDS
wait_for "the agent has sent past the outage" 120 sent_past "${up_at%.*}"
catch_up=$((SECONDS - outage_start))
read -r rss_after ticks_after < <(agent_stat)
hwm="$(awk '/^VmHWM:/ { print $2 }' "/proc/$agent_pid/status")"
wal_bytes="$(du -sb "/proc/$agent_pid/root/var/lib/prometheus-agent" | cut -f1)"

# The window: whole seconds from the cut to the return, evaluated at the return.
window="$(python3 -c 'import sys, math; print(math.floor(float(sys.argv[2]) - float(sys.argv[1])))' "$down_at" "$up_at")"
expected="$window"   # scrape_interval 1s
measure() {
    local v
    v="$(value "count_over_time($1[${window}s])" "$up_at")"
    [ -n "$v" ] || v=0
    python3 -c 'import sys; print(f"{100 * float(sys.argv[1]) / float(sys.argv[2]):.1f} {int(float(sys.argv[1]))}")' "$v" "$expected"
}
read -r temp_pct temp_n < <(measure "$temp_series")
read -r power_pct power_n < <(measure "$power_series")
read -r up_pct up_n < <(measure "up{$labels,job=\"edge-metrics-exporter\"}")
printf '\nremote write through a %s s outage (%s s window, %s samples expected per series at 1 s):\n' \
    "$OUTAGE_SECONDS" "$window" "$expected" >&2
printf '  %-52s %5s samples  %6s %%\n' "jetson_temp_cpu_celsius (tegrastats replay)" "$temp_n" "$temp_pct" \
    "power_total_watts (simulated plug via the bridge)" "$power_n" "$power_pct" \
    "up{job=\"edge-metrics-exporter\"} (the agent's scrapes)" "$up_n" "$up_pct" >&2
printf '  agent: samples pending during the outage %s, failed sends %s (retried), caught up %s s after the receiver returned\n' \
    "${pending_during%.000}" "${failed_during%.000}" "$catch_up" >&2
printf '  agent: RSS %s KiB before, %s KiB after (peak %s KiB); CPU %s ticks over outage and catch-up; WAL %s bytes\n\n' \
    "$rss_before" "$rss_after" "$hwm" "$((ticks_after - ticks_before))" "$wal_bytes" >&2
if [ "${RW_CONTROL:-}" = lose-wal ]; then
    for pair in "jetson_temp_cpu_celsius:$temp_pct" "power_total_watts:$power_pct"; do
        awk -v p="${pair#*:}" -v m="$MIN_PERCENT" 'BEGIN { exit !(p < m) }' \
            || fail "control: ${pair%%:*} shows ${pair#*:} % although the WAL of half the outage was thrown away: the measurement cannot see a loss"
    done
    log "ok (control): with the WAL lost the measurement shows ${temp_pct} % and ${power_pct} %, below $MIN_PERCENT %"
    exit 0
fi
for pair in "jetson_temp_cpu_celsius:$temp_pct" "power_total_watts:$power_pct"; do
    awk -v p="${pair#*:}" -v m="$MIN_PERCENT" 'BEGIN { exit !(p >= m) }' \
        || fail "${pair%%:*}: only ${pair#*:} % of the outage window's samples arrived (want >= $MIN_PERCENT %)"
done
log "ok: ${temp_pct} % and ${power_pct} % of the outage's samples arrived (>= $MIN_PERCENT %)"
