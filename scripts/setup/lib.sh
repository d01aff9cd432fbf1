#!/usr/bin/env bash
# Shared helpers for the setup scripts: sourced, never run.
# Outside CI a missing package is installed (we run as root, `apt-get update` once per run);
# with CI=true a tool that is still missing after the install step is a failure, never a skip.

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
