#!/usr/bin/env bash
# Builds the Debian packages for bare-metal installs (a Jetson without containers, a PC):
#   dist/deb/edge-metrics_<version>_amd64.deb, dist/deb/edge-metrics_<version>_arm64.deb
#
#   scripts/package.sh [--arch amd64|arm64|all] [--version VERSION] [--out DIR] [--no-build]
#
#   --arch      which packages (default: all)
#   --version   the package version (default: the binaries' `--version`, i.e. git describe at
#               build time, in Debian's spelling: 0.1.0 on a tag, 0.1.0+3.g1a2b3c4 three commits
#               after it, 0.1.0~g1a2b3c4 before the first tag)
#   --out DIR   where the .deb files go (default: dist/deb)
#   --no-build  reuse dist/bin/<arch>/ instead of running scripts/build-arm64.sh
#
# One package, `edge-metrics`, per architecture holds the pair that runs on every device: the
# exporter and the bridge share /etc/edge-metrics, start together (the exporter polls the
# bridge on localhost) and are upgraded together, like the compose file and the chart's pod.
# The Config Server (one per fleet, no unit shipped) is not in it.
# Contents (staged under a temporary tree, built with dpkg-deb --root-owner-group):
#   /usr/bin/{edge-metrics-exporter,shelly-bridge}       static binaries
#   /lib/systemd/system/{edge-metrics-exporter,shelly-bridge}.service
#        deploy/systemd's units with ExecStart in /usr/bin; the bridge keeps DynamicUser's
#        sandbox but runs as the static system user `shelly-bridge` the package creates
#   /etc/edge-metrics/config.yaml                        conffile (deploy/systemd/config.yaml)
#   /etc/default/{edge-metrics-exporter,shelly-bridge}   conffiles, 0600 (tokens go there)
#   /usr/share/doc/edge-metrics/{copyright,README.Debian}
# Maintainer scripts (packaging/deb/): postinst creates the user, enables both units and
# (re)starts them only where systemd runs (/run/systemd/system), the deb-systemd-helper /
# deb-systemd-invoke way, so a chroot or image build installs without starting anything;
# prerm stops them on remove; postrm disables on remove and purges the user's leftovers.
# dpkg keeps an operator's edits of a conffile across upgrades.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { printf 'package.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=build-lib.sh
. scripts/build-lib.sh
PKG=edge-metrics
BINS=(edge-metrics-exporter shelly-bridge)

arch_opt=all version="" build=1 out_dir=dist/deb
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) [ $# -ge 2 ] || die "--arch needs amd64, arm64 or all"; arch_opt="$2"; shift 2 ;;
        --version) [ $# -ge 2 ] || die "--version needs a version"; version="$2"; shift 2 ;;
        --out) [ $# -ge 2 ] || die "--out needs a directory"; out_dir="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
arch_words="$(arch_list "$arch_opt")" || die "--arch must be amd64, arm64 or all, not '$arch_opt'"
read -ra archs <<<"$arch_words"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian package dpkg)"
if [ -n "$version" ] && ! [[ $version =~ ^[0-9][A-Za-z0-9.+~]*$ ]]; then
    die "--version '$version' is not a Debian upstream version (digits first, then A-Z a-z 0-9 . + ~)"
fi

if [ "$build" = 1 ]; then
    ARCHS="${archs[*]}" bash scripts/build-arm64.sh
fi

# deb_version VERSION: git describe's spelling in Debian's: after a tag sorts after it (+),
# before the first tag sorts before the Cargo version (~).
deb_version() {
    local v="$1"
    if [[ $v =~ ^([0-9][^-]*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
        printf '%s+%s.g%s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}"
    elif [[ $v =~ ^([0-9][^-]*)-g([0-9a-f]+)$ ]]; then
        printf '%s~g%s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
    else
        printf '%s\n' "${v//-/.}"
    fi
}

mkdir -p "$out_dir"
# Both packages of a run are one version: binaries of two commits are refused.
if [ -z "$version" ] && [ "${#archs[@]}" -gt 1 ]; then
    a="$("dist/bin/${archs[0]}/edge-metrics-exporter" --version)" || die "dist/bin/${archs[0]}/edge-metrics-exporter --version failed"
    b="$("dist/bin/${archs[1]}/edge-metrics-exporter" --version)" || die "dist/bin/${archs[1]}/edge-metrics-exporter --version failed (arm64 here needs qemu binfmt: scripts/setup/arm64.sh)"
    [ "${a#* }" = "${b#* }" ] || die "dist/bin/${archs[0]} is ${a#* } but dist/bin/${archs[1]} is ${b#* }: rebuild both (without --no-build)"
fi
for arch in "${archs[@]}"; do
    bindir="dist/bin/$arch"
    for b in "${BINS[@]}"; do
        [ -x "$bindir/$b" ] || die "$bindir/$b missing (run without --no-build)"
    done
    v="$version"
    if [ -z "$v" ]; then
        # What the binary says it is (an arm64 one runs here through qemu's binfmt entry).
        line="$("$bindir/edge-metrics-exporter" --version)" \
            || die "$bindir/edge-metrics-exporter --version failed (arm64 here needs qemu binfmt: scripts/setup/arm64.sh)"
        v="$(deb_version "$(awk '{ print $2 }' <<<"$line")")"
    fi
    stage="$(mktemp -d "${TMPDIR:-/tmp}/edge-metrics-deb.XXXXXX")"
    chmod 0755 "$stage"
    trap 'rm -rf "$stage"' EXIT
    install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" \
        "$stage/etc/edge-metrics" "$stage/etc/default" "$stage/usr/share/doc/$PKG"
    for b in "${BINS[@]}"; do
        install -m 0755 "$bindir/$b" "$stage/usr/bin/$b"
        sed -e "s|/usr/local/bin/$b|/usr/bin/$b|" "deploy/systemd/$b.service" >"$stage/lib/systemd/system/$b.service"
        grep -q "^ExecStart=/usr/bin/$b" "$stage/lib/systemd/system/$b.service" \
            || die "deploy/systemd/$b.service: ExecStart is not /usr/local/bin/$b any more; update package.sh"
        install -m 0600 "deploy/systemd/$b.env" "$stage/etc/default/$b"
    done
    # The static user: DynamicUser= takes an existing user of the name User= gives, keeping
    # its sandbox; files the bridge may own later (a token file) then have a stable owner.
    sed -i -e 's|^DynamicUser=yes$|DynamicUser=yes\nUser=shelly-bridge\nGroup=shelly-bridge|' \
        "$stage/lib/systemd/system/shelly-bridge.service"
    grep -q '^User=shelly-bridge$' "$stage/lib/systemd/system/shelly-bridge.service" \
        || die "deploy/systemd/shelly-bridge.service has no DynamicUser=yes line to extend"
    chmod 0644 "$stage"/lib/systemd/system/*.service
    install -m 0644 deploy/systemd/config.yaml "$stage/etc/edge-metrics/config.yaml"
    install -m 0644 packaging/deb/copyright "$stage/usr/share/doc/$PKG/copyright"
    install -m 0644 packaging/deb/README.Debian "$stage/usr/share/doc/$PKG/README.Debian"
    for s in postinst prerm postrm; do
        install -m 0755 "packaging/deb/$s" "$stage/DEBIAN/$s"
    done
    (cd "$stage" && find etc -type f | sed 's|^|/|' | sort) >"$stage/DEBIAN/conffiles"
    (cd "$stage" && find usr lib -type f -print0 | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
    size_kb="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
    sed -e "s/@VERSION@/$v/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size_kb/" packaging/deb/control >"$stage/DEBIAN/control"
    out="$out_dir/${PKG}_${v}_${arch}.deb"
    # Reproducible: file times from the commit, owners root.
    epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct HEAD 2>/dev/null || date +%s)}"
    find "$stage" -exec touch -h -d "@$epoch" {} +
    SOURCE_DATE_EPOCH="$epoch" dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
    rm -rf "$stage"
    trap - EXIT
    log "$out ($(stat -c %s "$out") bytes, version $v)"
done
