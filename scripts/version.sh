#!/usr/bin/env bash
# Prints the version and revision a build of this checkout carries, the way the daemons' build
# script (scripts/build-version.rs) derives them, as shell assignments:
#   VERSION=0.1.0-3-g1a2b3c4      git describe --tags --match 'v[0-9]*' without the v; no tag
#                                 yet: <Cargo version>-g<short commit>; no git: the Cargo version
#   REVISION=<40 hex>|unknown     git rev-parse HEAD
#   CARGO_VERSION=0.1.0           [workspace.package] version in Cargo.toml
#   CREATED=<RFC 3339>            the commit's time (reproducible), else SOURCE_DATE_EPOCH, else now
# EDGE_METRICS_VERSION / EDGE_METRICS_REVISION in the environment win, as in the build script.
#   eval "$(scripts/version.sh)"
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cargo_version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml")"
[ -n "$cargo_version" ] || { echo "version.sh: no [workspace.package] version in $root/Cargo.toml" >&2; exit 1; }
version="" revision="" created=""
top="$(git -C "$root" rev-parse --show-toplevel 2>/dev/null || true)"
if [ -n "$top" ] && [ "$(cd "$top" && pwd -P)" = "$(cd "$root" && pwd -P)" ]; then
    revision="$(git -C "$root" rev-parse HEAD 2>/dev/null || true)"
    if [ -n "$revision" ]; then
        if described="$(git -C "$root" describe --tags --match 'v[0-9]*' 2>/dev/null)"; then
            version="${described#v}"
        else
            version="$cargo_version-g$(git -C "$root" rev-parse --short=7 HEAD)"
        fi
        created="$(TZ=UTC git -C "$root" log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ HEAD)"
    fi
fi
[ -n "${EDGE_METRICS_VERSION:-}" ] && version="$EDGE_METRICS_VERSION"
[ -n "${EDGE_METRICS_REVISION:-}" ] && revision="$EDGE_METRICS_REVISION"
: "${version:=$cargo_version}" "${revision:=unknown}"
if [ -z "$created" ]; then
    if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then created="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
    else created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"; fi
fi
printf 'VERSION=%q\nREVISION=%q\nCARGO_VERSION=%q\nCREATED=%q\n' "$version" "$revision" "$cargo_version" "$created"
