//! `deploy/Dockerfile` builds with the toolchain `scripts/setup.sh --build-only` installs (the
//! same script: LLVM major, pinned nightly, bpf-linker; stable at the workspace's rust-version)
//! and ships what the manifests run: the
//! binary at the entrypoint the Pods' `args` follow, as a non-root user, on distroless/cc
//! (the binary links only glibc and libgcc_s, which it carries).

use std::path::PathBuf;

fn read(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// The value of a `NAME=value`, `NAME = "value"` or `ARG NAME=value` line, quotes removed.
fn assignment(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim().strip_prefix("ARG ").unwrap_or(line.trim());
        let value = line.strip_prefix(name)?.trim_start().strip_prefix('=')?.trim();
        Some(value.trim_matches('"').to_owned())
    })
}

#[test]
fn the_image_builds_with_the_setup_toolchain() {
    let dockerfile = read("deploy/Dockerfile");
    // The build stage installs its toolchain with the script machines use, before building.
    let setup = dockerfile.find("RUN bash /tmp/setup.sh --build-only").expect("setup.sh run");
    let copy = dockerfile.find("COPY scripts/setup.sh /tmp/setup.sh").expect("setup.sh copied");
    let build = dockerfile.find("cargo build --release --locked -p egressor").expect("build");
    assert!(copy < setup && setup < build, "setup.sh must run before the build");
    let rust = assignment(&dockerfile, "RUST_VERSION").expect("ARG RUST_VERSION");
    let floor = assignment(&read("Cargo.toml"), "rust-version").expect("rust-version");
    assert!(rust.starts_with(&format!("{floor}.")), "RUST_VERSION {rust} vs rust-version {floor}");
    assert_eq!(assignment(&dockerfile, "VERSION"), Some(env!("CARGO_PKG_VERSION").to_owned()));
}

/// exporter/build.rs builds the eBPF programs with the toolchain setup.sh pins, and on a
/// machine set up by it (CI) that toolchain is the pinned nightly.
#[test]
fn the_ebpf_programs_build_with_the_pinned_nightly() {
    let setup = read("scripts/setup.sh");
    let name = assignment(&setup, "EBPF_TOOLCHAIN").expect("EBPF_TOOLCHAIN in setup.sh");
    let commit = assignment(&setup, "PINNED_NIGHTLY_COMMIT").expect("PINNED_NIGHTLY_COMMIT");
    assert!(
        read("exporter/build.rs").contains(&format!("const PINNED: &str = \"{name}\";")),
        "build.rs does not build with {name}"
    );
    let version = std::process::Command::new("rustup")
        .args(["run", &name, "rustc", "-V"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    match version {
        Some(v) => assert!(v.contains(&format!("({commit} ")), "{name} is {v}, not {commit}"),
        None if std::env::var("EGRESSOR_REQUIRE_BPF").as_deref() != Ok("1") => {
            eprintln!("SKIPPED: toolchain {name} not set up (run scripts/setup.sh)");
        }
        None => panic!("toolchain {name} missing: scripts/setup.sh pins it"),
    }
}

#[test]
fn the_image_runs_what_the_manifests_expect() {
    let dockerfile = read("deploy/Dockerfile");
    let runtime = dockerfile.rsplit_once("\nFROM ").expect("a runtime stage").1;
    assert!(runtime.starts_with("gcr.io/distroless/cc-debian12:nonroot"), "{runtime}");
    assert!(runtime.contains("\nUSER 65532:65532\n"), "the image's user is not nonroot");
    assert!(runtime.contains("COPY --from=build /out/egressor /usr/bin/egressor"));
    assert!(runtime.contains("ENTRYPOINT [\"/usr/bin/egressor\"]"));
    // The Pods give the subcommand in `args`, so the entrypoint must be the binary itself.
    let manifests = read("deploy/kubernetes/egressor.yaml");
    assert!(!manifests.contains("command:"), "a Pod overrides the entrypoint");
    assert!(manifests.contains("- agent\n") && manifests.contains("- explainer\n"));
}
