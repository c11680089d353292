//! `egressor ask` and `POST /api/v1/ask` against a real Prometheus (Debian's package,
//! scraping the explainer) with a scripted model (the local Messages API of
//! [`egressor_tests::fakes`]).
//!
//! Asserted: the tool loop stops at `--ask.max-tool-calls` (the last request forbids tools
//! with `tool_choice: none`) and the answer lists the queries run; every tool result the
//! model sees is cut to `--ask.max-rows` rows and says how many were left out; the results
//! reach the model without the `instance` labels' addresses (127.0.0.1:port), and the
//! question's address is redacted too; the HTTP route needs the webhook's credentials and a
//! well-formed body.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use egressor_tests::{
    fakes::{FakeAnthropic, FakeSlack, Scripted, tool_use_reply},
    *,
};
use serde_json::{Value, json};

const API_KEY: &str = "sk-ant-ask";
const TOKEN: &str = "ask-token";

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not after {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `tool_result` blocks of the last user message of a request.
fn tool_results(body: &Value) -> Vec<Value> {
    let messages = body["messages"].as_array().unwrap();
    let last = messages.last().unwrap();
    last["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "tool_result")
        .cloned()
        .collect()
}

#[test]
fn ask_stops_at_the_tool_call_limit_and_cuts_results_to_the_row_limit() {
    let dir = std::env::temp_dir().join(unique_name("ask"));
    std::fs::create_dir_all(&dir).unwrap();
    let _dir = Dir(dir.clone());
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let key = write("key", API_KEY);
    let token = write("token", TOKEN);
    let slack = FakeSlack::start();
    let slack_url = write("slack", &slack.url());
    let claude = FakeAnthropic::start(API_KEY);

    // Prometheus scrapes the explainer, so it holds a few dozen series.
    let port = free_port();
    let prometheus = Prometheus::start(&format!("127.0.0.1:{port}"));
    let _explainer = Process(
        Command::new(egressor_bin())
            .args(["explainer", "--web.listen-address", &format!("127.0.0.1:{port}")])
            .args(["--prometheus.url", &format!("http://127.0.0.1:{}", prometheus.port)])
            .args(["--slack.webhook-url-file", slack_url.to_str().unwrap()])
            .args(["--auth.bearer-token-file", token.to_str().unwrap()])
            .args(["--claude.api-key-file", key.to_str().unwrap(), "--claude.url", &claude.url()])
            .stdout(Stdio::null())
            .spawn()
            .expect("egressor explainer"),
    );
    let series = || prometheus.query_all("{__name__=~\".+\"}").map_or(0, |r| r.len());
    wait_for("Prometheus to scrape the explainer", Duration::from_secs(30), || series() > 10);

    // The CLI, limits 3 calls and 3 rows; the model asks for a tool every time.
    let calls = [
        ("t1", "instant_query", json!({"expr": "{__name__=~\".+\"}"})),
        ("t2", "label_values", json!({"label": "__name__"})),
        ("t3", "range_query", json!({"expr": "up", "range": "5m", "step": "1m"})),
        ("t4", "instant_query", json!({"expr": "up"})),
    ];
    for (id, name, input) in &calls {
        claude.push(Scripted::new(200, tool_use_reply(id, name, input.clone())));
    }
    let out = Command::new(egressor_bin())
        .args([
            "ask",
            "--json",
            "--prometheus.url",
            &format!("http://127.0.0.1:{}", prometheus.port),
        ])
        .args(["--claude.api-key-file", key.to_str().unwrap(), "--claude.url", &claude.url()])
        .args(["--ask.max-tool-calls", "3", "--ask.max-rows", "3"])
        .arg("why did egress to 203.0.113.9 triple yesterday?")
        .output()
        .expect("egressor ask");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).expect("--json output");
    assert_eq!(answer["tool_calls"], 3, "{answer:#}");
    assert_eq!(answer["stopped_at_limit"], true);
    let queries: Vec<&str> =
        answer["queries"].as_array().unwrap().iter().map(|q| q.as_str().unwrap()).collect();
    assert_eq!(
        queries,
        [
            "instant_query: {__name__=~\".+\"}",
            "label_values: __name__",
            "range_query over 5m at 1m: up"
        ]
    );
    let text = answer["answer"].as_str().unwrap();
    assert!(text.contains("Stopped at the limit of 3 tool calls") && text.contains("Queries run:"));
    assert!(text.contains("- label_values: __name__"), "{text}");

    let requests = claude.requests();
    assert_eq!(requests.len(), 4, "three tool rounds and the final answer");
    for r in &requests[..3] {
        assert!(r.body["tool_choice"].is_null(), "tools allowed before the limit");
    }
    assert_eq!(requests[3].body["tool_choice"]["type"], "none");
    assert_eq!(requests[3].body["tools"].as_array().map(Vec::len), Some(3));
    // Each result: at most 3 rows and the count of the rest.
    for (i, r) in requests[1..].iter().enumerate() {
        let results = tool_results(&r.body);
        assert_eq!(results.len(), 1, "request {}: {results:?}", i + 2);
        let content = results[0]["content"].as_str().unwrap();
        assert_eq!(results[0]["is_error"], false, "{content}");
        if i < 2 {
            let lines: Vec<&str> = content.lines().collect();
            assert_eq!(lines.len(), 4, "3 rows and the rest's count: {content}");
            assert!(lines[3].contains("more") && lines[3].contains("in all"), "{content}");
        }
    }
    // The instant query's rows name the instance, whose address was redacted.
    let first = tool_results(&requests[1].body)[0]["content"].as_str().unwrap().to_owned();
    assert!(first.contains("instance=\"[address-"), "{first}");
    let problems = claude.problems();
    assert!(problems.is_empty(), "requests to the model: {problems:?}");
    assert!(!requests[0].raw.contains("203.0.113.9"));

    // The HTTP route: one tool call, then the model's answer.
    claude.push(Scripted::new(
        200,
        tool_use_reply("h1", "instant_query", json!({"expr": "sum(up)"})),
    ));
    let url = format!("http://127.0.0.1:{port}/api/v1/ask");
    let post = |auth: Option<&str>, body: &str| {
        let mut r = ureq::post(&url).config().http_status_as_error(false).build();
        if let Some(t) = auth {
            r = r.header("authorization", &format!("Bearer {t}"));
        }
        let mut response = r.header("content-type", "application/json").send(body).unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap_or_default())
    };
    let (status, body) = post(Some(TOKEN), r#"{"question": "how many targets are up?"}"#);
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["queries"], json!(["instant_query: sum(up)"]));
    assert!(answer["answer"].as_str().unwrap().contains("EXPLANATION"), "{answer}");
    let last = claude.requests().last().unwrap().clone();
    assert_eq!(tool_results(&last.body)[0]["content"], "{} 1");
    assert_eq!(post(None, r#"{"question": "x"}"#).0, 401);
    assert_eq!(post(Some(TOKEN), r#"{"q": 1}"#).0, 400);
    assert_eq!(post(Some(TOKEN), r#"{"question": "  "}"#).0, 400);
    assert!(claude.problems().is_empty(), "{:?}", claude.problems());
}
