#!/usr/bin/env bash
# Shared helpers for the setup and test scripts: sourced, never run.
# A missing package is installed (we run as root, `apt-get update` once per run); a tool that
# is still missing after the install step is a failure, never a skip, whatever CI says, unless
# EDGE_METRICS_ALLOW_SKIP names it for the run (see `missing` below; the Rust tests read the
# same variable through test_support::require).

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

APT_UPDATED="${APT_UPDATED:-0}"

# apt_install PKG... installs the packages that are not installed yet.
apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "need root to install ${missing[*]}; run: sudo $0"
    if [ "$APT_UPDATED" != 1 ]; then
        log "apt-get update"
        apt-get update -qq || die "apt-get update failed; check the Debian mirrors in /etc/apt/sources.list*"
        APT_UPDATED=1
        export APT_UPDATED
    fi
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

# require_cmd CMD... fails when a command is not on PATH.
require_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || die "required command '$c' not found; run scripts/setup/deps.sh (or the setup script that provides it)"
    done
}

# allow_skip NEED: true when EDGE_METRICS_ALLOW_SKIP (comma- or space-separated names, or
# `all`) names NEED, case-insensitively.
allow_skip() {
    local need=${1,,} item
    local IFS=$', \t'
    for item in ${EDGE_METRICS_ALLOW_SKIP:-}; do
        item=${item,,}
        if [ "$item" = all ] || [ "$item" = "$need" ]; then return 0; fi
    done
    return 1
}

# missing NEED WHY: NEED (a tool or capability) is missing, WHY says what it takes to get it.
# Exits 1 with that message unless the opt-out names NEED; then prints a loud SKIPPED line,
# appends "<check>\t<need>\t<why>" to $EDGE_METRICS_SKIP_LOG when set, and returns 0 so the
# caller can leave out what needs it. <check> is $SKIP_CHECK, else the script as invoked.
missing() {
    local need=$1 why=${2//$'\t'/ } check=${SKIP_CHECK:-${0#./}}
    if ! allow_skip "$need"; then
        die "needs $need: $why. A missing need fails; to skip it for one run instead, set EDGE_METRICS_ALLOW_SKIP=$need (or =all)"
    fi
    log "!!!!! SKIPPED ${check}: needs ${need}: ${why} (EDGE_METRICS_ALLOW_SKIP=${EDGE_METRICS_ALLOW_SKIP}) !!!!!"
    if [ -n "${EDGE_METRICS_SKIP_LOG:-}" ]; then
        printf '%s\t%s\t%s\n' "$check" "$need" "$why" >>"$EDGE_METRICS_SKIP_LOG"
    else
        log "(not recorded: EDGE_METRICS_SKIP_LOG is not set)"
    fi
}
