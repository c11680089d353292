//! The metrics contract: cost counters equal bytes ÷ 2^30 × the sheet's price for each
//! class and direction (prices written out by hand here), a `--prices` sheet replaces the
//! embedded one, `promtool check metrics` finds no problem, and a real Prometheus scrapes
//! the same numbers.

use std::process::{Command, Stdio};

use egressor_tests::*;

const HELPER: &str = env!("CARGO_BIN_EXE_egressor-traffic");
const GIB: f64 = (1u64 << 30) as f64;

/// AWS us-east-1 list prices (USD per GiB) as published on
/// https://aws.amazon.com/ec2/pricing/on-demand/#Data_Transfer:
/// (class, egress, ingress).
const AWS_USE1: [(&str, f64, f64); 3] =
    [("cross_zone", 0.01, 0.01), ("cross_region", 0.02, 0.0), ("internet", 0.09, 0.0)];

const CUSTOM_SHEET: &str = "provider: aws\nregion: nowhere\ncurrency: USD\nversion: t\nprices:\n  \
    internet:\n    egress: {usd_per_gib: 2.5, source: test, as_of: '2026-11-22'}\n  \
    cross_zone:\n    ingress: {usd_per_gib: 0.5, source: test, as_of: '2026-11-22'}\n";
/// The custom sheet by hand: (class, egress, ingress).
const CUSTOM: [(&str, f64, f64); 3] =
    [("cross_zone", 0.0, 0.5), ("cross_region", 0.0, 0.0), ("internet", 2.5, 0.0)];

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= want.abs() * 1e-12
}

#[test]
fn costs_follow_bytes_and_prices_and_prometheus_agrees() {
    if !require_bpf("costs_follow_bytes_and_prices_and_prometheus_agrees") {
        return;
    }
    // Client namespace (in a cgroup) ↔ server namespace: no address is this host's.
    let client = Netns::new("mc");
    let server = Netns::new("ms");
    let veth = Veth::between("m", Some(&server), &client, true);
    veth.add_addresses("203.0.113.1", "203.0.113.2", 24);
    let cgroup = Cgroup::new("mc");
    let config = temp_file(
        "contract.yaml",
        "node: {zone: use1-az1, region: us-east-1}\nnetworks:\n  \
         - {cidr: 198.51.100.0/24, name: peer-az2, zone: use1-az2, region: us-east-1}\n  \
         - {cidr: '2001:db8:100::/64', name: peer-west, zone: usw2-az1, region: us-west-2}\n",
    );
    let prices = temp_file("prices.yaml", CUSTOM_SHEET);
    let cfg = config.to_str().unwrap();
    let embedded = Agent::start(&["--config.file", cfg]);
    let custom = Agent::start(&["--config.file", cfg, "--prices", prices.to_str().unwrap()]);
    veth.up();

    let (n, size) = (30u64, 900u64);
    let mut echo = server
        .command(HELPER)
        .args(["udp-echo", "[::]:9300", &(3 * n).to_string()])
        .stdout(Stdio::null())
        .spawn()
        .expect("echo server");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (count, bytes) = (n.to_string(), size.to_string());
    for target in ["198.51.100.1:9300", "[2001:db8:100::1]:9300", "203.0.113.1:9300"] {
        let out = helper_in_cgroup(
            &cgroup,
            &client,
            HELPER,
            &["udp-send", target, &count, &bytes, "echo"],
        );
        assert_eq!(out["replies"], count, "{target}");
    }
    assert!(echo.wait().unwrap().success());
    embedded.settle();

    // Bytes per class and direction, by hand: IPv4 28 header bytes, IPv6 48.
    let expected_bytes = |class: &str| match class {
        "cross_region" => n * (size + 48),
        _ => n * (size + 28),
    };
    let workload = cgroup.workload.as_str();
    for (agent, sheet) in [(&embedded, AWS_USE1), (&custom, CUSTOM)] {
        let m = agent.metrics();
        for (class, egress_price, ingress_price) in sheet {
            for (direction, price) in [("egress", egress_price), ("ingress", ingress_price)] {
                let l =
                    [("workload", workload), ("traffic_class", class), ("direction", direction)];
                let bytes = m.sum("egressor_flow_bytes_total", &l);
                let cost = m.sum("egressor_flow_cost_usd_total", &l);
                assert_eq!(bytes as u64, expected_bytes(class), "{class} {direction} bytes");
                let want = bytes / GIB * price;
                assert!(close(cost, want), "{class} {direction}: cost {cost}, want {want}");
                // The effective price is exposed too, for re-pricing history in PromQL.
                let p = [
                    ("traffic_class", class),
                    ("direction", direction),
                    ("remote_service", ""),
                    ("remote_region", ""),
                ];
                let gauge: Vec<f64> =
                    m.select("egressor_price_usd_per_gib", &p).map(|(_, v)| v).collect();
                assert_eq!(gauge, [price], "{class} {direction} price gauge");
            }
        }
        let names: Vec<_> = m
            .select("egressor_flow_bytes_total", &[("workload", workload)])
            .map(|(l, _)| {
                (l["remote"].clone(), l["remote_zone"].clone(), l["traffic_class"].clone())
            })
            .collect();
        assert!(
            names.contains(&("peer-az2".into(), "use1-az2".into(), "cross_zone".into())),
            "{names:?}"
        );
        assert!(names.contains(&("peer-west".into(), "usw2-az1".into(), "cross_region".into())));
        assert!(names.contains(&(String::new(), String::new(), "internet".into())));
    }

    // promtool's linter finds nothing to complain about.
    let text = embedded.metrics_text();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus)");
    std::io::Write::write_all(promtool.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    let report =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "promtool: {report}");

    // A real Prometheus scrapes the same numbers.
    let prometheus = Prometheus::start(&format!("127.0.0.1:{}", embedded.port));
    let internet_egress = expected_bytes("internet") as f64;
    prometheus.wait_for(
        &format!(r#"sum(egressor_flow_bytes_total{{workload="{workload}",traffic_class="internet",direction="egress"}})"#),
        internet_egress,
    );
    prometheus.wait_for(
        &format!(r#"sum(egressor_flow_cost_usd_total{{workload="{workload}",traffic_class="internet",direction="egress"}})"#),
        internet_egress / GIB * 0.09,
    );
    // PromQL re-prices the bytes with the exposed price: the same cost.
    prometheus.wait_for(
        &format!(
            r#"sum(egressor_flow_bytes_total{{workload="{workload}",traffic_class="internet",direction="egress"}}) / 2^30
               * scalar(egressor_price_usd_per_gib{{traffic_class="internet",direction="egress",remote_service="",remote_region=""}})"#
        ),
        internet_egress / GIB * 0.09,
    );
    prometheus.wait_for(r#"egressor_build_info"#, 1.0);
    let _ = std::fs::remove_file(config);
    let _ = std::fs::remove_file(prices);
}
