#!/usr/bin/env bash
# Two builds of Tessera side by side in one run: GET /v1/session with a cookie and with a
# JWT seen before, each server pinned to CPU 0 and wrk to CPU 1, runs interleaved so drift in
# the machine's speed touches both builds alike. For "did this change slow the hot path?".
#
#   bash bench/compare.sh BEFORE_BINARY AFTER_BINARY
#
# e.g. build the old commit in a worktree (`git worktree add /tmp/old <rev>`, then
# `cargo build --release -p tessera-server` there) and compare with target/release/tessera.
# Needs: wrk, taskset, curl. Environment: DURATION (default 5s), CONNECTIONS (default
# "1 64"), RUNS (default 5; the median is reported), PORT_BASE (default 18180).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: bash bench/compare.sh BEFORE_BINARY AFTER_BINARY" >&2; exit 2; }
before=$(realpath "$1"); after=$(realpath "$2")
source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-"1 64"}
RUNS=${RUNS:-5}
PORT_BASE=${PORT_BASE:-18180}
require wrk taskset curl

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# start NAME BINARY PORT: a server in its own data directory; sets COOKIE_<NAME>, JWT_<NAME>.
start() {
  local name=$1 binary=$2 port=$3 base
  mkdir -p "$work/$name"
  (cd "$work/$name" && TESSERA__LOG__LEVEL=warn TESSERA__TOKEN__ACCESS_TTL=1h \
    taskset -c 0 "$binary" serve --bind "127.0.0.1:$port") & pids+=($!)
  base="http://127.0.0.1:$port"
  wait_for "$base/healthz"
  curl -fs -o /dev/null -H 'content-type: application/json' \
    -d '{"username":"bench","password":"correct horse battery staple"}' "$base/v1/users"
  local cookie jwt
  cookie=$(curl -fs -D - -o /dev/null -H 'content-type: application/json' \
    -d '{"username":"bench","password":"correct horse battery staple"}' "$base/v1/login" \
    | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p')
  jwt=$(curl -fs -H 'content-type: application/json' \
    -d '{"username":"bench","password":"correct horse battery staple","transport":"token"}' "$base/v1/login" \
    | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  [ -n "$cookie" ] && [ -n "$jwt" ] || { echo "$name: login failed" >&2; exit 1; }
  printf -v "COOKIE_$name" '%s' "$cookie"
  printf -v "JWT_$name" '%s' "$jwt"
}

start before "$before" "$PORT_BASE"
start after "$after" "$((PORT_BASE + 1))"
url_before="http://127.0.0.1:$PORT_BASE/v1/session"
url_after="http://127.0.0.1:$((PORT_BASE + 1))/v1/session"

echo "| connections | check | before req/s | after req/s | after ÷ before |"
echo "| ---: | --- | ---: | ---: | ---: |"
for c in $CONNECTIONS; do
  cb=(); ca=(); jb=(); ja=()
  for _ in $(seq "$RUNS"); do
    cb+=("$(run_wrk "$c" -H "cookie: $COOKIE_before" "$url_before")")
    ca+=("$(run_wrk "$c" -H "cookie: $COOKIE_after" "$url_after")")
    jb+=("$(run_wrk "$c" -H "authorization: Bearer $JWT_before" "$url_before")")
    ja+=("$(run_wrk "$c" -H "authorization: Bearer $JWT_after" "$url_after")")
  done
  for kind in cookie jwt; do
    if [ "$kind" = cookie ]; then b=$(median "${cb[@]}"); a=$(median "${ca[@]}"); label="cookie";
    else b=$(median "${jb[@]}"); a=$(median "${ja[@]}"); label="JWT seen before"; fi
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')
    echo "| $c | $label | $b | $a | $ratio |"
  done
done
