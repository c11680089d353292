//! What the model is asked: a stable system prompt (the same bytes every time, so the prompt
//! cache holds it) and one user message per notification built from the alerts' labels and
//! annotations and the deterministic summaries — never raw query results — and passed
//! through the [`Redaction`] before it leaves.

use std::fmt::Write;

use super::{
    redact::{PodNames, Redaction},
    webhook::Notification,
};

/// The instructions, identical across requests.
pub const SYSTEM: &str = "\
You are the on-call assistant of egressor, an eBPF exporter that counts the bytes every \
workload sends and receives, classifies each flow by where the remote is and prices it with \
the cloud's data-transfer price sheet.

Terms: egress is traffic a workload sends, ingress what it receives. A workload is a \
Kubernetes owner (Deployment, StatefulSet, DaemonSet, Job, CronJob) or, on plain hosts, a \
systemd unit or container. traffic_class says where the remote is: same-host, same-zone, \
cross-zone (another availability zone of the region; billed per GiB in each direction), \
cross-region, internet (public addresses; the most expensive egress), cloud-service (a \
provider's public service range, e.g. S3, DynamoDB), private (RFC 1918 and similar ranges not \
configured as a zone), unknown. egress_path says how traffic leaves: direct, NAT gateway (adds \
a per-GiB processing charge; S3 and DynamoDB in the same region are avoidable through a free \
gateway VPC endpoint), VPC endpoint, transit gateway. Costs are in USD from the price sheet.

You receive an Alertmanager notification: each alert's labels and annotations and the numbers \
Prometheus returned for it (egress by class now and a day ago, cost per day at the current \
rate, the largest destinations, the alert expression's value). Some values are placeholders \
such as [address-3], pod-1a2b3c4d or [pod]: they stand for redacted addresses and pod names; \
use them as they are.

Write the explanation for the engineer on call, in Slack mrkdwn (*bold*, bullet lists with \
•), at most 1,200 characters, in this order:
1. What changed, in one sentence with the numbers.
2. Who: the workload and the destinations behind it.
3. What it costs per day now.
4. What to do next: the most likely causes to check and the fix, pointing to the runbook.

Use only the numbers given; never invent or extrapolate one. Where a value says \"no data\" or \
a query failed, say that this number is unknown rather than zero. Do not repeat the labels \
verbatim and do not restate these instructions. If the alert is resolved, say in one or two \
sentences what recovered and whether anything remains to check.";

/// The user message for `notification`, with `summaries` (one per alert, same order),
/// redacted.
pub fn user_message(
    notification: &Notification,
    summaries: &[String],
    redaction: &mut Redaction,
) -> String {
    let mut out = String::new();
    let name = notification.common_labels.get("alertname").map(String::as_str).unwrap_or("alerts");
    let _ = writeln!(
        out,
        "Notification: {name} is {} ({} alerts{}).",
        notification.status.as_str(),
        notification.alerts.len(),
        if notification.truncated_alerts > 0 {
            format!(", {} more left out", notification.truncated_alerts)
        } else {
            String::new()
        }
    );
    for (i, (alert, summary)) in notification.alerts.iter().zip(summaries).enumerate() {
        let _ = writeln!(out, "\nAlert {} ({}):", i + 1, alert.status.as_str());
        let labels: Vec<String> = alert.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "labels: {}", labels.join(", "));
        for key in ["summary", "description"] {
            if let Some(v) = alert.annotations.get(key) {
                let _ = writeln!(out, "{key}: {v}");
            }
        }
        if !alert.starts_at.is_empty() {
            let _ = writeln!(out, "started: {}", alert.starts_at);
        }
        let _ = writeln!(out, "numbers:\n{summary}");
    }
    redaction.apply(&out)
}

/// The redaction for `notification`: the pod names its alerts carry.
pub fn redaction(notification: &Notification, mode: PodNames, key: [u8; 16]) -> Redaction {
    let pods = notification.alerts.iter().flat_map(|a| {
        a.labels.iter().filter(|(k, _)| Redaction::is_pod_label(k)).map(|(_, v)| v.as_str())
    });
    Redaction::new(mode, key, pods)
}
