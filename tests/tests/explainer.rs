//! The explainer end to end: a real Alertmanager (Debian's `prometheus-alertmanager`, on
//! loopback) routes an EgressSpike alert for a workload of the real agent to `egressor
//! explainer`, which asks a real Prometheus (scraping the agent, with the bundle's rules from
//! test-sized values) for the workload's numbers and posts to a local server speaking Slack's
//! incoming-webhook format (JSON body with `text` and at most 50 `blocks`, section text at most
//! 3,000 characters: <https://api.slack.com/messaging/webhooks>,
//! <https://api.slack.com/reference/block-kit/blocks>).
//!
//! The model is a local server speaking the Anthropic Messages API
//! ([`egressor_tests::fakes::FakeAnthropic`]), which checks each request's headers and shape.
//!
//! Asserted: one Slack message for the firing group although Alertmanager repeats it every
//! 3 s (the explainer counts the repeats as duplicates); the message carries the model's
//! explanation, with the placeholders it used turned back into the pod's name, and the
//! workload's egress rate as Prometheus has it, within 15 % of the pacing (L3: 1,028 bytes
//! per 1,000-byte datagram); the resolved notification follows as a second message; no
//! request to the model holds an IP address (the alert carries three) or the raw pod name;
//! the system prompt is marked for caching and identical across requests; webhooks without
//! the bearer token get 401, a malformed body 400, an oversized one 413.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use egressor_tests::{
    fakes::{FakeAnthropic, FakeSlack},
    *,
};

const HELPER: &str = env!("CARGO_BIN_EXE_egressor-traffic");
const INTERNET_V4: &str = "203.0.113.9";
const VALUES: &str = "interval: 1s\nrate_window: 10s\n";
const TOKEN: &str = "s3cret-alertmanager-token";
const API_KEY: &str = "sk-ant-test-key";
const POD: &str = "checkout-7d9f8c6b5-x2x4z";

/// A process killed and reaped on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn now_rfc3339() -> String {
    let out = run(&["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not after {timeout:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The number right after `label` in `text` (a sentence's final `.` dropped).
fn number_after(text: &str, label: &str) -> Option<f64> {
    let rest = &text[text.find(label)? + label.len()..];
    rest.split_whitespace().next()?.trim_end_matches('.').parse().ok()
}

/// The first number before ` kB/s` after `label` in `text`.
fn rate_after(text: &str, label: &str) -> Option<f64> {
    let rest = &text[text.find(label)? + label.len()..];
    let number = rest[..rest.find(" kB/s")?].trim().rsplit(' ').next()?;
    number.parse::<f64>().ok().map(|kb| kb * 1000.0)
}

#[test]
fn alertmanager_to_slack_once_per_group_with_prometheus_numbers_then_resolved() {
    if !require_bpf("alertmanager_to_slack_once_per_group_with_prometheus_numbers_then_resolved") {
        return;
    }
    let dir = std::env::temp_dir().join(unique_name("expl"));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = scopeguard_dir(&dir);
    let values = dir.join("values.yaml");
    std::fs::write(&values, VALUES).unwrap();
    let bin = egressor_bin();
    let rules = run(&[bin.to_str().unwrap(), "rules", "--values", values.to_str().unwrap()]);
    let rules_file = dir.join("rules.yml");
    std::fs::write(&rules_file, &rules.stdout).unwrap();

    // The workload: paced UDP to an internet address, 200,000 payload bytes per second.
    let w = World::new("x", &[INTERNET_V4]);
    let cgroup = Cgroup::new("xc");
    let agent = Agent::start(&[]);
    let prometheus =
        Prometheus::with_rules(&format!("127.0.0.1:{}", agent.port), Some(&rules_file));
    let sender = Process(spawn_in_cgroup(
        &cgroup,
        &w.client,
        HELPER,
        &["udp-pace", &format!("{INTERNET_V4}:9400"), "1000", "200000:90"],
    ));
    let workload = cgroup.workload.as_str();
    let rate_rule =
        format!("namespace_workload:egressor_egress_bytes:rate10s{{workload=\"{workload}\"}}");
    // Settled: the 10 s window wholly inside the paced traffic.
    wait_for("the workload's egress rule", Duration::from_secs(40), || {
        prometheus.query(&rate_rule).is_some_and(|v| (v - 205_600.0).abs() < 205_600.0 * 0.05)
    });

    // Slack, the explainer, Alertmanager.
    let slack = FakeSlack::start();
    let claude = FakeAnthropic::start(API_KEY);
    let secret = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let slack_url = secret("slack-url", &slack.url());
    let token = secret("am-token", TOKEN);
    let key = secret("anthropic-key", API_KEY);
    let explainer_port = free_port();
    let _explainer = Process(
        Command::new(&bin)
            .args(["explainer", "--web.listen-address", &format!("127.0.0.1:{explainer_port}")])
            .args(["--prometheus.url", &format!("http://127.0.0.1:{}", prometheus.port)])
            .args(["--rules.values", values.to_str().unwrap()])
            .args(["--slack.webhook-url-file", slack_url.to_str().unwrap()])
            .args(["--auth.bearer-token-file", token.to_str().unwrap()])
            .args(["--claude.api-key-file", key.to_str().unwrap(), "--claude.url", &claude.url()])
            .stdout(Stdio::null())
            .spawn()
            .expect("egressor explainer"),
    );
    let explainer = format!("http://127.0.0.1:{explainer_port}");
    wait_for("the explainer", Duration::from_secs(10), || {
        ureq::get(&format!("{explainer}/healthz")).call().is_ok()
    });
    let am_port = free_port();
    let am_config = dir.join("alertmanager.yml");
    std::fs::write(
        &am_config,
        format!(
            "route:\n  receiver: egressor\n  group_by: [alertname, namespace, workload]\n  \
             group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 3s\n\
             receivers:\n  - name: egressor\n    webhook_configs:\n      \
             - url: {explainer}/api/v1/alertmanager\n        send_resolved: true\n        \
             http_config:\n          authorization:\n            credentials_file: {}\n",
            token.display()
        ),
    )
    .unwrap();
    let _alertmanager = Process(
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", am_config.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager (apt-get install prometheus-alertmanager)"),
    );
    let am = format!("http://127.0.0.1:{am_port}");
    wait_for("Alertmanager", Duration::from_secs(20), || {
        ureq::get(&format!("{am}/-/ready")).call().is_ok()
    });

    // The alert, as Prometheus would send it: its expression in generatorURL.
    let expr = percent_encode(&rate_rule);
    let alert = |ends_at: Option<String>| {
        let mut a = serde_json::json!({
            "labels": {"alertname": "EgressSpike", "severity": "warning", "workload": workload,
                       "pod": POD, "instance": "10.0.0.5:9100", "node": "ip-10-0-1-23.ec2.internal"},
            "annotations": {
                "summary": format!("{workload} ({POD}) sends far more than usual to {INTERNET_V4}"),
                "runbook_url": "https://github.com/egressor/egressor/blob/main/alerts/runbook.md#egressspike",
            },
            "generatorURL": format!("http://127.0.0.1:{}/graph?g0.expr={expr}&g0.tab=1", prometheus.port),
        });
        if let Some(t) = ends_at {
            a["endsAt"] = serde_json::json!(t);
        }
        serde_json::json!([a]).to_string()
    };
    let post_alert = |body: String| {
        ureq::post(&format!("{am}/api/v2/alerts"))
            .header("content-type", "application/json")
            .send(&body)
            .expect("POST /api/v2/alerts");
    };
    post_alert(alert(None));

    // One message, although Alertmanager repeats the group every 3 s.
    wait_for("a Slack message", Duration::from_secs(30), || !slack.texts().is_empty());
    std::thread::sleep(Duration::from_secs(10));
    let texts = slack.texts();
    assert_eq!(texts.len(), 1, "{texts:#?}");
    let mut response = ureq::get(&format!("{explainer}/metrics")).call().unwrap();
    let metrics = response.body_mut().read_to_string().unwrap();
    let duplicates: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("egressor_explainer_notifications_duplicate_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(duplicates >= 1.0, "Alertmanager's repeats were not seen:\n{metrics}");
    let text = &texts[0];
    let want = 200_000.0 / 1000.0 * 1028.0;
    assert!(
        text.contains("EgressSpike") && text.contains("firing") && text.contains(workload),
        "{text}"
    );
    assert!(!text.contains("query failed"), "every context query runs: {text}");
    let baseline = rate_after(text, "Baseline (1d mean):").unwrap_or_else(|| panic!("{text}"));
    assert!(baseline > 0.0 && baseline <= want * 1.15, "baseline {baseline}: {text}");
    assert!(number_after(text, "New external destinations in the last hour:").is_some(), "{text}");
    // Prometheus is minutes old: everything the workload sends to is new since a day ago.
    let new = rate_after(text, "New since a day ago:").unwrap_or_else(|| panic!("{text}"));
    assert!((new - want).abs() <= want * 0.15, "new destinations {new} vs {want}: {text}");
    // The model's words, its pod placeholder back to the pod's name.
    assert!(text.contains(&format!("EXPLANATION: egress rose; pod {POD}")), "{text}");
    assert!(metrics.contains("egressor_explainer_claude_tokens_total{type=\"cache_read\"} 900"));
    let now = rate_after(text, "Egress now:").unwrap_or_else(|| panic!("no egress in {text}"));
    assert!((now - want).abs() <= want * 0.15, "egress {now} vs {want}: {text}");
    // The expression's value (bytes per second) as a plain number.
    let value = number_after(text, "Alert expression value:")
        .unwrap_or_else(|| panic!("no expression value in {text}"));
    assert!((value - want).abs() <= want * 0.15, "expression {value} vs {want}: {text}");

    // Resolved: a second message.
    post_alert(alert(Some(now_rfc3339())));
    wait_for("the resolved message", Duration::from_secs(30), || slack.texts().len() >= 2);
    std::thread::sleep(Duration::from_secs(6));
    let texts = slack.texts();
    assert_eq!(texts.len(), 2, "{texts:#?}");
    assert!(texts[1].contains("resolved"), "{}", texts[1]);
    let problems = slack.problems();
    assert!(problems.is_empty(), "requests outside Slack's format: {problems:?}");

    // What reached the model: two requests (firing, resolved), in the documented format,
    // without an address or the pod's name, the system prompt cached and the same.
    let requests = claude.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let problems = claude.problems();
    assert!(problems.is_empty(), "requests to the model: {problems:?}");
    for r in &requests {
        assert!(!r.raw.contains(POD) && !r.raw.contains("x2x4z"), "pod name sent: {}", r.raw);
        assert!(r.raw.contains("pod-"), "no pod placeholder: {}", r.raw);
        assert_eq!(r.body["system"][0]["cache_control"]["type"], "ephemeral");
        assert_eq!(r.body["system"], requests[0].body["system"]);
    }
    let prompt = requests[0].body["messages"][0]["content"][0]["text"].as_str().unwrap();
    assert!(prompt.contains("Egress now:") && prompt.contains(workload), "{prompt}");

    // Bad webhooks: refused with a status, the service keeps running.
    let hook = format!("{explainer}/api/v1/alertmanager");
    let status = |token: Option<&str>, body: Vec<u8>| -> u16 {
        let mut r = ureq::post(&hook).config().http_status_as_error(false).build();
        if let Some(t) = token {
            r = r.header("authorization", &format!("Bearer {t}"));
        }
        r.send(&body[..]).map(|r| r.status().as_u16()).unwrap_or(0)
    };
    assert_eq!(status(None, b"{}".to_vec()), 401);
    assert_eq!(status(Some("wrong"), b"{}".to_vec()), 401);
    assert_eq!(status(Some(TOKEN), b"{\"groupKey\": 1".to_vec()), 400);
    // A body over the limit (1 MiB) is refused once the explainer has read past it. The
    // request is written by hand: 2 MiB declared, 1 MiB + 1 byte sent, all of which the
    // explainer reads before it answers. (Sending all 2 MiB races the refusal: the explainer
    // answers and closes while the client still sends, and the client's next write fails
    // before it reads the 413.)
    let oversized = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", explainer_port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = format!(
            "POST /api/v1/alertmanager HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            2 << 20
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&vec![b' '; (1 << 20) + 1]).unwrap();
        let mut response = [0u8; 64];
        let n = stream.read(&mut response).unwrap();
        String::from_utf8_lossy(&response[..n]).into_owned()
    };
    assert!(oversized.starts_with("HTTP/1.1 413"), "{oversized:?}");
    assert!(ureq::get(&format!("{explainer}/healthz")).call().is_ok());
    drop(sender);
}

/// Removes `dir` on drop.
fn scopeguard_dir(dir: &std::path::Path) -> impl Drop {
    struct Guard(std::path::PathBuf);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    Guard(dir.to_owned())
}
