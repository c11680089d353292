#!/usr/bin/env bash
# Throughput of `egressor flowlogs` (release build) on generated flow logs, next to its
# baselines measured in the same run:
#   plain input: MB/s of log text on one core and on all cores, against the 1 GB/s per core
#     target and against `cat` reading the same files (the page cache's speed);
#   gzip input: seconds for the same text gzip-compressed, on one core and on all cores,
#     against `zcat FILE... > /dev/null` on one core (decompression alone: the physical
#     limit), target within 1.3× of it; and all of it as one gzip file (one stream, read by
#     one thread that hands runs of lines to the others) on all cores.
# Usage: bench/flowlogs.sh [BYTES of text, default 2000000000]. Needs ~2× BYTES of disk in
# $TMPDIR (plain and gzip copies); the files stay in the page cache between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bytes=${1:-2000000000}
bash scripts/setup.sh >/dev/null
cargo build --release --locked -p egressor -p egressor-tests --bin egressor --bin egressor-flowlog-gen
bin=$PWD/target/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bin/egressor-flowlog-gen" "$work/plain" "$bytes" 7 0 >/dev/null
"$bin/egressor-flowlog-gen" "$work/gzip" "$bytes" 7 1000000 >/dev/null
cfg=$work/plain/egressor.yaml
cores=$(nproc)

now() { date +%s.%N; }
# Seconds of one run of "$@" (stdout discarded), best of three.
best() {
  local best=""
  for _ in 1 2 3; do
    local t0 t1
    t0=$(now)
    "$@" >/dev/null
    t1=$(now)
    best=$(python3 -c "import sys; a=float(sys.argv[1]); b=sys.argv[2]; print(a if b=='' or a<float(b) else b)" "$(python3 -c "print($t1-$t0)")" "$best")
  done
  echo "$best"
}
flowlogs() { "$bin/egressor" flowlogs --config.file "$cfg" --nat-gateway 10.0.0.220 --json "$@"; }
text=$(python3 -c "import json; print(json.load(open('$work/plain/truth.json'))['text_bytes'])")
stored=$(du -cb "$work"/gzip/logs/* | tail -1 | cut -f1)

cat_s=$(best cat "$work"/plain/logs/*)
plain1=$(best flowlogs --threads 1 "$work/plain/logs")
plainn=$(best flowlogs --threads "$cores" "$work/plain/logs")
zcat_s=$(best zcat "$work"/gzip/logs/*)
gzip1=$(best flowlogs --threads 1 "$work/gzip/logs")
gzipn=$(best flowlogs --threads "$cores" "$work/gzip/logs")
cat "$work"/gzip/logs/* > "$work/one.log.gz"
onegz=$(best flowlogs --threads "$cores" "$work/one.log.gz")

python3 - "$text" "$stored" "$cores" "$cat_s" "$plain1" "$plainn" "$zcat_s" "$gzip1" "$gzipn" "$onegz" <<'EOF'
import sys
text, stored, cores = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cat_s, plain1, plainn, zcat_s, gzip1, gzipn, onegz = map(float, sys.argv[4:])
mb = lambda s: text / s / 1e6
print(f"### egressor flowlogs: {text / 1e9:.2f} GB of log text ({stored / 1e6:.0f} MB gzip), best of 3\n")
print("| input | threads | seconds | MB/s of text | MB/s per core | baseline | ratio | target |")
print("|---|---|---|---|---|---|---|---|")
print(f"| plain | 1 | {plain1:.2f} | {mb(plain1):.0f} | {mb(plain1):.0f} | cat {cat_s:.2f} s ({mb(cat_s):.0f} MB/s) | {mb(plain1) / 1000:.2f} of 1 GB/s | ≥ 1.00 |")
print(f"| plain | {cores} | {plainn:.2f} | {mb(plainn):.0f} | {mb(plainn) / cores:.0f} | | {mb(plainn) / cores / 1000:.2f} of 1 GB/s per core | ≥ 1.00 |")
print(f"| gzip | 1 | {gzip1:.2f} | {mb(gzip1):.0f} | {mb(gzip1):.0f} | zcat {zcat_s:.2f} s ({mb(zcat_s):.0f} MB/s) | {gzip1 / zcat_s:.2f} × zcat | ≤ 1.30 |")
print(f"| gzip | {cores} | {gzipn:.2f} | {mb(gzipn):.0f} | {mb(gzipn) / cores:.0f} | zcat {zcat_s:.2f} s | {gzipn / zcat_s:.2f} × zcat | ≤ 1.30 |")
print(f"| gzip, one file | {cores} | {onegz:.2f} | {mb(onegz):.0f} | {mb(onegz) / cores:.0f} | zcat {zcat_s:.2f} s | {onegz / zcat_s:.2f} × zcat | ≤ 1.30 |")
EOF
