//! `egressor rules [--values FILE]`: the Prometheus rule bundle for a values file
//! ([`crate::rules`]); `alerts/egressor.rules.yml` is its output for `alerts/values.yaml`.

use std::io::Write;

use crate::{
    cli::RulesArgs,
    error::ConfigError,
    rules::{Values, render},
};

/// Prints the rule file to `out`.
///
/// # Errors
/// A values file that cannot be read or parsed; a failed write as [`ConfigError::Flag`].
pub fn run(args: &RulesArgs, out: &mut impl Write) -> Result<(), ConfigError> {
    let values = match &args.values {
        Some(path) => Values::load(path)?,
        None => Values::default(),
    };
    out.write_all(render(&values).as_bytes())
        .map_err(|e| ConfigError::Flag { flag: "stdout", problem: e.to_string() })
}
