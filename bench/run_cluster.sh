#!/usr/bin/env bash
# Cluster benchmark (issue 10): acknowledged publishes per second, with p50/p99, for ccomet in
# each of its state modes and for nchan with its Redis storage, in one run so the machine's
# noise hits them alike. Every publish is acknowledged only after the state has it.
#
#   embedded     one ccomet node, SQLite ([store] type = sqlite, group commit)
#   redis1       one ccomet node on one redis-server ([store] type = redis)
#   redis3       three ccomet nodes on that redis-server, the connections spread over them
#   cluster3     three ccomet nodes on a 3-master Redis Cluster ([redis] cluster = yes)
#   nchan-redis  nchan (Debian's libnginx-mod-nchan) storing in the same redis-server
#
# Each measurement: bench/publish_bench (closed loop, one request in flight per connection)
# with CONNS connections in all, split evenly over the system's nodes (one client process per
# node, run at once): ops/s is their sum, p50 and p99 the worst of the processes' (a
# conservative merge). Redis runs with appendonly yes and appendfsync everysec (BENCH_FSYNC to
# change), as a production deployment would. Rounds rotate the system order; the table gives
# medians over rounds and ccomet/nchan-redis ratios. Deliveries to subscribers are measured by
# bench/run_ws.sh (single node); across nodes they are not measured here yet.
#
#   bench/run_cluster.sh
#   BENCH_SECONDS=3 BENCH_WARMUP=0.5 BENCH_ROUNDS=3 BENCH_CONNS="16 48"
#   BENCH_SYSTEMS="embedded redis1 redis3 cluster3 nchan-redis" BENCH_FSYNC=everysec
#
# On a bigger machine: give each ccomet node and each Redis master its own cores (taskset),
# raise BENCH_CONNS until ops/s stops growing, and compare redis1 with redis3/cluster3; on this
# 2-core box the client threads, the nodes and Redis share two cores, so three nodes cannot
# scale past one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

BENCH_SECONDS=${BENCH_SECONDS:-3}
BENCH_WARMUP=${BENCH_WARMUP:-0.5}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_CONNS=${BENCH_CONNS:-"16 48"}
BENCH_SYSTEMS=${BENCH_SYSTEMS:-"embedded redis1 redis3 cluster3 nchan-redis"}
BENCH_FSYNC=${BENCH_FSYNC:-everysec}
CCOMET_BIN=${CCOMET_BIN:-build/ccomet}
PASSWORD=benchpw
CLIENT=build/bench/publish_bench

log() { printf '%s\n' "$*" >&2; }
die() { log "bench: $*"; exit 1; }
has() { [[ " $BENCH_SYSTEMS " == *" $1 "* ]]; }

if [[ -z ${MAKELEVEL:-} && -x scripts/deps.sh ]]; then scripts/deps.sh >&2; fi
[[ -z ${MAKELEVEL:-} ]] && make --no-print-directory build/ccomet >&2
[[ -x $CCOMET_BIN ]] || die "$CCOMET_BIN not found"
mkdir -p build/bench var/bench
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror -O2 -o "$CLIENT" bench/publish_bench.c \
    $(pkg-config --cflags --libs libmariadb hiredis) -lpthread || die "building $CLIENT failed"
NCHAN_MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so
has nchan-redis && [[ ! -f $NCHAN_MODULE ]] && die "need libnginx-mod-nchan"

TMP=$(mktemp -d "$ROOT/var/bench/cluster.XXXXXX")
PIDS=()
STATUS=fail
cleanup() {
    local rc=$?
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ $STATUS != ok || -n ${BENCH_KEEP:-} ]]; then log "bench: temp dir kept: ${TMP#"$ROOT"/}"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT

read -r -a P < <("$CLIENT" --free-ports 16)
wait_port() {
    local port=$1 deadline=$((SECONDS + 20))
    while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        ((SECONDS < deadline)) || die "nothing listens on 127.0.0.1:$port after 20 s (logs in $TMP)"
        sleep 0.05
    done
}
redis_start() { # port dir [cluster]
    mkdir -p "$2"
    local extra=()
    # the cluster bus defaults to port + 10000 (impossible above 55535): a port of its own
    [[ ${3:-} == cluster ]] && extra=(--cluster-enabled yes --cluster-config-file nodes.conf
        --cluster-port "$("$CLIENT" --free-ports 1)")
    redis-server --port "$1" --bind 127.0.0.1 --dir "$2" --save '' --appendonly yes \
        --appendfsync "$BENCH_FSYNC" --protected-mode no "${extra[@]}" >"$2/redis.log" 2>&1 &
    PIDS+=($!)
    wait_port "$1"
}
ccomet_start() { # name cometql_port ws_port store_lines...
    local name=$1 q=$2 w=$3
    shift 3
    {
        printf '[main]\npassword = %s\n[cometql]\nip = 127.0.0.1\nport = %s\n' "$PASSWORD" "$q"
        printf '[ws]\nip = 127.0.0.1\nport = %s\n[log]\nlevel = warn\n' "$w"
        printf '%s\n' "$@"
    } >"$TMP/$name.ini"
    "$CCOMET_BIN" --conf "$TMP/$name.ini" >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
    NODE_PID[$name]=$!
    NODE_WS[$name]=$w
    wait_port "$q"
}
declare -A NODE_PID=() NODE_WS=()

# ---- servers (all up for the whole run) ----
WS_CLIENT=build/bench/ws_load
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror -O2 -o "$WS_CLIENT" bench/ws_load.c \
    $(pkg-config --cflags --libs libmariadb libcrypto) -lpthread -lm || die "building $WS_CLIENT failed"
R1=${P[0]}
redis_start "$R1" "$TMP/redis1"
declare -A NODES=()
if has embedded; then
    ccomet_start emb "${P[1]}" "${P[2]}" '[store]' "path = $TMP/emb.db"
    NODES[embedded]="${P[1]}"
fi
if has redis1 || has redis3; then
    for i in 0 1 2; do
        ccomet_start "r$i" "${P[$((3 + i))]}" "${P[$((6 + i))]}" '[store]' 'type = redis' '[redis]' \
            "server = 127.0.0.1:$R1" 'prefix = bench:'
    done
    NODES[redis1]="${P[3]}"
    NODES[redis3]="${P[3]} ${P[4]} ${P[5]}"
fi
if has cluster3; then
    C=("${P[9]}" "${P[10]}" "${P[11]}")
    for i in 0 1 2; do redis_start "${C[$i]}" "$TMP/cl$i" cluster; done
    redis-cli --cluster create "127.0.0.1:${C[0]}" "127.0.0.1:${C[1]}" "127.0.0.1:${C[2]}" \
        --cluster-replicas 0 --cluster-yes >"$TMP/cluster-create.log" 2>&1 || die "cluster create failed"
    for c in "${C[@]}"; do
        for _ in $(seq 100); do redis-cli -p "$c" cluster info | grep -q cluster_state:ok && break; sleep 0.1; done
    done
    seeds="127.0.0.1:${C[0]},127.0.0.1:${C[1]},127.0.0.1:${C[2]}"
    for i in 0 1 2; do
        ccomet_start "c$i" "${P[$((12 + i))]}" "$("$CLIENT" --free-ports 1)" '[store]' 'type = redis' \
            '[redis]' "server = $seeds" 'cluster = yes'
    done
    NODES[cluster3]="${P[12]} ${P[13]} ${P[14]}"
fi
if has nchan-redis; then
    # two nginx servers with nchan on the one Redis (nchan's own cluster): publishes go to the
    # first, the deliveries section subscribes on the second
    NCHAN_PORT2=$("$CLIENT" --free-ports 1)
    for k in 1 2; do
        N=$TMP/nginx$k
        port=${P[15]}
        [[ $k == 2 ]] && port=$NCHAN_PORT2
        mkdir -p "$N"
        cat >"$N/nginx.conf" <<NGINX
load_module $NCHAN_MODULE;
worker_processes 1;
daemon off;
master_process on;
pid $N/nginx.pid;
error_log $N/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $N/cb; proxy_temp_path $N/px; fastcgi_temp_path $N/fc;
    uwsgi_temp_path $N/uw; scgi_temp_path $N/sc;
    keepalive_requests 1000000;
    upstream redis_store { nchan_redis_server redis://127.0.0.1:$R1; }
    server {
        listen 127.0.0.1:$port;
        location /pub { nchan_publisher; nchan_channel_id \$arg_id; nchan_redis_pass redis_store; }
        location ~ /sub/(\w+)\$ {
            nchan_subscriber websocket; nchan_channel_id \$1;
            nchan_subscriber_first_message newest; nchan_redis_pass redis_store;
        }
    }
}
NGINX
        nginx -p "$N" -c "$N/nginx.conf" -e "$N/error.log" >"$N/stdout.log" 2>&1 &
        PIDS+=($!)
        NODE_PID[nginx$k]=$!
        wait_port "$port"
    done
    NODES[nchan-redis]="${P[15]}"
fi

jnum() { sed -n "s/.*\"$1\":\([-0-9.]*\).*/\1/p" <<<"$2"; }

# measure SYSTEM CONNS SECONDS WARMUP -> "ops p50 p99"
measure() {
    local sys=$1 conns=$2 secs=$3 warm=$4 ports kind=ccomet auth=(--password "$PASSWORD") i=0
    read -r -a ports <<<"${NODES[$sys]}"
    [[ $sys == nchan-redis ]] && { kind=nchan; auth=(); }
    local n=${#ports[@]} per=$(( (conns + ${#ports[@]} - 1) / ${#ports[@]} ))
    for p in "${ports[@]}"; do
        "$CLIENT" --system "$kind" --port "$p" --conns "$per" --seconds "$secs" --warmup "$warm" \
            --channel bench_pipe "${auth[@]}" >"$TMP/out.$i" 2>"$TMP/err.$i" &
        i=$((i + 1))
    done
    wait_ok=1
    for ((k = 0; k < n; k++)); do wait -n || wait_ok=0; done
    ((wait_ok)) || { cat "$TMP"/err.* >&2; die "$sys with $conns connections failed"; }
    local ops=0 p50=0 p99=0 line
    for ((k = 0; k < n; k++)); do
        line=$(cat "$TMP/out.$k")
        ops=$(awk -v a="$ops" -v b="$(jnum ops_per_sec "$line")" 'BEGIN { print a + b }')
        p50=$(awk -v a="$p50" -v b="$(jnum p50_us "$line")" 'BEGIN { print (b > a ? b : a) }')
        p99=$(awk -v a="$p99" -v b="$(jnum p99_us "$line")" 'BEGIN { print (b > a ? b : a) }')
    done
    echo "$ops $p50 $p99"
}

read -r -a SYS <<<"$BENCH_SYSTEMS"
for s in "${SYS[@]}"; do [[ -n ${NODES[$s]:-} ]] || die "unknown system $s"; measure "$s" 3 0.2 0 >/dev/null; done
RAW=$TMP/rows.txt
: >"$RAW"
log "cluster bench: [$BENCH_SYSTEMS], conns [$BENCH_CONNS], $BENCH_ROUNDS rounds, ${BENCH_WARMUP}+${BENCH_SECONDS} s each, Redis appendfsync $BENCH_FSYNC"
for ((r = 0; r < BENCH_ROUNDS; r++)); do
    for c in $BENCH_CONNS; do
        for ((i = 0; i < ${#SYS[@]}; i++)); do
            s=${SYS[$(((r + i) % ${#SYS[@]}))]}
            read -r ops p50 p99 < <(measure "$s" "$c" "$BENCH_SECONDS" "$BENCH_WARMUP")
            echo "$s $c $ops $p50 $p99 $r" >>"$RAW"
            printf '  round %d/%d  %-12s %3s conns %10.0f ops/s  p50 %8.0f us  p99 %8.0f us\n' \
                $((r + 1)) "$BENCH_ROUNDS" "$s" "$c" "$ops" "$p50" "$p99" >&2
        done
    done
done

awk -v systems="$BENCH_SYSTEMS" -v connlist="$BENCH_CONNS" '
function med(k,   n, i, j, t, a) { n = cnt[k]; for (i = 1; i <= n; i++) a[i] = v[k, i]
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n ? ((n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) : "" }
function add(k, x) { cnt[k]++; v[k, cnt[k]] = x }
{ add($1 SUBSEP $2 SUBSEP "o", $3); add($1 SUBSEP $2 SUBSEP "a", $4); add($1 SUBSEP $2 SUBSEP "b", $5)
  one[$1, $2, $6, "o"] = $3; one[$1, $2, $6, "b"] = $5 }
END {
    ns = split(systems, S, " "); nc = split(connlist, C, " ")
    printf "\nAcknowledged publishes (median of rounds)\n\n%-12s %6s %12s %10s %10s\n", "system", "conns", "ops/s", "p50 us", "p99 us"
    for (j = 1; j <= nc; j++) for (i = 1; i <= ns; i++)
        printf "%-12s %6d %12.0f %10.0f %10.0f\n", S[i], C[j], med(S[i] SUBSEP C[j] SUBSEP "o"), med(S[i] SUBSEP C[j] SUBSEP "a"), med(S[i] SUBSEP C[j] SUBSEP "b")
    if (!index(" " systems " ", " nchan-redis ")) exit
    printf "\nRatios to nchan-redis, median of per-round ratios (ops/s >1: faster; p99 <1: lower)\n\n%-12s %6s %8s %8s\n", "system", "conns", "ops/s", "p99"
    for (j = 1; j <= nc; j++) for (i = 1; i <= ns; i++) { if (S[i] == "nchan-redis") continue
        for (r = 0; r < 100; r++) if ((S[i], C[j], r, "o") in one && one["nchan-redis", C[j], r, "o"] > 0) {
            add("ro" SUBSEP i SUBSEP j, one[S[i], C[j], r, "o"] / one["nchan-redis", C[j], r, "o"])
            add("rb" SUBSEP i SUBSEP j, one[S[i], C[j], r, "b"] / one["nchan-redis", C[j], r, "b"]) }
        printf "%-12s %6d %8.2f %8.2f\n", S[i], C[j], med("ro" SUBSEP i SUBSEP j), med("rb" SUBSEP i SUBSEP j) }
}' "$RAW"

# ---- deliveries across nodes ----
# ws_load --mode fanout: BENCH_SUBS subscribers on one node, open-loop publishers through
# another (embedded: the same node), a rising rate ladder; per rate the deliveries/s inside the
# publish window and p50/p99 latency from each message's scheduled send time.
if [[ ${BENCH_FANOUT:-1} == 1 ]]; then
    SUBS=${BENCH_SUBS:-1000}
    RATES=${BENCH_RATES:-20,50,100,200}
    fan() { # label system sub_ws_port pub_port server_pid
        local auth=()
        [[ $2 == ccomet ]] && auth=(--password "$PASSWORD")
        "$WS_CLIENT" --system "$2" --port "$3" --pub-port "$4" --server-pid "$5" --conns "$SUBS" \
            --mode fanout --rates "$RATES" --step-seconds 2 --channel fan_pipe "${auth[@]}" \
            2>>"$TMP/ws_load.err" | sed "s/^{/{\"label\":\"$1\",/"
    }
    FAN=$TMP/fanout.jsonl
    : >"$FAN"
    log "deliveries: $SUBS subscribers, rates $RATES msg/s"
    if has embedded; then fan embedded ccomet "${NODE_WS[emb]}" "${P[1]}" "${NODE_PID[emb]}" >>"$FAN"; fi
    if has redis3; then fan redis-cross ccomet "${NODE_WS[r1]}" "${P[3]}" "${NODE_PID[r1]}" >>"$FAN"; fi
    if has nchan-redis; then fan nchan-redis-cross nchan "$NCHAN_PORT2" "${P[15]}" "${NODE_PID[nginx2]}" >>"$FAN"; fi
    printf '\nDeliveries (%s subscribers on one node, publishers through another)\n\n%-18s %6s %14s %8s %8s %6s\n' \
        "$SUBS" "system" "msg/s" "deliveries/s" "p50 ms" "p99 ms" "keeps"
    awk 'function jf(l, k,   re, s) { re = "\"" k "\":"; if (!match(l, re "[^,}]*")) return ""
            s = substr(l, RSTART + length(re), RLENGTH - length(re)); gsub(/"/, "", s); return s }
         { printf "%-18s %6s %14.0f %8s %8s %6s\n", jf($0, "label"), jf($0, "rate"), jf($0, "deliveries_per_sec"),
               jf($0, "p50_ms"), jf($0, "p99_ms"), jf($0, "keeps_up") }' "$FAN"
fi
STATUS=ok
