//! Helpers shared by the deploy tests (`manifests.rs`, `helm_chart.rs`).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// `kubernetes-validate` from `scripts/setup.sh`'s virtualenv, or `PATH`.
pub fn validator() -> Option<PathBuf> {
    let venv = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/egressor/venv/bin/kubernetes-validate"));
    venv.filter(|p| p.exists()).or_else(|| {
        Command::new("kubernetes-validate")
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|_| PathBuf::from("kubernetes-validate"))
    })
}

/// `kubernetes-validate --strict` against Kubernetes 1.37's schemas (and the
/// prometheus-operator CRDs `scripts/crd-schemas.py` adds): whether `file` passed, and the
/// tool's output (one "passed for resource" line per valid document).
pub fn validate(validator: &Path, file: &Path) -> (bool, String) {
    let out = Command::new(validator)
        .args(["--strict", "-k", "1.37.0"])
        .arg(file)
        .output()
        .expect("kubernetes-validate");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}
