//! `egressor explainer`: receives Alertmanager webhooks, gathers the alert's numbers from
//! Prometheus and posts a summary to Slack. It answers each webhook at once (200 when taken,
//! 4xx for a bad request) and does the work in the background; a notification seen in the
//! last `--dedupe.ttl` (same group, status and alerts) is answered 200 and dropped, so
//! Alertmanager's retries and the members of an HA pair never make two Slack messages.
//!
//! Routes: `POST /api/v1/alertmanager` (the webhook receiver: bearer token or basic auth as
//! configured, body at most `--web.max-body-bytes`), `POST /api/v1/ask` (`{"question": …}`
//! → `{"answer", "queries", "tool_calls", "stopped_at_limit"}`, same credentials; see
//! [`ask`]), `GET /healthz`, `GET /metrics` (`egressor_explainer_*`, OpenMetrics).

pub mod ask;
pub mod claude;
pub mod context;
mod metrics;
pub mod prompt;
pub mod redact;
pub mod slack;
pub mod summary;
pub mod webhook;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine as _;
use moka::sync::Cache;

use crate::{cli::ExplainerArgs, error::ConfigError, rules::Values};
use claude::Claude;
use context::Prometheus;
use metrics::Metrics;
use redact::PodNames;
use webhook::Notification;

/// Credentials a webhook must carry (Alertmanager's `http_config.authorization` or
/// `basic_auth`).
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    /// Anyone may post (only on a trusted network).
    None,
    /// `Authorization: Bearer <token>` (RFC 6750).
    Bearer(String),
    /// `Authorization: Basic base64(user:password)` (RFC 7617).
    Basic(String, String),
}

impl Auth {
    /// Whether `headers` carry the credentials, compared in constant time.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let expected = match self {
            Self::None => return true,
            Self::Bearer(token) => format!("Bearer {token}"),
            Self::Basic(user, password) => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
        };
        given.is_some_and(|g| {
            g.len() == expected.len()
                && g.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        })
    }
}

/// What the handlers share.
#[derive(Clone)]
struct Explainer {
    auth: Arc<Auth>,
    seen: Cache<String, ()>,
    prometheus: Prometheus,
    slack: Option<Arc<slack::Destination>>,
    /// Alert group → `ts` of its first bot message, for threads.
    threads: Cache<String, String>,
    client: reqwest::Client,
    claude: Option<Arc<Claude>>,
    redact: PodNames,
    /// Key of the pod-name hashes: random per process.
    redact_key: [u8; 16],
    ask_limits: ask::Limits,
    metrics: Arc<Metrics>,
}

/// Reads a secret file: its content without surrounding whitespace.
pub(crate) fn secret(path: &std::path::Path, flag: &'static str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Flag { flag, problem: format!("{}: {e}", path.display()) })?;
    let text = text.trim().to_owned();
    if text.is_empty() {
        return Err(ConfigError::Flag { flag, problem: format!("{} is empty", path.display()) });
    }
    Ok(text)
}

/// The router for `args` (exposed for tests).
///
/// # Errors
/// Unreadable secret files, a bad Prometheus URL or values file, as [`ConfigError`].
pub fn app(args: &ExplainerArgs) -> Result<Router, ConfigError> {
    let auth = match (&args.bearer_token_file, &args.basic_user, &args.basic_password_file) {
        (Some(f), None, None) => Auth::Bearer(secret(f, "--auth.bearer-token-file")?),
        (None, Some(u), Some(f)) => {
            Auth::Basic(u.clone(), secret(f, "--auth.basic-password-file")?)
        }
        (None, None, None) => Auth::None,
        _ => {
            return Err(ConfigError::Flag {
                flag: "--auth.*",
                problem: "give either --auth.bearer-token-file, or --auth.basic-user with \
                          --auth.basic-password-file"
                    .into(),
            });
        }
    };
    let values = match &args.rules_values {
        Some(path) => Values::load(path)?,
        None => Values::default(),
    };
    let prometheus = Prometheus::new(&args.prometheus_url, &values, args.query_timeout)
        .map_err(|problem| ConfigError::Flag { flag: "--prometheus.url", problem })?;
    let slack =
        match (&args.slack_bot_token_file, &args.slack_channel, &args.slack_webhook_url_file) {
            (Some(token), Some(channel), _) => {
                let mut api =
                    reqwest::Url::parse(&args.slack_api_url).map_err(|e| ConfigError::Flag {
                        flag: "--slack.api-url",
                        problem: format!("{}: {e}", args.slack_api_url),
                    })?;
                if !api.path().ends_with('/') {
                    api.set_path(&format!("{}/", api.path()));
                }
                let token = secret(token, "--slack.bot-token-file")?;
                Some(Arc::new(slack::Destination::Bot { api, token, channel: channel.clone() }))
            }
            (Some(_), None, _) => {
                return Err(ConfigError::Flag {
                    flag: "--slack.channel",
                    problem: "--slack.bot-token-file needs the channel to post to".into(),
                });
            }
            (None, _, Some(f)) => {
                Some(Arc::new(slack::Destination::Webhook(secret(f, "--slack.webhook-url-file")?)))
            }
            (None, _, None) => None,
        };
    let client = crate::http_client::client(Duration::from_secs(10)).map_err(|e| {
        ConfigError::Flag { flag: "--slack.webhook-url-file", problem: e.to_string() }
    })?;
    let claude = Claude::from_args(&args.claude)?.map(Arc::new);
    let state = Explainer {
        auth: Arc::new(auth),
        seen: Cache::builder().max_capacity(100_000).time_to_live(args.dedupe_ttl).build(),
        prometheus,
        slack,
        threads: Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_secs(7 * 86_400))
            .build(),
        client,
        claude,
        redact: args.claude.redact_pod_names,
        redact_key: std::array::from_fn(|_| fastrand::u8(..)),
        ask_limits: ask::Limits {
            max_tool_calls: args.ask.max_tool_calls,
            max_rows: args.ask.max_rows.max(1),
        },
        metrics: Arc::new(Metrics::default()),
    };
    Ok(Router::new()
        .route("/api/v1/alertmanager", post(receive))
        .route("/api/v1/ask", post(question))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics::serve))
        .layer(DefaultBodyLimit::max(args.max_body_bytes))
        .with_state(state))
}

/// Serves the explainer until SIGINT or SIGTERM.
///
/// # Errors
/// Bad flags or files ([`ConfigError`]); a listen address in use.
pub async fn run(args: ExplainerArgs) -> Result<(), ConfigError> {
    let app = app(&args)?;
    let listener = tokio::net::TcpListener::bind(args.listen_address).await.map_err(|e| {
        ConfigError::Flag {
            flag: "--web.listen-address",
            problem: format!("{}: {e}", args.listen_address),
        }
    })?;
    tracing::info!(address = %args.listen_address, prometheus = %args.prometheus_url, "explainer listening");
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(crate::agent::shutdown())
        .await
        .map_err(|e| ConfigError::Flag { flag: "--web.listen-address", problem: e.to_string() })
}

fn answer(status: StatusCode, text: &str) -> Response {
    (status, format!("{text}\n")).into_response()
}

/// `POST /api/v1/alertmanager`.
async fn receive(State(ex): State<Explainer>, headers: HeaderMap, body: Bytes) -> Response {
    if !ex.auth.allows(&headers) {
        ex.metrics.rejected("unauthorized");
        return answer(StatusCode::UNAUTHORIZED, "missing or wrong credentials");
    }
    let notification = match Notification::parse(&body) {
        Ok(n) => n,
        Err(e) => {
            ex.metrics.rejected("malformed");
            tracing::warn!(error = %e, "webhook body is no Alertmanager notification");
            return answer(
                StatusCode::BAD_REQUEST,
                &format!("not an Alertmanager notification: {e}"),
            );
        }
    };
    ex.metrics.received(notification.status);
    let identity = notification.identity();
    if ex.seen.contains_key(&identity) {
        ex.metrics.duplicate();
        return answer(StatusCode::OK, "duplicate");
    }
    ex.seen.insert(identity, ());
    tokio::spawn(explain(ex, notification));
    answer(StatusCode::OK, "accepted")
}

/// `POST /api/v1/ask`: `{"question": "…"}` answered by the tool loop.
async fn question(State(ex): State<Explainer>, headers: HeaderMap, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct Question {
        question: String,
    }
    let error = |status: StatusCode, text: String| {
        (status, axum::Json(serde_json::json!({"error": text}))).into_response()
    };
    if !ex.auth.allows(&headers) {
        ex.metrics.rejected("unauthorized");
        return error(StatusCode::UNAUTHORIZED, "missing or wrong credentials".into());
    }
    let q = match serde_json::from_slice::<Question>(&body) {
        Ok(q) if !q.question.trim().is_empty() => q.question,
        Ok(_) => return error(StatusCode::BAD_REQUEST, "`question` is empty".into()),
        Err(e) => {
            ex.metrics.rejected("malformed");
            return error(
                StatusCode::BAD_REQUEST,
                format!("body must be {{\"question\": \"…\"}}: {e}"),
            );
        }
    };
    let Some(claude) = &ex.claude else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no --claude.api-key-file".into());
    };
    let mut redaction = redact::Redaction::new(ex.redact, ex.redact_key, []);
    let outcome = ask::ask(&q, claude, &ex.prometheus, ex.ask_limits, &mut redaction, |o, t| {
        ex.metrics.claude_attempt(o, t)
    })
    .await;
    match outcome {
        Ok(answer) => {
            ex.metrics.asked(true);
            axum::Json(answer).into_response()
        }
        Err(e) => {
            ex.metrics.asked(false);
            error(StatusCode::BAD_GATEWAY, format!("Claude gave no answer: {e}"))
        }
    }
}

/// Gathers the facts of every alert, builds the summary, has the model explain it when one
/// is configured, and posts the message.
async fn explain(ex: Explainer, notification: Notification) {
    let mut summaries = Vec::new();
    for alert in &notification.alerts {
        let facts = ex.prometheus.facts(alert).await;
        ex.metrics.queries(&facts);
        summaries.push(summary::alert(&notification, alert, &facts));
    }
    let name = notification.common_labels.get("alertname").map(String::as_str).unwrap_or("alerts");
    let title = format!("{} {name} ({})", notification.status.as_str(), notification.alerts.len());
    let explanation = match &ex.claude {
        None => Err(("no_api_key", "no --claude.api-key-file".to_owned())),
        Some(claude) => ask_model(&ex, claude, &notification, &summaries).await,
    };
    let footer = match &explanation {
        Ok(_) => {
            ex.metrics.explained("model");
            format!(
                "Explained by {} from the numbers above; names and addresses were redacted \
                 before they left.",
                ex.claude.as_ref().map(|c| c.model.as_str()).unwrap_or_default()
            )
        }
        Err((reason, why)) => {
            ex.metrics.explained("deterministic");
            ex.metrics.fallback(reason);
            format!("Numbers from Prometheus; no model explanation ({why}).")
        }
    };
    let message = slack::message(&title, explanation.as_deref().ok(), &summaries, &footer);
    let Some(to) = &ex.slack else {
        tracing::info!(%title, "no Slack destination: summary only logged\n{}", summaries.join("\n"));
        return;
    };
    // Later messages of a group go into the thread of its first (bot only); a resolved
    // group ends its thread, so the next incident starts a new one.
    let thread = ex.threads.get(&notification.group_key);
    match slack::post(&ex.client, to, &message, thread.as_deref()).await {
        Ok(ts) => {
            ex.metrics.posted(true);
            match (notification.status, thread, ts) {
                (webhook::Status::Resolved, _, _) => ex.threads.invalidate(&notification.group_key),
                (webhook::Status::Firing, None, Some(ts)) => {
                    ex.threads.insert(notification.group_key.clone(), ts)
                }
                _ => {}
            }
        }
        Err(e) => {
            ex.metrics.posted(false);
            tracing::warn!(error = %e, group = %notification.group_key, "Slack post failed");
        }
    }
}

/// The model's explanation of `summaries`, its placeholders restored; the reason when none.
async fn ask_model(
    ex: &Explainer,
    claude: &Claude,
    notification: &Notification,
    summaries: &[String],
) -> Result<String, (&'static str, String)> {
    let mut redaction = prompt::redaction(notification, ex.redact, ex.redact_key);
    let user = prompt::user_message(notification, summaries, &mut redaction);
    let messages =
        [serde_json::json!({"role": "user", "content": [{"type": "text", "text": user}]})];
    let body = claude.body(prompt::SYSTEM, &messages, &[], false);
    let reply = claude
        .send(&body, |outcome, took| ex.metrics.claude_attempt(outcome, took))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, group = %notification.group_key, "Claude gave no explanation: posting the summary");
            (e.kind(), format!("model {}: {e}", claude.model))
        })?;
    let text = reply.text();
    if text.trim().is_empty() {
        return Err(("empty_reply", format!("model {}: empty reply", claude.model)));
    }
    Ok(redaction.restore(text.trim()))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn credentials_are_checked_as_alertmanager_sends_them() {
        let bearer = Auth::Bearer("t0ken".into());
        assert!(bearer.allows(&with("Bearer t0ken")));
        assert!(!bearer.allows(&with("Bearer t0ke")) && !bearer.allows(&HeaderMap::new()));
        // RFC 7617's example: Aladdin / open sesame.
        let basic = Auth::Basic("Aladdin".into(), "open sesame".into());
        assert!(basic.allows(&with("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")));
        assert!(!basic.allows(&with("Bearer QWxhZGRpbjpvcGVuIHNlc2FtZQ==")));
        assert!(Auth::None.allows(&HeaderMap::new()));
    }
}
