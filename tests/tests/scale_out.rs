//! The scale-out path: a cluster's Prometheus scrapes the real agent, evaluates the bundle's
//! recording rules and `remote_write`s with the shipped `deploy/prometheus/remote-write.yml`
//! to a central Prometheus started with `--web.enable-remote-write-receiver` (the protocol
//! Thanos Receive and Mimir accept), all on loopback.
//!
//! Asserted on the central side: the pre-aggregated recording-rule series arrive with the
//! sender's rate (paced UDP, 1,028 L3 bytes per 1,000-byte datagram) and the same cost rate
//! as the cluster's, the agents' health series arrive too, and none of the per-flow
//! families does; the series counts of both sides are printed (the per-node budget of
//! docs/scale-out.md).

use std::{
    process::Child,
    time::{Duration, Instant},
};

use egressor_tests::*;

const HELPER: &str = env!("CARGO_BIN_EXE_egressor-traffic");
const INTERNET_V4: &str = "203.0.113.9";
const VALUES: &str = "interval: 1s\nrate_window: 10s\n";
/// 200,000 payload bytes per second in 1,000-byte datagrams: 205,600 L3 bytes per second.
const WANT: f64 = 205_600.0;
const FLOW_FAMILIES: &str =
    "{__name__=~\"egressor_flow_(bytes|packets|cost_usd|avoidable_cost_usd)_total\"}";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn wait_until(prometheus: &Prometheus, promql: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    while Instant::now() < deadline {
        last = prometheus.query(promql);
        if let Some(v) = last.filter(|v| ok(*v)) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("Prometheus :{}: {promql} = {last:?}", prometheus.port);
}

#[test]
fn recording_rules_reach_a_central_store_through_remote_write_without_the_flow_series() {
    if !require_bpf(
        "recording_rules_reach_a_central_store_through_remote_write_without_the_flow_series",
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(unique_name("scale"));
    std::fs::create_dir_all(&dir).unwrap();
    let _dir = TempDir(dir.clone());
    let values = dir.join("values.yaml");
    std::fs::write(&values, VALUES).unwrap();
    let bin = egressor_bin();
    let rules = run(&[bin.to_str().unwrap(), "rules", "--values", values.to_str().unwrap()]);
    let rules_file = dir.join("rules.yml");
    std::fs::write(&rules_file, &rules.stdout).unwrap();

    let w = World::new("so", &[INTERNET_V4]);
    let cgroup = Cgroup::new("soc");
    let agent = Agent::start(&[]);
    let _sender = Killed(spawn_in_cgroup(
        &cgroup,
        &w.client,
        HELPER,
        &["udp-pace", &format!("{INTERNET_V4}:9400"), "1000", "200000:90"],
    ));

    // The central store, then the cluster's Prometheus writing to it with the shipped block.
    let central =
        Prometheus::custom("scrape_configs: []\n", &["--web.enable-remote-write-receiver"]);
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/prometheus/remote-write.yml"),
    )
    .expect("deploy/prometheus/remote-write.yml");
    let shipped_url = "http://mimir.monitoring.svc:8080/api/v1/push";
    assert!(shipped.contains(shipped_url), "the shipped block's URL changed");
    let remote_write = shipped
        .replace(shipped_url, &format!("http://127.0.0.1:{}/api/v1/write", central.port))
        .replace(
            "max_samples_per_send: 2000",
            "max_samples_per_send: 2000\n      batch_send_deadline: 1s",
        );
    let cluster = Prometheus::custom(
        &format!(
            "rule_files: ['{}']\nscrape_configs:\n  - job_name: egressor\n    static_configs:\n      \
             - targets: ['127.0.0.1:{}']\n{remote_write}",
            rules_file.display(),
            agent.port
        ),
        &[],
    );

    let workload = cgroup.workload.as_str();
    let rate =
        format!("namespace_workload:egressor_egress_bytes:rate10s{{workload=\"{workload}\"}}");
    let cost =
        format!("namespace_workload:egressor_flow_cost_usd:rate10s{{workload=\"{workload}\"}}");
    // Settled in the cluster, then the same on the central side.
    wait_until(&cluster, &rate, |v| (v - WANT).abs() < WANT * 0.05);
    let central_rate = wait_until(&central, &rate, |v| (v - WANT).abs() < WANT * 0.10);
    let (c_cost, z_cost) =
        (wait_until(&cluster, &cost, |v| v > 0.0), wait_until(&central, &cost, |v| v > 0.0));
    // Written at the cluster's evaluation, so equal up to a second of drift at this rate.
    assert!((c_cost - z_cost).abs() <= c_cost * 0.10, "cost rate {c_cost} vs central {z_cost}");
    // Internet egress, us-east-1, first paid tier: 0.09 USD per GiB
    // (https://aws.amazon.com/ec2/pricing/on-demand/, as of 2025-07-01).
    let hand = central_rate * 0.09 / (1u64 << 30) as f64;
    assert!((z_cost - hand).abs() <= hand * 0.15, "central cost {z_cost} vs hand-priced {hand}");

    // Health series travel; the per-flow families stay.
    wait_until(&central, "count(egressor_build_info)", |v| v >= 1.0);
    assert!(cluster.query(&format!("count({FLOW_FAMILIES})")).is_some_and(|v| v > 0.0));
    assert_eq!(central.query(&format!("count({FLOW_FAMILIES})")), None, "flow series were written");

    let count = |p: &Prometheus, q: &str| p.query(q).unwrap_or(0.0);
    let agent_series = count(&cluster, "count({job=\"egressor\"})");
    let flow_series = count(&cluster, &format!("count({FLOW_FAMILIES})"));
    let rule_series = count(&cluster, "count({__name__=~\".+:.+\"})");
    let central_series = count(&central, "count({__name__=~\".+\"})");
    println!(
        "series: agent {agent_series} (per-flow {flow_series}), recording rules {rule_series}; \
         central store {central_series}"
    );
    assert!(central_series < agent_series + rule_series, "nothing was dropped");
    drop(agent);
}
