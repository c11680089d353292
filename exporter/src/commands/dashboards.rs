//! `egressor dashboards [--values FILE] --out DIR`: the Grafana dashboards for a values file
//! ([`crate::dashboards`]) as `DIR/dashboards/*.json` and `DIR/dashboards.configmap.yaml`;
//! `grafana/` holds its output for `alerts/values.yaml`.

use std::path::Path;

use crate::{
    cli::DashboardsArgs,
    dashboards::{configmaps, render, to_json},
    error::ConfigError,
    rules::Values,
};

/// Writes the dashboards and their ConfigMaps under `args.out`.
///
/// # Errors
/// A values file that cannot be read or parsed; a directory or file that cannot be written,
/// as [`ConfigError::Flag`] naming `--out` and the path.
pub fn run(args: &DashboardsArgs) -> Result<(), ConfigError> {
    let values = match &args.values {
        Some(path) => Values::load(path)?,
        None => Values::default(),
    };
    let dashboards = render(&values);
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|e| ConfigError::Flag {
            flag: "--out",
            problem: format!("{}: {e}", path.display()),
        })
    };
    let dir = args.out.join("dashboards");
    std::fs::create_dir_all(&dir).map_err(|e| ConfigError::Flag {
        flag: "--out",
        problem: format!("{}: {e}", dir.display()),
    })?;
    for d in &dashboards {
        write(&dir.join(d.file), &to_json(&d.json))?;
    }
    write(&args.out.join("dashboards.configmap.yaml"), &configmaps(&dashboards))
}
