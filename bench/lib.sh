# Shell helpers shared by the bench/ scripts. Source it: `source bench/lib.sh`.
#
# Waiting for a server, wrk runs with their error check, medians, and private PostgreSQL and
# Redis servers on ports of their own (the soak and fault runs restart, kill and pause their
# stores, which must never be the machine's shared ones).

# require TOOL...: fails naming the first tool missing.
require() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "${0##*/} needs $tool" >&2; exit 1; }
  done
}

# wait_for [CURL ARGS...] URL: until the URL answers 2xx, 20 s at most.
wait_for() {
  for _ in $(seq 200); do curl -fs -o /dev/null "$@" 2>/dev/null && return 0; sleep 0.1; done
  echo "no answer from $*" >&2
  exit 1
}

# run_wrk CONNECTIONS WRK ARGS...: one wrk run on CPU 1; prints requests/s, or fails if any
# answer was not 2xx (or a token script ran out of tokens).
run_wrk() {
  local connections=$1; shift
  local output
  output=$(taskset -c 1 wrk -t1 -c"$connections" -d"$DURATION" "$@" 2>&1)
  if grep -q 'Non-2xx\|TOKENS EXHAUSTED' <<<"$output"; then echo "bad run: $output" >&2; exit 1; fi
  awk '/^Requests\/sec/ {print $2}' <<<"$output"
}

median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

now_ms() { date +%s%3N; }

# start_postgres DIR PORT: a new PostgreSQL cluster in DIR (owned by the postgres user when
# run as root), listening on 127.0.0.1:PORT only, fsync on; user postgres, trust.
start_postgres() {
  local dir=$1 port=$2 as=()
  [ "$(id -u)" = 0 ] && { as=(runuser -u postgres --); mkdir -p "$dir"; chown postgres "$dir"; }
  local bin
  bin=$(dirname "$(readlink -f "$(command -v initdb)")")
  "${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
}

# pg_ctl_as DIR ARGS...: pg_ctl on the cluster in DIR (restart -m fast|immediate, stop).
pg_ctl_as() {
  local dir=$1 as=(); shift
  [ "$(id -u)" = 0 ] && as=(runuser -u postgres --)
  local bin
  bin=$(dirname "$(readlink -f "$(command -v initdb)")")
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w "$@" >/dev/null
}

# postgres_pids DIR: the postmaster of the cluster in DIR and its children (to pause them all).
postgres_pids() {
  local postmaster
  postmaster=$(head -n1 "$1/data/postmaster.pid")
  echo "$postmaster $(pgrep -P "$postmaster" | tr '\n' ' ')"
}

# start_redis DIR PORT aof|noaof: a private redis-server; with aof, appendfsync everysec; with
# noaof, no persistence at all (--save "" --appendonly no). Its pid is in DIR/redis.pid.
start_redis() {
  local dir=$1 port=$2 mode=$3 persistence
  mkdir -p "$dir"
  if [ "$mode" = aof ]; then persistence=(--appendonly yes --appendfsync everysec --save "")
  else persistence=(--appendonly no --save ""); fi
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$dir" \
    --pidfile "$dir/redis.pid" --logfile "$dir/log" "${persistence[@]}"
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "redis on $port did not start" >&2; exit 1
}

# stop_redis PORT [save|nosave]: a clean shutdown (with AOF on, the log is flushed first).
stop_redis() { redis-cli -p "$1" shutdown "${2:-nosave}" >/dev/null 2>&1 || true; }

# probe_remembered URL TOKEN: the revoked sessions Tessera holds in memory
# (tessera_revocations_remembered{kind="session"} from its /metrics), or "-".
probe_remembered() {
  curl -sf -H "Authorization: Bearer $2" "$1/metrics" 2>/dev/null |
    awk '/^tessera_revocations_remembered\{kind="session"\}/ { print $2; found = 1 } END { if (!found) print "-" }'
}

# probe_figures PID [PG_PORT DATABASE] [REDIS_PORT]: one line for the soak table —
# resident memory in MiB, open descriptors, and the store connections: PostgreSQL backends of
# DATABASE and Redis clients (the probe's own connection not counted), or, without them, the
# SQLite files the process holds open.
probe_figures() {
  local pid=$1 pg_port=${2:-} database=${3:-} redis_port=${4:-}
  local rss fds
  rss=$(awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status" 2>/dev/null || echo "-")
  fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  if [ -n "$pg_port" ]; then
    local pg redis=-
    pg=$(psql -h 127.0.0.1 -p "$pg_port" -U postgres -Atc \
      "select count(*) from pg_stat_activity where datname = '$database' and pid <> pg_backend_pid()" 2>/dev/null || echo "-")
    [ -n "$redis_port" ] && redis=$(( $(redis-cli -p "$redis_port" client list 2>/dev/null | wc -l) - 1 ))
    echo "$rss $fds $pg $redis"
  else
    echo "$rss $fds $(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 -lname '*tessera.db*' 2>/dev/null | wc -l)"
  fi
}
