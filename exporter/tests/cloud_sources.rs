//! Range sources fetched over HTTP from a local server standing in for the provider's URL:
//! the on-disk cache, a corrupt download and an unreachable URL.

use std::sync::{Arc, Mutex};

use axum::{Router, http::StatusCode, routing::get};
use egressor::cloud::{
    Provider,
    sources::{CloudRanges, CloudRangesConfig, SourceConfig, SourceMetrics},
};
use prometheus_client::{encoding::text::encode, registry::Registry};

/// What the fake provider answers next.
#[derive(Clone)]
enum Answer {
    File(Vec<u8>),
    Corrupt,
    Down,
}

async fn serve(answer: Arc<Mutex<Answer>>) -> String {
    let app = Router::new().route(
        "/ip-ranges.json",
        get(move || {
            let answer = answer.lock().unwrap().clone();
            async move {
                match answer {
                    Answer::File(b) => (StatusCode::OK, b),
                    Answer::Corrupt => (StatusCode::OK, b"{\"prefixes\": [{\"ip_pre".to_vec()),
                    Answer::Down => (StatusCode::SERVICE_UNAVAILABLE, b"try later".to_vec()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ip-ranges.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn exposition(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

fn has(text: &str, prefix: &str, value: &str) -> bool {
    text.lines().any(|l| l.starts_with(prefix) && l.ends_with(&format!(" {value}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_ranges_are_cached_and_survive_a_bad_download_and_an_outage() {
    let Some(path) = egressor_tests::shared_data("cloud-ranges/aws-ip-ranges.json") else { return };
    let answer = Arc::new(Mutex::new(Answer::File(std::fs::read(path).unwrap())));
    let url = serve(answer.clone()).await;
    let cache = std::env::temp_dir().join(format!("egressor-ranges-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let config = CloudRangesConfig {
        cache_dir: Some(cache.clone()),
        sources: vec![SourceConfig { provider: Provider::Aws, file: None, url: Some(url.clone()) }],
        ..CloudRangesConfig::default()
    };
    let s3: std::net::IpAddr = "52.95.128.179".parse().unwrap();
    let service =
        |ranges: &CloudRanges| ranges.shared().current().1.lookup(s3).map(|m| m.service.to_owned());

    // First start: nothing cached, nothing known until the fetch.
    let metrics = SourceMetrics::default();
    let mut registry = Registry::with_prefix("egressor");
    metrics.register(&mut registry);
    let mut ranges = CloudRanges::start(config.clone(), metrics);
    assert_eq!(service(&ranges), None);
    ranges.fetch_all().await;
    assert_eq!(service(&ranges).as_deref(), Some("S3"));
    let labels = format!("{{provider=\"aws\",source=\"{url}\"}}");
    let text = exposition(&registry);
    assert!(has(&text, &format!("egressor_cloud_ranges_up{labels}"), "1"), "{text}");
    // 8,971 IPv4 + 4,373 IPv6 entries in the file (SOURCES.md).
    assert!(has(&text, &format!("egressor_cloud_ranges_prefixes{labels}"), "13344"), "{text}");
    let cached: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(cached.len(), 1, "one cached file, no temporary left");

    // A corrupt download: counted, logged, and the loaded ranges stay.
    *answer.lock().unwrap() = Answer::Corrupt;
    let version = ranges.shared().version();
    ranges.fetch_all().await;
    assert_eq!(ranges.shared().version(), version, "no new table");
    assert_eq!(service(&ranges).as_deref(), Some("S3"));
    let text = exposition(&registry);
    assert!(has(&text, &format!("egressor_cloud_ranges_up{labels}"), "0"), "{text}");
    assert!(has(&text, &format!("egressor_cloud_ranges_load_errors_total{labels}"), "1"), "{text}");

    // Restart while the URL is down: the cached copy classifies from the first cycle.
    *answer.lock().unwrap() = Answer::Down;
    let metrics = SourceMetrics::default();
    let mut registry = Registry::with_prefix("egressor");
    metrics.register(&mut registry);
    let mut ranges = CloudRanges::start(config, metrics);
    assert_eq!(service(&ranges).as_deref(), Some("S3"), "from the cache");
    ranges.fetch_all().await;
    assert_eq!(service(&ranges).as_deref(), Some("S3"));
    let text = exposition(&registry);
    assert!(has(&text, &format!("egressor_cloud_ranges_load_errors_total{labels}"), "1"), "{text}");
    std::fs::remove_dir_all(cache).unwrap();
}

#[test]
fn a_missing_file_is_a_warning_and_a_metric() {
    let config = CloudRangesConfig {
        sources: vec![SourceConfig {
            provider: Provider::Gcp,
            file: Some("/nonexistent/cloud.json".into()),
            url: None,
        }],
        ..CloudRangesConfig::default()
    };
    let metrics = SourceMetrics::default();
    let mut registry = Registry::with_prefix("egressor");
    metrics.register(&mut registry);
    let ranges = CloudRanges::start(config, metrics);
    assert!(ranges.shared().current().1.is_empty());
    let text = exposition(&registry);
    let labels = r#"{provider="gcp",source="/nonexistent/cloud.json"}"#;
    assert!(has(&text, &format!("egressor_cloud_ranges_up{labels}"), "0"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_sources_are_fetched_again_every_refresh() {
    let Some(path) = egressor_tests::shared_data("cloud-ranges/aws-ip-ranges.json") else { return };
    let answer = Arc::new(Mutex::new(Answer::File(std::fs::read(path).unwrap())));
    let url = serve(answer.clone()).await;
    let config = CloudRangesConfig {
        // The configuration file allows 1m at least; the library takes any interval.
        refresh: std::time::Duration::from_millis(200),
        cache_dir: None,
        sources: vec![SourceConfig { provider: Provider::Aws, file: None, url: Some(url) }],
    };
    let ranges = CloudRanges::start(config, SourceMetrics::default());
    let shared = ranges.shared();
    let refresher = tokio::spawn(ranges.refresh_forever());
    let s3: std::net::IpAddr = "52.95.128.179".parse().unwrap();
    let service_within = |want: &'static str| {
        let shared = shared.clone();
        async move {
            for _ in 0..100 {
                if shared.current().1.lookup(s3).is_some_and(|m| m.service == want) {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            false
        }
    };
    assert!(service_within("S3").await, "the first fetch");
    // The provider publishes a new file: the next refresh replaces the table.
    let republished = br#"{"syncToken": "2", "createDate": "2026-12-03-00-00-00",
        "prefixes": [{"ip_prefix": "52.95.128.0/21", "region": "ap-southeast-2",
                      "service": "DYNAMODB", "network_border_group": "ap-southeast-2"}],
        "ipv6_prefixes": []}"#;
    *answer.lock().unwrap() = Answer::File(republished.to_vec());
    assert!(service_within("DYNAMODB").await, "a refresh fetched the new file");
    assert_eq!(shared.current().1.len(), 1);
    refresher.abort();
}
