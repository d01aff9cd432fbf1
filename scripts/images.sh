#!/usr/bin/env bash
# Builds the static binaries and the container images from this checkout, with the names
# compose.yaml, compose.demo.yaml, compose.config-server.yaml and the Helm chart use by default,
# so that on a clone
#   scripts/images.sh && docker-compose -f compose.yaml -f compose.demo.yaml up -d
# needs no registry (docs/DEPLOY.md, "Images from a clone").
#
#   scripts/images.sh [--arch amd64|arm64|all] [--no-build]
#   scripts/images.sh --push [--no-build]      (the release workflow: buildx, both arches)
#
#   --arch      what to build (default: this machine's, amd64 or arm64; a Jetson builds arm64
#               natively). `all` builds both.
#   --no-build  reuse dist/bin/<arch>/ instead of running scripts/build-arm64.sh
#   --push      build linux/amd64 + linux/arm64 images with buildx (SBOM and provenance
#               attestations) and push them as <registry path>:<version> and
#               :sha-<commit>; writes dist/images.txt, one `<ref>@<digest>` per image, for
#               signing. Needs `docker buildx` and a login to the registry.
#
# Binaries: scripts/build-arm64.sh (dist/bin/<arch>/, static, release profile). Images, for each
# of edge-metrics-exporter, shelly-bridge, edge-metrics-config-server and shelly-sim (the demo's
# plug), FROM scratch per docker/<image>.Dockerfile:
#   <registry path>:<version>   the default reference in the compose files (the Cargo version),
#   <registry path>:dev         the same image,
#   <registry path>:dev-<arch>  one per architecture built.
# The first two name the machine's architecture when it was built, else the one that was.
# OCI labels carry the version and revision the binary itself reports (`--version`: git describe
# at build time, scripts/build-version.rs) and the commit time as `created`, so a rebuild of the
# same commit is the same image. The classic builder (Debian's docker.io) cannot build FROM
# scratch for a foreign platform: the image is built for ours and docker/set-image-arch.py
# records the target's. Env: SKIP_SETUP=1 (no installs, passed to build-arm64.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { printf 'images.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
DOCKER="${DOCKER:-/usr/bin/docker}"
[ -x "$DOCKER" ] || DOCKER="$(command -v docker || true)"
[ -n "$DOCKER" ] || die "docker not found (Debian: apt-get install docker.io; scripts/setup/docker.sh starts it)"
export DOCKER_BUILDKIT=0
IMAGES=(edge-metrics-exporter shelly-bridge edge-metrics-config-server shelly-sim)

# shellcheck source=build-lib.sh
. scripts/build-lib.sh
native="$(native_arch)" || die "unsupported machine $(uname -m): build with --arch amd64 or arm64"
arch_opt="$native" build=1 push=0
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) [ $# -ge 2 ] || die "--arch needs amd64, arm64 or all"; arch_opt="$2"; shift 2 ;;
        --arch=*) arch_opt="${1#--arch=}"; shift ;;
        --no-build) build=0; shift ;;
        --push) push=1; arch_opt=all; shift ;;
        -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
arch_words="$(arch_list "$arch_opt")" || die "--arch must be amd64, arm64 or all, not '$arch_opt'"
read -ra archs <<<"$arch_words"
# The architecture the default tags point at.
default_arch="${archs[0]}"
for a in "${archs[@]}"; do [ "$a" = "$native" ] && default_arch="$native"; done

# default_ref VARIABLE: the default image reference compose gives ${VARIABLE:-...}.
default_ref() { compose_default_ref "$1" || die "no default for \${$1} in the compose files"; }
declare -A ref_of=(
    [edge-metrics-exporter]="$(default_ref EXPORTER_IMAGE)"
    [shelly-bridge]="$(default_ref BRIDGE_IMAGE)"
    [edge-metrics-config-server]="$(default_ref CONFIG_SERVER_IMAGE)"
    [shelly-sim]="$(default_ref SIM_IMAGE)"
)

if [ "$build" = 1 ]; then
    ARCHS="${archs[*]}" bash scripts/build-arm64.sh
fi
for a in "${archs[@]}"; do
    for b in "${IMAGES[@]}"; do
        [ -x "dist/bin/$a/$b" ] || die "dist/bin/$a/$b missing (run without --no-build)"
    done
done

# created_of REVISION: the commit's time (RFC 3339, UTC), so the same commit gives the same
# labels and the classic builder's cache then the same image; without git, SOURCE_DATE_EPOCH
# or now.
created_of() {
    local t
    t="$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ "$1" 2>/dev/null || true)"
    [ -n "$t" ] || t="$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%dT%H:%M:%SZ)"
    printf '%s\n' "$t"
}

# binary_version ARCH: "VERSION REVISION" as dist/bin/ARCH/edge-metrics-exporter reports them.
binary_version() {
    local line version revision
    line="$("dist/bin/$1/edge-metrics-exporter" --version)" \
        || die "dist/bin/$1/edge-metrics-exporter --version failed (an arm64 binary here needs qemu binfmt: scripts/setup/arm64.sh)"
    version="$(sed -nE 's/^edge-metrics-exporter ([^ ]+) \(revision ([^)]+)\)$/\1/p' <<<"$line")"
    revision="$(sed -nE 's/^edge-metrics-exporter ([^ ]+) \(revision ([^)]+)\)$/\2/p' <<<"$line")"
    [ -n "$version" ] && [ -n "$revision" ] || die "unexpected --version output: $line"
    printf '%s %s\n' "$version" "$revision"
}

if [ "$push" = 1 ]; then
    "$DOCKER" buildx version >/dev/null 2>&1 || die "--push needs docker buildx"
    vr="$(binary_version amd64)"; read -r version revision <<<"$vr"
    vr="$(binary_version arm64)"; read -r v2 r2 <<<"$vr"
    [ "$version $revision" = "$v2 $r2" ] || die "the amd64 and arm64 binaries differ: $version $revision vs $v2 $r2"
    created="$(created_of "$revision")"
    : >dist/images.txt
    for img in "${IMAGES[@]}"; do
        repo="${ref_of[$img]%:*}"
        "$DOCKER" buildx build --platform linux/amd64,linux/arm64 --push \
            --sbom=true --provenance=mode=max \
            --build-arg VERSION="$version" --build-arg REVISION="$revision" --build-arg CREATED="$created" \
            --metadata-file "dist/$img.metadata.json" \
            -t "$repo:$version" -t "$repo:sha-$revision" -f "docker/$img.Dockerfile" dist
        digest="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["containerimage.digest"])' "dist/$img.metadata.json")"
        [[ $digest == sha256:* ]] || die "no digest for $img in dist/$img.metadata.json"
        printf '%s:%s@%s\n' "$repo" "$version" "$digest" | tee -a dist/images.txt
    done
    exit 0
fi

for a in "${archs[@]}"; do
    # What the binaries say (`NAME VERSION (revision REV)`); arm64 on an amd64 machine runs
    # through qemu's binfmt entry (scripts/setup/arm64.sh).
    vr="$(binary_version "$a")"; read -r version revision <<<"$vr"
    created="$(created_of "$revision")"
    for img in "${IMAGES[@]}"; do
        ref="${ref_of[$img]}"
        repo="${ref%:*}"
        tag="$repo:dev-$a"
        "$DOCKER" build -q --build-arg TARGETARCH="$a" --build-arg VERSION="$version" \
            --build-arg REVISION="$revision" --build-arg CREATED="$created" \
            -f "docker/$img.Dockerfile" -t "$tag" dist >/dev/null
        if [ "$a" != "$native" ]; then
            python3 docker/set-image-arch.py "$tag" "$a" >/dev/null
        fi
        if [ "$a" = "$default_arch" ]; then
            "$DOCKER" tag "$tag" "$ref"
            "$DOCKER" tag "$tag" "$repo:dev"
            log "$ref = $repo:dev = $tag ($version, $revision)"
        else
            log "$tag ($version, $revision)"
        fi
    done
done
