#!/usr/bin/env bash
# Quick start, command 2: installs what is missing, then runs every test: formatting and
# lints, unit tests, and the end-to-end tests that load the real programs into this kernel
# and send real traffic (they need root; with EGRESSOR_REQUIRE_BPF=1 a missing privilege
# fails instead of skipping).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
[[ -f "$HOME/.cargo/env" ]] && . "$HOME/.cargo/env"

step() { printf '\n[test] %s\n' "$*" >&2; }

# Every `cargo test` run is logged here so the last line can sum them up.
results=$(mktemp)
trap 'rm -f "$results"' EXIT
cargo_test() {
  cargo test "$@" 2>&1 | tee -a "$results"
  return "${PIPESTATUS[0]}"
}

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (user space, -D warnings)"
cargo clippy --locked --workspace --exclude egressor-ebpf --all-targets -- -D warnings

step "cargo clippy (eBPF programs, bpfel-unknown-none, -D warnings)"
(cd ebpf && cargo +egressor-nightly clippy --locked --release --target bpfel-unknown-none -Z build-std=core -- -D warnings)

step "unit tests"
cargo_test --locked -p egressor-common -p egressor

step "fuzz targets (DNS responses, cloud range files; ${EGRESSOR_FUZZ_SECONDS:-20} s each)"
bash scripts/fuzz.sh "${EGRESSOR_FUZZ_SECONDS:-20}"

step "end-to-end tests (real programs, real kernel, real traffic)"
cargo build --locked -p egressor
# One at a time: each test owns the cgroup root's hooks and its own namespaces.
cargo_test --locked -p egressor-tests -- --test-threads=1

# One closing line for everything above, e.g. "all: 62 passed, 0 failed".
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed/) p += $(i-1); if ($(i) ~ /^failed/) f += $(i-1) } }
     END { printf "all: %d passed, %d failed\n", p, f }' "$results"
