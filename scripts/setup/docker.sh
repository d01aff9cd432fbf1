#!/usr/bin/env bash
# Starts dockerd in the background (no init system here) and waits until it answers.
# Idempotent: an engine that already answers is left alone. Log: $DOCKERD_LOG.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

DOCKERD_LOG="${DOCKERD_LOG:-/var/log/edge-metrics-dockerd.log}"
WAIT_SECONDS="${DOCKERD_WAIT_SECONDS:-60}"
# Debian's client, matched to Debian's engine (another docker client may sit earlier on PATH).
DOCKER=/usr/bin/docker

if ! command -v dockerd >/dev/null 2>&1; then
    bash "$here/deps.sh"
fi
require_cmd dockerd

if "$DOCKER" info >/dev/null 2>&1; then
    log "dockerd already answers"
    exit 0
fi
log "starting dockerd (log: $DOCKERD_LOG)"
# Cgroup v2 hosts without systemd need the cgroupfs driver; containers here may lack a
# usable iptables, so fall back to --iptables=false when the first start fails.
start() {
    setsid dockerd --exec-opt native.cgroupdriver=cgroupfs "$@" >>"$DOCKERD_LOG" 2>&1 </dev/null &
    echo $! >/run/edge-metrics-dockerd.pid
}
wait_ready() {
    local deadline=$((SECONDS + WAIT_SECONDS)) pid
    pid="$(cat /run/edge-metrics-dockerd.pid)"
    while [ "$SECONDS" -lt "$deadline" ]; do
        "$DOCKER" info >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.5
    done
    return 1
}
start
if ! wait_ready; then
    pid="$(cat /run/edge-metrics-dockerd.pid)"
    if kill -0 "$pid" 2>/dev/null; then
        die "dockerd did not answer within ${WAIT_SECONDS}s; see $DOCKERD_LOG"
    fi
    log "dockerd exited; retrying without iptables (see $DOCKERD_LOG)"
    start --iptables=false --ip6tables=false
    wait_ready || die "dockerd did not start; last log lines: $(tail -5 "$DOCKERD_LOG" | tr '\n' ' ')"
fi
log "ok: $("$DOCKER" version --format 'engine {{.Server.Version}}, storage {{.Server.Os}}') $("$DOCKER" info --format '{{.Driver}}')"
