//! The Prometheus rule bundle (`alerts/egressor.rules.yml`), generated from one values file
//! (`alerts/values.yaml`, the defaults below): recording rules named
//! `level:metric:operations` (kubernetes-mixin's convention) and the alerts, each with
//! `summary`, `description`, `runbook_url` (an anchor of `alerts/runbook.md`) and `severity`.
//! `egressor rules [--values FILE]` prints it, so a team can regenerate the bundle with its
//! own thresholds.
//!
//! **EgressSpike** is a z-score against a rolling baseline (GitLab's anomaly-detection
//! recording rules): the workload's egress rate over its baseline window's mean, in standard
//! deviations — the deviation never taken below a fraction of the mean, so a flat baseline
//! does not turn noise into a huge score — above a byte-rate floor, and only once the
//! baseline holds enough samples (a new workload does not page). Its seasonal guard (GitLab's
//! and Grafana's weekly predictions, simplified to a bound) keeps it silent while the rate is
//! no higher than the highest 5-minute rate within half an hour of the same time a period
//! (a week) before, plus a tolerance: a weekly batch job pages the first week, not every week.
//! Without data a period back (a young workload), the 1d z-score alone decides.

use std::{collections::BTreeMap, path::Path, time::Duration};

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Thresholds and windows of the bundle (`alerts/values.yaml` documents each).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Values {
    /// Selector of the agents' scrape job (`up{…}` in the health alerts).
    pub job_selector: String,
    /// Base of `runbook_url`: the runbook's URL; each alert adds `#its-anchor`.
    pub runbook_base: String,
    /// Evaluation interval of the groups.
    #[serde(deserialize_with = "crate::config::duration")]
    pub interval: Duration,
    /// The rate window of the recording rules.
    #[serde(deserialize_with = "crate::config::duration")]
    pub rate_window: Duration,
    /// EgressSpike's thresholds.
    pub spike: SpikeValues,
    /// How long a health condition holds before its alert fires.
    #[serde(deserialize_with = "crate::config::duration")]
    pub health_for: Duration,
    /// EgressSlowBurn's thresholds.
    pub slow_burn: SlowBurnValues,
    /// EgressNewDestination's windows.
    pub new_destination: NewDestinationValues,
    /// EgressLeak's thresholds.
    pub leak: LeakValues,
    /// CrossZoneCostSurge's thresholds.
    pub cross_zone: CrossZoneValues,
    /// AvoidableNatCost's threshold.
    pub avoidable_nat: AvoidableNatValues,
    /// EgressBudgetBurn's budget.
    pub budget: BudgetValues,
}

/// EgressSlowBurn: the last day's mean egress rate against the week before.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlowBurnValues {
    /// The window before the last day that the last day is compared with.
    #[serde(deserialize_with = "crate::config::duration")]
    pub lookback: Duration,
    /// How many times the earlier window's mean makes a slow burn.
    pub ratio: f64,
    /// Mean egress bytes per second (last day) below which nothing fires.
    pub min_bytes_per_second: f64,
    /// Fraction of the earlier window's hours that must hold samples.
    pub min_coverage: f64,
    /// How long it holds before the alert fires.
    #[serde(deserialize_with = "crate::config::duration")]
    pub for_duration: Duration,
}

/// EgressNewDestination: a destination (class, service, name) a workload did not send to in
/// the look-back window.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NewDestinationValues {
    /// How far back a destination counts as known.
    #[serde(deserialize_with = "crate::config::duration")]
    pub lookback: Duration,
    /// Workloads younger than this (no egress this long ago) do not fire.
    #[serde(deserialize_with = "crate::config::duration")]
    pub min_workload_age: Duration,
    /// Traffic classes watched (a regular expression on `traffic_class`).
    pub classes: String,
}

/// EgressLeak: continuous low-volume egress to one external destination.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeakValues {
    /// How long the trickle must last.
    #[serde(deserialize_with = "crate::config::duration")]
    pub duration: Duration,
    /// The trickle's rate window: a destination counts as active at a step when it received
    /// bytes within this window (a beacon every 10 minutes is continuous at 30m).
    #[serde(deserialize_with = "crate::config::duration")]
    pub activity_window: Duration,
    /// Bytes per second the trickle stays under all along.
    pub max_bytes_per_second: f64,
    /// Traffic classes watched (a regular expression on `traffic_class`).
    pub classes: String,
}

impl Default for SlowBurnValues {
    fn default() -> Self {
        Self {
            lookback: Duration::from_secs(7 * 86_400),
            ratio: 1.5,
            min_bytes_per_second: 102_400.0,
            min_coverage: 0.75,
            for_duration: Duration::from_secs(3_600),
        }
    }
}

impl Default for NewDestinationValues {
    fn default() -> Self {
        Self {
            lookback: Duration::from_secs(86_400),
            min_workload_age: Duration::from_secs(2 * 86_400),
            classes: "internet|cloud_same_region|cloud_cross_region".into(),
        }
    }
}

impl Default for LeakValues {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(6 * 3_600),
            activity_window: Duration::from_secs(1_800),
            max_bytes_per_second: 10_240.0,
            classes: "internet|cloud_cross_region".into(),
        }
    }
}

/// CrossZoneCostSurge: a workload's cross-zone spend per day against its level a day before.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrossZoneValues {
    /// Cross-zone USD per day (at the last hour's rate) below which nothing fires.
    pub min_usd_per_day: f64,
    /// How many times the same hour's rate a day before makes a surge.
    pub ratio: f64,
    /// How long the surge lasts before the alert fires.
    #[serde(deserialize_with = "crate::config::duration")]
    pub for_duration: Duration,
}

/// AvoidableNatCost: spend a VPC gateway endpoint would save.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AvoidableNatValues {
    /// Avoidable USD per month (at the last day's rate) from which it fires.
    pub min_usd_per_month: f64,
}

/// EgressBudgetBurn: the projected month of the whole fleet's data-transfer spend.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetValues {
    /// Monthly budget in USD for all egressor-measured transfer; 0 turns the alert off.
    pub monthly_usd: f64,
    /// Per-namespace monthly budgets in USD.
    pub namespaces: BTreeMap<String, f64>,
}

impl Default for CrossZoneValues {
    fn default() -> Self {
        Self { min_usd_per_day: 10.0, ratio: 2.0, for_duration: Duration::from_secs(3_600) }
    }
}

impl Default for AvoidableNatValues {
    fn default() -> Self {
        Self { min_usd_per_month: 50.0 }
    }
}

impl Default for BudgetValues {
    fn default() -> Self {
        Self { monthly_usd: 0.0, namespaces: BTreeMap::new() }
    }
}

/// EgressSpike's thresholds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpikeValues {
    /// Window of the baseline's mean and standard deviation.
    #[serde(deserialize_with = "crate::config::duration")]
    pub baseline_window: Duration,
    /// Standard deviations above the mean that make a spike.
    pub z_score: f64,
    /// Egress bytes per second below which no spike is reported.
    pub min_bytes_per_second: f64,
    /// The deviation is taken as at least this fraction of the mean.
    pub min_relative_stddev: f64,
    /// Fraction of the baseline window that must hold samples (a baseline's maturity).
    pub min_baseline_coverage: f64,
    /// How long the spike lasts before the alert fires.
    #[serde(deserialize_with = "crate::config::duration")]
    pub for_duration: Duration,
    /// The season: the rate a period before (± 30 minutes) is the seasonal expectation; 0
    /// turns the seasonal guard off.
    #[serde(deserialize_with = "crate::config::duration")]
    pub seasonal_period: Duration,
    /// A rate up to this fraction above the seasonal expectation is no spike.
    pub seasonal_tolerance: f64,
}

impl Default for Values {
    fn default() -> Self {
        Self {
            job_selector: r#"job=~"egressor.*""#.into(),
            runbook_base: "https://github.com/egressor/egressor/blob/main/alerts/runbook.md".into(),
            interval: Duration::from_secs(60),
            rate_window: Duration::from_secs(300),
            spike: SpikeValues::default(),
            health_for: Duration::from_secs(600),
            slow_burn: SlowBurnValues::default(),
            new_destination: NewDestinationValues::default(),
            leak: LeakValues::default(),
            cross_zone: CrossZoneValues::default(),
            avoidable_nat: AvoidableNatValues::default(),
            budget: BudgetValues::default(),
        }
    }
}

impl Default for SpikeValues {
    fn default() -> Self {
        Self {
            baseline_window: Duration::from_secs(86_400),
            z_score: 3.0,
            min_bytes_per_second: 1_048_576.0,
            min_relative_stddev: 0.1,
            min_baseline_coverage: 0.75,
            for_duration: Duration::from_secs(900),
            seasonal_period: Duration::from_secs(7 * 86_400),
            seasonal_tolerance: 0.25,
        }
    }
}

impl Values {
    /// Reads a values file; fields it omits keep their defaults.
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::Parse`] naming the file, field and line.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        ConfigError::parse_yaml(&ConfigError::read_file(path)?, path)
    }
}

/// A Prometheus rule file.
#[derive(Debug, Serialize)]
struct RuleFile {
    groups: Vec<Group>,
}

#[derive(Debug, Serialize)]
struct Group {
    name: &'static str,
    interval: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Serialize)]
struct Rule {
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<&'static str>,
    expr: String,
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    for_duration: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<&'static str, &'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, String>,
}

/// A duration as Prometheus writes it (`90s` → `1m30s`, `86400s` → `1d`).
pub fn prom(d: Duration) -> String {
    let mut s = d.as_secs();
    let mut out = String::new();
    for (unit, len) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}

fn record(name: String, expr: String) -> Rule {
    Rule {
        record: Some(name),
        alert: None,
        expr,
        for_duration: None,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
    }
}

struct Alert {
    name: &'static str,
    anchor: &'static str,
    severity: &'static str,
    expr: String,
    for_duration: Duration,
    summary: &'static str,
    description: &'static str,
}

fn alert(values: &Values, a: Alert) -> Rule {
    let annotations = BTreeMap::from([
        ("summary", a.summary.to_owned()),
        ("description", a.description.to_owned()),
        ("runbook_url", format!("{}#{}", values.runbook_base, a.anchor)),
    ]);
    Rule {
        record: None,
        alert: Some(a.name),
        expr: a.expr,
        for_duration: (!a.for_duration.is_zero()).then(|| prom(a.for_duration)),
        labels: BTreeMap::from([("severity", a.severity)]),
        annotations,
    }
}

/// The names of the recording rules EgressSpike reads, for `values`.
#[derive(Debug, Clone)]
pub struct SpikeSeries {
    /// Egress bytes per second per workload.
    pub rate: String,
    /// Its mean over the baseline window.
    pub mean: String,
    /// Its standard deviation over the baseline window.
    pub stddev: String,
    /// Samples of it in the baseline window.
    pub samples: String,
    /// Its mean over the seasonal window (the last hour).
    pub hourly: String,
    /// The hourly mean's mean over the last season (week), one sample per seasonal window.
    pub weekly_mean: String,
    /// The hourly mean's standard deviation over the last season (week).
    pub weekly_stddev: String,
    /// The seasonal expectation: its highest value within 30 minutes (a quarter of a period
    /// shorter than 2 hours) of the same time one `seasonal_period` before.
    pub seasonal: String,
}

impl SpikeSeries {
    /// The names for `values`' windows.
    pub fn new(values: &Values) -> Self {
        let rate =
            format!("namespace_workload:egressor_egress_bytes:rate{}", prom(values.rate_window));
        let w = prom(values.spike.baseline_window);
        let period = prom(values.spike.seasonal_period);
        let window = prom(seasonal_window(values.spike.seasonal_period));
        Self {
            mean: format!("{rate}:avg_over_time_{w}"),
            stddev: format!("{rate}:stddev_over_time_{w}"),
            samples: format!("{rate}:count_over_time_{w}"),
            hourly: format!("{rate}:avg_over_time_{window}"),
            weekly_mean: format!("{rate}:avg_over_time_{window}:avg_over_time_{period}"),
            weekly_stddev: format!("{rate}:avg_over_time_{window}:stddev_over_time_{period}"),
            seasonal: format!(
                "{rate}:max_over_time_1h_offset_{}",
                prom(values.spike.seasonal_period)
            ),
            rate,
        }
    }
}

/// The width of the seasonal window, centred on the same time a `period` before: an hour, or
/// half the period when that is shorter (test-sized periods).
fn seasonal_window(period: Duration) -> Duration {
    (period / 2).min(Duration::from_secs(3_600))
}

/// The operation suffix of the recording rules' rates for `values` (`rate5m`), as in
/// `namespace_workload:egressor_egress_bytes:rate5m`.
pub fn rate_operation(values: &Values) -> String {
    format!("rate{}", prom(values.rate_window))
}

/// The rule file for `values`, as YAML.
pub fn render(values: &Values) -> String {
    let rate = prom(values.rate_window);
    let range = prom(values.rate_window);
    let by = "namespace, workload, workload_kind, traffic_class, direction";
    let bytes = format!("namespace_workload_class_direction:egressor_flow_bytes:rate{rate}");
    let cost = format!("namespace_workload_class_direction:egressor_flow_cost_usd:rate{rate}");
    let spike = SpikeSeries::new(values);
    let baseline = prom(values.spike.baseline_window);
    let s = &values.spike;
    let min_samples = (values.spike.baseline_window.as_secs_f64() / values.interval.as_secs_f64()
        * s.min_baseline_coverage)
        .floor();
    let mut recording = vec![
        record(
            bytes.clone(),
            format!("sum by ({by}) (rate(egressor_flow_bytes_total{{hook=\"cgroup\"}}[{range}]))"),
        ),
        record(
            cost.clone(),
            format!(
                "sum by ({by}) (rate(egressor_flow_cost_usd_total{{hook=\"cgroup\"}}[{range}]))"
            ),
        ),
        record(
            spike.rate.clone(),
            format!("sum by (namespace, workload) ({bytes}{{direction=\"egress\"}})"),
        ),
        record(
            format!("namespace_workload:egressor_flow_cost_usd:rate{rate}"),
            format!("sum by (namespace, workload) ({cost})"),
        ),
        record(
            format!("namespace:egressor_flow_cost_usd:rate{rate}"),
            format!("sum by (namespace) ({cost})"),
        ),
        record(
            format!("traffic_class_direction:egressor_flow_cost_usd:rate{rate}"),
            format!("sum by (traffic_class, direction) ({cost})"),
        ),
        record(
            format!("namespace_workload_destination:egressor_egress_bytes:rate{rate}"),
            format!(
                "sum by (namespace, workload, traffic_class, remote_service, remote) \
                 (rate(egressor_flow_bytes_total{{hook=\"cgroup\",direction=\"egress\"}}[{range}]))"
            ),
        ),
        record(
            format!("namespace_workload:egressor_cross_zone_cost_usd:rate{rate}"),
            format!("sum by (namespace, workload) ({cost}{{traffic_class=\"cross_zone\"}})"),
        ),
        record(
            "namespace_workload_service:egressor_flow_avoidable_cost_usd:rate1h".into(),
            "sum by (namespace, workload, remote_service, remote_region) \
             (rate(egressor_flow_avoidable_cost_usd_total{hook=\"cgroup\"}[1h]))"
                .into(),
        ),
        record(
            "namespace:egressor_flow_cost_usd:rate1h".into(),
            "sum by (namespace) (rate(egressor_flow_cost_usd_total{hook=\"cgroup\"}[1h]))".into(),
        ),
        record(spike.mean.clone(), format!("avg_over_time({}[{baseline}])", spike.rate)),
        record(spike.stddev.clone(), format!("stddev_over_time({}[{baseline}])", spike.rate)),
        record(spike.samples.clone(), format!("count_over_time({}[{baseline}])", spike.rate)),
    ];
    // The window centred on the same time a season before: [t − period − 30m, t − period + 30m].
    // The seasonal baselines: the hourly mean, its mean and deviation over the season (one
    // point per hour), and the season's expectation for now.
    let seasonal = (!s.seasonal_period.is_zero()).then(|| {
        let window = seasonal_window(s.seasonal_period);
        let (w, period) = (prom(window), prom(s.seasonal_period));
        let offset = s.seasonal_period - window / 2;
        recording.push(record(spike.hourly.clone(), format!("avg_over_time({}[{w}])", spike.rate)));
        for (name, op) in [(&spike.weekly_mean, "avg"), (&spike.weekly_stddev, "stddev")] {
            recording.push(record(
                name.clone(),
                format!("{op}_over_time({}[{period}:{w}])", spike.hourly),
            ));
        }
        recording.push(record(
            spike.seasonal.clone(),
            format!("max_over_time({}[{}] offset {})", spike.rate, prom(window), prom(offset)),
        ));
        format!(
            "\nunless on (namespace, workload) {rate_s} <= {seasonal} * {factor}",
            rate_s = spike.rate,
            seasonal = spike.seasonal,
            factor = 1.0 + s.seasonal_tolerance,
        )
    });
    let mut alerts = vec![
        alert(
            values,
            Alert {
                name: "EgressSpike",
                anchor: "egressspike",
                severity: "warning",
                expr: format!(
                    "(\n  {rate_s}\n  - {mean}\n)\n/ (\n  ({stddev} > {mean} * {rel})\n  or {mean} * {rel}\n)\n> {z}\nand {rate_s} > {floor}\nand {samples} >= {min_samples}{seasonal}",
                    seasonal = seasonal.unwrap_or_default(),
                    rate_s = spike.rate,
                    mean = spike.mean,
                    stddev = spike.stddev,
                    samples = spike.samples,
                    rel = s.min_relative_stddev,
                    z = s.z_score,
                    floor = s.min_bytes_per_second,
                ),
                for_duration: s.for_duration,
                summary: "{{ $labels.namespace }}/{{ $labels.workload }} sends far more than usual",
                description: if s.seasonal_period.is_zero() {
                    "The egress rate of {{ $labels.namespace }}/{{ $labels.workload }} is more \
                    standard deviations above its rolling baseline than the threshold \
                    (alerts/values.yaml spike.z_score), above the volume floor, for the spike's \
                    duration."
                } else {
                    "The egress rate of {{ $labels.namespace }}/{{ $labels.workload }} is more \
                    standard deviations above its rolling baseline than the threshold \
                    (alerts/values.yaml spike.z_score), above the volume floor and above the \
                    same time last week, for the spike's duration."
                },
            },
        ),
        alert(
            values,
            Alert {
                name: "EgressorTargetDown",
                anchor: "egressortargetdown",
                severity: "warning",
                expr: format!("up{{{}}} == 0", values.job_selector),
                for_duration: values.health_for,
                summary: "An egressor agent is not scraped",
                description: "{{ $labels.instance }} has not answered scrapes: its node's traffic \
                is not counted in Prometheus until it is back (the agent's counters continue).",
            },
        ),
        alert(
            values,
            Alert {
                name: "EgressorFlowMapOverflow",
                anchor: "egressorflowmapoverflow",
                severity: "warning",
                expr: format!("increase(egressor_flow_overflow_bytes_total[{range}]) > 0"),
                for_duration: values.health_for,
                summary: "The kernel flow map of {{ $labels.instance }} is full",
                description: "Bytes are counted in the overflow counter, not attributed to a flow \
                ({{ $labels.hook }} {{ $labels.direction }}): raise --flow-map.max-entries.",
            },
        ),
        alert(
            values,
            Alert {
                name: "EgressorDnsEventsLost",
                anchor: "egressordnseventslost",
                severity: "info",
                expr: format!(
                    "sum by (instance) (increase(egressor_dns_responses_total{{outcome=~\"rate_limited|ring_full\"}}[{range}])) > 0"
                ),
                for_duration: values.health_for,
                summary: "{{ $labels.instance }} drops DNS responses before naming them",
                description: "DNS responses beyond --dns.events-per-second (or a full ring \
                buffer) are not parsed: some remotes lose their DNS name label.",
            },
        ),
        alert(
            values,
            Alert {
                name: "EgressorSeriesCapReached",
                anchor: "egressorseriescapreached",
                severity: "warning",
                expr: format!("increase(egressor_series_folded_flows_total[{range}]) > 0"),
                for_duration: values.health_for,
                summary: "{{ $labels.instance }} folds new label sets at --series.max",
                description: "New label sets fold into remote=\"other\" and workload=\"other\" \
                (no byte is lost, detail is): raise --series.max or lower \
                --remote-names.top-k.",
            },
        ),
        alert(
            values,
            Alert {
                name: "EgressorKubernetesMetadataStale",
                anchor: "egressorkubernetesmetadatastale",
                severity: "warning",
                expr: format!(
                    "sum by (instance, kind) (rate(egressor_kubernetes_watch_errors_total[{range}])) > 0"
                ),
                for_duration: values.health_for,
                summary: "{{ $labels.instance }} cannot watch Kubernetes {{ $labels.kind }}s",
                description: "Watch errors for {{ $labels.kind }} have not stopped: new pods' bytes \
                count as unknown until the watch recovers (RBAC, API server reachability).",
            },
        ),
    ];
    let sb = &values.slow_burn;
    let lookback = prom(sb.lookback);
    let hours = (sb.lookback.as_secs_f64() / 3_600.0 * sb.min_coverage).floor();
    alerts.push(alert(values, Alert {
        name: "EgressSlowBurn",
        anchor: "egressslowburn",
        severity: "info",
        expr: format!(
            "{mean}\n/ (avg_over_time({rate_s}[{lookback}:1h] offset 1d) > 0)\n> {ratio}\nand {mean} > {floor}\nand count_over_time({rate_s}[{lookback}:1h] offset 1d) >= {hours}",
            mean = spike.mean,
            rate_s = spike.rate,
            ratio = sb.ratio,
            floor = sb.min_bytes_per_second,
        ),
        for_duration: sb.for_duration,
        summary: "{{ $labels.namespace }}/{{ $labels.workload }} egress has grown for days",
        description: "The last day's mean egress rate of {{ $labels.namespace }}/\
            {{ $labels.workload }} is {{ $value | printf \"%.1f\" }} times its mean over the \
            week before.",
    }));
    let nd = &values.new_destination;
    let dest = format!("namespace_workload_destination:egressor_egress_bytes:rate{rate}");
    let on = "namespace, workload, traffic_class, remote_service, remote";
    alerts.push(alert(values, Alert {
        name: "EgressNewDestination",
        anchor: "egressnewdestination",
        severity: "info",
        expr: format!(
            "{dest}{{traffic_class=~\"{classes}\",remote!=\"other\"}} > 0\nunless on ({on}) max_over_time({dest}[{lookback}] offset {settle})\nand on (namespace, workload) ({rate_s} offset {age})",
            classes = nd.classes,
            lookback = prom(nd.lookback),
            settle = prom(values.rate_window * 2),
            rate_s = spike.rate,
            age = prom(nd.min_workload_age),
        ),
        for_duration: Duration::ZERO,
        summary: "{{ $labels.namespace }}/{{ $labels.workload }} sends to a new destination",
        description: "{{ $labels.namespace }}/{{ $labels.workload }} started sending to \
            {{ $labels.remote }} ({{ $labels.traffic_class }}{{ with $labels.remote_service }}, \
            {{ . }}{{ end }}), which it did not send to in the look-back window.",
    }));
    let lk = &values.leak;
    let active = format!(
        "sum by ({on}) (rate(egressor_flow_bytes_total{{hook=\"cgroup\",direction=\"egress\",traffic_class=~\"{}\"}}[{}]))",
        lk.classes,
        prom(lk.activity_window)
    );
    let step = prom(lk.activity_window / 3);
    // Steps of the subquery over the whole duration, less one for its alignment: a
    // destination younger than the duration has fewer.
    let steps =
        (lk.duration.as_secs() / (lk.activity_window.as_secs() / 3).max(1)).saturating_sub(1);
    alerts.push(alert(values, Alert {
        name: "EgressLeak",
        anchor: "egressleak",
        severity: "warning",
        expr: format!(
            "min_over_time({active}[{d}:{step}]) > 0\nand max_over_time({active}[{d}:{step}]) < {max}\nand count_over_time({active}[{d}:{step}]) >= {steps}",
            d = prom(lk.duration),
            max = lk.max_bytes_per_second,
        ),
        for_duration: Duration::ZERO,
        summary: "{{ $labels.namespace }}/{{ $labels.workload }} trickles data to one \
            destination without pause",
        description: "{{ $labels.namespace }}/{{ $labels.workload }} has sent to \
            {{ $labels.remote }} ({{ $labels.traffic_class }}{{ with $labels.remote_service }}, \
            {{ . }}{{ end }}) in every step of the leak window, always under the leak rate: \
            a beacon, a forgotten sync or an exfiltration.",
    }));
    let cz = &values.cross_zone;
    let cz_rate = format!("namespace_workload:egressor_cross_zone_cost_usd:rate{rate}");
    alerts.push(alert(values, Alert {
        name: "CrossZoneCostSurge",
        anchor: "crosszonecostsurge",
        severity: "warning",
        expr: format!(
            "avg_over_time({cz_rate}[1h]) * 86400 > {min}\nand avg_over_time({cz_rate}[1h]) > {ratio} * avg_over_time({cz_rate}[1h] offset 1d)",
            min = cz.min_usd_per_day,
            ratio = cz.ratio,
        ),
        for_duration: cz.for_duration,
        summary: "{{ $labels.namespace }}/{{ $labels.workload }} cross-zone spend surged",
        description: "{{ $labels.namespace }}/{{ $labels.workload }} spends \
            {{ $value | printf \"%.2f\" }} USD per day on cross-zone traffic (last hour's \
            rate), more than the threshold times the same hour yesterday.",
    }));
    alerts.push(alert(values, Alert {
        name: "AvoidableNatCost",
        anchor: "avoidablenatcost",
        severity: "info",
        expr: format!(
            "avg_over_time(namespace_workload_service:egressor_flow_avoidable_cost_usd:rate1h[1d]) * 86400 * 30 > {}",
            values.avoidable_nat.min_usd_per_month
        ),
        for_duration: Duration::from_secs(3_600),
        summary: "{{ $labels.namespace }}/{{ $labels.workload }} pays NAT processing a gateway \
            endpoint would save",
        description: "{{ $labels.namespace }}/{{ $labels.workload }} reaches \
            {{ $labels.remote_service }} in {{ $labels.remote_region }} through a NAT gateway: \
            {{ $value | printf \"%.0f\" }} USD per month at the last day's rate, free through \
            a VPC gateway endpoint in the subnet's route table.",
    }));
    let budget = &values.budget;
    if budget.monthly_usd > 0.0 {
        alerts.push(alert(
            values,
            Alert {
                name: "EgressBudgetBurn",
                anchor: "egressbudgetburn",
                severity: "warning",
                expr: format!(
                    "sum(namespace:egressor_flow_cost_usd:rate1h) * 86400 * 30 > {}",
                    budget.monthly_usd
                ),
                for_duration: Duration::from_secs(3_600),
                summary: "Data-transfer spend is on course to exceed its monthly budget",
                description: "At the last hour's rate, egressor-measured data transfer costs \
                {{ $value | printf \"%.0f\" }} USD per 30 days, over the budget \
                (alerts/values.yaml budget.monthly_usd).",
            },
        ));
    }
    for (namespace, usd) in &budget.namespaces {
        alerts.push(alert(values, Alert {
            name: "EgressBudgetBurn",
            anchor: "egressbudgetburn",
            severity: "warning",
            expr: format!(
                "sum by (namespace) (namespace:egressor_flow_cost_usd:rate1h{{namespace=\"{namespace}\"}}) * 86400 * 30 > {usd}"
            ),
            for_duration: Duration::from_secs(3_600),
            summary: "{{ $labels.namespace }} is on course to exceed its monthly \
                data-transfer budget",
            description: "At the last hour's rate, {{ $labels.namespace }}'s data transfer \
                costs {{ $value | printf \"%.0f\" }} USD per 30 days, over its budget \
                (alerts/values.yaml budget.namespaces).",
        }));
    }
    let interval = prom(values.interval);
    let file = RuleFile {
        groups: vec![
            Group { name: "egressor.rules", interval: interval.clone(), rules: recording },
            Group { name: "egressor.alerts", interval, rules: alerts },
        ],
    };
    let yaml = serde_yaml_ng::to_string(&file).expect("rule file serializes");
    format!(
        "# Generated by `egressor rules --values alerts/values.yaml`: edit the values, not this.\n{yaml}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_written_as_prometheus_does() {
        let d = |s| prom(Duration::from_secs(s));
        assert_eq!(
            [d(300), d(86_400), d(90), d(0), d(604_800 + 3_600)],
            ["5m", "1d", "1m30s", "0s", "1w1h"]
        );
    }
}
