//! `egressor flowlogs` over the Elastic sample logs of `../shared/data/vpcflow/` and over
//! logs written here whose costs are worked out by hand from the embedded AWS us-east-1
//! sheet (exporter/prices/aws-us-east-1.yaml, as of 2025-07-01).
//!
//! Each expectation is read from the sample's own lines (commented next to it).

use std::{io::Write, path::Path};

use clap::Parser;
use egressor::{
    cli::{Cli, Command},
    flowlogs::{self, Outcome},
};
use serde_json::Value;

const GIB: f64 = (1u64 << 30) as f64;
/// Internet egress, first paid tier ($/GiB; the 100 GB free tier is off by default).
const INTERNET: f64 = 0.09;
/// NAT gateway processing, either direction.
const NAT: f64 = 0.045;
const CROSS_ZONE: f64 = 0.01;
const CROSS_REGION: f64 = 0.02;

/// Runs `egressor flowlogs ARGS --json` as the binary does.
fn flowlogs(args: &[&str]) -> (Outcome, Value) {
    let argv = [&["egressor", "flowlogs", "--json"], args].concat();
    let Command::Flowlogs(args) = Cli::try_parse_from(argv).unwrap().command else {
        panic!("flowlogs")
    };
    let mut out = Vec::new();
    let outcome = flowlogs::run(&args, &mut out).unwrap();
    (outcome, serde_json::from_slice(&out).unwrap())
}

/// A configuration with AWS's published ranges (the shared copy, no fetching) and `extra`.
fn config(dir: &Path, extra: &str) -> Option<String> {
    let aws = egressor_tests::shared_data("cloud-ranges/aws-ip-ranges.json")?;
    let path = dir.join("egressor.yaml");
    let text = format!(
        "cloud_ranges:\n  cache_dir: null\n  sources:\n    - {{provider: aws, file: {}}}\n{extra}",
        aws.display()
    );
    std::fs::write(&path, text).unwrap();
    Some(path.to_str().unwrap().to_owned())
}

fn sample(name: &str) -> Option<String> {
    egressor_tests::shared_data(&format!("vpcflow/{name}")).map(|p| p.display().to_string())
}

fn counts(v: &Value) -> (u64, u64, u64) {
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    (n("bytes"), n("packets"), n("records"))
}

fn input(v: &Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| v["input"][k].as_u64().unwrap();
    (n("records"), n("nodata"), n("skipdata"), n("bad_lines"))
}

fn assert_usd(got: &Value, want: f64, what: &str) {
    let got = got.as_f64().unwrap_or_else(|| panic!("{what}: {got}"));
    assert!((got - want).abs() < 1e-9, "{what}: {got} USD, by hand {want} USD");
}

fn destination<'a>(report: &'a Value, address: &str) -> &'a Value {
    report["top_destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["address"] == address)
        .unwrap_or_else(|| panic!("{address} in {}", report["top_destinations"]))
}

#[test]
fn elastic_samples_give_the_counts_and_fields_their_lines_hold() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cfg) = config(dir.path(), "") else { return };
    let Some(accept_reject) = sample("elastic-beats/accept-reject-traffic.log") else { return };
    // Header (v2 default format) and 4 records: 78.24.182.42 → 158.109.0.1 20 packets 4249
    // bytes ACCEPT and the same REJECT; 203.0.113.12 → 172.31.16.139 4 packets 336 bytes
    // ACCEPT, and its reply REJECT.
    let (outcome, r) = flowlogs(&["--config.file", &cfg, &accept_reject]);
    assert_eq!(outcome, Outcome::Complete);
    assert_eq!(input(&r), (4, 0, 0, 0));
    assert_eq!(counts(&r["rejected"]), (4249 + 336, 24, 2));
    assert_eq!(counts(&r["totals"]["counted"]), (4249 + 336, 24, 2));
    // Both ends of the first are public: the source is the interface's. The ICMP record
    // comes in from the internet to the private 172.31.16.139.
    assert_eq!(r["totals"]["egress_bytes"], 4249);
    assert_eq!(r["totals"]["ingress_bytes"], 336);
    assert_usd(&r["totals"]["cost_usd"], 4249.0 / GIB * INTERNET, "internet egress");
    let to = destination(&r, "158.109.0.1");
    assert_eq!(
        (to["traffic_class"].as_str(), to["egress_path"].as_str()),
        (Some("internet"), Some("none"))
    );
    assert_eq!(r["unique_destinations"], 2);

    // No header: 14 fields, AWS's default format. An IPv6 record (54 packets, 8855 bytes),
    // NODATA, SKIPDATA and accept-reject's four records again.
    let Some(extra) = sample("elastic-integrations/test-extra-samples.log") else { return };
    let (_, r) = flowlogs(&["--config.file", &cfg, &extra]);
    assert_eq!(input(&r), (5, 1, 1, 0));
    assert_eq!(counts(&r["totals"]["counted"]), (8855 + 4249 + 336, 54 + 24, 3));
    assert_eq!(r["totals"]["egress_bytes"], 8855 + 4249);
    let v6 = destination(&r, "2001:db8:1234:a102:3304:8879:34cf:4071");
    assert_eq!(counts(v6), (8855, 54, 1));

    // All fields up to version 5 (29), one record: 52 packets of 1 byte REJECTed.
    let Some(v5) = sample("elastic-integrations/test-v5-all-fields.log") else { return };
    let (_, r) = flowlogs(&["--config.file", &cfg, &v5]);
    assert_eq!(input(&r), (1, 0, 0, 0));
    assert_eq!(counts(&r["rejected"]), (1, 52, 1));
    assert_eq!(counts(&r["totals"]["counted"]), (0, 0, 0));

    // All fields up to version 8 (40 — with the ECS fields and reject-reason), NODATA.
    let Some(v8) = sample("elastic-integrations/test-v8-samples.log") else { return };
    let (outcome, r) = flowlogs(&["--config.file", &cfg, &v8]);
    assert_eq!((outcome, input(&r)), (Outcome::Complete, (0, 1, 0, 0)));

    // Version 3 with its own header: 52.213.180.42 (EC2 eu-west-1, 52.208.0.0/13 in
    // ip-ranges.json) → 10.0.0.62, 8 packets, 568 bytes: free ingress from another region.
    let Some(tcp) = sample("elastic-beats/tcp-flag-sequence.log") else { return };
    let (_, r) = flowlogs(&["--config.file", &cfg, &tcp]);
    assert_eq!(input(&r), (1, 0, 0, 0));
    assert_eq!(
        (r["totals"]["ingress_bytes"].as_u64(), r["totals"]["cost_usd"].as_f64()),
        (Some(568), Some(0.0))
    );
    let ec2 = destination(&r, "52.213.180.42");
    assert_eq!(counts(ec2), (568, 8, 1));
    for (k, v) in [
        ("traffic_class", "cloud_cross_region"),
        ("provider", "aws"),
        ("service", "EC2"),
        ("region", "eu-west-1"),
    ] {
        assert_eq!(ec2[k], v, "{k} of {ec2}");
    }
}

#[test]
fn v5_fields_direction_and_service_and_asn_enrichment() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cfg) = config(dir.path(), "") else { return };
    let (Some(v5), Some(asn)) = (
        sample("elastic-integrations/test-v5-all-fields.log"),
        egressor_tests::shared_data("mmdb/GeoLite2-ASN-Test.mmdb"),
    ) else {
        return;
    };
    // The same record, accepted: flow-direction ingress, pkt-srcaddr 89.160.20.156 →
    // pkt-dstaddr 10.200.0.80 (srcaddr/dstaddr name 10.200.0.0), az-id use1-az5,
    // pkt-src-aws-service AMAZON, traffic-path 1.
    let text = std::fs::read_to_string(v5).unwrap().replace(" REJECT ", " ACCEPT ");
    let accepted = dir.path().join("v5-accepted.log");
    std::fs::write(&accepted, text).unwrap();
    let (_, r) = flowlogs(&[
        "--config.file",
        &cfg,
        "--geoip-asn",
        asn.to_str().unwrap(),
        accepted.to_str().unwrap(),
    ]);
    assert_eq!(counts(&r["totals"]["counted"]), (1, 52, 1));
    assert_eq!(r["totals"]["ingress_bytes"], 1);
    let from = destination(&r, "89.160.20.156");
    // GeoLite2-ASN-Test.json: 89.160.20.128/25 is AS29518 "Bredband2 AB".
    assert_eq!(
        (from["asn"].as_u64(), from["as_organization"].as_str()),
        (Some(29518), Some("Bredband2 AB"))
    );
    assert_eq!(from["aws_service"], "AMAZON");
    let sources: Vec<&str> =
        r["by_source"].as_array().unwrap().iter().map(|s| s["address"].as_str().unwrap()).collect();
    assert_eq!(
        sources,
        ["10.200.0.80"],
        "the packet's destination, not the interface's 10.200.0.0"
    );
}

#[test]
fn nat_gateway_and_transit_gateway_samples_without_bytes_count_their_flows() {
    let dir = tempfile::tempdir().unwrap();
    // The instance's subnet sends to the internet through the NAT gateway 10.0.0.220.
    let Some(cfg) = config(dir.path(), "subnets:\n  - {cidr: 10.0.1.0/24, egress: nat_gateway}\n")
    else {
        return;
    };
    let Some(nat) = sample("elastic-beats/custom-nat-gateway.log") else { return };
    // Header `instance-id interface-id srcaddr dstaddr pkt-srcaddr pkt-dstaddr` (AWS's NAT
    // gateway example, no bytes): the gateway's interface logs 10.0.1.5 → 10.0.0.220 for
    // the packet 10.0.1.5 → 203.0.113.5; the instance's interface logs the same flow.
    let (outcome, r) = flowlogs(&["--config.file", &cfg, "--nat-gateway", "10.0.0.220", &nat]);
    assert_eq!((outcome, input(&r)), (Outcome::Complete, (2, 0, 0, 0)));
    assert_eq!(counts(&r["totals"]["counted"]), (0, 0, 1));
    assert_eq!(counts(&r["duplicates"]["seen_at_nat_gateway"]), (0, 0, 1));
    let internet = destination(&r, "203.0.113.5");
    assert_eq!(
        (internet["traffic_class"].as_str(), internet["egress_path"].as_str()),
        (Some("internet"), Some("nat_gateway"))
    );
    assert_eq!(r["by_source"][0]["address"], "10.0.1.5");
    let warnings = r["input"]["warnings"].to_string();
    assert!(
        warnings.contains("custom-nat-gateway.log: the format has no bytes field"),
        "{warnings}"
    );

    // One line, no header, 17 fields: the transit gateway format of Elastic's module.
    let Some(tgw) = sample("elastic-beats/custom-transit-gateway.log") else { return };
    let (outcome, r) = flowlogs(&["--config.file", &cfg, &tgw]);
    assert_eq!(outcome, Outcome::InputErrors);
    let errors = r["input"]["errors"].to_string();
    assert!(
        errors.contains("custom-transit-gateway.log")
            && errors.contains("17 fields")
            && errors.contains("--format"),
        "{errors}"
    );
    let format = "version interface-id account-id vpc-id subnet-id instance-id srcaddr dstaddr srcport dstport protocol tcp-flags type pkt-srcaddr pkt-dstaddr action log-status";
    let (outcome, r) = flowlogs(&["--config.file", &cfg, "--format", format, &tgw]);
    assert_eq!((outcome, input(&r)), (Outcome::Complete, (1, 0, 0, 0)));
    assert_eq!(counts(&r["totals"]["counted"]), (0, 0, 1));
    assert_eq!(destination(&r, "10.40.2.236")["traffic_class"], "private");
}

/// A version 5 custom format with the fields NAT and zone decisions need.
const HEADER: &str = "version interface-id subnet-id az-id srcaddr dstaddr pkt-srcaddr pkt-dstaddr packets bytes action log-status flow-direction traffic-path";

/// Without `az-id`, the local end's zone is its configured network's: records alternating
/// between two zones' instances price each pair from the sender's zone.
#[test]
fn without_az_id_the_local_networks_zone_decides_same_and_cross_zone() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "node: {region: us-east-1}\n\
                 networks:\n  - {cidr: 10.0.1.0/24, name: a, zone: use1-az1, region: us-east-1}\n  \
                 - {cidr: 10.0.2.0/24, name: b, zone: use1-az2, region: us-east-1}\n";
    let Some(cfg) = config(dir.path(), extra) else { return };
    let g = 1u64 << 30;
    // From az1 to az2 (1 GiB, twice), within az2 (2 GiB), within az1 (3 GiB), interleaved.
    let lines = [
        format!("10.0.1.5 10.0.2.9 10 {g} ACCEPT OK"),
        format!("10.0.2.7 10.0.2.9 10 {} ACCEPT OK", 2 * g),
        format!("10.0.1.5 10.0.2.9 10 {g} ACCEPT OK"),
        format!("10.0.1.6 10.0.1.9 10 {} ACCEPT OK", 3 * g),
    ];
    let log = dir.path().join("v.log");
    let header = "srcaddr dstaddr packets bytes action log-status";
    std::fs::write(&log, format!("{header}\n{}\n", lines.join("\n"))).unwrap();
    let (_, r) = flowlogs(&["--config.file", &cfg, log.to_str().unwrap()]);
    let bytes_of = |class: &str| -> u64 {
        let rows = r["by_class"].as_array().unwrap().iter();
        rows.filter(|c| c["traffic_class"] == class).map(|c| counts(c).0).sum()
    };
    assert_eq!((bytes_of("cross_zone"), bytes_of("same_zone")), (2 * g, 5 * g), "{r}");
    assert_usd(&r["totals"]["cost_usd"], 2.0 * CROSS_ZONE, "cross-zone, priced once");
}

#[test]
fn costs_of_nat_gateway_s3_cross_zone_and_cross_region_equal_the_sheet_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "node: {region: us-east-1}\n\
                 networks:\n  - {cidr: 10.0.2.0/24, name: az2, zone: use1-az2, region: us-east-1}\n\
                 subnets:\n  - {cidr: 10.0.1.0/24, egress: nat_gateway}\n";
    let Some(cfg) = config(dir.path(), extra) else { return };
    let g = 1u64 << 30;
    let lines = [
        // 10 GiB to S3 in us-east-1 (54.231.0.0/16) through the NAT gateway 10.0.0.220: the
        // gateway's instance leg counts, its internet leg and the instance's own record are
        // the same bytes.
        format!(
            "5 eni-nat subnet-pub use1-az1 10.0.1.5 10.0.0.220 10.0.1.5 54.231.0.9 1000 {} ACCEPT OK ingress -",
            10 * g
        ),
        format!(
            "5 eni-nat subnet-pub use1-az1 10.0.0.220 54.231.0.9 10.0.0.220 54.231.0.9 1000 {} ACCEPT OK egress 8",
            10 * g
        ),
        format!(
            "5 eni-app subnet-app use1-az1 10.0.1.5 54.231.0.9 - - 1000 {} ACCEPT OK egress -",
            10 * g
        ),
        // 2 GiB back from S3: NAT processing is charged in both directions.
        format!(
            "5 eni-nat subnet-pub use1-az1 10.0.0.220 10.0.1.5 54.231.0.9 10.0.1.5 500 {} ACCEPT OK egress -",
            2 * g
        ),
        // 3 GiB to the internet (198.51.100.7) through the gateway.
        format!(
            "5 eni-nat subnet-pub use1-az1 10.0.1.5 10.0.0.220 10.0.1.5 198.51.100.7 300 {} ACCEPT OK ingress -",
            3 * g
        ),
        // 4 GiB across zones, to 10.0.2.9 in use1-az2, from an instance outside the NAT subnet.
        format!(
            "5 eni-db subnet-db use1-az1 10.0.3.7 10.0.2.9 - - 400 {} ACCEPT OK egress 1",
            4 * g
        ),
        // 5 GiB to EC2 in eu-west-1 (52.208.0.0/13) through the internet gateway.
        format!(
            "5 eni-db subnet-db use1-az1 10.0.3.7 52.213.180.42 - - 500 {} ACCEPT OK egress 8",
            5 * g
        ),
        // Rejected: never billed.
        "5 eni-db subnet-db use1-az1 198.51.100.9 10.0.3.7 - - 10 4000 REJECT OK ingress -"
            .to_owned(),
    ];
    let log = dir.path().join("vpc.log");
    std::fs::write(&log, format!("{HEADER}\n{}\n", lines.join("\n"))).unwrap();
    let (_, r) =
        flowlogs(&["--config.file", &cfg, "--nat-gateway", "10.0.0.220", log.to_str().unwrap()]);

    let s3 = 10.0 * NAT + 2.0 * NAT; // same-region S3 transfer is free; processing is not
    let internet = 3.0 * (INTERNET + NAT);
    let cross_zone = 4.0 * CROSS_ZONE;
    let cross_region = 5.0 * CROSS_REGION;
    assert_usd(&r["totals"]["cost_usd"], s3 + internet + cross_zone + cross_region, "total");
    assert_usd(&r["totals"]["avoidable_usd"], s3, "avoidable");
    // Through the gateway: 10 + 2 GiB of S3, 3 GiB of internet.
    assert_eq!(r["totals"]["nat_gateway_bytes"], 15 * g);
    assert_usd(&r["totals"]["nat_gateway_processing_usd"], 15.0 * NAT, "NAT processing");
    assert_eq!(counts(&r["totals"]["counted"]).0, (10 + 2 + 3 + 4 + 5) * g);
    assert_eq!(counts(&r["duplicates"]["nat_internet_leg"]), (10 * g, 1000, 1));
    assert_eq!(counts(&r["duplicates"]["seen_at_nat_gateway"]), (10 * g, 1000, 1));
    assert_eq!(counts(&r["rejected"]), (4000, 10, 1));
    let avoidable = &r["avoidable"][0];
    assert_eq!(
        (avoidable["service"].as_str(), avoidable["region"].as_str()),
        (Some("S3"), Some("us-east-1"))
    );
    assert_eq!(avoidable["bytes"], 12 * g);
    assert_usd(&avoidable["cost_usd"], s3, "S3 through the NAT gateway");
    // The endpoint goes in the instance's subnet (the NAT interface's record names the
    // gateway's own subnet-pub).
    let fix = avoidable["fix"].as_str().unwrap();
    assert!(fix.starts_with("create a gateway endpoint for S3 (com.amazonaws.us-east-1.s3) in the route table of 10.0.1.0/24"), "{fix}");
    let classes: Vec<(&str, &str, f64)> = r["by_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["traffic_class"].as_str().unwrap(),
                c["egress_path"].as_str().unwrap(),
                c["cost_usd"].as_f64().unwrap(),
            )
        })
        .collect();
    assert!(classes.contains(&("cross_zone", "none", cross_zone)), "{classes:?}");
    let by_source: Vec<(&str, f64)> = r["by_source"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["address"].as_str().unwrap(), s["cost_usd"].as_f64().unwrap()))
        .collect();
    assert_eq!(by_source.len(), 2, "{by_source:?}");
    assert_eq!(by_source[0].0, "10.0.1.5");
    assert!((by_source[0].1 - (s3 + internet)).abs() < 1e-9, "{by_source:?}");
    assert!((by_source[1].1 - (cross_zone + cross_region)).abs() < 1e-9, "{by_source:?}");
}

#[test]
fn bad_lines_are_named_by_file_and_line_and_chunks_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cfg) = config(dir.path(), "") else { return };
    let mut text = format!("{HEADER}\n");
    let mut bad = Vec::new();
    for i in 1..=400u32 {
        let line = i + 1;
        match i % 97 {
            0 => {
                text.push_str("5 eni-1 subnet-1 use1-az1 10.0.1.300 198.51.100.7 - - 1 40 ACCEPT OK egress 8\n");
                bad.push(format!("{line}: srcaddr \"10.0.1.300\" is not an IP address"));
            }
            13 => {
                text.push_str("5 eni-1 truncated\n");
                bad.push(format!("{line}: 3 fields where the format has 14"));
            }
            _ => text.push_str(&format!(
                "5 eni-1 subnet-1 use1-az1 10.0.1.{} 198.51.100.{} - - {} {} ACCEPT OK egress 8\n",
                i % 7,
                i % 11,
                i % 5 + 1,
                100 * i
            )),
        }
    }
    let log = dir.path().join("bad.log");
    std::fs::write(&log, &text).unwrap();
    let path = log.to_str().unwrap();
    let (outcome, whole) = flowlogs(&["--config.file", &cfg, path]);
    assert_eq!(outcome, Outcome::Complete, "bad lines are not fatal");
    assert_eq!(input(&whole), (400 - 8, 0, 0, 8));
    let examples: Vec<String> = whole["input"]["bad_line_examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(examples, bad.iter().map(|b| format!("{path}:{b}")).collect::<Vec<_>>());
    let good: u64 = (1..=400u64).filter(|i| !matches!(i % 97, 0 | 13)).map(|i| 100 * i).sum();
    assert_eq!(whole["totals"]["egress_bytes"], good);
    // The same report (bad lines named in the input's own name), however it was read.
    let same = |r: &Value, name: &str, how: &str| {
        for k in [
            "totals",
            "by_class",
            "by_source",
            "top_destinations",
            "rejected",
            "unique_destinations",
        ] {
            assert_eq!(r[k], whole[k], "{k}, {how}");
        }
        for k in ["records", "bad_lines", "text_bytes"] {
            assert_eq!(r["input"][k], whole["input"][k], "input.{k}, {how}");
        }
        let named = |r: &Value, name: &str| {
            r["input"]["bad_line_examples"].to_string().replace(name, "LOG")
        };
        assert_eq!(named(r, name), named(&whole, path), "bad_line_examples, {how}");
    };
    // Chunks of 100 bytes (most lines cross a chunk's end) on 4 threads.
    for chunk in ["100", "1", "4096"] {
        let (_, chunked) =
            flowlogs(&["--config.file", &cfg, "--chunk-bytes", chunk, "--threads", "4", path]);
        same(&chunked, path, &format!("chunks of {chunk} bytes"));
    }
    assert_eq!(whole["input"]["text_bytes"], text.len());

    // The same text as one gzip file and on stdin: sequential inputs whose reader hands
    // blocks of lines (here of 1 to 4096 bytes) to the other threads.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    let gz_path = dir.path().join("bad.log.gz");
    std::fs::write(&gz_path, gz.finish().unwrap()).unwrap();
    let gz_path = gz_path.to_str().unwrap();
    for chunk in ["100", "1", "4096"] {
        let args = ["--config.file", &cfg, "--chunk-bytes", chunk, "--threads", "4", gz_path];
        let (outcome, r) = flowlogs(&args);
        assert_eq!(outcome, Outcome::Complete);
        same(&r, gz_path, &format!("one gzip file, blocks of {chunk} bytes"));
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_egressor"))
        .args(["flowlogs", "--json", "--config.file", &cfg, "--chunk-bytes", "100"])
        .args(["--threads", "4", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    same(&serde_json::from_slice(&out.stdout).unwrap(), "-", "stdin, blocks of 100 bytes");
}

#[test]
fn a_truncated_gzip_is_named_and_the_other_files_are_still_analysed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cfg) = config(dir.path(), "") else { return };
    let logs = dir.path().join("AWSLogs");
    std::fs::create_dir(&logs).unwrap();
    let record = |i: u32| {
        format!(
            "5 eni-1 subnet-1 use1-az1 10.0.1.5 198.51.100.{} - - 1 1000 ACCEPT OK egress 8\n",
            i % 250
        )
    };
    let gzip = |name: &str, lines: std::ops::Range<u32>| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(format!("{HEADER}\n").as_bytes()).unwrap();
        for i in lines {
            e.write_all(record(i).as_bytes()).unwrap();
        }
        let bytes = e.finish().unwrap();
        std::fs::write(logs.join(name), &bytes).unwrap();
        bytes
    };
    gzip("a-good.log.gz", 0..1000);
    let whole = gzip("b-cut.log.gz", 0..100_000);
    // Cut the second file in the middle: its end (and the gzip trailer) is gone.
    std::fs::write(logs.join("b-cut.log.gz"), &whole[..whole.len() / 2]).unwrap();
    // A plain file next to them, and a gzip of two members (as `cat a.gz b.gz` makes).
    std::fs::write(logs.join("c-plain.log"), format!("{HEADER}\n{}", record(7))).unwrap();
    let members = [gzip("d1", 0..10), gzip("d2", 10..30)].concat();
    std::fs::remove_file(logs.join("d1")).unwrap();
    std::fs::remove_file(logs.join("d2")).unwrap();
    std::fs::write(logs.join("d-members.log.gz"), members).unwrap();

    let (outcome, r) = flowlogs(&["--config.file", &cfg, logs.to_str().unwrap()]);
    assert_eq!(outcome, Outcome::InputErrors);
    let errors: Vec<&str> =
        r["input"]["errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "{}: truncated or corrupt gzip after",
            logs.join("b-cut.log.gz").display()
        )),
        "{errors:?}"
    );
    assert_eq!(r["input"]["files"], 4);
    let records = r["input"]["records"].as_u64().unwrap();
    // The whole of the good, plain and two-member files, and the cut file's first part.
    let before_cut = records - 1000 - 1 - 30;
    assert!(before_cut > 10_000 && before_cut < 100_000, "{records} records");
    assert_eq!(r["totals"]["egress_bytes"], records * 1000);
    assert_eq!(input(&r).3, 0, "the cut leaves no half line behind: {}", r["input"]);
}

#[test]
fn the_binary_reads_gzip_from_stdin_and_says_by_exit_status_what_went_wrong() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let Some(cfg) = config(dir.path(), "") else { return };
    let run = |args: &[&str], stdin: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_egressor"))
            .arg("flowlogs")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    };
    // Two records to the internet (198.51.100.7), 1000 and 2000 bytes, gzip on stdin.
    let text = format!(
        "{HEADER}\n\
         5 eni-1 subnet-1 use1-az1 10.0.1.5 198.51.100.7 - - 2 1000 ACCEPT OK egress 8\n\
         5 eni-1 subnet-1 use1-az1 10.0.1.5 198.51.100.7 - - 3 2000 ACCEPT OK egress 8\n"
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let out = run(&["--config.file", &cfg, "--json", "-"], &gz);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (r["input"]["files"].as_u64(), r["totals"]["egress_bytes"].as_u64()),
        (Some(1), Some(3000))
    );
    assert_usd(&r["totals"]["cost_usd"], 3000.0 / GIB * INTERNET, "internet egress");
    // The summary names the cost; a cut gzip on stdin is an input error (exit 1) naming `-`.
    let out = run(&["--config.file", &cfg, "-"], &gz[..gz.len() - 12]);
    assert_eq!(out.status.code(), Some(1));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("errors\n  -: truncated or corrupt gzip"), "{summary}");
    // A bad flag value is a configuration error (exit 2), naming the flag, before reading.
    let out = run(&["--config.file", &cfg, "--format", "srcaddr bytes", "-"], b"");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--format") && stderr.contains("dstaddr"), "{stderr}");
    let out = run(&["--config.file", &cfg, "/nonexistent/flow.log"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/flow.log"));
    // More networks than a verdict can name: refused, naming the file's field and the limit.
    let networks: String = (0..=egressor::flowlogs::analysis::MAX_NETWORKS)
        .map(|i| format!("  - {{cidr: 10.{}.{}.0/24, name: n{i}}}\n", i >> 8, i & 255))
        .collect();
    let many = dir.path().join("many");
    std::fs::create_dir(&many).unwrap();
    let many = config(&many, &format!("networks:\n{networks}")).unwrap();
    let out = run(&["--config.file", &many, "-"], &gz);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("networks: 65535 entries") && stderr.contains("65534"), "{stderr}");
}

#[test]
fn a_line_longer_than_the_buffer_is_one_bad_line_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cfg) = config(dir.path(), "") else { return };
    let good = |i: u32| {
        format!("5 eni-1 subnet-1 use1-az1 10.0.1.5 198.51.100.{i} - - 1 100 ACCEPT OK egress 8\n")
    };
    let mut text = format!("{HEADER}\n");
    (1..=10).for_each(|i| text.push_str(&good(i)));
    // Line 12: 2.5 MiB without a line feed (a binary file, a broken writer).
    text.push_str(&"x".repeat(5 << 19));
    text.push('\n');
    (11..=20).for_each(|i| text.push_str(&good(i)));
    let log = dir.path().join("long.log");
    std::fs::write(&log, &text).unwrap();
    let path = log.to_str().unwrap();
    let (_, whole) = flowlogs(&["--config.file", &cfg, path]);
    assert_eq!(input(&whole), (20, 0, 0, 1));
    assert_eq!(
        whole["input"]["bad_line_examples"][0],
        format!("{path}:12: longer than 1024 KiB: not a flow-log record")
    );
    assert_eq!(whole["input"]["text_bytes"], text.len());
    assert_eq!(whole["totals"]["egress_bytes"], 2000);
    // Chunk ends inside the long line, and chunks wholly inside it.
    for chunk in ["1048576", "700000", "100000"] {
        let (_, chunked) = flowlogs(&["--config.file", &cfg, "--chunk-bytes", chunk, path]);
        for k in ["records", "bad_lines", "bad_line_examples", "text_bytes"] {
            assert_eq!(chunked["input"][k], whole["input"][k], "{k} in chunks of {chunk} bytes");
        }
        assert_eq!(chunked["totals"], whole["totals"], "chunks of {chunk} bytes");
    }
}
