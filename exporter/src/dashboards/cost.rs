//! Cost overview: spend rate and month to date by traffic class, namespace and workload, the
//! avoidable spend, and the forecast to month end.

use serde_json::Value;

use super::{FLOWS, dashboard, instant, panel, range, table, workload_variables};
use crate::rules::Values;

/// Seconds left in the month at evaluation time (UTC), as PromQL computes it.
const MONTH_LEFT: &str =
    "(days_in_month() - day_of_month() + 1) * 86400 - hour() * 3600 - minute() * 60";

pub(super) fn build(_values: &Values) -> Value {
    let cost = format!("egressor_flow_cost_usd_total{{{FLOWS}}}");
    let avoidable = format!("egressor_flow_avoidable_cost_usd_total{{{FLOWS}}}");
    let per_day = |by: &str| format!("sum by ({by}) (rate({cost}[$__rate_interval])) * 86400");
    let panels = vec![
        panel(
            "stat",
            "Spend rate (USD per day)",
            "Data-transfer cost per day at the current rate: transfer price plus egress-path \
             processing (egressor_flow_cost_usd_total).",
            "currencyUSD",
            vec![instant(format!("sum(rate({cost}[$__rate_interval])) * 86400"))],
        ),
        panel(
            "stat",
            "Month to date",
            "Cost counted since the start of this month (UTC; the panel's own time range).",
            "currencyUSD",
            vec![instant(format!("sum(increase({cost}[$__range]))"))],
        )
        .time_from("now/M"),
        panel(
            "stat",
            "Forecast to month end",
            "Month to date plus the last hour's rate for the rest of the month.",
            "currencyUSD",
            vec![instant(format!(
                "sum(increase({cost}[$__range])) + sum(rate({cost}[1h])) * ({MONTH_LEFT})"
            ))],
        )
        .time_from("now/M"),
        panel(
            "stat",
            "Avoidable (USD per month)",
            "What VPC gateway endpoints would save (S3, DynamoDB in the same region reached \
             through a NAT gateway), per 30 days at the last day's rate.",
            "currencyUSD",
            vec![instant(format!("sum(rate({avoidable}[1d])) * 86400 * 30"))],
        ),
        panel(
            "timeseries",
            "Spend by traffic class (USD per day)",
            "Cost per day at each moment's rate, by the classifier's traffic class.",
            "currencyUSD",
            vec![range(per_day("traffic_class"), "{{traffic_class}}")],
        ),
        panel(
            "timeseries",
            "Spend by namespace (USD per day)",
            "Cost per day at each moment's rate, by Kubernetes namespace (empty off Kubernetes).",
            "currencyUSD",
            vec![range(per_day("namespace"), "{{namespace}}")],
        ),
        panel(
            "timeseries",
            "Top 10 workloads by spend (USD per day)",
            "The ten workloads spending most at each moment.",
            "currencyUSD",
            vec![range(format!("topk(10, {})", per_day("namespace, workload")), "{{namespace}}/{{workload}}")],
        ),
        panel(
            "table",
            "Month to date by workload and class",
            "Cost since the start of this month, by workload and traffic class, largest first.",
            "currencyUSD",
            vec![table(format!(
                "sort_desc(sum by (namespace, workload, traffic_class) (increase({cost}[$__range])))"
            ))],
        )
        .time_from("now/M"),
        panel(
            "table",
            "Avoidable spend: gateway endpoint candidates (USD per month)",
            "Per workload and service, the NAT processing a gateway endpoint in the subnet's \
             route table would save, per 30 days at the last day's rate (alert \
             AvoidableNatCost).",
            "currencyUSD",
            vec![table(format!(
                "sort_desc(sum by (namespace, workload, remote_service, remote_region) (rate({avoidable}[1d]))) * 86400 * 30"
            ))],
        ),
        panel(
            "timeseries",
            "Bytes by traffic class and direction",
            "L3 bytes per second (the IP packets as the cloud bills them).",
            "Bps",
            vec![range(
                format!(
                    "sum by (traffic_class, direction) (rate(egressor_flow_bytes_total{{{FLOWS}}}[$__rate_interval]))"
                ),
                "{{traffic_class}} {{direction}}",
            )],
        ),
    ];
    dashboard(
        "egressor-cost",
        "egressor / Cost overview",
        "Who spends what on data transfer, where, since when: spend rate and month to date by \
         traffic class, namespace and workload; avoidable spend; forecast to month end.",
        workload_variables(true),
        panels,
    )
}
