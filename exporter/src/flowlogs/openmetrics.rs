//! `--openmetrics FILE`: the analysis as the agent's flow counters, with timestamps, for
//! `promtool tsdb create-blocks-from openmetrics FILE DIR` (Prometheus backfill).
//!
//! The families are the agent's (`egressor_flow_bytes_total`, `egressor_flow_packets_total`,
//! `egressor_flow_cost_usd_total`, `egressor_flow_avoidable_cost_usd_total`) with its label
//! set, in its order (docs/metrics.md): `hook="flowlogs"`; `direction` as the local end saw
//! it; `workload` the configured network of the local address and `remote`/`remote_zone` the
//! remote's (empty outside `networks`); `traffic_class`, `egress_path`, `remote_region`,
//! `remote_provider`, `remote_service` from the classifier; the Kubernetes and country labels
//! empty. No address is a label. Each series is a cumulative counter sampled at the end of
//! every minute in which one of its records ended (`end`, OpenMetrics timestamps in
//! seconds), priced in time order with the month's tiers reset on the first of each month
//! (UTC), as the agent prices. Format: OpenMetrics 1.0 text
//! (<https://github.com/OpenObservability/OpenMetrics/blob/main/specification/OpenMetrics.md>).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io::Write,
    sync::Arc,
    time::{Duration, SystemTime},
};

use super::analysis::{Analysis, Counts, SeriesKey};
use crate::{
    config::FileConfig,
    metrics::{FLOW_AVOIDABLE_COST_HELP, FLOW_BYTES_HELP, FLOW_COST_HELP, FLOW_PACKETS_HELP},
    prices::{PriceSheet, Pricer},
};

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Label sets.
    pub series: usize,
    /// Samples of `egressor_flow_bytes_total` (one per series and minute).
    pub samples: usize,
}

/// One series' cumulative values at one minute.
#[derive(Debug, Clone, Copy, Default)]
struct Point {
    minute: u32,
    counts: Counts,
    usd: f64,
    avoidable_usd: f64,
}

/// Writes the timeline of `analysis` (built with `Options::timeline`) to `out`.
///
/// # Errors
/// A failed write.
pub fn write(
    analysis: &Analysis,
    sheet: Arc<PriceSheet>,
    config: &FileConfig,
    out: &mut impl Write,
) -> std::io::Result<Written> {
    // A series by its bucket's key, not the bucket's index (which depends on the thread
    // that met it first): the file is the same on any number of threads.
    let canonical = |series: u32| {
        let k = analysis.series[series as usize];
        (&analysis.buckets[k.bucket as usize].0, k.local_network, k.remote_network)
    };
    // Price in time order, as the bytes were sent.
    let mut cells: Vec<(&(u32, u32), &Counts)> = analysis.timeline.iter().collect();
    cells.sort_by_key(|((series, minute), _)| (*minute, canonical(*series)));
    let mut pricer = Pricer::new(sheet, &config.pricing);
    let mut points: BTreeMap<_, Vec<Point>> = BTreeMap::new();
    let mut keys = BTreeMap::new();
    for ((series, minute), c) in cells {
        let (b, _, _) = canonical(*series);
        keys.insert(canonical(*series), analysis.series[*series as usize]);
        pricer.start_cycle(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(*minute) * 60));
        let cost = pricer.cost(&super::report::query(b), c.bytes);
        let line = points.entry(canonical(*series)).or_default();
        let mut p = line.last().copied().unwrap_or_default();
        p.minute = *minute;
        p.counts.merge(c);
        p.usd += cost.usd;
        p.avoidable_usd += cost.avoidable_usd;
        line.push(p);
    }
    let labels: BTreeMap<_, String> =
        keys.iter().map(|(c, k)| (*c, label_set(analysis, config, k))).collect();
    let mut text = String::new();
    type Value = fn(&Point) -> Option<String>;
    let families: [(&str, &str, Option<&str>, Value); 4] = [
        ("egressor_flow_bytes", FLOW_BYTES_HELP, Some("bytes"), |p| {
            Some(p.counts.bytes.to_string())
        }),
        ("egressor_flow_packets", FLOW_PACKETS_HELP, None, |p| Some(p.counts.packets.to_string())),
        ("egressor_flow_cost_usd", FLOW_COST_HELP, Some("usd"), |p| Some(p.usd.to_string())),
        ("egressor_flow_avoidable_cost_usd", FLOW_AVOIDABLE_COST_HELP, Some("usd"), |p| {
            (p.avoidable_usd > 0.0).then(|| p.avoidable_usd.to_string())
        }),
    ];
    let mut written = Written { series: points.len(), samples: 0 };
    for (name, help, unit, value) in families {
        let _ = writeln!(text, "# TYPE {name} counter");
        if let Some(unit) = unit {
            let _ = writeln!(text, "# UNIT {name} {unit}");
        }
        let _ = writeln!(text, "# HELP {name} {}", escape_help(help));
        for (key, line) in &points {
            for p in line {
                let Some(v) = value(p) else { continue };
                let at = u64::from(p.minute) * 60 + 60;
                let _ = writeln!(text, "{name}_total{{{}}} {v} {at}", labels[key]);
                if name == "egressor_flow_bytes" {
                    written.samples += 1;
                }
            }
        }
        out.write_all(text.as_bytes())?;
        text.clear();
    }
    out.write_all(b"# EOF\n")?;
    Ok(written)
}

/// The agent's flow labels for `key`, in its order.
fn label_set(analysis: &Analysis, config: &FileConfig, key: &SeriesKey) -> String {
    let (b, _) = &analysis.buckets[key.bucket as usize];
    let network = |i: Option<u32>| i.map(|i| &config.networks[i as usize]);
    let (local, remote) = (network(key.local_network), network(key.remote_network));
    let direction = if b.sent { "egress" } else { "ingress" };
    let pairs = [
        ("hook", "flowlogs"),
        ("interface", ""),
        ("direction", direction),
        ("traffic_class", b.class.as_str()),
        ("workload", local.map_or("", |n| n.name.as_str())),
        ("namespace", ""),
        ("workload_kind", ""),
        ("workload_version", ""),
        ("remote", remote.map_or("", |n| n.name.as_str())),
        ("remote_zone", remote.and_then(|n| n.zone.as_deref()).unwrap_or("")),
        ("remote_region", &b.region),
        ("remote_provider", b.provider.map_or("", |p| p.as_str())),
        ("remote_service", &b.service),
        ("remote_country", ""),
        ("remote_namespace", ""),
        ("remote_kind", ""),
        ("egress_path", b.path.as_str()),
    ];
    pairs.iter().map(|(k, v)| format!("{k}=\"{}\"", escape_value(v))).collect::<Vec<_>>().join(",")
}

/// A label value as OpenMetrics writes it: `\`, `"` and line feeds escaped.
fn escape_value(v: &str) -> String {
    v.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

/// HELP text: `\` and line feeds escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', r"\\").replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        assert_eq!(escape_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape_help("x\\y\nz"), "x\\\\y\\nz");
    }
}
