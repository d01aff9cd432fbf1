#!/usr/bin/env bash
# The .deb packages, tested for real, and the release workflows linted:
#  1. scripts/package.sh builds dist/deb/edge-metrics_<version>_{amd64,arm64}.deb (the release
#     binaries of dist/bin, built once by scripts/build-arm64.sh and shared with the images);
#  2. a throwaway Debian 12 root (debootstrap, minbase + systemd, from the Debian mirror apt
#     uses here; cached as a tarball under $EDGE_METRICS_CACHE_DIR, default
#     /var/cache/edge-metrics, so a rerun only unpacks it) gets the amd64 package with
#     `dpkg -i` in a chroot: files, modes, conffiles, the bridge's system user, both units
#     enabled but nothing started (systemd does not run there), `systemd-analyze verify` of the
#     installed units, the installed binaries' --version;
#  3. upgrade to a newer build (package.sh --version <patch + 1>) after the operator edited
#     config.yaml: the edit is kept, the binaries are the new package's (dpkg --verify); then
#     to one whose packaged config.yaml changed too: with --force-confold the edit stays and
#     the new default lands beside it as config.yaml.dpkg-dist;
#  4. dpkg -r keeps the conffiles and removes the rest; dpkg --purge removes the conffiles and
#     the enable links;
#  5. the arm64 package: dpkg-deb -I/-c (same files as amd64) and its binaries' --version under
#     qemu-aarch64-static;
#  6. scripts/check-workflows.sh: actionlint on .github/workflows/*.yml.
# Env: SKIP_BUILD=1 packages dist/bin as it is; KEEP=1 keeps the temp dir (chroot) for a look.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=setup/lib.sh
. scripts/setup/lib.sh
# shellcheck source=check-lib.sh
. scripts/check-lib.sh
CACHE_DIR="${EDGE_METRICS_CACHE_DIR:-/var/cache/edge-metrics}"
SUITE=bookworm
started=$SECONDS

bash scripts/setup/deps.sh
bash scripts/setup/arm64.sh
require_cmd debootstrap dpkg-deb chroot qemu-aarch64-static
[ "$(id -u)" -eq 0 ] || fail "needs root (debootstrap, chroot)"

tmp="$(mktemp -d /tmp/edge-metrics-package.XXXXXX)"
cleanup() {
    local rc=$?
    if [ "${KEEP:-0}" = 1 ]; then log "KEEP=1: left $tmp"; exit "$rc"; fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT

# --- 1. the packages ----------------------------------------------------------------------------
t=$SECONDS
if [ "${SKIP_BUILD:-0}" = 1 ]; then
    scripts/package.sh --no-build
else
    SKIP_SETUP=1 scripts/package.sh
fi
pkg_secs=$((SECONDS - t))
# The version the binaries were built as, in the packages' spelling, is in their names.
amd64_line="$(dist/bin/amd64/edge-metrics-exporter --version)"
bin_version="$(awk '{ print $2 }' <<<"$amd64_line")"
case "$bin_version" in
    *-*-g*) deb_ver="$(sed -E 's/^([^-]+)-([0-9]+)-g([0-9a-f]+)$/\1+\2.g\3/' <<<"$bin_version")" ;;
    *-g*) deb_ver="$(sed -E 's/^([^-]+)-g([0-9a-f]+)$/\1~g\2/' <<<"$bin_version")" ;;
    *) deb_ver="$bin_version" ;;
esac
deb_amd64="dist/deb/edge-metrics_${deb_ver}_amd64.deb"
deb_arm64="dist/deb/edge-metrics_${deb_ver}_arm64.deb"
for f in "$deb_amd64" "$deb_arm64"; do [ -s "$f" ] || fail "$f not written (binaries say $bin_version)"; done
[ "$(dpkg-deb -f "$deb_amd64" Version)" = "$deb_ver" ] || fail "$deb_amd64 has version $(dpkg-deb -f "$deb_amd64" Version)"
log "ok: $deb_amd64, $deb_arm64 ($pkg_secs s)"

# The newer builds for the upgrade: the patch version + 1, the same binaries (package.sh
# --version), then + 2 with a changed default config.yaml (repacked, as a later release that
# changes the default would be).
next_ver="$(awk -F. '{ printf "%d.%d.%d\n", $1, $2, $3 + 1 }' <<<"${deb_ver%%[~+]*}")"
next2_ver="$(awk -F. '{ printf "%d.%d.%d\n", $1, $2, $3 + 2 }' <<<"${deb_ver%%[~+]*}")"
dpkg --compare-versions "$next_ver" gt "$deb_ver" || fail "$next_ver does not sort after $deb_ver"
scripts/package.sh --no-build --arch amd64 --version "$next_ver" --out "$tmp/next"
deb_next="$tmp/next/edge-metrics_${next_ver}_amd64.deb"
[ -s "$deb_next" ] || fail "package.sh --version $next_ver wrote no $deb_next"
dpkg-deb -R "$deb_next" "$tmp/next2-tree"
sed -i "s/^Version: .*/Version: $next2_ver/" "$tmp/next2-tree/DEBIAN/control"
echo "# a default added in $next2_ver" >>"$tmp/next2-tree/etc/edge-metrics/config.yaml"
dpkg-deb --root-owner-group --build "$tmp/next2-tree" "$tmp/next2.deb" >/dev/null

# --- 2. a throwaway Debian 12 root ----------------------------------------------------------------
# The mirror apt uses here (deb822 or one-line sources), else Debian's default.
mirror="$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)\/\?$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)"
[ -n "$mirror" ] || mirror="$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\/debian\)\/\?[[:space:]]\+'"$SUITE"'[[:space:]].*/\2/p' /etc/apt/sources.list 2>/dev/null | head -1)"
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
includes=systemd,passwd
root_tar="$CACHE_DIR/debian-$SUITE-minbase-${includes//,/-}-amd64.tar.gz"
chroot_dir="$tmp/root"
t=$SECONDS
if [ ! -s "$root_tar" ]; then
    log "no cached root at $root_tar: debootstrap $SUITE from $mirror (a few minutes, once)"
    mkdir -p "$CACHE_DIR"
    debootstrap --variant=minbase --include="$includes" --arch=amd64 \
        --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
        "$SUITE" "$tmp/bootstrap" "$mirror" >"$tmp/debootstrap.log" 2>&1 \
        || { tail -20 "$tmp/debootstrap.log" >&2; fail "debootstrap $SUITE from $mirror failed"; }
    rm -rf "$tmp/bootstrap/var/cache/apt/archives/"*.deb "$tmp/bootstrap/var/lib/apt/lists/"*
    tar -C "$tmp/bootstrap" -czf "$root_tar.partial" .
    mv "$root_tar.partial" "$root_tar"
    rm -rf "$tmp/bootstrap"
    root_how="debootstrap (cold cache)"
else
    root_how="cached $root_tar"
fi
mkdir -p "$chroot_dir"
tar -C "$chroot_dir" -xzf "$root_tar"
[ -x "$chroot_dir/usr/bin/dpkg" ] && [ -x "$chroot_dir/bin/systemctl" ] || fail "the root in $root_tar is incomplete; remove it to bootstrap again"
root_secs=$((SECONDS - t))
grep -q '^VERSION_ID="12"' "$chroot_dir/etc/os-release" || fail "the root is not Debian 12: $(grep VERSION= "$chroot_dir/etc/os-release")"
log "ok: Debian 12 root from $root_how in $root_secs s"
in_root() { chroot "$chroot_dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
status() { in_root dpkg-query -W -f='${db:Status-Abbrev}${Version}' edge-metrics 2>/dev/null || true; }
conf=/etc/edge-metrics/config.yaml

# --- 2. install -------------------------------------------------------------------------------
cp "$deb_amd64" "$deb_next" "$tmp/next2.deb" "$chroot_dir/tmp/"
in_root dpkg -i "/tmp/$(basename "$deb_amd64")" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log" >&2; fail "dpkg -i failed"; }
[ "$(status)" = "ii $deb_ver" ] || fail "after dpkg -i: status '$(status)', want 'ii $deb_ver'"
grep -q 'systemd is not running here' "$tmp/install.log" || fail "postinst did not say it left the services stopped: $(cat "$tmp/install.log")"
for f in /usr/bin/edge-metrics-exporter /usr/bin/shelly-bridge; do
    [ "$(stat -c '%a %U' "$chroot_dir$f")" = "755 root" ] || fail "$f: $(stat -c '%a %U' "$chroot_dir$f")"
    cmp -s "$chroot_dir$f" "dist/bin/amd64/${f##*/}" || fail "$f is not dist/bin/amd64/${f##*/}"
done
for f in /etc/default/edge-metrics-exporter /etc/default/shelly-bridge; do
    [ "$(stat -c '%a %U' "$chroot_dir$f")" = "600 root" ] || fail "$f: $(stat -c '%a %U' "$chroot_dir$f") (tokens go there: 600 root)"
done
cmp -s "$chroot_dir$conf" deploy/systemd/config.yaml || fail "$conf is not deploy/systemd/config.yaml"
conffiles="$(in_root dpkg-query -W -f='${Conffiles}' edge-metrics | awk 'NF { print $1 }' | sort | tr '\n' ' ')"
[ "$conffiles" = "/etc/default/edge-metrics-exporter /etc/default/shelly-bridge /etc/edge-metrics/config.yaml " ] \
    || fail "conffiles are: $conffiles"
for u in edge-metrics-exporter shelly-bridge; do
    [ -f "$chroot_dir/lib/systemd/system/$u.service" ] || fail "$u.service not in /lib/systemd/system"
    grep -q "^ExecStart=/usr/bin/$u" "$chroot_dir/lib/systemd/system/$u.service" || fail "$u.service does not start /usr/bin/$u"
    [ "$(readlink "$chroot_dir/etc/systemd/system/multi-user.target.wants/$u.service")" = "/lib/systemd/system/$u.service" ] \
        || fail "$u.service is not enabled (no multi-user.target.wants link)"
    [ "$(in_root systemctl is-enabled "$u.service" 2>/dev/null)" = enabled ] || fail "systemctl is-enabled $u: $(in_root systemctl is-enabled "$u.service" 2>&1)"
done
user="$(in_root getent passwd shelly-bridge)" || fail "no shelly-bridge user"
IFS=: read -r _ _ uid gid _ home shell <<<"$user"
[ "$uid" -lt 1000 ] && [ "$shell" = /usr/sbin/nologin ] && [ "$home" = /nonexistent ] || fail "shelly-bridge user is not a system user: $user"
[ "$(in_root getent group shelly-bridge | cut -d: -f3)" = "$gid" ] || fail "shelly-bridge's group is not its own"
grep -q '^User=shelly-bridge$' "$chroot_dir/lib/systemd/system/shelly-bridge.service" || fail "the bridge unit does not name its user"
# Nothing of the package runs: the services were only enabled.
if pgrep -f "^$chroot_dir|^/usr/bin/(edge-metrics-exporter|shelly-bridge)" >/dev/null; then fail "a daemon is running after dpkg -i in a chroot"; fi
# The units are valid for the systemd of the root they are installed in.
in_root systemd-analyze verify /lib/systemd/system/edge-metrics-exporter.service /lib/systemd/system/shelly-bridge.service \
    >"$tmp/verify.log" 2>&1 || { cat "$tmp/verify.log" >&2; fail "systemd-analyze verify failed"; }
if grep -v -e 'Failed to connect to bus' -e '^$' "$tmp/verify.log" | grep -q .; then
    cat "$tmp/verify.log" >&2; fail "systemd-analyze verify complained"
fi
for b in edge-metrics-exporter shelly-bridge; do
    got="$(in_root "$b" --version)" || fail "$b --version failed in the root"
    [ "$got" = "$b $bin_version (revision ${amd64_line##*revision }" ] || fail "installed $b --version: '$got'"
done
in_root dpkg --verify edge-metrics >"$tmp/verify-dpkg.log" 2>&1 || true
[ ! -s "$tmp/verify-dpkg.log" ] || fail "dpkg --verify after install: $(cat "$tmp/verify-dpkg.log")"
log "ok: installed $deb_ver: files, conffiles, user, units enabled not started, systemd-analyze verify, --version"

# --- 3. upgrades ------------------------------------------------------------------------------
sed -i 's/^interval: 1$/interval: 5/' "$chroot_dir$conf"
echo "# edited by the operator" >>"$chroot_dir$conf"
grep -q '^interval: 5$' "$chroot_dir$conf" || fail "could not edit $conf (the default changed?)"
edited="$(sha256sum <"$chroot_dir$conf")"
in_root dpkg -i "/tmp/$(basename "$deb_next")" >"$tmp/upgrade.log" 2>&1 || { cat "$tmp/upgrade.log" >&2; fail "upgrade to $next_ver failed"; }
[ "$(status)" = "ii $next_ver" ] || fail "after the upgrade: status '$(status)', want 'ii $next_ver'"
[ "$(sha256sum <"$chroot_dir$conf")" = "$edited" ] || fail "the upgrade changed the edited $conf"
leftovers="$(find "$chroot_dir/etc/edge-metrics" "$chroot_dir/etc/default" -name '*.dpkg-*' | tr '\n' ' ')"
[ -z "$leftovers" ] || fail "the upgrade left $leftovers"
in_root dpkg --verify edge-metrics >"$tmp/verify-dpkg.log" 2>&1 || true
[ "$(awk '{ print $NF }' "$tmp/verify-dpkg.log" | tr '\n' ' ')" = "$conf " ] \
    || fail "dpkg --verify after the upgrade should flag only the edited conffile: $(cat "$tmp/verify-dpkg.log")"
for u in edge-metrics-exporter shelly-bridge; do
    [ -L "$chroot_dir/etc/systemd/system/multi-user.target.wants/$u.service" ] || fail "$u no longer enabled after the upgrade"
done
in_root dpkg --force-confold -i /tmp/next2.deb >"$tmp/upgrade2.log" 2>&1 || { cat "$tmp/upgrade2.log" >&2; fail "upgrade to $next2_ver failed"; }
[ "$(status)" = "ii $next2_ver" ] || fail "after the second upgrade: status '$(status)'"
[ "$(sha256sum <"$chroot_dir$conf")" = "$edited" ] || fail "--force-confold did not keep the edited $conf"
grep -q "^# a default added in $next2_ver" "$chroot_dir$conf.dpkg-dist" 2>/dev/null \
    || fail "the new default config should be in $conf.dpkg-dist"
log "ok: upgraded $deb_ver -> $next_ver -> $next2_ver; the operator's config.yaml kept (new default in .dpkg-dist)"

# --- 4. remove and purge ------------------------------------------------------------------------
in_root dpkg -r edge-metrics >"$tmp/remove.log" 2>&1 || { cat "$tmp/remove.log" >&2; fail "dpkg -r failed"; }
[ "$(status)" = "rc $next2_ver" ] || fail "after dpkg -r: status '$(status)', want 'rc $next2_ver'"
for f in /usr/bin/edge-metrics-exporter /usr/bin/shelly-bridge /lib/systemd/system/edge-metrics-exporter.service \
    /lib/systemd/system/shelly-bridge.service; do
    [ ! -e "$chroot_dir$f" ] || fail "$f left after dpkg -r"
done
[ "$(sha256sum <"$chroot_dir$conf")" = "$edited" ] || fail "dpkg -r should keep the edited $conf"
[ -f "$chroot_dir/etc/default/shelly-bridge" ] || fail "dpkg -r should keep /etc/default/shelly-bridge"
in_root dpkg --purge edge-metrics >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log" >&2; fail "dpkg --purge failed"; }
[ -z "$(status)" ] || [ "$(status)" = "pn " ] || [[ "$(status)" == un* ]] || fail "after --purge: status '$(status)'"
for f in "$conf" /etc/default/edge-metrics-exporter /etc/default/shelly-bridge /etc/edge-metrics; do
    [ ! -e "$chroot_dir$f" ] || fail "$f left after --purge: $(ls -la "$chroot_dir$f")"
done
links="$(find "$chroot_dir/etc/systemd/system" -name 'edge-metrics-exporter.service' -o -name 'shelly-bridge.service' | tr '\n' ' ')"
[ -z "$links" ] || fail "unit links or masks left after --purge: $links"
log "ok: dpkg -r kept the conffiles, --purge removed them and the enable links"

# --- 5. the arm64 package ---------------------------------------------------------------------
info="$(dpkg-deb -I "$deb_arm64")"
grep -q '^ Architecture: arm64$' <<<"$info" || fail "$deb_arm64 is not Architecture: arm64"
grep -q "^ Version: $deb_ver\$" <<<"$info" || fail "$deb_arm64 is not version $deb_ver"
for s in postinst prerm postrm conffiles md5sums; do
    grep -Eq "[[:space:]]$s([[:space:]]|\$)" <<<"$info" || fail "$deb_arm64 lacks $s"
done
contents() { dpkg-deb -c "$1" | awk '{ print $1, $2, $6 }' | sort; }
diff <(contents "$deb_amd64") <(contents "$deb_arm64") >"$tmp/contents.diff" \
    || fail "the arm64 package's files differ from amd64's: $(cat "$tmp/contents.diff")"
dpkg-deb -x "$deb_arm64" "$tmp/arm64"
for b in edge-metrics-exporter shelly-bridge; do
    file "$tmp/arm64/usr/bin/$b" | grep -q 'ARM aarch64.*statically linked' || fail "arm64 $b: $(file "$tmp/arm64/usr/bin/$b")"
    got="$(qemu-aarch64-static "$tmp/arm64/usr/bin/$b" --version)" || fail "arm64 $b --version failed under qemu"
    [ "$got" = "$b $bin_version (revision ${amd64_line##*revision }" ] || fail "arm64 $b --version: '$got'"
done
log "ok: $deb_arm64: control, same files as amd64, binaries run under qemu-aarch64-static"

# --- 6. the workflows -----------------------------------------------------------------------
bash scripts/check-workflows.sh
log "ok in $((SECONDS - started)) s (packages $pkg_secs s, Debian root $root_secs s: $root_how)"
