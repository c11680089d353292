//! What the agent decides about one remote address — class, provider, service, region,
//! egress path, name, AS, country and price per GiB each way — computed by the same parts the
//! agent counts with. `egressor classify` prints it (locally, or from a running agent's
//! `GET /api/v1/classify`, which adds the names its DNS capture learned, its Kubernetes peers
//! and this month's tier).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{
    classify::Classifier,
    dns::DnsNames,
    geoip::GeoIp,
    kubernetes::RemotePeer,
    paths::EgressPaths,
    prices::{PriceQuery, Pricer},
};

/// Largest number of addresses one `/api/v1/classify` request may ask about.
pub const MAX_ADDRESSES: usize = 256;

/// Where a verdict's `name` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameSource {
    /// The configured network's `name`.
    Network,
    /// The Kubernetes workload (or node) at the address.
    Kubernetes,
    /// A DNS answer the agent captured (the name the application asked for).
    Dns,
    /// The AS organisation (`--geoip-asn`).
    Asn,
}

/// One address's verdict (the JSON shape of `egressor classify --json` and
/// `/api/v1/classify`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    /// The address asked about.
    pub address: IpAddr,
    /// `traffic_class` label value.
    pub traffic_class: String,
    /// Configured network name, if any.
    pub network: Option<String>,
    /// What the `remote` label would carry before the top-K name guard: the network's
    /// name, else the Kubernetes workload, else the DNS name, else the AS organisation.
    pub name: Option<String>,
    /// Where `name` came from.
    pub name_source: Option<NameSource>,
    /// Namespace of the Kubernetes workload at the address.
    pub namespace: Option<String>,
    /// Kind of that workload (`Deployment`, …, `Node`).
    pub kind: Option<String>,
    /// Zone of the network or of the Kubernetes peer's node.
    pub zone: Option<String>,
    /// Cloud provider, if the address lies in a published range.
    pub provider: Option<String>,
    /// The provider's service.
    pub service: Option<String>,
    /// The provider's (or the network's, or the peer node's) region.
    pub region: Option<String>,
    /// The published prefix that decided the service.
    pub range: Option<String>,
    /// Autonomous system number (`--geoip-asn`).
    pub asn: Option<u32>,
    /// The AS's organisation (`--geoip-asn`).
    pub as_organization: Option<String>,
    /// ISO 3166-1 alpha-2 country code (`--geoip-country`).
    pub country: Option<String>,
    /// `egress_path` label value.
    pub egress_path: String,
    /// USD per GiB sent: transfer at this month's tier (a local `classify` has counted no
    /// volume: the sheet's first tier) plus the path's processing.
    pub egress_usd_per_gib: f64,
    /// USD per GiB received.
    pub ingress_usd_per_gib: f64,
    /// Whether a free gateway endpoint would carry it instead of the NAT gateway.
    pub avoidable: bool,
}

/// What a verdict shows of a configured network.
#[derive(Debug, Clone)]
pub struct NetworkInfo {
    /// Its `name`.
    pub name: String,
    /// Its `zone`.
    pub zone: Option<String>,
    /// Its `region`.
    pub region: Option<String>,
}

impl From<&crate::config::NetworkConfig> for NetworkInfo {
    fn from(n: &crate::config::NetworkConfig) -> Self {
        Self { name: n.name.clone(), zone: n.zone.clone(), region: n.region.clone() }
    }
}

/// The parts a verdict is computed from: the agent's own, or ones built from the same
/// configuration.
pub struct Judge<'a> {
    /// Classes, networks and cloud ranges.
    pub classifier: &'a Classifier,
    /// Egress paths by local subnet.
    pub paths: &'a EgressPaths,
    /// MaxMind databases (may be empty).
    pub geoip: &'a GeoIp,
    /// Names captured from DNS answers (the agent only).
    pub dns: Option<&'a DnsNames>,
    /// Prices at this month's tiers.
    pub pricer: &'a Pricer,
    /// A configured network by its index in the configuration.
    pub networks: &'a dyn Fn(usize) -> NetworkInfo,
    /// The Kubernetes peer at an address (the agent on Kubernetes only).
    pub kube: &'a dyn Fn(IpAddr) -> Option<std::sync::Arc<RemotePeer>>,
}

impl Judge<'_> {
    /// The verdict on `address` as seen from `from` (the local address that selects the
    /// subnet and so the egress path; `None`: no subnet).
    pub fn verdict(&self, address: IpAddr, from: Option<IpAddr>) -> Verdict {
        let remote = self.classifier.classify(Some(address));
        let peer = if remote.network.is_none() { (self.kube)(address) } else { None };
        let class = peer.as_ref().map_or(remote.class, |p| p.class);
        let network = remote.network.map(self.networks);
        let path = if peer.is_some() { Default::default() } else { self.paths.path(from, &remote) };
        let service = remote.cloud.map_or("", |m| m.service);
        let region = remote
            .cloud
            .map(|m| m.region.to_owned())
            .or_else(|| network.as_ref().and_then(|n| n.region.clone()))
            .or_else(|| peer.as_ref().and_then(|p| p.region.as_deref().map(str::to_owned)));
        let query = |egress| PriceQuery {
            class,
            egress,
            service,
            region: region.as_deref().unwrap_or(""),
            path,
        };
        let geo = if class.is_public() { self.geoip.lookup(address) } else { Default::default() };
        let dns_name = match self.dns {
            Some(names) if class.is_public() => names.name(address),
            _ => None,
        };
        let (name, name_source) = match (&network, &peer, dns_name, &geo.as_organization) {
            (Some(n), _, _, _) => (Some(n.name.clone()), Some(NameSource::Network)),
            (None, Some(p), _, _) => (Some(p.workload.to_string()), Some(NameSource::Kubernetes)),
            (None, None, Some(n), _) => (Some(n.to_string()), Some(NameSource::Dns)),
            (None, None, None, Some(o)) => (Some(o.clone()), Some(NameSource::Asn)),
            _ => (None, None),
        };
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Verdict {
            address,
            traffic_class: class.as_str().into(),
            network: network.as_ref().map(|n| n.name.clone()),
            name,
            name_source,
            namespace: peer.as_ref().and_then(|p| non_empty(&p.namespace)),
            kind: peer.as_ref().and_then(|p| non_empty(&p.kind)),
            zone: network
                .and_then(|n| n.zone)
                .or_else(|| peer.as_ref().and_then(|p| p.zone.as_deref().map(str::to_owned))),
            provider: remote.cloud.map(|m| m.provider.as_str().into()),
            service: remote.cloud.map(|m| m.service.to_owned()),
            range: remote.cloud.map(|m| m.prefix.to_string()),
            egress_usd_per_gib: self.pricer.price_per_gib(&query(true)),
            ingress_usd_per_gib: self.pricer.price_per_gib(&query(false)),
            avoidable: self.pricer.is_avoidable(&query(true)),
            region,
            asn: geo.asn,
            as_organization: geo.as_organization,
            country: geo.country,
            egress_path: path.as_str().into(),
        }
    }
}
