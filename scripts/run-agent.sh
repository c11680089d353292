#!/usr/bin/env bash
# Quick start, command 1: installs what is missing, builds egressor and runs the agent on
# this machine with the embedded defaults (cgroup hooks on the cgroup v2 root, AWS
# us-east-1 prices). Extra arguments go to `egressor agent` (see `egressor agent --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
[[ -f "$HOME/.cargo/env" ]] && . "$HOME/.cargo/env"
cargo build --release --locked -p egressor
echo "[run-agent] starting egressor; metrics at http://127.0.0.1:10730/metrics unless --web.listen-address says otherwise" >&2
exec ./target/release/egressor agent "$@"
