#!/usr/bin/env bash
# A flood of forged tokens against `GET /v1/auth` of `tessera serve`, beside valid traffic,
# measured with wrk: does the valid traffic keep its rate and latency?
#
#   benches/flood/run.sh
#   TESSERA_BIN=/path/to/another/tessera SKIP_BUILD=1 benches/flood/run.sh   # e.g. an older build
#
# Settings (environment): DURATION=10 (s per run), ROUNDS=1, VALID_CONNECTIONS=16,
# FLOOD_CONNECTIONS=64, TOKENS=20000 (distinct forgeries), NEWCOMER_AFTER=3 (s into the flood),
# NEWCOMER_DEADLINE=5 (s), KEEP=1 keeps the work folder, SKIP_BUILD=1, NICE=-10 (root only),
# TESSERA_BIN (default: the release build of this tree). See README.md beside this script.
#
# Every run starts a fresh server, trusting 127.0.0.1 as a proxy so that X-Forwarded-For names
# the client, on a copy of one store, and caches the valid token with one request first.
#   alone    valid traffic only: one token, cached, from 192.0.2.1 (wrk -t1)
#   others   the same, beside a flood of forgeries from 16 other addresses (wrk -t1)
#   many     the same, beside a flood from a new address for every forgery, as many as
#            TOKENS: no budget can tell the flood apart, only the bound on checks helps
#   same     the same, beside a flood from 192.0.2.1 itself
# During each flood, a token never seen before is tried from 192.0.2.1, every 10 ms, until it
# gets through (newcomer.py).
set -euo pipefail

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-1}
VALID_CONNECTIONS=${VALID_CONNECTIONS:-16}
FLOOD_CONNECTIONS=${FLOOD_CONNECTIONS:-64}
TOKENS=${TOKENS:-20000}
NEWCOMER_AFTER=${NEWCOMER_AFTER:-3}
NEWCOMER_DEADLINE=${NEWCOMER_DEADLINE:-5}
SKIP_BUILD=${SKIP_BUILD:-0}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bin=${TESSERA_BIN:-$target/release/tessera}

# shellcheck source=SCRIPTDIR/../common/load.sh
source "$here/../common/load.sh"

command -v wrk >/dev/null || die "wrk is not installed: apt-get install wrk"
command -v python3 >/dev/null || die "python3 is needed (forgeries, free ports, the newcomer)"
command -v curl >/dev/null || die "curl is needed: apt-get install curl"

if [[ $SKIP_BUILD != 1 && -z ${TESSERA_BIN:-} ]]; then
    say "building (release): tessera"
    (cd "$root" && cargo build --release --bin tessera)
fi
[[ -x $bin ]] || die "no tessera binary at $bin"

make_work tessera-flood
cp "$bin" "$work/tessera"
cd "$work"
say "work folder: $work"


# --- tokens ----------------------------------------------------------------------------------
store=file:data/tessera.redb
for name in valid newcomer; do
    ./tessera token create --store "$store" --keys keys --name "$name" --super-admin \
        >"$name.txt" 2>>create.log
done
python3 "$here/forge.py" valid.txt "$TOKENS" >forged.txt
valid=$(<valid.txt)

start_tessera() { # RUN: a fresh server on a copy of the store; sets url, address, spid
    rm -rf "data-$1"
    cp -r data "data-$1"
    local port
    port=$(free_port)
    TESSERA_LOG=warn "${nice[@]}" ./tessera serve --store "file:data-$1/tessera.redb" --keys keys \
        --listen "127.0.0.1:$port" --trusted-proxy 127.0.0.1 >"serve-$1.log" 2>&1 &
    spid=$!
    pids+=("$spid")
    address=127.0.0.1:$port
    url=http://$address
    wait_http "$url/healthz"
    [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $valid" \
        -H 'X-Forwarded-For: 192.0.2.1' "$url/v1/auth") == 200 ]] || die "the valid token: not 200"
}

stop_tessera() {
    kill "$spid"
    wait "$spid" 2>/dev/null || true
}

metric() { # NAME: a value from the server's /metrics, 0 when absent
    curl -fsS "$url/metrics" | awk -v name="$1" '$1 == name { print $2; found = 1 } END { if (!found) print 0 }'
}


wrk_rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
wrk_pct() { to_ms "$(awk -v p="$2" '$1 == p { print $2 }' "$1")"; }
wrk_errors() {
    awk '/Non-2xx or 3xx responses:/ { n += $NF }
        /Socket errors:/ { gsub(",", ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$1"
}

printf 'round\trun\tvalid_rps\tvalid_p50_ms\tvalid_p99_ms\tvalid_errors\tflood_rps\tchecked\trefused_overloaded\trefused_budget\tnewcomer_ms\tnewcomer_attempts\tnewcomer_statuses\n' >results.tsv

# measure ROUND RUN
measure() {
    local round=$1 run=$2 flood_env=()
    case $run in
    alone) ;;
    others) flood_env=(TESSERA_BENCH_SOURCES=16) ;;
    many) flood_env=(TESSERA_BENCH_SOURCES="$TOKENS") ;;
    same) flood_env=(TESSERA_BENCH_SOURCE=192.0.2.1) ;;
    *) die "unknown run $run" ;;
    esac
    start_tessera "$run"
    local bad0 over0 budget0 bad1 over1 budget1 fpid=
    bad0=$(metric 'tessera_verifications_total{outcome="bad_signature"}')
    over0=$(metric 'tessera_signature_checks_refused_total{reason="overloaded"}')
    budget0=$(metric 'tessera_signature_checks_refused_total{reason="too_many_bad_signatures"}')
    if [[ $run != alone ]]; then
        # The flood starts first and outlasts the valid traffic, so it covers the whole run.
        env TESSERA_BENCH_TOKENS=forged.txt "${flood_env[@]}" "${nice[@]}" wrk -t1 \
            -c"$FLOOD_CONNECTIONS" -d"$((DURATION + 2))s" -s "$here/flood.lua" "$url/v1/auth" \
            >"flood-$round-$run.txt" &
        fpid=$!
        pids+=("$fpid")
        sleep 1
    fi
    local newcomer=-$'\t'-$'\t'- npid=
    if [[ $run != alone ]]; then
        (sleep "$NEWCOMER_AFTER"; python3 "$here/newcomer.py" "$address" newcomer.txt 192.0.2.1 \
            "$NEWCOMER_DEADLINE" >"newcomer-$round-$run.txt") &
        npid=$!
    fi
    "${nice[@]}" wrk -t1 -c"$VALID_CONNECTIONS" -d"${DURATION}s" --latency \
        -H "Authorization: Bearer $valid" -H 'X-Forwarded-For: 192.0.2.1' "$url/v1/auth" \
        >"valid-$round-$run.txt"
    if [[ -n $npid ]]; then
        wait "$npid"
        newcomer=$(<"newcomer-$round-$run.txt")
    fi
    local flood_rps=-
    if [[ -n $fpid ]]; then
        wait "$fpid"
        flood_rps=$(wrk_rps "flood-$round-$run.txt")
    fi
    bad1=$(metric 'tessera_verifications_total{outcome="bad_signature"}')
    over1=$(metric 'tessera_signature_checks_refused_total{reason="overloaded"}')
    budget1=$(metric 'tessera_signature_checks_refused_total{reason="too_many_bad_signatures"}')
    stop_tessera
    local v="valid-$round-$run.txt"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$run" "$(wrk_rps "$v")" \
        "$(wrk_pct "$v" 50%)" "$(wrk_pct "$v" 99%)" "$(wrk_errors "$v")" "$flood_rps" \
        "$((bad1 - bad0))" "$((over1 - over0))" "$((budget1 - budget0))" "$newcomer" >>results.tsv
    say "  $(tail -n 1 results.tsv)"
}

say "machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
say "tessera: $bin"
say "valid: wrk -t1 -c$VALID_CONNECTIONS -d${DURATION}s; flood: wrk -t1 -c$FLOOD_CONNECTIONS, $TOKENS forgeries"
for round in $(seq 1 "$ROUNDS"); do
    for run in alone others many same; do
        measure "$round" "$run"
    done
done

say ""
column -t -s $'\t' results.tsv >&2
awk -F'\t' '
    NR == 1 { next }
    { n[$2]++; rps[$2] += $3; p99[$2] += $5 }
    END {
        printf "\nvalid traffic, means over rounds, as a share of its rate alone:\n"
        for (r in n) if (r != "alone")
            printf "  %-7s %.2f of %.0f req/s, p99 %.2f ms\n", r, rps[r] / n[r] / (rps["alone"] / n["alone"]),
                rps["alone"] / n["alone"], p99[r] / n[r]
    }' results.tsv >&2
for log in serve-*.log; do
    if [[ -n $(grep -v '^$' "$log" || true) ]]; then
        say ""
        say "$log (warnings and errors, last 5 lines):"
        tail -n 5 "$log" >&2
    fi
done
if [[ -n ${RESULTS:-} ]]; then
    cp results.tsv "$(realpath -m "$RESULTS")"
fi
