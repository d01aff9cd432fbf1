#!/usr/bin/env bash
# The bounded proof run for the test command (a few minutes): the OpenAPI conformance test and
# the fault tests against the real binaries, schemathesis on both APIs, a short fuzz of each
# parser, and a short load run (debug build: it checks answers under load; the benchmark
# figures come from `scripts/proof/load.sh` with its release default).
#
#   scripts/proof/run.sh              # everything
#   scripts/proof/run.sh openapi fuzz # only the named parts (openapi faults schemathesis fuzz load)
set -uo pipefail
cd "$(dirname "$0")/../.."
parts=(openapi faults schemathesis fuzz load)
[ $# -gt 0 ] && parts=("$@")

results=() failed=0
run_part() {
    local name=$1 start=$SECONDS
    shift
    echo "=== proof ${name}: $*"
    if "$@"; then results+=("ok     ${name} ($((SECONDS - start)) s)")
    else results+=("FAILED ${name} ($((SECONDS - start)) s)"); failed=$((failed + 1)); fi
}
for p in "${parts[@]}"; do
    case $p in
        openapi) run_part openapi bash -c 'cargo build -q -p edge-metrics-exporter -p shelly-bridge -p shelly-sim && cargo test -q -p e2e --test openapi' ;;
        faults) run_part faults bash -c 'cargo build -q -p edge-metrics-exporter -p shelly-bridge -p shelly-sim && cargo test -q --no-fail-fast -p e2e --test "faults_*"' ;;
        schemathesis) run_part schemathesis scripts/proof/schemathesis.sh --max-examples 25 --max-time 30 ;;
        fuzz) run_part fuzz scripts/proof/fuzz.sh --seconds 20 ;;
        load) run_part load env PROFILE=debug scripts/proof/load.sh --duration 3 --plugs 200 --burst 100 ;;
        *) echo "run.sh: unknown part $p (known: openapi faults schemathesis fuzz load)" >&2; exit 2 ;;
    esac
done
echo
echo "=== proof summary (total $SECONDS s)"
printf '%s\n' "${results[@]}"
[ "$failed" -eq 0 ]
