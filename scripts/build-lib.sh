# What the build, image and package scripts share (sourced by build-arm64.sh, images.sh,
# package.sh and test-docker.sh): architecture names as Debian and Docker spell them, and the
# default image references of the compose files. Each function returns non-zero rather than
# exiting, so each script reports the problem in its own words.

# native_arch: this machine's architecture (amd64 or arm64); nothing and status 1 on another.
native_arch() {
    case "$(uname -m)" in
        x86_64|amd64) echo amd64 ;;
        aarch64|arm64) echo arm64 ;;
        *) return 1 ;;
    esac
}

# arch_list VALUE: the architectures an --arch value names (amd64, arm64 or all), space-
# separated; status 1 for any other value.
arch_list() {
    case "$1" in
        amd64|arm64) echo "$1" ;;
        all) echo "amd64 arm64" ;;
        *) return 1 ;;
    esac
}

# compose_default_ref VARIABLE: the image reference the compose files give ${VARIABLE:-...};
# status 1 when none does.
compose_default_ref() {
    local ref
    ref="$(grep -ho "\${$1:-[^}]*}" compose.yaml compose.demo.yaml compose.config-server.yaml | head -1)"
    ref="${ref#*:-}"; ref="${ref%\}}"
    [ -n "$ref" ] || return 1
    printf '%s\n' "$ref"
}
