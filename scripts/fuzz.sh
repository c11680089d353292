#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 20 s each; first argument
# overrides) from a seed corpus: DNS responses (hand-written and from the pcap captures) and
# slices of the real provider range files. Fails on the first crash, leak or timeout, leaving
# the reproducer under fuzz/artifacts/. Needs cargo-fuzz and the pinned nightly,
# `egressor-nightly` (scripts/setup.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
[[ -f "$HOME/.cargo/env" ]] && . "$HOME/.cargo/env"
seconds=${1:-20}
data=${EGRESSOR_SHARED_DATA:-$(cd .. && pwd)/shared/data}
[[ -d $data ]] || data=/work/shared/data

seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
mkdir -p "$seeds/dns_response" "$seeds/cloud_ranges"
# A response with a CNAME chain (UDP: first byte even) and the same over TCP.
printf '\x00\x12\x34\x81\x80\x00\x01\x00\x02\x00\x00\x00\x00\x03www\x07example\x04test\x00\x00\x01\x00\x01\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x06\x03api\xc0\x10\xc0\x2e\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xcb\x00\x71\x0a' >"$seeds/dns_response/chain"
# Every DNS message of the shared packet captures (UDP).
cargo run -q --locked -p egressor-tests --bin egressor-dns-seeds -- "$seeds/dns_response" >&2
# First 4 KiB of each provider file, tagged with the provider's index.
for i in 0 1 2; do
  f=("$data/cloud-ranges/aws-ip-ranges.json" "$data/cloud-ranges/google-cloud-ip-ranges.json" "$data/cloud-ranges/microsoft-azure-ip-ranges.json")
  if [[ -f ${f[$i]} ]]; then
    { printf "\\x0$i"; head -c 4096 "${f[$i]}"; } >"$seeds/cloud_ranges/provider-$i"
  fi
done

export AYA_BUILD_SKIP=1
for target in dns_response cloud_ranges; do
  printf '[fuzz] %s for %s s\n' "$target" "$seconds" >&2
  mkdir -p "fuzz/corpus/$target"
  log="$seeds/$target.log"
  if ! cargo +egressor-nightly fuzz run --fuzz-dir fuzz "$target" "fuzz/corpus/$target" "$seeds/$target" -- \
    -max_total_time="$seconds" -max_len=8192 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    printf '[fuzz] %s FAILED (reproducer in fuzz/artifacts/%s/)\n' "$target" "$target" >&2
    exit 1
  fi
  grep -E '^stat::number_of_executed_units|^Done' "$log" >&2 || true
done
printf '[fuzz] clean\n' >&2
