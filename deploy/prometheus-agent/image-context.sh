#!/usr/bin/env bash
# Stages the build context of docker/prometheus-agent.Dockerfile: Debian's `prometheus` binary
# (package prometheus, 2.42 on Debian 12) with exactly what it needs at run time, laid out as
# the image's root file system. Debian builds it with cgo, so it is dynamically linked: `ldd`
# names the C library and the loader, and those are copied from the same machine. Go reads the
# CA bundle at /etc/ssl/certs/ca-certificates.crt for an https:// remote-write URL, so that is
# copied too (package ca-certificates). Nothing else: no shell, no package manager.
#
#   deploy/prometheus-agent/image-context.sh OUTDIR
#   docker build -f docker/prometheus-agent.Dockerfile -t prometheus-agent OUTDIR
#
# The image is for the architecture of this machine (amd64 here, arm64 on a Jetson or an arm64
# builder with the same packages). PROMETHEUS_BIN overrides the binary (default: the package's).
set -euo pipefail
out="${1:?usage: image-context.sh OUTDIR}"
bin="${PROMETHEUS_BIN:-/usr/bin/prometheus}"
log() { printf 'image-context.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ -x "$bin" ] || die "$bin missing: apt-get install prometheus (Debian's package)"
command -v ldd >/dev/null || die "ldd missing (package libc-bin)"
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || die "$ca missing: apt-get install ca-certificates"

rm -rf "$out/rootfs"
mkdir -p "$out/rootfs/bin" "$out/rootfs/etc/ssl/certs"
install -m 0755 "$bin" "$out/rootfs/bin/prometheus"
install -m 0644 "$ca" "$out/rootfs/etc/ssl/certs/ca-certificates.crt"
# Each library at the path the binary asks for (the loader's path is compiled in, the rest are
# found through the loader's default directories), with symlinks resolved to regular files.
libs=0
while read -r path; do
    [ -n "$path" ] || continue
    mkdir -p "$out/rootfs$(dirname "$path")"
    cp -L "$path" "$out/rootfs$path"
    libs=$((libs + 1))
done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[ "$libs" -gt 0 ] || die "ldd found no libraries in $bin: a static build needs none, but Debian's is dynamic"
# Files Go's resolver and user lookup consult; absent ones only trigger built-in defaults, but
# stating them makes name resolution (a remote-write URL with a host name) explicit.
printf 'hosts: files dns\n' >"$out/rootfs/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$out/rootfs/etc/hosts"
printf 'nobody:x:65532:65532:nobody:/nonexistent:/sbin/nologin\n' >"$out/rootfs/etc/passwd"
version="$("$bin" --version 2>&1 | awk 'NR == 1 { print $3 }')"
printf '%s\n' "$version" >"$out/VERSION"
log "staged prometheus $version and $libs libraries in $out/rootfs ($(du -sh "$out/rootfs" | cut -f1))"
