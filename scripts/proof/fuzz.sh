#!/usr/bin/env bash
# Fuzzes the parsers that read other programs' output, each for a bounded time:
#   tegrastats_line  collector::jetson::read_line, every model   (seeds: testdata/tegrastats)
#   config_parse     config::parse + save/load round trip        (seeds: fuzz/seeds/config, fixtures)
#   shelly_frame     shelly_bridge::rpc frame decoding            (seeds: testdata/shelly)
#
#   scripts/proof/fuzz.sh                    # 60 s per target
#   scripts/proof/fuzz.sh --seconds 20       # shorter (scripts/proof/run.sh uses this)
#   scripts/proof/fuzz.sh tegrastats_line    # one target
#
# Needs the nightly toolchain (rustup) and cargo-fuzz, installed here from crates.io when
# missing. A crash fails the run and leaves the input in fuzz/artifacts/<target>/; copy it to
# fuzz/regressions/<target>/ with a name saying what it pins once fixed: those inputs are
# replayed first on every run and by `cargo test -p e2e --test faults_fuzz_regressions`.
set -euo pipefail
cd "$(dirname "$0")/../.."

CARGO_FUZZ_VERSION=0.13.2
secs=60
targets=()
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) secs=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1 (known: --seconds N)" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(tegrastats_line config_parse shelly_frame)

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: the nightly toolchain is missing: rustup toolchain install nightly" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz ${CARGO_FUZZ_VERSION} from crates.io"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

seed() { # target -> fills fuzz/corpus/<target> from the repo's real samples (never overwrites)
    local t=$1 dir=fuzz/corpus/$1
    mkdir -p "$dir" "fuzz/regressions/$t"
    case $t in
        tegrastats_line)
            for f in testdata/tegrastats/*.log; do
                cp -n "$f" "$dir/file-$(basename "$f")"
                local n=0
                while IFS= read -r line; do
                    n=$((n + 1))
                    printf '%s\n' "$line" >"$dir/line-$(basename "$f" .log)-$n"
                done <"$f"
            done ;;
        config_parse)
            cp -n fuzz/seeds/config/*.yaml "$dir/" 2>/dev/null || true
            for f in exporter/tests/fixtures/config/*/*.yaml; do
                [ -e "$f" ] && cp -n "$f" "$dir/fixture-$(basename "$(dirname "$f")")-$(basename "$f")"
            done ;;
        shelly_frame)
            for f in testdata/shelly/*.json; do cp -n "$f" "$dir/"; done ;;
    esac
}

status=0
for t in "${targets[@]}"; do
    seed "$t"
    echo "=== fuzz ${t}: ${secs} s"
    # Regression inputs go in as a second corpus dir: replayed on start, never written to.
    if ! cargo +nightly fuzz run "$t" "fuzz/corpus/$t" "fuzz/regressions/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 2>"fuzz/$t.log"; then
        status=1
        echo "fuzz ${t}: FAILED; last lines of fuzz/${t}.log:" >&2
        tail -40 "fuzz/$t.log" >&2
        ls fuzz/artifacts/"$t"/ 2>/dev/null >&2 || true
    else
        grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "fuzz/$t.log" | sed "s/^/fuzz ${t}: /"
        grep -E 'cov: [0-9]+' "fuzz/$t.log" | tail -1 | sed "s/^/fuzz ${t}: /"
    fi
done
exit $status
