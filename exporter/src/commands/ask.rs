//! `egressor ask "QUESTION"`: the question answered by Claude from the Prometheus queries it
//! runs (see [`crate::explainer::ask`]), printed with the queries it rests on, or as JSON
//! with `--json`.

use std::io::Write;

use crate::{
    cli::AskArgs,
    error::ConfigError,
    explainer::{
        ask::{self, Limits},
        claude::{Claude, ClaudeError},
        context::Prometheus,
        redact::Redaction,
    },
    rules::Values,
};

/// Why no answer was printed.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// Bad flags or files.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The model gave no answer.
    #[error("Claude gave no answer: {0}")]
    Model(#[from] ClaudeError),
    /// Writing the answer failed.
    #[error("writing the answer: {0}")]
    Output(#[from] std::io::Error),
}

/// Answers `args.question` on `out`.
///
/// # Errors
/// [`AskError`].
pub async fn run(args: &AskArgs, out: &mut impl Write) -> Result<(), AskError> {
    let Some(claude) = Claude::from_args(&args.claude)? else {
        return Err(ConfigError::Flag {
            flag: "--claude.api-key-file",
            problem: "`ask` needs the Anthropic API key".into(),
        }
        .into());
    };
    let prometheus = Prometheus::new(&args.prometheus_url, &Values::default(), args.query_timeout)
        .map_err(|problem| ConfigError::Flag { flag: "--prometheus.url", problem })?;
    let limits = Limits {
        max_tool_calls: args.limits.max_tool_calls,
        max_rows: args.limits.max_rows.max(1),
    };
    let key = std::array::from_fn(|_| fastrand::u8(..));
    let mut redaction = Redaction::new(args.claude.redact_pod_names, key, []);
    let answer =
        ask::ask(&args.question, &claude, &prometheus, limits, &mut redaction, |_, _| {}).await?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &answer).map_err(std::io::Error::other)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{}", answer.answer)?;
    }
    Ok(())
}
