//! Property: no IP address and, with `--redact.pod-names hash` or `drop`, no pod name reaches
//! the model. Alerts are generated with addresses in every form they are written in
//! (dotted IPv4, with a port, the dashed form of EC2 host names, IPv6 compressed and
//! expanded, bracketed with a port, with a prefix length, IPv4-mapped) glued to
//! punctuation and letters, in labels, annotations and query results; the prompt goes
//! through the same code the explainer runs ([`prompt::user_message`] over
//! [`summary::alert`]), and an independent detector (std's address parser over every token,
//! [`egressor_tests::fakes::ip_addresses`]) must find nothing.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, Ipv6Addr},
};

use egressor::explainer::{
    context::{Answer, Facts, Row},
    prompt,
    redact::PodNames,
    summary,
    webhook::Notification,
};
use egressor_tests::fakes::ip_addresses;
use proptest::prelude::*;

/// An address as some tool would write it.
fn written() -> impl Strategy<Value = String> {
    let v4 = any::<[u8; 4]>().prop_map(Ipv4Addr::from);
    let v6 = any::<[u16; 8]>()
        .prop_map(|s| Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]));
    prop_oneof![
        v4.clone().prop_map(|a| a.to_string()),
        (v4.clone(), 1u16..).prop_map(|(a, p)| format!("{a}:{p}")),
        v4.clone().prop_map(|a| format!("ip-{}.ec2.internal", a.to_string().replace('.', "-"))),
        v4.clone().prop_map(|a| format!("{a}/24")),
        v4.prop_map(|a| format!("::ffff:{a}")),
        v6.clone().prop_map(|a| a.to_string()),
        v6.clone().prop_map(|a| a.segments().map(|s| format!("{s:x}")).join(":")),
        v6.clone().prop_map(|a| format!("[{a}]:443")),
        v6.prop_map(|a| format!("{a}/64")),
    ]
}

/// Text around an address.
fn glue() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        " ", ", ", "(", ")", "=", "\"", "'", "\n", "x", "to ", "ip ", ".", ":", ";", "→ ",
    ])
    .prop_map(str::to_owned)
}

fn pod() -> impl Strategy<Value = String> {
    "[a-z]{3,10}-[b-df-hj-np-tv-z2-9]{6,10}-[b-df-hj-np-tv-z2-9]{5}"
}

fn row(labels: &[(&str, &str)], value: f64) -> Row {
    Row { labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), value }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn no_address_or_pod_name_reaches_the_model(
        addresses in prop::collection::vec((glue(), written(), glue()), 1..6),
        pods in prop::collection::vec(pod(), 1..3),
        drop_pods in any::<bool>(),
    ) {
        let texts: Vec<String> = addresses.iter().map(|(a, b, c)| format!("{a}{b}{c}")).collect();
        let mut labels = BTreeMap::from([
            ("alertname".to_owned(), "EgressSpike".to_owned()),
            ("workload".to_owned(), "checkout".to_owned()),
            ("namespace".to_owned(), "shop".to_owned()),
            ("pod".to_owned(), pods[0].clone()),
            ("instance".to_owned(), addresses[0].1.clone()),
        ]);
        if let Some(p) = pods.get(1) {
            labels.insert("remote_pod".into(), p.clone());
        }
        let body = serde_json::json!({
            "version": "4", "groupKey": "g", "status": "firing",
            "commonLabels": {"alertname": "EgressSpike"},
            "alerts": [{
                "status": "firing", "labels": labels,
                "annotations": {
                    "summary": format!("{} talks to {}", pods.join(" and "), texts.join("")),
                    "description": texts.join(" / "),
                },
            }],
        });
        let notification = Notification::parse(body.to_string().as_bytes()).unwrap();
        let alert = &notification.alerts[0];
        // Query results too (the destinations' labels), as if a label held an address.
        let rows = |v: f64| Some(Answer::Rows(vec![
            row(&[("traffic_class", "internet"), ("remote", &addresses[0].1)], v),
            row(&[("traffic_class", "cross-zone"), ("remote", &pods[0])], v / 2.0),
        ]));
        let facts = Facts {
            subject: Some("shop/checkout".into()),
            expression: rows(3.0),
            egress_now: rows(205_600.0),
            egress_day_ago: Some(Answer::Rows(vec![])),
            baseline: Some(Answer::Rows(vec![row(&[("stat", "mean")], 1e4), row(&[("stat", "stddev")], 2e3)])),
            baseline_window: "1d".into(),
            new_destinations: rows(2.0),
            new_destination_names: rows(5e5),
            cost_per_day: Some(Answer::Failed(format!("Prometheus at {} unreachable", addresses[0].1))),
            destinations: rows(1e6),
        };
        let summaries = vec![summary::alert(&notification, alert, &facts)];
        let mode = if drop_pods { PodNames::Drop } else { PodNames::Hash };
        let mut redaction = prompt::redaction(&notification, mode, [42; 16]);
        let message = prompt::user_message(&notification, &summaries, &mut redaction);

        let found = ip_addresses(&message);
        prop_assert!(found.is_empty(), "addresses {found:?} in\n{message}");
        for p in &pods {
            prop_assert!(!message.contains(p.as_str()), "pod {p} in\n{message}");
        }
        // The numbers are still there for the model.
        prop_assert!(message.contains("206 kB/s"), "{message}");
        // And the model's words come back with the real names.
        if !drop_pods {
            prop_assert_eq!(redaction.restore(&message).contains(pods[0].as_str()), true);
        }
    }
}
