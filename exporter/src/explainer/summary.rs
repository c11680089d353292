//! The deterministic summary of a notification: what fires, for whom, the numbers Prometheus
//! gave (egress by class now and a day ago, the baseline, new destinations, cost per day,
//! largest destinations and those new since a day ago, the alert expression's value) and
//! the runbook. It is posted as is when no model is configured or the
//! model fails, and it is what the model is given to explain.

use std::fmt::Write;

use super::{
    context::{Answer, Facts, Row},
    webhook::{Alert, Notification, Status},
};

/// Bytes per second with SI prefixes and three significant digits (`206 kB/s`).
pub fn rate(bytes_per_second: f64) -> String {
    let mut v = bytes_per_second;
    let mut unit = 0;
    const UNITS: [&str; 5] = ["B/s", "kB/s", "MB/s", "GB/s", "TB/s"];
    while v.abs() >= 999.5 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    format!("{} {}", significant(v), UNITS[unit])
}

/// `v` with three significant digits, without a trailing `.0`.
pub fn significant(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s }
}

/// USD with cents below 100, whole dollars above.
pub fn usd(v: f64) -> String {
    if v.abs() < 100.0 { format!("{v:.2} USD") } else { format!("{v:.0} USD") }
}

fn rows_or(answer: &Option<Answer>) -> Result<&[Row], String> {
    match answer {
        None => Err("not asked".into()),
        Some(Answer::Failed(why)) => Err(format!("query failed: {why}")),
        Some(Answer::Rows(rows)) if rows.is_empty() => Err("no data".into()),
        Some(Answer::Rows(rows)) => Ok(rows),
    }
}

/// `class rate, class rate` of rows by `traffic_class`.
fn by_class(rows: &[Row]) -> String {
    rows.iter()
        .map(|r| {
            let class = r.labels.get("traffic_class").map(String::as_str).unwrap_or("all");
            format!("{class} {}", rate(r.value))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `name (class) rate; …` of destination rows.
fn destinations(rows: &[Row]) -> String {
    let list: Vec<String> = rows
        .iter()
        .map(|r| {
            let get = |k: &str| r.labels.get(k).filter(|v| !v.is_empty());
            let what = get("remote")
                .or_else(|| get("remote_service"))
                .cloned()
                .unwrap_or_else(|| "(unnamed)".into());
            let class = get("traffic_class").map(String::as_str).unwrap_or("?");
            format!("{what} ({class}) {}", rate(r.value))
        })
        .collect();
    list.join("; ")
}

/// The summary of one alert of a notification, as Slack mrkdwn.
pub fn alert(notification: &Notification, alert: &Alert, facts: &Facts) -> String {
    let name = alert.labels.get("alertname").map(String::as_str).unwrap_or("alert");
    let mut out = String::new();
    let status = match alert.status {
        Status::Firing => "firing",
        Status::Resolved => "resolved",
    };
    let subject = facts.subject.as_deref().map(|s| format!(" for *{s}*")).unwrap_or_default();
    let _ = writeln!(out, "*{name}* is {status}{subject}.");
    if let Some(summary) = alert.annotations.get("summary") {
        let _ = writeln!(out, "{summary}");
    }
    if facts.subject.is_some() {
        let now = rows_or(&facts.egress_now);
        let total = now.as_ref().map(|r| r.iter().map(|r| r.value).sum::<f64>());
        match (&now, total) {
            (Ok(rows), Ok(total)) => {
                let _ = writeln!(out, "Egress now: {} ({}).", rate(total), by_class(rows));
            }
            (Err(why), _) | (_, Err(why)) => {
                let _ = writeln!(out, "Egress now: {why}.");
            }
        }
        match rows_or(&facts.egress_day_ago) {
            Ok(rows) => {
                let total: f64 = rows.iter().map(|r| r.value).sum();
                let _ = writeln!(out, "A day ago: {} ({}).", rate(total), by_class(rows));
            }
            Err(why) => {
                let _ = writeln!(out, "A day ago: {why}.");
            }
        }
        match rows_or(&facts.baseline) {
            Ok(rows) => {
                let stat = |name: &str| {
                    rows.iter().find(|r| r.labels.get("stat").is_some_and(|s| s == name))
                };
                let mean = stat("mean").map_or("unknown".to_owned(), |r| rate(r.value));
                let spread =
                    stat("stddev").map_or(String::new(), |r| format!(" ± {}", rate(r.value)));
                let _ = writeln!(out, "Baseline ({} mean): {mean}{spread}.", facts.baseline_window);
            }
            Err(why) => {
                let _ = writeln!(out, "Baseline ({} mean): {why}.", facts.baseline_window);
            }
        }
        match rows_or(&facts.new_destinations) {
            Ok(rows) => {
                let _ = writeln!(
                    out,
                    "New external destinations in the last hour: {}.",
                    rows[0].value.round()
                );
            }
            Err(why) => {
                let _ = writeln!(out, "New external destinations in the last hour: {why}.");
            }
        }
        match rows_or(&facts.cost_per_day) {
            Ok(rows) => {
                let _ = writeln!(out, "Cost at this rate: {} per day.", usd(rows[0].value));
            }
            Err(why) => {
                let _ = writeln!(out, "Cost at this rate: {why}.");
            }
        }
        if let Ok(rows) = rows_or(&facts.destinations) {
            let _ = writeln!(out, "Largest destinations: {}.", destinations(rows));
        }
        if let Ok(rows) = rows_or(&facts.new_destination_names) {
            let _ = writeln!(out, "New since a day ago: {}.", destinations(rows));
        }
    }
    if let Ok(rows) = rows_or(&facts.expression) {
        let _ = writeln!(out, "Alert expression value: {}.", significant(rows[0].value));
    }
    if let Some(url) = alert.annotations.get("runbook_url") {
        let _ = writeln!(out, "Runbook: <{url}|{name}>");
    }
    if notification.truncated_alerts > 0 {
        let _ = writeln!(
            out,
            "({} more alerts in this group were left out.)",
            notification.truncated_alerts
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_rounded_to_three_significant_digits() {
        assert_eq!(
            [rate(205_600.0), rate(2_056_000.0), rate(999.0), rate(12.345), rate(0.0)],
            ["206 kB/s", "2.06 MB/s", "999 B/s", "12.3 B/s", "0 B/s"]
        );
        assert_eq!([usd(1.234), usd(1234.4)], ["1.23 USD", "1234 USD"]);
    }
}
