# What the shell checks share (test-docker.sh, test-remote-write.sh, test-package.sh): sourced.
# Timestamped log lines named after the calling script, failing with a reason, a free loopback
# port, and a bounded wait on an observable condition.

log() { printf '[%(%H:%M:%S)T] %s: %s\n' -1 "${0##*/}" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_for DESC SECONDS CMD...: retries CMD every 0.5 s until it succeeds or time runs out.
wait_for() {
    local desc="$1" secs="$2"; shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${secs}s waiting for $desc"
        sleep 0.5
    done
    log "ok: $desc"
}

# exporter_yaml HOSTNAME: the lines a local exporter config.yaml starts with: an AGX Orin read
# every second, both servers on 127.0.0.1 on ports the kernel picks (read them from the log).
exporter_yaml() {
    printf 'device_type: jetson_orin\ninterval: 1\nport: 0\nreload_port: 0\n'
    printf 'bind_address: 127.0.0.1\nreload_bind_address: 127.0.0.1\nhostname: %s\n' "$1"
}
