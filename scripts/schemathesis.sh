#!/usr/bin/env bash
# Schema-driven test of the API document: schemathesis (from PyPI) generates requests from
# GET /openapi.json of a real `tessera serve` and checks that every answer's status, content
# type and body are the ones the document declares, and that none is a 5xx.
#
# Usage: bash scripts/schemathesis.sh [extra `schemathesis run` arguments]
#   TESSERA_BIN              the tessera binary to test (default: built here with cargo)
#   SCHEMATHESIS_EXAMPLES    generated cases per operation and phase (default: 10)
#   SCHEMATHESIS_SEED        the random seed (default: a fixed one, so runs repeat)
# Installs schemathesis into a virtualenv under the cargo target directory on first use; if
# that cannot be done it says what is missing and fails: it never skips.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
target_dir=${CARGO_TARGET_DIR:-target}
venv="$target_dir/schemathesis-venv"
examples=${SCHEMATHESIS_EXAMPLES:-10}
seed=${SCHEMATHESIS_SEED:-20240611}

fail() { echo "scripts/schemathesis.sh: $*" >&2; exit 1; }

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    command -v python3 >/dev/null \
        || fail "python3 is missing; install Python 3.9 or later (Debian: apt-get install python3 python3-venv)"
    python3 -c 'import venv, ensurepip' 2>/dev/null \
        || fail "python3 cannot make a virtualenv with pip; install the venv module (Debian: apt-get install python3-venv)"
    echo "scripts/schemathesis.sh: installing schemathesis $SCHEMATHESIS_VERSION into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" || fail "could not create the virtualenv $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
        || fail "could not install schemathesis==$SCHEMATHESIS_VERSION from PyPI into $venv (is PyPI reachable? a proxy in PIP_INDEX_URL?)"
fi
python="$venv/bin/python"

if [ -z "${TESSERA_BIN:-}" ]; then
    command -v cargo >/dev/null || fail "cargo is missing (install Rust with rustup), or set TESSERA_BIN"
    cargo build --quiet --locked --all-features -p tessera-server --bin tessera || fail "could not build tessera"
    TESSERA_BIN="$target_dir/debug/tessera"
fi
[ -x "$TESSERA_BIN" ] || fail "no tessera binary at $TESSERA_BIN"

work=$(mktemp -d)
server_pid=
stop() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap stop EXIT

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
export TESSERA__DATABASE__URL="sqlite://$work/tessera.db"
export TESSERA__AUTH__REGISTRATION=true
# /metrics on the main listener, behind a token, so its 200 and 401 are both reachable.
metrics_token=$("$python" -c 'import secrets; print(secrets.token_urlsafe(32))')
export TESSERA__METRICS__BEARER_TOKEN="$metrics_token"
export NO_COLOR=1

"$TESSERA_BIN" serve --bind "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
up=
for _ in $(seq 100); do
    if "$python" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$base/readyz" 2>/dev/null; then
        up=1
        break
    fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.2
done
[ -n "$up" ] || { cat "$work/server.log" >&2; fail "tessera serve did not become ready on $base"; }

# Users whose bearer tokens authenticate the session routes: one for the routes that only
# read or revoke by id, and one each for logout and "revoke my sessions", so those ending
# their sessions leave the others' routes reachable. And an API client for the
# introspection endpoint and the revocation feed.
password="schemathesis correct horse battery"
login() {
    printf '%s\n' "$password" | "$TESSERA_BIN" user add "$1" >/dev/null \
        || fail "could not create the test user $1"
    "$python" - "$base" "$1" "$password" <<'EOF'
import json, sys, urllib.request
base, username, password = sys.argv[1:]
body = json.dumps({"username": username, "password": password, "transport": "token"}).encode()
request = urllib.request.Request(base + "/v1/login", data=body, headers={"Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(request, timeout=30))["access_token"])
EOF
}
reader=$(login reader) || fail "could not log the test user reader in"
leaver=$(login leaver) || fail "could not log the test user leaver in"
revoker=$(login revoker) || fail "could not log the test user revoker in"
client=$("$TESSERA_BIN" client add schemathesis) || fail "could not create the API client"
client_id=$(printf '%s\n' "$client" | sed -n 's/^client_id: *//p')
client_secret=$(printf '%s\n' "$client" | sed -n 's/^client_secret: *//p')
[ -n "$client_id" ] && [ -n "$client_secret" ] || fail "could not read the API client's credentials"
basic=$(printf '%s:%s' "$client_id" "$client_secret" | base64 -w0)

# Per-operation credentials, as above; the metrics token for /metrics. The revocation stream
# gets none: with them it answers an event stream that does not end.
cat >"$work/schemathesis.toml" <<EOF
[[operations]]
include-name-regex = "^(GET /v1/sessions?|DELETE /v1/sessions/\\\\{id\\\\})$"
headers = { Authorization = "Bearer $reader" }

[[operations]]
include-name = "POST /v1/logout"
headers = { Authorization = "Bearer $leaver" }

[[operations]]
include-name = "DELETE /v1/sessions"
headers = { Authorization = "Bearer $revoker" }

[[operations]]
include-name-regex = "^(POST /v1/introspect|GET /v1/revocations)$"
headers = { Authorization = "Basic $basic" }

[[operations]]
include-name = "GET /metrics"
headers = { Authorization = "Bearer $metrics_token" }
EOF

# One worker: with two, CPython 3.11's parser is not thread-safe under hypothesis (it fails
# with "AST constructor recursion depth mismatch"), and one is fast enough.
started=$(date +%s)
status=0
"$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$base/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$examples" \
    --seed "$seed" \
    --workers 1 \
    --request-timeout 10 \
    --suppress-health-check all \
    --no-color \
    "$@" || status=$?
echo "scripts/schemathesis.sh: schemathesis finished in $(($(date +%s) - started)) s with status $status" >&2
if [ "$status" -ne 0 ]; then
    echo "scripts/schemathesis.sh: server log (last 40 lines):" >&2
    tail -n 40 "$work/server.log" >&2
fi
exit "$status"
