//! Local HTTP servers standing in for the third-party SaaS the explainer talks to, speaking
//! their documented wire formats and checking every request against them:
//!
//! - [`FakeSlack`]: an incoming webhook (<https://api.slack.com/messaging/webhooks>): JSON
//!   body with `text` and 1–50 `blocks`, section text at most 3,000 characters
//!   (<https://api.slack.com/reference/block-kit/blocks>); and the Web API's
//!   `chat.postMessage` (<https://api.slack.com/methods/chat.postMessage>): bearer bot
//!   token, `channel`, an optional `thread_ts` naming a message it posted, answered
//!   `{"ok": true, "channel", "ts"}`; scripted answers (500, 429 with `Retry-After`,
//!   `ok: false`) before it takes messages.
//! - [`FakeAnthropic`]: the Messages API (<https://docs.anthropic.com/en/api/messages>):
//!   `POST /v1/messages` with `x-api-key`, `anthropic-version: 2023-06-01` and a JSON body
//!   of `model`, `max_tokens`, alternating `messages` starting with the user, `system`,
//!   optional `tools`; scripted replies (errors as `{"type":"error","error":{…}}`, delays);
//!   and an independent check that no IP address appears anywhere in a request.

use std::{
    collections::{HashMap, VecDeque},
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Scripted {
    /// HTTP status.
    pub status: u16,
    /// Extra headers (`retry-after`).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: String,
    /// Wait before answering.
    pub delay: Duration,
}

impl Scripted {
    /// `status` with `body`, at once.
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Self { status, headers: Vec::new(), body: body.into(), delay: Duration::ZERO }
    }

    /// With `name: value` added.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Answered after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    fn respond(self) -> Response {
        let mut r = (
            StatusCode::from_u16(self.status).unwrap(),
            [("content-type", "application/json")],
            self.body,
        )
            .into_response();
        for (k, v) in self.headers {
            r.headers_mut().insert(k, v.parse().unwrap());
        }
        r
    }
}

/// A request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// When it arrived.
    pub at: Instant,
    /// Its headers, names lowercase.
    pub headers: HashMap<String, String>,
    /// Its body as text.
    pub raw: String,
    /// Its body as JSON (`Null` when it is none).
    pub body: Value,
}

#[derive(Default)]
struct Shared {
    script: VecDeque<Scripted>,
    requests: Vec<Recorded>,
    /// Slack: the messages answered `ok`.
    taken: Vec<Recorded>,
    problems: Vec<String>,
}

fn serve(app: Router) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

fn record(headers: &HeaderMap, raw: String) -> Recorded {
    Recorded {
        at: Instant::now(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: serde_json::from_str(&raw).unwrap_or(Value::Null),
        raw,
    }
}

/// Slack's incoming webhook.
pub struct FakeSlack {
    address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

/// The path of the fake webhook URL.
const SLACK_PATH: &str = "/services/T000/B000/XXXX";
/// The bot token the fake Web API takes.
pub const SLACK_BOT_TOKEN: &str = "xoxb-0000-fake";

impl FakeSlack {
    /// Starts the server; it answers `ok` to every valid message once its script is used up.
    pub fn start() -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let s = shared.clone();
        let web = shared.clone();
        let app = Router::new()
            .route(
                SLACK_PATH,
                axum::routing::post(move |headers: HeaderMap, raw: String| {
                    let s = s.clone();
                    async move { take(&s, record(&headers, raw), false) }
                }),
            )
            .route(
                "/api/chat.postMessage",
                axum::routing::post(move |headers: HeaderMap, raw: String| {
                    let s = web.clone();
                    async move { take(&s, record(&headers, raw), true) }
                }),
            );
        Self { address: serve(app), shared }
    }

    /// The webhook URL.
    pub fn url(&self) -> String {
        format!("http://{}{SLACK_PATH}", self.address)
    }

    /// The Web API's base URL (`--slack.api-url`).
    pub fn api_url(&self) -> String {
        format!("http://{}/api/", self.address)
    }

    /// The messages taken, as posted (JSON bodies).
    pub fn taken(&self) -> Vec<Value> {
        self.shared.lock().unwrap().taken.iter().map(|r| r.body.clone()).collect()
    }

    /// Answers the next request with `answer` (then `ok` again).
    pub fn push(&self, answer: Scripted) {
        self.shared.lock().unwrap().script.push_back(answer);
    }

    /// Every request received (scripted and taken ones).
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// The texts of the messages taken (answered `ok`): `text` and every block's text,
    /// joined by newlines.
    pub fn texts(&self) -> Vec<String> {
        self.shared.lock().unwrap().taken.iter().map(|r| message_text(&r.body)).collect()
    }

    /// What broke Slack's format.
    pub fn problems(&self) -> Vec<String> {
        self.shared.lock().unwrap().problems.clone()
    }
}

/// Answers one Slack request: the script first, else checks it and takes it.
fn take(shared: &Mutex<Shared>, recorded: Recorded, web_api: bool) -> Response {
    let mut shared = shared.lock().unwrap();
    if let Some(answer) = shared.script.pop_front() {
        shared.requests.push(recorded);
        return answer.respond();
    }
    let mut problems = slack_problems(&recorded);
    if web_api {
        let auth = recorded.headers.get("authorization").map(String::as_str);
        if auth != Some(&format!("Bearer {SLACK_BOT_TOKEN}")) {
            problems.push(format!("authorization {auth:?}"));
        }
        if recorded.body["channel"].as_str().is_none_or(str::is_empty) {
            problems.push("no channel".into());
        }
        if let Some(ts) = recorded.body.get("thread_ts") {
            let known = shared.taken.iter().any(|t| t.body["ts_given"] == *ts);
            if !known {
                problems.push(format!("thread_ts {ts} names no message posted"));
            }
        }
    }
    let ok = problems.is_empty();
    shared.problems.extend(problems);
    shared.requests.push(recorded.clone());
    if !ok {
        return if web_api {
            json_response(json!({"ok": false, "error": "invalid_arguments"}))
        } else {
            (StatusCode::BAD_REQUEST, "invalid_payload").into_response()
        };
    }
    let ts = format!("1700000000.{:06}", shared.taken.len() + 1);
    let mut taken = recorded;
    taken.body["ts_given"] = json!(ts);
    let channel = taken.body["channel"].clone();
    shared.taken.push(taken);
    if web_api {
        json_response(json!({"ok": true, "channel": channel, "ts": ts}))
    } else {
        "ok".into_response()
    }
}

fn json_response(v: Value) -> Response {
    ([("content-type", "application/json; charset=utf-8")], v.to_string()).into_response()
}

fn slack_problems(r: &Recorded) -> Vec<String> {
    let mut out = Vec::new();
    if !r.headers.get("content-type").is_some_and(|v| v.starts_with("application/json")) {
        out.push(format!("content-type {:?}", r.headers.get("content-type")));
    }
    let v = &r.body;
    if !v["text"].is_string() {
        out.push("no text (the notification fallback)".into());
    }
    let blocks = v["blocks"].as_array().cloned().unwrap_or_default();
    if blocks.is_empty() || blocks.len() > 50 {
        out.push(format!("{} blocks", blocks.len()));
    }
    for b in &blocks {
        let chars = |t: &Value| t.as_str().map_or(0, |t| t.chars().count());
        match b["type"].as_str() {
            Some("section") if chars(&b["text"]["text"]) > 3000 => {
                out.push("section text over 3000 characters".into())
            }
            Some("header") if chars(&b["text"]["text"]) > 150 => {
                out.push("header text over 150 characters".into())
            }
            Some("section" | "header" | "context" | "divider") => {}
            other => out.push(format!("block type {other:?}")),
        }
    }
    out
}

/// Every text of a Slack message, joined.
pub fn message_text(v: &Value) -> String {
    let mut text = v["text"].as_str().unwrap_or_default().to_owned();
    for b in v["blocks"].as_array().into_iter().flatten() {
        for t in [&b["text"]["text"], &b["elements"][0]["text"]] {
            if let Some(t) = t.as_str() {
                text.push('\n');
                text.push_str(t);
            }
        }
    }
    text
}

/// The Anthropic Messages API.
pub struct FakeAnthropic {
    address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

/// The API version the explainer must send.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

impl FakeAnthropic {
    /// Starts the server expecting `key` in `x-api-key`. Unscripted requests get
    /// [`FakeAnthropic::echo_reply`].
    pub fn start(key: &str) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (s, key) = (shared.clone(), key.to_owned());
        let app = Router::new().route(
            "/v1/messages",
            axum::routing::post(move |headers: HeaderMap, raw: String| {
                let (s, key) = (s.clone(), key.clone());
                async move {
                    let recorded = record(&headers, raw);
                    let answer = {
                        let mut shared = s.lock().unwrap();
                        let problems = anthropic_problems(&recorded, &key);
                        shared.problems.extend(problems);
                        let answer = shared.script.pop_front();
                        shared.requests.push(recorded.clone());
                        answer
                    };
                    let answer = answer
                        .unwrap_or_else(|| Scripted::new(200, Self::echo_reply(&recorded.raw)));
                    tokio::time::sleep(answer.delay).await;
                    answer.respond()
                }
            }),
        );
        Self { address: serve(app), shared }
    }

    /// The base URL (`--claude.url`).
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Answers the next request with `answer`.
    pub fn push(&self, answer: Scripted) {
        self.shared.lock().unwrap().script.push_back(answer);
    }

    /// Every request received.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// What broke the documented format, and every IP address seen in a request.
    pub fn problems(&self) -> Vec<String> {
        self.shared.lock().unwrap().problems.clone()
    }

    /// A text reply naming the first placeholders of the prompt, so a test can see them
    /// restored: `EXPLANATION: … pod <p> … destination <a> …`.
    pub fn echo_reply(raw: &str) -> String {
        let token = |prefix: &str, len: usize| {
            raw.find(prefix).map(|i| raw[i..].chars().take(len).collect::<String>())
        };
        let pod = token("pod-", 12).unwrap_or_else(|| "(no pod)".into());
        let address = raw
            .find("[address-")
            .and_then(|i| raw[i..].find(']').map(|j| raw[i..=i + j].to_owned()))
            .unwrap_or_else(|| "(no address)".into());
        text_reply(&format!(
            "EXPLANATION: egress rose; pod {pod} sends to {address}. Check the runbook."
        ))
    }
}

/// A Messages response with one text block.
pub fn text_reply(text: &str) -> String {
    json!({
        "id": "msg_fake", "type": "message", "role": "assistant", "model": "fake",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 120, "output_tokens": 40,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 900},
    })
    .to_string()
}

/// A Messages response calling `name` with `input`.
pub fn tool_use_reply(id: &str, name: &str, input: Value) -> String {
    json!({
        "id": "msg_fake", "type": "message", "role": "assistant", "model": "fake",
        "content": [{"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": id, "name": name, "input": input}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 100, "output_tokens": 20},
    })
    .to_string()
}

/// An API error body (<https://docs.anthropic.com/en/api/errors>).
pub fn error_body(kind: &str, message: &str) -> String {
    json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"})
        .to_string()
}

fn anthropic_problems(r: &Recorded, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let header = |name: &str| r.headers.get(name).map(String::as_str);
    if header("x-api-key") != Some(key) {
        out.push(format!("x-api-key {:?}", header("x-api-key")));
    }
    if header("anthropic-version") != Some(ANTHROPIC_VERSION) {
        out.push(format!("anthropic-version {:?}", header("anthropic-version")));
    }
    if !header("content-type").is_some_and(|v| v.starts_with("application/json")) {
        out.push(format!("content-type {:?}", header("content-type")));
    }
    let b = &r.body;
    if !b.is_object() {
        out.push("body is no JSON object".into());
        return out;
    }
    if b["model"].as_str().is_none_or(str::is_empty) {
        out.push("no model".into());
    }
    if b["max_tokens"].as_u64().is_none_or(|n| n == 0) {
        out.push("no positive max_tokens".into());
    }
    for key in ["temperature", "top_p", "top_k"] {
        if b.get(key).is_some() {
            out.push(format!("hard-coded sampling parameter {key}"));
        }
    }
    match &b["system"] {
        Value::Null | Value::String(_) => {}
        Value::Array(blocks) => {
            for s in blocks {
                if s["type"] != "text" || !s["text"].is_string() {
                    out.push(format!("system block {s}"));
                }
                if !s["cache_control"].is_null() && s["cache_control"]["type"] != "ephemeral" {
                    out.push(format!("cache_control {}", s["cache_control"]));
                }
            }
        }
        other => out.push(format!("system {other}")),
    }
    let messages = b["messages"].as_array().cloned().unwrap_or_default();
    if messages.is_empty() {
        out.push("no messages".into());
    }
    let mut tool_ids: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let want = if i % 2 == 0 { "user" } else { "assistant" };
        if m["role"] != want {
            out.push(format!("message {i} has role {}, want {want}", m["role"]));
        }
        let blocks = match &m["content"] {
            Value::String(_) => continue,
            Value::Array(blocks) if !blocks.is_empty() => blocks.clone(),
            other => {
                out.push(format!("message {i} content {other}"));
                continue;
            }
        };
        let mut next_ids = Vec::new();
        for block in &blocks {
            match block["type"].as_str() {
                Some("text") if block["text"].is_string() => {}
                Some("tool_use") => next_ids.push(block["id"].as_str().unwrap_or("").to_owned()),
                Some("tool_result") => {
                    let id = block["tool_use_id"].as_str().unwrap_or("");
                    if !tool_ids.iter().any(|t| t == id) {
                        out.push(format!("tool_result for unknown tool_use {id:?}"));
                    }
                }
                _ => out.push(format!("message {i} block {block}")),
            }
        }
        tool_ids = next_ids;
    }
    if let Some(tools) = b.get("tools") {
        for t in tools.as_array().cloned().unwrap_or_default() {
            let name = t["name"].as_str().unwrap_or("");
            let name_ok = (1..=64).contains(&name.len())
                && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
            if !name_ok || !t["description"].is_string() || t["input_schema"]["type"] != "object" {
                out.push(format!("tool {t}"));
            }
        }
    }
    if let Some(choice) = b.get("tool_choice")
        && !matches!(choice["type"].as_str(), Some("auto" | "any" | "tool" | "none"))
    {
        out.push(format!("tool_choice {choice}"));
    }
    for address in ip_addresses(&r.raw) {
        out.push(format!("IP address {address} in a request to the model"));
    }
    out
}

/// The IP addresses written in `text`: tokens of hex digits, dots and colons that parse as
/// an address (std's RFC 4291 / dotted-quad parser), and dashed IPv4 (`ip-10-0-1-23`).
pub fn ip_addresses(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for token in text.split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':')) {
        let token = token.trim_matches(|c| c == '.' || c == ':');
        let bare = token.rsplit_once(':').map_or(token, |(h, p)| {
            if h.contains('.') && p.bytes().all(|b| b.is_ascii_digit()) { h } else { token }
        });
        if token.parse::<IpAddr>().is_ok() || bare.parse::<IpAddr>().is_ok() {
            out.push(token.to_owned());
        }
    }
    for token in text.split(|c: char| !(c.is_ascii_digit() || c == '-')) {
        let parts: Vec<&str> = token.trim_matches('-').split('-').collect();
        if parts.len() == 4 && parts.iter().all(|p| p.len() <= 3 && p.parse::<u8>().is_ok()) {
            out.push(token.to_owned());
        }
    }
    out
}
