#!/usr/bin/env bash
# Login flood isolation: the latency of the cookie check (GET /v1/session) alone, then while
# LOGINS clients log in back to back — half with the right password, half with a wrong one —
# so every password-hashing slot is busy and the hashing queue (auth.hash_queue, 64) is full;
# and the login answers by status with their latency (beyond the queue: 503 server_busy with
# Retry-After, at once).
#
#   bash bench/login-flood.sh        # prints Markdown tables
#
# One Tessera on SQLite, on both cores (hash_concurrency = CPUs - 1, the default), the load client
# unpinned beside it. The login throttle is raised out of the way (it would otherwise refuse
# the wrong passwords with 429 before any hashing, which is its job but not what is measured
# here). Needs: curl. Environment: LOGINS (128), CHECKERS (4), CHECK_EVERY (10ms: each
# checker's interval), DURATION (20s, each phase), PORT (18680).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

LOGINS=${LOGINS:-128}
CHECKERS=${CHECKERS:-4}
CHECK_EVERY=${CHECK_EVERY:-10ms}
DURATION=${DURATION:-20s}
PORT=${PORT:-18680}
require curl

cargo build --release -q -p tessera-server -p tessera-bench-hello --bin tessera --bin load
target=$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)

work=$(mktemp -d)
tessera_pid=
cleanup() { [ -n "$tessera_pid" ] && kill "$tessera_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

(cd "$work" && exec env TESSERA__LOG__LEVEL=warn \
  TESSERA__RATELIMIT__ACCOUNT_FAILURES=100000000 TESSERA__RATELIMIT__ADDRESS_FAILURES=100000000 \
  "$target/tessera" serve --bind "127.0.0.1:$PORT") &
tessera_pid=$!
wait_for "http://127.0.0.1:$PORT/healthz"

echo "### $LOGINS concurrent logins, $CHECKERS session checkers every $CHECK_EVERY, $DURATION per phase"
echo
"$target/load" flood --target "http://127.0.0.1:$PORT" --logins "$LOGINS" --checkers "$CHECKERS" \
  --check-every "$CHECK_EVERY" --duration "$DURATION"
