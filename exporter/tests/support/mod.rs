//! Helpers shared by the exporter's integration tests.

#![allow(dead_code)]

use std::path::PathBuf;

/// A file of the third-party test data (`../shared/data/`, see its SOURCES.md): from
/// `EGRESSOR_SHARED_DATA`, else next to the workspace, else `/work/shared/data`. `None`
/// (after printing why) when it is missing on a developer's machine; a panic in CI
/// (`EGRESSOR_REQUIRE_BPF=1`), where nothing may be skipped.
pub fn shared_data(relative: &str) -> Option<PathBuf> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let roots = std::env::var_os("EGRESSOR_SHARED_DATA")
        .map(PathBuf::from)
        .into_iter()
        .chain([workspace.join("../shared/data"), PathBuf::from("/work/shared/data")]);
    for root in roots {
        let path = root.join(relative);
        if path.exists() {
            return Some(path);
        }
    }
    let why = format!("test data {relative} not found (set EGRESSOR_SHARED_DATA)");
    if std::env::var_os("EGRESSOR_REQUIRE_BPF").is_some_and(|v| v == "1") {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
    None
}
