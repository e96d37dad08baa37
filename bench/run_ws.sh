#!/usr/bin/env bash
# WebSocket benchmarks: memory per idle subscribed connection and fan-out of one pipe to many
# subscribers, ccomet against nchan (nginx), same load client (build/bench/ws_load) in the same
# run. See bench/README.md ("WebSocket benchmarks").
#
#   bench/run_ws.sh                 both parts (about 4 minutes)
#   bench/run_ws.sh memory          only memory per connection
#   bench/run_ws.sh fanout          only fan-out
#
# Knobs (environment):
#   BENCH_ROUNDS=3                 rounds (systems interleaved, order rotated every round)
#   WS_MEM_CONNS=19500             idle connections for the memory part (one server process)
#   WS_FANOUT_SUBS="1000 10000"    subscriber counts for the fan-out part
#   WS_RATES_1000="20,50,100,200,500,1000,2000" the coarse ladder (msg/s) per subscriber count;
#   WS_RATES_10000="5,10,20,30,50,100,200"      WS_RATES_<n> for any other n (default: 1000's)
#   WS_SEARCH_STEPS=3              rates tried between the ladder's best rate with p99 < 100 ms
#                                  and the next one (the rate search; 0: the ladder only)
#   WS_STEP_SECONDS=2              publish window per rate
#   WS_DRAIN_MAX=3                 max seconds to wait for late deliveries after a window
#   WS_PUBLISHERS=4                publisher connections (threads) of the load client
#   WS_PROCS=                      load client worker processes (default: 2, or N/15000)
#   BENCH_NGINX_WORKERS=1          nginx worker_processes for nchan (see README)
#   CCOMET_BIN=build/ccomet
#   WS_OUT_DIR=var/bench           writes ws_memory.json and ws_fanout.json there
#   BENCH_KEEP=1                   keep the temp dir (configs, logs, raw lines)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

PARTS=${*:-"memory fanout"}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
WS_MEM_CONNS=${WS_MEM_CONNS:-19500}
WS_FANOUT_SUBS=${WS_FANOUT_SUBS:-"1000 10000"}
WS_RATES_1000=${WS_RATES_1000:-"20,50,100,200,500,1000,2000"}
WS_RATES_10000=${WS_RATES_10000:-"5,10,20,30,50,100,200"}
WS_SEARCH_STEPS=${WS_SEARCH_STEPS:-3}
WS_STEP_SECONDS=${WS_STEP_SECONDS:-2}
WS_DRAIN_MAX=${WS_DRAIN_MAX:-3}
WS_PUBLISHERS=${WS_PUBLISHERS:-4}
WS_PROCS=${WS_PROCS:-}
BENCH_NGINX_WORKERS=${BENCH_NGINX_WORKERS:-1}
CCOMET_BIN=${CCOMET_BIN:-build/ccomet}
WS_OUT_DIR=${WS_OUT_DIR:-var/bench}
CHANNEL=bench_pipe
PASSWORD=benchpw
CLIENT=build/bench/ws_load
SYSTEMS=(ccomet nchan)

log() { printf '%s\n' "$*" >&2; }
die() { log "bench: $*"; exit 1; }

for p in $PARTS; do
    case $p in memory | fanout) ;; *) die "unknown part '$p' (memory, fanout)" ;; esac
done

# ---------------------------------------------------------------- prerequisites ----
# (make bench and bench/run.sh have done this already)
if [[ -z ${MAKELEVEL:-} && -z ${BENCH_WS_NESTED:-} && -x scripts/deps.sh ]]; then
    scripts/deps.sh >&2
fi
pkg-config --exists libmariadb || die "need libmariadb-dev"
pkg-config --exists libcrypto || die "need libssl-dev"
command -v nginx >/dev/null || die "need nginx (apt-get install nginx-light libnginx-mod-nchan)"
NCHAN_MODULE=""
for m in /usr/lib/nginx/modules/ngx_nchan_module.so \
    $(dpkg -L libnginx-mod-nchan 2>/dev/null | grep '/ngx_nchan_module\.so$' || true); do
    [[ -f $m ]] && { NCHAN_MODULE=$m; break; }
done
[[ -n $NCHAN_MODULE ]] || die "need the nchan module (apt-get install libnginx-mod-nchan)"
if [[ -z ${MAKELEVEL:-} && -z ${BENCH_WS_NESTED:-} && $CCOMET_BIN == build/ccomet ]]; then
    make --no-print-directory build/ccomet >&2 || die "building build/ccomet failed"
fi
[[ -x $CCOMET_BIN ]] || die "$CCOMET_BIN not found (make build/ccomet)"

# Every connection is a file descriptor on both ends: take the hard limit (20,000 here).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [[ $NOFILE != unlimited ]] && ((WS_MEM_CONNS + 100 > NOFILE)); then
    log "bench: open-files limit $NOFILE: memory part uses $((NOFILE - 500)) connections"
    WS_MEM_CONNS=$((NOFILE - 500))
fi
NGINX_NOFILE=$([[ $NOFILE == unlimited ]] && echo 65536 || echo "$NOFILE")

# ------------------------------------------------------------------------ client ----
mkdir -p build/bench "$WS_OUT_DIR"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror -O2 -o "$CLIENT" bench/ws_load.c \
    $(pkg-config --cflags --libs libmariadb libcrypto) -lpthread || die "building $CLIENT failed"

# ----------------------------------------------------------------------- servers ----
mkdir -p var/bench
TMP=$(mktemp -d "$ROOT/var/bench/ws.XXXXXX")
declare -A PID=() PUBPORT=() WSPORT=() DIR=()
STATUS=fail
SERIAL=0

stop_server() {
    local name=$1 pid=${PID[$1]:-} i
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "bench: $name (pid $pid) ignored SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    unset "PID[$name]"
}

cleanup() {
    local rc=$? name
    for name in "${!PID[@]}"; do stop_server "$name"; done
    if [[ $STATUS != ok ]]; then
        local f
        for f in "$TMP"/*/ccomet.log "$TMP"/*/error.log "$TMP"/client.err; do
            [[ -s $f ]] && { log "---- tail of ${f#"$ROOT"/}"; tail -n 15 "$f" >&2; }
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

wait_port() {
    local name=$1 pid=$2 port=$3 deadline=$((SECONDS + 15))
    while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || die "$name exited before listening on 127.0.0.1:$port"
        ((SECONDS < deadline)) || die "$name did not listen on 127.0.0.1:$port within 15 s"
        sleep 0.02
    done
}

# start_server ccomet|nchan: a fresh instance in its own temp dir on free loopback ports
start_server() {
    local name=$1 d p1 p2
    SERIAL=$((SERIAL + 1))
    d=$TMP/$name.$SERIAL
    mkdir -p "$d"
    read -r p1 p2 < <("$CLIENT" --free-ports 2) || die "no free loopback ports"
    DIR[$name]=$d
    if [[ $name == ccomet ]]; then
        cat >"$d/comet.ini" <<EOF
[main]
password = $PASSWORD
[cometql]
ip = 127.0.0.1
port = $p1
[ws]
ip = 127.0.0.1
port = $p2
; a subscriber of a 2,000 msg/s pipe can be a few MB behind while the 2 cores are saturated;
; the default (1M) would cut it off as a slow reader
max_output = 64M
[store]
path = $d/ccomet.db
[log]
level = warn
EOF
        "$CCOMET_BIN" --conf "$d/comet.ini" >"$d/ccomet.log" 2>&1 &
        PID[ccomet]=$!
        PUBPORT[ccomet]=$p1
        WSPORT[ccomet]=$p2
        wait_port ccomet "${PID[ccomet]}" "$p1"
        wait_port ccomet "${PID[ccomet]}" "$p2"
    else
        cat >"$d/nginx.conf" <<EOF
load_module $NCHAN_MODULE;
worker_processes $BENCH_NGINX_WORKERS;
worker_rlimit_nofile $NGINX_NOFILE;
daemon off;
master_process on;
pid $d/nginx.pid;
error_log $d/error.log warn;
# nchan takes more than one nginx connection slot per WebSocket subscriber (with 20,000 slots
# only ~18,750 subscribers fit): slots are not file descriptors, so allow twice the fd limit
events { worker_connections $((NGINX_NOFILE * 2)); }
http {
    access_log off;
    client_body_temp_path $d/client_body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    server {
        listen 127.0.0.1:$p1 backlog=4096;
        location ~ /sub/(\w+)\$ {
            nchan_subscriber websocket;
            nchan_channel_id \$1;
            # a new subscriber starts with the next message (ccomet's subscription does too)
            nchan_subscriber_first_message newest;
        }
        location /pub {
            nchan_publisher;
            nchan_channel_id \$arg_id;
        }
    }
}
EOF
        nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" >"$d/stdout.log" 2>&1 &
        PID[nchan]=$!
        PUBPORT[nchan]=$p1
        WSPORT[nchan]=$p1
        wait_port nchan "${PID[nchan]}" "$p1"
    fi
}

# client SYSTEM ARGS... -> the client's JSON lines on stdout; dies on failure
client() {
    local s=$1 out
    shift
    local auth=() procs=()
    [[ $s == ccomet ]] && auth=(--password "$PASSWORD")
    [[ -n $WS_PROCS ]] && procs=(--procs "$WS_PROCS")
    if ! out=$("$CLIENT" --system "$s" --port "${WSPORT[$s]}" --pub-port "${PUBPORT[$s]}" \
        --server-pid "${PID[$s]}" --channel "$CHANNEL" "${auth[@]}" "${procs[@]}" -v "$@" \
        2> >(tee -a "$TMP/client.err" >&2)); then
        [[ -n $out ]] && log "$out"
        die "$s: ws_load $* failed"
    fi
    printf '%s\n' "$out"
}

rotated() { # rotated ROUND -> systems in this round's order
    local r=$1 i n=${#SYSTEMS[@]}
    for ((i = 0; i < n; i++)); do printf '%s ' "${SYSTEMS[$(((r - 1 + i) % n))]}"; done
}

CCOMET_REV=$(git rev-parse --short HEAD 2>/dev/null || true)
[[ -n $(git status --porcelain -- src 2>/dev/null) ]] && CCOMET_REV="${CCOMET_REV:-none}+dirty"
NGINX_VER=$(nginx -v 2>&1 | sed 's/^nginx version: //' || true)
NCHAN_VER=$(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || true)
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
header() { # JSON preamble shared by both result files
    printf '  "date": "%s",\n  "machine": {"nproc": %d, "kernel": "%s", "nofile": "%s"},\n' \
        "$DATE" "$(nproc)" "$(uname -r)" "$NOFILE"
    printf '  "versions": {"ccomet": "%s", "nginx": "%s", "nchan": "%s"},\n' \
        "$CCOMET_REV" "$NGINX_VER" "$NCHAN_VER"
}

# awk helpers: field extraction from the client's flat JSON lines, medians
AWK_LIB='
function jf(line, key,   re, s) {
    re = "\"" key "\":"
    if (!match(line, re "[^,}]*")) return ""
    s = substr(line, RSTART + length(re), RLENGTH - length(re)); gsub(/"/, "", s); return s
}
function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    if (!n) return ""
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function cnt(list,   a) { return split(list, a, " ") }
function tf(x, fmt) { return x == "" ? "-" : sprintf(fmt, x) }
function jn(x, fmt) { return x == "" ? "null" : sprintf(fmt, x) }
'

# ------------------------------------------------------------------------ memory ----
run_memory() {
    local raw=$TMP/memory.jsonl r s line
    : >"$raw"
    log "memory: $WS_MEM_CONNS idle subscribed connections per server, $BENCH_ROUNDS rounds," \
        "fresh server each time, nginx worker_processes=$BENCH_NGINX_WORKERS"
    for ((r = 1; r <= BENCH_ROUNDS; r++)); do
        for s in $(rotated "$r"); do
            start_server "$s"
            line=$(client "$s" --mode memory --conns "$WS_MEM_CONNS")
            stop_server "$s"
            printf '{"round":%d,%s\n' "$r" "${line#\{}" >>"$raw"
        done
    done
    local out=$WS_OUT_DIR/ws_memory.json table=$TMP/memory.txt
    {
        printf '{\n  "benchmark": "ws_memory",\n'
        header
        printf '  "config": {"rounds": %d, "conns": %d, "nginx_worker_processes": "%s",\n' \
            "$BENCH_ROUNDS" "$WS_MEM_CONNS" "$BENCH_NGINX_WORKERS"
        printf '    "method": "fresh server; PSS (smaps_rollup) and RSS (VmRSS) summed over the server process and its children, before connecting and after every connection is open, subscribed to one pipe (a probe message reached all) and the server idle; per connection = (after - before) / conns"},\n'
        awk "$AWK_LIB"'
        { s = jf($0, "system"); r = jf($0, "round"); pss[s] = pss[s] " " jf($0, "pss_kb_per_conn"); rss[s] = rss[s] " " jf($0, "rss_kb_per_conn")
          one[s, r] = jf($0, "pss_kb_per_conn"); oner[s, r] = jf($0, "rss_kb_per_conn"); rounds[r] = 1; raw[++n] = $0 }
        END {
            for (r in rounds) { if (one["nchan", r] + 0 > 0) { pr = pr " " one["ccomet", r] / one["nchan", r] }
                                if (oner["nchan", r] + 0 > 0) { rr = rr " " oner["ccomet", r] / oner["nchan", r] } }
            printf "  \"results\": [\n"
            printf "    {\"system\": \"ccomet\", \"pss_kb_per_conn\": %s, \"rss_kb_per_conn\": %s},\n", jn(median(pss["ccomet"]), "%.3f"), jn(median(rss["ccomet"]), "%.3f")
            printf "    {\"system\": \"nchan\", \"pss_kb_per_conn\": %s, \"rss_kb_per_conn\": %s}\n  ],\n", jn(median(pss["nchan"]), "%.3f"), jn(median(rss["nchan"]), "%.3f")
            printf "  \"ratio_ccomet_nchan\": {\"pss\": %s, \"rss\": %s},\n", jn(median(pr), "%.3f"), jn(median(rr), "%.3f")
            printf "  \"rounds\": [\n"
            for (i = 1; i <= n; i++) printf "    %s%s\n", raw[i], i < n ? "," : ""
            printf "  ]\n}\n"
            printf "\nMemory per idle subscribed WebSocket connection (%s conns, median of %d rounds)\n\n", conns, length(rounds) > table
            printf "%-8s %14s %14s\n", "system", "PSS KB/conn", "RSS KB/conn" > table
            printf "%-8s %14s %14s\n", "ccomet", tf(median(pss["ccomet"]), "%.3f"), tf(median(rss["ccomet"]), "%.3f") > table
            printf "%-8s %14s %14s\n", "nchan", tf(median(pss["nchan"]), "%.3f"), tf(median(rss["nchan"]), "%.3f") > table
            printf "%-8s %14s %14s   (paired per round; < 1: ccomet uses less)\n", "ratio", tf(median(pr), "%.3f"), tf(median(rr), "%.3f") > table
        }' conns="$WS_MEM_CONNS" table="$table" "$raw"
    } >"$out.tmp"
    mv "$out.tmp" "$out"
    cat "$table"
    printf 'JSON: %s\n' "$out"
}

# ------------------------------------------------------------------------ fanout ----
# search_rates STEP_OUT LADDER N -> comma list of N rates strictly between the highest ladder rate
# that kept up with p99 < 100 ms and the ladder's next rate ("" when there is no such bracket:
# none passed, or the last passed)
search_rates() {
    awk -v ladder="$2" -v steps="$3" "$AWK_LIB"'
    { if (jf($0, "keeps_up") == "true" && jf($0, "p99_ms") + 0 < 100 && jf($0, "rate") + 0 > lo) lo = jf($0, "rate") + 0 }
    END {
        if (!lo || steps + 0 <= 0) exit
        n = split(ladder, L, ","); hi = 0
        for (i = 1; i <= n; i++) if (L[i] + 0 > lo && (!hi || L[i] + 0 < hi)) hi = L[i] + 0
        if (!hi) exit
        out = ""; last = lo
        for (k = 1; k <= steps; k++) {
            r = int(lo + (hi - lo) * k / (steps + 1) + 0.5)
            if (r > last && r < hi) { out = out (out == "" ? "" : ",") r; last = r }
        }
        print out
    }' "$1"
}

# fanout_steps SYSTEM SUBS RATES ROUND MARK: one client run over RATES; its lines go to
# $TMP/step.out and, tagged with the round (and MARK), to $raw
fanout_steps() {
    local line
    client "$1" --mode fanout --conns "$2" --rates "$3" \
        --step-seconds "$WS_STEP_SECONDS" --drain-max "$WS_DRAIN_MAX" \
        --publishers "$WS_PUBLISHERS" >"$TMP/step.out" || exit 1
    while IFS= read -r line; do
        printf '{"round":%d,%s%s\n' "$4" "$5" "${line#\{}" >>"$raw"
    done <"$TMP/step.out"
}

run_fanout() {
    local raw=$TMP/fanout.jsonl r s n rates line
    : >"$raw"
    log "fan-out: subscribers [$WS_FANOUT_SUBS], ${WS_STEP_SECONDS}s per rate, $BENCH_ROUNDS rounds," \
        "nginx worker_processes=$BENCH_NGINX_WORKERS"
    start_server ccomet
    start_server nchan
    for ((r = 1; r <= BENCH_ROUNDS; r++)); do
        for n in $WS_FANOUT_SUBS; do
            local var=WS_RATES_$n
            rates=${!var:-$WS_RATES_1000}
            for s in $(rotated "$r"); do
                fanout_steps "$s" "$n" "$rates" "$r" ""
                # the rate search: between the ladder's best rate with p99 < 100 ms (that kept
                # up) and the ladder's next rate, WS_SEARCH_STEPS evenly spaced rates
                local fine
                fine=$(search_rates "$TMP/step.out" "$rates" "$WS_SEARCH_STEPS")
                [[ -n $fine ]] && fanout_steps "$s" "$n" "$fine" "$r" '"search":true,'
            done
        done
    done
    stop_server ccomet
    stop_server nchan
    local out=$WS_OUT_DIR/ws_fanout.json table=$TMP/fanout.txt
    {
        printf '{\n  "benchmark": "ws_fanout",\n'
        header
        printf '  "config": {"rounds": %d, "subscribers": "%s", "step_seconds": %s, "drain_max_seconds": %s, "publishers": %d, "nginx_worker_processes": "%s", "search_steps": %d,\n' \
            "$BENCH_ROUNDS" "$WS_FANOUT_SUBS" "$WS_STEP_SECONDS" "$WS_DRAIN_MAX" "$WS_PUBLISHERS" "$BENCH_NGINX_WORKERS" "$WS_SEARCH_STEPS"
        printf '    "method": "one pipe, open-loop publisher at each rate for step_seconds; deliveries/s = messages received inside the window / window; latency = receive - scheduled send (CLOCK_MONOTONIC); server CPU = utime+stime of the server tree over window + drain / deliveries; a ladder stops at the first rate that does not keep up; then search_steps rates between its best rate with p99 < 100 ms and its next rate (steps marked search)",\n'
        printf '    "aggregation": "per (subscribers, rate, system): median over the rounds that reached that rate (n); ratios: median of per-round ccomet/nchan; max_* : per round the best step that kept up (and with p99 < 100 ms), median over rounds"},\n'
        awk "$AWK_LIB"'
        {
            s = jf($0, "system"); n = jf($0, "subscribers"); rt = jf($0, "rate"); r = jf($0, "round")
            k = n SUBSEP rt SUBSEP s
            dps[k] = dps[k] " " jf($0, "deliveries_per_sec"); p50[k] = p50[k] " " jf($0, "p50_ms")
            p99[k] = p99[k] " " jf($0, "p99_ms"); cpu[k] = cpu[k] " " jf($0, "server_cpu_us_per_delivery")
            ccpu[k] = ccpu[k] " " jf($0, "client_cpu_pct"); scpu[k] = scpu[k] " " jf($0, "server_cpu_pct")
            ok[k] += (jf($0, "keeps_up") == "true")
            one[k, r, "dps"] = jf($0, "deliveries_per_sec"); one[k, r, "p99"] = jf($0, "p99_ms"); one[k, r, "cpu"] = jf($0, "server_cpu_us_per_delivery")
            one[k, r, "p50"] = jf($0, "p50_ms")
            if (jf($0, "keeps_up") == "true") {
                kk = n SUBSEP s SUBSEP r
                if (jf($0, "deliveries_per_sec") + 0 > best[kk] + 0) best[kk] = jf($0, "deliveries_per_sec")
                if (jf($0, "p99_ms") + 0 < 100 && jf($0, "deliveries_per_sec") + 0 > best100[kk] + 0) best100[kk] = jf($0, "deliveries_per_sec")
            }
            if (!(n in seen_n)) { seen_n[n] = 1; N[++nn] = n }
            if (!((n, rt) in seen_r)) { seen_r[n, rt] = 1; nr[n]++; R[n, nr[n]] = rt }
            rounds[r] = 1; raw[++nraw] = $0
        }
        END {
            # rates ascending per subscriber count
            for (i = 1; i <= nn; i++) { n = N[i]; for (a = 2; a <= nr[n]; a++) { t = R[n, a]; for (b = a - 1; b >= 1 && R[n, b] + 0 > t + 0; b--) R[n, b + 1] = R[n, b]; R[n, b + 1] = t } }
            printf "\nFan-out of one pipe (median over rounds; n = rounds that reached the rate; ok = rounds that kept up)\n\n" > table
            printf "%-6s %6s %-7s %12s %12s %9s %9s %11s %8s %8s %5s\n", "subs", "msg/s", "system", "deliv/s", "target", "p50 ms", "p99 ms", "srv us/del", "srv cpu%", "cli cpu%", "n/ok" > table
            printf "  \"results\": ["; first = 1
            for (i = 1; i <= nn; i++) { n = N[i]
                for (j = 1; j <= nr[n]; j++) { rt = R[n, j]
                    for (si = 1; si <= 2; si++) { s = si == 1 ? "ccomet" : "nchan"; k = n SUBSEP rt SUBSEP s
                        if (!(k in dps)) continue
                        printf "%-6s %6s %-7s %12s %12.0f %9s %9s %11s %8s %8s %2d/%-2d\n", n, rt, s, tf(median(dps[k]), "%.0f"), n * rt, tf(median(p50[k]), "%.2f"), tf(median(p99[k]), "%.2f"), tf(median(cpu[k]), "%.3f"), tf(median(scpu[k]), "%.0f"), tf(median(ccpu[k]), "%.0f"), cnt(dps[k]), ok[k] > table
                        printf "%s\n    {\"subscribers\": %d, \"rate\": %s, \"system\": \"%s\", \"rounds\": %d, \"rounds_kept_up\": %d, \"deliveries_per_sec\": %s, \"p50_ms\": %s, \"p99_ms\": %s, \"server_cpu_us_per_delivery\": %s, \"server_cpu_pct\": %s, \"client_cpu_pct\": %s}", first ? "" : ",", n, rt, s, cnt(dps[k]), ok[k], jn(median(dps[k]), "%.0f"), jn(median(p50[k]), "%.3f"), jn(median(p99[k]), "%.3f"), jn(median(cpu[k]), "%.4f"), jn(median(scpu[k]), "%.1f"), jn(median(ccpu[k]), "%.1f")
                        first = 0
                    }
                }
            }
            printf "\n  ],\n"
            printf "\nRatios ccomet/nchan per rate (paired per round, median; deliv/s > 1 and latency, CPU < 1: ccomet better)\n\n" > table
            printf "%-6s %6s %10s %10s %10s %12s\n", "subs", "msg/s", "deliv/s", "p50", "p99", "srv us/del" > table
            printf "  \"ratios\": ["; first = 1
            for (i = 1; i <= nn; i++) { n = N[i]
                for (j = 1; j <= nr[n]; j++) { rt = R[n, j]; kc = n SUBSEP rt SUBSEP "ccomet"; kn = n SUBSEP rt SUBSEP "nchan"
                    ld = ""; l5 = ""; l9 = ""; lc = ""
                    for (r in rounds) if (((kc, r, "dps") in one) && ((kn, r, "dps") in one)) {
                        if (one[kn, r, "dps"] + 0 > 0) ld = ld " " one[kc, r, "dps"] / one[kn, r, "dps"]
                        if (one[kn, r, "p50"] + 0 > 0) l5 = l5 " " one[kc, r, "p50"] / one[kn, r, "p50"]
                        if (one[kn, r, "p99"] + 0 > 0) l9 = l9 " " one[kc, r, "p99"] / one[kn, r, "p99"]
                        if (one[kn, r, "cpu"] + 0 > 0) lc = lc " " one[kc, r, "cpu"] / one[kn, r, "cpu"]
                    }
                    if (ld == "") continue
                    printf "%-6s %6s %10s %10s %10s %12s\n", n, rt, tf(median(ld), "%.2f"), tf(median(l5), "%.3f"), tf(median(l9), "%.3f"), tf(median(lc), "%.2f") > table
                    printf "%s\n    {\"subscribers\": %d, \"rate\": %s, \"deliveries_per_sec\": %s, \"p50\": %s, \"p99\": %s, \"server_cpu_per_delivery\": %s}", first ? "" : ",", n, rt, jn(median(ld), "%.3f"), jn(median(l5), "%.4f"), jn(median(l9), "%.4f"), jn(median(lc), "%.3f")
                    first = 0
                }
            }
            printf "\n  ],\n"
            printf "\nBest deliveries/s per round among rates that kept up (median over rounds)\n\n" > table
            printf "%-6s %-7s %14s %22s\n", "subs", "system", "max deliv/s", "max deliv/s p99<100ms" > table
            printf "  \"max\": ["; first = 1
            for (i = 1; i <= nn; i++) { n = N[i]
                for (si = 1; si <= 2; si++) { s = si == 1 ? "ccomet" : "nchan"; lb = ""; l1 = ""
                    for (r in rounds) { lb = lb " " (best[n, s, r] + 0); l1 = l1 " " (best100[n, s, r] + 0) }
                    mb[s] = median(lb); m1[s] = median(l1)
                    printf "%-6s %-7s %14s %22s\n", n, s, tf(mb[s], "%.0f"), tf(m1[s], "%.0f") > table
                    printf "%s\n    {\"subscribers\": %d, \"system\": \"%s\", \"max_deliveries_per_sec\": %s, \"max_deliveries_per_sec_p99_under_100ms\": %s}", first ? "" : ",", n, s, jn(mb[s], "%.0f"), jn(m1[s], "%.0f")
                    first = 0
                }
                lr = ""; lr1 = ""
                for (r in rounds) { if (best[n, "nchan", r] + 0 > 0) lr = lr " " best[n, "ccomet", r] / best[n, "nchan", r]
                                    if (best100[n, "nchan", r] + 0 > 0) lr1 = lr1 " " best100[n, "ccomet", r] / best100[n, "nchan", r] }
                printf "%-6s %-7s %14s %22s\n", n, "ratio", tf(median(lr), "%.2f"), tf(median(lr1), "%.2f") > table
                printf ",\n    {\"subscribers\": %d, \"pair\": \"ccomet/nchan\", \"max_deliveries_per_sec\": %s, \"max_deliveries_per_sec_p99_under_100ms\": %s}", n, jn(median(lr), "%.3f"), jn(median(lr1), "%.3f")
            }
            printf "\n  ],\n  \"rounds\": [\n"
            for (i = 1; i <= nraw; i++) printf "    %s%s\n", raw[i], i < nraw ? "," : ""
            printf "  ]\n}\n"
        }' table="$table" "$raw"
    } >"$out.tmp"
    mv "$out.tmp" "$out"
    cat "$table"
    printf 'JSON: %s\n' "$out"
}

for p in $PARTS; do
    case $p in
    memory) run_memory ;;
    fanout) run_fanout ;;
    esac
done
STATUS=ok
