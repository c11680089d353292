//! Attribution: turns a kernel [`FlowKey`] into the [`FlowLabels`] its bytes are counted
//! under: local workload (cgroup), interface, and the remote's class, name and zone.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
};

use egressor_common::{Direction, FlowKey, Hook, family};

use crate::{
    cgroups::CgroupResolver,
    classify::Classifier,
    labels::{FlowLabels, HookLabel},
};

/// Attributes flows; owns the cgroup resolver and the classifier.
pub struct Attributor {
    cgroups: CgroupResolver,
    classifier: Classifier,
    interfaces: HashMap<u32, Arc<str>>,
    empty: Arc<str>,
}

impl Attributor {
    /// `interfaces` maps TC interface indexes to names.
    pub fn new(
        cgroups: CgroupResolver,
        classifier: Classifier,
        interfaces: HashMap<u32, Arc<str>>,
    ) -> Self {
        Self { cgroups, classifier, interfaces, empty: "".into() }
    }

    /// Called once per read cycle: refreshes the host's own addresses. Returns whether
    /// cached labels must be recomputed.
    pub fn next_cycle(&mut self, host_addresses: HashSet<IpAddr>) -> bool {
        self.cgroups.next_cycle();
        self.classifier.set_host_addresses(host_addresses)
    }

    /// The labels `key`'s bytes are counted under.
    pub fn labels(&mut self, key: &FlowKey) -> FlowLabels {
        let hook = if key.hook == Hook::Tc as u8 { HookLabel::Tc } else { HookLabel::Cgroup };
        let (workload, interface) = match hook {
            HookLabel::Cgroup => (self.cgroups.resolve(key.cgroup_id), self.empty.clone()),
            HookLabel::Tc => (
                self.empty.clone(),
                self.interfaces
                    .get(&key.ifindex)
                    .cloned()
                    .unwrap_or_else(|| format!("if{}", key.ifindex).into()),
            ),
        };
        let remote = self.classifier.classify(remote_address(key));
        FlowLabels {
            hook,
            interface,
            direction: Direction::from_u8(key.direction).into(),
            traffic_class: remote.class,
            workload,
            remote: remote.name,
            remote_zone: remote.zone,
        }
    }
}

/// The remote address of a flow key, `None` for non-IP frames.
pub fn remote_address(key: &FlowKey) -> Option<IpAddr> {
    address(key.family, &key.remote_addr)
}

/// The local address of a flow key, `None` for non-IP frames.
pub fn local_address(key: &FlowKey) -> Option<IpAddr> {
    address(key.family, &key.local_addr)
}

fn address(fam: u8, words: &[u32; 4]) -> Option<IpAddr> {
    let bytes = FlowKey::address_bytes(words);
    match fam {
        family::IPV4 => Some(IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))),
        family::IPV6 => Some(IpAddr::V6(Ipv6Addr::from(bytes))),
        _ => None,
    }
}

/// This host's own addresses (root network namespace), for the `same_host` class.
pub fn host_addresses() -> HashSet<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return HashSet::new();
    };
    addrs
        .filter_map(|a| a.address)
        .filter_map(|s| {
            if let Some(v4) = s.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect()
}
