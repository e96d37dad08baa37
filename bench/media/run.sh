#!/usr/bin/env bash
# Media benchmark: ccomet-media (MCU, one shared VP8 canvas) against Janus 1.1.2's VideoRoom (SFU),
# both driven by build/bench/media_load in the same run; see bench/README.md ("Media benchmark").
#
#   bench/media/run.sh            # 3 rounds of ccomet, janus and the direct baseline, 2 -> 4 -> 8
#   MEDIA_STEPS=2,4 BENCH_ROUNDS=1 bench/media/run.sh
#
# Everything runs in a private network namespace (unshare -n) with lo and a veth pair whose
# address (10.201.0.1) is the only ICE address of every party: Janus never gathers candidates
# on a loopback interface, so 127.0.0.1 alone cannot work for it. Signalling stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

BENCH_ROUNDS=${BENCH_ROUNDS:-3}
MEDIA_STEPS=${MEDIA_STEPS:-2,4,8}
MEDIA_SECONDS=${MEDIA_SECONDS:-10}
MEDIA_SETTLE=${MEDIA_SETTLE:-3}
MEDIA_KBPS=${MEDIA_KBPS:-1000}
MEDIA_SYSTEMS=${MEDIA_SYSTEMS:-"ccomet janus direct"}
MEDIA_BIN=${MEDIA_BIN:-build/ccomet-media}
MEDIA_OUT=${MEDIA_OUT:-var/bench/media.json}
CLIENT=${MEDIA_CLIENT:-build/bench/media_load}
NETNS_IP=10.201.0.1
JANUS_LIB=${JANUS_LIB:-/usr/lib/x86_64-linux-gnu/janus}

log() { printf '[bench-media] %s\n' "$*" >&2; }
die() {
    log "FAILED: $*"
    exit 1
}

# MEDIA_REPORT=<dir of a kept run>: only print the report again from its raw.jsonl
if [[ -n ${MEDIA_REPORT:-} ]]; then
    [[ -f $MEDIA_REPORT/raw.jsonl ]] || die "no $MEDIA_REPORT/raw.jsonl"
    CCOMET_BENCH_NETNS=1
fi

# ---- the namespace ----------------------------------------------------------------------------
if [[ ${CCOMET_BENCH_NETNS:-} != 1 ]]; then
    [[ -x $CLIENT ]] || die "$CLIENT is missing (make build/bench/media_load)"
    if [[ " $MEDIA_SYSTEMS " == *" ccomet "* && ! -x $MEDIA_BIN ]]; then
        die "$MEDIA_BIN is missing (make build/ccomet-media)"
    fi
    if [[ " $MEDIA_SYSTEMS " == *" janus "* ]] && ! command -v janus >/dev/null; then
        die "janus is not installed (scripts/deps.sh installs it)"
    fi
    if unshare -n true 2>/dev/null; then
        exec unshare -n env CCOMET_BENCH_NETNS=1 bash -c '
            ip link set lo up &&
            ip link add bench0 type veth peer name bench1 &&
            ip addr add '"$NETNS_IP"'/24 dev bench0 &&
            ip link set bench1 up && ip link set bench0 up && exec "$0" "$@"' "$ROOT/bench/media/run.sh" "$@"
    fi
    # No namespaces here: the host's first global IPv4 address (traffic to it stays on the host).
    NETNS_IP=$(ip -4 -o addr show scope global | awk '{sub(/\/.*/, "", $4); print $4; exit}')
    [[ -n $NETNS_IP ]] || die "unshare -n is not permitted and there is no non-loopback IPv4 address"
    log "unshare -n is not permitted: running in the host's namespace, ICE on $NETNS_IP"
fi

mkdir -p var/bench
TMP=$(mktemp -d "$ROOT/var/bench/media.XXXXXX")
[[ -z ${MEDIA_REPORT:-} ]] || cp "$MEDIA_REPORT/raw.jsonl" "$TMP/raw.jsonl"
declare -A PID=()
STATUS=fail
cleanup() {
    local s
    for s in "${!PID[@]}"; do stop_server "$s"; done
    if [[ $STATUS == ok && -z ${BENCH_KEEP:-} ]]; then
        rm -rf "$TMP"
    else
        log "kept $TMP (configs, logs)"
    fi
}
trap cleanup EXIT

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # wait_port NAME PID PORT
    local i
    for ((i = 0; i < 150; i++)); do
        kill -0 "$2" 2>/dev/null || die "$1 exited during startup (see $TMP/$1.log)"
        if (echo >"/dev/tcp/127.0.0.1/$3") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "$1 never listened on $3"
}

stop_server() {
    local s=$1 p=${PID[$1]:-} i
    [[ -n $p ]] || return 0
    kill -TERM "$p" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    unset "PID[$s]"
}

# ---- servers ----------------------------------------------------------------------------------
PORT=()
start_ccomet() {
    local d=$TMP/ccomet i
    mkdir -p "$d"
    {
        echo '<document type="freeswitch/xml"><section name="directory">'
        echo '<domain name="FSdefaultDomain"><groups><group name="default"><users>'
        for i in $(seq 1 16); do
            printf '<user id="10000%03d"><params><param name="password" value="benchpw"/></params></user>\n' "$i"
        done
        echo '</users></group></groups></domain></section></document>'
    } >"$d/directory.xml"
    local ws esl
    ws=$(free_port)
    esl=$(free_port)
    cat >"$d/ccomet-media.ini" <<EOF
[sip]
ip = 127.0.0.1
ws_port = $ws
wss_port = $(free_port)
domain = FSdefaultDomain
[directory]
file = $d/directory.xml
[conference]
max_members = 64
[profile.video]
video = true
width = 640
height = 480
fps = 30
video_kbps = 1000
audio_kbps = 48
max_members = 16
layout = grid
[media]
ice_ip = $NETNS_IP
[esl]
ip = 127.0.0.1
port = $esl
password = bench-esl
[log]
level = warn
EOF
    "$MEDIA_BIN" --conf "$d/ccomet-media.ini" >"$TMP/ccomet.log" 2>&1 &
    PID[ccomet]=$!
    PORT[0]=$ws
    wait_port ccomet "${PID[ccomet]}" "$ws"
}

start_janus() {
    local d=$TMP/janus
    mkdir -p "$d"
    dis() { (cd "$JANUS_LIB/$1" && ls -- *.so 2>/dev/null | grep -vx "${2:-}" | paste -sd,) || true; }
    local ws
    ws=$(free_port)
    cat >"$d/janus.jcfg" <<EOF
general: {
	configs_folder = "$d"
	plugins_folder = "$JANUS_LIB/plugins"
	transports_folder = "$JANUS_LIB/transports"
	events_folder = "$JANUS_LIB/events"
	loggers_folder = "$JANUS_LIB/loggers"
	debug_level = 3
	session_timeout = 60
	server_name = "ccomet-bench"
}
media: {
	rtp_port_range = "40000-49999"
}
nat: {
	ice_enforce_list = "$NETNS_IP"
}
plugins: {
	disable = "$(dis plugins libjanus_videoroom.so)"
}
transports: {
	disable = "$(dis transports libjanus_websockets.so)"
}
loggers: {
	disable = "$(dis loggers)"
}
events: {
	broadcast = false
	disable = "$(dis events)"
}
EOF
    printf 'general: {\n}\n' >"$d/janus.plugin.videoroom.jcfg"
    cat >"$d/janus.transport.websockets.jcfg" <<EOF
general: {
	json = "compact"
	ws = true
	ws_port = $ws
	ws_ip = "127.0.0.1"
	wss = false
}
admin: {
	admin_ws = false
	admin_wss = false
}
EOF
    janus -C "$d/janus.jcfg" -F "$d" -N -o >"$TMP/janus.log" 2>&1 &
    PID[janus]=$!
    PORT[1]=$ws
    wait_port janus "${PID[janus]}" "$ws"
}

# ---- rounds -------------------------------------------------------------------------------------
read -r -a SYSTEMS <<<"$MEDIA_SYSTEMS"
rotated() {
    local r=$1 i n=${#SYSTEMS[@]}
    for ((i = 0; i < n; i++)); do printf '%s ' "${SYSTEMS[$(((r - 1 + i) % n))]}"; done
}

RAW=$TMP/raw.jsonl
[[ -n ${MEDIA_REPORT:-} ]] && BENCH_ROUNDS=0 || : >"$RAW"
log "steps $MEDIA_STEPS members, ${MEDIA_SETTLE}s settle + ${MEDIA_SECONDS}s measured per step," \
    "$BENCH_ROUNDS rounds, systems: $MEDIA_SYSTEMS, ICE address $NETNS_IP"
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
    for s in $(rotated "$r"); do
        load=$(cut -d' ' -f1-3 /proc/loadavg)
        log "round $r: $s (load average $load)"
        args=(--system "$s" --steps "$MEDIA_STEPS" --seconds "$MEDIA_SECONDS"
            --settle "$MEDIA_SETTLE" --kbps "$MEDIA_KBPS" --ice-ip "$NETNS_IP")
        case $s in
        ccomet)
            start_ccomet
            args+=(--url "ws://127.0.0.1:${PORT[0]}" --server-pid "${PID[ccomet]}")
            ;;
        janus)
            start_janus
            args+=(--url "ws://127.0.0.1:${PORT[1]}" --server-pid "${PID[janus]}")
            ;;
        direct) ;;
        *) die "unknown system $s" ;;
        esac
        if ! timeout --kill-after=5 "${MEDIA_CLIENT_TIMEOUT:-900}" "$CLIENT" "${args[@]}" >"$TMP/step.out" 2> >(tee -a "$TMP/client.err" >&2); then
            tail -n 30 "$TMP/$s.log" 2>/dev/null >&2 || true
            die "$s: media_load failed"
        fi
        [[ $s == direct ]] || stop_server "$s"
        while IFS= read -r line; do
            printf '{"round":%d,"load_before":"%s",%s\n' "$r" "$load" "${line#\{}" >>"$RAW"
        done <"$TMP/step.out"
    done
done
[[ -n ${MEDIA_REPORT:-} ]] && BENCH_ROUNDS=$(grep -o '"round":[0-9]*' "$RAW" | sort -u | wc -l) ||
    log "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- report -------------------------------------------------------------------------------------
CCOMET_REV=$(git rev-parse --short HEAD 2>/dev/null || true)
[[ -n $(git status --porcelain -- src 2>/dev/null) ]] && CCOMET_REV="${CCOMET_REV:-none}+dirty"
JANUS_VER=$(dpkg-query -W -f='${Version}' janus 2>/dev/null || true)
GST_VER=$(dpkg-query -W -f='${Version}' libgstreamer1.0-0 2>/dev/null || true)
TABLE=$TMP/table.txt
mkdir -p "$(dirname "$MEDIA_OUT")"
{
    printf '{\n  "benchmark": "media",\n  "date": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf '  "machine": {"nproc": %d, "kernel": "%s"},\n' "$(nproc)" "$(uname -r)"
    printf '  "versions": {"ccomet": "%s", "janus": "%s", "gstreamer": "%s"},\n' \
        "$CCOMET_REV" "$JANUS_VER" "$GST_VER"
    printf '  "config": {"rounds": %d, "steps": "%s", "settle_s": %s, "seconds": %s, "client_kbps": %d, "ice_ip": "%s",\n' \
        "$BENCH_ROUNDS" "$MEDIA_STEPS" "$MEDIA_SETTLE" "$MEDIA_SECONDS" "$MEDIA_KBPS" "$NETNS_IP"
    printf '    "method": "one room grows through the steps; per step: wait until every member receives everyone, settle, measure; server CPU = utime+stime of the server process over the window (100 = one core); down = RTP bytes (headers+payload, after SRTP) a member receives; latency = decode time - painted send time of every first appearance of a stamp (ccomet: every tile of the mixed canvas; janus: the first subscription of each member; direct: in-process publisher->receiver, no server)"},\n'
    awk '
    function jf(line, key,   re, s) {
        re = "\"" key "\":"
        if (!match(line, re "[^,}]*")) return ""
        s = substr(line, RSTART + length(re), RLENGTH - length(re)); gsub(/"/, "", s); return s == "null" ? "" : s
    }
    function median(list,   n, a, i, j, t) {
        n = split(list, a, " ")
        if (!n) return ""
        for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function tf(x, fmt) { return x == "" ? "-" : sprintf(fmt, x) }
    function jn(x, fmt) { return x == "" ? "null" : sprintf(fmt, x) }
    function add(k, key, v) { if (v != "") L[k, key] = L[k, key] " " v }
    BEGIN { nk = split("server_cpu_pct client_cpu_pct down_kbps_per_member down_video_kbps_per_member up_kbps_per_member latency_p50_ms latency_p95_ms decoded_fps_per_member readable_frames fresh_fps_per_tile shown_age_p50_ms load1", K, " ") }
    {
        s = jf($0, "system"); n = jf($0, "members"); r = jf($0, "round"); k = s SUBSEP n
        for (i = 1; i <= nk; i++) { v = jf($0, K[i]); add(k, K[i], v); one[k, r, K[i]] = v }
        cnt[k]++; rounds[r] = 1; raw[++nraw] = $0
        if (!(n in seen_n)) { seen_n[n] = 1; N[++nn] = n }
        if (!(s in seen_s)) { seen_s[s] = 1; S[++ns] = s }
    }
    END {
        for (a = 2; a <= nn; a++) { t = N[a]; for (b = a - 1; b >= 1 && N[b] + 0 > t + 0; b--) N[b + 1] = N[b]; N[b + 1] = t }
        printf "\nOne video room, 640x480@30 members (median over rounds; cpu: %% of one core; kbit/s per member; latency: painted send -> decoded)\n\n" > table
        printf "%-7s %4s %8s %8s %10s %10s %9s %8s %8s %6s %6s %6s %6s %6s\n", "system", "mem", "srv cpu", "cli cpu", "down kbps", "(video)", "up kbps", "p50 ms", "p95 ms", "fps", "fresh", "shown", "read", "load" > table
        printf "  \"results\": ["; first = 1
        for (i = 1; i <= nn; i++) for (j = 1; j <= ns; j++) {
            n = N[i]; s = S[j]; k = s SUBSEP n
            if (!(k in cnt)) continue
            for (q = 1; q <= nk; q++) M[K[q]] = median(L[k, K[q]])
            printf "%-7s %4d %8s %8s %10s %10s %9s %8s %8s %6s %6s %6s %6s %6s\n", s, n, tf(M["server_cpu_pct"], "%.1f"), tf(M["client_cpu_pct"], "%.1f"), tf(M["down_kbps_per_member"], "%.0f"), tf(M["down_video_kbps_per_member"], "%.0f"), tf(M["up_kbps_per_member"], "%.0f"), tf(M["latency_p50_ms"], "%.0f"), tf(M["latency_p95_ms"], "%.0f"), tf(M["decoded_fps_per_member"], "%.1f"), tf(M["fresh_fps_per_tile"], "%.1f"), tf(M["shown_age_p50_ms"], "%.0f"), tf(M["readable_frames"], "%.2f"), tf(M["load1"], "%.1f") > table
            printf "%s\n    {\"system\": \"%s\", \"members\": %d, \"rounds\": %d", first ? "" : ",", s, n, cnt[k]
            for (q = 1; q <= nk; q++) printf ", \"%s\": %s", K[q], jn(M[K[q]], "%.3f")
            printf "}"; first = 0
        }
        printf "\n  ],\n"
        # paired per round: ratios and latency differences
        printf "\nccomet-media vs Janus VideoRoom, paired per round (median of the per-round figures)\n\n" > table
        printf "%4s %14s %16s %13s %13s %13s %13s %13s\n", "mem", "cpu ccomet/jan", "down ccomet/jan", "p50 c-direct", "p95 c-direct", "p50 j-direct", "p95 j-direct", "p50 c-janus" > table
        printf "  \"paired\": ["; first = 1
        for (i = 1; i <= nn; i++) {
            n = N[i]; kc = "ccomet" SUBSEP n; kj = "janus" SUBSEP n; kd = "direct" SUBSEP n
            lc = ""; lb = ""; a5 = ""; a9 = ""; j5 = ""; j9 = ""; cj = ""
            for (r in rounds) {
                c = one[kc, r, "server_cpu_pct"]; jc = one[kj, r, "server_cpu_pct"]
                if (c != "" && jc + 0 > 0) lc = lc " " c / jc
                c = one[kc, r, "down_kbps_per_member"]; jc = one[kj, r, "down_kbps_per_member"]
                if (c != "" && jc + 0 > 0) lb = lb " " c / jc
                d5 = one[kd, r, "latency_p50_ms"]; d9 = one[kd, r, "latency_p95_ms"]
                if (one[kc, r, "latency_p50_ms"] != "" && d5 != "") a5 = a5 " " one[kc, r, "latency_p50_ms"] - d5
                if (one[kc, r, "latency_p95_ms"] != "" && d9 != "") a9 = a9 " " one[kc, r, "latency_p95_ms"] - d9
                if (one[kj, r, "latency_p50_ms"] != "" && d5 != "") j5 = j5 " " one[kj, r, "latency_p50_ms"] - d5
                if (one[kj, r, "latency_p95_ms"] != "" && d9 != "") j9 = j9 " " one[kj, r, "latency_p95_ms"] - d9
                if (one[kc, r, "latency_p50_ms"] != "" && one[kj, r, "latency_p50_ms"] != "") cj = cj " " one[kc, r, "latency_p50_ms"] - one[kj, r, "latency_p50_ms"]
            }
            printf "%4d %14s %16s %13s %13s %13s %13s %13s\n", n, tf(median(lc), "%.2f"), tf(median(lb), "%.3f"), tf(median(a5), "%+.0f"), tf(median(a9), "%+.0f"), tf(median(j5), "%+.0f"), tf(median(j9), "%+.0f"), tf(median(cj), "%+.0f") > table
            printf "%s\n    {\"members\": %d, \"server_cpu_ccomet_over_janus\": %s, \"down_kbps_ccomet_over_janus\": %s, \"added_p50_ms_ccomet\": %s, \"added_p95_ms_ccomet\": %s, \"added_p50_ms_janus\": %s, \"added_p95_ms_janus\": %s, \"p50_ms_ccomet_minus_janus\": %s}", first ? "" : ",", n, jn(median(lc), "%.3f"), jn(median(lb), "%.4f"), jn(median(a5), "%.1f"), jn(median(a9), "%.1f"), jn(median(j5), "%.1f"), jn(median(j9), "%.1f"), jn(median(cj), "%.1f")
            first = 0
            if (n == 8) { t_cpu = median(L[kc, "server_cpu_pct"]); t_lat = median(a5) }
        }
        printf "\n  ],\n"
        for (k in cnt) { split(k, kk, SUBSEP); nl = split(L[k, "load1"], la, " "); for (q = 1; q <= nl; q++) { if (lmin == "" || la[q] + 0 < lmin) lmin = la[q] + 0; if (la[q] + 0 > lmax) lmax = la[q] + 0 } }
        printf "\nLoad average (1 min) at the start of the measuring windows: %s .. %s on %s cores\n", tf(lmin, "%.1f"), tf(lmax, "%.1f"), ncpu > table
        if (t_cpu != "" || t_lat != "") {
            printf "\nTargets (issue 4), 8 members: node CPU %s%% of one core (<= 100: %s); added p50 latency %s ms over the direct baseline (<= 60: %s)\n", tf(t_cpu, "%.1f"), t_cpu == "" ? "-" : (t_cpu + 0 <= 100 ? "met" : "NOT met"), tf(t_lat, "%+.0f"), t_lat == "" ? "-" : (t_lat + 0 <= 60 ? "met" : "NOT met") > table
        }
        printf "  \"rounds\": [\n"
        for (i = 1; i <= nraw; i++) printf "    %s%s\n", raw[i], i < nraw ? "," : ""
        printf "  ]\n}\n"
    }' table="$TABLE" ncpu="$(nproc)" "$RAW"
} >"$MEDIA_OUT.tmp"
mv "$MEDIA_OUT.tmp" "$MEDIA_OUT"
cat "$TABLE"
printf 'JSON: %s\n' "$MEDIA_OUT"
STATUS=ok
