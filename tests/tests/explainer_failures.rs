//! The explainer when its SaaS peers fail, each case as the explainer's docs specify: the
//! Anthropic API answering 429 with `retry-after` (waited, then retried), 529 overloaded
//! (retried with backoff), slower than `--claude.timeout` (retried, then the deterministic
//! summary), malformed JSON (not retried: the summary), the spend limit (not retried: the
//! summary); Slack answering 500 (retried; when it never recovers, counted as failed and the
//! service goes on); and no API key at all (the summary, no request to the model).
//!
//! Real Prometheus (Debian's package) answers the context queries — for workloads it has
//! never seen, so every number is "no data", reported as such — and scrapes the explainer's
//! own metrics, which the test reads back through it. The Anthropic API and Slack are the
//! local servers of [`egressor_tests::fakes`].

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use egressor_tests::{
    fakes::{FakeAnthropic, FakeSlack, Scripted, error_body},
    *,
};

const API_KEY: &str = "sk-ant-failures";

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not after {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Explainer {
    _process: Process,
    url: String,
}

fn explainer(
    dir: &Path,
    prometheus: u16,
    slack: &FakeSlack,
    claude: Option<&FakeAnthropic>,
) -> Explainer {
    explainer_on(dir, free_port(), prometheus, slack, claude)
}

/// Posts a one-alert firing notification for group `group` and returns the workload named.
fn notify(explainer: &Explainer, group: &str) -> String {
    notify_as(explainer, group, "firing", "2026-12-03T10:00:00Z")
}

/// Posts a one-alert notification of `status` for group `group`, the alert started at
/// `starts_at`.
fn notify_as(explainer: &Explainer, group: &str, status: &str, starts_at: &str) -> String {
    let workload = format!("checkout-{group}");
    let body = serde_json::json!({
        "version": "4", "groupKey": format!("{{}}:{{alertname=\"EgressSpike\", workload=\"{workload}\"}}"),
        "status": status, "receiver": "egressor",
        "groupLabels": {"alertname": "EgressSpike", "workload": workload},
        "commonLabels": {"alertname": "EgressSpike", "workload": workload},
        "alerts": [{"status": status, "fingerprint": group,
                    "labels": {"alertname": "EgressSpike", "workload": workload, "severity": "warning"},
                    "annotations": {"summary": format!("{workload} sends far more than usual")},
                    "startsAt": starts_at}],
    });
    let r = ureq::post(&format!("{}/api/v1/alertmanager", explainer.url))
        .header("content-type", "application/json")
        .send(body.to_string())
        .expect("webhook");
    assert_eq!(r.status().as_u16(), 200);
    workload
}

/// The Slack message naming `workload`, waited for.
fn message_for(slack: &FakeSlack, workload: &str) -> String {
    let mut found = None;
    wait_for(&format!("the message for {workload}"), Duration::from_secs(30), || {
        found = slack.texts().into_iter().find(|t| t.contains(workload));
        found.is_some()
    });
    found.unwrap()
}

#[test]
fn claude_and_slack_failures_are_retried_or_fall_back_to_the_summary() {
    let dir = std::env::temp_dir().join(unique_name("explfail"));
    std::fs::create_dir_all(&dir).unwrap();
    struct Gone(PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _gone = Gone(dir.clone());

    let slack = FakeSlack::start();
    let claude = FakeAnthropic::start(API_KEY);
    // Prometheus first (its port for the explainer), scraping the explainer's port chosen now.
    let port = free_port();
    let prometheus = Prometheus::start(&format!("127.0.0.1:{port}"));
    wait_for("Prometheus", Duration::from_secs(20), || prometheus.query("vector(1)").is_some());
    let ex = explainer_on(&dir, port, prometheus.port, &slack, Some(&claude));
    let requests = || claude.requests().len();

    // 429 with retry-after: 1 s waited, then the explanation.
    claude.push(
        Scripted::new(429, error_body("rate_limit_error", "slow down")).header("retry-after", "1"),
    );
    let before = requests();
    let text = message_for(&slack, &notify(&ex, "ratelimited"));
    assert!(text.contains("EXPLANATION"), "{text}");
    let r = claude.requests();
    assert_eq!(r.len() - before, 2);
    let gap = r[before + 1].at - r[before].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}, retry-after said 1 s");
    // No data in Prometheus for this workload: said so, not an error.
    assert!(text.contains("Egress now: no data"), "{text}");
    assert!(!text.contains("query failed"), "every context query runs: {text}");

    // 529 twice: retried with backoff, then the explanation.
    for _ in 0..2 {
        claude.push(Scripted::new(529, error_body("overloaded_error", "Overloaded")));
    }
    let before = requests();
    let text = message_for(&slack, &notify(&ex, "overloaded"));
    assert!(text.contains("EXPLANATION"), "{text}");
    assert_eq!(requests() - before, 3);

    // Slower than --claude.timeout on every attempt: the summary.
    for _ in 0..3 {
        claude
            .push(Scripted::new(200, fakes::text_reply("too late")).after(Duration::from_secs(3)));
    }
    let before = requests();
    let text = message_for(&slack, &notify(&ex, "timeout"));
    assert!(!text.contains("too late") && text.contains("no model explanation"), "{text}");
    assert!(text.contains("timed out") && text.contains("Egress now:"), "{text}");
    assert_eq!(requests() - before, 3);

    // Malformed JSON: not retried, the summary.
    claude.push(Scripted::new(200, "{\"content\": [{\"type\": \"text\", \"text\": "));
    let before = requests();
    let text = message_for(&slack, &notify(&ex, "malformed"));
    assert!(text.contains("malformed reply") && !text.contains("EXPLANATION"), "{text}");
    assert_eq!(requests() - before, 1);

    // The spend limit: not retried, the summary.
    let spend = serde_json::json!({"type": "error", "error": {"type": "rate_limit_error",
        "message": "You have reached your specified API usage limits.",
        "details": {"error_code": "enforced_spend_limit_reached"}}});
    claude.push(Scripted::new(429, spend.to_string()));
    let before = requests();
    let text = message_for(&slack, &notify(&ex, "spend"));
    assert!(text.contains("spend limit"), "{text}");
    assert_eq!(requests() - before, 1);

    // Slack 500 once: retried, one message.
    slack.push(Scripted::new(500, "internal_error"));
    let before = slack.requests().len();
    message_for(&slack, &notify(&ex, "slack500"));
    assert_eq!(slack.requests().len() - before, 2);
    // Slack 500 on every attempt: given up, counted, the service goes on.
    for _ in 0..5 {
        slack.push(Scripted::new(500, "internal_error"));
    }
    let before = slack.requests().len();
    notify(&ex, "slackdown");
    wait_for("five attempts at Slack", Duration::from_secs(30), || {
        slack.requests().len() - before >= 5
    });

    // Every case as Prometheus scraped it from the explainer.
    let metric = |q: &str| prometheus.query(q).unwrap_or(0.0);
    wait_for("Prometheus to scrape the failed Slack post", Duration::from_secs(15), || {
        metric("egressor_explainer_slack_posts_total{result=\"failed\"}") == 1.0
    });
    let claude_result =
        |r: &str| metric(&format!("egressor_explainer_claude_requests_total{{result=\"{r}\"}}"));
    assert_eq!(claude_result("rate_limited"), 1.0);
    assert_eq!(claude_result("overloaded"), 2.0);
    assert_eq!(claude_result("timeout"), 3.0);
    assert_eq!(claude_result("malformed"), 1.0);
    assert_eq!(claude_result("spend_limit"), 1.0);
    let fallback = |r: &str| {
        metric(&format!("egressor_explainer_explanation_fallbacks_total{{reason=\"{r}\"}}"))
    };
    assert_eq!([fallback("timeout"), fallback("malformed"), fallback("spend_limit")], [1.0; 3]);
    assert!(metric("egressor_explainer_claude_request_duration_seconds_count") >= 10.0);
    assert!(ureq::get(&format!("{}/healthz", ex.url)).call().is_ok());
    let problems = claude.problems();
    assert!(problems.is_empty(), "requests to the model: {problems:?}");

    // No API key: the deterministic summary, and nothing sent to the model.
    let keyless = explainer(&dir, prometheus.port, &slack, None);
    let before = requests();
    let text = message_for(&slack, &notify(&keyless, "nokey"));
    assert!(
        text.contains("Egress now: no data") && text.contains("no --claude.api-key-file"),
        "{text}"
    );
    assert_eq!(requests(), before);
    assert!(slack.problems().is_empty(), "{:?}", slack.problems());
}

/// [`explainer`] on a given port (so Prometheus can be told where to scrape first).
fn explainer_on(
    dir: &Path,
    port: u16,
    prometheus: u16,
    slack: &FakeSlack,
    claude: Option<&FakeAnthropic>,
) -> Explainer {
    let write = |name: &str, text: &str| -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let mut cmd = Command::new(egressor_bin());
    cmd.args(["explainer", "--web.listen-address", &format!("127.0.0.1:{port}")])
        .args(["--prometheus.url", &format!("http://127.0.0.1:{prometheus}")])
        .args([
            "--slack.webhook-url-file",
            write(&format!("slack-{port}"), &slack.url()).to_str().unwrap(),
        ])
        .stdout(Stdio::null());
    if let Some(c) = claude {
        let key = write(&format!("key-{port}"), API_KEY);
        cmd.args(["--claude.api-key-file", key.to_str().unwrap(), "--claude.url", &c.url()])
            .args(["--claude.timeout", "1s", "--claude.attempts", "3", "--claude.deadline", "20s"]);
    }
    let process = Process(cmd.spawn().expect("egressor explainer"));
    let url = format!("http://127.0.0.1:{port}");
    wait_for("the explainer", Duration::from_secs(10), || {
        ureq::get(&format!("{url}/healthz")).call().is_ok()
    });
    Explainer { _process: process, url }
}

/// With a bot token, messages go through `chat.postMessage`: the resolved message into the
/// firing one's thread, the next incident of the group a new top-level message; a 429 is
/// retried after `Retry-After`, an `ok: false` answer is not retried.
#[test]
fn bot_messages_thread_the_resolved_under_the_firing() {
    let dir = std::env::temp_dir().join(unique_name("explbot"));
    std::fs::create_dir_all(&dir).unwrap();
    struct Gone(PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _gone = Gone(dir.clone());
    let token = dir.join("bot-token");
    std::fs::write(&token, fakes::SLACK_BOT_TOKEN).unwrap();
    let slack = FakeSlack::start();
    let port = free_port();
    let prometheus = Prometheus::start(&format!("127.0.0.1:{port}"));
    let ex = Explainer {
        _process: Process(
            Command::new(egressor_bin())
                .args(["explainer", "--web.listen-address", &format!("127.0.0.1:{port}")])
                .args(["--prometheus.url", &format!("http://127.0.0.1:{}", prometheus.port)])
                .args(["--slack.bot-token-file", token.to_str().unwrap()])
                .args(["--slack.channel", "C0EGRESS", "--slack.api-url", &slack.api_url()])
                .stdout(Stdio::null())
                .spawn()
                .expect("egressor explainer"),
        ),
        url: format!("http://127.0.0.1:{port}"),
    };
    wait_for("the explainer", Duration::from_secs(10), || {
        ureq::get(&format!("{}/healthz", ex.url)).call().is_ok()
    });

    // Firing, after one 429: a top-level message.
    slack.push(Scripted::new(429, "").header("retry-after", "1"));
    let started = Instant::now();
    notify_as(&ex, "threads", "firing", "2026-12-03T10:00:00Z");
    wait_for("the firing message", Duration::from_secs(20), || slack.taken().len() == 1);
    assert!(started.elapsed() >= Duration::from_millis(950), "Retry-After: 1 not waited");
    let firing = &slack.taken()[0];
    assert_eq!(firing["channel"], "C0EGRESS");
    assert!(firing.get("thread_ts").is_none(), "{firing}");
    // Resolved: in its thread.
    notify_as(&ex, "threads", "resolved", "2026-12-03T10:00:00Z");
    wait_for("the resolved message", Duration::from_secs(20), || slack.taken().len() == 2);
    let resolved = &slack.taken()[1];
    assert_eq!(resolved["thread_ts"], firing["ts_given"], "{resolved}");
    assert!(fakes::message_text(resolved).contains("resolved"));
    // The same alert again later: a new incident, a new top-level message.
    notify_as(&ex, "threads", "firing", "2026-12-03T14:00:00Z");
    wait_for("the new incident", Duration::from_secs(20), || slack.taken().len() == 3);
    assert!(slack.taken()[2].get("thread_ts").is_none());
    // `ok: false` is Slack's refusal: not retried.
    slack.push(Scripted::new(200, r#"{"ok": false, "error": "channel_not_found"}"#));
    let before = slack.requests().len();
    notify(&ex, "refused");
    let metrics = || {
        ureq::get(&format!("{}/metrics", ex.url))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    };
    wait_for("the failed post", Duration::from_secs(20), || {
        metrics().contains("egressor_explainer_slack_posts_total{result=\"failed\"} 1")
    });
    assert_eq!(slack.requests().len() - before, 1, "an ok:false answer is not retried");
    assert!(slack.problems().is_empty(), "{:?}", slack.problems());
}
