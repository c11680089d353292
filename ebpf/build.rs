//! The eBPF crate links with `bpf-linker`, a binary cargo does not know about: rebuild when it
//! changes (the aya template's approach; artifact dependencies are still unstable).
fn main() {
    match which::which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(e) => println!("cargo:warning=bpf-linker not found ({e}): run scripts/setup.sh"),
    }
}
