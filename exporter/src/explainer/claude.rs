//! Claude through the Anthropic Messages API (`POST /v1/messages`,
//! <https://docs.anthropic.com/en/api/messages>, headers `x-api-key` and
//! `anthropic-version: 2023-06-01`). The model id is configuration; no sampling parameters
//! are sent (the model's defaults hold, and newer models refuse some of them). Replies are
//! read by content-block type (`text`, `tool_use`; others are skipped).
//!
//! Retries (<https://docs.anthropic.com/en/api/errors>): HTTP 429 `rate_limit_error` after
//! its `retry-after` seconds, 500 `api_error`, 529 `overloaded_error`, other 5xx, timeouts and
//! connection failures with exponential backoff and full jitter, at most `attempts` times
//! and never past the deadline. Not retried: spend limits (429 with
//! `error.details.error_code = enforced_spend_limit_reached`, 402 `billing_error`, a 400 that
//! says the spend limit is reached), other 4xx, and a 200 whose body is no Messages
//! response.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{cli::ClaudeArgs, error::ConfigError};

/// The API version header's value.
pub const API_VERSION: &str = "2023-06-01";

/// A configured client.
#[derive(Debug, Clone)]
pub struct Claude {
    client: reqwest::Client,
    url: reqwest::Url,
    key: String,
    /// Model id (`claude-sonnet-4-5`, …).
    pub model: String,
    /// `max_tokens` of each request.
    pub max_tokens: u32,
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// The whole exchange, retries included, ends by then.
    pub deadline: Duration,
    /// First backoff (doubled per attempt, jittered).
    pub backoff: Duration,
}

/// One content block of a reply.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// A tool call.
    ToolUse {
        /// Its id, for the `tool_result`.
        id: String,
        /// The tool's name.
        name: String,
        /// Its input (JSON object).
        input: Value,
    },
    /// Anything else (thinking, server tools): skipped.
    #[serde(other)]
    Other,
}

/// Tokens a request used (`usage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct Usage {
    /// Input tokens not read from or written to the cache.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    /// Input tokens written to the prompt cache.
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
}

/// A Messages response.
#[derive(Debug, Clone, Deserialize)]
pub struct Reply {
    /// Its content blocks.
    pub content: Vec<Block>,
    /// `end_turn`, `tool_use`, `max_tokens`, …
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// Tokens used.
    #[serde(default)]
    pub usage: Usage,
    /// The content blocks as sent, to hand back as the assistant's turn.
    #[serde(skip)]
    pub raw_content: Value,
}

impl Reply {
    /// The text blocks, joined by blank lines.
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self
            .content
            .iter()
            .filter_map(|b| match b {
                Block::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        texts.join("\n\n")
    }
}

/// Why no reply came.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClaudeError {
    /// The organisation's spend limit is reached: not retried.
    #[error("spend limit reached (HTTP {status}): {message}")]
    SpendLimit {
        /// The status.
        status: u16,
        /// The API's message.
        message: String,
    },
    /// Too many requests, still so after the last attempt.
    #[error("rate limited (HTTP 429): {0}")]
    RateLimited(String),
    /// HTTP 529, still so after the last attempt.
    #[error("overloaded (HTTP 529): {0}")]
    Overloaded(String),
    /// HTTP 500 or another 5xx, still so after the last attempt.
    #[error("server error (HTTP {status}): {message}")]
    Server {
        /// The status.
        status: u16,
        /// The API's message.
        message: String,
    },
    /// No answer within the request timeout, or the deadline passed.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Could not connect.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// A 200 whose body is no Messages response.
    #[error("malformed reply: {0}")]
    Malformed(String),
    /// Any other refusal (400, 401, 403, 404, 413): not retried.
    #[error("refused (HTTP {status} {kind}): {message}")]
    Refused {
        /// The status.
        status: u16,
        /// `error.type`.
        kind: String,
        /// `error.message`.
        message: String,
    },
}

impl ClaudeError {
    /// The `reason` label of the errors metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::SpendLimit { .. } => "spend_limit",
            Self::RateLimited(_) => "rate_limited",
            Self::Overloaded(_) => "overloaded",
            Self::Server { .. } => "server_error",
            Self::Timeout(_) => "timeout",
            Self::Unreachable(_) => "unreachable",
            Self::Malformed(_) => "malformed",
            Self::Refused { .. } => "refused",
        }
    }

    fn retried(&self) -> bool {
        matches!(
            self,
            Self::RateLimited(_)
                | Self::Overloaded(_)
                | Self::Server { .. }
                | Self::Timeout(_)
                | Self::Unreachable(_)
        )
    }
}

/// What one attempt gave: the reply or error, and the `retry-after` the API asked for.
struct Attempt {
    result: Result<Reply, ClaudeError>,
    retry_after: Option<Duration>,
}

/// The API's error body: `{"type":"error","error":{"type":…,"message":…,"details":…}}`.
fn error_of(status: u16, body: &str) -> ClaudeError {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let kind = v["error"]["type"].as_str().unwrap_or("").to_owned();
    let message = v["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| body.chars().take(200).collect());
    let spend = v["error"]["details"]["error_code"] == "enforced_spend_limit_reached"
        || kind == "billing_error"
        || status == 402
        || (status == 400 && message.to_ascii_lowercase().contains("spend limit"));
    match status {
        _ if spend => ClaudeError::SpendLimit { status, message },
        429 => ClaudeError::RateLimited(message),
        529 => ClaudeError::Overloaded(message),
        500..=599 => ClaudeError::Server { status, message },
        _ => ClaudeError::Refused { status, kind, message },
    }
}

impl Claude {
    /// The client `args` configure; `None` without `--claude.api-key-file`.
    ///
    /// # Errors
    /// An unreadable or empty key file, a bad `--claude.url`, as [`ConfigError`].
    pub fn from_args(args: &ClaudeArgs) -> Result<Option<Self>, ConfigError> {
        let Some(file) = &args.api_key_file else { return Ok(None) };
        let key = super::secret(file, "--claude.api-key-file")?;
        let mut c = Self::new(&args.url, key, args.model.clone(), args.timeout)
            .map_err(|problem| ConfigError::Flag { flag: "--claude.url", problem })?;
        c.max_tokens = args.max_tokens;
        c.attempts = args.attempts.max(1);
        c.deadline = args.deadline;
        Ok(Some(c))
    }

    /// A client of the Messages API under `base` (`https://api.anthropic.com`), with
    /// `timeout` per request.
    ///
    /// # Errors
    /// A base URL that does not parse; reqwest's error if TLS cannot start.
    pub fn new(base: &str, key: String, model: String, timeout: Duration) -> Result<Self, String> {
        let mut url = reqwest::Url::parse(base).map_err(|e| format!("{base}: {e}"))?;
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        let url = url.join("v1/messages").map_err(|e| e.to_string())?;
        let client = crate::http_client::client(timeout).map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            url,
            key,
            model,
            max_tokens: 1024,
            attempts: 4,
            timeout,
            deadline: Duration::from_secs(45),
            backoff: Duration::from_millis(500),
        })
    }

    /// The request body: `system` as one text block marked for prompt caching
    /// (`cache_control: ephemeral`, so the stable instructions are billed once per five
    /// minutes), `messages` as given, `tools` when any.
    pub fn body(&self, system: &str, messages: &[Value], tools: &[Value], no_tools: bool) -> Value {
        let mut body = json!({
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
            "messages": messages,
        });
        if !tools.is_empty() {
            body["tools"] = json!(tools);
            if no_tools {
                body["tool_choice"] = json!({"type": "none"});
            }
        }
        body
    }

    async fn attempt(&self, body: &Value, timeout: Duration) -> Attempt {
        let sent = self
            .client
            .post(self.url.clone())
            .timeout(timeout)
            .header("x-api-key", &self.key)
            .header("anthropic-version", API_VERSION)
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Attempt {
                    result: Err(ClaudeError::Timeout(e.to_string())),
                    retry_after: None,
                };
            }
            Err(e) => {
                let e = ClaudeError::Unreachable(e.to_string());
                return Attempt { result: Err(e), retry_after: None };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) if e.is_timeout() => {
                return Attempt { result: Err(ClaudeError::Timeout(e.to_string())), retry_after };
            }
            Err(e) => {
                return Attempt {
                    result: Err(ClaudeError::Unreachable(e.to_string())),
                    retry_after,
                };
            }
        };
        let result = if (200..300).contains(&status) {
            serde_json::from_str::<Value>(&text)
                .and_then(|v| {
                    let mut reply = Reply::deserialize(&v)?;
                    reply.raw_content = v["content"].clone();
                    Ok(reply)
                })
                .map_err(|e| ClaudeError::Malformed(format!("{e} in {} bytes", text.len())))
        } else {
            Err(error_of(status, &text))
        };
        Attempt { result, retry_after }
    }

    /// Sends `body`, retrying as the module says; `observe` sees every attempt's outcome
    /// and duration (for metrics).
    ///
    /// # Errors
    /// The last attempt's [`ClaudeError`].
    pub async fn send(
        &self,
        body: &Value,
        mut observe: impl FnMut(Result<&Reply, &ClaudeError>, Duration),
    ) -> Result<Reply, ClaudeError> {
        let end = Instant::now() + self.deadline;
        let mut attempt = 0;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClaudeError::Timeout(format!(
                    "deadline of {:?} passed",
                    self.deadline
                )));
            }
            let started = Instant::now();
            let Attempt { result, retry_after } = self.attempt(body, left.min(self.timeout)).await;
            observe(result.as_ref(), started.elapsed());
            attempt += 1;
            let error = match result {
                Ok(reply) => return Ok(reply),
                Err(e) if !e.retried() || attempt >= self.attempts => return Err(e),
                Err(e) => e,
            };
            // Full jitter (a random wait up to the doubled backoff), or the API's
            // `retry-after` when it gave one.
            let ceiling = self.backoff.saturating_mul(1 << (attempt - 1).min(6));
            let wait = retry_after.unwrap_or_else(|| ceiling.mul_f64(fastrand::f64()));
            let left = end.saturating_duration_since(Instant::now());
            if wait >= left {
                return Err(error);
            }
            tracing::info!(error = %error, wait = ?wait, attempt, "Claude: retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_told_apart_as_the_api_documents_them() {
        let body = |t: &str, extra: &str| {
            format!(r#"{{"type":"error","error":{{"type":"{t}","message":"m"{extra}}}}}"#)
        };
        assert_eq!(error_of(429, &body("rate_limit_error", "")).kind(), "rate_limited");
        let spend = r#","details":{"error_code":"enforced_spend_limit_reached"}"#;
        assert_eq!(error_of(429, &body("rate_limit_error", spend)).kind(), "spend_limit");
        assert_eq!(error_of(402, &body("billing_error", "")).kind(), "spend_limit");
        assert_eq!(error_of(529, &body("overloaded_error", "")).kind(), "overloaded");
        assert_eq!(error_of(500, &body("api_error", "")).kind(), "server_error");
        assert_eq!(error_of(400, &body("invalid_request_error", "")).kind(), "refused");
        assert_eq!(error_of(502, "<html>bad gateway</html>").kind(), "server_error");
    }

    #[test]
    fn replies_are_read_by_content_block_type() {
        let reply: Reply = serde_json::from_str(
            r#"{"id":"msg_1","type":"message","role":"assistant","model":"m",
                "content":[{"type":"thinking","thinking":"…","signature":"s"},
                           {"type":"text","text":"a"},
                           {"type":"tool_use","id":"t1","name":"query","input":{"expr":"up"}},
                           {"type":"text","text":"b"}],
                "stop_reason":"tool_use","usage":{"input_tokens":3,"output_tokens":4,
                "cache_read_input_tokens":5}}"#,
        )
        .unwrap();
        assert_eq!(reply.text(), "a\n\nb");
        assert_eq!(reply.usage.cache_read_input_tokens, 5);
        assert!(matches!(&reply.content[2], Block::ToolUse { name, .. } if name == "query"));
        assert_eq!(reply.content[0], Block::Other);
    }
}
