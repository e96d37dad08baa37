#!/usr/bin/env bash
# Publish benchmark: ccomet's CometQL INSERT against nchan's HTTP publisher and Redis PUBLISH,
# all in one run so the machine's noise hits every system alike. See bench/README.md.
#
#   bench/run.sh                    (or: make bench)
#
# Knobs (environment):
#   BENCH_SECONDS=3        measured seconds per measurement
#   BENCH_WARMUP=0.5       unrecorded warm-up seconds before each measurement
#   BENCH_ROUNDS=3         rounds; every round runs every system at every connection count
#   BENCH_CONNS="1 16"     concurrent connections (one client thread each)
#   BENCH_SYSTEMS="ccomet nchan redis"   subset/order of systems
#   BENCH_NGINX_WORKERS=1  nginx worker_processes for the nchan server
#   CCOMET_BIN=build/ccomet
#   BENCH_OUT=var/bench/publish.json
#   BENCH_KEEP=1           keep the temp dir (configs, logs, raw results) after the run
#   BENCH_WS="memory fanout"  then run bench/run_ws.sh with these parts (0: skip; see its knobs)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

BENCH_SECONDS=${BENCH_SECONDS:-3}
BENCH_WARMUP=${BENCH_WARMUP:-0.5}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_CONNS=${BENCH_CONNS:-"1 16"}
BENCH_SYSTEMS=${BENCH_SYSTEMS:-"ccomet nchan redis"}
BENCH_NGINX_WORKERS=${BENCH_NGINX_WORKERS:-1}
CCOMET_BIN=${CCOMET_BIN:-build/ccomet}
BENCH_OUT=${BENCH_OUT:-var/bench/publish.json}
CHANNEL=bench_pipe
PASSWORD=benchpw
CLIENT=build/bench/publish_bench

log() { printf '%s\n' "$*" >&2; }
die() { log "bench: $*"; exit 1; }
has() { [[ " $BENCH_SYSTEMS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- prerequisites ----
# `make bench` already ran `make deps`; run deps ourselves only when invoked directly.
if [[ -z ${MAKELEVEL:-} && -x scripts/deps.sh ]]; then
    scripts/deps.sh >&2
fi

for s in $BENCH_SYSTEMS; do
    case $s in ccomet | nchan | redis) ;; *) die "unknown system '$s' in BENCH_SYSTEMS" ;; esac
done

pkg-config --exists libmariadb hiredis ||
    die "need libmariadb-dev and libhiredis-dev (apt-get install libmariadb-dev libhiredis-dev)"
NCHAN_MODULE=""
if has nchan; then
    command -v nginx >/dev/null || die "need nginx (apt-get install nginx-light libnginx-mod-nchan)"
    for m in /usr/lib/nginx/modules/ngx_nchan_module.so \
        $(dpkg -L libnginx-mod-nchan 2>/dev/null | grep '/ngx_nchan_module\.so$' || true); do
        [[ -f $m ]] && { NCHAN_MODULE=$m; break; }
    done
    [[ -n $NCHAN_MODULE ]] || die "need the nchan module (apt-get install libnginx-mod-nchan)"
fi
if has redis; then
    command -v redis-server >/dev/null || die "need redis-server (apt-get install redis-server)"
fi
if has ccomet; then
    if [[ -z ${MAKELEVEL:-} && $CCOMET_BIN == build/ccomet ]]; then
        make --no-print-directory build/ccomet >&2 || die "building build/ccomet failed"
    fi
    [[ -x $CCOMET_BIN ]] || die "$CCOMET_BIN not found (make build/ccomet, or BENCH_SYSTEMS='nchan redis')"
fi

# ------------------------------------------------------------------------ client ----
mkdir -p build/bench var/bench
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror -O2 -o "$CLIENT" bench/publish_bench.c \
    $(pkg-config --cflags --libs libmariadb hiredis) -lpthread ||
    die "building $CLIENT failed"

# ----------------------------------------------------------------------- servers ----
TMP=$(mktemp -d "$ROOT/var/bench/run.XXXXXX")
declare -A PID=()
STATUS=fail

stop_servers() {
    local name
    for name in "${!PID[@]}"; do kill -TERM "${PID[$name]}" 2>/dev/null || true; done
    for name in "${!PID[@]}"; do
        local i
        for ((i = 0; i < 100; i++)); do
            kill -0 "${PID[$name]}" 2>/dev/null || break
            sleep 0.05
        done
        if kill -0 "${PID[$name]}" 2>/dev/null; then
            log "bench: $name (pid ${PID[$name]}) ignored SIGTERM; sending SIGKILL"
            kill -KILL "${PID[$name]}" 2>/dev/null || true
        fi
        wait "${PID[$name]}" 2>/dev/null || true
    done
    PID=()
}

cleanup() {
    local rc=$?
    stop_servers
    if [[ $STATUS != ok ]]; then
        local f
        for f in "$TMP"/ccomet.log "$TMP"/nginx/error.log "$TMP"/redis/redis.log; do
            [[ -s $f ]] && { log "---- tail of ${f#"$ROOT"/}"; tail -n 20 "$f" >&2; }
        done
    fi
    if [[ -n ${BENCH_KEEP:-} || $STATUS != ok ]]; then
        log "bench: temp dir kept: ${TMP#"$ROOT"/}"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r P_CQL P_WS P_NGINX P_REDIS < <("$CLIENT" --free-ports 4) || true
[[ -n ${P_REDIS:-} ]] || die "could not find free loopback ports"

# Poll until $port accepts a TCP connection, failing early if the process died.
wait_port() {
    local name=$1 pid=$2 port=$3 deadline=$((SECONDS + 15))
    while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || die "$name exited before listening on 127.0.0.1:$port"
        ((SECONDS < deadline)) || die "$name did not listen on 127.0.0.1:$port within 15 s"
        sleep 0.02
    done
}

declare -A PORT=([ccomet]=$P_CQL [nchan]=$P_NGINX [redis]=$P_REDIS)

if has ccomet; then
    cat >"$TMP/comet.ini" <<EOF
[main]
password = $PASSWORD
[cometql]
ip = 127.0.0.1
port = $P_CQL
[ws]
ip = 127.0.0.1
port = $P_WS
[store]
path = $TMP/ccomet.db
[log]
level = warn
EOF
    "$CCOMET_BIN" --conf "$TMP/comet.ini" >"$TMP/ccomet.log" 2>&1 &
    PID[ccomet]=$!
fi

if has nchan; then
    N=$TMP/nginx
    mkdir -p "$N"
    cat >"$N/nginx.conf" <<EOF
load_module $NCHAN_MODULE;
# One worker: one event loop, like Redis (and ccomet); see bench/README.md.
worker_processes $BENCH_NGINX_WORKERS;
daemon off;
master_process on;
pid $N/nginx.pid;
error_log $N/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $N/client_body;
    proxy_temp_path $N/proxy;
    fastcgi_temp_path $N/fastcgi;
    uwsgi_temp_path $N/uwsgi;
    scgi_temp_path $N/scgi;
    # nginx closes a keep-alive connection after 1000 requests by default; the benchmark
    # wants pure keep-alive, like the persistent MySQL and Redis connections.
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    server {
        listen 127.0.0.1:$P_NGINX;
        location /pub {
            nchan_publisher;
            nchan_channel_id \$arg_id;
        }
    }
}
EOF
    nginx -p "$N" -c "$N/nginx.conf" -e "$N/error.log" >"$N/stdout.log" 2>&1 &
    PID[nchan]=$!
fi

if has redis; then
    mkdir -p "$TMP/redis"
    redis-server --port "$P_REDIS" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$TMP/redis" --logfile "$TMP/redis/redis.log" --daemonize no >/dev/null 2>&1 &
    PID[redis]=$!
fi

for s in $BENCH_SYSTEMS; do wait_port "$s" "${PID[$s]}" "${PORT[$s]}"; done

# ------------------------------------------------------------------ measurements ----
RAW=$TMP/rounds.jsonl
: >"$RAW"

jnum() { sed -n "s/.*\"$1\":\([-0-9.]*\).*/\1/p" <<<"$2"; }

# CPU time (clock ticks) used so far by a server: the process and its children (nginx workers).
cpu_ticks() {
    local pid=$1 total=0 f st
    for f in /proc/[0-9]*/stat; do
        st=$(cat "$f" 2>/dev/null) || continue
        st=${st##*) }
        read -r -a F <<<"$st"
        # after the command: state ppid ... utime is field 14, stime 15 (here index 11, 12)
        if [[ ${f//[^0-9]/} == "$pid" || ${F[1]} == "$pid" ]]; then
            total=$((total + F[11] + F[12]))
        fi
    done
    echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)

# run SYSTEM CONNS SECONDS WARMUP -> prints the client's JSON line (with the server's CPU time
# per operation added); dies on failure
measure() {
    local out auth=() t0 t1 ops
    t0=$(cpu_ticks "${PID[$1]}")
    [[ $1 == ccomet ]] && auth=(--password "$PASSWORD")
    if ! out=$("$CLIENT" --system "$1" --port "${PORT[$1]}" --conns "$2" --seconds "$3" \
        --warmup "$4" --channel "$CHANNEL" "${auth[@]}" 2>"$TMP/client.err"); then
        cat "$TMP/client.err" >&2
        [[ -n $out ]] && log "$out"
        die "$1 with $2 connection(s) failed; measurement aborted"
    fi
    t1=$(cpu_ticks "${PID[$1]}")
    ops=$(jnum ops "$out")
    # the CPU window includes the warm-up, so count the warm-up's share of operations too
    local cpu_us
    cpu_us=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v ops="$ops" -v s="$3" -v w="$4" \
        'BEGIN { n = ops * (s + w) / s; printf "%.2f", (n > 0 ? d * 1e6 / hz / n : 0) }')
    printf '%s,"server_cpu_us_per_op":%s}\n' "${out%\}}" "$cpu_us"
}

# Smoke test: one short publish burst per system, so a broken server fails fast and clearly.
for s in $BENCH_SYSTEMS; do measure "$s" 1 0.1 0 >/dev/null; done

log "publish bench: systems [$BENCH_SYSTEMS], conns [$BENCH_CONNS], $BENCH_ROUNDS rounds," \
    "${BENCH_WARMUP}s warm-up + ${BENCH_SECONDS}s each, nginx worker_processes=$BENCH_NGINX_WORKERS"
read -r -a SYS_ARR <<<"$BENCH_SYSTEMS"
NSYS=${#SYS_ARR[@]}
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
    # Rotate the start each round (A B C, B C A, C A B): the system measured right after the
    # 16-conn load otherwise always meets a "hot" machine (see README, 1-conn noise).
    order=()
    for ((i = 0; i < NSYS; i++)); do order+=("${SYS_ARR[$(((r - 1 + i) % NSYS))]}"); done
    for c in $BENCH_CONNS; do
        for s in "${order[@]}"; do
            line=$(measure "$s" "$c" "$BENCH_SECONDS" "$BENCH_WARMUP")
            printf '{"round":%d,%s\n' "$r" "${line#\{}" >>"$RAW"
            printf '  round %d/%d  %-6s %3s conns  %10s ops/s  p50 %8s us  p99 %8s us\n' \
                "$r" "$BENCH_ROUNDS" "$s" "$c" "$(jnum ops_per_sec "$line")" \
                "$(jnum p50_us "$line")" "$(jnum p99_us "$line")" >&2
        done
    done
done

# ------------------------------------------------------------------------ report ----
PAYLOAD_BYTES=$(jnum payload_bytes "$(head -n 1 "$RAW")")
NGINX_VER=$(nginx -v 2>&1 | sed 's/^nginx version: //' || true)
NCHAN_VER=$(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || true)
REDIS_VER=$(redis-server --version 2>/dev/null | sed -n 's/.*v=\([^ ]*\).*/\1/p' || true)
CCOMET_REV=$(git rev-parse --short HEAD 2>/dev/null || true)
[[ -n $(git status --porcelain -- src 2>/dev/null) ]] && CCOMET_REV="${CCOMET_REV:-none}+dirty"

# One row per measurement: system conns ops_per_sec p50 p99 round
sed -n 's/^{"round":\([0-9]*\),"system":"\([a-z]*\)","conns":\([0-9]*\).*"ops_per_sec":\([0-9.]*\),"p50_us":\([0-9.]*\),"p99_us":\([0-9.]*\).*/\2 \3 \4 \5 \6 \1/p' \
    "$RAW" >"$TMP/rows.txt"

TABLE=$TMP/table.txt
mkdir -p "$(dirname "$BENCH_OUT")"
awk -v systems="$BENCH_SYSTEMS" -v connlist="$BENCH_CONNS" -v rounds="$BENCH_ROUNDS" \
    -v secs="$BENCH_SECONDS" -v warm="$BENCH_WARMUP" -v payload="$PAYLOAD_BYTES" \
    -v workers="$BENCH_NGINX_WORKERS" -v chan="$CHANNEL" -v date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    -v nproc="$(nproc)" -v kernel="$(uname -r)" -v nginxv="$NGINX_VER" -v nchanv="$NCHAN_VER" \
    -v redisv="$REDIS_VER" -v ccometv="$CCOMET_REV" -v raw="$RAW" -v table="$TABLE" '
function median(key,   n, i, j, t, a) {
    n = cnt[key]
    for (i = 1; i <= n; i++) a[i] = val[key, i]
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    if (n == 0) return ""
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function add(key, v) { cnt[key]++; val[key, cnt[key]] = v }
function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "" : a / b }
function jn(x, fmt) { return x == "" ? "null" : sprintf(fmt, x) }
function tf(x, fmt) { return x == "" ? "n/a" : sprintf(fmt, x) }
{ add($1 SUBSEP $2 SUBSEP "ops", $3 + 0); add($1 SUBSEP $2 SUBSEP "p50", $4 + 0); add($1 SUBSEP $2 SUBSEP "p99", $5 + 0)
  one[$1, $2, $6, "ops"] = $3 + 0; one[$1, $2, $6, "p50"] = $4 + 0; one[$1, $2, $6, "p99"] = $5 + 0 }
END {
    ns = split(systems, S, " "); nc = split(connlist, C, " ")
    for (i = 1; i <= ns; i++) for (j = 1; j <= nc; j++)
        for (m = 1; m <= 3; m++) { k = (m == 1 ? "ops" : m == 2 ? "p50" : "p99"); med[S[i], C[j], k] = median(S[i] SUBSEP C[j] SUBSEP k) }

    printf "\nPublish throughput and latency (median of %d rounds, %ss each, %d-byte payload, closed loop)\n\n", rounds, secs, payload > table
    printf "%-8s %6s %12s %10s %10s\n", "system", "conns", "ops/s", "p50 us", "p99 us" > table
    printf "%-8s %6s %12s %10s %10s\n", "------", "-----", "-----", "------", "------" > table
    for (j = 1; j <= nc; j++) for (i = 1; i <= ns; i++)
        printf "%-8s %6d %12.0f %10.1f %10.1f\n", S[i], C[j], med[S[i], C[j], "ops"], med[S[i], C[j], "p50"], med[S[i], C[j], "p99"] > table

    np = 0
    if (index(" " systems " ", " ccomet ")) {
        if (index(" " systems " ", " nchan ")) P[++np] = "nchan"
        if (index(" " systems " ", " redis ")) P[++np] = "redis"
    }
    if (np) {
        printf "\nRatios ccomet/peer, median over rounds of the per-round ratio\n(throughput: >1 = ccomet faster; latency: <1 = ccomet faster)\n\n" > table
        printf "%-14s %6s %10s %10s %10s\n", "ratio", "conns", "ops/s", "p50", "p99" > table
        printf "%-14s %6s %10s %10s %10s\n", "-----", "-----", "-----", "---", "---" > table
        for (p = 1; p <= np; p++) for (j = 1; j <= nc; j++) {
            # Paired: the ratio within each round (same machine state), then the median over rounds.
            for (m = 1; m <= 3; m++) {
                k = (m == 1 ? "ops" : m == 2 ? "p50" : "p99"); rk = "ratio" SUBSEP p SUBSEP j SUBSEP k
                for (r = 1; r <= rounds; r++) {
                    x = ratio(one["ccomet", C[j], r, k], one[P[p], C[j], r, k])
                    if (x != "") add(rk, x)
                }
                R[p, j, k] = median(rk)
            }
            printf "%-14s %6d %10s %10s %10s\n", "ccomet/" P[p], C[j], tf(R[p, j, "ops"], "%.2f"), tf(R[p, j, "p50"], "%.2f"), tf(R[p, j, "p99"], "%.2f") > table
        }
    } else {
        printf "\n(ccomet not measured: no ratios)\n" > table
    }

    printf "{\n  \"benchmark\": \"publish\",\n  \"date\": \"%s\",\n", date
    printf "  \"machine\": {\"nproc\": %d, \"kernel\": \"%s\"},\n", nproc, kernel
    printf "  \"versions\": {\"ccomet\": \"%s\", \"nginx\": \"%s\", \"nchan\": \"%s\", \"redis\": \"%s\"},\n", ccometv, nginxv, nchanv, redisv
    printf "  \"config\": {\"rounds\": %d, \"seconds\": %s, \"warmup_seconds\": %s, \"payload_bytes\": %d, \"channel\": \"%s\", \"subscribers\": 0,\n", rounds, secs, warm, payload, chan
    printf "             \"nginx_worker_processes\": %s, \"method\": \"closed loop, one thread per connection, one request in flight per connection, CLOCK_MONOTONIC per op\",\n", workers
    printf "             \"aggregation\": \"results: median over rounds of each metric (ops/s, p50, p99 taken independently); ratios: median over rounds of the per-round ccomet/peer ratio\"},\n"
    printf "  \"results\": ["
    first = 1
    for (j = 1; j <= nc; j++) for (i = 1; i <= ns; i++) {
        printf "%s\n    {\"system\": \"%s\", \"conns\": %d, \"ops_per_sec\": %s, \"p50_us\": %s, \"p99_us\": %s}", first ? "" : ",", S[i], C[j], jn(med[S[i], C[j], "ops"], "%.1f"), jn(med[S[i], C[j], "p50"], "%.1f"), jn(med[S[i], C[j], "p99"], "%.1f")
        first = 0
    }
    printf "\n  ],\n  \"ratios\": ["
    first = 1
    for (p = 1; p <= np; p++) for (j = 1; j <= nc; j++) {
        printf "%s\n    {\"pair\": \"ccomet/%s\", \"conns\": %d, \"ops_per_sec\": %s, \"p50_us\": %s, \"p99_us\": %s}", first ? "" : ",", P[p], C[j], jn(R[p, j, "ops"], "%.3f"), jn(R[p, j, "p50"], "%.3f"), jn(R[p, j, "p99"], "%.3f")
        first = 0
    }
    printf "\n  ],\n  \"rounds\": ["
    first = 1
    while ((getline line < raw) > 0) { printf "%s\n    %s", first ? "" : ",", line; first = 0 }
    printf "\n  ]\n}\n"
}' "$TMP/rows.txt" >"$BENCH_OUT.tmp"
mv "$BENCH_OUT.tmp" "$BENCH_OUT"

cat "$TABLE"
# Server CPU per operation (user + system time of the server process tree, median over rounds):
# on a shared 2-core machine this is steadier than throughput, which the client's own CPU use
# also limits.
printf '\nServer CPU per publish (us, median over rounds; lower is better)\n\n'
sed -n 's/^{"round":[0-9]*,"system":"\([a-z]*\)","conns":\([0-9]*\).*"server_cpu_us_per_op":\([0-9.]*\).*/\1 \2 \3/p' "$RAW" |
    awk '{ k = $1 " " $2; v[k] = v[k] " " $3 }
         END { for (k in v) { n = split(v[k], a, " "); for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
                              printf "  %-8s %3s conns  %6.2f us\n", substr(k, 1, index(k, " ") - 1), substr(k, index(k, " ") + 1), (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 } }' | sort
printf '\nJSON: %s\n' "$BENCH_OUT"
STATUS=ok

# ------------------------------------------------------------- WebSocket benches ----
# Memory per idle connection and fan-out, ccomet against nchan (bench/run_ws.sh, ~4 min):
# run after this run's servers are stopped. BENCH_WS=0 skips them; BENCH_WS="memory" or
# "fanout" runs one part. Only when the publish bench ran ccomet and nchan.
BENCH_WS=${BENCH_WS:-memory fanout}
if [[ $BENCH_WS != 0 ]] && has ccomet && has nchan; then
    stop_servers
    printf '\n' >&2
    # shellcheck disable=SC2086
    BENCH_WS_NESTED=1 CCOMET_BIN=$CCOMET_BIN bench/run_ws.sh $BENCH_WS
fi
