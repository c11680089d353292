//! `egressor flowlogs --openmetrics` loads into a real Prometheus through promtool's backfill
//! (`promtool tsdb create-blocks-from openmetrics`), and Prometheus then gives the
//! generator's hand-priced totals (bytes, packets, cost, avoidable cost) and the report's sums
//! by class and path, from the agent's own metric families.

use std::{collections::HashMap, process::Command};

use egressor_tests::{Prometheus, flowlog_gen, shared_data};
use serde_json::Value;

#[test]
fn backfilled_flow_counters_give_the_reports_totals_in_prometheus() {
    let Some(ranges) = shared_data("cloud-ranges/aws-ip-ranges.json") else { return };
    let dir = tempfile::tempdir().unwrap();
    let truth = flowlog_gen::generate(dir.path(), 20_000_000, 5, 1, &ranges).unwrap();
    let file = dir.path().join("flows.om");
    let r = flowlog_gen::report(dir.path(), &["--openmetrics".as_ref(), file.as_os_str()]);
    let om = &r["openmetrics"];
    assert_eq!(om["untimed"]["records"], 0, "every generated record has its end");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.ends_with("# EOF\n") && !text.contains("10.0."), "no address is a label");

    let prometheus =
        Prometheus::custom_with_data("", &["--storage.tsdb.retention.time=100y"], |data| {
            let backfill = Command::new("promtool")
                .args(["tsdb", "create-blocks-from", "openmetrics"])
                .arg(&file)
                .arg(data)
                .output()
                .expect("promtool (apt-get install prometheus)");
            assert!(
                backfill.status.success(),
                "promtool: {}",
                String::from_utf8_lossy(&backfill.stderr)
            );
        });
    // The samples' timestamps: the first and last minute of the logs.
    let stamps: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("egressor_flow_bytes_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .collect();
    let (first, last) = (*stamps.iter().min().unwrap(), *stamps.iter().max().unwrap());
    let query = |q: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(rows) = prometheus.query_all_at(q, Some(last)).filter(|r| !r.is_empty()) {
                return rows;
            }
            assert!(std::time::Instant::now() < deadline, "Prometheus never answered {q}");
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    };
    let total = |family: &str| {
        query(&format!("sum(last_over_time({family}{{hook=\"flowlogs\"}}[1y]))"))[0].1
    };
    // Against the generator's own truth (priced by hand), not only the report.
    assert_eq!(total("egressor_flow_bytes_total"), truth["counted"]["bytes"].as_f64().unwrap());
    assert_eq!(total("egressor_flow_packets_total"), truth["counted"]["packets"].as_f64().unwrap());
    for (family, k) in [
        ("egressor_flow_cost_usd_total", "cost_usd"),
        ("egressor_flow_avoidable_cost_usd_total", "avoidable_usd"),
    ] {
        let (got, want) = (total(family), truth[k].as_f64().unwrap());
        assert!(want > 0.0 && (got - want).abs() < 1e-6, "{family}: {got}, generator {want}");
    }
    let t = &r["totals"];
    let series = query("count(last_over_time(egressor_flow_bytes_total[1y]))")[0].1;
    assert_eq!(series, om["series"].as_f64().unwrap());

    // By class and path, as the report's buckets.
    let mut want: HashMap<(String, String), f64> = HashMap::new();
    for c in r["by_class"].as_array().unwrap() {
        let key = (
            c["traffic_class"].as_str().unwrap().to_owned(),
            c["egress_path"].as_str().unwrap().to_owned(),
        );
        *want.entry(key).or_default() += c["bytes"].as_f64().unwrap();
    }
    let got: HashMap<(String, String), f64> = query(
        "sum by (traffic_class, egress_path) (last_over_time(egressor_flow_bytes_total[1y]))",
    )
    .into_iter()
    .map(|(l, v)| ((l["traffic_class"].clone(), l["egress_path"].clone()), v))
    .collect();
    assert_eq!(got, want);
    // The NAT gateway's S3 traffic is the avoidable part, and names the service.
    let s3 = query("sum(last_over_time(egressor_flow_avoidable_cost_usd_total{remote_service=\"S3\",egress_path=\"nat_gateway\"}[1y]))")[0].1;
    assert!((s3 - t["avoidable_usd"].as_f64().unwrap()).abs() < 1e-6);

    // The bundled dashboards, with "Counted by" set to flowlogs: every panel that reads the
    // flow counters has data.
    let grafana = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../grafana/dashboards");
    let mut checked = 0;
    for file in ["egressor-cost.json", "egressor-graph.json", "egressor-workload.json"] {
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(grafana.join(file)).unwrap()).unwrap();
        for panel in json["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                let metrics: Vec<&str> = expr
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .filter(|w| w.starts_with("egressor_"))
                    .collect();
                if metrics.is_empty() || !metrics.iter().all(|m| m.starts_with("egressor_flow_")) {
                    continue; // recording rules and the agent's own metrics: not in flow logs
                }
                let expr = expr
                    .replace("$__rate_interval", "5m")
                    .replace("$__range", "1h")
                    .replace("$hook", "flowlogs")
                    .replace("$namespace", ".*")
                    .replace("$workload", ".*");
                let rows = prometheus.query_all_at(&expr, Some(last)).unwrap_or_default();
                eprintln!("{file} {:?}: {} rows", panel["title"], rows.len());
                assert!(!rows.is_empty(), "{file}, panel {}: no data for {expr}", panel["title"]);
                checked += 1;
            }
        }
    }
    assert!(checked >= 5, "{checked} panels read the flow counters");

    // Counters grow through the logs: halfway, less than at the end, and more than nothing.
    let mid = (first + last) / 2;
    let halfway = prometheus
        .query_all_at("sum(last_over_time(egressor_flow_bytes_total[1y]))", Some(mid))
        .unwrap()[0]
        .1;
    let end = total("egressor_flow_bytes_total");
    assert!(halfway > 0.2 * end && halfway < 0.8 * end, "halfway {halfway} of {end}");
}
