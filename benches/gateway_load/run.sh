#!/usr/bin/env bash
# Throughput of the gateway recipes in docs/gateways/ with and without their forward-auth call
# to `tessera serve` (`/v1/auth`), measured with wrk, for one hot token.
#
#   benches/gateway_load/run.sh
#
# Settings (environment): DURATION=10 (s per run), ROUNDS=3, THREADS=2 (wrk -t),
# CONNECTIONS=32 (wrk -c), WARMUP=3 (s per variant before the first round), GATEWAYS="nginx
# caddy", KEEP=1 keeps the work folder, SKIP_BUILD=1 uses the tessera already in the target
# folder, NICE=-10 runs every server and wrk at that priority (root only), RESULTS=FILE copies
# the table of runs (tab-separated) there. See README.md beside this script.
#
# Per gateway, two instances run side by side: `auth` is the recipe with only its ports
# changed; `noauth` is the same file without the auth step (nginx: the `auth_request /_tessera;`
# line; Caddy: the `forward_auth` block). Both proxy to the same API, a one-worker nginx that
# answers `return 200`. Runs alternate noauth, auth, noauth, ..., noauth; each auth run is
# compared with the mean of the noauth runs just before and after it.
set -euo pipefail

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
WARMUP=${WARMUP:-3}
GATEWAYS=${GATEWAYS:-nginx caddy}
KEEP=${KEEP:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
NICE=${NICE:-0}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
recipes=$root/docs/gateways
if [[ -n ${RESULTS:-} ]]; then
    RESULTS=$(realpath -m "$RESULTS")
fi

# shellcheck source=SCRIPTDIR/../common/load.sh
source "$here/../common/load.sh"

# On PATH, or in the sbin folders Debian puts nginx in (a non-root PATH may leave them out).
find_bin() {
    local dir
    command -v "$1" 2>/dev/null && return 0
    for dir in /usr/sbin /usr/local/sbin; do
        [[ -x $dir/$1 ]] && printf '%s\n' "$dir/$1" && return 0
    done
    return 1
}

command -v wrk >/dev/null || die "wrk is not installed: apt-get install wrk"
command -v python3 >/dev/null || die "python3 is needed (free ports, the token's JSON)"
command -v curl >/dev/null || die "curl is needed: apt-get install curl"
# The API behind the gateways is an nginx too, so nginx is needed even for Caddy alone.
nginx=$(find_bin nginx) || die "nginx is needed (it is also the API): apt-get install nginx-light"
caddy=$(find_bin caddy) || caddy=

if [[ $SKIP_BUILD != 1 ]]; then
    say "building (release): tessera"
    (cd "$root" && cargo build --release --bin tessera)
fi

make_work tessera-gateway-load

# A copy, so that a rebuild in the tree during the run changes nothing measured.
cp "$target/release/tessera" "$work/tessera"
cd "$work"

code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

stop() { # PID: stop a process this script started, and forget it
    local pid=$1 p kept=()
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${pids[@]}"; do
        [[ $p == "$pid" ]] || kept+=("$p")
    done
    pids=("${kept[@]}")
}

start_nginx() { # DIR: nginx from DIR/nginx.conf, as the tests start it; its pid in $started
    local d=$1
    "${nice[@]}" "$nginx" -p "$d/" -c "$d/nginx.conf" \
        -g "daemon off; pid $d/nginx.pid; error_log $d/error.log warn;" >"$d/gateway.log" 2>&1 &
    started=$!
    pids+=("$started")
}

start_caddy() { # DIR: caddy from DIR/Caddyfile, its state kept in DIR; its pid in $started
    local d=$1
    (cd "$d" && HOME=$d XDG_DATA_HOME=$d/data XDG_CONFIG_HOME=$d/config \
        exec "${nice[@]}" "$caddy" run --config Caddyfile --adapter caddyfile) >"$d/gateway.log" 2>&1 &
    started=$!
    pids+=("$started")
}

wait_code() { # PID URL CODE [CURL ARGS...]: until URL answers CODE (the server PID must live)
    local pid=$1 url=$2 want=$3 got=
    shift 3
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || die "the server for $url exited; its folder: $work"
        got=$(code "$@" "$url" || true)
        [[ $got == "$want" ]] && return 0
        sleep 0.1
    done
    die "$url answered $got, not $want"
}

# --- the API and tessera ------------------------------------------------------------------
say "work folder: $work"
api_port=$(free_port)
mkdir api
cat >api/nginx.conf <<EOF
worker_processes 1;
events {
    worker_connections 1024;
}
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$api_port;
        location / {
            return 200;
        }
    }
}
EOF
start_nginx "$work/api"
api_pid=$started
wait_code "$api_pid" "http://127.0.0.1:$api_port/api/orders" 200

tport=$(free_port)
TESSERA_LOG=warn "${nice[@]}" ./tessera serve --listen "127.0.0.1:$tport" \
    --bootstrap-token admin.token --trusted-proxy 127.0.0.1 >tessera.log 2>&1 &
tpid=$!
pids+=("$tpid")
tessera_url=http://127.0.0.1:$tport
wait_code "$tpid" "$tessera_url/readyz" 200

# One token the recipes' question (devtron-app trigger, payments/prod/api) allows.
body='{"name":"bench","expires":"30d","permissions":{"grants":[{"resource":"devtron-app","role":"trigger","project":"payments","environments":["prod"],"apps":["*"]}]}}'
status=$(curl -s -o token.json -w '%{http_code}' -X POST -H "Authorization: Bearer $(<admin.token)" \
    -H 'Content-Type: application/json' -d "$body" "$tessera_url/v1/tokens")
[[ $status == 201 ]] || die "POST /v1/tokens answered $status: $(<token.json)"
token=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["token"])' token.json)

# --- measuring -------------------------------------------------------------------------------

ticks() { # PID...: user + system clock ticks of these processes and their children so far
    local p
    for p in "$@"; do
        printf '%s\n' "$p"
        pgrep -P "$p" || true
    done | while read -r p; do
        # Fields after the command name, which may hold spaces: utime and stime are 12 and 13.
        sed 's/.*) //' "/proc/$p/stat" 2>/dev/null || true
    done | awk '{ t += $12 + $13 } END { print t + 0 }'
}

child_ticks() { # user + system ticks of this shell's finished children (wrk among them)
    sed 's/.*) //' "/proc/$$/stat" | awk '{ print $14 + $15 }'
}

machine_ticks() { # "BUSY TOTAL" clock ticks of all cores so far
    awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t; exit }' /proc/stat
}

active_opens() { # TCP connections opened by this machine so far (connect())
    awk '$1 == "Tcp:" && !n { for (i = 2; i <= NF; i++) col[$i] = i; n = 1; next }
        $1 == "Tcp:" { print $col["ActiveOpens"] }' /proc/net/snmp
}

hz=$(getconf CLK_TCK)

# measure GATEWAY VARIANT ROUND DURATION: one wrk run against $url[VARIANT]; a row in results.tsv
measure() {
    local gw=$1 variant=$2 round=$3 duration=$4
    local url=${url_of[$variant]} gpid=${pid_of[$variant]}
    local g0 g1 t0 t1 a0 a1 w0 w1 o0 o1 m0 m1 out file
    g0=$(ticks "$gpid") t0=$(ticks "$tpid") a0=$(ticks "$api_pid") w0=$(child_ticks)
    o0=$(active_opens)
    read -r -a m0 < <(machine_ticks)
    out=$("${nice[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${duration}s" --latency \
        -H "Authorization: Bearer $token" "$url/api/orders")
    read -r -a m1 < <(machine_ticks)
    o1=$(active_opens)
    g1=$(ticks "$gpid") t1=$(ticks "$tpid") a1=$(ticks "$api_pid") w1=$(child_ticks)
    file=wrk-$gw-$round-$variant.txt
    printf '%s\n' "$out" >"$file"
    local requests errors rps p50 p99
    requests=$(awk '/requests in/ { print $1 }' <<<"$out")
    errors=$(awk '/Non-2xx or 3xx responses:/ { n += $NF }
        /Socket errors:/ { gsub(",", ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' <<<"$out")
    if [[ $errors != 0 ]]; then
        say "$out"
        die "$gw $variant, round $round: $errors non-2xx answers or socket errors (above)"
    fi
    [[ $round == warmup ]] && return 0
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
    # CPU per request of each party; the shares of all cores that went to other processes and
    # that stayed idle; new connections (wrk's and the gateway's to its upstreams) per 1,000
    # requests.
    local cpu
    cpu=$(awk -v hz="$hz" -v n="$requests" -v g=$((g1 - g0)) -v t=$((t1 - t0)) -v a=$((a1 - a0)) \
        -v w=$((w1 - w0)) -v busy=$((m1[0] - m0[0])) -v total=$((m1[1] - m0[1])) -v o=$((o1 - o0)) \
        'BEGIN { f = 1e6 / hz / n
            other = (busy - g - t - a - w) * 100 / total
            printf "%.2f\t%.2f\t%.2f\t%.2f\t%.1f\t%.1f\t%.2f", g * f, t * f, a * f, w * f,
                other < 0 ? 0 : other, (total - busy) * 100 / total, o * 1000 / n }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$gw" "$round" "$variant" "$rps" "$p50" "$p99" "$cpu" >>results.tsv
    local gcpu tcpu acpu wcpu other idle opens
    IFS=$'\t' read -r gcpu tcpu acpu wcpu other idle opens <<<"$cpu"
    say "$(printf '  %-5s round %s %-6s %9s req/s  p50 %6s ms  p99 %6s ms  cpu us/req: gateway %s tessera %s api %s wrk %s  other %s%%  idle %s%%  conns/1k req %s' \
        "$gw" "$round" "$variant" "$rps" "$p50" "$p99" "$gcpu" "$tcpu" "$acpu" "$wcpu" "$other" "$idle" "$opens")"
}

# prepare GATEWAY: write the auth and noauth configurations into GATEWAY-auth/ and GATEWAY-noauth/
prepare() {
    local gw=$1 variant dir file pattern removed
    case $gw in
    nginx) file=nginx.conf pattern='^[[:space:]]*auth_request ' ;;
    caddy) file=Caddyfile pattern='^[[:space:]]*forward_auth ' ;;
    esac
    for variant in auth noauth; do
        dir=$gw-$variant
        mkdir "$dir"
        port_of[$variant]=$(free_port)
        # Only the ports change, as in tests/support/gateways.rs.
        sed -e "s/127\.0\.0\.1:8000/127.0.0.1:${port_of[$variant]}/g" \
            -e "s/127\.0\.0\.1:8080/127.0.0.1:$tport/g" -e "s/127\.0\.0\.1:9000/127.0.0.1:$api_port/g" \
            -e "s/127\.0\.0\.1:2019/127.0.0.1:$(free_port)/g" "$recipes/$file" >"$dir/recipe"
        case $variant-$gw in
        auth-*) cp "$dir/recipe" "$dir/$file" ;;
        noauth-nginx) sed '/^[[:space:]]*auth_request \/_tessera;$/d' "$dir/recipe" >"$dir/$file" ;;
        # From the `forward_auth` line to the closing brace at its indentation.
        noauth-caddy) awk 'skip && $0 == indent "}" { skip = 0; next }
                skip { next }
                /^[[:space:]]*forward_auth / { skip = 1; indent = $0; sub(/[^[:space:]].*/, "", indent); next }
                { print }' "$dir/recipe" >"$dir/$file" ;;
        esac
    done
    # The auth step must be gone from noauth, and nothing else.
    dir=$gw-noauth
    removed=$(diff "$dir/recipe" "$dir/$file" | grep -c '^<' || true)
    if grep -q "$pattern" "$dir/$file" || [[ $removed == 0 ]] ||
        diff "$dir/recipe" "$dir/$file" | grep -q '^>'; then
        die "$gw: could not remove the auth step from the recipe (has $recipes/$file changed?)"
    fi
    say "$gw noauth: the recipe without these lines:"
    diff "$dir/recipe" "$dir/$file" | sed -n 's/^< /    /p' >&2 || true
}

start_gateway() { # GATEWAY VARIANT
    local gw=$1 variant=$2 dir=$work/$1-$2
    case $gw in
    nginx) start_nginx "$dir" ;;
    caddy) start_caddy "$dir" ;;
    esac
    pid_of[$variant]=$started
    url_of[$variant]=http://127.0.0.1:${port_of[$variant]}
}

# Before anything is measured: the token passes both, and auth is really on in one and off in
# the other.
check() { # GATEWAY
    local gw=$1 url=${url_of[auth]}/api/orders
    wait_code "${pid_of[auth]}" "$url" 401
    wait_code "${pid_of[noauth]}" "${url_of[noauth]}/api/orders" 200
    [[ $(code -H "Authorization: Bearer $token" "$url") == 200 ]] || die "$gw auth: not 200 with the token"
    [[ $(code -H "Authorization: Bearer $token" "${url_of[noauth]}/api/orders") == 200 ]] ||
        die "$gw noauth: not 200 with the token"
    [[ $(code -H "Authorization: Bearer $token.x" "$url") == 401 ]] || die "$gw auth: a bad token not refused"
}

printf 'gateway\tround\tvariant\trps\tp50_ms\tp99_ms\tgateway_us\ttessera_us\tapi_us\twrk_us\tother_pct\tidle_pct\tconns_per_1k\n' >results.tsv

dirty=
[[ -z $(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null) ]] || dirty=" (with uncommitted changes)"
echo "# Gateway load: the recipes with and without forward auth to tessera"
echo
echo "- machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
echo "- nginx: $("$nginx" -v 2>&1 | sed 's/^nginx version: //')"
caddy_version="not installed"
[[ -z $caddy ]] || caddy_version=$("$caddy" version 2>&1 | head -n 1)
echo "- caddy: $caddy_version"
echo "- wrk: $(wrk -v 2>&1 | head -n 1 | awk '{ print $1, $2 }')"
# With SKIP_BUILD=1 the binary may be older than HEAD: its time tells.
echo "- tessera: HEAD $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$dirty;" \
    "binary built $(date -r "$target/release/tessera" '+%Y-%m-%d %H:%M:%S %Z')"
niced=
[[ $NICE == 0 ]] || niced="; nice -n $NICE"
echo "- load: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency, one token;" \
    "$ROUNDS rounds of noauth/auth, then noauth; warm-up ${WARMUP}s per variant$niced"

for gw in $GATEWAYS; do
    case $gw in
    nginx) ;;
    caddy)
        if [[ -z $caddy ]]; then
            say "caddy not found: skipping Caddy (apt-get install caddy)"
            printf '\n## caddy\n\nskipped: caddy is not installed\n'
            continue
        fi
        ;;
    *) die "unknown gateway $gw (GATEWAYS: nginx, caddy)" ;;
    esac
    declare -A port_of=() pid_of=() url_of=()
    prepare "$gw"
    start_gateway "$gw" auth
    start_gateway "$gw" noauth
    check "$gw"
    say "$gw: warming up (${WARMUP}s per variant)"
    measure "$gw" noauth warmup "$WARMUP"
    measure "$gw" auth warmup "$WARMUP"
    for round in $(seq 1 "$ROUNDS"); do
        measure "$gw" noauth "$round" "$DURATION"
        measure "$gw" auth "$round" "$DURATION"
    done
    measure "$gw" noauth "$((ROUNDS + 1))" "$DURATION"
    stop "${pid_of[auth]}"
    stop "${pid_of[noauth]}"

    # --- report ------------------------------------------------------------------------------
    printf '\n## %s\n\n' "$gw"
    awk -F'\t' -v gw="$gw" '
        function median(a, n,   i, j, t) {
            for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        function commas(x,   s) {
            s = sprintf("%.0f", x)
            while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s)
            return s
        }
        $1 != gw { next }
        { k++; v[k] = $3; rps[k] = $4; p99[k] = $6
          for (c = 7; c <= 13; c++) { sum[$3, c] += $c }; runs[$3]++ }
        END {
            print "| round | noauth req/s | auth req/s | ratio | noauth p99 ms | auth p99 ms |"
            print "|---|---|---|---|---|---|"
            for (i = 2; i < k; i += 2) {
                b = (rps[i - 1] + rps[i + 1]) / 2; bp = (p99[i - 1] + p99[i + 1]) / 2
                r[++n] = rps[i] / b; ap[n] = p99[i]; if (p99[i] > worst) worst = p99[i]
                printf "| %d | %s | %s | %.3f | %.2f | %.2f |\n", n, commas(b), commas(rps[i]), r[n], bp, p99[i]
            }
            for (i = 1; i <= k; i += 2) { np[++m] = p99[i]; if (p99[i] > nworst) nworst = p99[i] }
            mr = median(r, n)
            printf "\nnoauth req/s and p99: the mean of the noauth runs just before and after the round.\n\n"
            printf "- median ratio: %.3f (target >= 0.85: %s)\n", mr, (mr >= 0.85 ? "met" : "NOT met")
            printf "- p99, median over runs (worst): noauth %.2f ms (%.2f), auth %.2f ms (%.2f)\n",
                median(np, m), nworst, median(ap, n), worst
            # What the ratio is when all parties saturate the cores and nothing else runs; other
            # processes taking CPU during some runs do not move it.
            for (c = 7; c <= 10; c++) { cn += sum["noauth", c] / runs["noauth"]; ca += sum["auth", c] / runs["auth"] }
            printf "- cpu ratio (all parties'"'"' CPU per request, noauth over auth): %.3f\n\n", cn / ca
            print "| variant | gateway us/req | tessera us/req | api us/req | wrk us/req | other % | idle % | new conns / 1k req |"
            print "|---|---|---|---|---|---|---|---|"
            split("noauth auth", names, " ")
            for (j = 1; j <= 2; j++) {
                x = names[j]
                printf "| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f |\n", x, sum[x, 7] / runs[x],
                    sum[x, 8] / runs[x], sum[x, 9] / runs[x], sum[x, 10] / runs[x], sum[x, 11] / runs[x],
                    sum[x, 12] / runs[x], sum[x, 13] / runs[x]
            }
            printf "\nCPU (user + system) per request of each party; the shares of all cores taken by other processes\n"
            printf "and left idle; connections opened per 1,000 requests (wrk and the gateway); means over runs.\n"
        }' results.tsv
done

if [[ -n $(grep -v '^$' tessera.log || true) ]]; then
    say ""
    say "tessera.log (warnings and errors):"
    tail -n 20 tessera.log >&2
fi
if [[ -n ${RESULTS:-} ]]; then
    cp results.tsv "$RESULTS"
    say "results copied to $RESULTS"
fi
