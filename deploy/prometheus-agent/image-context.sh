#!/usr/bin/env bash
# Stages the build context of docker/prometheus-agent.Dockerfile: Debian's `prometheus` binary
# (package prometheus, 2.42 on Debian 12) with exactly what it needs at run time, laid out as
# the image's root file system. Debian builds it with cgo, so it is dynamically linked: the ELF
# header names the loader and the libraries (the C library alone), and those are copied from
# the same Debian release. Go reads the CA bundle at /etc/ssl/certs/ca-certificates.crt for an
# https:// remote-write URL, so that is copied too (package ca-certificates). Nothing else: no
# shell, no package manager.
#
#   deploy/prometheus-agent/image-context.sh OUTDIR [amd64|arm64]
#   docker build -f docker/prometheus-agent.Dockerfile -t prometheus-agent OUTDIR
#
# The architecture defaults to this machine's. For the other one (arm64 for Jetsons on an amd64
# builder) the binary comes from Debian's package for that architecture (`apt-get download
# prometheus:arm64`, which needs `dpkg --add-architecture arm64` as scripts/setup/arm64.sh
# does) and the libraries from the installed libc6:arm64; the classic builder then needs
# docker/set-image-arch.py on the image, as scripts/test-docker.sh does for the others.
# PROMETHEUS_BIN overrides the binary.
set -euo pipefail
out="${1:?usage: image-context.sh OUTDIR [amd64|arm64]}"
host_arch="$(dpkg --print-architecture)"
arch="${2:-$host_arch}"
log() { printf 'image-context.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case "$arch" in
    amd64) multiarch=x86_64-linux-gnu ;;
    arm64) multiarch=aarch64-linux-gnu ;;
    *) die "unknown architecture '$arch' (amd64 or arm64)" ;;
esac
command -v readelf >/dev/null || die "readelf missing (package binutils)"
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || die "$ca missing: apt-get install ca-certificates"

work="$(mktemp -d)"
chmod 0755 "$work"   # apt-get download writes as the _apt user
trap 'rm -rf "$work"' EXIT
if [ -n "${PROMETHEUS_BIN:-}" ]; then
    bin="$PROMETHEUS_BIN"
elif [ "$arch" = "$host_arch" ]; then
    bin=/usr/bin/prometheus
    [ -x "$bin" ] || die "$bin missing: apt-get install prometheus (Debian's package)"
else
    dpkg --print-foreign-architectures | grep -qx "$arch" \
        || die "dpkg does not know $arch: dpkg --add-architecture $arch && apt-get update (scripts/setup/arm64.sh)"
    (cd "$work" && apt-get download -q "prometheus:$arch" >"$work/apt.log" 2>&1) \
        || die "apt-get download prometheus:$arch failed: $(tail -3 "$work/apt.log")"
    dpkg-deb -x "$work"/prometheus_*_"$arch".deb "$work/root"
    bin="$work/root/usr/bin/prometheus"
fi
[ -f "$bin" ] || die "no prometheus binary at $bin"

rm -rf "$out/rootfs"
mkdir -p "$out/rootfs/bin" "$out/rootfs/etc/ssl/certs"
install -m 0755 "$bin" "$out/rootfs/bin/prometheus"
install -m 0644 "$ca" "$out/rootfs/etc/ssl/certs/ca-certificates.crt"

# copy_lib PATH: the file at PATH in the image, symlinks resolved, from this machine's copy.
copy_lib() {
    local path=$1 src
    src="$(readlink -f "$path")" || die "cannot resolve $path"
    [ -f "$src" ] || die "$path is not on this machine (for $arch: the libc6:$arch package)"
    mkdir -p "$out/rootfs$(dirname "$path")"
    cp "$src" "$out/rootfs$path"
}
# The loader at the path compiled into the binary; each NEEDED library where the loader's
# default search finds it (/lib/<multiarch>, then /usr/lib/<multiarch>).
interp="$(readelf -l "$bin" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')"
[ -n "$interp" ] || die "$bin has no program interpreter: a static build needs none, but Debian's is dynamic"
copy_lib "$interp"
libs=1
for lib in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    found=""
    for dir in "/lib/$multiarch" "/usr/lib/$multiarch"; do
        if [ -e "$dir/$lib" ]; then found="$dir/$lib"; break; fi
    done
    [ -n "$found" ] || die "$lib ($arch) not found under /lib/$multiarch or /usr/lib/$multiarch"
    copy_lib "$found"
    libs=$((libs + 1))
done
# Files Go's resolver and user lookup consult; absent ones only trigger built-in defaults, but
# stating them makes name resolution (a remote-write URL with a host name) explicit.
printf 'hosts: files dns\n' >"$out/rootfs/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$out/rootfs/etc/hosts"
printf 'nobody:x:65532:65532:nobody:/nonexistent:/sbin/nologin\n' >"$out/rootfs/etc/passwd"
printf '%s\n' "$arch" >"$out/ARCH"
log "staged Debian's prometheus for $arch with its loader and $((libs - 1)) libraries in $out/rootfs ($(du -sh "$out/rootfs" | cut -f1))"
