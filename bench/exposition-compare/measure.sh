#!/usr/bin/env bash
# Every figure of docs/decisions/exposition.md in one go: builds the bins (release profile =
# the workspace's), then binary sizes, memory (each memory bin run RUNS times, medians) and
# render time (render_time: ITERATIONS × ROUNDS, medians), and the same for `prometheus` with
# its default `protobuf` feature on. Prints Markdown.
#
#   cd bench/exposition-compare && ./measure.sh            # RUNS=7 ITERATIONS=20000 ROUNDS=5
#
# Builds run under `nice -n 10`, one at a time; the measurements at normal priority.
set -euo pipefail
cd "$(dirname "$0")"
RUNS=${RUNS:-7}
ITERATIONS=${ITERATIONS:-20000}
ROUNDS=${ROUNDS:-5}
BINS=(rss_baseline rss_handwritten rss_prometheus rss_prometheus_client)

nice -n 10 cargo build --quiet --release --bins
nice -n 10 cargo build --quiet --release --bins --features prometheus-protobuf \
    --target-dir target/with-protobuf

median() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }

echo "## Machine"
echo
echo "$(uname -m), $(nproc) cores, $(rustc --version), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "## Binary size (release, lto fat, codegen-units 1, panic abort, stripped)"
echo
base=$(stat -c %s target/release/rss_baseline)
echo "| binary | bytes | over rss_baseline |"
echo "|---|---:|---:|"
for b in "${BINS[@]}"; do
    s=$(stat -c %s "target/release/$b")
    echo "| $b | $s | $((s - base)) |"
done
s=$(stat -c %s target/with-protobuf/release/rss_prometheus)
echo "| rss_prometheus, \`protobuf\` feature on | $s | $((s - base)) |"
echo
echo "## Memory after 1,000 renders (median of $RUNS runs, KiB)"
echo
declare -A out
for _ in $(seq "$RUNS"); do
    for b in "${BINS[@]}"; do out[$b]+="$("target/release/$b")"$'\n'; done
    out[protobuf]+="$(target/with-protobuf/release/rss_prometheus)"$'\n'
done
echo "| binary | VmRSS | VmHWM | RssAnon | VmRSS range |"
echo "|---|---:|---:|---:|---:|"
for b in "${BINS[@]}" protobuf; do
    rss=$(printf '%s' "${out[$b]}" | field VmRSS_kB | median)
    hwm=$(printf '%s' "${out[$b]}" | field VmHWM_kB | median)
    anon=$(printf '%s' "${out[$b]}" | field RssAnon_kB | median)
    range=$(printf '%s' "${out[$b]}" | field VmRSS_kB | sort -n | sed -n '1p;$p' | paste -sd-)
    name=$b; [ "$b" = protobuf ] && name="rss_prometheus, \`protobuf\` feature on"
    echo "| $name | $rss | $hwm | $anon | $range |"
done
echo
echo "## Render time"
echo
target/release/render_time "$ITERATIONS" "$ROUNDS"
echo
echo "## Render time, \`prometheus\` with its \`protobuf\` feature on"
echo
target/with-protobuf/release/render_time "$ITERATIONS" "$ROUNDS" | grep -E '^load|^\|(---| variant| prometheus )'
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
