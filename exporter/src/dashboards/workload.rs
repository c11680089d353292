//! Workload drill-down: one workload's egress against the baselines EgressSpike reads, its
//! traffic classes, destinations, new destinations and active alerts.

use serde_json::Value;

use super::{FLOWS, dashboard, instant, panel, range, table, workload_variables};
use crate::rules::{SpikeSeries, Values};

pub(super) fn build(values: &Values) -> Value {
    let s = SpikeSeries::new(values);
    let sel = "{namespace=~\"$namespace\",workload=~\"$workload\"}";
    let spike = &values.spike;
    let (mean, stddev) = (format!("{}{sel}", s.mean), format!("{}{sel}", s.stddev));
    let mut baseline = vec![
        range(format!("{}{sel}", s.rate), "egress {{workload}}"),
        range(mean.clone(), "baseline mean ({{workload}})"),
        range(
            format!(
                "{mean} + {z} * (({stddev} > {mean} * {rel}) or {mean} * {rel})",
                z = spike.z_score,
                rel = spike.min_relative_stddev,
            ),
            "spike threshold ({{workload}})",
        ),
        range(format!("{}{sel}", s.weekly_mean), "weekly mean of hourly means ({{workload}})"),
    ];
    if !spike.seasonal_period.is_zero() {
        baseline
            .push(range(format!("{}{sel}", s.seasonal), "same time last season ({{workload}})"));
    }
    let flows = format!("egressor_flow_bytes_total{{{FLOWS}}}");
    let panels = vec![
        panel(
            "timeseries",
            "Egress against its baselines",
            "The workload's egress rate (recording rule), the rolling baseline's mean, the \
             EgressSpike threshold (mean + z × deviation, the deviation at least a fraction \
             of the mean), the mean over the season (a week of hourly means) and the seasonal expectation (alerts/values.yaml).",
            "Bps",
            baseline,
        )
        .size(24, 9),
        panel(
            "timeseries",
            "Egress by traffic class",
            "L3 bytes per second sent, by traffic class.",
            "Bps",
            vec![range(
                format!(
                    "sum by (traffic_class) (rate(egressor_flow_bytes_total{{{FLOWS},direction=\"egress\"}}[$__rate_interval]))"
                ),
                "{{traffic_class}}",
            )],
        ),
        panel(
            "timeseries",
            "Spend by traffic class (USD per day)",
            "Cost per day at each moment's rate, both directions.",
            "currencyUSD",
            vec![range(
                format!(
                    "sum by (traffic_class) (rate(egressor_flow_cost_usd_total{{{FLOWS}}}[$__rate_interval])) * 86400"
                ),
                "{{traffic_class}}",
            )],
        ),
        panel(
            "table",
            "Destinations",
            "Bytes per second by direction and destination (name, cloud service and region, \
             country, egress path), largest first. Raw addresses: `egressor top` on the node.",
            "Bps",
            vec![table(format!(
                "sort_desc(sum by (direction, traffic_class, remote, remote_service, remote_region, remote_country, egress_path) (rate({flows}[$__rate_interval])))"
            ))],
        )
        .size(24, 9),
        panel(
            "stat",
            "Distinct external destinations",
            "Distinct internet and cloud addresses in the last complete destinations window \
             (a HyperLogLog estimate, 0.57 % standard error).",
            "short",
            vec![instant("sum(egressor_distinct_destinations{workload=~\"$workload\"})")],
        ),
        panel(
            "timeseries",
            "New external destinations",
            "External addresses the workload reached for the first time in the agent's \
             look-back (per interval).",
            "short",
            vec![range(
                "sum(increase(egressor_new_destinations_total{workload=~\"$workload\"}[$__rate_interval]))",
                "new destinations",
            )],
        )
        .size(9, 8),
        panel(
            "table",
            "Alerts",
            "The bundle's alerts for this workload, pending or firing (EgressSpike, \
             EgressNewDestination with the destination, EgressLeak, …).",
            "short",
            vec![table(format!("ALERTS{sel}"))],
        )
        .size(9, 8),
    ];
    dashboard(
        "egressor-workload",
        "egressor / Workload",
        "One workload: its egress against its baselines, traffic classes, spend, destinations, \
         new destinations and alerts.",
        workload_variables(false),
        panels,
    )
}
