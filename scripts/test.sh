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

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (user space, -D warnings)"
cargo clippy --locked --workspace --exclude egressor-ebpf --all-targets -- -D warnings

step "cargo clippy (eBPF programs, bpfel-unknown-none, -D warnings)"
(cd ebpf && cargo +nightly clippy --locked --release --target bpfel-unknown-none -Z build-std=core -- -D warnings)

step "unit tests"
cargo test --locked -p egressor-common -p egressor

step "end-to-end tests (real programs, real kernel, real traffic)"
cargo build --locked -p egressor
# One at a time: each test owns the cgroup root's hooks and its own namespaces.
cargo test --locked -p egressor-tests -- --test-threads=1
