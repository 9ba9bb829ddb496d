#!/usr/bin/env bash
# HTTP benchmark: GET /v1/session with a JWT the server has NEVER seen (each request carries a
# fresh token, so every one pays for a full EdDSA signature check), next to the plain way of
# doing it — axum + jsonwebtoken (aws-lc) verifying the same tokens with no revocation check —
# and a bare axum hello-world, interleaved in one run.
#
#   bash bench/jwt-fresh.sh            # builds release binaries, prints a Markdown table
#
# Servers are pinned to CPU 0 and wrk to CPU 1. Tessera is restarted before each of its runs,
# so its cache of verified tokens starts empty. Needs: wrk, taskset, curl.
# Environment: DURATION (default 5s), CONNECTIONS (default "1 64"), RUNS (default 3; the
# median is reported), TOKENS_COUNT (default 300000), PORT_BASE (default 18180).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-"1 64"}
RUNS=${RUNS:-3}
TOKENS_COUNT=${TOKENS_COUNT:-300000}
PORT_BASE=${PORT_BASE:-18180}
for tool in wrk taskset curl; do
  command -v "$tool" >/dev/null || { echo "bench/jwt-fresh.sh needs $tool (apt-get install wrk util-linux curl)" >&2; exit 1; }
done

cargo build --release -q -p tessera-server -p tessera-bench-hello --bin tessera --bin tessera-bench-hello --example mint_tokens
target=$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)

work=$(mktemp -d)
pids=()
tessera_pid=
cleanup() { for pid in "${pids[@]}" $tessera_pid; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_for() { for _ in $(seq 100); do curl -fs -o /dev/null "$@" 2>/dev/null && return 0; sleep 0.1; done; echo "no answer from $*" >&2; exit 1; }

hello_port=$PORT_BASE
plain_port=$((PORT_BASE + 1))
tessera_port=$((PORT_BASE + 2))
base="http://127.0.0.1:$tessera_port"
export TESSERA__LOG__LEVEL=warn TESSERA__TOKEN__ACCESS_TTL=1h TESSERA__SERVER__BIND="127.0.0.1:$tessera_port"

start_tessera() {
  if [ -n "$tessera_pid" ]; then kill "$tessera_pid"; wait "$tessera_pid" 2>/dev/null || true; fi
  (cd "$work" && exec taskset -c 0 "$target/tessera" serve) & tessera_pid=$!
  wait_for "$base/healthz"
}

start_tessera
"$target/examples/mint_tokens" "$work" "$TOKENS_COUNT" > "$work/tokens.txt"
curl -fs "$base/.well-known/jwks.json" > "$work/jwks.json"
export TOKENS="$work/tokens.txt"
sample=$(head -n1 "$TOKENS")

taskset -c 0 "$target/tessera-bench-hello" "127.0.0.1:$hello_port" axum-serve & pids+=($!)
taskset -c 0 "$target/tessera-bench-hello" "127.0.0.1:$plain_port" jwt "$work/jwks.json" "$base" tessera & pids+=($!)
wait_for "http://127.0.0.1:$hello_port/"
wait_for -H "authorization: Bearer $sample" "http://127.0.0.1:$plain_port/v1/session"
wait_for -H "authorization: Bearer $sample" "$base/v1/session"

# One wrk run: prints requests/s, or fails on error responses or a repeated token.
run_wrk() {
  local connections=$1; shift
  local output
  output=$(taskset -c 1 wrk -t1 -c"$connections" -d"$DURATION" "$@" 2>&1)
  if grep -q 'Non-2xx\|TOKENS EXHAUSTED' <<<"$output"; then echo "bad run: $output" >&2; exit 1; fi
  awk '/^Requests\/sec/ {print $2}' <<<"$output"
}

median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }

echo "| connections | hello (axum::serve) req/s | axum + jsonwebtoken, never-seen JWT req/s | Tessera, never-seen JWT req/s | Tessera / plain verifier | plain verifier / hello | Tessera / hello |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for c in $CONNECTIONS; do
  hellos=(); plains=(); tesseras=()
  for _ in $(seq "$RUNS"); do
    hellos+=("$(run_wrk "$c" "http://127.0.0.1:$hello_port/")")
    plains+=("$(run_wrk "$c" -s bench/fresh-tokens.lua "http://127.0.0.1:$plain_port/v1/session")")
    start_tessera
    tesseras+=("$(run_wrk "$c" -s bench/fresh-tokens.lua "$base/v1/session")")
  done
  hello=$(median "${hellos[@]}"); plain=$(median "${plains[@]}"); tessera=$(median "${tesseras[@]}")
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
  echo "| $c | $hello | $plain | $tessera | $(ratio "$tessera" "$plain") | $(ratio "$plain" "$hello") | $(ratio "$tessera" "$hello") |"
done
