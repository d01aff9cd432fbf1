#!/usr/bin/env bash
# Checks deploy/systemd: a staged install.sh into a temp root (DESTDIR), `systemd-analyze
# verify` of the installed units against that root (the bridge also with the token drop-in that
# its environment file documents), the config and environment files it seeds (tokens only as
# commented, 0600 templates; nothing puts the bridge's HTTP API on the network), idempotence (a
# second install keeps an edited config), --no-bridge, and uninstall.sh (--purge) leaving nothing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=setup/lib.sh
. scripts/setup/lib.sh
log() { printf 'test-systemd.sh: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

# A missing systemd-analyze is installed when we may, else it fails the check (whatever CI
# says) unless EDGE_METRICS_ALLOW_SKIP names systemd-analyze.
if ! command -v systemd-analyze >/dev/null && [ "$(id -u)" -eq 0 ]; then
    bash scripts/setup/deps.sh || log "scripts/setup/deps.sh failed"
fi
if ! command -v systemd-analyze >/dev/null; then
    missing systemd-analyze "not on PATH; Debian package systemd, installed by scripts/setup/deps.sh (as root)"
    exit 0
fi

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

log "environment files: commented templates, 0600"
for b in edge-metrics-exporter shelly-bridge; do
    f="$stage/etc/default/$b"
    [ "$(stat -c %a "$f")" = 600 ] || fail "/etc/default/$b should be 0600 (it may hold a token), is $(stat -c %a "$f")"
    set_lines="$(grep -Ev '^[[:space:]]*(#|$)' "$f" || true)"
    [ -z "$set_lines" ] || fail "/etc/default/$b should set nothing until the operator does: $set_lines"
done
grep -q '^#EDGE_METRICS_API_TOKEN=$' "$stage/etc/default/edge-metrics-exporter" \
    || fail "the exporter's environment file should show EDGE_METRICS_API_TOKEN, commented"
for var in SHELLY_WS_TOKEN= SHELLY_WS_TOKEN_FILE=/run/credentials/shelly-bridge.service/ws-token; do
    grep -q "^#$var" "$stage/etc/default/shelly-bridge" \
        || fail "the bridge's environment file should show $var, commented"
done
# SHELLY_BIND=0.0.0.0 would put the bridge's HTTP API (8766) on the network: nothing sets it.
if grep -REn '^[^#]*SHELLY(_HTTP)?_BIND' deploy/systemd "$stage/etc"; then
    fail "a unit or environment file sets SHELLY_BIND/SHELLY_HTTP_BIND (above)"
fi

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
# The token file as /etc/default/shelly-bridge documents it: a drop-in handing the file to the
# unit's throwaway user (LoadCredential=), and the variable naming where it lands.
log "systemd-analyze verify with the documented token drop-in"
dropin="$stage/etc/systemd/system/shelly-bridge.service.d"
mkdir -p "$dropin" "$stage/etc/shelly-bridge"
sed -n 's/^#   \(\[Service\]\|LoadCredential=ws-token:.*\)$/\1/p' "$stage/etc/default/shelly-bridge" >"$dropin/ws-token.conf"
[ "$(wc -l <"$dropin/ws-token.conf")" = 2 ] || fail "the drop-in documented in /etc/default/shelly-bridge changed: $(cat "$dropin/ws-token.conf")"
grep -q '^LoadCredential=ws-token:/etc/shelly-bridge/ws-token$' "$dropin/ws-token.conf" || fail "drop-in: $(cat "$dropin/ws-token.conf")"
install -m 0600 /dev/null "$stage/etc/shelly-bridge/ws-token"
if ! systemd-analyze verify --root="$stage" /etc/systemd/system/shelly-bridge.service >"$tmp/verify2.log" 2>&1 \
    || grep -E 'shelly-bridge\.service|ws-token\.conf' "$tmp/verify2.log"; then
    cat "$tmp/verify2.log" >&2
    fail "systemd-analyze verify rejected the bridge with the token drop-in"
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
[ -e "$stage/etc/shelly-bridge/ws-token" ] || fail "uninstall without --purge removed the plug token"
DESTDIR="$stage" deploy/systemd/uninstall.sh --purge >/dev/null
left="$(find "$stage" -type f)"
[ -z "$left" ] || fail "uninstall --purge left files: $left"
log "ok"
