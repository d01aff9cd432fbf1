#!/usr/bin/env bash
# Installs edge-metrics-exporter and shelly-bridge as systemd services.
#
#   sudo deploy/systemd/install.sh [--bin-dir DIR] [--no-bridge] [--no-start]
#
#   --bin-dir DIR  where the two binaries are (default: dist/bin/<arch> if built by
#                  scripts/build-arm64.sh, else target/release)
#   --no-bridge    install only the exporter (no Shelly plug on this device)
#   --no-start     install and enable, but do not (re)start the services
# DESTDIR=/some/root installs into that tree instead (packaging, dry runs): no systemctl calls.
# Files: /usr/local/bin/{edge-metrics-exporter,shelly-bridge}, /etc/systemd/system/*.service,
# /etc/edge-metrics/config.yaml (written only if absent; the exporter rewrites it itself),
# /etc/default/edge-metrics-exporter and /etc/default/shelly-bridge (only if absent; commented
# templates for the variables, tokens included, mode 0600).
# Afterwards `sudo systemctl restart edge-metrics-exporter` applies port changes.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
DESTDIR="${DESTDIR:-}"
bin_dir="" bridge=1 start=1
die() { echo "install.sh: error: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) [ $# -ge 2 ] || die "--bin-dir needs a directory"; bin_dir="$2"; shift 2 ;;
        --no-bridge) bridge=0; shift ;;
        --no-start) start=0; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
if [ -z "$bin_dir" ]; then
    case "$(uname -m)" in aarch64|arm64) arch=arm64 ;; x86_64) arch=amd64 ;; *) arch="$(uname -m)" ;; esac
    if [ -x "$root/dist/bin/$arch/edge-metrics-exporter" ]; then bin_dir="$root/dist/bin/$arch"
    else bin_dir="$root/target/release"; fi
fi
bins=(edge-metrics-exporter)
if [ "$bridge" = 1 ]; then bins+=(shelly-bridge); fi
for b in "${bins[@]}"; do
    [ -x "$bin_dir/$b" ] || die "$bin_dir/$b not found; build it (cargo build --release, or scripts/build-arm64.sh) or pass --bin-dir"
done
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (sudo $0), or set DESTDIR for a staged install"
fi

install -d "$DESTDIR/usr/local/bin" "$DESTDIR/etc/systemd/system" "$DESTDIR/etc/default"
install -d -m 0755 "$DESTDIR/etc/edge-metrics"
for b in "${bins[@]}"; do
    install -m 0755 "$bin_dir/$b" "$DESTDIR/usr/local/bin/$b"
    install -m 0644 "$here/$b.service" "$DESTDIR/etc/systemd/system/$b.service"
    # Commented templates; 0600 since the operator may put a token in them.
    [ -e "$DESTDIR/etc/default/$b" ] || install -m 0600 "$here/$b.env" "$DESTDIR/etc/default/$b"
done
if [ ! -e "$DESTDIR/etc/edge-metrics/config.yaml" ]; then
    install -m 0644 "$here/config.yaml" "$DESTDIR/etc/edge-metrics/config.yaml"
    if [ "$bridge" = 0 ]; then
        sed -i 's/^  enabled: true/  enabled: false/' "$DESTDIR/etc/edge-metrics/config.yaml"
    fi
    echo "install.sh: wrote $DESTDIR/etc/edge-metrics/config.yaml (set device_type for this board)"
else
    echo "install.sh: kept the existing $DESTDIR/etc/edge-metrics/config.yaml"
fi

if [ -n "$DESTDIR" ]; then
    echo "install.sh: staged into $DESTDIR (no systemctl calls)"
    exit 0
fi
command -v systemctl >/dev/null || die "systemctl not found: this installer needs systemd"
systemctl daemon-reload
units=()
for b in "${bins[@]}"; do units+=("$b.service"); done
systemctl enable "${units[@]}"
if [ "$start" = 1 ]; then
    systemctl restart "${units[@]}"
    systemctl --no-pager --lines=0 status "${units[@]}" || true
fi
echo "install.sh: done. Logs: journalctl -u edge-metrics-exporter -f"
