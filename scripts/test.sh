#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what it needs (apt packages,
# dockerd, helm, the arm64 toolchain), then runs every stage and prints a summary.
# With CI=true a missing tool is a failure, never a skip.
#
#   scripts/test.sh            # everything
#   scripts/test.sh rust       # only the named stages (see STAGES below)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

ALL_STAGES=(setup fmt clippy rust demo proof systemd helm arm64 docker)
STAGES=("${ALL_STAGES[@]}")
[ $# -gt 0 ] && STAGES=("$@")

passed=0 failed=0 failures=()
report=()
run_stage() {
    local name=$1; shift
    local start=$SECONDS
    echo "=== stage ${name}: $*"
    if "$@"; then
        passed=$((passed + 1)); report+=("ok     ${name} ($((SECONDS - start)) s)")
    else
        failed=$((failed + 1)); failures+=("$name"); report+=("FAILED ${name} ($((SECONDS - start)) s)")
        if [ "$name" = setup ]; then
            echo "setup failed: the remaining stages need its tools" >&2
            summary; exit 1
        fi
    fi
}
summary() {
    echo
    echo "=== summary (total $SECONDS s)"
    printf '%s\n' "${report[@]}"
    echo "stages: ${passed} passed, ${failed} failed"
}

stage() {
    case $1 in
        setup)   run_stage setup bash -c 'scripts/setup/deps.sh && scripts/setup/helm.sh && scripts/setup/arm64.sh && scripts/setup/docker.sh' ;;
        fmt)     run_stage fmt cargo fmt --all -- --check ;;
        clippy)  run_stage clippy cargo clippy --workspace --all-targets -- -D warnings ;;
        rust)    run_stage rust cargo test --workspace ;;
        demo)    run_stage demo scripts/demo.sh --check ;;
        proof)   run_stage proof scripts/proof/run.sh schemathesis fuzz load ;;
        systemd) run_stage systemd scripts/test-systemd.sh ;;
        helm)    run_stage helm scripts/test-helm.sh ;;
        arm64)   run_stage arm64 scripts/test-arm64.sh ;;
        docker)  run_stage docker scripts/test-docker.sh ;;
        *) echo "unknown stage $1 (known: ${ALL_STAGES[*]})" >&2; exit 2 ;;
    esac
}
for s in "${STAGES[@]}"; do stage "$s"; done
summary
[ "$failed" -eq 0 ]
