//! Alertmanager's webhook payload (version 4,
//! <https://prometheus.io/docs/alerting/latest/configuration/#webhook_config>), parsed
//! leniently: unknown fields (`truncatedAlerts`, future ones) are accepted, absent optional
//! ones default; only `groupKey`, `status` and `alerts` are required.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Firing or resolved, for a group and for each alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// At least one alert of the group fires.
    Firing,
    /// Every alert of the group is resolved.
    Resolved,
}

impl Status {
    /// `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// One webhook notification: a group of alerts.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// `"4"` today.
    #[serde(default)]
    pub version: String,
    /// Identifies the group across notifications.
    pub group_key: String,
    /// Alerts left out of `alerts` by the receiver's `max_alerts`.
    #[serde(default)]
    pub truncated_alerts: u64,
    /// The group's status.
    pub status: Status,
    /// The receiver's name.
    #[serde(default)]
    pub receiver: String,
    /// The labels the group is grouped by.
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    /// Labels every alert of the group shares.
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    /// Annotations every alert shares.
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    /// Alertmanager's URL.
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    /// The alerts.
    pub alerts: Vec<Alert>,
}

/// One alert of a notification.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Firing or resolved.
    pub status: Status,
    /// Its labels (`alertname`, `namespace`, `workload`, `severity`, …).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its annotations (`summary`, `description`, `runbook_url`).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339 start time.
    #[serde(default)]
    pub starts_at: String,
    /// RFC 3339 end time (`0001-01-01T00:00:00Z` while firing).
    #[serde(default)]
    pub ends_at: String,
    /// Link to the rule's expression in Prometheus (`…/graph?g0.expr=…`).
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    /// Alertmanager's identity of the alert (its label set's hash).
    #[serde(default)]
    pub fingerprint: String,
}

impl Alert {
    /// The rule's PromQL expression, from `generatorURL`'s `g0.expr` query parameter.
    pub fn expression(&self) -> Option<String> {
        let url = reqwest::Url::parse(&self.generator_url).ok()?;
        url.query_pairs().find(|(k, _)| k == "g0.expr").map(|(_, v)| v.into_owned())
    }
}

impl Notification {
    /// Parses a webhook body.
    ///
    /// # Errors
    /// serde_json's error, which names the line, column and field.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// The identity of this notification for de-duplication: the group, its status and
    /// each alert's fingerprint, status and start. Alertmanager's retries (and every member
    /// of an HA cluster) send the same one; a change in the group makes a new one, and so
    /// does the same alert firing again after it resolved (a new `startsAt`).
    pub fn identity(&self) -> String {
        let mut alerts: Vec<String> = self
            .alerts
            .iter()
            .map(|a| format!("{}:{}:{}", a.fingerprint, a.status.as_str(), a.starts_at))
            .collect();
        alerts.sort();
        format!("{}\u{0}{}\u{0}{}", self.group_key, self.status.as_str(), alerts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of Alertmanager's documentation, with a field it added later
    /// (`truncatedAlerts`) and one it may add in future.
    const BODY: &str = r#"{
      "version": "4", "groupKey": "{}:{alertname=\"EgressSpike\"}", "truncatedAlerts": 0,
      "status": "firing", "receiver": "egressor", "groupLabels": {"alertname": "EgressSpike"},
      "commonLabels": {"alertname": "EgressSpike", "workload": "api"},
      "commonAnnotations": {}, "externalURL": "http://am:9093", "someFutureField": [1, 2],
      "alerts": [{
        "status": "firing", "labels": {"alertname": "EgressSpike", "workload": "api"},
        "annotations": {"summary": "s"}, "startsAt": "2026-12-03T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prom:9090/graph?g0.expr=rate%28x%5B5m%5D%29+%3E+1&g0.tab=1",
        "fingerprint": "c0ffee"
      }]
    }"#;

    #[test]
    fn parses_alertmanagers_payload_with_unknown_fields() {
        let n = Notification::parse(BODY.as_bytes()).unwrap();
        assert_eq!((n.version.as_str(), n.status, n.alerts.len()), ("4", Status::Firing, 1));
        assert_eq!(n.alerts[0].expression().as_deref(), Some("rate(x[5m]) > 1"));
        assert_eq!(n.common_labels["workload"], "api");
    }

    #[test]
    fn identity_changes_with_status_and_alerts_not_with_order() {
        let n = Notification::parse(BODY.as_bytes()).unwrap();
        let mut two = n.clone();
        let mut other = n.alerts[0].clone();
        other.fingerprint = "beef".into();
        two.alerts.push(other.clone());
        let mut swapped = two.clone();
        swapped.alerts.reverse();
        assert_eq!(two.identity(), swapped.identity());
        assert_ne!(n.identity(), two.identity());
        let mut resolved = n.clone();
        resolved.status = Status::Resolved;
        resolved.alerts[0].status = Status::Resolved;
        assert_ne!(n.identity(), resolved.identity());
        // The same alert firing again later is a new incident.
        let mut again = n.clone();
        again.alerts[0].starts_at = "2026-12-03T12:00:00Z".into();
        assert_ne!(n.identity(), again.identity());
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let e = Notification::parse(br#"{"status": "firing", "alerts": []}"#).unwrap_err();
        assert!(e.to_string().contains("groupKey"), "{e}");
        let e = Notification::parse(br#"{"groupKey": "g", "status": "burning", "alerts": []}"#)
            .unwrap_err();
        assert!(e.to_string().contains("burning"), "{e}");
    }
}
