#!/usr/bin/env bash
# Runs egressor's benchmarks (root, real kernel): builds in release mode and prints
# markdown tables with every number next to its same-run baseline and target; then the
# user-space criterion benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -p egressor -p egressor-tests --bins -p egressor-bench
EGRESSOR_BIN="$PWD/target/release/egressor" ./target/release/egressor-bench
# User-space hot paths (criterion): classification of one address, DNS parse + insert;
# Kubernetes attribution per flow at 10k pods.
cargo bench --locked -p egressor-bench --bench user_space --bench kubernetes
