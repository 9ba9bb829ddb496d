#!/usr/bin/env bash
# Soak: the peak rate of a mixed load, then DURATION at SHARE (80%) of it, sampled every 10 s:
# errors, latency, Tessera's resident memory, open descriptors, store connections and the revoked
# sessions it holds in memory (from its /metrics, switched on with a random bearer token).
#
#   bash bench/soak.sh [embedded|postgres-redis] [DURATION]     # default: embedded 10m
#
# The mix (bench/hello/src/bin/load.rs), per 100 requests: 60 cookie checks (GET /v1/session),
# 25 JWT checks, 8 refreshes, 3 logins (cookie and token alternately), 3 logouts (cookie with
# its CSRF token, and JWT bearer), 1 registration; WORKERS users, each holding at most 6
# sessions. Every answer's status is checked. At the end every acknowledged write is checked
# against the server (`load verify`): users can log in, live sessions work, logouts hold,
# the signing keys are published.
#
# embedded: SQLite in a temporary directory. postgres-redis: users, keys and revocations in a
# private PostgreSQL cluster (initdb under a temporary directory, port PG_PORT), sessions in a
# private Redis (port REDIS_PORT, AOF everysec); the machine's shared 5432/6379 are not used.
# Tessera and its stores are pinned to CPU 0, the load client to CPU 1.
# Needs: curl, taskset, psql/initdb/pg_ctl and redis-server/redis-cli for postgres-redis.
# Environment: WORKERS (64), PEAK_DURATION (30s), SHARE (0.8), RATE (skip the peak run and
# use this rate), PORT (18480), PG_PORT (55432), REDIS_PORT (56379), OUT (a directory to keep
# the table, journal and events in; default: temporary).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

mode=${1:-embedded}
duration=${2:-10m}
case $mode in embedded|postgres-redis) ;; *) echo "usage: bash bench/soak.sh [embedded|postgres-redis] [DURATION]" >&2; exit 2 ;; esac
WORKERS=${WORKERS:-64}
PEAK_DURATION=${PEAK_DURATION:-30s}
SHARE=${SHARE:-0.8}
PORT=${PORT:-18480}
PG_PORT=${PG_PORT:-55432}
REDIS_PORT=${REDIS_PORT:-56379}
require curl taskset
[ "$mode" = postgres-redis ] && require psql initdb redis-server redis-cli

cargo build --release -q -p tessera-server -p tessera-bench-hello --bin tessera --bin load
target=$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)

work=$(mktemp -d /tmp/tessera-soak.XXXXXX)
chmod 755 "$work"
out=${OUT:-$work/out}
mkdir -p "$out"
tessera_pid=
cleanup() {
  [ -n "$tessera_pid" ] && kill "$tessera_pid" 2>/dev/null && wait "$tessera_pid" 2>/dev/null
  if [ "$mode" = postgres-redis ]; then
    stop_redis "$REDIS_PORT"
    [ -f "$work/pg/data/postmaster.pid" ] && pg_ctl_as "$work/pg" -m fast stop
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# /metrics on, for the revoked sessions Tessera remembers (a column of the table).
metrics_token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
env_vars=(TESSERA__LOG__LEVEL=warn TESSERA__METRICS__BEARER_TOKEN="$metrics_token")
if [ "$mode" = postgres-redis ]; then
  start_postgres "$work/pg" "$PG_PORT"
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "create database tessera_soak"
  start_redis "$work/redis" "$REDIS_PORT" aof
  # A shared store needs the issuer every instance signs with.
  env_vars+=(TESSERA__SERVER__PUBLIC_URL=http://tessera.soak
             TESSERA__DATABASE__URL="postgres://postgres@127.0.0.1:$PG_PORT/tessera_soak"
             TESSERA__SESSIONS__STORE="redis://127.0.0.1:$REDIS_PORT")
  for pid in $(postgres_pids "$work/pg") $(cat "$work/redis/redis.pid"); do taskset -a -p -c 0 "$pid" >/dev/null; done
fi
mkdir -p "$work/tessera"
(cd "$work/tessera" && exec env "${env_vars[@]}" taskset -c 0 "$target/tessera" serve --bind "127.0.0.1:$PORT") &
tessera_pid=$!
wait_for "http://127.0.0.1:$PORT/healthz"

remembered="\$(probe_remembered http://127.0.0.1:$PORT $metrics_token)"
if [ "$mode" = postgres-redis ]; then
  probe="source $PWD/bench/lib.sh && echo \$(probe_figures $tessera_pid $PG_PORT tessera_soak $REDIS_PORT) $remembered"
  columns="RSS MiB,fds,PostgreSQL conns,Redis conns,revoked sessions in memory"
else
  probe="source $PWD/bench/lib.sh && echo \$(probe_figures $tessera_pid) $remembered"
  columns="RSS MiB,fds,SQLite files open,revoked sessions in memory"
fi
load() { taskset -c 1 "$target/load" "$@"; }

if [ -z "${RATE:-}" ]; then
  echo "## peak ($PEAK_DURATION, $WORKERS workers, closed loop)" >&2
  load run --target "http://127.0.0.1:$PORT" --workers "$WORKERS" --duration "$PEAK_DURATION" \
    --prefix "peak$$" > "$out/peak.md"
  peak=$(sed -n 's/^overall: \([0-9.]*\) req\/s.*/\1/p' "$out/peak.md")
  RATE=$(awk -v p="$peak" -v s="$SHARE" 'BEGIN { printf "%d", p * s }')
  echo "peak $peak req/s; soak at $RATE req/s" >&2
fi

echo "## soak ($mode, $duration at $RATE req/s, $WORKERS workers)" >&2
load run --target "http://127.0.0.1:$PORT" --workers "$WORKERS" --rate "$RATE" --duration "$duration" \
  --probe "$probe" --probe-columns "$columns" --prefix "soak$$" \
  --journal "$out/journal.jsonl" --events "$out/events.csv" --table "$out/table.md" > /dev/null
echo "### $mode: ${peak:+peak $peak req/s, }soak at $RATE req/s for $duration"
echo
cat "$out/table.md"
echo
echo "verify: $(load verify --target "http://127.0.0.1:$PORT" --journal "$out/journal.jsonl")"
