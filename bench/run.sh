#!/usr/bin/env bash
# Runs egressor's benchmarks (root, real kernel): builds in release mode and prints
# markdown tables with every number next to its same-run baseline and target.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -p egressor -p egressor-tests --bins -p egressor-bench
EGRESSOR_BIN="$PWD/target/release/egressor" exec ./target/release/egressor-bench
