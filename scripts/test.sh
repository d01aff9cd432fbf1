#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what it needs (apt packages,
# dockerd, helm, the arm64 toolchain), then runs every stage and prints a summary: each stage,
# then how many tests ran, passed, failed and were skipped, and why.
# A missing tool or capability is a failure, never a skip, whatever CI says; only an explicit
# opt-out for the run lets it skip: EDGE_METRICS_ALLOW_SKIP=promtool,helm (or =all). Every skip
# is recorded in the ledger $EDGE_METRICS_SKIP_LOG (a fresh file per run) and reported.
#
#   scripts/test.sh            # everything
#   scripts/test.sh rust       # only the named stages (see STAGES below)
#
# The last line is `tests: N passed, M failed, S skipped`: the `test result:` lines of every
# cargo test run in the stages (rust, helm, arm64), `#[ignore]`d tests and the ledger's skips.
# Each stage's output is also kept in $TEST_LOG_DIR (default: a fresh temp directory).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# A clean clone builds everything once: incremental caches would only take disk space.
[ -n "${CI:-}" ] && export CARGO_INCREMENTAL=0

ALL_STAGES=(setup fmt clippy rust demo proof systemd helm arm64 package docker remote-write)
STAGES=("${ALL_STAGES[@]}")
[ $# -gt 0 ] && STAGES=("$@")

TEST_LOG_DIR="${TEST_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/edge-metrics-test.XXXXXX")}"
mkdir -p "$TEST_LOG_DIR"
EDGE_METRICS_SKIP_LOG="$TEST_LOG_DIR/skipped.tsv"
: >"$EDGE_METRICS_SKIP_LOG"
export EDGE_METRICS_SKIP_LOG

# free_disk: the space left where the build writes, e.g. "41G".
free_disk() { df -h --output=avail . | tail -1 | tr -d ' '; }

passed=0 failed=0 failures=()
report=()
ran_stages=()
run_stage() {
    local name=$1; shift
    local start=$SECONDS
    echo "=== stage ${name}: $* (free disk: $(free_disk))"
    ran_stages+=("$name")
    # The output goes to the terminal and to the stage's log, which the test count reads.
    if "$@" 2>&1 | tee "$TEST_LOG_DIR/$name.log"; then
        passed=$((passed + 1)); report+=("ok     ${name} ($((SECONDS - start)) s)")
    else
        failed=$((failed + 1)); failures+=("$name"); report+=("FAILED ${name} ($((SECONDS - start)) s)")
        if [ "$name" = setup ]; then
            echo "setup failed: the remaining stages need its tools" >&2
            summary; exit 1
        fi
    fi
}

# count_tests LOG: "passed failed ignored runs" summed over the `test result:` lines of LOG.
count_tests() {
    awk '/^test result: (ok|FAILED)\. [0-9]+ passed; [0-9]+ failed; [0-9]+ ignored;/ {
             p += $4; f += $6; i += $8; n++
         }
         END { printf "%d %d %d %d\n", p, f, i, n }' "$1"
}

# ignored_tests LOG: "<test>\t<reason>" for each test libtest reported as ignored.
ignored_tests() {
    sed -nE 's/^test (.+) \.\.\. ignored(, (.*))?$/\1\t\3/p' "$1" \
        | awk -F '\t' '{ printf "%s\t%s\n", $1, ($2 == "" ? "#[ignore] without a reason" : $2) }'
}

# stage_failed NAME: true when stage NAME is reported as failed.
stage_failed() {
    local r
    for r in "${report[@]}"; do [[ $r == "FAILED $1 "* ]] && return 0; done
    return 1
}

test_summary() {
    local name log p f i n tp=0 tf=0 ti=0 rust_skips ledger_skips skipped
    echo
    echo "=== tests"
    for name in "${ran_stages[@]}"; do
        log="$TEST_LOG_DIR/$name.log"
        [ -f "$log" ] || continue
        read -r p f i n < <(count_tests "$log")
        if [ "$n" -gt 0 ]; then
            printf '%-8s %6d passed, %d failed, %d ignored (%d test targets)\n' "$name" "$p" "$f" "$i" "$n"
            tp=$((tp + p)); tf=$((tf + f)); ti=$((ti + i))
        fi
        if [ "$f" -eq 0 ] && stage_failed "$name"; then
            echo "${name}: the stage failed outside the counted tests (a build error, a crash or a script check): see $log"
        fi
    done
    # A test that skipped returned early and was counted as passed by libtest: it moves from
    # passed to skipped. Script checks (scripts/...) that skipped were never counted.
    ledger_skips=$(grep -c . "$EDGE_METRICS_SKIP_LOG" || true)
    rust_skips=$(cut -f1 "$EDGE_METRICS_SKIP_LOG" | grep -v '^scripts/' | sort -u | grep -c . || true)
    tp=$((tp - rust_skips)); [ "$tp" -ge 0 ] || tp=0
    skipped=$((ledger_skips + ti))
    echo "ran:     $((tp + tf + rust_skips)) tests ($tp passed, $tf failed, $rust_skips returned early as skipped)"
    if [ "$skipped" -eq 0 ]; then
        echo "skipped: none"
    else
        echo "skipped: $skipped (why, from $EDGE_METRICS_SKIP_LOG and the #[ignore] reasons):"
        awk -F '\t' '{ printf "  %s: needs %s: %s\n", $1, $2, $3 }' "$EDGE_METRICS_SKIP_LOG"
        for name in "${ran_stages[@]}"; do
            log="$TEST_LOG_DIR/$name.log"
            [ -f "$log" ] || continue
            ignored_tests "$log" | awk -F '\t' -v s="$name" '{ printf "  %s: %s: ignored: %s\n", s, $1, $2 }'
        done
    fi
    echo "logs:    $TEST_LOG_DIR"
    echo "tests: ${tp} passed, ${tf} failed, ${skipped} skipped"
}

summary() {
    echo
    echo "=== summary (total $SECONDS s)"
    printf '%s\n' "${report[@]}"
    echo "stages: ${passed} passed, ${failed} failed"
    test_summary
}

stage() {
    case $1 in
        setup)   run_stage setup bash -c 'scripts/setup/deps.sh && scripts/setup/helm.sh && scripts/setup/arm64.sh && scripts/setup/docker.sh' ;;
        fmt)     run_stage fmt cargo fmt --all -- --check ;;
        clippy)  run_stage clippy cargo clippy --workspace --all-targets -- -D warnings ;;
        # Every test binary runs even after a failure, so the counts cover the whole suite.
        rust)    run_stage rust cargo test --workspace --no-fail-fast ;;
        demo)    run_stage demo scripts/demo.sh --check ;;
        proof)   run_stage proof scripts/proof/run.sh schemathesis fuzz load ;;
        systemd) run_stage systemd scripts/test-systemd.sh ;;
        helm)    run_stage helm scripts/test-helm.sh ;;
        # In CI the aarch64 test build is not needed after its stage; the images need the room.
        arm64)   run_stage arm64 scripts/test-arm64.sh
                 if [ -n "${CI:-}" ]; then rm -rf target-arm64; fi ;;
        # Before docker: it builds the release binaries that the images then reuse.
        package) run_stage package scripts/test-package.sh ;;
        docker)  run_stage docker scripts/test-docker.sh ;;
        remote-write) run_stage remote-write scripts/test-remote-write.sh ;;
        *) echo "unknown stage $1 (known: ${ALL_STAGES[*]})" >&2; exit 2 ;;
    esac
}
for s in "${STAGES[@]}"; do stage "$s"; done
summary
[ "$failed" -eq 0 ]
