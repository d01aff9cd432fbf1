#!/usr/bin/env bash
# Checks deploy/systemd: a staged install.sh into a temp root (DESTDIR), `systemd-analyze
# verify` of the installed units against that root, the config it seeds, idempotence (a second
# install keeps an edited config), --no-bridge, and uninstall.sh (--purge) leaving nothing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { printf 'test-systemd.sh: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

if ! command -v systemd-analyze >/dev/null; then
    if [ "${CI:-}" = true ] && [ "$(id -u)" -ne 0 ]; then fail "systemd-analyze missing (package systemd)"; fi
    bash scripts/setup/deps.sh
fi
command -v systemd-analyze >/dev/null || fail "systemd-analyze missing after scripts/setup/deps.sh"

# Real binaries: systemd-analyze verify checks that ExecStart= points at an executable.
bin_dir="${BIN_DIR:-}"
if [ -z "$bin_dir" ]; then
    cargo build -q -p edge-metrics-exporter -p shelly-bridge
    bin_dir="$root/target/debug"
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
stage="$tmp/root"

log "staged install into $stage"
DESTDIR="$stage" deploy/systemd/install.sh --bin-dir "$bin_dir" >"$tmp/install.log"
for f in usr/local/bin/edge-metrics-exporter usr/local/bin/shelly-bridge \
    etc/systemd/system/edge-metrics-exporter.service etc/systemd/system/shelly-bridge.service \
    etc/edge-metrics/config.yaml etc/default/edge-metrics-exporter etc/default/shelly-bridge; do
    [ -e "$stage/$f" ] || fail "install.sh did not install /$f"
done
[ -x "$stage/usr/local/bin/edge-metrics-exporter" ] || fail "exporter binary is not executable"
grep -q '^port: 9102$' "$stage/etc/edge-metrics/config.yaml" || fail "seeded config lacks port: 9102"
grep -q 'server_url: http://localhost:8766' "$stage/etc/edge-metrics/config.yaml" || fail "seeded config lacks the bridge URL"

log "systemd-analyze verify --root $stage"
# The units' dependencies (sysinit.target, network-online.target, ...) must exist in the root.
mkdir -p "$stage/usr/lib/systemd"
cp -a /usr/lib/systemd/system "$stage/usr/lib/systemd/"
# systemd-analyze resolves ExecStart= and the unit search path inside --root.
if ! systemd-analyze verify --root="$stage" \
    /etc/systemd/system/edge-metrics-exporter.service /etc/systemd/system/shelly-bridge.service \
    >"$tmp/verify.log" 2>&1; then
    cat "$tmp/verify.log" >&2
    fail "systemd-analyze verify reported errors"
fi
# verify exits 0 on some warnings; any line about our units is a finding.
if grep -E 'edge-metrics-exporter\.service|shelly-bridge\.service' "$tmp/verify.log"; then
    fail "systemd-analyze verify printed findings for our units (above)"
fi
log "systemd-analyze security (exposure scores, informational)"
for u in edge-metrics-exporter shelly-bridge; do
    score="$(systemd-analyze security --root="$stage" --offline=true "/etc/systemd/system/$u.service" 2>/dev/null | tail -1 || true)"
    log "  $u: ${score:-n/a}"
done

# The restart command in the API document needs the unit name to stay exactly this.
grep -q '^ExecStart=/usr/local/bin/edge-metrics-exporter --config /etc/edge-metrics/config.yaml$' \
    "$stage/etc/systemd/system/edge-metrics-exporter.service" || fail "exporter ExecStart changed"
grep -q '^ReadWritePaths=/etc/edge-metrics$' "$stage/etc/systemd/system/edge-metrics-exporter.service" \
    || fail "the config directory must stay writable (temp file + rename)"

rm -rf "$stage/usr/lib/systemd"

log "second install keeps an edited config"
echo "# edited by the operator" >>"$stage/etc/edge-metrics/config.yaml"
DESTDIR="$stage" deploy/systemd/install.sh --bin-dir "$bin_dir" >"$tmp/install2.log"
grep -q 'edited by the operator' "$stage/etc/edge-metrics/config.yaml" || fail "re-install overwrote config.yaml"
grep -q 'kept the existing' "$tmp/install2.log" || fail "re-install did not say it kept config.yaml"

log "--no-bridge installs only the exporter and disables Shelly"
stage2="$tmp/root2"
DESTDIR="$stage2" deploy/systemd/install.sh --bin-dir "$bin_dir" --no-bridge >/dev/null
[ ! -e "$stage2/etc/systemd/system/shelly-bridge.service" ] || fail "--no-bridge installed the bridge unit"
grep -q '^  enabled: false' "$stage2/etc/edge-metrics/config.yaml" || fail "--no-bridge left shelly enabled"

log "bad options fail with a reason"
if out="$(DESTDIR="$stage" deploy/systemd/install.sh --bin-dir "$tmp/nowhere" 2>&1)"; then
    fail "install.sh accepted a missing --bin-dir"
fi
grep -q 'not found' <<<"$out" || fail "unhelpful error: $out"

log "uninstall keeps config, --purge removes everything"
DESTDIR="$stage" deploy/systemd/uninstall.sh >/dev/null
[ ! -e "$stage/usr/local/bin/edge-metrics-exporter" ] || fail "uninstall left the binary"
[ ! -e "$stage/etc/systemd/system/edge-metrics-exporter.service" ] || fail "uninstall left the unit"
[ -e "$stage/etc/edge-metrics/config.yaml" ] || fail "uninstall without --purge removed config.yaml"
DESTDIR="$stage" deploy/systemd/uninstall.sh --purge >/dev/null
left="$(find "$stage" -type f)"
[ -z "$left" ] || fail "uninstall --purge left files: $left"
log "ok"
