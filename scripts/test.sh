#!/usr/bin/env bash
# The whole test suite, on a fresh machine: unit, integration, property and doc tests, with the
# example and the benches compiled. Needs only the Rust toolchain; everything else it sets up.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "scripts/test.sh: cargo is not installed; install Rust from https://rustup.rs" >&2
  exit 2
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# --locked: build exactly the dependency versions in Cargo.lock (the AWS SDK's MSRV moves fast).
status=0
cargo test --locked --all-features "$@" 2>&1 | tee "$log" || status=$?

# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
