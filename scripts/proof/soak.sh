#!/usr/bin/env bash
# Soak: the pair (exporter + bridge + one simulated plug) runs for --minutes N with the exporter
# at --interval (default 1 s) and GET /metrics scraped every second (each scrape makes the
# exporter's Shelly reading go through the bridge and the plug, every interval). Every minute
# it prints RSS, open fds and CPU seconds of the exporter and the bridge.
#
#   scripts/proof/soak.sh --minutes 30             # PROFILE=release by default
#   scripts/proof/soak.sh --minutes 2 --interval 0.2
#
# Growth rule (fails the run): the first sample after a 2-minute warm-up (or minute 1 in
# shorter runs) is the baseline; the last sample may exceed it by at most
#   RSS: 10 % + 256 KiB        fds: 2
# and no scrape may fail. The least-squares RSS slope (KiB/min) over the post-warm-up
# samples is printed as well. Targets printed, not enforced: exporter < 6 MiB RSS and
# < 0.05 CPU-s per minute at interval 1 s; bridge with one plug < 4 MiB RSS.
set -euo pipefail
export PROFILE=${PROFILE:-release}
. "$(dirname "$0")/lib.sh"
trap proof_cleanup EXIT

minutes=30 interval=1
while [ $# -gt 0 ]; do
    case $1 in
        --minutes) minutes=$2; shift 2 ;;
        --interval) interval=$2; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "soak.sh: unknown option $1 (known: --minutes N --interval S)" >&2; exit 2 ;;
    esac
done
proof_build
work=$(mktemp -d /tmp/edge-soak.XXXXXX)
echo "soak: ${minutes} min, interval ${interval} s, profile ${PROFILE}; logs in ${work}"

start_bridge "$work"
start_plugs "$work" 1 jetson-01
write_fake_tegrastats "$work/tegrastats" "$PROOF_ROOT/testdata/tegrastats/orin-agx-jp6.log"
cat >"$work/config.yaml" <<YAML
device_type: jetson_orin
interval: $interval
port: 0
reload_port: 0
bind_address: 127.0.0.1
reload_bind_address: 127.0.0.1
hostname: soak
tegrastats:
  path: $work/tegrastats
shelly:
  enabled: true
  server_url: http://$BRIDGE_HTTP
  device_id: jetson-01
YAML
start_exporter "$work" "$work/config.yaml"
WANT_POWER=1 enable_all_metrics "$EXPORTER_API"
proof_wait_http "http://$EXPORTER_METRICS/metrics" 20 "power_total_watts"

# Scraper: one GET /metrics per second, counting failures, until the soak ends.
(
    fails=0 n=0
    while :; do
        n=$((n + 1))
        if ! curl -fsS --max-time 5 -o /dev/null "http://$EXPORTER_METRICS/metrics"; then fails=$((fails + 1)); fi
        echo "$n $fails" >"$work/scrapes"
        sleep 1
    done
) &
PROOF_PIDS+=("$!")

samples=$work/samples.tsv
printf 'min\texp_rss_kib\texp_fds\texp_cpu_s\tbr_rss_kib\tbr_fds\tbr_cpu_s\n' >"$samples"
sample() {
    local m=$1
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$m" \
        "$(proc_rss_kib "$EXPORTER_PID")" "$(proc_fds "$EXPORTER_PID")" \
        "$(awk -v t="$(proc_cpu_ticks "$EXPORTER_PID")" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", t/hz}')" \
        "$(proc_rss_kib "$BRIDGE_PID")" "$(proc_fds "$BRIDGE_PID")" \
        "$(awk -v t="$(proc_cpu_ticks "$BRIDGE_PID")" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", t/hz}')" >>"$samples"
    tail -1 "$samples"
}
printf 'min\texp_rss_kib\texp_fds\texp_cpu_s\tbr_rss_kib\tbr_fds\tbr_cpu_s\n'
sample 0
start=$SECONDS
for m in $(seq 1 "$minutes"); do
    while [ $((SECONDS - start)) -lt $((m * 60)) ]; do sleep 1; done
    for pid in "$EXPORTER_PID" "$BRIDGE_PID" "$SIM_PID"; do
        kill -0 "$pid" 2>/dev/null || { echo "soak: process $pid died at minute $m" >&2; exit 1; }
    done
    sample "$m"
done

read -r scrapes scrape_fails <"$work/scrapes"
python3 - "$samples" "$minutes" "$interval" "$scrapes" "$scrape_fails" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
minutes, interval = int(sys.argv[2]), float(sys.argv[3])
scrapes, scrape_fails = int(sys.argv[4]), int(sys.argv[5])
data = [[float(x) for x in r] for r in rows]
warm = 2 if minutes >= 4 else min(1, minutes)
base, last = data[warm], data[-1]
post = data[warm:]
def slope(col):
    xs = [r[0] for r in post]; ys = [r[col] for r in post]
    if len(xs) < 2: return 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0
fail = []
for name, rss, fds, cpu in (("exporter", 1, 2, 3), ("bridge", 4, 5, 6)):
    grow = last[rss] - base[rss]
    cpu_per_min = (last[cpu] - data[0][cpu]) / max(last[0] - data[0][0], 1)
    print(f"{name}: RSS {base[rss]:.0f} -> {last[rss]:.0f} KiB (max {max(r[rss] for r in data):.0f}, "
          f"slope {slope(rss):+.1f} KiB/min), fds {base[fds]:.0f} -> {last[fds]:.0f}, "
          f"CPU {cpu_per_min:.3f} s/min")
    if grow > base[rss] * 0.10 + 256:
        fail.append(f"{name} RSS grew {grow:.0f} KiB (> 10 % + 256 KiB of {base[rss]:.0f})")
    if last[fds] - base[fds] > 2:
        fail.append(f"{name} fds grew {base[fds]:.0f} -> {last[fds]:.0f}")
    if name == "exporter" and interval == 1:
        print(f"  targets: RSS < 6144 KiB: {'met' if max(r[rss] for r in post) < 6144 else 'MISSED'}; "
              f"CPU < 0.05 s/min: {'met' if cpu_per_min < 0.05 else 'MISSED'}")
    if name == "bridge":
        print(f"  target: RSS < 4096 KiB with one plug: {'met' if max(r[rss] for r in post) < 4096 else 'MISSED'}")
print(f"scrapes: {scrapes}, failed: {scrape_fails}")
if scrape_fails:
    fail.append(f"{scrape_fails} of {scrapes} scrapes failed")
for f in fail:
    print(f"soak FAIL: {f}")
sys.exit(1 if fail else 0)
PY
