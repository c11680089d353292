//! The explainer's webhook receiver under bad input: 10,000 random, truncated and mutated
//! bodies (seeded, reproducible) each get 200, 400 or 413 and never bring the service down.

use axum::{body::Body, http::Request};
use clap::Parser;
use egressor::{
    cli::{Cli, Command},
    explainer::app,
};
use tower::ServiceExt;

const VALID: &str = r#"{"version":"4","groupKey":"{}:{alertname=\"EgressSpike\"}","truncatedAlerts":0,"status":"firing","receiver":"egressor","groupLabels":{"alertname":"EgressSpike"},"commonLabels":{"alertname":"EgressSpike","workload":"api"},"commonAnnotations":{},"externalURL":"http://am:9093","alerts":[{"status":"firing","labels":{"alertname":"EgressSpike","workload":"api"},"annotations":{"summary":"s"},"startsAt":"2026-12-03T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://127.0.0.1:1/graph?g0.expr=up","fingerprint":"c0ffee"}]}"#;

/// xorshift64*: a seeded generator, so a failure names a reproducible case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn body(rng: &mut Rng, i: usize) -> Vec<u8> {
    let valid = VALID.as_bytes();
    match i % 4 {
        // Random bytes.
        0 => (0..rng.below(600)).map(|_| rng.next() as u8).collect(),
        // A truncated notification.
        1 => valid[..rng.below(valid.len())].to_vec(),
        // A notification with bytes flipped.
        2 => {
            let mut b = valid.to_vec();
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(b.len());
                b[at] = rng.next() as u8;
            }
            b
        }
        // Valid JSON of the wrong shape, or a valid notification with a new group key.
        _ => match rng.below(3) {
            0 => br#"{"groupKey": 7, "status": "firing", "alerts": {}}"#.to_vec(),
            1 => b"[1, 2, 3]".to_vec(),
            _ => VALID.replace("c0ffee", &format!("{:x}", rng.next())).into_bytes(),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_bad_bodies_get_a_status_and_the_service_survives() {
    let Command::Explainer(args) = Cli::parse_from([
        "egressor",
        "explainer",
        "--prometheus.url",
        "http://127.0.0.1:1",
        "--prometheus.timeout",
        "200ms",
    ])
    .command
    else {
        unreachable!()
    };
    let router = app(&args).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut counts = std::collections::BTreeMap::new();
    for i in 0..10_000 {
        let b = body(&mut rng, i);
        let request = Request::post("/api/v1/alertmanager").body(Body::from(b.clone())).unwrap();
        let status = router.clone().oneshot(request).await.unwrap().status().as_u16();
        assert!(
            matches!(status, 200 | 400 | 413),
            "case {i}: {status} for {:?}",
            String::from_utf8_lossy(&b)
        );
        *counts.entry(status).or_insert(0) += 1;
    }
    assert!(counts[&400] > 5_000 && counts[&200] > 100, "{counts:?}");
    let health = Request::get("/healthz").body(Body::empty()).unwrap();
    assert_eq!(router.oneshot(health).await.unwrap().status().as_u16(), 200);
}
