#!/usr/bin/env bash
# Builds every fuzz target of fuzz/ (cargo-fuzz: libFuzzer, AddressSanitizer, debug
# assertions and overflow checks on, optimized) and runs each for SECONDS_PER_TARGET
# (default 300), then prints per target: executions, crashes, timeouts, out-of-memory,
# leaks, RSS soon after start and at the end, peak RSS and coverage.
#
#   bench/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`). Each
# target writes its own seeds first (TESSERA_FUZZ_SEEDS, see fuzz/src/seeds.rs); the config
# target also gets every ```toml block of README.md and docs/. The corpus grows in
# $TESSERA_FUZZ_WORK (default: $CARGO_TARGET_DIR/fuzz-work), kept between runs; findings
# land in its artifacts/ directory and make the script exit non-zero.
#
# Limits per run: -rss_limit_mb=2048 (an input that needs more is an out-of-memory
# finding), -timeout=10 (one input running longer is a timeout finding), -malloc_limit_mb
# the same as the RSS limit.
set -euo pipefail

seconds=${1:-300}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/fuzz/target}
work=${TESSERA_FUZZ_WORK:-$CARGO_TARGET_DIR/fuzz-work}
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin=$CARGO_TARGET_DIR/$triple/release

cd "$root/fuzz"
command -v cargo-fuzz >/dev/null || {
    echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 2
}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build -O -a >&2

dictionary() {
    case $1 in
        jwt_signed | jwks) echo "$root/fuzz/dictionaries/jwt.dict" ;;
        request_bodies | refresh_token) echo "$root/fuzz/dictionaries/http.dict" ;;
        config) echo "$root/fuzz/dictionaries/toml.dict" ;;
    esac
}

# The ```toml blocks of the documentation, one file each.
doc_toml() {
    awk -v dir="$1" '
        /^```toml/ { inside = 1; n++; file = sprintf("%s/doc-%03d.toml", dir, n); next }
        /^```/ { inside = 0; next }
        inside { print > file }
    ' "$root/README.md" "$root"/docs/*.md
}

status=0
summary=()
for target in "${targets[@]}"; do
    seeds=$work/seeds/$target
    corpus=$work/corpus/$target
    artifacts=$work/artifacts/$target/$(date +%Y%m%dT%H%M%S)
    log=$work/logs/$target.log
    rm -rf "$seeds"
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
    TESSERA_FUZZ_SEEDS=$seeds "$bin/$target" >&2
    if [ "$target" = config ]; then doc_toml "$seeds"; fi
    options=(-max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10
        -print_final_stats=1 -artifact_prefix="$artifacts/")
    dict=$(dictionary "$target")
    if [ -n "$dict" ]; then options+=(-dict="$dict"); fi
    echo "fuzzing $target for ${seconds}s (log: $log)" >&2
    # Every line of libFuzzer's output prefixed with the seconds since the run started.
    start=$SECONDS
    "$bin/$target" "${options[@]}" "$corpus" "$seeds" 2>&1 |
        while IFS= read -r line; do printf '%s %s\n' "$((SECONDS - start))" "$line"; done >"$log" || true
    found() { find "$artifacts" -type f -name "$1-*" | wc -l; }
    crashes=$(found crash)
    timeouts=$(found timeout)
    ooms=$(found oom)
    leaks=$(found leak)
    if [ "$((crashes + timeouts + ooms + leaks))" -gt 0 ]; then status=1; fi
    stat() { awk -v key="stat::$1:" '$2 == key { value = $3 } END { print value }' "$log"; }
    # Status lines ("#123 NEW cov: … rss: 45Mb"): RSS at the first one 30 s or more into
    # the run (after warm-up), at the first one past half the run, and at the last one.
    read -r rss_early rss_half rss_late coverage < <(awk -v half="$((seconds / 2))" '
        $2 ~ /^#[0-9]+$/ && match($0, /rss: [0-9]+Mb/) {
            rss = substr($0, RSTART + 5, RLENGTH - 7)
            if ($1 >= 30 && early == "") early = rss
            if ($1 >= half && middle == "") middle = rss
            last = rss
            if (match($0, /cov: [0-9]+/)) cov = substr($0, RSTART + 5, RLENGTH - 5)
        }
        END { print (early == "" ? "?" : early), (middle == "" ? "?" : middle), (last == "" ? "?" : last), (cov == "" ? "?" : cov) }
    ' "$log")
    summary+=("$(printf '%-15s %12s %7s %8s %8s %5s %6s %8s %9s %8s %8s %6s' "$target" \
        "$(stat number_of_executed_units)" "$(stat average_exec_per_sec)" \
        "$crashes" "$timeouts" "$ooms" "$leaks" "$rss_early" "$rss_half" "$rss_late" \
        "$(stat peak_rss_mb)" "$coverage")")
done

printf '%-15s %12s %7s %8s %8s %5s %6s %8s %9s %8s %8s %6s\n' target executions "exec/s" \
    crashes timeouts ooms leaks "rss@30s" "rss@half" "rss@end" "peak MB" cov
printf '%s\n' "${summary[@]}"
echo "findings (if any) are in $work/artifacts/; logs in $work/logs/"
exit $status
