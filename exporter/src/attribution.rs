//! Attribution: turns a kernel [`FlowKey`] into the [`FlowLabels`] its bytes are counted
//! under: local workload (cgroup), interface, and the remote's class, name and zone. Per
//! flow it produces a compact [`LabelKey`] of interned ids; [`Attributor::labels`] turns a
//! key back into label values once per series.

use std::{
    collections::{HashMap, HashSet},
    hash::Hash,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
};

use egressor_common::{Direction, FlowKey, Hook, family};
use foldhash::fast::RandomState;

use crate::{
    cgroups::{CgroupResolver, UNKNOWN_WORKLOAD},
    classify::Classifier,
    config::FileConfig,
    geoip::{GeoInfo, GeoIp},
    labels::{FlowLabels, HookLabel, LabelKey},
    paths::EgressPaths,
    prices::PriceQuery,
};

/// Interns label values: equal values get equal ids, id 0 is the empty value.
struct Interner<T> {
    ids: HashMap<T, u32, RandomState>,
    values: Vec<T>,
}

impl<T: Clone + Eq + Hash> Interner<T> {
    fn new(empty: T) -> Self {
        let mut interner = Self { ids: HashMap::default(), values: Vec::new() };
        interner.intern(empty);
        interner
    }

    fn intern(&mut self, value: T) -> u32 {
        if let Some(&id) = self.ids.get(&value) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(value.clone());
        self.ids.insert(value, id);
        id
    }

    fn get(&self, id: u32) -> &T {
        &self.values[id as usize]
    }
}

/// Attributes flows; owns the cgroup resolver and the classifier.
pub struct Attributor {
    cgroups: CgroupResolver,
    classifier: Classifier,
    paths: EgressPaths,
    interfaces: HashMap<u32, Arc<str>>,
    workloads: Interner<Arc<str>>,
    remotes: Interner<RemoteLabels>,
    /// Interned remote labels of each configured network, by its index.
    remote_of_network: Vec<u32>,
    /// Interned remote labels by [`CloudMatch::id`](crate::cloud::CloudMatch) of the current
    /// cloud table (cleared when the table changes).
    remote_of_cloud: HashMap<PublicRemote, u32, RandomState>,
    geoip: GeoIp,
    empty: Arc<str>,
}

/// What names a public remote: its cloud range (by [`CloudMatch::id`](crate::cloud::CloudMatch))
/// and its AS and country, if the MaxMind databases are open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PublicRemote {
    cloud: Option<u64>,
    asn: u32,
    country: [u8; 2],
}

/// The labels that describe the remote end.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
struct RemoteLabels {
    name: Arc<str>,
    zone: Arc<str>,
    region: Arc<str>,
    provider: &'static str,
    service: Arc<str>,
    country: Arc<str>,
}

impl Attributor {
    /// `config` gives the networks' names and zones; `interfaces` maps TC interface
    /// indexes to names.
    pub fn new(
        cgroups: CgroupResolver,
        classifier: Classifier,
        config: &FileConfig,
        interfaces: HashMap<u32, Arc<str>>,
    ) -> Self {
        let empty: Arc<str> = "".into();
        let mut remotes = Interner::new(RemoteLabels {
            name: empty.clone(),
            zone: empty.clone(),
            region: empty.clone(),
            provider: "",
            service: empty.clone(),
            country: empty.clone(),
        });
        let text = |v: &Option<String>| v.as_deref().map_or_else(|| empty.clone(), Arc::from);
        let remote_of_network = config
            .networks
            .iter()
            .map(|n| {
                remotes.intern(RemoteLabels {
                    name: n.name.as_str().into(),
                    zone: text(&n.zone),
                    region: text(&n.region),
                    provider: "",
                    service: empty.clone(),
                    country: empty.clone(),
                })
            })
            .collect();
        Self {
            cgroups,
            classifier,
            paths: EgressPaths::new(config),
            interfaces,
            workloads: Interner::new(empty.clone()),
            remotes,
            empty,
            remote_of_network,
            remote_of_cloud: HashMap::default(),
            geoip: GeoIp::default(),
        }
    }

    /// Names public remotes without a configured network by AS organisation (the `remote`
    /// label) and country (`remote_country`).
    pub fn with_geoip(mut self, geoip: GeoIp) -> Self {
        self.geoip = geoip;
        self
    }

    /// Called once per read cycle: refreshes the host's own addresses. Returns whether
    /// cached labels must be recomputed.
    pub fn next_cycle(&mut self, host_addresses: HashSet<IpAddr>) -> bool {
        self.cgroups.next_cycle();
        let cloud_changed = self.classifier.refresh_cloud();
        if cloud_changed {
            self.remote_of_cloud.clear();
        }
        self.classifier.set_host_addresses(host_addresses) | cloud_changed
    }

    /// The label set `key`'s bytes are counted under, as a compact key, and whether it is
    /// settled: `false` while the flow's cgroup has not been found (it may have been created
    /// after this cycle's walk of the tree), so that the caller asks again next cycle.
    pub fn label_key(&mut self, key: &FlowKey) -> (LabelKey, bool) {
        let hook = if key.hook == Hook::Tc as u8 { HookLabel::Tc } else { HookLabel::Cgroup };
        let (workload, interface, settled) = match hook {
            HookLabel::Cgroup => {
                let (workload, known) = self.workload(key.cgroup_id);
                (workload, 0, known)
            }
            HookLabel::Tc => (0, key.ifindex, true),
        };
        let remote = self.classifier.classify(remote_address(key));
        let remote_id = match (remote.network, remote.cloud) {
            (Some(i), _) => self.remote_of_network[i],
            (None, cloud) if remote.class.is_public() => {
                let geo = match (self.geoip.is_enabled(), remote_address(key)) {
                    (true, Some(addr)) => self.geoip.lookup(addr),
                    _ => GeoInfo::default(),
                };
                let country = geo.country.as_deref().map_or([0; 2], |c| {
                    let b = c.as_bytes();
                    [b.first().copied().unwrap_or(0), b.get(1).copied().unwrap_or(0)]
                });
                let id =
                    PublicRemote { cloud: cloud.map(|m| m.id), asn: geo.asn.unwrap_or(0), country };
                let (remotes, empty) = (&mut self.remotes, &self.empty);
                *self.remote_of_cloud.entry(id).or_insert_with(|| {
                    let text = |v: Option<&str>| v.map_or_else(|| empty.clone(), Arc::from);
                    remotes.intern(RemoteLabels {
                        name: text(geo.as_organization.as_deref()),
                        zone: empty.clone(),
                        region: text(cloud.map(|m| m.region)),
                        provider: cloud.map_or("", |m| m.provider.as_str()),
                        service: text(cloud.map(|m| m.service)),
                        country: text(geo.country.as_deref()),
                    })
                })
            }
            _ => 0,
        };
        let egress_path = self.paths.path(address(key.family, &key.local_addr), &remote);
        let labels = LabelKey {
            hook,
            direction: Direction::from_u8(key.direction).into(),
            traffic_class: remote.class,
            interface,
            workload,
            remote: remote_id,
            egress_path,
        };
        (labels, settled)
    }

    /// The labels a [`LabelKey`] stands for.
    pub fn labels(&self, key: &LabelKey) -> FlowLabels {
        let remote = self.remotes.get(key.remote).clone();
        let interface = match key.hook {
            HookLabel::Cgroup => self.empty.clone(),
            HookLabel::Tc => self
                .interfaces
                .get(&key.interface)
                .cloned()
                .unwrap_or_else(|| format!("if{}", key.interface).into()),
        };
        FlowLabels {
            hook: key.hook,
            interface,
            direction: key.direction,
            traffic_class: key.traffic_class,
            workload: self.workloads.get(key.workload).clone(),
            remote: remote.name,
            remote_zone: remote.zone,
            remote_region: remote.region,
            remote_provider: remote.provider,
            remote_service: remote.service,
            remote_country: remote.country,
            egress_path: key.egress_path,
        }
    }

    /// What decides the price of a label set's bytes.
    pub fn price_query(&self, key: &LabelKey) -> PriceQuery<'_> {
        let remote = self.remotes.get(key.remote);
        PriceQuery {
            class: key.traffic_class,
            egress: key.direction.is_egress(),
            service: &remote.service,
            region: &remote.region,
            path: key.egress_path,
        }
    }

    /// The interned workload of a cgroup (the resolver caches names by id), and whether the
    /// cgroup was found. Called when a flow is first seen, not per read.
    fn workload(&mut self, cgroup_id: u64) -> (u32, bool) {
        let name = self.cgroups.resolve(cgroup_id);
        let known = &*name != UNKNOWN_WORKLOAD;
        (self.workloads.intern(name), known)
    }
}

/// The remote address of a flow key, `None` for non-IP frames.
pub fn remote_address(key: &FlowKey) -> Option<IpAddr> {
    address(key.family, &key.remote_addr)
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

#[cfg(test)]
mod tests {
    use std::{os::unix::fs::MetadataExt, path::Path};

    use egressor_common::Direction;

    use super::*;
    use crate::classify::TrafficClass;

    #[test]
    fn equal_labels_get_equal_keys_and_keys_give_the_labels_back() {
        let root = std::env::temp_dir().join(format!("egressor-attr-{}", std::process::id()));
        for dir in ["a/app.service", "b/app.service", "c/db.service"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        let ino = |d: &str| std::fs::metadata(root.join(d)).unwrap().ino();
        let config = FileConfig::parse(
            "node: {zone: z1}\nnetworks:\n  - {cidr: 10.1.0.0/16, name: peer, zone: z2}\n  \
             - {cidr: 10.2.0.0/16, name: peer, zone: z2}\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        let mut a = Attributor::new(
            CgroupResolver::new(root.clone()),
            Classifier::new(&config, Arc::default()),
            &config,
            HashMap::new(),
        );
        let flow = |cgroup: u64, remote: [u8; 4]| {
            let mut k = FlowKey {
                cgroup_id: cgroup,
                direction: Direction::Egress as u8,
                family: family::IPV4,
                ..FlowKey::zeroed()
            };
            k.remote_addr[0] = u32::from_ne_bytes(remote);
            k
        };
        let (app_a, settled) = a.label_key(&flow(ino("a/app.service"), [10, 1, 0, 1]));
        assert!(settled);
        let (app_b, _) = a.label_key(&flow(ino("b/app.service"), [10, 2, 0, 1]));
        let (db, _) = a.label_key(&flow(ino("c/db.service"), [10, 1, 0, 1]));
        let (gone, settled) = a.label_key(&flow(u64::MAX, [10, 1, 0, 1]));
        assert!(!settled, "an unknown cgroup is asked about again");
        assert_eq!(&*a.labels(&gone).workload, UNKNOWN_WORKLOAD);
        assert_eq!(app_a, app_b, "same workload name, same network name and zone");
        assert_ne!(app_a, db);
        let labels = a.labels(&app_a);
        assert_eq!(&*labels.workload, "app.service");
        assert_eq!((&*labels.remote, &*labels.remote_zone), ("peer", "z2"));
        assert_eq!(labels.traffic_class, TrafficClass::CrossZone);
        assert_eq!(&*labels.interface, "");
        std::fs::remove_dir_all(root).unwrap();
    }
}
