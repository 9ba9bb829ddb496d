#!/usr/bin/env bash
# The seeds' microservice story in one command:
#   examples/story/run.sh
# Starts Tessera (SQLite under a temporary directory), registers the billing and cart
# services and their clients, then runs billing on 127.0.0.1:3001 and cart on 127.0.0.1:3002,
# and walks the story once with curl: log in, a one-time refund (accepted once, refused
# again), a cart session of the cart's own, logout at Tessera ending it. Set KEEP=1 to leave
# everything running afterwards (Ctrl-C stops it).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --quiet --manifest-path "$root/Cargo.toml" -p tessera-server -p story-example
bin="${CARGO_TARGET_DIR:-$root/target}/debug"
data=$(mktemp -d)
cd "$data"
"$bin/tessera" init >/dev/null
"$bin/tessera" service add billing --audience https://billing.example \
    --scope 'invoices:read' --scope 'refund' --max-ttl 2m
"$bin/tessera" service add cart --audience https://cart.example --scope cart --sessions
field() { sed -n "s/^$1: *//p"; }
billing=$("$bin/tessera" client add billing)
cart=$("$bin/tessera" client add cart)
export BILLING_CLIENT_ID=$(field client_id <<<"$billing") BILLING_CLIENT_SECRET=$(field client_secret <<<"$billing")
export CART_CLIENT_ID=$(field client_id <<<"$cart") CART_CLIENT_SECRET=$(field client_secret <<<"$cart")
"$bin/tessera" serve >/dev/null 2>&1 &
pids=($!)
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$data"' EXIT INT TERM
until curl -sf localhost:8080/healthz >/dev/null; do sleep 0.2; done
"$bin/billing" & pids+=($!)
"$bin/cart" & pids+=($!)
until curl -s -o /dev/null localhost:3001/invoices; do sleep 0.2; done
until curl -s -o /dev/null localhost:3002/cart; do sleep 0.2; done

T=http://localhost:8080
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
exchange() { curl -s $T/v1/token -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \
    -d subject_token_type=urn:ietf:params:oauth:token-type:access_token "$@"; }
curl -s $T/v1/users -H 'content-type: application/json' \
    -d '{"username":"alice","password":"correct horse battery staple"}' >/dev/null
ACCESS=$(curl -s $T/v1/login -H 'content-type: application/json' \
    -d '{"username":"alice","password":"correct horse battery staple","transport":"token"}' | json '["access_token"]')

echo "== a one-time refund token, used once, then refused"
REFUND=$(exchange -d subject_token="$ACCESS" -d audience=https://billing.example \
    -d requested_token_type=urn:ietf:params:oauth:token-type:txn_token -d scope=refund | json '["access_token"]')
curl -s -o /dev/null -w 'void with a refund token: %{http_code}\n' -X POST localhost:3001/invoices/void -H "authorization: Bearer $REFUND"
curl -s -w ' (%{http_code})\n' -X POST localhost:3001/refunds -H "authorization: Bearer $REFUND"
curl -s -o /dev/null -w 'the same token again: %{http_code}\n' -X POST localhost:3001/refunds -H "authorization: Bearer $REFUND"

echo "== a cart session of the cart's own"
CART_ACCESS=$(exchange -d subject_token="$ACCESS" -d audience=https://cart.example | json '["access_token"]')
curl -s -D headers.txt -X POST localhost:3002/session -H "authorization: Bearer $CART_ACCESS" >/dev/null
COOKIE=$(sed -n 's/^set-cookie: \([^;]*\);.*/\1/Ip' headers.txt)
curl -s -w ' (%{http_code})\n' localhost:3002/cart -H "cookie: $COOKIE"

echo "== logout at Tessera ends the cart session"
curl -s -o /dev/null -X POST $T/v1/logout -H "authorization: Bearer $ACCESS"
sleep 0.5
curl -s -o /dev/null -w 'the cart cookie after logout: %{http_code}\n' localhost:3002/cart -H "cookie: $COOKIE"
if [ "${KEEP:-0}" = 1 ]; then wait; fi
