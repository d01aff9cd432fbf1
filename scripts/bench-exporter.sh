#!/usr/bin/env bash
# Steady-state cost of the exporter: release build, interval 1 s on a replayed Orin corpus, every
# discovered metric enabled, /metrics scraped every second for DURATION seconds (default 60).
# Prints RSS (from /proc) and CPU seconds per minute. Targets: < 6 MiB RSS, < 0.05 CPU-s/min.
#
#   scripts/bench-exporter.sh            # DURATION=60
#   DURATION=20 scripts/bench-exporter.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/check-lib.sh
DURATION=${DURATION:-60}
CORPUS=${CORPUS:-testdata/tegrastats/orin-agx-jp6.log}

cargo build --release -p edge-metrics-exporter
BIN=target/release/edge-metrics-exporter

dir=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

{ exporter_yaml bench-01; cat <<YAML; } >"$dir/config.yaml"
shelly:
  enabled: false
tegrastats:
  replay: $PWD/$CORPUS
YAML

RUST_LOG=warn,edge_metrics_exporter=info "$BIN" --config "$dir/config.yaml" 2>"$dir/log" &
pid=$!

addr() { grep -o "server=\"$1\" address=[0-9.:]*" "$dir/log" | head -1 | sed 's/.*address=//'; }
for _ in $(seq 100); do
    [ -n "$(addr metrics)" ] && [ -n "$(addr management)" ] && break
    sleep 0.1
done
M=$(addr metrics); A=$(addr management)
[ -n "$M" ] && [ -n "$A" ] || { echo "exporter did not start:"; cat "$dir/log"; exit 1; }

# Let discovery run, then enable everything so each render is full size.
sleep 3
body=$(curl -sf "http://$A/metrics/list" | python3 -c 'import json,sys; print(json.dumps({k: True for k in json.load(sys.stdin)["metrics"]}))')
curl -sf -X POST -H 'Content-Type: application/json' -d "$body" "http://$A/metrics/enable" >/dev/null
sleep 2

ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"; }
hz=$(getconf CLK_TCK)

t0=$(date +%s.%N); c0=$(ticks)
rss=()
bytes=0
for _ in $(seq "$DURATION"); do
    n=$(curl -sf "http://$M/metrics" | wc -c)
    bytes=$n
    rss+=("$(rss_kb)")
    sleep 1
done
t1=$(date +%s.%N); c1=$(ticks)

sorted=$(printf '%s\n' "${rss[@]}" | sort -n)
median=$(echo "$sorted" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
max=$(echo "$sorted" | tail -1)
python3 - "$t0" "$t1" "$c0" "$c1" "$hz" "$median" "$max" "$bytes" "$DURATION" <<'PY'
import sys
t0, t1, c0, c1, hz, median, mx, size, dur = sys.argv[1:]
elapsed = float(t1) - float(t0)
cpu = (float(c1) - float(c0)) / float(hz)
print(f"scraped /metrics every second for {dur} s ({size} bytes per scrape)")
print(f"RSS steady state: median {int(median) / 1024:.2f} MiB, max {int(mx) / 1024:.2f} MiB (target < 6 MiB)")
print(f"CPU: {cpu:.2f} s over {elapsed:.1f} s = {cpu / elapsed * 60:.3f} CPU-s/min (target < 0.05)")
PY
