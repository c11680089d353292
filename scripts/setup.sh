#!/usr/bin/env bash
# Installs every prerequisite egressor needs to build and test on Debian 12 (root), and only
# what is missing: a second run finishes in about a second.
#
#   - apt: llvm-22 (+ -dev, libpolly) for bpf-linker, prometheus (promtool), iperf3,
#     iproute2, ethtool, dnsmasq-base (a real DNS server for the DNS tests), nftables (the
#     Service NAT kube-proxy would do, for the Kubernetes tests);
#   - the pinned nightly toolchain with its rust-src component (the eBPF crate builds core for
#     bpfel), linked as `egressor-nightly` for exporter/build.rs;
#   - bpf-linker 0.13 built against Debian's LLVM 22 (nightly's LLVM major);
#   - cargo-fuzz (scripts/fuzz.sh runs the parsers' fuzz targets);
#   - kubernetes-validate (PyPI) in a virtualenv at ~/.cache/egressor/venv, which validates
#     deploy/ against the Kubernetes OpenAPI schemas, taught prometheus-operator's
#     ServiceMonitor and PrometheusRule schemas by scripts/crd-schemas.py, and moto's S3
#     server (PyPI), the local S3 of the `egressor flowlogs s3://` test;
#   - golang-go with Masterminds/sprig and sigs.k8s.io/yaml, for tests/helm/render.go, the
#     test-only `helm template` that renders the chart (no helm binary is installable).
#
# `--build-only` installs only what building needs (LLVM, the pinned nightly, bpf-linker): the
# image's build stage (deploy/Dockerfile) runs it so.
# Environment: EGRESSOR_SKIP_APT=1 skips apt (for machines managed some other way).
set -euo pipefail

BUILD_ONLY=0
case "${1:-}" in
  --build-only) BUILD_ONLY=1 ;;
  "") ;;
  *) printf '[setup] unknown argument %s (expected --build-only or nothing)\n' "$1" >&2; exit 2 ;;
esac

BPF_LINKER_VERSION="0.13.0"
# The eBPF programs' toolchain: rustc 1.97.0-nightly (e50aa6fba 2026-05-19), LLVM 22.1.4.
PINNED_NIGHTLY="nightly-2026-05-20"
PINNED_NIGHTLY_COMMIT="e50aa6fba"
# The name exporter/build.rs builds them with, and scripts/fuzz.sh fuzzes with (rustup
# refuses custom names like "nightly-*").
EBPF_TOOLCHAIN="egressor-nightly"
CARGO_FUZZ_VERSION="0.13.2"
KUBERNETES_VALIDATE_VERSION="1.37.0"
MOTO_VERSION="5.2.5"
VENV="${HOME}/.cache/egressor/venv"
LLVM_MAJOR=22
APT_PACKAGES=(
  "llvm-${LLVM_MAJOR}" "llvm-${LLVM_MAJOR}-dev" "libpolly-${LLVM_MAJOR}-dev"
  libzstd-dev zlib1g-dev
)
if [[ ${BUILD_ONLY} != 1 ]]; then
  APT_PACKAGES+=(
    prometheus prometheus-alertmanager iperf3 iproute2 ethtool util-linux dnsmasq-base nftables
    python3-venv golang-go golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev
  )
fi

log() { printf '[setup] %s\n' "$*" >&2; }

if [[ ${EGRESSOR_SKIP_APT:-0} != 1 ]]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
      log "missing Debian packages: ${missing[*]} (run as root, or install them yourself)"
      exit 1
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # prometheus' postinst starts a service where systemd runs; harmless elsewhere.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  # shellcheck disable=SC1091
  [[ -f "$HOME/.cargo/env" ]] && . "$HOME/.cargo/env"
fi
command -v rustup >/dev/null || { log "rustup is required (https://rustup.rs)"; exit 1; }

# The eBPF programs build with a pinned nightly, reached through the custom toolchain name
# exporter/build.rs uses: the machine's `nightly` when it is that very build (no download),
# else the dated toolchain rustup installs. A newer nightly would not do: its LLVM (23 from
# 1.99) emits bitcode bpf-linker 0.13 on LLVM 22 rejects.
# The installed toolchain (`nightly` or the dated one) that is the pinned build, if any.
pinned_nightly() {
  local t
  for t in nightly "${PINNED_NIGHTLY}"; do
    if rustup run "$t" rustc -V 2>/dev/null | grep -q "(${PINNED_NIGHTLY_COMMIT} "; then
      echo "$t"
      return
    fi
  done
}
if ! rustup run "${EBPF_TOOLCHAIN}" rustc -V 2>/dev/null | grep -q "(${PINNED_NIGHTLY_COMMIT} "; then
  source_toolchain="$(pinned_nightly)"
  if [[ -z ${source_toolchain} ]]; then
    log "installing ${PINNED_NIGHTLY} (the eBPF programs' toolchain)"
    rustup toolchain install "${PINNED_NIGHTLY}" --profile minimal --component rust-src
    source_toolchain="${PINNED_NIGHTLY}"
  fi
  log "pinning ${EBPF_TOOLCHAIN} to ${source_toolchain} ($(rustup run "${source_toolchain}" rustc -V))"
  rm -f "${RUSTUP_HOME:-$HOME/.rustup}/toolchains/${EBPF_TOOLCHAIN}"
  rustup toolchain link "${EBPF_TOOLCHAIN}" "$(rustup run "${source_toolchain}" rustc --print sysroot)"
fi
if [[ ! -d "$(rustup run "${EBPF_TOOLCHAIN}" rustc --print sysroot)/lib/rustlib/src/rust/library" ]]; then
  log "adding rust-src to the eBPF toolchain"
  rustup component add rust-src --toolchain "$(pinned_nightly)"
fi

if ! bpf-linker --version 2>/dev/null | grep -q "${BPF_LINKER_VERSION}"; then
  log "building bpf-linker ${BPF_LINKER_VERSION} against LLVM ${LLVM_MAJOR} (a few minutes, once)"
  LLVM_PREFIX="/usr/lib/llvm-${LLVM_MAJOR}" cargo install bpf-linker \
    --version "=${BPF_LINKER_VERSION}" --locked --no-default-features \
    --features "llvm-${LLVM_MAJOR}"
fi
if [[ ${BUILD_ONLY} == 1 ]]; then
  log "build prerequisites ready"
  exit 0
fi
if ! cargo fuzz --version 2>/dev/null | grep -q "${CARGO_FUZZ_VERSION}"; then
  log "installing cargo-fuzz ${CARGO_FUZZ_VERSION} (for scripts/fuzz.sh)"
  cargo install cargo-fuzz --version "=${CARGO_FUZZ_VERSION}" --locked
fi
if ! "${VENV}/bin/kubernetes-validate" --version 2>/dev/null | grep -q "${KUBERNETES_VALIDATE_VERSION}"; then
  log "installing kubernetes-validate ${KUBERNETES_VALIDATE_VERSION} into ${VENV}"
  /usr/bin/python3 -m venv "${VENV}"
  "${VENV}/bin/pip" install -q "kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}"
fi
if ! "${VENV}/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '${MOTO_VERSION}')" 2>/dev/null; then
  log "installing moto ${MOTO_VERSION} (a local S3 for the flow-log tests) into ${VENV}"
  [[ -x "${VENV}/bin/pip" ]] || /usr/bin/python3 -m venv "${VENV}"
  "${VENV}/bin/pip" install -q "moto[server]==${MOTO_VERSION}"
fi
if ! "${VENV}/bin/python" "$(dirname "$0")/crd-schemas.py" --check; then
  log "adding the ServiceMonitor and PrometheusRule schemas to kubernetes-validate"
  "${VENV}/bin/python" "$(dirname "$0")/crd-schemas.py"
fi
log "prerequisites ready"
