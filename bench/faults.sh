#!/usr/bin/env bash
# Faults under load: two Tessera instances sharing a private PostgreSQL (users, keys,
# revocations) and a private Redis (sessions, refresh tokens, throttle counters) carry the soak
# mix (bench/hello/src/bin/load.rs) at RATE requests/s while the stores are restarted, crashed
# and paused and one instance is SIGKILLed. Afterwards every acknowledged write is checked
# against the surviving instance (`load verify`), and each fault's time to 503 and time to
# recovery are read from the log of every request (`load faults`).
#
#   bash bench/faults.sh            # all three phases, about 6 minutes; prints Markdown
#
# Phases (each on fresh instances, its own database and its own Redis):
#   durable  Redis with AOF everysec. At +20 s PostgreSQL restarted (pg_ctl -m fast), +40 s
#            PostgreSQL crashed and restarted (-m immediate), +60 s Redis restarted (SHUTDOWN,
#            which writes the AOF, then started again), +80 s PostgreSQL paused 15 s (SIGSTOP
#            of the postmaster and every backend, then SIGCONT), +110 s Redis paused 15 s,
#            +140 s instance B SIGKILLed and started again 10 s later; load until +170 s.
#            Expected: nothing acknowledged lost.
#   no-aof   Redis without persistence; at +30 s Redis restarted; load until +60 s.
#            Expected (documented): every session and refresh token lost (users log in
#            again); users, keys and revocations (in PostgreSQL) all kept.
#   aof-kill Redis with AOF everysec SIGKILLed at +30 s and started again; load until +60 s.
#            Expected: at most the last second of session writes lost.
#
# The machine's shared PostgreSQL (5432) and Redis (6379) are never touched: the cluster is
# made with initdb under a temporary directory (port PG_PORT) and each Redis is private.
# Needs: curl, psql, initdb, pg_ctl, redis-server, redis-cli.
# Environment: RATE (requests/s in all, default 200), WORKERS (32), PORT_BASE (18580),
# PG_PORT (55433), REDIS_PORT (56380), PHASES ("durable no-aof aof-kill"), OUT (directory to
# keep journals and events in; default temporary).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

RATE=${RATE:-200}
WORKERS=${WORKERS:-32}
PORT_BASE=${PORT_BASE:-18580}
PG_PORT=${PG_PORT:-55433}
REDIS_PORT=${REDIS_PORT:-56380}
PHASES=${PHASES:-"durable no-aof aof-kill"}
require curl psql initdb redis-server redis-cli

cargo build --release -q -p tessera-server -p tessera-bench-hello --bin tessera --bin load
target=$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)

work=$(mktemp -d /tmp/tessera-faults.XXXXXX)
chmod 755 "$work"
out=${OUT:-$work/out}
mkdir -p "$out"
declare -A instance_pids=()
stores_paused=()
cleanup() {
  [ ${#stores_paused[@]} -gt 0 ] && kill -CONT "${stores_paused[@]}" 2>/dev/null
  for pid in "${instance_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  stop_redis "$REDIS_PORT"
  [ -f "$work/pg/data/postmaster.pid" ] && pg_ctl_as "$work/pg" -m fast stop
  rm -rf "$work"
}
trap cleanup EXIT

start_postgres "$work/pg" "$PG_PORT"

# start_instance NAME PORT DATABASE: a Tessera on the shared stores; pid in instance_pids.
# Access tokens live 1 h so that the check afterwards can present every acknowledged one.
start_instance() {
  local name=$1 port=$2 database=$3
  mkdir -p "$work/$name"
  (cd "$work/$name" && exec env TESSERA__LOG__LEVEL=warn TESSERA__TOKEN__ACCESS_TTL=1h \
    TESSERA__SERVER__PUBLIC_URL=http://tessera.faults \
    TESSERA__DATABASE__URL="postgres://postgres@127.0.0.1:$PG_PORT/$database" \
    TESSERA__SESSIONS__STORE="redis://127.0.0.1:$REDIS_PORT" \
    "$target/tessera" serve --bind "127.0.0.1:$port" >>"$work/$name.log" 2>&1) &
  instance_pids[$name]=$!
  wait_for "http://127.0.0.1:$port/healthz"
}

# fault LABEL COMMAND...: runs COMMAND and writes LABEL, its start and its end to the list.
fault() {
  local label=$1 start; shift
  start=$(now_ms)
  "$@"
  printf '%s\t%s\t%s\n' "$label" "$start" "$(now_ms)" >> "$faults_file"
  echo "  $label done" >&2
}
pause() { stores_paused=($1); kill -STOP $1; sleep "$2"; kill -CONT $1; stores_paused=(); }
pause_postgres() { local pids; pids=$(postgres_pids "$work/pg"); pause "$pids" 15; }
pause_redis() { pause "$(cat "$work/redis/redis.pid")" 15; }
restart_redis() { stop_redis "$REDIS_PORT" "$1"; start_redis "$work/redis" "$REDIS_PORT" "$2"; }
crash_redis() { kill -KILL "$(cat "$work/redis/redis.pid")"; sleep 0.5; start_redis "$work/redis" "$REDIS_PORT" aof; }
kill_instance() { kill -KILL "${instance_pids[b]}"; wait "${instance_pids[b]}" 2>/dev/null || true; sleep 10; start_instance b "$1" "$2"; }
at() { local due=$(( load_start + $1 * 1000 )) now; now=$(now_ms); [ "$due" -gt "$now" ] && sleep "$(awk -v d=$((due - now)) 'BEGIN { print d / 1000 }')"; return 0; }

for phase in $PHASES; do
  database="faults_${phase//-/_}"
  a_port=$PORT_BASE; b_port=$((PORT_BASE + 1))
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "create database $database"
  case $phase in
    no-aof) start_redis "$work/redis" "$REDIS_PORT" noaof; duration=60 ;;
    durable) start_redis "$work/redis" "$REDIS_PORT" aof; duration=170 ;;
    aof-kill) start_redis "$work/redis" "$REDIS_PORT" aof; duration=60 ;;
  esac
  start_instance a "$a_port" "$database"
  start_instance b "$b_port" "$database"
  faults_file="$out/$phase.faults.tsv"
  : > "$faults_file"
  echo "## phase $phase ($duration s at $RATE req/s)" >&2
  "$target/load" run --target "http://127.0.0.1:$a_port" --target "http://127.0.0.1:$b_port" \
    --workers "$WORKERS" --rate "$RATE" --duration "${duration}s" --prefix "$phase$$" \
    --journal "$out/$phase.journal.jsonl" --events "$out/$phase.events.csv" \
    --table "$out/$phase.table.md" > /dev/null 2> "$out/$phase.load.log" &
  load_pid=$!
  load_start=$(now_ms)
  case $phase in
    durable)
      at 20; fault "PostgreSQL restart (fast)" pg_ctl_as "$work/pg" -m fast restart
      at 40; fault "PostgreSQL crash and restart (immediate)" pg_ctl_as "$work/pg" -m immediate restart
      at 60; fault "Redis restart (AOF everysec, SHUTDOWN)" restart_redis save aof
      at 80; fault "PostgreSQL paused 15 s" pause_postgres
      at 110; fault "Redis paused 15 s" pause_redis
      at 140; fault "instance B SIGKILLed, back after 10 s" kill_instance "$b_port" "$database"
      ;;
    no-aof) at 30; fault "Redis restart (no persistence)" restart_redis nosave noaof ;;
    aof-kill) at 30; fault "Redis SIGKILL (AOF everysec) and restart" crash_redis ;;
  esac
  wait "$load_pid"
  echo "### $phase"
  echo
  "$target/load" faults --events "$out/$phase.events.csv" --faults "$faults_file"
  echo
  sed -n '/^[0-9]* requests/,$p' "$out/$phase.table.md"
  echo "verify: $("$target/load" verify --target "http://127.0.0.1:$a_port" --journal "$out/$phase.journal.jsonl")"
  echo "faults (unix ms):"; sed 's/^/    /' "$faults_file"
  echo
  for name in a b; do kill "${instance_pids[$name]}"; wait "${instance_pids[$name]}" 2>/dev/null || true; done
  instance_pids=()
  stop_redis "$REDIS_PORT"
  rm -rf "$work/redis"
done
