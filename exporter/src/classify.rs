//! Remote classification: where the other end of a flow lives, as one `traffic_class`.
//!
//! Order of the rules (the first that matches wins):
//! 1. not IP → [`TrafficClass::NonIp`];
//! 2. one of this host's own addresses, or loopback → [`TrafficClass::SameHost`];
//! 3. inside a configured network (longest prefix): compared with this node's zone and
//!    region → `same_zone`, `cross_zone` or `cross_region`; a named network without a
//!    location to compare → `private`;
//! 4. special-purpose addresses that never leave a private network — RFC 1918, RFC 4193
//!    unique local, RFC 6598 CGNAT, RFC 3927 / RFC 4291 link-local, multicast, broadcast,
//!    unspecified → `private`;
//! 5. a published range of this node's cloud provider ([`crate::cloud`]): in this node's
//!    region → `cloud_same_region`, in another (or `GLOBAL`) → `cloud_cross_region`; the
//!    provider, service and region become labels;
//! 6. everything else → `internet`, including other providers' ranges (they bill as the
//!    internet), which keep their provider, service and region labels.
//!
//! Documentation ranges (RFC 5737 TEST-NET, RFC 3849 2001:db8::/32) are *not* special here:
//! tests use them as stand-ins for internet peers.

use std::{cell::RefCell, collections::HashSet, hash::BuildHasher, net::IpAddr, sync::Arc};

use ipnet::IpNet;
use prefix_trie::joint::map::JointPrefixMap;
use serde::{Deserialize, Serialize};

use crate::{
    cloud::{CloudMatch, CloudTable, Provider, Resolved, sources::SharedCloudTable},
    config::{FileConfig, NetworkConfig},
};

/// Where the remote end of a flow lives, relative to this node. The value of the
/// `traffic_class` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrafficClass {
    /// This machine (another socket, or a pod on this node's own addresses).
    SameHost,
    /// A configured network in this node's zone.
    SameZone,
    /// A configured network in another zone of this node's region.
    CrossZone,
    /// A configured network in another region.
    CrossRegion,
    /// A public address of this node's cloud provider in this node's region (S3, DynamoDB,
    /// another instance's public IP).
    CloudSameRegion,
    /// A public address of this node's cloud provider in another region, or a global
    /// service (`GLOBAL` in AWS's file: CloudFront, Global Accelerator).
    CloudCrossRegion,
    /// A private or special-purpose address not placed by the configuration.
    Private,
    /// Any other address: the public internet.
    Internet,
    /// Not an IP packet (ARP, LLDP, …), seen on TC hooks only.
    NonIp,
    /// A Kubernetes peer whose zone (or this node's) is not known: never guessed.
    Unknown,
}

impl TrafficClass {
    /// Every class, in label order.
    pub const ALL: [TrafficClass; 10] = [
        Self::SameHost,
        Self::SameZone,
        Self::CrossZone,
        Self::CrossRegion,
        Self::CloudSameRegion,
        Self::CloudCrossRegion,
        Self::Private,
        Self::Internet,
        Self::NonIp,
        Self::Unknown,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SameHost => "same_host",
            Self::SameZone => "same_zone",
            Self::CrossZone => "cross_zone",
            Self::CrossRegion => "cross_region",
            Self::CloudSameRegion => "cloud_same_region",
            Self::CloudCrossRegion => "cloud_cross_region",
            Self::Private => "private",
            Self::Internet => "internet",
            Self::NonIp => "non_ip",
            Self::Unknown => "unknown",
        }
    }

    /// Whether traffic of this class leaves the private network (and may take a NAT gateway,
    /// an internet gateway or a VPC endpoint).
    pub fn is_public(self) -> bool {
        matches!(self, Self::Internet | Self::CloudSameRegion | Self::CloudCrossRegion)
    }
}

/// What the classifier says about one remote address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remote<'a> {
    /// Where the remote lives.
    pub class: TrafficClass,
    /// Index of the matching network in the configuration's `networks`, if any.
    pub network: Option<usize>,
    /// The cloud range it lies in, if any (public addresses only).
    pub cloud: Option<CloudMatch<'a>>,
}

struct Network {
    index: usize,
    zone: Option<String>,
    region: Option<String>,
}

/// Classifies remote addresses. Built once from the configuration; the host's own
/// addresses are refreshed with [`Classifier::set_host_addresses`].
pub struct Classifier {
    node_zone: Option<String>,
    node_region: Option<String>,
    node_provider: Option<Provider>,
    networks: JointPrefixMap<IpNet, Network>,
    host_addresses: HashSet<IpAddr, foldhash::fast::RandomState>,
    cloud_source: Arc<SharedCloudTable>,
    cloud: (u64, Arc<CloudTable>),
    /// Recent cloud lookups, direct-mapped by address hash: remotes repeat (every new flow
    /// to the same S3 endpoint), and a hit costs a hash instead of a walk down a trie of
    /// ~100k prefixes.
    cache: RefCell<Vec<CacheSlot>>,
    hasher: foldhash::fast::FixedState,
}

/// One slot of the lookup cache: an address and the table's answer for it.
type CacheSlot = Option<(IpAddr, Option<Resolved>)>;

/// Slots of the lookup cache (a power of two).
const CACHE_SLOTS: usize = 4096;

impl Classifier {
    /// Builds a classifier from the validated configuration and the cloud ranges (read again
    /// by [`Classifier::refresh_cloud`] when their version moves).
    pub fn new(config: &FileConfig, cloud: Arc<SharedCloudTable>) -> Self {
        let mut networks = JointPrefixMap::new();
        for (index, NetworkConfig { cidr, zone, region, .. }) in config.networks.iter().enumerate()
        {
            networks.insert(
                cidr.trunc(),
                Network { index, zone: zone.clone(), region: region.clone() },
            );
        }
        Self {
            node_zone: config.node.zone.clone(),
            node_region: config.node.region.clone(),
            node_provider: config.node.provider,
            networks,
            host_addresses: HashSet::default(),
            cloud: cloud.current(),
            cloud_source: cloud,
            cache: RefCell::new(vec![None; CACHE_SLOTS]),
            hasher: foldhash::fast::FixedState::with_seed(0x65677265),
        }
    }

    /// Picks up a new cloud table if one was published. Returns whether it changed (callers
    /// then re-classify cached flows).
    pub fn refresh_cloud(&mut self) -> bool {
        if self.cloud_source.version() == self.cloud.0 {
            return false;
        }
        self.cloud = self.cloud_source.current();
        self.cache.borrow_mut().fill(None);
        true
    }

    /// The cloud table's entry for `addr`, from the cache when it was looked up recently.
    fn cloud_entry(&self, addr: IpAddr) -> Option<Resolved> {
        let slot = (self.hasher.hash_one(addr) as usize) & (CACHE_SLOTS - 1);
        let mut cache = self.cache.borrow_mut();
        if let Some((cached, entry)) = cache[slot]
            && cached == addr
        {
            return entry;
        }
        let entry = self.cloud.1.entry(addr);
        cache[slot] = Some((addr, entry));
        entry
    }

    /// Replaces the set of this host's own addresses. Returns whether it changed (callers
    /// then re-classify cached flows).
    pub fn set_host_addresses(&mut self, addresses: HashSet<IpAddr>) -> bool {
        if addresses.len() == self.host_addresses.len()
            && addresses.iter().all(|a| self.host_addresses.contains(a))
        {
            return false;
        }
        self.host_addresses = addresses.into_iter().collect();
        true
    }

    /// Classifies a remote address; `None` means the packet was not IP.
    pub fn classify(&self, remote: Option<IpAddr>) -> Remote<'_> {
        let Some(addr) = remote.map(|a| a.to_canonical()) else {
            return self.unnamed(TrafficClass::NonIp);
        };
        if addr.is_loopback() || self.host_addresses.contains(&addr) {
            return self.unnamed(TrafficClass::SameHost);
        }
        if let Some((_, net)) = self.networks.get_lpm(&IpNet::from(addr)) {
            return Remote { class: self.place(net), network: Some(net.index), cloud: None };
        }
        if is_private(addr) {
            return self.unnamed(TrafficClass::Private);
        }
        let cloud = self.cloud_entry(addr).map(|r| self.cloud.1.resolve(r));
        let class = match cloud {
            Some(m) if Some(m.provider) == self.node_provider => {
                if self.node_region.as_deref() == Some(m.region) {
                    TrafficClass::CloudSameRegion
                } else {
                    TrafficClass::CloudCrossRegion
                }
            }
            _ => TrafficClass::Internet,
        };
        Remote { class, network: None, cloud }
    }

    fn place(&self, net: &Network) -> TrafficClass {
        let same = |a: Option<&str>, b: Option<&str>| match (a, b) {
            (Some(a), Some(b)) => Some(a == b),
            _ => None,
        };
        if same(net.region.as_deref(), self.node_region.as_deref()) == Some(false) {
            return TrafficClass::CrossRegion;
        }
        match same(net.zone.as_deref(), self.node_zone.as_deref()) {
            Some(true) => TrafficClass::SameZone,
            Some(false) => TrafficClass::CrossZone,
            None => TrafficClass::Private,
        }
    }

    fn unnamed(&self, class: TrafficClass) -> Remote<'static> {
        Remote { class, network: None, cloud: None }
    }
}

/// Special-purpose addresses that do not route over the internet.
fn is_private(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            let cgnat = a.octets()[0] == 100 && (a.octets()[1] & 0xC0) == 64; // RFC 6598
            a.is_private()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_unspecified()
                || cgnat
        }
        IpAddr::V6(a) => {
            let seg0 = a.segments()[0];
            (seg0 & 0xFE00) == 0xFC00 // RFC 4193 unique local
                || (seg0 & 0xFFC0) == 0xFE80 // RFC 4291 link-local
                || a.is_multicast()
                || a.is_unspecified()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn classifier(yaml: &str) -> Classifier {
        Classifier::new(&FileConfig::parse(yaml, Path::new("t.yaml")).unwrap(), Arc::default())
    }

    fn class(c: &Classifier, addr: &str) -> TrafficClass {
        c.classify(Some(addr.parse().unwrap())).class
    }

    const CONFIG: &str = "node: {zone: use1-az1, region: us-east-1}\nnetworks:\n\
        - {cidr: 10.0.0.0/16, name: vpc, region: us-east-1}\n\
        - {cidr: 10.0.1.0/24, name: az1, zone: use1-az1, region: us-east-1}\n\
        - {cidr: 10.0.2.0/24, name: az2, zone: use1-az2, region: us-east-1}\n\
        - {cidr: 10.9.0.0/16, name: peer-vpc, zone: usw2-az1, region: us-west-2}\n\
        - {cidr: '2001:db8:1::/48', name: v6-az2, zone: use1-az2}\n";

    #[test]
    fn configured_networks_give_zone_classes_longest_prefix_first() {
        let c = classifier(CONFIG);
        assert_eq!(class(&c, "10.0.1.7"), TrafficClass::SameZone);
        assert_eq!(class(&c, "10.0.2.7"), TrafficClass::CrossZone);
        assert_eq!(class(&c, "10.0.3.7"), TrafficClass::Private, "region only, no zone");
        assert_eq!(class(&c, "10.9.0.1"), TrafficClass::CrossRegion);
        assert_eq!(class(&c, "2001:db8:1::5"), TrafficClass::CrossZone);
        let r = c.classify(Some("10.0.2.7".parse().unwrap()));
        assert_eq!(r.network, Some(2), "the az2 entry");
    }

    #[test]
    fn special_purpose_ranges_are_private_and_the_rest_internet() {
        let c = classifier("");
        for a in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.1.1",
            "224.0.0.251",
            "255.255.255.255",
            "fd12::1",
            "fe80::1",
            "ff02::1",
        ] {
            assert_eq!(class(&c, a), TrafficClass::Private, "{a}");
        }
        for a in ["8.8.8.8", "100.128.0.1", "198.51.100.7", "2001:db8::1", "2600::1"] {
            assert_eq!(class(&c, a), TrafficClass::Internet, "{a}");
        }
    }

    #[test]
    fn host_addresses_and_loopback_are_same_host() {
        let mut c = classifier(CONFIG);
        assert!(c.set_host_addresses(["10.0.1.7".parse().unwrap()].into()));
        assert!(!c.set_host_addresses(["10.0.1.7".parse().unwrap()].into()));
        assert_eq!(class(&c, "10.0.1.7"), TrafficClass::SameHost);
        assert_eq!(class(&c, "127.0.0.53"), TrafficClass::SameHost);
        assert_eq!(class(&c, "::1"), TrafficClass::SameHost);
        assert_eq!(class(&c, "::ffff:10.0.1.7"), TrafficClass::SameHost, "v4-mapped");
    }

    #[test]
    fn non_ip_is_its_own_class() {
        assert_eq!(classifier("").classify(None).class, TrafficClass::NonIp);
    }
}
