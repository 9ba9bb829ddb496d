#!/usr/bin/env bash
# The whole test suite: unit, store conformance, HTTP through real sockets, CLI, doc tests.
# Usage: bash scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "scripts/test.sh: cargo is missing; install Rust with rustup (https://rustup.rs)" >&2; exit 1; }

exec cargo test --workspace --all-features --locked "$@"
