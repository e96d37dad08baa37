#!/usr/bin/env bash
# make run: starts build/ccomet on ./comet.ini (the committed one holds the defaults), gives the
# chat demo's pipe a history, and prints where to connect. Ctrl-C stops it gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
conf=comet.ini

ini() { # ini SECTION KEY DEFAULT: a value from $conf
    awk -v sec="[$1]" -v key="$2" -v def="$3" '
        /^[ \t]*\[/ { gsub(/[ \t]/, ""); cur = $0; next }
        cur == sec && $0 ~ "^[ \t]*" key "[ \t]*=" {
            sub(/^[^=]*=[ \t]*/, ""); sub(/[ \t]+[;#].*$/, ""); sub(/[ \t]+$/, ""); print; found = 1; exit
        }
        END { if (!found) print def }' "$conf"
}
qport=$(ini cometql port 3307)
wport=$(ini ws port 8087)
password=$(ini main password password)

# wss for ccomet-media: a self-signed certificate for localhost, made once
if [[ ! -s var/tls/localhost.crt || ! -s var/tls/localhost.key ]]; then
    mkdir -p var/tls
    openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 3650 \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
        -keyout var/tls/localhost.key -out var/tls/localhost.crt 2>/dev/null
fi

build/ccomet --conf "$conf" &
pid=$!
build/ccomet-media --conf ccomet-media.ini &
media_pid=$!
trap 'kill -TERM $pid $media_pid 2>/dev/null || true' INT TERM
for _ in $(seq 1 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$qport") 2>/dev/null; then break; fi
    kill -0 $pid 2>/dev/null || { wait $pid; exit 1; }
    sleep 0.05
done
# the demo chat keeps its last 50 messages
mariadb -h127.0.0.1 -P"$qport" -uroot -p"$password" -e \
    "INSERT INTO pipes_settings (name, length) VALUES ('web_demo_chat', 50)" 2>/dev/null || true

cat <<TXT

ccomet is running ($conf; store under var/).
  Chat demo:  http://127.0.0.1:$wport/demo/chat.html   (open it in two browser windows)
  CometQL:    mariadb -h127.0.0.1 -P$qport -uroot -p$password
              e.g. INSERT INTO pipes_messages (name, event, message) VALUES ('web_demo_chat', 'msg', '{"name":"backend","text":"hi"}');
  Metrics:    http://127.0.0.1:$wport/metrics
  Media node: SIP over WebSocket ws://127.0.0.1:5066 and wss://127.0.0.1:7443 (self-signed
              var/tls/localhost.crt), Event Socket 127.0.0.1:8021 (ccomet-media.ini)
Stop with Ctrl-C (SIGINT) or SIGTERM; reload the configuration with SIGHUP (kill -HUP $pid).

TXT
wait $pid
kill -TERM $media_pid 2>/dev/null || true
wait $media_pid 2>/dev/null || true
