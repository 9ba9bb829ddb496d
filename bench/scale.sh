#!/usr/bin/env bash
# Scale-out benchmark: GET /v1/session with a cookie on every store, with and without the
# in-process cache, next to a bare axum hello-world and an axum server that does nothing but
# one Redis GETEX per request; then revocation propagation between two instances.
#
#   bash bench/scale.sh              # builds release binaries, prints Markdown tables
#
# Each server AND the stores it talks to (the machine's PostgreSQL and Redis processes) are
# pinned to CPU 0, wrk to CPU 1, so the numbers say what one core of server-plus-store does;
# the stores are unpinned again at exit. Needs: wrk, taskset, curl, redis-cli, psql, and the
# PostgreSQL (TESSERA_BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres)
# and Redis (TESSERA_BENCH_REDIS_URL, default redis://127.0.0.1:6379) of this machine; each
# Tessera uses its own schema and key prefix, removed at exit.
# Environment: DURATION (default 5s), CONNECTIONS (default "1 64"), RUNS (default 3; the
# median is reported), SAMPLES (propagation samples, default 200), PORT_BASE (default 18280).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-"1 64"}
RUNS=${RUNS:-3}
SAMPLES=${SAMPLES:-200}
PORT_BASE=${PORT_BASE:-18280}
PG=${TESSERA_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS=${TESSERA_BENCH_REDIS_URL:-redis://127.0.0.1:6379}
for tool in wrk taskset curl redis-cli psql; do
  command -v "$tool" >/dev/null || { echo "bench/scale.sh needs $tool" >&2; exit 1; }
done

cargo build --release -q -p tessera-server -p tessera-bench-hello --bin tessera --bin tessera-bench-hello --bin propagation
target=$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)

run_id="bench_$$"
work=$(mktemp -d)
pids=()
store_pids=$(pgrep -d ' ' -x 'postgres|redis-server' || true)
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for pid in $store_pids; do taskset -a -p -c 0-"$(($(nproc) - 1))" "$pid" >/dev/null 2>&1 || true; done
  for schema in $(psql "$PG" -Atc "select nspname from pg_namespace where nspname like '${run_id}%'"); do
    psql "$PG" -qc "drop schema \"$schema\" cascade" >/dev/null 2>&1
  done
  redis-cli -u "$REDIS" EVAL "for _,k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end" 0 "${run_id}*" >/dev/null
  redis-cli -u "$REDIS" EVAL "for _,k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end" 0 "hello:session:*" >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
for pid in $store_pids; do taskset -a -p -c 0 "$pid" >/dev/null; done

wait_for() { for _ in $(seq 200); do curl -fs -o /dev/null "$@" 2>/dev/null && return 0; sleep 0.1; done; echo "no answer from $*" >&2; exit 1; }

next_port=$PORT_BASE
# take_port VAR: the next free port of this run into VAR (no subshell, so the count advances).
take_port() { next_port=$((next_port + 1)); printf -v "$1" '%s' "$next_port"; }

# start_tessera NAME PORT [ENV=VALUE...]: a Tessera pinned to CPU 0 in its own directory.
# The purge of ended sessions runs hourly rather than every 5 minutes: on Redis it walks the
# whole keyspace with SCAN, other tenants' keys included, and a pass landing inside one 5 s
# run of a shared Redis would measure the machine's other keys, not the session check.
start_tessera() {
  local name=$1 port=$2; shift 2
  mkdir -p "$work/$name"
  (cd "$work/$name" && exec env TESSERA__LOG__LEVEL=warn TESSERA__SERVER__PUBLIC_URL=http://tessera.bench \
    TESSERA__SESSIONS__PURGE_INTERVAL=1h "$@" \
    taskset -c 0 "$target/tessera" serve --bind "127.0.0.1:$port") & pids+=($!)
  wait_for "http://127.0.0.1:$port/healthz"
}

# cookie_for PORT: registers (if needed) and logs in; prints the session cookie pair.
cookie_for() {
  local base="http://127.0.0.1:$1"
  curl -s -o /dev/null -H 'content-type: application/json' \
    -d '{"username":"bench","password":"correct horse battery staple"}' "$base/v1/users"
  local cookie
  cookie=$(curl -fs -D - -o /dev/null -H 'content-type: application/json' \
    -d '{"username":"bench","password":"correct horse battery staple"}' "$base/v1/login" \
    | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p')
  [ -n "$cookie" ] || { echo "login on $base failed" >&2; exit 1; }
  curl -fs -o /dev/null -H "cookie: $cookie" "$base/v1/session"
  echo "$cookie"
}

take_port hello_port
taskset -c 0 "$target/tessera-bench-hello" "127.0.0.1:$hello_port" axum-serve & pids+=($!)
take_port getex_port
taskset -c 0 "$target/tessera-bench-hello" "127.0.0.1:$getex_port" redis-getex "$REDIS" & pids+=($!)
wait_for "http://127.0.0.1:$hello_port/"

pg_env() { echo "TESSERA__DATABASE__URL=$PG TESSERA__DATABASE__SCHEMA=${run_id}_$1"; }
redis_env() { echo "TESSERA__SESSIONS__STORE=$REDIS TESSERA__SESSIONS__REDIS_PREFIX=${run_id}_$1:"; }
nocache="TESSERA__SESSION__CACHE_CAPACITY=0"

declare -A ports cookies
names=(sqlite sqlite_nocache pg pg_nocache redis redis_nocache)
for name in "${names[@]}"; do
  take_port p; ports[$name]=$p
  case $name in
    sqlite) start_tessera "$name" "${ports[$name]}" ;;
    sqlite_nocache) start_tessera "$name" "${ports[$name]}" $nocache ;;
    pg) start_tessera "$name" "${ports[$name]}" $(pg_env pg) ;;
    pg_nocache) start_tessera "$name" "${ports[$name]}" $(pg_env pg_nocache) $nocache ;;
    redis) start_tessera "$name" "${ports[$name]}" $(pg_env redis) $(redis_env redis) ;;
    redis_nocache) start_tessera "$name" "${ports[$name]}" $(pg_env redis_nocache) $(redis_env redis_nocache) $nocache ;;
  esac
  cookies[$name]=$(cookie_for "${ports[$name]}")
done
# The GETEX baseline's session: the same cookie shape, a value the size of Tessera's answer.
# (A session token is 48 bytes, 64 characters: the session id and the secret.)
getex_token=$(head -c 48 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=')
body=$(curl -fs -H "cookie: ${cookies[redis]}" "http://127.0.0.1:${ports[redis]}/v1/session")
redis-cli -u "$REDIS" SET "hello:session:$getex_token" "$body" PX 1800000 >/dev/null
getex_cookie="__Host-tessera_session=$getex_token"
curl -fs -o /dev/null -H "cookie: $getex_cookie" "http://127.0.0.1:$getex_port/v1/session"

run_wrk() {
  local connections=$1; shift
  local output
  output=$(taskset -c 1 wrk -t1 -c"$connections" -d"$DURATION" "$@" 2>&1)
  if grep -q 'Non-2xx' <<<"$output"; then echo "error responses during the run: $output" >&2; exit 1; fi
  awk '/^Requests\/sec/ {print $2}' <<<"$output"
}
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "### GET /v1/session by cookie, requests/s (median of $RUNS × $DURATION, server and stores on one core)"
echo
echo "| connections | hello | GETEX-only server | SQLite | SQLite, no cache | PostgreSQL | PostgreSQL, no cache | Redis | Redis, no cache | Redis no cache / GETEX | Redis cached / hello | PostgreSQL cached / hello |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for c in $CONNECTIONS; do
  declare -A runs=()
  for _ in $(seq "$RUNS"); do
    runs[hello]+=" $(run_wrk "$c" "http://127.0.0.1:$hello_port/")"
    runs[getex]+=" $(run_wrk "$c" -H "cookie: $getex_cookie" "http://127.0.0.1:$getex_port/v1/session")"
    for name in "${names[@]}"; do
      runs[$name]+=" $(run_wrk "$c" -H "cookie: ${cookies[$name]}" "http://127.0.0.1:${ports[$name]}/v1/session")"
    done
  done
  declare -A m=()
  for key in "${!runs[@]}"; do m[$key]=$(median ${runs[$key]}); done
  echo "| $c | ${m[hello]} | ${m[getex]} | ${m[sqlite]} | ${m[sqlite_nocache]} | ${m[pg]} | ${m[pg_nocache]} | ${m[redis]} | ${m[redis_nocache]} | $(ratio "${m[redis_nocache]}" "${m[getex]}") | $(ratio "${m[redis]}" "${m[hello]}") | $(ratio "${m[pg]}" "${m[hello]}") |"
done

echo
echo "### Revocation propagation between two instances ($SAMPLES logouts; from the logout's acknowledgement on A to B's first refusal)"
echo
for topology in pg redis; do
  take_port a_port; take_port b_port
  extra=$(pg_env "prop_$topology")
  [ "$topology" = redis ] && extra="$extra $(redis_env "prop_$topology")"
  start_tessera "prop_${topology}_a" "$a_port" $extra
  start_tessera "prop_${topology}_b" "$b_port" $extra
  result=$("$target/propagation" "http://127.0.0.1:$a_port" "http://127.0.0.1:$b_port" "$SAMPLES")
  echo "- $( [ "$topology" = pg ] && echo "PostgreSQL (LISTEN/NOTIFY)" || echo "PostgreSQL + Redis sessions (LISTEN/NOTIFY)" ): $result"
done

echo
echo "### Role-change propagation between two instances ($SAMPLES changes by \`tessera user roles\`; from the CLI's exit to B's first refusal of a JWT issued before it)"
echo
take_port a_port; take_port b_port
extra=$(pg_env prop_roles)
start_tessera prop_roles_a "$a_port" $extra
start_tessera prop_roles_b "$b_port" $extra
result=$(env $extra TESSERA__LOG__LEVEL=warn "$target/propagation" "http://127.0.0.1:$a_port" "http://127.0.0.1:$b_port" "$SAMPLES" --roles "$target/tessera")
echo "- PostgreSQL (LISTEN/NOTIFY): $result"
