#!/usr/bin/env bash
# Checks helm/edge-metrics: `helm lint --strict` for the defaults and every ci/*-values.yaml
# scenario, then tests/tests/helm.rs (helm template → k8s-openapi types; alerts through
# `promtool check rules`). Installs helm (scripts/setup/helm.sh) and promtool (deps.sh) if missing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { printf 'test-helm.sh: %s\n' "$*" >&2; }

HELM="${HELM:-$root/.tools/bin/helm}"
if [ ! -x "$HELM" ]; then
    bash scripts/setup/helm.sh
    HELM="$root/.tools/bin/helm"
fi
[ -x "$HELM" ] || { log "FAIL: helm missing at $HELM"; exit 1; }
command -v promtool >/dev/null || bash scripts/setup/deps.sh
command -v promtool >/dev/null || { log "FAIL: promtool missing"; exit 1; }
export HELM

chart=helm/edge-metrics
log "helm lint --strict $chart"
"$HELM" lint --strict "$chart" >/dev/null
for f in "$chart"/ci/*-values.yaml; do
    log "helm lint --strict -f $f"
    "$HELM" lint --strict "$chart" -f "$f" >/dev/null
done
log "cargo test -p e2e --test helm"
CI="${CI:-}" cargo test -q -p e2e --test helm
log "ok"
