#!/usr/bin/env bash
# Services using tessera-tower, measured side by side in one run:
#   1. GET /orders of the example service (examples/orders) behind the layer on a repeated
#      token, next to the same route with no authentication and behind jwt-authorizer;
#   2. never-seen tokens: the layer next to a plain jsonwebtoken verify (each request a fresh
#      token from a file of pre-minted ones, bench/fresh-tokens.lua);
#   3. revocation propagation Tessera -> service (p50/p99 over SAMPLES logouts), for each
#      value of Tessera's sessions.revocation_poll in POLLS;
#   4. the layer's memory with REVOCATIONS live revocations and as many cached tokens.
#
#   bash bench/tower.sh            # builds release binaries, prints Markdown tables
#
# Services are pinned to CPU 0; wrk and Tessera to CPU 1 (Tessera is idle while the services
# are measured: the layer makes no call per request). Needs: wrk, taskset, curl, sqlite3.
# Environment: DURATION (default 5s), CONNECTIONS (default "1 64"), RUNS (default 3; the
# median is reported), TOKENS_COUNT (default 300000), SAMPLES (default 200), POLLS (default
# "1s 50ms", 50ms being the least Tessera accepts), REVOCATIONS (default 100000), PORT_BASE (default 18280), PROFILE (default
# release; `PROFILE=dev` with small counts checks the script itself quickly — its figures
# mean nothing).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-"1 64"}
RUNS=${RUNS:-3}
TOKENS_COUNT=${TOKENS_COUNT:-300000}
SAMPLES=${SAMPLES:-200}
POLLS=${POLLS:-"1s 50ms"}
REVOCATIONS=${REVOCATIONS:-100000}
PORT_BASE=${PORT_BASE:-18280}
PROFILE=${PROFILE:-release}
for tool in wrk taskset curl sqlite3; do
  command -v "$tool" >/dev/null || { echo "bench/tower.sh needs $tool (apt-get install wrk util-linux curl sqlite3)" >&2; exit 1; }
done

cargo build --profile "$PROFILE" -q -p tessera-server -p orders-example -p tessera-bench-tower \
  --bin tessera --bin orders --bin tessera-bench-tower --bin tower-propagation --bin tower-memory \
  --example mint_tokens
# Its own workspace, but the same target directory, so its binary lands beside the others.
cargo build --profile "$PROFILE" -q --manifest-path bench/tower-authorizer/Cargo.toml \
  --target-dir "${CARGO_TARGET_DIR:-target}"
[ "$PROFILE" = dev ] && out=debug || out=$PROFILE
target=$(cd "${CARGO_TARGET_DIR:-target}/$out" && pwd)

work=$(mktemp -d)
pids=()
tessera_pid=
orders_pid=
cleanup() { for pid in "${pids[@]}" $tessera_pid $orders_pid; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_for() { for _ in $(seq 200); do curl -fs -o /dev/null "$@" 2>/dev/null && return 0; sleep 0.1; done; echo "no answer from $*" >&2; exit 1; }
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# One wrk run: prints requests/s, or fails on error responses or a repeated token.
run_wrk() {
  local connections=$1; shift
  local output
  output=$(taskset -c 1 wrk -t1 -c"$connections" -d"$DURATION" "$@" 2>&1)
  if grep -q 'Non-2xx\|TOKENS EXHAUSTED\|Socket errors' <<<"$output"; then echo "bad run: $output" >&2; exit 1; fi
  awk '/^Requests\/sec/ {print $2}' <<<"$output"
}

tessera_port=$PORT_BASE
none_port=$((PORT_BASE + 1))
orders_port=$((PORT_BASE + 2))
authorizer_port=$((PORT_BASE + 3))
plain_port=$((PORT_BASE + 4))
base="http://127.0.0.1:$tessera_port"
export TESSERA__LOG__LEVEL=warn TESSERA__TOKEN__ACCESS_TTL=1h TESSERA__SERVER__BIND="127.0.0.1:$tessera_port" \
  TESSERA__TOKEN__ISSUER="$base" TESSERA__TOKEN__AUDIENCE='["tessera", "orders"]'

start_tessera() { # [revocation_poll]
  if [ -n "$tessera_pid" ]; then kill "$tessera_pid"; wait "$tessera_pid" 2>/dev/null || true; fi
  (cd "$work" && TESSERA__SESSIONS__REVOCATION_POLL=${1:-1s} exec taskset -c 1 "$target/tessera" serve) & tessera_pid=$!
  wait_for "$base/healthz"
}
start_orders() { # a fresh process: its cache of verified tokens starts empty
  if [ -n "$orders_pid" ]; then kill "$orders_pid"; wait "$orders_pid" 2>/dev/null || true; fi
  TESSERA_URL="$base" ORDERS_BIND="127.0.0.1:$orders_port" RUST_LOG=warn \
    taskset -c 0 "$target/orders" >/dev/null 2>&1 & orders_pid=$!
  wait_for -H "authorization: Bearer $repeated" "http://127.0.0.1:$orders_port/orders"
}

(cd "$work" && "$target/tessera" init >/dev/null)
credentials=$(cd "$work" && "$target/tessera" client add orders)
export TESSERA_CLIENT_ID=$(sed -n 's/^client_id: *//p' <<<"$credentials")
export TESSERA_CLIENT_SECRET=$(sed -n 's/^client_secret: *//p' <<<"$credentials")
start_tessera
"$target/examples/mint_tokens" "$work" "$((TOKENS_COUNT + 1))" > "$work/minted.txt"
repeated=$(head -n1 "$work/minted.txt")
tail -n +2 "$work/minted.txt" > "$work/fresh.txt"
curl -fs "$base/.well-known/jwks.json" > "$work/jwks.json"
export TOKENS="$work/fresh.txt" TOKEN_PATH=/orders

taskset -c 0 "$target/tessera-bench-tower" "127.0.0.1:$none_port" none & pids+=($!)
taskset -c 0 "$target/tessera-bench-tower-authorizer" "127.0.0.1:$authorizer_port" "$base/.well-known/jwks.json" "$base" orders & pids+=($!)
taskset -c 0 "$target/tessera-bench-tower" "127.0.0.1:$plain_port" jsonwebtoken "$work/jwks.json" "$base" orders & pids+=($!)
start_orders
wait_for "http://127.0.0.1:$none_port/orders"
wait_for -H "authorization: Bearer $repeated" "http://127.0.0.1:$authorizer_port/orders"
wait_for -H "authorization: Bearer $repeated" "http://127.0.0.1:$plain_port/orders"

echo "### GET /orders, one core (median of $RUNS runs of $DURATION)"
echo
echo "| connections | no auth req/s | layer, repeated token req/s | jwt-authorizer, repeated token req/s | layer / no auth | layer / jwt-authorizer | jsonwebtoken, never-seen req/s | layer, never-seen req/s | layer / jsonwebtoken (never-seen) |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for c in $CONNECTIONS; do
  # Interleaved, so drift in the machine's speed touches every variant alike.
  nones=(); layers=(); authorizers=(); plains=(); freshes=()
  for _ in $(seq "$RUNS"); do
    nones+=("$(run_wrk "$c" "http://127.0.0.1:$none_port/orders")")
    layers+=("$(run_wrk "$c" -H "authorization: Bearer $repeated" "http://127.0.0.1:$orders_port/orders")")
    authorizers+=("$(run_wrk "$c" -H "authorization: Bearer $repeated" "http://127.0.0.1:$authorizer_port/orders")")
    plains+=("$(run_wrk "$c" -s bench/fresh-tokens.lua "http://127.0.0.1:$plain_port/orders")")
    start_orders
    freshes+=("$(run_wrk "$c" -s bench/fresh-tokens.lua "http://127.0.0.1:$orders_port/orders")")
  done
  none=$(median "${nones[@]}"); layer=$(median "${layers[@]}"); authorizer=$(median "${authorizers[@]}")
  plain=$(median "${plains[@]}"); fresh=$(median "${freshes[@]}")
  echo "| $c | $none | $layer | $authorizer | $(ratio "$layer" "$none") | $(ratio "$layer" "$authorizer") | $plain | $fresh | $(ratio "$fresh" "$plain") |"
done
echo

echo "### Revocation propagation Tessera -> service ($SAMPLES logouts each)"
echo
echo "| Tessera sessions.revocation_poll | result |"
echo "| --- | --- |"
for poll in $POLLS; do
  start_tessera "$poll"
  start_orders
  echo "| $poll | $("$target/tower-propagation" "$base" "http://127.0.0.1:$orders_port" "$SAMPLES") |"
done
echo

echo "### Memory of the layer: $REVOCATIONS live revocations, then as many cached tokens"
echo
# Live revocations straight into the revocation log (a login per session would take hours);
# the layer reads them through the feed like any others.
kill "$tessera_pid"; wait "$tessera_pid" 2>/dev/null || true; tessera_pid=
python3 - "$REVOCATIONS" > "$work/revocations.sql" <<'PY'
import base64, os, sys, time
now = int(time.time() * 1000)
new_id = lambda: base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")  # 128-bit ids, as Tessera's
user = new_id()
print("BEGIN;")
for _ in range(int(sys.argv[1])):
    print(f"INSERT INTO revocations (session_id, user_id, revoked_at) VALUES ('{new_id()}', '{user}', {now});")
print("COMMIT;")
PY
sqlite3 "$work/tessera-data/tessera.db" < "$work/revocations.sql"
start_tessera
head -n "$REVOCATIONS" "$work/fresh.txt" > "$work/memory-tokens.txt"
"$target/tower-memory" "$base" orders "$TESSERA_CLIENT_ID" "$TESSERA_CLIENT_SECRET" "$work/memory-tokens.txt"
