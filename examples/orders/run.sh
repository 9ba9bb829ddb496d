#!/usr/bin/env bash
# Runs the orders example against a local `tessera serve`, in one command:
#   examples/orders/run.sh
# Starts Tessera (SQLite under a temporary directory, tokens for the `orders` audience),
# registers the service's client, then runs the service on 127.0.0.1:3000. Try it with
#   curl -s localhost:8080/v1/users -H 'content-type: application/json' \
#        -d '{"username":"alice","password":"correct horse battery staple"}'
#   TOKEN=$(curl -s localhost:8080/v1/login -H 'content-type: application/json' \
#        -d '{"username":"alice","password":"correct horse battery staple","transport":"token"}' \
#        | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
#   curl -i localhost:3000/orders -H "authorization: Bearer $TOKEN"
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --quiet --manifest-path "$root/Cargo.toml" -p tessera-server -p orders-example
bin="${CARGO_TARGET_DIR:-$root/target}/debug"
data=$(mktemp -d)
export TESSERA__TOKEN__AUDIENCE='["tessera", "orders"]'
cd "$data"
"$bin/tessera" init
credentials=$("$bin/tessera" client add orders)
export TESSERA_CLIENT_ID=$(sed -n 's/^client_id: *//p' <<<"$credentials")
export TESSERA_CLIENT_SECRET=$(sed -n 's/^client_secret: *//p' <<<"$credentials")
"$bin/tessera" serve &
tessera=$!
trap 'kill $tessera ${orders:-} 2>/dev/null; rm -rf "$data"' EXIT INT TERM
until curl -sf localhost:8080/healthz >/dev/null; do sleep 0.2; done
"$bin/orders" &
orders=$!
wait $orders
