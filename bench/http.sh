#!/usr/bin/env bash
# HTTP benchmark: GET /v1/session with a valid cookie and with a JWT access token, next to a
# bare axum hello-world, measured the same way in the same run.
#
#   bash bench/http.sh            # builds release binaries, prints a Markdown table
#
# Each server is pinned to CPU 0 and the load generator (wrk) to CPU 1, so the numbers say
# what one core of server does. Needs: wrk (apt-get install wrk), taskset, curl.
# Environment: DURATION (default 10s), CONNECTIONS (default "1 64"), RUNS (default 3; the
# median run is reported), PORT_BASE (default 18080).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-"1 64"}
RUNS=${RUNS:-3}
PORT_BASE=${PORT_BASE:-18080}
require wrk taskset curl

cargo build --release -q -p tessera-server -p tessera-bench-hello
target=${CARGO_TARGET_DIR:-target}/release

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

hello_port=$PORT_BASE
tessera_port=$((PORT_BASE + 1))
hello1_port=$((PORT_BASE + 2))
taskset -c 0 "$target/tessera-bench-hello" "127.0.0.1:$hello_port" axum-serve & pids+=($!)
taskset -c 0 "$target/tessera-bench-hello" "127.0.0.1:$hello1_port" http1 & pids+=($!)
# A one-hour access token, so the JWT measured stays valid for the whole run.
(cd "$work" && TESSERA__LOG__LEVEL=warn TESSERA__TOKEN__ACCESS_TTL=1h taskset -c 0 "$OLDPWD/$target/tessera" serve --bind "127.0.0.1:$tessera_port") & pids+=($!)
wait_for "http://127.0.0.1:$hello_port/"
wait_for "http://127.0.0.1:$hello1_port/"
wait_for "http://127.0.0.1:$tessera_port/healthz"

base="http://127.0.0.1:$tessera_port"
curl -fs -o /dev/null -H 'content-type: application/json' \
  -d '{"username":"bench","password":"correct horse battery staple"}' "$base/v1/users"
cookie=$(curl -fs -D - -o /dev/null -H 'content-type: application/json' \
  -d '{"username":"bench","password":"correct horse battery staple"}' "$base/v1/login" \
  | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p')
[ -n "$cookie" ] || { echo "login failed" >&2; exit 1; }
curl -fs -o /dev/null -H "cookie: $cookie" "$base/v1/session"
jwt=$(curl -fs -H 'content-type: application/json' \
  -d '{"username":"bench","password":"correct horse battery staple","transport":"token"}' "$base/v1/login" \
  | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
curl -fs -o /dev/null -H "authorization: Bearer $jwt" "$base/v1/session"

echo "| connections | hello (axum::serve) req/s | hello (Tessera's accept loop) req/s | GET /v1/session (cookie, SQLite) req/s | cookie ratio to axum::serve hello | cookie ratio to same-loop hello | GET /v1/session (JWT seen before) req/s | JWT ratio to axum::serve hello |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for c in $CONNECTIONS; do
  # Interleaved, so drift in the machine's speed touches all three alike.
  hellos=(); hello1s=(); sessions=(); jwts=()
  for _ in $(seq "$RUNS"); do
    hellos+=("$(run_wrk "$c" "http://127.0.0.1:$hello_port/")")
    hello1s+=("$(run_wrk "$c" "http://127.0.0.1:$hello1_port/")")
    sessions+=("$(run_wrk "$c" -H "cookie: $cookie" "$base/v1/session")")
    jwts+=("$(run_wrk "$c" -H "authorization: Bearer $jwt" "$base/v1/session")")
  done
  hello=$(median "${hellos[@]}"); hello1=$(median "${hello1s[@]}")
  session=$(median "${sessions[@]}"); jwt_rate=$(median "${jwts[@]}")
  ratio=$(awk -v a="$session" -v b="$hello" 'BEGIN { printf "%.2f", a / b }')
  ratio1=$(awk -v a="$session" -v b="$hello1" 'BEGIN { printf "%.2f", a / b }')
  jwt_ratio=$(awk -v a="$jwt_rate" -v b="$hello" 'BEGIN { printf "%.2f", a / b }')
  echo "| $c | $hello | $hello1 | $session | $ratio | $ratio1 | $jwt_rate | $jwt_ratio |"
done
# A last check that the load was served, not refused.
status=$(curl -s -o /dev/null -w '%{http_code}' -H "cookie: $cookie" "$base/v1/session")
[ "$status" = 200 ] || { echo "the session was not valid after the run (status $status)" >&2; exit 1; }
