//! Discovery from the AWS instance metadata service, against a local server speaking IMDSv2's
//! documented wire format (a PUT for a session token, then GETs carrying it): the node's zone
//! and region and its subnets fill in the configuration, and classification uses them.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::{get, put},
};
use clap::Parser;
use egressor::{
    cli::{Cli, Command},
    commands,
    discovery::{Discovered, aws_imds},
};

const TOKEN: &str = "AQAEAFakeTokenForTests==";
const MAC: &str = "0e:11:22:33:44:55";

/// Counts requests that came without the session token.
#[derive(Clone, Default)]
struct Imds {
    unauthorized: Arc<AtomicUsize>,
}

async fn token(headers: HeaderMap) -> (StatusCode, String) {
    match headers.get("x-aws-ec2-metadata-token-ttl-seconds") {
        Some(_) => (StatusCode::OK, TOKEN.into()),
        None => (StatusCode::BAD_REQUEST, "missing TTL".into()),
    }
}

async fn metadata(
    State(imds): State<Imds>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    if headers.get("x-aws-ec2-metadata-token").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
        imds.unauthorized.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::UNAUTHORIZED, String::new());
    }
    let mac = format!("network/interfaces/macs/{MAC}/");
    let body = match path.as_str() {
        "placement/availability-zone-id" => "use1-az4".to_owned(),
        "placement/region" => "us-east-1".to_owned(),
        "network/interfaces/macs/" => format!("{MAC}/"),
        p => match p.strip_prefix(&mac) {
            Some("subnet-id") => "subnet-0abc".into(),
            Some("subnet-ipv4-cidr-block") => "10.0.1.0/24".into(),
            Some("subnet-ipv6-cidr-blocks") => "2600:1f18:1:100::/64".into(),
            Some("vpc-id") => "vpc-0def".into(),
            Some("vpc-ipv4-cidr-blocks") => "10.0.0.0/16\n10.1.0.0/16".into(),
            _ => return (StatusCode::NOT_FOUND, String::new()),
        },
    };
    (StatusCode::OK, body)
}

async fn serve(imds: Imds) -> String {
    let app = Router::new()
        .route("/latest/api/token", put(token))
        .route("/latest/meta-data/{*path}", get(metadata))
        .with_state(imds);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn imdsv2_gives_zone_region_subnets_and_vpcs_with_the_session_token() {
    let imds = Imds::default();
    let url = serve(imds.clone()).await;
    let found = aws_imds(&url).await.unwrap();
    let net = |s: &str| s.parse().unwrap();
    assert_eq!(
        found,
        Discovered {
            zone: Some("use1-az4".into()),
            region: Some("us-east-1".into()),
            subnets: vec![(
                "subnet-0abc".into(),
                vec![net("10.0.1.0/24"), net("2600:1f18:1:100::/64")]
            )],
            vpcs: vec![("vpc-0def".into(), vec![net("10.0.0.0/16"), net("10.1.0.0/16")])],
        }
    );
    assert_eq!(imds.unauthorized.load(Ordering::Relaxed), 0, "every GET carried the token");
    let e = aws_imds("http://127.0.0.1:9").await.unwrap_err().to_string();
    assert!(e.starts_with("http://127.0.0.1:9/latest/api/token"), "{e}");
}

#[test]
fn classify_uses_discovered_subnets_zone_and_region() {
    let Some(aws) = egressor_tests::shared_data("cloud-ranges/aws-ip-ranges.json") else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = runtime.block_on(serve(Imds::default()));
    let config = egressor_tests::temp_file(
        "discovery.yaml",
        &format!(
            "discovery:\n  aws_imds: true\n  endpoint: {url}\n  subnet_egress: nat_gateway\n  \
             subnet_gateway_endpoints: [S3]\n\
             cloud_ranges:\n  cache_dir: null\n  sources:\n    - {{provider: aws, file: {}}}\n",
            aws.display()
        ),
    );
    let argv = [
        "egressor",
        "classify",
        "--config.file",
        config.to_str().unwrap(),
        "--from",
        "10.0.1.5",
        "--json",
    ];
    let addrs = ["54.231.0.10", "198.51.100.7", "10.0.1.9", "10.1.2.3"];
    let Command::Classify(args) = Cli::try_parse_from(argv.iter().chain(&addrs)).unwrap().command
    else {
        panic!()
    };
    let mut out = Vec::new();
    commands::classify::run(&args, &mut out).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    // S3 in the discovered region, from the discovered subnet: its gateway endpoint, free.
    assert_eq!(v[0]["traffic_class"], "cloud_same_region");
    assert_eq!(v[0]["egress_path"], "vpc_gateway_endpoint");
    assert_eq!(v[0]["egress_usd_per_gib"], 0.0);
    // The internet through the subnet's NAT gateway: 0.09 + 0.045 (us-east-1 sheet).
    assert!((v[1]["egress_usd_per_gib"].as_f64().unwrap() - 0.135).abs() < 1e-12);
    assert_eq!(v[1]["egress_path"], "nat_gateway");
    // Same subnet: same zone as the node; elsewhere in the VPC: private, named by the VPC.
    assert_eq!(
        (v[2]["traffic_class"].as_str(), v[2]["network"].as_str()),
        (Some("same_zone"), Some("subnet-0abc"))
    );
    assert_eq!(
        (v[3]["traffic_class"].as_str(), v[3]["network"].as_str()),
        (Some("private"), Some("vpc-0def"))
    );
    let _ = std::fs::remove_file(config);
}
