# shellcheck shell=bash
# Shared by the wrk load benchmarks (benches/http_load/run.sh, benches/gateway_load/run.sh,
# benches/flood/run.sh): messages, a work folder whose processes are stopped and which is
# removed on exit (kept with KEEP=1), the optional priority (NICE), free loopback ports, waiting
# for a server, and wrk's times in ms. Source it; it sets `work`,
# `pids` (append every process started) and `nice` (prefix for commands to run at NICE).

say() { printf '%s\n' "$*" >&2; }
die() {
    say "$(basename "$0"): $*"
    exit 1
}

# make_work NAME: a fresh work folder, cleaned up (with every pid in `pids`) on exit.
# shellcheck disable=SC2034 # work, pids and nice are the sourcing script's
make_work() {
    work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    pids=()
    trap cleanup EXIT
    nice=()
    if [[ ${NICE:-0} != 0 ]]; then
        nice=(nice -n "$NICE")
    fi
}

cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ ${KEEP:-0} == 1 ]]; then
        say "work folder kept: $work"
    else
        rm -rf "$work"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() { # URL: wait up to 10 s for a 2xx from it
    local _
    for _ in $(seq 1 100); do
        if curl -fsS -o /dev/null "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    die "no answer from $1"
}

to_ms() { # a wrk time (e.g. 812.00us, 1.20ms, 2.01s) in ms
    awk -v t="$1" 'BEGIN {
        v = t + 0
        if (t ~ /us$/) v /= 1000
        else if (t ~ /ms$/) v = v
        else if (t ~ /m$/) v *= 60000
        else if (t ~ /s$/) v *= 1000
        printf "%.3f", v }'
}
