//! Cardinality: 100,000 distinct internet destinations from one workload, named by their AS
//! organisation (MaxMind's GeoLite2-ASN test database), keep the series under the cap — the
//! top K names per workload, the rest `other`; and, with no name limit, a series cap that
//! folds names and then workloads (half of a cap of 12 is kept for the full folds) — while the
//! bytes still add up exactly to what the workload sent.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use egressor_tests::*;
use serde_json::Value;

const HELPER: &str = env!("CARGO_BIN_EXE_egressor-traffic");
/// UDP payload per datagram; on the wire each is 28 bytes more (IPv4 + UDP headers).
const SIZE: u64 = 64;
const HOSTS_PER_NETWORK: u64 = 2_500;
const NETWORKS: usize = 40;

/// IPv4 networks of ≥ 4096 addresses with an AS organisation, one per organisation, in file
/// order: (CIDR, organisation).
fn networks(json: &Value) -> Vec<(String, String)> {
    let mut seen = HashSet::new();
    json.as_array()
        .unwrap()
        .iter()
        .flat_map(|o| o.as_object().unwrap().iter())
        .filter_map(|(net, rec)| {
            let org = rec["autonomous_system_organization"].as_str()?;
            let n: ipnet::Ipv4Net = net.parse().ok()?;
            (n.prefix_len() <= 20 && seen.insert(org.to_owned())).then(|| (net.clone(), org.into()))
        })
        .collect()
}

#[test]
fn hundred_thousand_destinations_keep_series_bounded_and_bytes_exact() {
    if !require_bpf("hundred_thousand_destinations_keep_series_bounded_and_bytes_exact") {
        return;
    }
    let (Some(db), Some(json)) =
        (shared_data("mmdb/GeoLite2-ASN-Test.mmdb"), shared_data("mmdb/GeoLite2-ASN-Test.json"))
    else {
        return;
    };
    let json: Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    let nets = networks(&json);
    assert!(nets.len() >= NETWORKS, "{} networks", nets.len());
    let nets = &nets[..NETWORKS];
    // A client namespace whose default route leads into a second namespace of this test,
    // where the datagrams end: the real public addresses never leave the machine.
    let w = World::new("k", &[]);
    let client = &w.client;
    let cgroup = Cgroup::new("kc");
    let config = temp_file("cardinality.yaml", "cloud_ranges: {sources: []}\n");
    let common = [
        "--config.file",
        config.to_str().unwrap(),
        "--geoip-asn",
        db.to_str().unwrap(),
        "--flow-map.max-entries",
        "262144",
        "--remote-names.window",
        "1s",
    ];
    let named = Agent::start(
        &[
            &common[..],
            &["--remote-names.top-k", "5", "--series.max", "50", "--destinations.window", "8s"],
        ]
        .concat(),
    );
    // No name limit to speak of: the series cap alone bounds this one's 40 names.
    let capped = Agent::start(
        &[&common[..], &["--remote-names.top-k", "1000", "--series.max", "12"]].concat(),
    );

    let scatter = |per_net: u64, cidrs: &[&str]| -> u64 {
        let (size, n) = (SIZE.to_string(), per_net.to_string());
        let args = [&["udp-scatter", &size, "9999", &n][..], cidrs].concat();
        let out = helper_in_cgroup(&cgroup, client, HELPER, &args);
        out["sent"].parse().unwrap()
    };
    let all: Vec<&str> = nets.iter().map(|(c, _)| c.as_str()).collect();
    // The last three organisations become the heaviest: they are not among the first
    // names admitted, so naming them shows the ranking by bytes.
    let heavy: Vec<&str> = all[NETWORKS - 3..].to_vec();
    let mut datagrams = scatter(HOSTS_PER_NETWORK, &all);
    assert_eq!(datagrams, HOSTS_PER_NETWORK * NETWORKS as u64);
    // Two windows later, traffic only to the heavy three: they rank first at the next
    // window's end, and what they send after that counts under their names.
    std::thread::sleep(Duration::from_millis(2_500));
    for _ in 0..4 {
        datagrams += scatter(500, &heavy);
    }
    std::thread::sleep(Duration::from_millis(2_500));
    datagrams += scatter(100, &heavy);
    named.settle();
    capped.settle();

    let workload = cgroup.workload.as_str();
    let want = (datagrams * (SIZE + 28)) as f64;
    let mine = [("workload", workload), ("direction", "egress")];
    let internet = |workload: &'static str| {
        [("workload", workload), ("direction", "egress"), ("traffic_class", "internet")]
    };
    for (agent, cap) in [(&named, 50.0), (&capped, 12.0)] {
        let m = agent.metrics();
        let series = m.sum("egressor_series", &[]);
        let all: Vec<_> = m
            .select("egressor_flow_bytes_total", &[])
            .map(|(l, _)| format!("{} {} {}", l["workload"], l["traffic_class"], l["remote"]))
            .collect();
        assert!(series <= cap, "{series} series with --series.max {cap}: {all:#?}");
        assert_eq!(m.sum("egressor_series_over_cap_total", &[]), 0.0);
        let exposed = m.select("egressor_flow_bytes_total", &[]).count() as f64;
        assert_eq!(exposed, series, "egressor_series counts the exposed label sets");
    }
    // Under the name limit every byte is the workload's, named or `other`. A read cycle over
    // this map (100,000 keys, a debug build, two agents) can outlast `settle`: the counters
    // are waited for until they reach the bytes sent (they must, exactly) or 20 s pass.
    let converged = |agent: &Agent, total: &dyn Fn(&Metrics) -> f64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let m = agent.metrics();
            if total(&m) == want || Instant::now() > deadline {
                return m;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let m = converged(&named, &|m| m.sum("egressor_flow_bytes_total", &mine));
    assert_eq!(m.sum("egressor_flow_bytes_total", &mine), want);
    // Under the series cap, new label sets fold (remote name, then workload into `other`),
    // still counted.
    let both = |c: &Metrics| {
        (
            c.sum("egressor_flow_bytes_total", &[("workload", workload), ("direction", "egress")]),
            c.sum("egressor_flow_bytes_total", &internet("other")),
        )
    };
    let c = converged(&capped, &|c| {
        let (own, other) = both(c);
        own + other
    });
    let (own, other) = both(&c);
    assert_eq!(own + other, want, "own {own} + other {other}");
    let names: HashSet<String> =
        m.select("egressor_flow_bytes_total", &mine).map(|(l, _)| l["remote"].clone()).collect();
    assert!(names.contains("other"), "{names:?}");
    for (cidr, org) in &nets[NETWORKS - 3..] {
        let l = [("workload", workload), ("direction", "egress"), ("remote", org.as_str())];
        let bytes = m.sum("egressor_flow_bytes_total", &l);
        assert!(bytes >= (100 * (SIZE + 28)) as f64, "{org} ({cidr}): {bytes} bytes named");
    }
    assert!(names.len() <= 5 * 3 + 1, "names over three windows: {names:?}");
    let capped_names: HashSet<String> =
        c.select("egressor_flow_bytes_total", &mine).map(|(l, _)| l["remote"].clone()).collect();
    assert!(capped_names.len() <= 6, "{capped_names:?}: 6 detailed label sets under a cap of 12");
    assert_eq!(m.sum("egressor_series_folded_flows_total", &[]), 0.0);
    assert!(c.sum("egressor_series_folded_flows_total", &[]) > 0.0);
    // Each of the 100,000 addresses was new once; the heavy phases only went back to them.
    let distinct = (HOSTS_PER_NETWORK * NETWORKS as u64) as f64;
    let new = m.sum("egressor_new_destinations_total", &[("workload", workload)]);
    assert_eq!(new, distinct);
    // The first 8 s window saw every address (the later phases only went back to some): the
    // HyperLogLog's estimate is within 2 % of 100,000. The gauge appears when it closes.
    let estimate = (0..100)
        .find_map(|_| {
            let l = [("workload", workload)];
            let v = named.metrics().select("egressor_distinct_destinations", &l).next();
            v.map(|(_, v)| v).or_else(|| {
                std::thread::sleep(Duration::from_millis(100));
                None
            })
        })
        .expect("the first destinations window closed");
    assert!((estimate - distinct).abs() <= 0.02 * distinct, "estimate {estimate} of {distinct}");
    let _ = std::fs::remove_file(config);
}
