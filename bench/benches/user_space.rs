//! User-space hot paths, against the targets of the external-attribution issue:
//! - classification of one remote address with every provider's real ranges loaded (prefix
//!   match in the trie, most specific service already resolved): target ≤ 100 ns;
//! - one DNS response parsed and its answers inserted into the name cache: target ≤ 2 µs.
//!
//! Run with `cargo bench -p egressor-bench --bench user_space` (bench/run.sh does); needs
//! `../shared/data/cloud-ranges/` (or `EGRESSOR_SHARED_DATA`).

use std::{hint::black_box, net::IpAddr, path::Path, sync::Arc, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use egressor::{
    classify::Classifier,
    cloud::{CloudTable, Provider, formats, sources::SharedCloudTable},
    config::FileConfig,
    dns::{DnsNames, parse_response},
};

fn classifier() -> Option<Classifier> {
    let mut sets = Vec::new();
    for (provider, file) in [
        (Provider::Aws, "cloud-ranges/aws-ip-ranges.json"),
        (Provider::Gcp, "cloud-ranges/google-cloud-ip-ranges.json"),
        (Provider::Azure, "cloud-ranges/microsoft-azure-ip-ranges.json"),
    ] {
        let path = egressor_tests::shared_data(file)?;
        sets.push((provider, formats::parse(provider, &std::fs::read(path).ok()?).ok()?));
    }
    let shared = Arc::new(SharedCloudTable::default());
    shared.store(CloudTable::build(sets.iter().map(|(p, e)| (*p, e.as_slice()))));
    let config = FileConfig::parse(
        "node: {provider: aws, region: us-east-1}\nnetworks:\n  - {cidr: 10.0.0.0/16, name: vpc}\n",
        Path::new("bench.yaml"),
    )
    .ok()?;
    Some(Classifier::new(&config, shared))
}

/// A response: www.example.test CNAME api.example.test, A 203.0.113.10 and 203.0.113.11.
fn response() -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0];
    m.extend(b"\x03www\x07example\x04test\x00\x00\x01\x00\x01");
    m.extend([0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6]);
    let api = m.len() as u8;
    m.extend(b"\x03api\xc0\x10");
    for last in [10, 11] {
        m.extend([0xc0, api, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, last]);
    }
    m
}

fn benches(c: &mut Criterion) {
    if let Some(classifier) = classifier() {
        let mut group = c.benchmark_group("classify one remote address");
        for (what, addr) in [
            ("S3 (AWS, most specific of AMAZON)", "52.95.128.179"),
            ("Azure Storage (v6)", "2603:1061:2010:1b::1"),
            ("internet (no range)", "198.51.100.7"),
            ("configured network", "10.0.3.4"),
        ] {
            let addr: IpAddr = addr.parse().unwrap();
            group.bench_function(what, |b| {
                b.iter(|| black_box(classifier.classify(Some(black_box(addr)))))
            });
        }
        // Cache misses: 65,536 distinct addresses in turn (16 × the cache), in Azure's and
        // AWS's ranges.
        for (what, base) in
            [("cold v6 (Azure ranges)", "2603:1061:2010::"), ("cold v4 (AWS ranges)", "52.95.0.0")]
        {
            let base: IpAddr = base.parse().unwrap();
            let addrs: Vec<IpAddr> = (0..65_536u32)
                .map(|i| match base {
                    IpAddr::V4(a) => IpAddr::V4((u32::from(a) + i * 7).into()),
                    IpAddr::V6(a) => IpAddr::V6((u128::from(a) + u128::from(i) * 4099).into()),
                })
                .collect();
            let mut i = 0;
            group.bench_function(what, |b| {
                b.iter(|| {
                    i = (i + 1) & 0xffff;
                    black_box(classifier.classify(Some(addrs[i])))
                })
            });
        }
        group.finish();
    }
    let message = response();
    // New addresses in every response (the middle two bytes of each A record's address
    // count up: 203.H.L.10 and 203.L.H.11), so each insert is a new cache entry, not an
    // update of the same two; the cache holds 100,000 and evicts.
    let names = DnsNames::new(100_000, Duration::from_secs(300));
    let mut fresh = message.clone();
    let (first_a, second_a) = (message.len() - 19, message.len() - 3);
    let mut n: u16 = 0;
    c.bench_function("DNS response parse + cache insert (CNAME, 2 new A)", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let [hi, lo] = n.to_be_bytes();
            fresh[first_a..first_a + 2].copy_from_slice(&[hi, lo]);
            fresh[second_a..second_a + 2].copy_from_slice(&[lo, hi]);
            names.learn(black_box(&fresh), false)
        })
    });
    c.bench_function("DNS response parse only", |b| {
        b.iter(|| parse_response(black_box(&message), false))
    });
}

criterion_group! {
    name = user_space;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(user_space);
