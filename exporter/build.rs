//! Builds the eBPF programs (`ebpf/`, for bpfel-unknown-none with the nightly toolchain and
//! bpf-linker) and leaves the object in `OUT_DIR` for `include_bytes_aligned!`: the aya
//! template's way, so a plain `cargo build` builds both halves.
use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

const EBPF_PACKAGE: &str = "egressor-ebpf";

fn main() -> anyhow::Result<()> {
    git_revision();
    // AYA_BUILD_SKIP=1 (fuzzing, docs): no eBPF build, and an empty object so the library
    // still compiles; an agent built this way refuses to load ("not an eBPF object").
    if std::env::var_os("AYA_BUILD_SKIP").is_some_and(|v| v == "1" || v == "true") {
        let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").context("OUT_DIR")?);
        std::fs::write(out.join("egressor"), []).context("writing the empty eBPF object")?;
        println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
        return Ok(());
    }
    let cargo_metadata::Metadata { packages, .. } =
        cargo_metadata::MetadataCommand::new().no_deps().exec().context("cargo metadata")?;
    let ebpf = packages
        .into_iter()
        .find(|p| p.name.as_str() == EBPF_PACKAGE)
        .ok_or_else(|| anyhow!("package {EBPF_PACKAGE} not found in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    let package = aya_build::Package {
        name: ebpf.name.as_str(),
        root_dir: root_dir.as_str(),
        ..Default::default()
    };
    let toolchain = ebpf_toolchain();
    aya_build::build_ebpf([package], Toolchain::Custom(&toolchain))
}

/// The toolchain the eBPF crate builds with: `EGRESSOR_EBPF_TOOLCHAIN` if set, else
/// `egressor-nightly` (scripts/setup.sh links it to the pinned nightly whose LLVM matches
/// bpf-linker's), else the `nightly` channel, with a warning: a newer nightly's LLVM can emit
/// bitcode bpf-linker rejects.
fn ebpf_toolchain() -> String {
    const PINNED: &str = "egressor-nightly";
    println!("cargo:rerun-if-env-changed=EGRESSOR_EBPF_TOOLCHAIN");
    if let Ok(t) = std::env::var("EGRESSOR_EBPF_TOOLCHAIN") {
        return t;
    }
    let pinned = std::process::Command::new("rustup")
        .args(["run", PINNED, "rustc", "-V"])
        .output()
        .is_ok_and(|o| o.status.success());
    if pinned {
        return PINNED.into();
    }
    println!(
        "cargo:warning=toolchain {PINNED} not found (scripts/setup.sh pins it); building the eBPF programs with `nightly`"
    );
    "nightly".into()
}

/// Exposes the git revision as `EGRESSOR_GIT_REVISION` for `egressor_build_info`.
fn git_revision() {
    let revision = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=EGRESSOR_GIT_REVISION={revision}");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs/heads");
}
