#!/usr/bin/env bash
# Mutation testing of each store's refresh-token rotation (issue 16, item 9), against that
# backend's own tests (the conformance suite's refresh and rotation cases, on the real
# PostgreSQL and Redis for those two):
#
#   1. cargo-mutants on crates/tessera-store/src/{memory,sqlite,postgres,redis}/refresh.rs;
#   2. hand-made mutants of what cargo-mutants cannot reach — the SQL statements and the Lua
#      script that do the rotation are strings to it — each applied to the work tree, tested,
#      and reverted: a mutant is caught when the backend's tests fail, unviable when it does
#      not build.
#
#   bash bench/store-mutants.sh                 # both parts, every backend
#   bash bench/store-mutants.sh hand            # only the hand-made mutants
#   bash bench/store-mutants.sh cargo [BACKEND] # only cargo-mutants (memory|sqlite|postgres|redis)
#
# Mutates the work tree in place (and reuses its target directory): leave the tree alone while
# it runs; every file is restored afterwards, also on Ctrl-C. Needs cargo-mutants
# (`cargo install cargo-mutants --locked`) and the PostgreSQL and Redis the test command
# uses (TESSERA_TEST_POSTGRES_URL, TESSERA_TEST_REDIS_URL; defaults 127.0.0.1). Exits
# non-zero if a mutant was missed. Output: target/mutants-store/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
part=${1:-all}
only=${2:-}
out=$root/target/mutants-store
mkdir -p "$out"
status=0

# test_args BACKEND: the cargo test arguments that run BACKEND's refresh and rotation cases.
test_args() {
  case $1 in
    memory | sqlite) echo "--test conformance -- refresh rotation" ;;
    postgres) echo "--features postgres --test postgres -- refresh rotation" ;;
    redis) echo "--features redis --test redis -- refresh rotation" ;;
  esac
}

run_cargo_mutants() {
  command -v cargo-mutants >/dev/null || {
    echo "cargo-mutants is missing: cargo install cargo-mutants --locked" >&2
    exit 2
  }
  local backend
  for backend in memory sqlite postgres redis; do
    [ -n "$only" ] && [ "$only" != "$backend" ] && continue
    echo "== cargo-mutants: $backend" >&2
    # Excluded as equivalent: with the flags 1 and 2, `SPENT | HAS_SUCCESSOR` and `SPENT ^
    # HAS_SUCCESSOR` are both 3 (docs/reliability.md).
    # shellcheck disable=SC2046 # the argument list is split on purpose
    cargo mutants --package tessera-store --file "crates/tessera-store/src/$backend/refresh.rs" \
      --exclude-re 'replace \| with \^ in <impl RefreshStore for RedisStore>::rotate_refresh' \
      --in-place --timeout 180 --output "$out/$backend" -- $(test_args "$backend") || status=$?
  done
}

# Hand-made mutants: BACKEND|FILE|what it breaks|the text|its replacement.
hand_mutants=(
  "memory|crates/tessera-store/src/memory/refresh.rs|a spent parent rotates again|if let Some(spent_at) = record.spent_at {|if let Some(spent_at) = None::<Timestamp> {"
  "memory|crates/tessera-store/src/memory/refresh.rs|the parent forgets its successor|record.successor_hash = Some(successor.token_hash);|let _ = successor.token_hash;"
  "sqlite|crates/tessera-store/src/sqlite/refresh.rs|a spent parent rotates again|WHERE token_hash = ?1 AND spent_at IS NULL|WHERE token_hash = ?1"
  "sqlite|crates/tessera-store/src/sqlite/refresh.rs|the parent forgets its successor|SET spent_at = ?2, successor_hash = ?3|SET spent_at = ?2, successor_hash = NULL"
  "sqlite|crates/tessera-store/src/sqlite/refresh.rs|a successor conflict still spends the parent|sql::insert(insert(successor), &mut *tx).await?;|let _ = sql::insert(insert(successor), &mut *tx).await;"
  "postgres|crates/tessera-store/src/postgres/refresh.rs|a spent parent rotates again|WHERE token_hash = \$10 AND spent_at IS NULL RETURNING|WHERE token_hash = \$10 RETURNING"
  "postgres|crates/tessera-store/src/postgres/refresh.rs|the parent forgets its successor|SET spent_at = \$9, successor_hash = \$1 |SET spent_at = \$9, successor_hash = NULL "
  "postgres|crates/tessera-store/src/postgres/refresh.rs|the wrong record reported as the successor|ON successor.token_hash = parent.successor_hash |ON successor.token_hash = parent.token_hash "
  "redis|crates/tessera-store/src/redis/scripts.rs|a spent parent rotates again|if flags % 2 == 1 then|if false then"
  "redis|crates/tessera-store/src/redis/scripts.rs|a successor conflict overwrites the other record|if redis.call('EXISTS', KEYS[2]) == 1 then return {2, false, false} end|"
  "redis|crates/tessera-store/src/redis/scripts.rs|the parent is never marked spent|redis.call('SETRANGE', KEYS[1], R_FLAGS - 1, ARGV[3])|"
  "redis|crates/tessera-store/src/redis/scripts.rs|a spent parent reports no successor|successor = redis.call('GET', ARGV[4] .. T_REFRESH .. hash)|successor = false"
)

mutated=
restore() { [ -n "$mutated" ] && git checkout -q -- "$mutated"; mutated=; }
trap restore EXIT INT TERM

run_hand_mutants() {
  local entry backend file what from to log result caught=0 missed=0 unviable=0
  local table=$out/hand.md
  printf '| backend | mutant | result |\n| --- | --- | --- |\n' > "$table"
  for entry in "${hand_mutants[@]}"; do
    IFS='|' read -r backend file what from to <<< "$entry"
    [ -n "$only" ] && [ "$only" != "$backend" ] && continue
    git diff --quiet -- "$file" || { echo "$file has uncommitted changes: not mutating it" >&2; exit 2; }
    FROM=$from TO=$to python3 - "$file" <<'EOF'
import os, sys
path = sys.argv[1]
text = open(path).read()
old, new = os.environ["FROM"], os.environ["TO"]
assert text.count(old) == 1, f"{path}: the mutated text is not found exactly once: {old!r}"
open(path, "w").write(text.replace(old, new))
EOF
    mutated=$file
    log=$out/hand-$backend-$(echo "$what" | tr -c 'a-z0-9' '-').log
    # shellcheck disable=SC2046
    if ! cargo test -q -p tessera-store --no-run $(test_args "$backend" | sed 's/ -- .*//') > "$log" 2>&1; then
      result=unviable; unviable=$((unviable + 1))
    # shellcheck disable=SC2046
    elif timeout 300 cargo test -q -p tessera-store $(test_args "$backend") >> "$log" 2>&1; then
      result="**missed**"; missed=$((missed + 1)); status=2
    else
      result=caught; caught=$((caught + 1))
    fi
    restore
    echo "$backend: $what: $result" >&2
    printf '| %s | %s | %s |\n' "$backend" "$what" "$result" >> "$table"
  done
  echo "hand-made mutants: $caught caught, $missed missed, $unviable unviable ($table)" >&2
}

case $part in
  all) run_cargo_mutants; run_hand_mutants ;;
  cargo) run_cargo_mutants ;;
  hand) run_hand_mutants ;;
  *) echo "usage: bash bench/store-mutants.sh [all|cargo|hand] [BACKEND]" >&2; exit 2 ;;
esac
exit "$status"
