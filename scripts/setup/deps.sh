#!/usr/bin/env bash
# Installs the Debian packages the delivery checks use: docker engine + compose v1,
# Prometheus (promtool), node exporter, wrk, curl, systemd (systemd-analyze), stress-ng (keeps
# the cores busy for the loaded test runs of docs/RELIABILITY.md), debootstrap (the Debian root
# scripts/test-package.sh installs the .deb into). Idempotent.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

PKGS=(docker.io docker-compose prometheus prometheus-node-exporter wrk curl systemd stress-ng ca-certificates file unzip postgresql chromium chromium-driver debootstrap)
# The Debian packages start their services on install where an init system runs; keep them
# from doing so: the test scripts start their own on loopback with temp dirs.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
apt_install "${PKGS[@]}"
require_cmd dockerd docker-compose prometheus promtool wrk curl systemd-analyze stress-ng
log "ok: $(dockerd --version | head -1); $(docker-compose version --short 2>/dev/null); $(prometheus --version 2>&1 | head -1)"
