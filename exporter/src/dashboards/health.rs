//! Agent health: scrape status, flow map fill and overflow, read-cycle time, DNS capture,
//! series against the cap, memory and CPU of every agent.

use serde_json::Value;

use super::{dashboard, instant, label_variable, panel, range};
use crate::rules::Values;

pub(super) fn build(values: &Values) -> Value {
    let job = &values.job_selector;
    let sel = format!("{job},instance=~\"$instance\"");
    let m = |metric: &str| format!("{metric}{{{sel}}}");
    let rate =
        |metric: &str, by: &str| format!("sum by ({by}) (rate({}[$__rate_interval]))", m(metric));
    let panels = vec![
        panel(
            "stat",
            "Agents up",
            "Agents answering scrapes (alert EgressorTargetDown).",
            "short",
            vec![instant(format!("sum(up{{{sel}}})"))],
        ),
        panel(
            "stat",
            "Flow map fill (fullest agent)",
            "Entries in the kernel flow map over its capacity (--flow-map.max-entries); past \
             100 % bytes go to the overflow counter.",
            "percentunit",
            vec![instant(format!(
                "max({} / {})",
                m("egressor_flow_map_entries"),
                m("egressor_flow_map_max_entries")
            ))],
        ),
        panel(
            "stat",
            "Series (largest agent)",
            "Live label sets of the flow counters, on the agent with most.",
            "short",
            vec![instant(format!("max({})", m("egressor_series")))],
        ),
        panel(
            "stat",
            "Since the last read (oldest agent)",
            "Time since an agent's last completed read cycle.",
            "s",
            vec![instant(format!("max(time() - {})", m("egressor_last_read_timestamp_seconds")))],
        ),
        panel(
            "timeseries",
            "Flow map fill",
            "Entries in the kernel flow map over its capacity, per agent.",
            "percentunit",
            vec![range(
                format!(
                    "{} / {}",
                    m("egressor_flow_map_entries"),
                    m("egressor_flow_map_max_entries")
                ),
                "{{instance}}",
            )],
        ),
        panel(
            "timeseries",
            "Overflow bytes",
            "Bytes counted without a flow because the map was full (alert \
             EgressorFlowMapOverflow), per agent, hook and direction.",
            "Bps",
            vec![range(
                rate("egressor_flow_overflow_bytes_total", "instance, hook, direction"),
                "{{instance}} {{hook}} {{direction}}",
            )],
        ),
        panel(
            "timeseries",
            "Read-cycle duration",
            "Time to read the kernel maps, account and publish one cycle: median and 99th \
             percentile per agent.",
            "s",
            vec![
                range(
                    format!(
                        "histogram_quantile(0.5, {})",
                        rate("egressor_read_cycle_duration_seconds_bucket", "instance, le")
                    ),
                    "p50 {{instance}}",
                ),
                range(
                    format!(
                        "histogram_quantile(0.99, {})",
                        rate("egressor_read_cycle_duration_seconds_bucket", "instance, le")
                    ),
                    "p99 {{instance}}",
                ),
            ],
        ),
        panel(
            "timeseries",
            "DNS responses",
            "DNS responses seen per second: captured, or lost to the rate limit or a full ring \
             buffer (alert EgressorDnsEventsLost).",
            "cps",
            vec![range(
                rate("egressor_dns_responses_total", "instance, outcome"),
                "{{instance}} {{outcome}}",
            )],
        ),
        panel(
            "timeseries",
            "Series against the cap",
            "Live label sets and --series.max per agent; folded flows mean the cap is reached \
             (alert EgressorSeriesCapReached).",
            "short",
            vec![
                range(m("egressor_series"), "series {{instance}}"),
                range(m("egressor_series_max"), "cap {{instance}}"),
                range(
                    rate("egressor_series_folded_flows_total", "instance"),
                    "folded flows/s {{instance}}",
                ),
            ],
        ),
        panel(
            "timeseries",
            "Resident memory",
            "Resident set size of each agent.",
            "bytes",
            vec![range(m("process_resident_memory_bytes"), "{{instance}}")],
        ),
        panel(
            "timeseries",
            "CPU",
            "CPU time per second of each agent (1 = one core).",
            "percentunit",
            vec![range(rate("process_cpu_seconds_total", "instance"), "{{instance}}")],
        ),
    ];
    dashboard(
        "egressor-health",
        "egressor / Agent health",
        "Are the agents counting everything: scrapes, kernel map fill and overflow, read-cycle \
         time, DNS capture, series against the cap, memory and CPU.",
        vec![label_variable("instance", "instance", "egressor_build_info", job, true)],
        panels,
    )
}
