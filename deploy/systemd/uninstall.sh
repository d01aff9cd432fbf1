#!/usr/bin/env bash
# Stops, disables and removes the edge-metrics services and binaries.
#
#   sudo deploy/systemd/uninstall.sh [--purge]
#
#   --purge  also remove /etc/edge-metrics (config.yaml), /etc/default/{edge-metrics-exporter,shelly-bridge},
#            the units' drop-ins (/etc/systemd/system/<unit>.service.d) and /etc/shelly-bridge
#            (plug token and certificate)
# DESTDIR=/some/root removes from that tree instead: no systemctl calls.
set -euo pipefail
DESTDIR="${DESTDIR:-}"
purge=0
case "${1:-}" in
    --purge) purge=1 ;;
    "") ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "uninstall.sh: error: unknown option '$1' (see --help)" >&2; exit 1 ;;
esac
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
    echo "uninstall.sh: error: run as root (sudo $0), or set DESTDIR" >&2; exit 1
fi
bins=(edge-metrics-exporter shelly-bridge)
if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null; then
    for b in "${bins[@]}"; do
        systemctl disable --now "$b.service" 2>/dev/null || true
    done
fi
for b in "${bins[@]}"; do
    rm -f "$DESTDIR/etc/systemd/system/$b.service" "$DESTDIR/usr/local/bin/$b"
    if [ "$purge" = 1 ]; then
        rm -f "$DESTDIR/etc/default/$b"
        rm -rf "$DESTDIR/etc/systemd/system/$b.service.d"
    fi
done
if [ "$purge" = 1 ]; then
    rm -rf "$DESTDIR/etc/edge-metrics" "$DESTDIR/etc/shelly-bridge"
else
    echo "uninstall.sh: kept $DESTDIR/etc/edge-metrics (use --purge to remove it)"
fi
if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null; then
    systemctl daemon-reload || true
fi
echo "uninstall.sh: done"
