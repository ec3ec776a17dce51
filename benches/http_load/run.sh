#!/usr/bin/env bash
# HTTP load benchmark of the gateway forward-auth endpoint `GET /v1/auth` of `tessera serve`,
# measured with wrk against a bare axum handler (examples/bare_axum.rs) in the same run.
#
#   benches/http_load/run.sh
#
# Settings (environment): DURATION=10 (s per run), ROUNDS=3, THREADS=2 (wrk -t),
# CONNECTIONS=64 (wrk -c), TOKENS=10000 (distinct tokens of the rotation), WARMUP=3 (s per
# target before the first round), KEEP=1 keeps the work folder, SKIP_BUILD=1 uses the binaries
# already in the target folder, NICE=-10 runs both servers and wrk at that priority (root only;
# shields the measurement from builds running beside it). See README.md beside this script.
#
# Runs alternate: bare, tessera variant, bare, next variant, ..., bare; each tessera run is
# compared with the mean of the bare runs just before and after it, so drift (thermal, noisy
# neighbours) hits both alike. Variants, in this order:
#   one      /v1/auth, one super-admin token (one_token.lua: a fixed request)
#   query    /v1/auth?resource=devtron-app&role=trigger&project=p&environment=e&app=a, one token
#            with one devtron-app grant that allows it (one_token.lua)
#   rot10k   rotate.lua over TOKENS distinct valid tokens, in a fixed cyclic order
#   rand10k  the same tokens, each request picking one at random (TESSERA_BENCH_ORDER=random),
#            against a second server on a copy of the store
#   rot1     rotate.lua over a file holding the `one` token TOKENS times: the cost of wrk's
#            per-request Lua callback, the control for rot10k and rand10k
set -euo pipefail

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
TOKENS=${TOKENS:-10000}
WARMUP=${WARMUP:-3}
KEEP=${KEEP:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
NICE=${NICE:-0}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
if [[ -n ${RESULTS:-} ]]; then
    RESULTS=$(realpath -m "$RESULTS")
fi

# shellcheck source=SCRIPTDIR/../common/load.sh
source "$here/../common/load.sh"

command -v wrk >/dev/null || die "wrk is not installed: apt-get install wrk"
command -v python3 >/dev/null || die "python3 is needed (token creation, free ports)"
command -v curl >/dev/null || die "curl is needed: apt-get install curl"

if [[ $SKIP_BUILD != 1 ]]; then
    say "building (release): tessera, example bare_axum"
    (cd "$root" && cargo build --release --bin tessera --example bare_axum)
fi

make_work tessera-http-load

# Copies, so that a rebuild in the tree during the run changes nothing measured.
cp "$target/release/tessera" "$work/tessera"
cp "$target/release/examples/bare_axum" "$work/bare_axum"
cd "$work"


# --- tokens and servers ------------------------------------------------------------------
store=file:data/tessera.redb  # for the CLI; the servers take the folder
say "work folder: $work"
./tessera token create --store "$store" --keys keys --name bench-admin --super-admin \
    >admin.txt 2>create.log
./tessera token create --store "$store" --keys keys --name bench-scoped --permissions \
    '{"grants": [{"resource": "devtron-app", "role": "trigger", "project": "p", "environments": ["e"], "apps": ["a"]}]}' \
    >scoped.txt 2>>create.log
admin=$(<admin.txt)
scoped=$(<scoped.txt)

start_tessera() { # DATA_DIR PORT LOG: start `tessera serve` on that store; its pid in $started
    TESSERA_LOG=warn "${nice[@]}" ./tessera serve --store "file:$1/tessera.redb" --keys keys \
        --listen "127.0.0.1:$2" >"$3" 2>&1 &
    started=$!
    pids+=("$started")
    wait_http "http://127.0.0.1:$2/healthz"
}

# The store file is locked by the server, so the tokens are made through its API.
port=$(free_port)
start_tessera data "$port" setup.log
say "creating $TOKENS tokens through POST /v1/tokens"
python3 "$here/make_tokens.py" --url "http://127.0.0.1:$port" --admin-token-file admin.txt \
    --count "$TOKENS" --out tokens.txt
awk -v t="$admin" -v n="$TOKENS" 'BEGIN { for (i = 0; i < n; i++) print t }' >same.txt
kill "$started"
wait "$started" || true
pids=()

# Two servers on copies of the same store: `rand10k` gets its own, so that its random order
# (which admits every token to the signature cache) does not fill the cache `rot10k` measures.
cp -r data data-random
tport=$(free_port)
start_tessera data "$tport" serve.log
tpid=$started
tessera_url=http://127.0.0.1:$tport
rport=$(free_port)
start_tessera data-random "$rport" serve-random.log
rpid=$started
random_url=http://127.0.0.1:$rport

bport=$(free_port)
"${nice[@]}" ./bare_axum "$bport" >bare.log 2>&1 &
bpid=$!
pids+=("$bpid")
bare_url=http://127.0.0.1:$bport/bare
wait_http "$bare_url"

# Sanity: every variant answers 200 before anything is measured.
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
query='resource=devtron-app&role=trigger&project=p&environment=e&app=a'
[[ $(code "$bare_url") == 200 ]] || die "bare: not 200"
[[ $(code -H "Authorization: Bearer $admin" "$tessera_url/v1/auth") == 200 ]] ||
    die "/v1/auth with the admin token: not 200"
[[ $(code -H "Authorization: Bearer $scoped" "$tessera_url/v1/auth?$query") == 200 ]] ||
    die "/v1/auth?$query with the scoped token: not 200"
[[ $(code -H "Authorization: Bearer $(sed -n '$p' tokens.txt)" "$random_url/v1/auth") == 200 ]] ||
    die "/v1/auth with the last created token: not 200"

# --- measuring -------------------------------------------------------------------------------
metric() { # BASE_URL NAME: a value from that server's /metrics
    curl -fsS "$1/metrics" | awk -v name="$2" '$1 == name { print $2; found = 1 } END { if (!found) print 0 }'
}

cpu_ticks() { # PID: user + system clock ticks so far
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

child_ticks() { # user + system clock ticks of this shell's finished children (wrk among them)
    awk '{ print $16 + $17 }' "/proc/$$/stat"
}

machine_ticks() { # "BUSY TOTAL": clock ticks of all cores so far
    awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t; exit }' /proc/stat
}


hz=$(getconf CLK_TCK)
printf 'round\tlabel\trps\tp50_ms\tp75_ms\tp90_ms\tp99_ms\tmax_ms\trequests\terrors\tcpu_us_per_req\twrk_us_per_req\tother_pct\tidle_pct\tsig_hit_ratio\n' >results.tsv

# run ROUND LABEL: one wrk run, a row in results.tsv
run() {
    local round=$1 label=$2 url pid script=() env_=() base=$tessera_url
    case $label in
    bare) url=$bare_url pid=$bpid ;;
    one) url=$tessera_url/v1/auth pid=$tpid script=(-s "$here/one_token.lua") env_=(TESSERA_BENCH_TOKEN="$admin") ;;
    query) url="$tessera_url/v1/auth?$query" pid=$tpid script=(-s "$here/one_token.lua") env_=(TESSERA_BENCH_TOKEN="$scoped") ;;
    rot1) url=$tessera_url/v1/auth pid=$tpid script=(-s "$here/rotate.lua") env_=(TESSERA_BENCH_TOKENS=same.txt) ;;
    rot10k) url=$tessera_url/v1/auth pid=$tpid script=(-s "$here/rotate.lua") env_=(TESSERA_BENCH_TOKENS=tokens.txt) ;;
    rand10k) url=$random_url/v1/auth pid=$rpid base=$random_url script=(-s "$here/rotate.lua") env_=(TESSERA_BENCH_TOKENS=tokens.txt TESSERA_BENCH_ORDER=random) ;;
    *) die "unknown run $label" ;;
    esac
    local duration=${3:-$DURATION}
    local hits0=0 misses0=0 hits1=0 misses1=0
    if [[ $label != bare ]]; then
        hits0=$(metric "$base" tessera_signature_cache_hits_total)
        misses0=$(metric "$base" tessera_signature_cache_misses_total)
    fi
    local cpu0 cpu1 child0 child1 machine0 machine1 out
    child0=$(child_ticks)
    read -r -a machine0 < <(machine_ticks)
    cpu0=$(cpu_ticks "$pid")
    out=$(env "${env_[@]}" "${nice[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${duration}s" --latency "${script[@]}" "$url")
    cpu1=$(cpu_ticks "$pid")
    read -r -a machine1 < <(machine_ticks)
    child1=$(child_ticks)
    if [[ $label != bare ]]; then
        hits1=$(metric "$base" tessera_signature_cache_hits_total)
        misses1=$(metric "$base" tessera_signature_cache_misses_total)
    fi
    printf '%s\n' "$out" >"wrk-$round-$label-$(date +%s%N).txt"
    [[ $round == warmup ]] && return 0
    local rps requests errors p50 p75 p90 p99 max
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    requests=$(awk '/requests in/ { print $1 }' <<<"$out")
    # Non-2xx answers and socket errors both count as errors.
    errors=$(awk '/Non-2xx or 3xx responses:/ { n += $NF }
        /Socket errors:/ { gsub(",", ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
    p75=$(to_ms "$(awk '$1 == "75%" { print $2 }' <<<"$out")")
    p90=$(to_ms "$(awk '$1 == "90%" { print $2 }' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
    max=$(to_ms "$(awk '$1 == "Latency" && NF >= 4 { print $4; exit }' <<<"$out")")
    local cpu_us wrk_us other_pct idle_pct ratio=-
    cpu_us=$(awk -v d="$((cpu1 - cpu0))" -v hz="$hz" -v n="$requests" 'BEGIN { printf "%.2f", d / hz * 1e6 / n }')
    wrk_us=$(awk -v d="$((child1 - child0))" -v hz="$hz" -v n="$requests" 'BEGIN { printf "%.2f", d / hz * 1e6 / n }')
    # What the machine spent on anything but this server and wrk (other processes, interrupts
    # not charged to them), and left idle, as shares of all cores over the run.
    other_pct=$(awk -v busy="$((machine1[0] - machine0[0]))" -v total="$((machine1[1] - machine0[1]))" \
        -v ours="$((cpu1 - cpu0 + child1 - child0))" 'BEGIN { o = (busy - ours) * 100 / total; printf "%.1f", o < 0 ? 0 : o }')
    idle_pct=$(awk -v busy="$((machine1[0] - machine0[0]))" -v total="$((machine1[1] - machine0[1]))" \
        'BEGIN { printf "%.1f", (total - busy) * 100 / total }')
    if [[ $label != bare ]]; then
        ratio=$(awk -v h="$((hits1 - hits0))" -v m="$((misses1 - misses0))" \
            'BEGIN { if (h + m == 0) print "-"; else printf "%.3f", h / (h + m) }')
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$label" "$rps" "$p50" \
        "$p75" "$p90" "$p99" "$max" "$requests" "$errors" "$cpu_us" "$wrk_us" "$other_pct" "$idle_pct" \
        "$ratio" >>results.tsv
    say "$(printf '  round %s  %-6s %10s req/s  p50 %6s ms  p99 %6s ms  errors %s  cpu us/req: server %s wrk %s  other %s%%  idle %s%%  sig-cache hits %s' \
        "$round" "$label" "$rps" "$p50" "$p99" "$errors" "$cpu_us" "$wrk_us" "$other_pct" "$idle_pct" "$ratio")"
}

variants=(one query rot10k rand10k rot1)
say ""
say "machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
say "wrk: $(wrk -v 2>&1 | head -n 1)"
say "load: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency; $ROUNDS rounds of bare/variant pairs (${variants[*]}), then bare"
say "warming up (${WARMUP} s per target)"
for label in bare "${variants[@]}"; do
    run warmup "$label" "$WARMUP"
done
for round in $(seq 1 "$ROUNDS"); do
    for label in "${variants[@]}"; do
        run "$round" bare
        run "$round" "$label"
    done
done
run "$ROUNDS" bare

# --- report ------------------------------------------------------------------------------------
say ""
say "all runs, in order (results.tsv):"
column -t -s $'\t' results.tsv >&2

# Each tessera run over the mean of the bare runs on either side of it.
awk -F'\t' '
    NR == 1 { next }
    { label[NR] = $2; rps[NR] = $3; p50[NR] = $4; p99[NR] = $7; err[NR] = $10; cpu[NR] = $11
      wcpu[NR] = $12; oth[NR] = $13; hit[NR] = $15; last = NR }
    END {
        for (i = 2; i <= last; i++) if (oth[i] > 5) busy++
        for (i = 2; i <= last; i++) {
            if (label[i] == "bare") {
                nb++; b50 += p50[i]; b99 += p99[i]; bcpu += cpu[i]; bw += wcpu[i]; bo += oth[i]
                if (p99[i] > bw99) bw99 = p99[i]
                continue
            }
            b = (rps[i - 1] + rps[i + 1]) / 2
            r = rps[i] / b
            v = label[i]
            if (!(v in n)) { names[++k] = v; mn[v] = r; mx[v] = r }
            n[v]++; sr[v] += r; if (r < mn[v]) mn[v] = r; if (r > mx[v]) mx[v] = r
            srps[v] += rps[i]; sbare[v] += b; s50[v] += p50[i]; s99[v] += p99[i]
            if (p99[i] > w99[v]) w99[v] = p99[i]
            scpu[v] += cpu[i]; sw[v] += wcpu[i]; so[v] += oth[i]; serr[v] += err[i]; shit[v] = shit[v] " " hit[i]
        }
        printf "\n%-7s %8s %8s %-17s %9s %7s %7s %9s %12s %9s %6s %6s  %s\n", "variant", "req/s", "bare", "ratio (min-max)",
            "cpu ratio", "p50 ms", "p99 ms", "worst p99", "server us/req", "wrk us/req", "other%", "errors",
            "sig-cache hit ratio per run"
        printf "%-7s %8s %8s %-17s %9s %7.3f %7.3f %9.3f %12.2f %9.2f %6.1f\n", "bare", "", "", "", "",
            b50 / nb, b99 / nb, bw99, bcpu / nb, bw / nb, bo / nb
        for (j = 1; j <= k; j++) {
            v = names[j]
            printf "%-7s %8.0f %8.0f %5.3f (%.2f-%.2f) %9.3f %7.3f %7.3f %9.3f %12.2f %9.2f %6.1f %6d %s\n", v, srps[v] / n[v],
                sbare[v] / n[v], sr[v] / n[v], mn[v], mx[v], (bcpu + bw) / nb / ((scpu[v] + sw[v]) / n[v]),
                s50[v] / n[v], s99[v] / n[v], w99[v], scpu[v] / n[v],
                sw[v] / n[v], so[v] / n[v], serr[v], shit[v]
        }
        printf "\nmeans over %d rounds; ratio = req/s over the mean of the neighbouring bare runs; us/req = CPU time\n", n[names[1]]
        printf "(user + system) of the process per request; other%% = share of both cores used by anything else;\n"
        printf "cpu ratio = (server + wrk us/req of bare) / (the same of the variant): the ratio on a machine where\n"
        printf "nothing else runs and both are CPU-bound, unaffected by what else took CPU during a run\n"
        printf "targets for one: ratio >= 0.8, p99 < 5 ms (worst run), no errors: %s\n",
            (sr["one"] / n["one"] >= 0.8 && w99["one"] < 5 && serr["one"] == 0) ? "MET" : "NOT MET"
        if (busy)
            printf "warning: in %d of %d runs other processes used more than 5%% of the cores (other_pct in\nresults.tsv): their req/s and percentiles are disturbed; trust the cpu ratio more\n", busy, last - 1
    }' results.tsv >&2

say ""
for server in "$tessera_url main" "$random_url rand10k"; do
    read -r url name <<<"$server"
    say "signature cache and verifications after the runs, $name server:"
    curl -fsS "$url/metrics" | grep -E '^tessera_(signature_cache|verifications_total\{outcome="ok"\})' >&2 || true
done
for log in serve.log serve-random.log; do
    if [[ -n $(grep -v '^$' "$log" || true) ]]; then
        say ""
        say "$log (warnings and errors):"
        tail -n 20 "$log" >&2
    fi
done
if [[ -n ${RESULTS:-} ]]; then
    cp results.tsv "$RESULTS"
    say "results copied to $RESULTS"
fi
