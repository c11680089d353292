//! Egress paths and cloud services on real traffic: a workload in a subnet configured behind a
//! NAT gateway talks to addresses from AWS's real `ip-ranges.json` (S3 and DynamoDB in
//! us-east-1, played by a namespace this test made) and to an internet address. Costs are
//! compared with hand computations from the AWS us-east-1 sheet (2025-07-01):
//!
//! - S3 through the NAT gateway: transfer 0.00 (EC2 ↔ S3 in-region is free,
//!   https://aws.amazon.com/ec2/pricing/on-demand/) + NAT processing 0.045 USD/GB in each
//!   direction (https://aws.amazon.com/vpc/pricing/) — all of it avoidable;
//! - DynamoDB through a gateway endpoint: 0, nothing avoidable;
//! - internet through the NAT: egress 0.09 (first paid tier) + 0.045, ingress 0 + 0.045;
//! - S3 over IPv6 from a subnet routed to the internet gateway: 0.

use std::process::Stdio;

use egressor_tests::*;

const HELPER: &str = env!("CARGO_BIN_EXE_egressor-traffic");
const GIB: f64 = (1u64 << 30) as f64;

/// us-east-1 addresses from ip-ranges.json: S3 54.231.0.0/16, DynamoDB 52.94.0.0/22, S3
/// 2600:1fec:b400::/48.
const S3_V4: &str = "54.231.0.10";
const DYNAMODB_V4: &str = "52.94.0.10";
const S3_V6: &str = "2600:1fec:b400::10";
const INTERNET_V4: &str = "203.0.113.9";

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= want.abs() * 1e-9
}

#[test]
fn nat_gateway_endpoint_and_internet_paths_are_priced_by_hand() {
    if !require_bpf("nat_gateway_endpoint_and_internet_paths_are_priced_by_hand") {
        return;
    }
    let Some(ranges) = shared_data("cloud-ranges/aws-ip-ranges.json") else { return };
    // The client (in a cgroup, in a subnet behind the NAT gateway) and the world holding the
    // cloud and internet addresses.
    let w = World::new("p", &[S3_V4, DYNAMODB_V4, INTERNET_V4, S3_V6]);
    w.route_from("10.0.1.1", "10.0.1.5", 24);
    w.route_from("2001:db8:1::1", "2001:db8:1::5", 64);
    let (client, vpc) = (&w.client, &w.world);
    let cgroup = Cgroup::new("pc");
    let config = temp_file(
        "paths.yaml",
        &format!(
            "node: {{provider: aws, region: us-east-1, zone: use1-az1}}\n\
             subnets:\n  - {{cidr: 10.0.1.0/24, egress: nat_gateway, gateway_endpoints: [DYNAMODB]}}\n  \
             - {{cidr: '2001:db8:1::/64', egress: internet_gateway}}\n\
             cloud_ranges:\n  cache_dir: null\n  sources:\n    - {{provider: aws, file: {}}}\n",
            ranges.display()
        ),
    );
    let agent = Agent::start(&["--config.file", config.to_str().unwrap()]);

    let (n, size) = (40u64, 1200u64);
    // One echo server per address: a wildcard socket would answer from the VPC namespace's
    // veth address instead of the service's.
    let target =
        |a: &str| if a.contains(':') { format!("[{a}]:9300") } else { format!("{a}:9300") };
    let targets = [S3_V4, DYNAMODB_V4, INTERNET_V4, S3_V6].map(target);
    let mut echoes: Vec<_> = targets
        .iter()
        .map(|t| {
            vpc.command(HELPER)
                .args(["udp-echo", t, &n.to_string()])
                .stdout(Stdio::null())
                .spawn()
                .expect("echo server")
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (count, bytes) = (n.to_string(), size.to_string());
    for target in &targets {
        let out = helper_in_cgroup(
            &cgroup,
            client,
            HELPER,
            &["udp-send", target, &count, &bytes, "echo"],
        );
        assert_eq!(out["replies"], count, "{target}");
    }
    for echo in &mut echoes {
        assert!(echo.wait().unwrap().success());
    }
    agent.settle();

    let m = agent.metrics();
    let workload = cgroup.workload.as_str();
    // Each direction: n datagrams of `size` payload + 8 UDP + 20 IPv4 (or 40 IPv6) bytes.
    let v4 = (n * (size + 28)) as f64;
    let v6 = (n * (size + 48)) as f64;
    // (class, service, path, bytes per direction, egress USD/GiB, ingress USD/GiB, avoidable)
    let rows = [
        ("cloud_same_region", "S3", "nat_gateway", v4, 0.0 + 0.045, 0.0 + 0.045, true),
        ("cloud_same_region", "DYNAMODB", "vpc_gateway_endpoint", v4, 0.0, 0.0, false),
        ("internet", "", "nat_gateway", v4, 0.09 + 0.045, 0.0 + 0.045, false),
        ("cloud_same_region", "S3", "internet_gateway", v6, 0.0, 0.0, false),
    ];
    for (class, service, path, bytes, egress_price, ingress_price, avoidable) in rows {
        for (direction, price) in [("egress", egress_price), ("ingress", ingress_price)] {
            let l = [
                ("workload", workload),
                ("traffic_class", class),
                ("remote_service", service),
                ("egress_path", path),
                ("direction", direction),
            ];
            let what = format!("{class} {service} {path} {direction}");
            assert_eq!(m.sum("egressor_flow_bytes_total", &l), bytes, "{what} bytes");
            let want = bytes / GIB * price;
            let cost = m.sum("egressor_flow_cost_usd_total", &l);
            assert!(close(cost, want), "{what}: cost {cost}, want {want}");
            let saved = m.sum("egressor_flow_avoidable_cost_usd_total", &l);
            let want_saved = if avoidable { want } else { 0.0 };
            assert!(close(saved, want_saved), "{what}: avoidable {saved}, want {want_saved}");
        }
    }
    // The cloud labels name the provider and region as ip-ranges.json does.
    let s3: Vec<_> = m
        .select("egressor_flow_bytes_total", &[("workload", workload), ("remote_service", "S3")])
        .map(|(l, _)| (l["remote_provider"].clone(), l["remote_region"].clone()))
        .collect();
    assert!(
        !s3.is_empty() && s3.iter().all(|p| p == &("aws".into(), "us-east-1".into())),
        "{s3:?}"
    );
    // The prices used are exposed.
    let nat = [("egress_path", "nat_gateway"), ("direction", "ingress")];
    assert_eq!(m.sum("egressor_path_price_usd_per_gib", &nat), 0.045);
    let up = [("provider", "aws")];
    assert_eq!(m.sum("egressor_cloud_ranges_up", &up), 1.0);
    let _ = std::fs::remove_file(config);
}
