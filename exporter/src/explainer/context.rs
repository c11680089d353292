//! The facts behind an explanation: a small fixed set of PromQL queries through Prometheus'
//! HTTP API (`GET /api/v1/query`, <https://prometheus.io/docs/prometheus/latest/querying/api/>)
//! for the alert's workload, each result bounded (top [`TOP`] rows). An empty result is a
//! fact ("no data"), not an error; a failed query is recorded as failed and the rest go on.

use std::{collections::BTreeMap, time::Duration};

use serde::Deserialize;

use super::webhook::Alert;
use crate::rules::{SpikeSeries, Values, prom, rate_operation};

/// Rows kept of any result.
pub const TOP: usize = 5;

/// One series of a result: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Labels (without `__name__`).
    pub labels: BTreeMap<String, String>,
    /// The sample value.
    pub value: f64,
}

/// What a query gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Rows, at most [`TOP`], largest first.
    Rows(Vec<Row>),
    /// The query failed (Prometheus unreachable, a bad expression): the reason.
    Failed(String),
}

/// The facts of one alert.
#[derive(Debug, Clone)]
pub struct Facts {
    /// `namespace/workload` (or the workload alone), when the alert names a workload.
    pub subject: Option<String>,
    /// The alert expression's current value.
    pub expression: Option<Answer>,
    /// Egress bytes per second by traffic class now.
    pub egress_now: Option<Answer>,
    /// The same a day ago.
    pub egress_day_ago: Option<Answer>,
    /// The workload's egress baseline (bytes per second): the bundle's mean over its
    /// baseline window and the standard deviation, one row each, told apart by `stat`.
    pub baseline: Option<Answer>,
    /// That window, as the rules name it (`1d`).
    pub baseline_window: String,
    /// External addresses the workload reached for the first time in the look-back window,
    /// during the last hour (`egressor_new_destinations_total`).
    pub new_destinations: Option<Answer>,
    /// The largest destinations it sends to now and sent nothing to a day ago.
    pub new_destination_names: Option<Answer>,
    /// Cost in USD per day at the current rate (both directions).
    pub cost_per_day: Option<Answer>,
    /// The largest destinations by egress bytes per second.
    pub destinations: Option<Answer>,
}

/// Asks Prometheus.
#[derive(Debug, Clone)]
pub struct Prometheus {
    client: reqwest::Client,
    base: reqwest::Url,
    /// `rate5m`: the recording rules' rate operation.
    rate: String,
    /// The baseline rules' names.
    spike: SpikeSeries,
    /// `1d`: the baseline window, as the rules name it.
    baseline_window: String,
}

#[derive(Deserialize)]
struct Response {
    status: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    result: Vec<Sample>,
}

#[derive(Deserialize)]
struct Sample {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// `value` as a PromQL string literal.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Prometheus {
    /// A client of the Prometheus at `base` (`http://prometheus:9090`), naming the bundle's
    /// recording rules as `values` generates them.
    ///
    /// # Errors
    /// A base URL that does not parse; reqwest's error if the TLS backend cannot start.
    pub fn new(base: &str, values: &Values, timeout: Duration) -> Result<Self, String> {
        let mut base = reqwest::Url::parse(base).map_err(|e| format!("{base}: {e}"))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let client = crate::http_client::client(timeout).map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            base,
            rate: rate_operation(values),
            spike: SpikeSeries::new(values),
            baseline_window: prom(values.spike.baseline_window),
        })
    }

    /// `GET api/v1/<path>?params`: the response's `data`.
    ///
    /// # Errors
    /// Prometheus unreachable, an answer that is no API response, or its `error`, as text.
    pub async fn api(
        &self,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<serde_json::Value, String> {
        let mut url =
            self.base.join("api/v1/").and_then(|u| u.join(path)).map_err(|e| e.to_string())?;
        url.query_pairs_mut().extend_pairs(params);
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("Prometheus unreachable: {e}"))?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| format!("HTTP {status}: not an API response ({e})"))?;
        if body["status"] != "success" {
            let error = body["error"].as_str().unwrap_or("no error given");
            return Err(format!("HTTP {status}: {error}"));
        }
        Ok(body["data"].clone())
    }

    /// Runs an instant query.
    pub async fn query(&self, expr: &str) -> Answer {
        let mut url = match self.base.join("api/v1/query") {
            Ok(u) => u,
            Err(e) => return Answer::Failed(e.to_string()),
        };
        url.query_pairs_mut().append_pair("query", expr);
        let response = match self.client.get(url).send().await {
            Ok(r) => r,
            Err(e) => return Answer::Failed(format!("Prometheus unreachable: {e}")),
        };
        let status = response.status();
        let body: Response = match response.json().await {
            Ok(b) => b,
            Err(e) => return Answer::Failed(format!("HTTP {status}: not a query response ({e})")),
        };
        if body.status != "success" {
            return Answer::Failed(format!("HTTP {status}: {}", body.error));
        }
        let mut rows: Vec<Row> = body
            .data
            .map(|d| d.result)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| {
                let mut labels = s.metric;
                labels.remove("__name__");
                Some(Row { labels, value: s.value.1.parse().ok()? })
            })
            .collect();
        rows.sort_by(|a, b| b.value.total_cmp(&a.value));
        rows.truncate(TOP);
        Answer::Rows(rows)
    }

    /// The facts of `alert`: its expression's value and, when it names a workload, the
    /// workload's egress by class now and a day ago, its baseline, new destinations (how many
    /// in the last hour, and the largest not seen a day ago), cost per day and largest
    /// destinations.
    pub async fn facts(&self, alert: &Alert) -> Facts {
        let expression = match alert.expression() {
            Some(expr) => Some(self.query(&expr).await),
            None => None,
        };
        let Some(workload) = alert.labels.get("workload") else {
            return Facts {
                subject: None,
                expression,
                egress_now: None,
                egress_day_ago: None,
                baseline: None,
                baseline_window: self.baseline_window.clone(),
                new_destinations: None,
                new_destination_names: None,
                cost_per_day: None,
                destinations: None,
            };
        };
        let namespace = alert.labels.get("namespace").map(String::as_str).unwrap_or_default();
        let sel = format!("namespace={},workload={}", quoted(namespace), quoted(workload));
        let bytes = format!(
            "namespace_workload_class_direction:egressor_flow_bytes:{}{{{sel},direction=\"egress\"}}",
            self.rate
        );
        let egress = format!("sum by (traffic_class) ({bytes})");
        // `offset` belongs to the selector, not to the aggregation.
        let egress_day_ago = format!("sum by (traffic_class) ({bytes} offset 1d)");
        let cost = format!(
            "sum(namespace_workload:egressor_flow_cost_usd:{}{{{sel}}}) * 86400",
            self.rate
        );
        let destinations = format!(
            "sum by (traffic_class, remote_service, remote) (namespace_workload_destination:egressor_egress_bytes:{}{{{sel}}})",
            self.rate
        );
        let baseline = format!(
            "label_replace(sum({mean}{{{sel}}}), \"stat\", \"mean\", \"\", \"\") or \
             label_replace(sum({stddev}{{{sel}}}), \"stat\", \"stddev\", \"\", \"\")",
            mean = self.spike.mean,
            stddev = self.spike.stddev,
        );
        let new_destinations = format!(
            "sum(increase(egressor_new_destinations_total{{workload={}}}[1h]))",
            quoted(workload)
        );
        let by = "traffic_class, remote_service, remote";
        let new_names = format!(
            "{destinations} unless on ({by}) sum by ({by}) (namespace_workload_destination:egressor_egress_bytes:{}{{{sel}}} offset 1d)",
            self.rate
        );
        Facts {
            subject: Some(if namespace.is_empty() {
                workload.clone()
            } else {
                format!("{namespace}/{workload}")
            }),
            expression,
            egress_now: Some(self.query(&egress).await),
            egress_day_ago: Some(self.query(&egress_day_ago).await),
            baseline: Some(self.query(&baseline).await),
            baseline_window: self.baseline_window.clone(),
            new_destinations: Some(self.query(&new_destinations).await),
            new_destination_names: Some(self.query(&new_names).await),
            cost_per_day: Some(self.query(&cost).await),
            destinations: Some(self.query(&destinations).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_quoted_as_promql_strings() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
