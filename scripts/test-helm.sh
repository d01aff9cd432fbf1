#!/usr/bin/env bash
# Checks helm/edge-metrics: `helm lint --strict` for the defaults and every ci/*-values.yaml
# scenario, then tests/tests/helm.rs (helm template → k8s-openapi types; per-node configs
# written by the rendered seed script for several node names; the alerts through `promtool
# check rules` and the unit tests of deploy/prometheus/tests with `promtool test rules`, the
# plain rule file checked against the chart's rendering; token Secrets kept across upgrades by
# `lookup`; the real daemons,
# the Config Server among them, run with the rendered environment, Secrets and probe commands). Installs helm
# (scripts/setup/helm.sh) and promtool (deps.sh) if missing; one still missing fails the
# check, whatever CI says, unless EDGE_METRICS_ALLOW_SKIP names it (`helm` leaves the whole
# check out, `promtool` only the rules test, which the Rust test skips through the same
# variable).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=setup/lib.sh
. scripts/setup/lib.sh
log() { printf 'test-helm.sh: %s\n' "$*" >&2; }

HELM="${HELM:-$root/.tools/bin/helm}"
if [ ! -x "$HELM" ]; then
    bash scripts/setup/helm.sh || log "scripts/setup/helm.sh failed"
    HELM="$root/.tools/bin/helm"
fi
if [ ! -x "$HELM" ]; then
    missing helm "no executable at $HELM; scripts/setup/helm.sh installs it (or set HELM)"
    exit 0
fi
command -v promtool >/dev/null || bash scripts/setup/deps.sh || log "scripts/setup/deps.sh failed"
command -v promtool >/dev/null \
    || missing promtool "not on PATH; Debian package prometheus, installed by scripts/setup/deps.sh"
export HELM

chart=helm/edge-metrics
log "helm lint --strict $chart"
"$HELM" lint --strict "$chart" >/dev/null
for f in "$chart"/ci/*-values.yaml; do
    log "helm lint --strict -f $f"
    "$HELM" lint --strict "$chart" -f "$f" >/dev/null
done
# The rendered containers run with the real daemons and a simulated plug (tests/tests/helm.rs).
log "cargo build -p edge-metrics-exporter -p shelly-bridge -p shelly-sim -p edge-metrics-config-server"
cargo build -q -p edge-metrics-exporter -p shelly-bridge -p shelly-sim -p edge-metrics-config-server
log "cargo test -p e2e --test helm"
cargo test -q -p e2e --test helm
log "ok"
