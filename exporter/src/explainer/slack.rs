//! Posting to Slack through an incoming webhook
//! (<https://api.slack.com/messaging/webhooks>) or `chat.postMessage` with a bot token
//! (threads: the resolved message goes under the firing one): a Block Kit message within
//! Slack's limits
//! (a section's text at most 3,000 characters, at most 50 blocks,
//! <https://api.slack.com/reference/block-kit/blocks>), retried on HTTP 429 after its
//! `Retry-After` seconds and on 5xx with backoff, at most [`ATTEMPTS`] times.

use std::time::Duration;

use serde_json::{Value, json};

/// Longest text of a section block.
pub const SECTION_CHARS: usize = 3_000;
/// Most blocks in one message.
pub const MAX_BLOCKS: usize = 50;
/// Attempts per message.
pub const ATTEMPTS: u32 = 5;
/// Longest wait honoured from a `Retry-After` header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The message: a header; the model's explanation when there is one, then a divider; one
/// section per summary (each cut at [`SECTION_CHARS`] on a character boundary); `footer` as
/// a context line. At most [`MAX_BLOCKS`] blocks (summaries beyond are counted in a context
/// line); `text` is the notification fallback.
pub fn message(
    title: &str,
    explanation: Option<&str>,
    summaries: &[String],
    footer: &str,
) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": cut(title, 150), "emoji": true},
    })];
    if let Some(text) = explanation {
        blocks.push(section(text));
        blocks.push(json!({"type": "divider"}));
    }
    // Room for the footer and the "more" line.
    let room = MAX_BLOCKS - blocks.len() - 2;
    for summary in summaries.iter().take(room) {
        blocks.push(section(summary));
    }
    if summaries.len() > room {
        blocks.push(context(&format!("{} more alerts not shown", summaries.len() - room)));
    }
    blocks.push(context(footer));
    let fallback = match explanation {
        Some(text) => format!("{title}: {text}"),
        None => title.to_owned(),
    };
    json!({"text": cut(&fallback, SECTION_CHARS), "blocks": blocks})
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(text, SECTION_CHARS)}})
}

fn context(text: &str) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": cut(text, SECTION_CHARS)}]})
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max - 1).collect();
    s.push('…');
    s
}

/// Why a message was not posted.
#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    /// Slack refused it (4xx other than 429): not retried.
    #[error("Slack refused the message: HTTP {status}: {body}")]
    Refused {
        /// The status.
        status: u16,
        /// Slack's reason (`invalid_blocks`, `no_text`, …).
        body: String,
    },
    /// Every attempt failed (5xx, 429, unreachable).
    #[error("Slack did not take the message after {ATTEMPTS} attempts: {last}")]
    GaveUp {
        /// The last failure.
        last: String,
    },
}

/// Where messages go.
#[derive(Debug, Clone)]
pub enum Destination {
    /// An incoming webhook's URL (a secret): no threads.
    Webhook(String),
    /// `chat.postMessage` (<https://api.slack.com/methods/chat.postMessage>) with a bot
    /// token (`xoxb-…`, scope `chat:write`) into `channel`: the answer's `ts` lets later
    /// messages of the same alert group go into the first one's thread.
    Bot {
        /// `https://slack.com/api/`.
        api: reqwest::Url,
        /// The bot token (a secret).
        token: String,
        /// Channel id (`C0123ABCD`) or name.
        channel: String,
    },
}

/// Posts `message` to `to`, in the thread of `thread_ts` when given (bot only); returns the
/// posted message's `ts` (bot only).
///
/// # Errors
/// [`SlackError`]: refused (not retried), or every attempt failed.
pub async fn post(
    client: &reqwest::Client,
    to: &Destination,
    message: &Value,
    thread_ts: Option<&str>,
) -> Result<Option<String>, SlackError> {
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        let backoff = Duration::from_millis(250 << attempt);
        let request = match to {
            Destination::Webhook(url) => client.post(url).json(message),
            Destination::Bot { api, token, channel } => {
                let mut body = message.clone();
                body["channel"] = json!(channel);
                if let Some(ts) = thread_ts {
                    body["thread_ts"] = json!(ts);
                }
                let url = api.join("chat.postMessage").map_err(|e| SlackError::Refused {
                    status: 0,
                    body: format!("bad --slack.api-url: {e}"),
                })?;
                client.post(url).bearer_auth(token).json(&body)
            }
        };
        match request.send().await {
            Ok(r) if r.status().as_u16() == 429 => {
                let wait = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(backoff, Duration::from_secs)
                    .min(MAX_RETRY_AFTER);
                last = format!("HTTP 429, retried after {wait:?}");
                tokio::time::sleep(wait).await;
                continue;
            }
            Ok(r) if r.status().is_success() => match to {
                Destination::Webhook(_) => return Ok(None),
                // The Web API answers 200 with `ok` false for its errors.
                Destination::Bot { .. } => {
                    let answer: Value = r.json().await.unwrap_or(Value::Null);
                    if answer["ok"] == true {
                        return Ok(answer["ts"].as_str().map(str::to_owned));
                    }
                    let error = answer["error"].as_str().unwrap_or("no error given");
                    if error == "ratelimited" || error == "internal_error" || error == "fatal_error"
                    {
                        last = format!("chat.postMessage: {error}");
                    } else {
                        return Err(SlackError::Refused { status: 200, body: error.to_owned() });
                    }
                }
            },
            Ok(r) if r.status().is_server_error() => {
                last = format!("HTTP {}", r.status());
            }
            Ok(r) => {
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                return Err(SlackError::Refused { status, body: cut(&body, 200) });
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(backoff).await;
    }
    Err(SlackError::GaveUp { last })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_stay_within_slacks_limits() {
        let long = "é".repeat(5_000);
        let summaries = vec![long; 80];
        let m = message(&"t".repeat(300), Some(&"x".repeat(4000)), &summaries, "footer");
        let blocks = m["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), MAX_BLOCKS);
        for b in blocks.iter().filter(|b| b["type"] == "section") {
            assert_eq!(b["text"]["text"].as_str().unwrap().chars().count(), SECTION_CHARS);
        }
        assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= 150);
        assert_eq!(blocks[2]["type"], "divider");
        let more = &blocks[MAX_BLOCKS - 2]["elements"][0]["text"];
        assert!(more.as_str().unwrap().starts_with("35 more"), "{more}");
        assert_eq!(blocks[MAX_BLOCKS - 1]["elements"][0]["text"], "footer");
        assert!(m["text"].as_str().unwrap().chars().count() <= SECTION_CHARS);
    }
}
