#!/usr/bin/env bash
# The delivery check for the images and compose files, on a machine without a Jetson:
#  1. scripts/images.sh --arch all builds the static binaries and the four images per arch
#     FROM scratch (the two daemons, the config server, and shelly-sim for the simulated plug);
#     check size (< 15 MB), architecture, user, health check, and that the OCI labels
#     (version, revision, created, source) and each binary's --version agree with git;
#  2. bring up compose.yaml with the arm64 images under qemu emulation, with a fake
#     tegrastats (an aarch64 glibc program, docker/test/fake-tegrastats.c) bind-mounted exactly
#     as the real one is, together with the aarch64 loader and libraries where a Jetson has
#     them; a simulated plug (the shelly-sim image) dials the bridge with the plug token
#     (SHELLY_WS_TOKEN), a plug without it is refused, the bridge's HTTP API and the
#     management API listen on loopback only, and EDGE_METRICS_API_TOKEN guards the latter;
#     with compose.config-server.yaml the config server runs beside them on its named volume,
#     and the exporter's config reaches it (GET /devices with the operator token lists the
#     device; it is still listed after the server restarts);
#  3. a real Prometheus on 127.0.0.1 scrapes the exporter and answers the API document's
#     PromQL examples with data;
#  4. restart the bridge container and watch the exporter's ShellyCollector come back to 1;
#  5. run the demo commands of docs/DEPLOY.md and README.md verbatim (the block after their
#     `<!-- demo-commands -->` marker): scripts/images.sh, then compose.demo.yaml with the
#     default image references; its metrics and the plug's power within two minutes.
# Everything started here is torn down on exit. Ports are picked free at start (host network).
# Env: SKIP_BUILD=1 reuses dist/bin (images.sh --no-build); KEEP=1 leaves the stack up for inspection.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=check-lib.sh
. scripts/check-lib.sh
# shellcheck source=build-lib.sh
. scripts/build-lib.sh
DOCKER=/usr/bin/docker
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
MAX_IMAGE_BYTES=$((15 * 1000 * 1000))

# --- 0. tools -------------------------------------------------------------------------------
bash scripts/setup/deps.sh
bash scripts/setup/arm64.sh
bash scripts/setup/docker.sh
for t in docker-compose prometheus promtool curl python3 aarch64-linux-gnu-gcc qemu-aarch64-static; do
    command -v "$t" >/dev/null || fail "$t missing after the setup scripts"
done
[ -x "$DOCKER" ] || fail "$DOCKER missing (package docker.io)"
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || fail "qemu-aarch64 binfmt not registered: arm64 containers cannot run here"

tmp="$(mktemp -d /tmp/edge-metrics-docker.XXXXXX)"
project="emtest$$"
base_project="$project"
prom_pid=""
demo_cleanup=""
compose_files=()
teardown() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ "${#compose_files[@]}" -gt 0 ]; then
        log "logs of the failed stack:"
        docker-compose -p "$project" "${compose_files[@]}" logs --no-color --tail=40 >&2 || true
        [ -f "$tmp/prometheus.log" ] && tail -20 "$tmp/prometheus.log" >&2
    fi
    if [ "${KEEP:-0}" = 1 ]; then log "KEEP=1: left project $project and $tmp"; return; fi
    [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null
    [ -n "$demo_cleanup" ] && "$demo_cleanup"
    for p in "$base_project" "$project"; do
        docker-compose -p "$p" -f compose.yaml -f compose.demo.yaml -f compose.config-server.yaml \
            -f "$tmp/override.yaml" --profile jetson \
            down -v --remove-orphans >/dev/null 2>&1 || true
    done
    rm -rf "$tmp"
    exit "$rc"
}
trap teardown EXIT

# --- 1. binaries and images -----------------------------------------------------------------
# scripts/images.sh is the one place that builds them: both arches, the compose/chart default
# tags (this machine's arch) and :dev-<arch>.
declare -A build_secs image_bytes
start=$SECONDS
if [ "${SKIP_BUILD:-0}" = 1 ]; then
    SKIP_SETUP=1 bash scripts/images.sh --arch all --no-build
else
    SKIP_SETUP=1 bash scripts/images.sh --arch all
fi
build_secs[images.sh]=$((SECONDS - start))
# image_ref NAME ARCH: the per-arch tag images.sh gives NAME (ghcr.io/edge-metrics/NAME:dev-ARCH).
image_ref() {
    local var
    case "$1" in
        edge-metrics-exporter) var=EXPORTER_IMAGE ;;
        shelly-bridge) var=BRIDGE_IMAGE ;;
        edge-metrics-config-server) var=CONFIG_SERVER_IMAGE ;;
        shelly-sim) var=SIM_IMAGE ;;
    esac
    local ref
    ref="$(compose_default_ref "$var")" || fail "no default for \${$var} in the compose files"
    printf '%s:dev-%s\n' "${ref%:*}" "$2"
}
# What git says about the commit the build names, computed here rather than taken from the
# build script, so the labels and --version are checked against git itself. The commit must be
# HEAD, or an ancestor of it when a commit landed during the build.
cargo_version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' Cargo.toml)"
want_revision="$("$DOCKER" image inspect -f '{{index .Config.Labels "org.opencontainers.image.revision"}}' "$(image_ref edge-metrics-exporter amd64)")"
git cat-file -e "$want_revision^{commit}" 2>/dev/null || fail "the images name revision '$want_revision', not a commit here"
[ "$want_revision" = "$(git rev-parse HEAD)" ] || git merge-base --is-ancestor "$want_revision" HEAD \
    || fail "the images name commit $want_revision, which is neither HEAD nor before it"
if described="$(git describe --tags --match 'v[0-9]*' "$want_revision" 2>/dev/null)"; then
    want_version="${described#v}"
else
    want_version="$cargo_version-g$(git rev-parse --short=7 "$want_revision")"
fi
want_created="$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ "$want_revision")"
log "git: version $want_version, revision $want_revision"
for arch in arm64 amd64; do
    for img in edge-metrics-exporter shelly-bridge edge-metrics-config-server shelly-sim; do
        tag="$(image_ref "$img" "$arch")"
        size="$("$DOCKER" image inspect -f '{{.Size}}' "$tag")"
        image_bytes["$tag"]=$size
        [ "$size" -lt "$MAX_IMAGE_BYTES" ] || fail "$tag is $size bytes, over 15 MB"
        got_arch="$("$DOCKER" image inspect -f '{{.Architecture}}' "$tag")"
        [ "$got_arch" = "$arch" ] || fail "$tag says architecture $got_arch, want $arch"
        if [ "$img" = shelly-sim ]; then
            # The simulator only dials out: nothing to probe.
            hc="$("$DOCKER" image inspect -f '{{json .Config.Healthcheck}}' "$tag")"
            [ "$hc" = null ] || fail "$tag should have no health check, has $hc"
        else
            hc="$("$DOCKER" image inspect -f '{{json .Config.Healthcheck.Test}}' "$tag")"
            [ "$hc" = "[\"CMD\",\"/$img\",\"healthcheck\"]" ] || fail "$tag health check is $hc"
        fi
        label() { "$DOCKER" image inspect -f "{{index .Config.Labels \"org.opencontainers.image.$1\"}}" "$tag"; }
        [ "$(label source)" = "https://github.com/edge-metrics/edge-metrics" ] || fail "$tag: source label is '$(label source)'"
        [ "$(label version)" = "$want_version" ] || fail "$tag: version label '$(label version)', git says $want_version"
        [ "$(label revision)" = "$want_revision" ] || fail "$tag: revision label '$(label revision)', git says $want_revision"
        [ "$(label created)" = "$want_created" ] \
            || fail "$tag: created label '$(label created)' is not the commit's time ($want_created)"
    done
done
for img in shelly-bridge edge-metrics-config-server shelly-sim; do
    [ "$("$DOCKER" image inspect -f '{{.Config.User}}' "$(image_ref "$img" arm64)")" = "65532:65532" ] \
        || fail "the $img image must run as 65532"
done
# The default references (compose's and the chart's) name this machine's build.
native="$(native_arch)" || fail "unsupported machine $(uname -m)"
for var in EXPORTER_IMAGE BRIDGE_IMAGE CONFIG_SERVER_IMAGE SIM_IMAGE; do
    ref="$(compose_default_ref "$var")" || fail "no default for \${$var} in the compose files"
    [ "$("$DOCKER" image inspect -f '{{.Id}}' "$ref")" = "$("$DOCKER" image inspect -f '{{.Id}}' "${ref%:*}:dev-$native")" ] \
        || fail "$ref is not the $native image images.sh built"
    [ "$("$DOCKER" image inspect -f '{{.Id}}' "${ref%:*}:dev")" = "$("$DOCKER" image inspect -f '{{.Id}}' "$ref")" ] \
        || fail "${ref%:*}:dev is not $ref"
done
# The binaries answer --version inside their own image (arm64 through qemu binfmt), with what
# git says.
for arch in amd64 arm64; do
    for img in edge-metrics-exporter shelly-bridge edge-metrics-config-server; do
        v="$("$DOCKER" run --rm --platform "linux/$arch" --network none "$(image_ref "$img" "$arch")" --version)"
        log "$(image_ref "$img" "$arch") --version: $v"
        [ "$v" = "$img $want_version (revision $want_revision)" ] \
            || fail "$img ($arch) --version says '$v', git says $want_version, $want_revision"
    done
    v="$("$DOCKER" run --rm --platform "linux/$arch" --network none "$(image_ref shelly-sim "$arch")" --help | head -1)"
    log "shelly-sim ($arch) --help: $v"
done
log "ok: images' labels and --version agree with git ($want_version, $want_revision)"

# --- 2. compose.yaml with arm64 images, fake tegrastats, simulated plug ---------------------
metrics_port="$(free_port)" mgmt_port="$(free_port)" ws_port="$(free_port)" http_port="$(free_port)"
prom_port="$(free_port)"
aarch64_lib=/usr/aarch64-linux-gnu/lib
mkdir -p "$tmp/config" "$tmp/usrlib" "$tmp/debugfs"
: >"$tmp/ld.so.cache"   # an empty cache is ignored by the loader, as on a fresh rootfs
aarch64-linux-gnu-gcc -O2 -Wall -Wextra -Werror -o "$tmp/tegrastats" docker/test/fake-tegrastats.c
file "$tmp/tegrastats" | grep -q 'ARM aarch64.*dynamically linked' || fail "fake tegrastats is not a dynamic aarch64 binary"
host_name="$(hostname)"
# server_url uses `localhost`: this checks name resolution of the static glibc binary in scratch
# with the aarch64 libraries mounted, as on a Jetson.
cat >"$tmp/config/config.yaml" <<YAML
device_type: jetson_orin
interval: 1
port: $metrics_port
reload_port: $mgmt_port
bind_address: 127.0.0.1
tegrastats:
  path: /usr/bin/tegrastats
shelly:
  enabled: true
  server_url: http://localhost:$http_port
metrics:
  jetson_temp_cpu_celsius: true
  jetson_power_vdd_gpu_soc_watts: true
  power_total_watts: true
  power_voltage_volts: true
  power_current_amps: true
YAML
# Secrets reach the containers only through the variables compose.yaml documents.
plug_token="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
api_token="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
cat >"$tmp/override.yaml" <<YAML
services:
  plug:
    image: $(image_ref shelly-sim arm64)
    network_mode: host
    user: "65532:65532"
    read_only: true
    cap_drop: [ALL]
    restart: unless-stopped
    command: ["--url", "ws://127.0.0.1:$ws_port/e2e-plug?token=$plug_token", "--backoff-max-ms", "2000"]
    healthcheck:
      disable: true
YAML
export EXPORTER_IMAGE="$(image_ref edge-metrics-exporter arm64)" BRIDGE_IMAGE="$(image_ref shelly-bridge arm64)"
export EDGE_METRICS_CONFIG_DIR="$tmp/config"
export SHELLY_WS_PORT="$ws_port" SHELLY_HTTP_PORT="$http_port"
export TEGRASTATS_BIN="$tmp/tegrastats" TEGRA_LOADER="$aarch64_lib/ld-linux-aarch64.so.1"
export TEGRA_LIB_DIR="$aarch64_lib" TEGRA_USRLIB_DIR="$tmp/usrlib" TEGRA_LD_CACHE="$tmp/ld.so.cache"
export TEGRA_DEBUGFS="$tmp/debugfs" RUST_LOG=info
# compose.yaml mounts the board's identity files; this machine has none, so empty stand-ins
# (the config names device_type) rather than letting docker create /etc/nv_tegra_release here.
mkdir -p "$tmp/devicetree" && : >"$tmp/nv_tegra_release"
export DEVICE_TREE_DIR="$tmp/devicetree" TEGRA_RELEASE="$tmp/nv_tegra_release"
export SHELLY_WS_TOKEN="$plug_token" EDGE_METRICS_API_TOKEN="$api_token"
# The config server (compose.config-server.yaml), arm64 like the rest, on a free port.
cs_port="$(free_port)"
cs_operator="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
cs_device="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
export CONFIG_SERVER_IMAGE="$(image_ref edge-metrics-config-server arm64)" CONFIG_SERVER_PORT="$cs_port"
export CONFIG_SERVER_OPERATOR_TOKEN="ops:$cs_operator" CONFIG_SERVER_DEVICE_TOKEN="$cs_device"
compose_files=(-f compose.yaml -f compose.config-server.yaml -f "$tmp/override.yaml")
docker-compose -p "$project" "${compose_files[@]}" config -q
log "compose up (arm64 under qemu): metrics :$metrics_port, mgmt :$mgmt_port, ws :$ws_port, http :$http_port"
start=$SECONDS
docker-compose -p "$project" "${compose_files[@]}" up -d --no-build

metrics() { curl -fsS --max-time 5 "http://127.0.0.1:$metrics_port/metrics"; }
has_metric() { metrics | grep -E "^$1(\{| )" | grep -q "$2"; }
wait_for "exporter /health answers" 90 curl -fsS --max-time 5 "http://127.0.0.1:$mgmt_port/health"
wait_for "tegrastats data (jetson_temp_cpu_celsius) via the bind-mounted fake" 60 has_metric jetson_temp_cpu_celsius "hostname=\"$host_name\""
wait_for "the plug's wall power via the bridge (ShellyCollector up)" 60 \
    has_metric edge_metrics_exporter_collector_up 'collector="ShellyCollector".* 1$'
has_metric power_total_watts "" || fail "power_total_watts missing while ShellyCollector is up"
log "stack ready in $((SECONDS - start)) s"

# The plug got in with the token; one without it does not, whatever its id.
docker-compose -p "$project" "${compose_files[@]}" logs --no-color shelly-bridge exporter >"$tmp/stack.log"
grep 'Bridge ready\..*plug_auth="token"' "$tmp/stack.log" >/dev/null || fail "the bridge did not take SHELLY_WS_TOKEN"
grep "Serving the HTTP API\. address=127\.0\.0\.1:$http_port" "$tmp/stack.log" >/dev/null \
    || fail "the bridge's HTTP API should listen on 127.0.0.1 only"
grep "Listening\..*address=127\.0\.0\.1:$mgmt_port" "$tmp/stack.log" >/dev/null \
    || fail "the management API should listen on 127.0.0.1 by default"
docker-compose -p "$project" "${compose_files[@]}" logs --no-color config-server >>"$tmp/stack.log"
if grep -F -e "$plug_token" -e "$api_token" -e "$cs_operator" -e "$cs_device" "$tmp/stack.log" >/dev/null; then
    fail "a token appears in the logs"
fi
# devices_are NAMES...: /devices lists exactly these.
devices_are() {
    curl -fsS --max-time 5 "http://127.0.0.1:$http_port/devices" \
        | python3 -c 'import json,sys; sys.exit(0 if sorted(json.load(sys.stdin)["devices"]) == sorted(sys.argv[1:]) else 1)' "$@"
}
devices_are e2e-plug || fail "/devices should list e2e-plug alone: $(curl -sS "http://127.0.0.1:$http_port/devices")"
rejected() {
    curl -fsS --max-time 5 "http://127.0.0.1:$http_port/bridge/metrics" \
        | grep -E '^shelly_bridge_ws_rejected_total\{reason="token"\} [1-9]'
}
"$DOCKER" run --rm --network host --user 65532:65532 "$(image_ref shelly-sim amd64)" \
    --url "ws://127.0.0.1:$ws_port/intruder" --reconnect never --run-for 5 >/dev/null 2>&1 || true
wait_for "a plug without the token is refused (401)" 30 rejected
devices_are e2e-plug || fail "the tokenless plug got registered"
# With EDGE_METRICS_API_TOKEN every management endpoint but /health asks for it.
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }
[ "$(code "http://127.0.0.1:$mgmt_port/config")" = 401 ] || fail "GET /config without the API token should be 401"
[ "$(code -H "Authorization: Bearer $api_token" "http://127.0.0.1:$mgmt_port/config")" = 200 ] \
    || fail "GET /config with the API token should be 200"
log "ok: plug token, loopback HTTP API and API token in compose.yaml"
exporter_ctr="$(docker-compose -p "$project" "${compose_files[@]}" ps -q exporter)"
wait_for "docker reports the exporter healthy" 90 \
    bash -c "[ \"\$($DOCKER inspect -f '{{.State.Health.Status}}' $exporter_ctr)\" = healthy ]"
[ "$($DOCKER inspect -f '{{.Config.User}}' "$exporter_ctr")" = "0:0" ] || fail "exporter should run as root for tegrastats"
# Name resolution of the static glibc binary inside scratch, with the aarch64 libraries mounted
# where a Jetson has them: `localhost` must resolve (the default shelly.server_url uses it).
"$DOCKER" exec "$exporter_ctr" /edge-metrics-exporter healthcheck --url "http://localhost:$mgmt_port/health" \
    || fail "healthcheck via http://localhost inside the exporter container failed (name resolution)"
log "ok: localhost resolves inside the scratch exporter image"

# The exporter's config reaches the config server: its start-up fetch and its push (after the
# discovery of new metrics) list it, with its own layer, among the devices.
cs_start=$SECONDS
cs_devices() {
    curl -fsS --max-time 5 -H "Authorization: Bearer $cs_operator" "http://127.0.0.1:$cs_port/devices"
}
# cs_lists_pushed: the device is listed and its push stored a layer.
cs_lists_pushed() {
    cs_devices | python3 -c 'import json,sys; d=[x for x in json.load(sys.stdin)["devices"] if x["device"]==sys.argv[1]]; sys.exit(0 if d and d[0]["layer"] and d[0]["device_type"]=="jetson_orin" else 1)' "$host_name"
}
wait_for "the config server lists $host_name with its pushed config" 60 cs_lists_pushed
[ "$(code "http://127.0.0.1:$cs_port/devices")" = 401 ] || fail "GET /devices without the operator token should be 401"
[ "$(code -H "Authorization: Bearer $cs_device" "http://127.0.0.1:$cs_port/devices")" = 403 ] \
    || fail "GET /devices with the device token should be 403"
cs_ctr="$(docker-compose -p "$project" "${compose_files[@]}" ps -q config-server)"
[ "$($DOCKER inspect -f '{{.Config.User}}' "$cs_ctr")" = "65532:65532" ] || fail "the config server should run as 65532"
"$DOCKER" exec "$cs_ctr" /edge-metrics-config-server healthcheck || fail "the config server's healthcheck failed"
# The SQLite file lives in the named volume: a restart keeps the device and its layer.
docker-compose -p "$project" "${compose_files[@]}" restart config-server >/dev/null 2>&1
wait_for "the config server still lists $host_name after a restart (named volume)" 60 cs_lists_pushed
cs_secs=$((SECONDS - cs_start))
log "ok: config server checks took $cs_secs s"

# --- 3. Prometheus scrapes, the API document's PromQL answers -------------------------------
cat >"$tmp/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: jetson-devices
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
YAML
promtool check config "$tmp/prometheus.yml" >/dev/null
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prom-data" \
    --web.listen-address="127.0.0.1:$prom_port" >"$tmp/prometheus.log" 2>&1 &
prom_pid=$!
wait_for "Prometheus ready" 60 curl -fsS --max-time 2 "http://127.0.0.1:$prom_port/-/ready"

# promql_nonempty QUERY: true when the instant query returns at least one sample.
promql_nonempty() {
    curl -fsS --max-time 5 -G "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1" \
        | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["status"]=="success" and d["data"]["result"] else 1)'
}
promql_show() {
    curl -fsS --max-time 5 -G "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1" \
        | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print("; ".join("%s = %s" % (x["metric"], x["value"][1]) for x in r)[:300])'
}
for q in \
    'jetson_temp_cpu_celsius' \
    'sum by (device_type) (jetson_power_vdd_gpu_soc_watts)' \
    "power_total_watts{hostname=\"$host_name\"}" \
    "jetson_power_vdd_gpu_soc_watts{hostname=\"$host_name\"}" \
    "sum(jetson_power_vdd_gpu_soc_watts{hostname=\"$host_name\"}) / sum(power_total_watts{hostname=\"$host_name\"})" \
    'edge_metrics_exporter_collector_up{collector="ShellyCollector"} == 1'; do
    wait_for "PromQL has data: $q" 60 promql_nonempty "$q"
    log "  -> $(promql_show "$q")"
done
# The API document writes the ratio as `sum(x{..}) / power_total_watts{..}`: the left side
# has no labels left after sum(), so one-to-one matching finds no pair. Show it.
spec_ratio="sum(jetson_power_vdd_gpu_soc_watts{hostname=\"$host_name\"}) / power_total_watts{hostname=\"$host_name\"}"
if promql_nonempty "$spec_ratio"; then
    log "note: the document's ratio as written returns data: $(promql_show "$spec_ratio")"
else
    log "note: the document's ratio as written returns no data (label mismatch); the dashboard uses sum()/sum()"
fi

# --- 4. bridge restart: the exporter recovers -------------------------------------------------
log "restarting the shelly-bridge container"
shelly_up() { metrics | grep -E '^edge_metrics_exporter_collector_up\{' | grep 'collector="ShellyCollector"' | grep -q " $1\$"; }
start=$SECONDS
docker-compose -p "$project" "${compose_files[@]}" restart shelly-bridge
saw_down=no
down_deadline=$((SECONDS + 15))
while [ "$SECONDS" -lt "$down_deadline" ]; do
    if shelly_up 0; then saw_down=yes; break; fi
    if shelly_up 1 && [ $((SECONDS - start)) -gt 5 ]; then break; fi
    sleep 0.3
done
log "ShellyCollector went to 0 during the restart: $saw_down"
wait_for "ShellyCollector back to 1 after the bridge restart" 90 shelly_up 1
log "recovered $((SECONDS - start)) s after the restart"
wait_for "Prometheus sees the recovered plug" 30 promql_nonempty 'edge_metrics_exporter_collector_up{collector="ShellyCollector"} == 1'
docker-compose -p "$project" "${compose_files[@]}" down -v --remove-orphans >/dev/null 2>&1
compose_files=()

# --- 5. the documented demo, verbatim ------------------------------------------------------
# docs/DEPLOY.md and README.md mark the demo's commands with `<!-- demo-commands -->` before a
# ```sh block; both must hold the same block, and it runs here line by line as written, in the
# repository root, in a clean environment (as a user's shell would be) under its own compose
# project: scripts/images.sh (whose work is already done above: cargo and docker find nothing to
# redo), the set-up and `up -d` once each, and every `curl` line polled until its output shows
# the Jetson metrics and the plug's power (resp. the plug) within two minutes. The demo's ports
# are fixed (9101, 9102, 8765, 8766): a port in use is waited for, then a failure.
log "the documented demo commands (docs/DEPLOY.md = README.md), verbatim"
# demo_block FILE: the ```sh block after the demo-commands marker.
demo_block() {
    awk '/^<!-- demo-commands/ { m = 1; next }
         m == 1 && /^```sh$/ { m = 2; next }
         m == 2 && /^```$/ { exit }
         m == 2 { print }' "$1"
}
demo_block docs/DEPLOY.md >"$tmp/demo-deploy.sh"
demo_block README.md >"$tmp/demo-readme.sh"
[ -s "$tmp/demo-deploy.sh" ] || fail "docs/DEPLOY.md has no <!-- demo-commands --> block"
cmp -s "$tmp/demo-deploy.sh" "$tmp/demo-readme.sh" \
    || fail "README.md's demo commands differ from docs/DEPLOY.md's: $(diff "$tmp/demo-deploy.sh" "$tmp/demo-readme.sh" | head -5)"
grep -qx 'scripts/images.sh[[:space:]]*\(#.*\)\?' "$tmp/demo-deploy.sh" || fail "the demo commands do not start from scripts/images.sh"
grep -q ' up -d' "$tmp/demo-deploy.sh" || fail "the demo commands have no 'up -d'"
# port_busy PORT: something accepts connections on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ports_free() { local p; for p in 9101 9102 8765 8766; do ! port_busy "$p" || return 1; done; }
wait_for "the demo's ports 9101, 9102, 8765, 8766 are free" 60 ports_free
# The user's own .demo (the demo's config dir) is set aside and put back afterwards.
if [ -e .demo ]; then mv .demo "$tmp/dot-demo-saved"; fi
demo_project="${project}doc"
demo_env=(env -i "PATH=$PATH" "HOME=${HOME:-/root}" "COMPOSE_PROJECT_NAME=$demo_project" SKIP_SETUP=1)
demo_down() {
    "${demo_env[@]}" docker-compose -f compose.yaml -f compose.demo.yaml down -v --remove-orphans >/dev/null 2>&1 || true
    rm -rf .demo
    if [ -e "$tmp/dot-demo-saved" ]; then mv "$tmp/dot-demo-saved" .demo; fi
}
demo_cleanup=demo_down
compose_files=(-f compose.yaml -f compose.demo.yaml)
project="$demo_project"
start=$SECONDS
checks=0
while IFS= read -r line; do
    [ -n "${line// /}" ] || continue
    case "$line" in
        curl\ *)
            checks=$((checks + 1))
            # What the line must show: the demo's Jetson metrics and plug power, or the plug.
            case "$line" in
                *9102/metrics*) want=('^jetson_temp_cpu_celsius\{.*hostname="edge-demo"' '^power_total_watts\{.*hostname="edge-demo"') ;;
                *8766/devices*) want=('"edge-demo"') ;;
                *) fail "no expectation for the documented command: $line" ;;
            esac
            deadline=$((start + 120))
            while :; do
                out="$("${demo_env[@]}" bash -c "$line" 2>&1 || true)"
                ok=1
                for w in "${want[@]}"; do grep -Eq "$w" <<<"$out" || ok=0; done
                [ "$ok" = 1 ] && break
                [ "$SECONDS" -lt "$deadline" ] || fail "within 2 minutes of the demo's start, '$line' printed: ${out:0:400}"
                sleep 1
            done
            log "ok ($((SECONDS - start)) s): $line"
            log "  -> $(head -c 300 <<<"$out" | tr '\n' ' ')"
            ;;
        *)
            log "\$ $line"
            "${demo_env[@]}" bash -euo pipefail -c "$line" >"$tmp/demo-step.log" 2>&1 \
                || { tail -20 "$tmp/demo-step.log" >&2; fail "the documented command failed: $line"; }
            [[ $line == scripts/images.sh* ]] && start=$SECONDS
            ;;
    esac
done <"$tmp/demo-deploy.sh"
[ "$checks" -ge 2 ] || fail "the demo commands should scrape the metrics and list the plug (found $checks curl lines)"
running="$("$DOCKER" ps --filter "label=com.docker.compose.project=$demo_project" --format '{{.Label "com.docker.compose.service"}}' | sort | tr '\n' ' ')"
[ "$running" = "exporter-demo plug shelly-bridge " ] || fail "demo should run exporter-demo, plug and shelly-bridge (not the Jetson exporter), got: $running"
native="$(native_arch)" || fail "unsupported machine $(uname -m)"
for svc in exporter-demo shelly-bridge plug; do
    ctr="$("${demo_env[@]}" docker-compose -f compose.yaml -f compose.demo.yaml ps -q "$svc")"
    img="$("$DOCKER" inspect -f '{{.Config.Image}}' "$ctr")"
    [[ $img == ghcr.io/edge-metrics/*:"$cargo_version" ]] || fail "demo $svc runs $img, not the default reference"
done
"${demo_env[@]}" docker-compose -f compose.yaml -f compose.demo.yaml logs --no-color shelly-bridge >"$tmp/demo-bridge.log"
grep 'Bridge ready\..*plug_auth="token"' "$tmp/demo-bridge.log" >/dev/null \
    || fail "the demo bridge runs without a plug token"
log "ok: the documented demo serves metrics and the plug's power $((SECONDS - start)) s after its start ($native images)"
demo_down
demo_cleanup=""
compose_files=()

# --- summary ------------------------------------------------------------------------------------
log "image sizes:"
for k in "${!image_bytes[@]}"; do
    printf '  %-52s %s MB\n' "$k" "$(awk "BEGIN { printf \"%.2f\", ${image_bytes[$k]} / 1e6 }")" >&2
done
printf '  %-52s %s s\n' "scripts/images.sh --arch all (binaries + images)" "${build_secs[images.sh]}" >&2
printf '  %-36s %s s\n' "config server checks (stage 2)" "$cs_secs" >&2
log "ok"
