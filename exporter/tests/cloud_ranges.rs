//! Classification against the providers' real range files in `../shared/data/cloud-ranges/`.
//!
//! Each expected (provider, service, region, prefix) below was read from the files; the test
//! also checks every row against the raw JSON, so a wrong row cannot pass.

use egressor::cloud::{CloudTable, Provider, formats};
use serde_json::Value;

const FILES: [(Provider, &str); 3] = [
    (Provider::Aws, "cloud-ranges/aws-ip-ranges.json"),
    (Provider::Gcp, "cloud-ranges/google-cloud-ip-ranges.json"),
    (Provider::Azure, "cloud-ranges/microsoft-azure-ip-ranges.json"),
];

/// (address, provider, service, region, the published prefix that decided the service).
const EXPECTED: &[(&str, Provider, &str, &str, &str)] = &[
    // Listed as both AMAZON and S3: the specific service wins (SOURCES.md cross-check).
    ("52.95.128.179", Provider::Aws, "S3", "ap-southeast-2", "52.95.128.0/21"),
    ("3.5.144.1", Provider::Aws, "S3", "ap-northeast-2", "3.5.144.0/23"),
    ("16.15.8.1", Provider::Aws, "S3", "ap-southeast-6", "16.15.8.0/22"),
    ("16.12.56.1", Provider::Aws, "S3", "ca-west-1", "16.12.56.0/23"),
    ("13.248.76.1", Provider::Aws, "DYNAMODB", "mx-central-1", "13.248.76.0/24"),
    ("35.71.114.1", Provider::Aws, "DYNAMODB", "ap-northeast-1", "35.71.114.0/24"),
    ("18.236.0.1", Provider::Aws, "EC2", "us-west-2", "18.236.0.0/15"),
    ("54.160.0.1", Provider::Aws, "EC2", "us-east-1", "54.160.0.0/13"),
    ("18.244.0.1", Provider::Aws, "CLOUDFRONT", "GLOBAL", "18.244.0.0/15"),
    ("52.93.55.166", Provider::Aws, "AMAZON", "us-west-1", "52.93.55.166/31"),
    // EC2 (a /15) ranks above the AMAZON ranges inside it.
    ("3.34.101.193", Provider::Aws, "EC2", "ap-northeast-2", "3.34.0.0/15"),
    ("2600:1f60:2000::1", Provider::Aws, "S3", "us-gov-west-1", "2600:1f60:2000::/40"),
    ("2a05:d078:2000::1", Provider::Aws, "S3", "eu-west-3", "2a05:d078:2000::/40"),
    ("2001:3fc3:6800::1", Provider::Aws, "EC2", "eusc-de-east-1", "2001:3fc3:6800::/40"),
    ("52.80.197.1", Provider::Aws, "ROUTE53_HEALTHCHECKS", "cn-north-1", "52.80.197.0/25"),
    ("34.64.192.1", Provider::Gcp, "Google Cloud", "asia-northeast3", "34.64.192.0/18"),
    ("34.95.0.1", Provider::Gcp, "Google Cloud", "northamerica-northeast1", "34.95.0.0/18"),
    ("34.157.252.1", Provider::Gcp, "Google Cloud", "me-central1", "34.157.252.0/23"),
    ("35.243.56.1", Provider::Gcp, "Google Cloud", "asia-northeast2", "35.243.56.0/21"),
    (
        "2600:1901:8100::1",
        Provider::Gcp,
        "Google Cloud",
        "europe-southwest1",
        "2600:1901:8100::/44",
    ),
    ("2600:1901:8180::1", Provider::Gcp, "Google Cloud", "asia-northeast3", "2600:1901:8180::/44"),
    ("52.239.188.1", Provider::Azure, "Storage", "southindia", "52.239.188.0/24"),
    ("135.130.92.1", Provider::Azure, "Storage", "northcentralus", "135.130.92.0/23"),
    ("20.150.40.129", Provider::Azure, "Storage", "canadaeast", "20.150.40.128/25"),
    ("40.118.12.208", Provider::Azure, "Sql", "westeurope", "40.118.12.208/32"),
    ("20.215.155.249", Provider::Azure, "Sql", "polandcentral", "20.215.155.248/29"),
    // A global tag: its region comes from the AzureCloud.italynorth range around it.
    ("40.107.163.1", Provider::Azure, "EOPExternalPublishedIPs", "italynorth", "40.107.0.0/16"),
    ("20.153.250.1", Provider::Azure, "AzureCloud", "uksouth", "20.153.250.0/24"),
    (
        "2603:1010:207::6c1",
        Provider::Azure,
        "AzureConnectors",
        "australiasoutheast",
        "2603:1010:207::6c0/122",
    ),
    (
        "2603:1061:2010:1b::1",
        Provider::Azure,
        "WindowsVirtualDesktop",
        "westus",
        "2603:1061:2010:1b::/117",
    ),
    ("2603:1062:c:30::1", Provider::Azure, "AzureCloud", "australiaeast", "2603:1062:c:30::/63"),
    ("137.135.91.176", Provider::Azure, "AppService", "eastus", "137.135.91.176/32"),
    ("40.74.150.73", Provider::Azure, "AzureMonitor", "eastus2euap", "40.74.150.72/29"),
];

/// Addresses in no provider's file.
const NOT_CLOUD: &[&str] = &["198.51.100.7", "203.0.113.9", "2001:db8::1", "10.0.0.1", "1.1.1.1"];

/// (service, prefix) pairs as written in a raw file, read without egressor's parser.
fn raw_pairs(provider: Provider, json: &Value) -> Vec<(String, String)> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    match provider {
        Provider::Aws => ["prefixes", "ipv6_prefixes"]
            .iter()
            .flat_map(|list| json[list].as_array().unwrap())
            .map(|p| {
                let prefix =
                    if p["ip_prefix"].is_string() { &p["ip_prefix"] } else { &p["ipv6_prefix"] };
                (format!("{}@{}", s(&p["service"]), s(&p["region"])), s(prefix))
            })
            .collect(),
        Provider::Gcp => json["prefixes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let prefix =
                    if p["ipv4Prefix"].is_string() { &p["ipv4Prefix"] } else { &p["ipv6Prefix"] };
                (format!("{}@{}", s(&p["service"]), s(&p["scope"])), s(prefix))
            })
            .collect(),
        Provider::Azure => json["values"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| {
                let tag = s(&t["name"]);
                let service = tag.split('.').next().unwrap_or_default().to_owned();
                t["properties"]["addressPrefixes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(move |p| (format!("{service}@"), s(p)))
            })
            .collect(),
    }
}

#[test]
fn real_provider_files_give_the_most_specific_service_and_its_region() {
    let mut sets = Vec::new();
    let mut raw = Vec::new();
    for (provider, file) in FILES {
        let Some(path) = egressor_tests::shared_data(file) else { return };
        let bytes = std::fs::read(&path).unwrap();
        sets.push((provider, formats::parse(provider, &bytes).unwrap()));
        raw.push((provider, raw_pairs(provider, &serde_json::from_slice(&bytes).unwrap())));
    }
    let table = CloudTable::build(sets.iter().map(|(p, e)| (*p, e.as_slice())));
    assert!(EXPECTED.len() >= 30);
    for &(addr, provider, service, region, prefix) in EXPECTED {
        let m = table.lookup(addr.parse().unwrap()).unwrap_or_else(|| panic!("{addr}: no match"));
        assert_eq!(
            (m.provider, m.service, m.region, m.prefix.to_string().as_str()),
            (provider, service, region, prefix),
            "{addr}"
        );
        // The row is in the file as written (Azure gives the region per tag, so only the
        // service is compared for it).
        let pairs = &raw.iter().find(|(p, _)| *p == provider).unwrap().1;
        let want = match provider {
            Provider::Azure => format!("{service}@"),
            _ => format!("{service}@{region}"),
        };
        let listed = pairs.iter().any(|(s, p)| {
            p.parse::<ipnet::IpNet>().is_ok_and(|n| n.trunc().to_string() == prefix)
                && (s == &want || (provider == Provider::Azure && s.starts_with(&want)))
        });
        assert!(listed, "{addr}: {service} {region} {prefix} is not in the {provider} file");
    }
    for addr in NOT_CLOUD {
        assert_eq!(table.lookup(addr.parse().unwrap()), None, "{addr}");
    }
}
