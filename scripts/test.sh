#!/usr/bin/env bash
# The whole test suite: unit, store conformance (memory, SQLite, PostgreSQL, Redis), HTTP
# through real sockets, CLI, several instances, doc tests, and the browser tests in headless
# Chromium; then the schema-driven check of the API document (scripts/schemathesis.sh).
# Usage: bash scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "scripts/test.sh: cargo is missing; install Rust with rustup (https://rustup.rs)" >&2; exit 1; }

# The browser tests drive Debian's chromium through its chromedriver. TESSERA_CHROMIUM and
# TESSERA_CHROMEDRIVER point the tests at other binaries.
chromium="${TESSERA_CHROMIUM:-/usr/bin/chromium}"
chromedriver="${TESSERA_CHROMEDRIVER:-/usr/bin/chromedriver}"

missing_browser() {
    local missing=()
    [ -x "$chromium" ] || missing+=("$chromium (Debian package chromium)")
    [ -x "$chromedriver" ] || missing+=("$chromedriver (Debian package chromium-driver)")
    if [ "${#missing[@]}" -gt 0 ]; then
        printf '%s\n' "${missing[@]}"
    fi
}

if [ -n "$(missing_browser)" ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "scripts/test.sh: installing chromium and chromium-driver for the browser tests" >&2
        export DEBIAN_FRONTEND=noninteractive
        # A stale package list is the usual reason an install fails: refresh it and retry.
        apt-get install -y -qq chromium chromium-driver >/dev/null \
            || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; } \
            || true
    fi
    still_missing="$(missing_browser)"
    if [ -n "$still_missing" ]; then
        {
            echo "scripts/test.sh: the browser tests need headless Chromium and chromedriver; missing:"
            echo "$still_missing" | sed 's/^/  - /'
            echo "Install them with:  sudo apt-get install chromium chromium-driver"
            echo "(or set TESSERA_CHROMIUM and TESSERA_CHROMEDRIVER to binaries you have)."
        } >&2
        exit 1
    fi
fi

# The store and scale-out tests run against a real PostgreSQL and Redis. Start the machine's
# own if they are installed but stopped; otherwise say exactly what is missing.
pg_url=${TESSERA_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
redis_url=${TESSERA_TEST_REDIS_URL:-redis://127.0.0.1:6379}
postgres_up() { psql "$pg_url" -qAtc 'select 1' >/dev/null 2>&1; }
redis_up() { [ "$(redis-cli -u "$redis_url" ping 2>/dev/null)" = PONG ]; }
if command -v psql >/dev/null && ! postgres_up && [ -z "${TESSERA_TEST_POSTGRES_URL:-}" ] \
  && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  echo "scripts/test.sh: starting the local PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 50); do postgres_up && break; sleep 0.2; done
fi
if ! command -v psql >/dev/null || ! postgres_up; then
  echo "scripts/test.sh: PostgreSQL is not reachable at $pg_url." >&2
  echo "  Install and start it (Debian: apt-get install postgresql; pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start)" >&2
  echo "  with trust auth for user postgres on 127.0.0.1, or set TESSERA_TEST_POSTGRES_URL." >&2
  exit 1
fi
if command -v redis-cli >/dev/null && ! redis_up && [ -z "${TESSERA_TEST_REDIS_URL:-}" ] \
  && command -v redis-server >/dev/null; then
  echo "scripts/test.sh: starting a local Redis" >&2
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  for _ in $(seq 50); do redis_up && break; sleep 0.2; done
fi
if ! command -v redis-cli >/dev/null || ! redis_up; then
  echo "scripts/test.sh: Redis is not reachable at $redis_url." >&2
  echo "  Install and start it (Debian: apt-get install redis-server; redis-server --daemonize yes --port 6379 --save \"\" --appendonly no)," >&2
  echo "  or set TESSERA_TEST_REDIS_URL. The hang test also needs redis-server on the PATH." >&2
  exit 1
fi
command -v redis-server >/dev/null || { echo "scripts/test.sh: redis-server is missing (apt-get install redis-server); the Redis hang tests start their own" >&2; exit 1; }

# The cargo tests, then the schema-driven run of the API document against a real server
# (scripts/schemathesis.sh); both run whatever the other's outcome, and either failing fails.
cargo_status=0
cargo test --workspace --all-features --locked "$@" || cargo_status=$?
schemathesis_status=0
bash scripts/schemathesis.sh || schemathesis_status=$?
if [ "$cargo_status" -ne 0 ] || [ "$schemathesis_status" -ne 0 ]; then
    echo "scripts/test.sh: failed (cargo test: $cargo_status, scripts/schemathesis.sh: $schemathesis_status)" >&2
    exit 1
fi
