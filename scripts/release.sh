#!/usr/bin/env bash
# The release workflow's own steps (.github/workflows/release.yml calls these, so what it runs
# can be run and read here):
#
#   scripts/release.sh check-tag vX.Y.Z   the tag is the Cargo version, HEAD is exactly that
#                                         tag (git describe), CHANGELOG.md has its entry and the
#                                         chart's version and appVersion agree
#   scripts/release.sh notes X.Y.Z        prints CHANGELOG.md's section for X.Y.Z (release notes)
#   scripts/release.sh chart DIR          helm package helm/edge-metrics into DIR
#   scripts/release.sh assets DIR         collects the release files into DIR: the binaries of
#                                         dist/bin as <name>-<version>-linux-<arch>, the .deb
#                                         files of dist/deb, the chart of dist/chart, and writes
#                                         SHA256SUMS over them (signed by the workflow)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { printf 'release.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
eval "$(bash scripts/version.sh)"

# changelog_section VERSION: the lines of CHANGELOG.md's `## [VERSION]` section, without it.
changelog_section() {
    awk -v v="$1" '
        /^## \[/ { if (found) exit; if (index($0, "## [" v "]") == 1) { found = 1; next } }
        found { print }
        END { if (!found) exit 1 }' CHANGELOG.md
}

cmd="${1:-}"; shift || true
case "$cmd" in
    check-tag)
        tag="${1:?usage: release.sh check-tag vX.Y.Z}"
        [ "$tag" = "v$CARGO_VERSION" ] || die "tag $tag is not v$CARGO_VERSION, the version in Cargo.toml: bump it first"
        [ "$VERSION" = "$CARGO_VERSION" ] || die "git describe says $VERSION: HEAD is not the commit tagged $tag"
        changelog_section "$CARGO_VERSION" | grep -q '[^[:space:]]' \
            || die "CHANGELOG.md has no (or an empty) section ## [$CARGO_VERSION]"
        chart_version="$(sed -n 's/^version: //p' helm/edge-metrics/Chart.yaml)"
        app_version="$(sed -n 's/^appVersion: "\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' helm/edge-metrics/Chart.yaml)"
        [ "$app_version" = "$CARGO_VERSION" ] || die "Chart.yaml appVersion is $app_version, not $CARGO_VERSION"
        [ "$chart_version" = "$CARGO_VERSION" ] || die "Chart.yaml version is $chart_version, not $CARGO_VERSION"
        log "ok: $tag = Cargo $CARGO_VERSION = git describe, CHANGELOG entry and chart versions present"
        ;;
    notes)
        v="${1:?usage: release.sh notes X.Y.Z}"
        changelog_section "$v" || die "CHANGELOG.md has no section ## [$v]"
        ;;
    chart)
        out="${1:?usage: release.sh chart DIR}"
        command -v helm >/dev/null || die "helm missing (scripts/setup/helm.sh)"
        mkdir -p "$out"
        helm package helm/edge-metrics --destination "$out" >&2
        ls "$out"/edge-metrics-*.tgz
        ;;
    assets)
        out="${1:?usage: release.sh assets DIR}"
        mkdir -p "$out"
        # Named for what the binaries say they are (the tag's version in the release job).
        line="$(dist/bin/amd64/edge-metrics-exporter --version)" || die "dist/bin/amd64/edge-metrics-exporter --version failed"
        VERSION="$(awk '{ print $2 }' <<<"$line")"
        for arch in amd64 arm64; do
            for b in edge-metrics-exporter shelly-bridge edge-metrics-config-server; do
                [ -x "dist/bin/$arch/$b" ] || die "dist/bin/$arch/$b missing (scripts/build-arm64.sh)"
                install -m 0755 "dist/bin/$arch/$b" "$out/$b-$VERSION-linux-$arch"
            done
        done
        shopt -s nullglob
        debs=(dist/deb/*.deb) charts=(dist/chart/*.tgz) sboms=(dist/sbom/*.json)
        [ "${#debs[@]}" -ge 2 ] || die "dist/deb has ${#debs[@]} packages, want amd64 and arm64 (scripts/package.sh)"
        cp "${debs[@]}" "${charts[@]}" "${sboms[@]}" "$out/"
        (cd "$out" && rm -f SHA256SUMS && sha256sum -- * >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
        (cd "$out" && sha256sum -c --quiet SHA256SUMS) || die "SHA256SUMS does not check"
        log "$(wc -l <"$out/SHA256SUMS") files in $out, listed in $out/SHA256SUMS"
        ;;
    *) sed -n '2,16p' "$0" >&2; exit 64 ;;
esac
