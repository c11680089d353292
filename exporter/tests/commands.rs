//! `egressor prices` and `egressor classify`, called as the binary calls them.

use clap::Parser;
use egressor::{
    cli::{Cli, Command},
    commands,
    prices::PriceSheet,
};

fn cli(args: &[&str]) -> Command {
    Cli::try_parse_from([&["egressor"], args].concat()).unwrap().command
}

#[test]
fn printed_sheet_parses_back_to_the_sheet_in_use() {
    let Command::Prices(args) = cli(&["prices", "--prices", "aws/us-east-1"]) else { panic!() };
    let mut out = Vec::new();
    commands::prices::run(&args, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let parsed = PriceSheet::parse(&text, std::path::Path::new("<stdout>")).unwrap();
    assert_eq!(parsed, PriceSheet::embedded());
    let Command::Prices(list) = cli(&["prices", "--list"]) else { panic!() };
    let mut out = Vec::new();
    commands::prices::run(&list, &mut out).unwrap();
    assert!(String::from_utf8(out).unwrap().starts_with("aws/us-east-1\tversion "));
}

#[test]
fn classify_says_what_the_agent_would_count() {
    let Some(aws) = egressor_tests::shared_data("cloud-ranges/aws-ip-ranges.json") else { return };
    let Some(gcp) = egressor_tests::shared_data("cloud-ranges/google-cloud-ip-ranges.json") else {
        return;
    };
    let config = egressor_tests::temp_file(
        "classify.yaml",
        &format!(
            "subnets:\n  - {{cidr: 10.0.1.0/24, egress: nat_gateway}}\n\
             cloud_ranges:\n  cache_dir: null\n  sources:\n    - {{provider: aws, file: {}}}\n    \
             - {{provider: gcp, file: {}}}\n",
            aws.display(),
            gcp.display()
        ),
    );
    let cfg = config.to_str().unwrap();
    let Command::Classify(args) = cli(&[
        "classify",
        "--config.file",
        cfg,
        "--from",
        "10.0.1.5",
        "--json",
        "54.231.0.10",
        "52.95.128.179",
        "34.64.192.1",
        "10.0.1.9",
    ]) else {
        panic!()
    };
    let mut out = Vec::new();
    commands::classify::run(&args, &mut out).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let row = |i: usize, k: &str| v[i][k].clone();
    // S3 in us-east-1 through the NAT gateway: 0 transfer + 0.045 NAT processing each way
    // (AWS us-east-1 sheet, 2025-07-01), avoidable.
    assert_eq!(row(0, "traffic_class"), "cloud_same_region");
    assert_eq!(row(0, "service"), "S3");
    assert_eq!(row(0, "egress_path"), "nat_gateway");
    assert_eq!(row(0, "egress_usd_per_gib"), 0.045);
    assert_eq!(row(0, "avoidable"), true);
    // S3 in ap-southeast-2: inter-region 0.02 + 0.045 out, 0 + 0.045 in; not avoidable.
    assert_eq!(row(1, "traffic_class"), "cloud_cross_region");
    assert_eq!(row(1, "region"), "ap-southeast-2");
    assert!((row(1, "egress_usd_per_gib").as_f64().unwrap() - 0.065).abs() < 1e-12);
    assert_eq!(row(1, "ingress_usd_per_gib"), 0.045);
    assert_eq!(row(1, "avoidable"), false);
    // Google Cloud from AWS is the internet: 0.09 (first paid tier) + 0.045.
    assert_eq!(row(2, "traffic_class"), "internet");
    assert_eq!(row(2, "provider"), "gcp");
    assert!((row(2, "egress_usd_per_gib").as_f64().unwrap() - 0.135).abs() < 1e-12);
    // A private neighbour: no path, no price.
    assert_eq!(row(3, "traffic_class"), "private");
    assert_eq!(row(3, "egress_path"), "none");
    let _ = std::fs::remove_file(config);
}

#[test]
fn classify_names_public_peers_by_as_and_country_from_maxmind() {
    let data = |f| egressor_tests::shared_data(&format!("mmdb/{f}"));
    let (Some(asn), Some(country)) =
        (data("GeoLite2-ASN-Test.mmdb"), data("GeoIP2-Country-Test.mmdb"))
    else {
        return;
    };
    let config = egressor_tests::temp_file("classify-geo.yaml", "cloud_ranges: {sources: []}\n");
    let (cfg, asn, country) =
        (config.to_str().unwrap(), asn.to_str().unwrap(), country.to_str().unwrap());
    let setup = ["--config.file", cfg, "--geoip-asn", asn, "--geoip-country", country];
    // GeoLite2-ASN-Test.json: 1.0.0.0/24 is AS15169 "Google Inc."; GeoIP2-Country-Test.json:
    // 2001:218::/32 is JP.
    let addresses = ["1.0.0.1", "2001:218::1"];
    let Command::Classify(args) = cli(&[&["classify", "--json"][..], &setup, &addresses].concat())
    else {
        panic!()
    };
    let mut out = Vec::new();
    commands::classify::run(&args, &mut out).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v[0]["asn"], 15169);
    assert_eq!(v[0]["as_organization"], "Google Inc.");
    assert_eq!(
        (v[0]["name"].clone(), v[0]["name_source"].clone()),
        ("Google Inc.".into(), "asn".into())
    );
    assert_eq!(v[1]["country"], "JP");
    assert_eq!(v[1]["traffic_class"], "internet");
    // The text form says the same, and where a DNS name would come from.
    let Command::Classify(args) = cli(&[&["classify"][..], &setup, &addresses[..1]].concat())
    else {
        panic!()
    };
    let mut out = Vec::new();
    commands::classify::run(&args, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("name         Google Inc. (from asn)"), "{text}");
    assert!(text.contains("AS           AS15169 Google Inc."), "{text}");
    let _ = std::fs::remove_file(config);
}
