//! The top-flows API, `egressor top` and the API guard on real traffic: the raw detail
//! (address, port, service, path) that never becomes a label, exact bytes, costs from the
//! AWS us-east-1 sheet by hand, and the allowlist and bearer token.

use std::process::{Command, Stdio};

use egressor_tests::*;
use serde_json::Value;

const HELPER: &str = env!("CARGO_BIN_EXE_egressor-traffic");
const GIB: f64 = (1u64 << 30) as f64;
/// S3 in us-east-1 (54.231.0.0/16 in ip-ranges.json) and a documentation "internet" peer.
const S3: &str = "54.231.0.10";
const INTERNET: &str = "203.0.113.9";

#[test]
fn top_flows_show_raw_detail_exact_bytes_and_hand_priced_costs() {
    if !require_bpf("top_flows_show_raw_detail_exact_bytes_and_hand_priced_costs") {
        return;
    }
    let Some(ranges) = shared_data("cloud-ranges/aws-ip-ranges.json") else { return };
    let w = World::new("f", &[S3, INTERNET]);
    w.route_from("10.0.1.1", "10.0.1.5", 24);
    let client = &w.client;
    let cgroup = Cgroup::new("fc");
    let config = temp_file(
        "flows.yaml",
        &format!(
            "subnets:\n  - {{cidr: 10.0.1.0/24, egress: nat_gateway}}\n\
             cloud_ranges:\n  cache_dir: null\n  sources:\n    - {{provider: aws, file: {}}}\n",
            ranges.display()
        ),
    );
    let token = temp_file("token", "s3cr3t-token\n");
    let cfg = config.to_str().unwrap();
    let agent = Agent::start(&["--config.file", cfg]);
    let guarded = Agent::start(&[
        "--config.file",
        cfg,
        "--web.api.bearer-token-file",
        token.to_str().unwrap(),
        "--web.guard-metrics",
    ]);
    let elsewhere = Agent::start(&["--config.file", cfg, "--web.api.allow", "10.255.255.0/24"]);

    // 60 datagrams of 1000 bytes to S3, 40 to the internet peer, no replies: S3 leads by
    // bytes, the internet peer by cost (0.135 vs 0.045 USD per GiB).
    let send = |target: &str, n: u64, size: u64| {
        let out = helper_in_cgroup(
            &cgroup,
            client,
            HELPER,
            &["udp-send", &format!("{target}:443"), &n.to_string(), &size.to_string()],
        );
        assert_eq!(out["sent"], n.to_string());
        n * (size + 28)
    };
    let s3_bytes = send(S3, 60, 1000);
    let internet_bytes = send(INTERNET, 40, 1000);
    agent.settle();

    let (code, body) = agent.get("/api/v1/flows?top=2&sort=bytes").unwrap();
    assert_eq!(code, 200, "{body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    let flows = reply["flows"].as_array().unwrap();
    let mine: Vec<&Value> =
        flows.iter().filter(|f| f["workload"] == cgroup.workload.as_str()).collect();
    assert_eq!(mine.len(), 2, "both flows are this node's top two: {body}");
    let (s3, internet) = (mine[0], mine[1]);
    assert_eq!(s3["remote_address"], S3);
    assert_eq!(s3["local_address"], "10.0.1.5");
    assert_eq!((s3["port"].as_u64(), s3["protocol"].as_str()), (Some(443), Some("udp")));
    assert_eq!((s3["service"].as_str(), s3["region"].as_str()), (Some("S3"), Some("us-east-1")));
    assert_eq!(
        (s3["traffic_class"].as_str(), s3["egress_path"].as_str()),
        (Some("cloud_same_region"), Some("nat_gateway"))
    );
    assert_eq!(s3["bytes"].as_u64(), Some(s3_bytes));
    assert_eq!(s3["avoidable"], true);
    // S3 in-region transfer 0 + NAT processing 0.045 USD/GB (us-east-1 sheet, 2025-07-01).
    let want = s3_bytes as f64 / GIB * 0.045;
    assert!((s3["cost_usd"].as_f64().unwrap() - want).abs() < 1e-15, "{s3}");
    assert_eq!(internet["remote_address"], INTERNET);
    assert_eq!(internet["bytes"].as_u64(), Some(internet_bytes));
    // Internet egress first paid tier 0.09 + NAT 0.045.
    let want = internet_bytes as f64 / GIB * (0.09 + 0.045);
    assert!((internet["cost_usd"].as_f64().unwrap() - want).abs() < 1e-15, "{internet}");
    // Sorted by cost, the internet flow (0.135 per GiB) comes before S3 (0.045).
    let (_, body) = agent.get("/api/v1/flows?top=1000&sort=cost").unwrap();
    let by_cost: Value = serde_json::from_str(&body).unwrap();
    let order: Vec<&str> = by_cost["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["workload"] == cgroup.workload.as_str())
        .map(|f| f["remote_address"].as_str().unwrap())
        .collect();
    assert_eq!(order, [INTERNET, S3]);

    // The summary agrees with the metrics.
    let (_, body) = agent.get("/api/v1/summary").unwrap();
    let summary: Value = serde_json::from_str(&body).unwrap();
    let m = agent.metrics();
    let total_cost = m.sum("egressor_flow_cost_usd_total", &[]);
    assert!((summary["cost_usd"].as_f64().unwrap() - total_cost).abs() < 1e-12, "{summary}");
    let avoidable = m.sum("egressor_flow_avoidable_cost_usd_total", &[]);
    assert!((summary["avoidable_cost_usd"].as_f64().unwrap() - avoidable).abs() < 1e-12);

    // Bad queries are refused with the reason.
    let (code, body) = agent.get("/api/v1/flows?top=0").unwrap();
    assert!(code == 400 && body.contains("top=0"), "{code} {body}");
    let (code, _) = agent.get("/api/v1/flows?sort=name").unwrap();
    assert_eq!(code, 400);

    // The agent's verdict on an address, from the NAT subnet: what the flows above cost.
    let (code, body) =
        agent.get(&format!("/api/v1/classify?address={S3},{INTERNET}&from=10.0.1.5")).unwrap();
    assert_eq!(code, 200, "{body}");
    let verdicts: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(verdicts[0]["service"], "S3");
    assert_eq!(verdicts[0]["egress_path"], "nat_gateway");
    assert_eq!(verdicts[0]["egress_usd_per_gib"], 0.045, "S3 in-region 0 + NAT 0.045");
    assert_eq!(verdicts[0]["avoidable"], true);
    assert_eq!(verdicts[1]["traffic_class"], "internet");
    assert!((verdicts[1]["egress_usd_per_gib"].as_f64().unwrap() - 0.135).abs() < 1e-12);
    let (code, body) = agent.get("/api/v1/classify?address=10.0.0.300").unwrap();
    assert!(code == 400 && body.contains("\"10.0.0.300\" is not an IP address"), "{code} {body}");

    // `egressor top --once` shows the same flows.
    let out = Command::new(egressor_bin())
        .args([
            "top",
            "--once",
            "--sort",
            "bytes",
            "--url",
            &format!("http://127.0.0.1:{}", agent.port),
        ])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("{S3}:443"))
            && text.contains("aws S3")
            && text.contains("avoidable"),
        "{text}"
    );

    // The guard: a token when one is configured, on the API and (guarded) the metrics.
    assert_eq!(guarded.get("/api/v1/summary").unwrap().0, 401);
    assert_eq!(guarded.get_with("/api/v1/summary", Some("wrong-token!")).unwrap().0, 401);
    assert_eq!(guarded.get_with("/api/v1/summary", Some("s3cr3t-token")).unwrap().0, 200);
    assert_eq!(guarded.get("/metrics").unwrap().0, 401);
    assert_eq!(guarded.get_with("/metrics", Some("s3cr3t-token")).unwrap().0, 200);
    assert_eq!(guarded.get("/healthz").unwrap().0, 200, "health stays open");
    // `egressor classify --agent` sends the token.
    let out = run(&[
        egressor_bin().to_str().unwrap(),
        "classify",
        "--agent",
        &guarded.url(),
        "--bearer-token-file",
        token.to_str().unwrap(),
        S3,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("service      S3"), "{text}");
    // Loopback is not in the allowlist: refused, metrics still open.
    let (code, body) = elsewhere.get("/api/v1/flows").unwrap();
    assert!(code == 403 && body.contains("127.0.0.1"), "{code} {body}");
    assert_eq!(elsewhere.get("/metrics").unwrap().0, 200);
    let _ = std::fs::remove_file(config);
    let _ = std::fs::remove_file(token);
}
