#!/usr/bin/env bash
# make run: starts build/ccomet in the foreground on ./comet.ini (the committed one holds the
# defaults), after printing where to connect. Ctrl-C stops it gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
conf=comet.ini
port=$(awk -F= '/^\[/{s=$0} s=="[cometql]" && $1~/^[ \t]*port[ \t]*$/{gsub(/[ \t;].*/,"",$2); gsub(/ /,"",$2); print $2; exit}' "$conf" 2>/dev/null || true)
port=${port:-3307}
cat <<TXT
ccomet is starting with $conf (store: SQLite under var/).
  CometQL (MySQL protocol): mariadb -h127.0.0.1 -P$port -uroot -ppassword
  try:  SHOW TABLES;  INSERT INTO pipes_messages (name, event, message) VALUES ('web_chat', 'msg', 'hi');
Stop with Ctrl-C (SIGINT) or SIGTERM; reload the configuration with SIGHUP.
TXT
exec build/ccomet --conf "$conf"
