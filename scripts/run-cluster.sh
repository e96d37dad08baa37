#!/usr/bin/env bash
# make run-cluster: a redis-server and three ccomet nodes sharing it ([store] type = redis), all
# on loopback, with the chat demo on each node's port: a message sent in a chat window on one
# node appears in windows open on the others. Ctrl-C stops everything. Redis keeps its
# append-only file (appendfsync always) in var/run-cluster/, so state survives a restart.
#
#   CCOMET_CLUSTER_NODES=3  CCOMET_CLUSTER_REDIS_PORT=6380  CCOMET_CLUSTER_BASE_PORT=3311
set -euo pipefail
cd "$(dirname "$0")/.."

nodes=${CCOMET_CLUSTER_NODES:-3}
redis_port=${CCOMET_CLUSTER_REDIS_PORT:-6380}
base=${CCOMET_CLUSTER_BASE_PORT:-3311}
dir=var/run-cluster
mkdir -p "$dir/redis"
if [[ ! -s $dir/password ]]; then (umask 077 && openssl rand -hex 12 >"$dir/password"); fi
password=$(<"$dir/password")

pids=()
stop() {
    trap - INT TERM EXIT
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop INT TERM EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$PWD/$dir/redis" --save '' \
    --appendonly yes --appendfsync always --protected-mode no >"$dir/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
done
redis-cli -p "$redis_port" ping | grep -q PONG || { echo "redis-server did not start: $dir/redis.log" >&2; exit 1; }

for i in $(seq 1 "$nodes"); do
    q=$((base + i - 1)) w=$((base + 100 + i - 1))
    cat >"$dir/node$i.ini" <<INI
[main]
password = $password
node_name = ccomet-$i
base_dir = web
[cometql]
ip = 127.0.0.1
port = $q
[ws]
ip = 127.0.0.1
port = $w
[store]
type = redis
[redis]
server = 127.0.0.1:$redis_port
INI
    build/ccomet --conf "$dir/node$i.ini" >"$dir/node$i.log" 2>&1 &
    pids+=($!)
done
for i in $(seq 1 "$nodes"); do
    q=$((base + i - 1))
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$q") 2>/dev/null && break
        sleep 0.1
    done
done
# the chat demo's pipe keeps its last 50 messages, visible on every node
MYSQL_PWD=$password mariadb -h127.0.0.1 -P"$base" -uroot \
    -e "INSERT INTO pipes_settings (name, length) VALUES ('web_demo_chat', 50)" >/dev/null 2>&1 || true

echo "ccomet cluster: redis-server on 127.0.0.1:$redis_port, $nodes nodes (logs in $dir/)"
for i in $(seq 1 "$nodes"); do
    q=$((base + i - 1)) w=$((base + 100 + i - 1))
    echo "  node $i: CometQL mariadb -h 127.0.0.1 -P $q -u root -p$password   chat http://127.0.0.1:$w/demo/chat.html"
done
echo "Ctrl-C stops everything."
wait -n "${pids[@]}" || true
echo "a process of the cluster ended; stopping the others" >&2
