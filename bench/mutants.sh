#!/usr/bin/env bash
# Mutation testing (cargo-mutants) of the code a change touches: every function changed
# since BASE (default: main) in the files under mutation testing, each mutant run against
# the tests that are meant to catch it. Prints what cargo-mutants prints and exits non-zero
# if any mutant was missed or timed out (cargo-mutants' own exit codes: 2 missed, 3 timeout).
#
#   bash bench/mutants.sh [BASE]        # the change: `git diff BASE` (uncommitted edits too)
#   bash bench/mutants.sh --all         # every mutant of those files, not only changed ones
#
# Files and the tests run for their mutants (docs/reliability.md, "Mutation testing"):
#
#   crates/tessera-core/src/**          every tessera-core test (unit, tests/engine, doc)
#   crates/tessera-server/src/csrf.rs   tessera-server's unit tests (`--lib`): the CSRF and
#   crates/tessera-server/src/cookies.rs  cookie tests live beside the code
#
#   crates/tessera-store/src/<backend>/refresh.rs, crates/tessera-store/src/redis/scripts.rs
#                                       that backend's refresh and rotation tests, through
#                                       bench/store-mutants.sh (cargo-mutants on the whole
#                                       file, and hand-made mutants of its SQL or Lua; commit
#                                       the change first: it mutates the work tree)
#
# Changes elsewhere are listed and skipped: their crates' tests need PostgreSQL, Redis or a
# browser and are not yet scoped for mutation runs.
#
# Needs cargo-mutants (`cargo install cargo-mutants --locked`). One job at a time (builds are
# the cost, and the machine is shared). Each package is copied to a temporary directory and
# built there, so the work tree is never touched; MUTANTS_IN_PLACE=1 mutates the work tree
# itself and reuses its target directory instead (much faster for tessera-server; leave
# the tree alone while it runs). Output: target/mutants/<package>/mutants.out.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v cargo-mutants >/dev/null || {
    echo "cargo-mutants is missing: cargo install cargo-mutants --locked" >&2
    exit 2
}

all=false
base=main
case ${1:-} in
    --all) all=true ;;
    "") ;;
    *) base=$1 ;;
esac

out=$root/target/mutants
mkdir -p "$out"
diff=$out/change.diff
if ! $all; then
    git diff "$base" -- '*.rs' >"$diff"
    mapfile -t changed < <(git diff --name-only "$base" -- '*.rs')
    if [ ${#changed[@]} -eq 0 ]; then
        echo "no Rust changes since $base: nothing to mutate"
        exit 0
    fi
fi

place=(--jobs 1)
if [ "${MUTANTS_IN_PLACE:-0}" = 1 ]; then
    place=(--in-place)
fi

# run PACKAGE 'TEST ARGS' FILE...: one cargo-mutants run over FILEs, tests of PACKAGE.
status=0
run() {
    local package=$1 test_args=$2
    shift 2
    local files=() file
    for file in "$@"; do files+=(--file "$file"); done
    local scope=()
    $all || scope=(--in-diff "$diff")
    echo "== $package: $*" >&2
    # shellcheck disable=SC2086 # test_args is a word list on purpose
    cargo mutants --package "$package" "${files[@]}" "${scope[@]}" "${place[@]}" \
        --timeout 120 --output "$out/$package" -- $test_args || status=$?
}

core=()
server=()
stores=()
if $all; then
    stores=(memory sqlite postgres redis)
    core=(crates/tessera-core/src/engine/tokens.rs crates/tessera-core/src/session.rs
        crates/tessera-core/src/cache.rs crates/tessera-core/src/throttle.rs)
    server=(crates/tessera-server/src/csrf.rs crates/tessera-server/src/cookies.rs)
else
    for file in "${changed[@]}"; do
        case $file in
            crates/tessera-core/src/*) core+=("$file") ;;
            crates/tessera-server/src/csrf.rs | crates/tessera-server/src/cookies.rs)
                server+=("$file") ;;
            crates/tessera-store/src/redis/scripts.rs) stores+=(redis) ;;
            crates/tessera-store/src/*/refresh.rs)
                backend=${file#crates/tessera-store/src/}
                stores+=("${backend%%/*}") ;;
            */tests/* | */benches/* | examples/* | fuzz/* | bench/*) ;;
            *) echo "skipped (not under mutation testing): $file" >&2 ;;
        esac
    done
fi

[ ${#core[@]} -eq 0 ] || run tessera-core "" "${core[@]}"
[ ${#server[@]} -eq 0 ] || run tessera-server "--lib" "${server[@]}"
for backend in $(printf '%s\n' "${stores[@]}" | sort -u); do
    bash "$root/bench/store-mutants.sh" all "$backend" || status=$?
done
exit "$status"
