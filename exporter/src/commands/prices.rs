//! `egressor prices`: the effective price sheet as YAML, or the list of embedded sheets.

use std::io::Write;

use crate::{
    agent::load_setup,
    cli::PricesArgs,
    error::ConfigError,
    prices::{PriceSheet, sheet::EMBEDDED},
};

/// Prints to `out`.
///
/// # Errors
/// A bad configuration file or price sheet; a failed write is reported as
/// [`ConfigError::Flag`] naming stdout.
pub fn run(args: &PricesArgs, out: &mut impl Write) -> Result<(), ConfigError> {
    let write_error =
        |e: std::io::Error| ConfigError::Flag { flag: "stdout", problem: e.to_string() };
    if args.list {
        for (name, _) in EMBEDDED {
            let sheet = PriceSheet::embedded_named(name).expect("embedded sheets are valid");
            writeln!(out, "{name}\tversion {}", sheet.version).map_err(write_error)?;
        }
        return Ok(());
    }
    let (_, sheet) = load_setup(&args.setup, None)?;
    let yaml = serde_yaml_ng::to_string(&sheet)
        .map_err(|e| ConfigError::Flag { flag: "--prices", problem: e.to_string() })?;
    writeln!(
        out,
        "# Effective price sheet: {}/{} version {} (USD per GiB; a missing class, direction \
         or path is free)",
        sheet.provider, sheet.region, sheet.version
    )
    .and_then(|()| out.write_all(yaml.as_bytes()))
    .map_err(write_error)
}
