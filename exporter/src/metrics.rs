//! egressor's metrics: the flow counters (encoded at scrape time from the last read cycle's
//! snapshot), and the agent's own health. See `docs/metrics.md` for the full reference.

use std::{
    fmt,
    sync::{Arc, Mutex},
};

use egressor_common::{Direction, FlowCounters, Hook};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{
        MetricType,
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};

use crate::{
    accounting::Totals,
    classify::TrafficClass,
    dataplane::Attachment,
    labels::{
        ClassDirectionLabels, DirectionLabel, FlowLabels, HookDirectionLabels, HookLabel,
        PathPriceLabels, PriceLabels,
    },
    paths::EgressPath,
    prices::{Cost, PriceSheet, Pricer},
};

/// Metric name prefix.
pub const PREFIX: &str = "egressor";

/// What the last read cycle saw, published for scrapes.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Totals and cost per label set since the agent started.
    pub series: Vec<(FlowLabels, Totals, Cost)>,
    /// Effective prices at the end of the cycle.
    pub prices: PriceRows,
    /// Overflow totals since the programs were loaded.
    pub overflow: Vec<(Hook, Direction, FlowCounters)>,
    /// Entries in the kernel flow map at the last read.
    pub map_entries: u64,
    /// Live flow label sets.
    pub series_count: u64,
    /// Flows folded because the series cap was reached, since start.
    pub folded_flows: u64,
    /// Full folds admitted past the series cap (its reserve used up), since start.
    pub series_over_cap: u64,
    /// Estimated distinct external destinations per workload, last complete window.
    pub distinct_destinations: Vec<(Arc<str>, f64)>,
    /// New external destinations per workload since start.
    pub new_destinations: Vec<(Arc<str>, u64)>,
    /// Remembered (workload, destination) pairs.
    pub remembered_destinations: u64,
    /// DNS capture and naming.
    pub dns: DnsSnapshot,
}

/// DNS capture and naming counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct DnsSnapshot {
    /// Responses (captured, rate limited, ring full) by the kernel side, since load.
    pub responses: [u64; 3],
    /// Responses that did not parse in full.
    pub parse_errors: u64,
    /// Address answers learned.
    pub learned: u64,
    /// Names held.
    pub names: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WorkloadLabels {
    workload: Arc<str>,
}

/// The price gauges' values: the marginal price of the next byte by class, direction and
/// exception; processing prices by path; the month's tier volume by class and direction.
#[derive(Debug, Default, Clone)]
pub struct PriceRows {
    /// `egressor_price_usd_per_gib`.
    pub transfer: Vec<(PriceLabels, f64)>,
    /// `egressor_path_price_usd_per_gib`.
    pub processing: Vec<(PathPriceLabels, f64)>,
    /// `egressor_tier_volume_bytes`.
    pub tier_volume: Vec<(ClassDirectionLabels, u64)>,
}

impl PriceRows {
    /// The rows for the pricer's sheet and current volumes. Every class and direction has a
    /// row (0 where the sheet lists nothing); exceptions get their own rows.
    pub fn of(pricer: &Pricer) -> Self {
        let sheet = pricer.sheet();
        let mut rows = Self::default();
        for class in TrafficClass::ALL {
            for direction in [DirectionLabel::Ingress, DirectionLabel::Egress] {
                let egress = direction.is_egress();
                let row = |service: &str, region: &str| {
                    let price = sheet
                        .transfer(class, egress, service, region)
                        .map_or(0.0, |p| pricer.marginal(p, class, egress));
                    let labels = PriceLabels {
                        traffic_class: class,
                        direction,
                        remote_service: service.into(),
                        remote_region: region.into(),
                    };
                    (labels, price)
                };
                rows.transfer.push(row("", ""));
                if let Some(c) = sheet.prices.get(&class) {
                    rows.transfer.extend(c.services.keys().map(|s| row(s, "")));
                    rows.transfer.extend(c.regions.keys().map(|r| row("", r)));
                    let tiered = [&c.egress, &c.ingress][usize::from(!egress)]
                        .as_ref()
                        .is_some_and(|p| !p.tiers.is_empty());
                    if tiered {
                        rows.tier_volume.push((
                            ClassDirectionLabels { traffic_class: class, direction },
                            pricer.volume(class, egress),
                        ));
                    }
                }
            }
        }
        for path in EgressPath::ALL {
            for direction in [DirectionLabel::Ingress, DirectionLabel::Egress] {
                let price = sheet
                    .processing(path, direction.is_egress())
                    .map_or(0.0, |p| pricer.marginal(p, TrafficClass::NonIp, false));
                rows.processing.push((PathPriceLabels { egress_path: path, direction }, price));
            }
        }
        rows
    }
}

/// The latest [`Snapshot`], swapped in whole by the reader and read by scrapes.
#[derive(Debug, Default)]
pub struct SharedSnapshot(Mutex<Arc<Snapshot>>);

impl SharedSnapshot {
    /// Publishes a new snapshot.
    pub fn store(&self, snapshot: Snapshot) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
    }

    /// The latest snapshot.
    pub fn load(&self) -> Arc<Snapshot> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The agent's own metrics, updated by the reader.
#[derive(Debug, Clone)]
pub struct SelfMetrics {
    /// `egressor_read_cycle_duration_seconds`.
    pub read_duration: Histogram,
    /// `egressor_read_cycles_total`.
    pub read_cycles: Counter,
    /// `egressor_read_errors_total`.
    pub read_errors: Counter,
    /// `egressor_flow_evictions_total`.
    pub flow_evictions: Counter,
    /// `egressor_last_read_timestamp_seconds`.
    pub last_read_timestamp: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// `egressor_checkpoint_errors_total`.
    pub checkpoint_errors: Counter,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildInfoLabels {
    version: &'static str,
    revision: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AttachmentLabels {
    hook: HookLabel,
    direction: DirectionLabel,
    target: String,
    mechanism: &'static str,
}

/// Builds the registry: the process metrics (unprefixed, [`crate::process`]) and, under
/// `egressor_`, the flow collector, prices, attachments, build info and self metrics. Others
/// register theirs in `registry.sub_registry_with_prefix(PREFIX)`.
pub fn registry(
    snapshot: Arc<SharedSnapshot>,
    prices: Arc<PriceSheet>,
    attachments: &[Attachment],
    map_capacity: u32,
    series_max: u64,
) -> (Registry, SelfMetrics) {
    let mut root = Registry::default();
    root.register_collector(Box::new(crate::process::ProcessCollector));
    let registry = root.sub_registry_with_prefix(PREFIX);

    registry.register_collector(Box::new(FlowCollector {
        snapshot,
        series_max,
        sheet: format!("{}/{} version {}", prices.provider, prices.region, prices.version),
        map_capacity,
    }));

    let attached = Family::<AttachmentLabels, Gauge>::default();
    for a in attachments {
        attached
            .get_or_create(&AttachmentLabels {
                hook: a.hook.into(),
                direction: a.direction.into(),
                target: a.target.clone(),
                mechanism: a.mechanism,
            })
            .set(1);
    }
    registry.register(
        "program_attached",
        "1 for each eBPF program attached, by hook, direction, target (cgroup directory or \
         interface) and mechanism (cgroup_link, tcx, clsact)",
        attached,
    );

    let build = Family::<BuildInfoLabels, Gauge>::default();
    build
        .get_or_create(&BuildInfoLabels {
            version: env!("CARGO_PKG_VERSION"),
            revision: env!("EGRESSOR_GIT_REVISION"),
        })
        .set(1);
    registry.register("build_info", "egressor version and git revision; value 1", build);

    let metrics = SelfMetrics {
        // 0.5 ms … ~8 s
        read_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 15)),
        read_cycles: Counter::default(),
        read_errors: Counter::default(),
        flow_evictions: Counter::default(),
        last_read_timestamp: Gauge::default(),
        checkpoint_errors: Counter::default(),
    };
    registry.register_with_unit(
        "read_cycle_duration",
        "Time to read the kernel maps, account and publish one cycle",
        Unit::Seconds,
        metrics.read_duration.clone(),
    );
    registry.register("read_cycles", "Completed read cycles", metrics.read_cycles.clone());
    registry.register(
        "read_errors",
        "Read cycles that failed (see the log); counts are kept and the next cycle retries",
        metrics.read_errors.clone(),
    );
    registry.register(
        "flow_evictions",
        "Idle flows removed from the kernel map after their final counts were taken",
        metrics.flow_evictions.clone(),
    );
    registry.register(
        "checkpoint_errors",
        "Checkpoint writes that failed (see the log; --bpf.checkpoint-file): a restart then \
         resumes from the last checkpoint written",
        metrics.checkpoint_errors.clone(),
    );
    registry.register_with_unit(
        "last_read_timestamp",
        "Unix time of the last completed read cycle",
        Unit::Seconds,
        metrics.last_read_timestamp.clone(),
    );
    (root, metrics)
}

/// Encodes the flow counters from the latest snapshot at scrape time.
#[derive(Debug)]
struct FlowCollector {
    snapshot: Arc<SharedSnapshot>,
    /// `--series.max`.
    series_max: u64,
    /// `provider/region version …` of the sheet, for help texts.
    sheet: String,
    map_capacity: u32,
}

impl FlowCollector {
    fn family<'a, L: EncodeLabelSet + 'a, M: EncodeMetric>(
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        metric_type: MetricType,
        rows: impl Iterator<Item = (&'a L, M)>,
    ) -> fmt::Result {
        let mut family = encoder.encode_descriptor(name, help, unit, metric_type)?;
        for (labels, metric) in rows {
            metric.encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}

/// HELP of `egressor_flow_bytes_total` (also written by `egressor flowlogs --openmetrics`).
pub const FLOW_BYTES_HELP: &str = "L3 bytes (IP header included, GSO super-packets counted per \
    segment) by hook, interface, direction, traffic class, local workload and remote network.";
/// HELP of `egressor_flow_packets_total`.
pub const FLOW_PACKETS_HELP: &str =
    "Packets (segments on the wire), same labels as egressor_flow_bytes_total.";
/// HELP of `egressor_flow_cost_usd_total`.
pub const FLOW_COST_HELP: &str = "Cost in USD of the same bytes: transfer price (class, \
    direction, service and region exceptions, marginal tier) plus the egress path's processing \
    price, from the price sheet in use (see egressor_price_usd_per_gib).";
/// HELP of `egressor_flow_avoidable_cost_usd_total`.
pub const FLOW_AVOIDABLE_COST_HELP: &str = "The part of egressor_flow_cost_usd_total a free path \
    would save: same-region services with a free gateway endpoint (S3, DynamoDB) reached \
    through a NAT gateway.";

impl Collector for FlowCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let snap = self.snapshot.load();
        let series = || snap.series.iter();
        Self::family(
            &mut encoder,
            "flow",
            FLOW_BYTES_HELP,
            Some(&Unit::Bytes),
            MetricType::Counter,
            series().map(|(l, t, _)| (l, ConstCounter::new(t.bytes))),
        )?;
        Self::family(
            &mut encoder,
            "flow_packets",
            FLOW_PACKETS_HELP,
            None,
            MetricType::Counter,
            series().map(|(l, t, _)| (l, ConstCounter::new(t.packets))),
        )?;
        Self::family(
            &mut encoder,
            "flow_cost",
            FLOW_COST_HELP,
            Some(&Unit::Other("usd".into())),
            MetricType::Counter,
            series().map(|(l, _, c)| (l, ConstCounter::new(c.usd))),
        )?;
        Self::family(
            &mut encoder,
            "flow_avoidable_cost",
            FLOW_AVOIDABLE_COST_HELP,
            Some(&Unit::Other("usd".into())),
            MetricType::Counter,
            series()
                .filter(|(_, _, c)| c.avoidable_usd > 0.0)
                .map(|(l, _, c)| (l, ConstCounter::new(c.avoidable_usd))),
        )?;
        let prices = &snap.prices;
        Self::family(
            &mut encoder,
            "price_usd_per_gib",
            &format!(
                "Transfer price of the next GiB (2^30 bytes) by traffic class, direction and \
                 exception (remote_service, remote_region; empty for the default), at the \
                 month's tier; sheet {}",
                self.sheet
            ),
            None,
            MetricType::Gauge,
            prices.transfer.iter().map(|(l, v)| (l, ConstGauge::new(*v))),
        )?;
        Self::family(
            &mut encoder,
            "path_price_usd_per_gib",
            "Processing price per GiB of an egress path, on top of the transfer price",
            None,
            MetricType::Gauge,
            prices.processing.iter().map(|(l, v)| (l, ConstGauge::new(*v))),
        )?;
        Self::family(
            &mut encoder,
            "tier_volume",
            "Bytes this month (UTC) of a class and direction with tiered prices: the tier basis, \
             without pricing.tier_offset_gib",
            Some(&Unit::Bytes),
            MetricType::Gauge,
            prices.tier_volume.iter().map(|(l, v)| (l, ConstGauge::new(*v as i64))),
        )?;
        let overflow: Vec<_> = snap
            .overflow
            .iter()
            .map(|(hook, direction, c)| {
                (HookDirectionLabels { hook: (*hook).into(), direction: (*direction).into() }, *c)
            })
            .collect();
        let overflow = || overflow.iter().map(|(l, c)| (l, c));
        let by_workload = |rows: &[(Arc<str>, f64)]| -> Vec<(WorkloadLabels, f64)> {
            rows.iter().map(|(w, n)| (WorkloadLabels { workload: w.clone() }, *n)).collect()
        };
        let distinct = by_workload(&snap.distinct_destinations);
        Self::family(
            &mut encoder,
            "distinct_destinations",
            "Distinct external (internet and cloud) remote addresses per workload in the last \
             complete --destinations.window, estimated with a HyperLogLog (0.57 % standard error).",
            None,
            MetricType::Gauge,
            distinct.iter().map(|(l, v)| (l, ConstGauge::new(*v))),
        )?;
        let new: Vec<_> = snap
            .new_destinations
            .iter()
            .map(|(w, n)| (WorkloadLabels { workload: w.clone() }, *n))
            .collect();
        Self::family(
            &mut encoder,
            "new_destinations",
            "External remote addresses a workload exchanged bytes with for the first time in \
             --destinations.lookback.",
            None,
            MetricType::Counter,
            new.iter().map(|(l, v)| (l, ConstCounter::new(*v))),
        )?;
        ConstGauge::new(snap.remembered_destinations as i64).encode(encoder.encode_descriptor(
            "destinations_remembered",
            "(workload, destination) pairs remembered for egressor_new_destinations_total \
             (bounded by --destinations.memory).",
            None,
            MetricType::Gauge,
        )?)?;
        let outcomes: Vec<_> = ["captured", "rate_limited", "ring_full"]
            .into_iter()
            .zip(snap.dns.responses)
            .map(|(outcome, n)| (OutcomeLabels { outcome }, n))
            .collect();
        Self::family(
            &mut encoder,
            "dns_responses",
            "DNS responses seen by the kernel side: copied to user space (captured), or lost \
             to the --dns.events-per-second limit (rate_limited) or a full ring buffer \
             (ring_full).",
            None,
            MetricType::Counter,
            outcomes.iter().map(|(l, n)| (l, ConstCounter::new(*n))),
        )?;
        for (name, help, value) in [
            (
                "dns_parse_errors",
                "Captured DNS responses that did not parse in full.",
                snap.dns.parse_errors,
            ),
            (
                "dns_answers_learned",
                "A/AAAA answers learned from captured DNS responses.",
                snap.dns.learned,
            ),
        ] {
            ConstCounter::new(value).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Counter,
            )?)?;
        }
        ConstGauge::new(snap.dns.names as i64).encode(encoder.encode_descriptor(
            "dns_names",
            "Addresses with a DNS name held (at most --dns.cache-size).",
            None,
            MetricType::Gauge,
        )?)?;
        let folded = ConstCounter::new(snap.folded_flows);
        folded.encode(encoder.encode_descriptor(
            "series_folded_flows",
            "Flows whose label set was folded (remote name to other, then workload to other) \
             because --series.max label sets were live.",
            None,
            MetricType::Counter,
        )?)?;
        ConstCounter::new(snap.series_over_cap).encode(encoder.encode_descriptor(
            "series_over_cap",
            "Label sets created past --series.max (full folds once its reserve was used up: \
             no byte is dropped).",
            None,
            MetricType::Counter,
        )?)?;
        Self::family(
            &mut encoder,
            "flow_overflow",
            "L3 bytes counted while the kernel flow map was full (not attributed to a flow).",
            Some(&Unit::Bytes),
            MetricType::Counter,
            overflow().map(|(l, c)| (l, ConstCounter::new(c.bytes))),
        )?;
        Self::family(
            &mut encoder,
            "flow_overflow_packets",
            "Packets counted while the kernel flow map was full.",
            None,
            MetricType::Counter,
            overflow().map(|(l, c)| (l, ConstCounter::new(c.packets))),
        )?;
        for (name, help, value) in [
            (
                "flow_map_entries",
                "Entries in the kernel flow map at the last read.",
                snap.map_entries,
            ),
            (
                "flow_map_max_entries",
                "Capacity of the kernel flow map (--flow-map.max-entries).",
                u64::from(self.map_capacity),
            ),
            ("series", "Live label sets of the flow counters.", snap.series_count),
            (
                "series_max",
                "Cap on live label sets (--series.max); new ones fold once 1/20 of it is left.",
                self.series_max,
            ),
        ] {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_documented_names_and_exact_costs() {
        let snapshot = Arc::new(SharedSnapshot::default());
        let labels = FlowLabels {
            hook: HookLabel::Cgroup,
            interface: "".into(),
            direction: DirectionLabel::Egress,
            traffic_class: TrafficClass::Internet,
            workload: "nginx.service".into(),
            namespace: "".into(),
            workload_kind: "".into(),
            workload_version: "".into(),
            remote: "".into(),
            remote_zone: "".into(),
            remote_region: "".into(),
            remote_provider: "",
            remote_service: "".into(),
            remote_country: "".into(),
            remote_namespace: "".into(),
            remote_kind: "".into(),
            egress_path: EgressPath::NatGateway,
            chargeback: Default::default(),
        };
        let mut pricer = Pricer::new(Arc::new(PriceSheet::embedded()), &Default::default());
        pricer.start_cycle(std::time::SystemTime::now());
        let query = crate::prices::PriceQuery {
            class: TrafficClass::Internet,
            egress: true,
            service: "",
            region: "",
            path: EgressPath::NatGateway,
        };
        let cost = pricer.cost(&query, 3 << 30);
        snapshot.store(Snapshot {
            series: vec![(labels, Totals { bytes: 3 << 30, packets: 7 }, cost)],
            prices: PriceRows::of(&pricer),
            overflow: vec![(Hook::Tc, Direction::Ingress, FlowCounters { bytes: 5, packets: 1 })],
            map_entries: 1,
            series_count: 1,
            folded_flows: 0,
            series_over_cap: 0,
            distinct_destinations: vec![("nginx.service".into(), 3.0)],
            new_destinations: vec![("nginx.service".into(), 4)],
            remembered_destinations: 4,
            dns: DnsSnapshot { responses: [5, 1, 0], parse_errors: 2, learned: 7, names: 3 },
        });
        let (registry, _) = registry(snapshot, Arc::new(PriceSheet::embedded()), &[], 64, 100);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let flow_labels = r#"hook="cgroup",interface="",direction="egress",traffic_class="internet",workload="nginx.service",namespace="",workload_kind="",workload_version="",remote="",remote_zone="",remote_region="",remote_provider="",remote_service="",remote_country="",remote_namespace="",remote_kind="",egress_path="nat_gateway""#;
        for line in [
            "# TYPE egressor_flow_bytes counter",
            "# UNIT egressor_flow_bytes bytes",
            &format!("egressor_flow_bytes_total{{{flow_labels}}} 3221225472"),
            &format!("egressor_flow_packets_total{{{flow_labels}}} 7"),
            // 3 GiB x (0.09 internet first paid tier + 0.045 NAT processing) USD/GiB
            &format!("egressor_flow_cost_usd_total{{{flow_labels}}} 0.405"),
            r#"egressor_flow_overflow_bytes_total{hook="tc",direction="ingress"} 5"#,
            "egressor_flow_map_entries 1",
            "egressor_flow_map_max_entries 64",
            "egressor_series 1",
            "egressor_series_max 100",
            "egressor_series_folded_flows_total 0",
            "egressor_series_over_cap_total 0",
            r#"egressor_distinct_destinations{workload="nginx.service"} 3.0"#,
            r#"egressor_new_destinations_total{workload="nginx.service"} 4"#,
            "egressor_destinations_remembered 4",
            r#"egressor_dns_responses_total{outcome="rate_limited"} 1"#,
            "egressor_dns_parse_errors_total 2",
            "egressor_dns_answers_learned_total 7",
            "egressor_dns_names 3",
            r#"egressor_price_usd_per_gib{traffic_class="cross_zone",direction="ingress",remote_service="",remote_region=""} 0.01"#,
            r#"egressor_price_usd_per_gib{traffic_class="cloud_same_region",direction="egress",remote_service="S3",remote_region=""} 0.0"#,
            r#"egressor_price_usd_per_gib{traffic_class="internet",direction="egress",remote_service="",remote_region=""} 0.09"#,
            r#"egressor_path_price_usd_per_gib{egress_path="nat_gateway",direction="ingress"} 0.045"#,
            r#"egressor_tier_volume_bytes{traffic_class="internet",direction="egress"} 3221225472"#,
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}
