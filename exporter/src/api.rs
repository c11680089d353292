//! The JSON API: `GET /api/v1/flows?top=N&sort=bytes|rate|cost` (the node's top flows with
//! full detail — raw remote address and port, name, AS, class, bytes, cost: the detail that
//! must never become a Prometheus label), `GET /api/v1/summary` (totals by class and
//! direction, from the last read cycle) and `GET /api/v1/classify` (the agent's verdict on
//! addresses: [`crate::verdict`]).
//!
//! Flows are computed on request by the reader thread, between two read cycles, so serving
//! the API costs nothing while nobody asks.

use serde::{Deserialize, Serialize};

/// Default and maximum `top`.
pub const DEFAULT_TOP: usize = 20;
/// Largest `top` served.
pub const MAX_TOP: usize = 1000;

/// How `/api/v1/flows` sorts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SortBy {
    /// Bytes since the flow was first counted.
    #[default]
    Bytes,
    /// Bytes per second in the last read cycle.
    Rate,
    /// Cost since the flow was first counted, at current prices.
    Cost,
}

/// Query of `/api/v1/flows`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowsQuery {
    /// How many flows (1..=1000, default 20).
    #[serde(default = "default_top")]
    pub top: usize,
    /// Sort key.
    #[serde(default)]
    pub sort: SortBy,
}

fn default_top() -> usize {
    DEFAULT_TOP
}

/// One flow as `/api/v1/flows` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FlowDetail {
    /// Local workload (cgroup hook), empty for TC.
    pub workload: String,
    /// `cgroup` or `tc`.
    pub hook: String,
    /// Interface (TC), empty for cgroup.
    pub interface: String,
    /// `ingress` or `egress`.
    pub direction: String,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `udplite`, or the IP protocol number.
    pub protocol: String,
    /// This end's address; `None` for non-IP frames.
    pub local_address: Option<std::net::IpAddr>,
    /// The peer's address; `None` for non-IP frames.
    pub remote_address: Option<std::net::IpAddr>,
    /// Service port (the lower port if below 32768, else 0), or the EtherType for non-IP.
    pub port: u16,
    /// `traffic_class` label value.
    pub traffic_class: String,
    /// Configured network name, or AS organisation, of the remote.
    pub name: Option<String>,
    /// Cloud provider of the remote's published range.
    pub provider: Option<String>,
    /// The provider's service.
    pub service: Option<String>,
    /// The remote's region.
    pub region: Option<String>,
    /// Autonomous system number (`--geoip-asn`).
    pub asn: Option<u32>,
    /// ISO country code (`--geoip-country`).
    pub country: Option<String>,
    /// `egress_path` label value.
    pub egress_path: String,
    /// L3 bytes since the flow was first counted.
    pub bytes: u64,
    /// Packets since the flow was first counted.
    pub packets: u64,
    /// L3 bytes per second in the last read cycle.
    pub bytes_per_second: f64,
    /// `bytes` at the current price per GiB of the flow's class, service, region and path.
    pub cost_usd: f64,
    /// Whether a free gateway endpoint would carry it instead of a NAT gateway.
    pub avoidable: bool,
}

/// The answer of `/api/v1/flows`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FlowsReply {
    /// Sort key used.
    pub sort: SortBy,
    /// Flows tracked in total.
    pub tracked_flows: usize,
    /// The top flows, best first.
    pub flows: Vec<FlowDetail>,
}

/// Totals of one class and direction in `/api/v1/summary`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClassTotals {
    /// `traffic_class` label value.
    pub traffic_class: String,
    /// `ingress` or `egress`.
    pub direction: String,
    /// L3 bytes.
    pub bytes: u64,
    /// USD.
    pub cost_usd: f64,
    /// Avoidable USD.
    pub avoidable_cost_usd: f64,
}

/// Cost of one workload in `/api/v1/summary`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkloadCost {
    /// Workload name.
    pub workload: String,
    /// L3 bytes, both directions.
    pub bytes: u64,
    /// USD.
    pub cost_usd: f64,
}

/// The answer of `/api/v1/summary`: since the agent started.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// By class and direction (hook `cgroup` and `tc` summed: with `--hook both` they count
    /// the same bytes twice, see `by_hook`).
    pub by_class: Vec<ClassTotals>,
    /// Bytes by hook.
    pub by_hook: Vec<(String, u64)>,
    /// The ten workloads with the highest cost.
    pub top_workloads: Vec<WorkloadCost>,
    /// Total USD.
    pub cost_usd: f64,
    /// Total avoidable USD.
    pub avoidable_cost_usd: f64,
    /// Live label sets.
    pub series: u64,
}

/// Protocol name of an IP protocol number.
pub fn protocol_name(protocol: u8) -> String {
    match protocol {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        136 => "udplite".into(),
        n => n.to_string(),
    }
}
