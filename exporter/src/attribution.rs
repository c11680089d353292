//! Attribution: turns a kernel [`FlowKey`] into the [`FlowLabels`] its bytes are counted
//! under: local workload (cgroup), interface, and the remote's class, name and zone. Per
//! flow it produces a compact [`LabelKey`] of interned ids; [`Attributor::labels`] turns a
//! key back into label values once per series.

use std::{
    collections::{HashMap, HashSet},
    hash::{BuildHasher as _, Hash},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use egressor_common::{Direction, FlowKey, Hook, family};
use foldhash::fast::RandomState;

use crate::{
    accounting::Labelled,
    api::FlowDetail,
    cgroups::{CgroupResolver, FORGET_AFTER_CYCLES, UNKNOWN_WORKLOAD, workload_name},
    classify::{Classifier, TrafficClass},
    cloud::CloudMatch,
    config::FileConfig,
    dns::DnsNames,
    geoip::{GeoInfo, GeoIp},
    kubernetes::{CgroupIdentity, KubeAttribution, conntrack::Connection},
    labels::{
        ChargebackLabels, FlowLabels, HookLabel, LabelKey, OTHER_WORKLOAD, chargeback_label_name,
    },
    paths::{EgressPath, EgressPaths},
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
    workloads: Interner<LocalLabels>,
    /// cgroup id → (its settled interned workload, cycle last asked for): a new flow of a
    /// known cgroup costs one lookup, not a path parse and an intern (or, on Kubernetes, a
    /// pod lookup). Forgotten like the resolver's paths; cleared when everything changes.
    workload_of: HashMap<u64, (u32, u64), RandomState>,
    kube: Option<KubeAttribution>,
    /// Label names of the chargeback allowlist, and the labels with empty values.
    chargeback_names: Vec<Arc<str>>,
    empty_chargeback: ChargebackLabels,
    remotes: Interner<RemoteLabels>,
    /// Interned remote labels of each configured network, by its index.
    remote_of_network: Vec<u32>,
    /// Interned remote labels by [`CloudMatch::id`](crate::cloud::CloudMatch) of the current
    /// cloud table (cleared when the table changes).
    remote_of_cloud: HashMap<PublicRemote, u32, RandomState>,
    geoip: GeoIp,
    dns: Option<DnsNames>,
    /// Remote id → its name-folded id.
    folded_of: HashMap<u32, u32, RandomState>,
    /// (cloud range id, named) → the folded id of public remotes there.
    folded_public_of: HashMap<(Option<u64>, bool), u32, RandomState>,
    hasher: foldhash::fast::FixedState,
    names: NameGuard,
    empty: Arc<str>,
}

/// The labels that describe the local end.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
struct LocalLabels {
    workload: Arc<str>,
    namespace: Arc<str>,
    kind: Arc<str>,
    version: Arc<str>,
    chargeback: ChargebackLabels,
}

impl LocalLabels {
    fn named(workload: Arc<str>, chargeback: ChargebackLabels) -> Self {
        let empty: Arc<str> = "".into();
        Self { workload, namespace: empty.clone(), kind: empty.clone(), version: empty, chargeback }
    }
}

/// The label value that folded names and workloads take.
pub const OTHER: &str = "other";

/// Keeps the `remote` name of public remotes only for the top K names by bytes per workload
/// per window: the names with the most bytes in the last window (then, up to K, the names it
/// had before; a workload quiet for a window keeps its names), and while fewer than K are
/// admitted, new names first come, first served. Every other name folds into `other`.
#[derive(Debug, Default)]
struct NameGuard {
    k: usize,
    window_cycles: u64,
    cycles: u64,
    admitted: HashMap<u32, HashSet<u64, RandomState>, RandomState>,
    window_usage: HashMap<u64, u64, RandomState>,
}

/// Bits of a usage tag that hold the name's hash; the workload id sits above them.
const NAME_BITS: u32 = 40;
/// Mask of the name's hash in a usage tag.
const NAME_MASK: u64 = (1 << NAME_BITS) - 1;

impl NameGuard {
    fn admit(&mut self, workload: u32, remote: u64) -> bool {
        let set = self.admitted.entry(workload).or_default();
        if set.contains(&remote) {
            return true;
        }
        if set.len() < self.k {
            set.insert(remote);
            return true;
        }
        false
    }

    /// Adds a cycle's usage; at the end of a window, admits each workload's top K. Returns
    /// whether the admitted names changed (flows must be labelled again).
    fn end_cycle(&mut self, usage: impl IntoIterator<Item = (u64, u64)>) -> bool {
        for (tag, bytes) in usage {
            *self.window_usage.entry(tag).or_default() += bytes;
        }
        self.cycles += 1;
        if self.cycles < self.window_cycles {
            return false;
        }
        self.cycles = 0;
        let mut by_workload: HashMap<u32, Vec<(u64, u64)>, RandomState> = HashMap::default();
        for (tag, bytes) in self.window_usage.drain() {
            by_workload
                .entry((tag >> NAME_BITS) as u32)
                .or_default()
                .push((bytes, tag & NAME_MASK));
        }
        // Workloads quiet in this window keep their names; the others rank this window's
        // names by bytes and fill the rest of their K with the names they had.
        let mut admitted = self.admitted.clone();
        for (workload, mut names) in by_workload {
            // Most bytes first; ties by id so that the choice is stable.
            names.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut next: Vec<u64> = names.iter().take(self.k).map(|n| n.1).collect();
            let mut before: Vec<u64> =
                admitted.get(&workload).map(|s| s.iter().copied().collect()).unwrap_or_default();
            before.sort_unstable();
            for id in before {
                if next.len() < self.k && !next.contains(&id) {
                    next.push(id);
                }
            }
            admitted.insert(workload, next.into_iter().collect());
        }
        let changed = admitted != self.admitted;
        self.admitted = admitted;
        changed
    }
}

/// What names a public remote: its cloud range (by [`CloudMatch::id`](crate::cloud::CloudMatch))
/// and its AS and country, if the MaxMind databases are open.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PublicRemote {
    cloud: Option<u64>,
    asn: u32,
    country: [u8; 2],
    dns_name: Option<Arc<str>>,
}

/// A cloud provider's label value. An alias, so that serde's derive does not take the
/// reference for a string borrowed from the input.
type ProviderName = &'static str;

/// The labels that describe the remote end.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
struct RemoteLabels {
    name: Arc<str>,
    zone: Arc<str>,
    region: Arc<str>,
    #[serde(deserialize_with = "known_provider")]
    provider: ProviderName,
    service: Arc<str>,
    country: Arc<str>,
    namespace: Arc<str>,
    kind: Arc<str>,
}

/// A [`LabelKey`] spelled out by value, so that it means the same to another agent process
/// (whose interned ids differ): what a checkpoint stores per label set.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PersistedLabels {
    hook: HookLabel,
    direction: crate::labels::DirectionLabel,
    traffic_class: crate::classify::TrafficClass,
    interface: u32,
    local: LocalLabels,
    remote: RemoteLabels,
    remote_folded: RemoteLabels,
    egress_path: EgressPath,
}

/// A provider label read back from a checkpoint: one of the providers' own names, else empty.
fn known_provider<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    let name = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    Ok(crate::cloud::Provider::ALL.iter().map(|p| p.as_str()).find(|p| *p == name).unwrap_or(""))
}

impl Attributor {
    /// `key` by value, for a checkpoint.
    pub fn persisted(&self, key: &LabelKey) -> PersistedLabels {
        PersistedLabels {
            hook: key.hook,
            direction: key.direction,
            traffic_class: key.traffic_class,
            interface: key.interface,
            local: self.workloads.get(key.workload).clone(),
            remote: self.remotes.get(key.remote).clone(),
            remote_folded: self.remotes.get(key.remote_folded).clone(),
            egress_path: key.egress_path,
        }
    }

    /// The [`LabelKey`] of labels read from a checkpoint, interning what this process has
    /// not met yet.
    pub fn restored(&mut self, labels: PersistedLabels) -> LabelKey {
        let remote = self.remotes.intern(labels.remote);
        let remote_folded = self.remotes.intern(labels.remote_folded);
        self.folded_of.entry(remote).or_insert(remote_folded);
        LabelKey {
            hook: labels.hook,
            direction: labels.direction,
            traffic_class: labels.traffic_class,
            interface: labels.interface,
            workload: self.workloads.intern(labels.local),
            remote,
            remote_folded,
            egress_path: labels.egress_path,
        }
    }

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
            namespace: empty.clone(),
            kind: empty.clone(),
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
                    namespace: empty.clone(),
                    kind: empty.clone(),
                })
            })
            .collect();
        Self {
            cgroups,
            classifier,
            paths: EgressPaths::new(config),
            interfaces,
            kube: None,
            chargeback_names: Vec::new(),
            empty_chargeback: ChargebackLabels::default(),
            workload_of: HashMap::default(),
            workloads: {
                let mut w =
                    Interner::new(LocalLabels::named(empty.clone(), ChargebackLabels::default()));
                let other = w.intern(LocalLabels::named(OTHER.into(), ChargebackLabels::default()));
                debug_assert_eq!(other, OTHER_WORKLOAD);
                w
            },
            names: NameGuard::default(),
            folded_of: HashMap::default(),
            folded_public_of: HashMap::default(),
            hasher: foldhash::fast::FixedState::with_seed(0x6e616d65),
            remotes,
            empty,
            remote_of_network,
            remote_of_cloud: HashMap::default(),
            geoip: GeoIp::default(),
            dns: None,
        }
    }

    /// Names public remotes by the DNS name they were looked up by (over the AS
    /// organisation).
    pub fn with_dns(mut self, names: DnsNames) -> Self {
        self.dns = Some(names);
        self
    }

    /// Attributes pods' cgroups through the Kubernetes index, when given one.
    pub fn with_kubernetes_opt(mut self, kube: Option<KubeAttribution>) -> Self {
        if let Some(k) = &kube {
            self.chargeback_names =
                k.chargeback.iter().map(|key| Arc::from(chargeback_label_name(key))).collect();
            self.empty_chargeback = ChargebackLabels(
                self.chargeback_names.iter().map(|n| (n.clone(), self.empty.clone())).collect(),
            );
        }
        self.kube = kube;
        self
    }

    /// Keeps remote names for the top `k` per workload per window of `window_cycles` read
    /// cycles (see [`NameGuard`]).
    pub fn with_name_limit(mut self, k: usize, window_cycles: u64) -> Self {
        self.names.k = k;
        self.names.window_cycles = window_cycles.max(1);
        self
    }

    /// Called at the end of a read cycle with the bytes per tag
    /// ([`Accounting::take_usage`](crate::accounting::Accounting::take_usage)). Returns
    /// whether flows must be labelled again next cycle (a window ended and the admitted names
    /// changed).
    pub fn end_cycle(&mut self, usage: impl IntoIterator<Item = (u64, u64)>) -> bool {
        self.names.end_cycle(usage)
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
        let cycle = self.cgroups.cycle();
        if cycle.is_multiple_of(FORGET_AFTER_CYCLES) {
            let oldest = cycle - FORGET_AFTER_CYCLES;
            self.workload_of.retain(|_, (_, used)| *used >= oldest);
        }
        let cloud_changed = self.classifier.refresh_cloud();
        if cloud_changed {
            self.remote_of_cloud.clear();
            self.folded_public_of.clear();
        }
        self.classifier.set_host_addresses(host_addresses) | cloud_changed
    }

    /// The label set `key`'s bytes are counted under, as a compact key, and whether it is
    /// settled: `false` while the flow's cgroup has not been found (it may have been created
    /// after this cycle's walk of the tree), so that the caller asks again next cycle.
    pub fn label_key(&mut self, key: &FlowKey) -> Labelled<LabelKey> {
        let hook = if key.hook == Hook::Tc as u8 { HookLabel::Tc } else { HookLabel::Cgroup };
        let (workload, interface, settled) = match hook {
            HookLabel::Cgroup => {
                let (workload, known) = self.workload(key.cgroup_id);
                (workload, 0, known)
            }
            HookLabel::Tc => (0, key.ifindex, true),
        };
        if let Some(peer) = self.kube_peer(key) {
            let labels = LabelKey {
                hook,
                direction: Direction::from_u8(key.direction).into(),
                traffic_class: peer.0,
                interface,
                workload,
                remote: peer.1,
                remote_folded: peer.2,
                egress_path: EgressPath::None,
            };
            return Labelled { labels, settled, tag: 0 };
        }
        let remote = self.classifier.classify(remote_address(key));
        let egress_path = self.paths.path(address(key.family, &key.local_addr), &remote);
        let class = remote.class;
        let (remote_id, folded, tag) = match (remote.network, remote.cloud) {
            (Some(i), _) => {
                let id = self.remote_of_network[i];
                (id, self.folded(id), 0)
            }
            (None, cloud) if class.is_public() => {
                let addr = remote_address(key);
                let geo = match (self.geoip.is_enabled(), addr) {
                    (true, Some(a)) => self.geoip.lookup(a),
                    _ => GeoInfo::default(),
                };
                let country = geo.country.as_deref().map_or([0; 2], |c| {
                    let b = c.as_bytes();
                    [b.first().copied().unwrap_or(0), b.get(1).copied().unwrap_or(0)]
                });
                let dns_name = match (&self.dns, addr) {
                    (Some(names), Some(a)) => names.name(a),
                    _ => None,
                };
                let name = dns_name.or_else(|| geo.as_organization.as_deref().map(Arc::from));
                let public = PublicRemote {
                    cloud: cloud.map(|m| m.id),
                    asn: geo.asn.unwrap_or(0),
                    country,
                    dns_name: name.clone(),
                };
                let folded = folded_public(
                    &mut self.remotes,
                    &mut self.folded_public_of,
                    &self.empty,
                    cloud,
                    name.is_some(),
                );
                // A name the guard does not admit is never interned: what is interned stays
                // bounded by the names admitted, not by the names seen.
                let tag = name.as_ref().map(|_| {
                    u64::from(workload) << NAME_BITS | (self.hasher.hash_one(&public) & NAME_MASK)
                });
                match tag {
                    Some(tag) if !self.names.admit(workload, tag & NAME_MASK) => {
                        (folded, folded, tag)
                    }
                    _ => {
                        let (remotes, empty) = (&mut self.remotes, &self.empty);
                        let id = *self.remote_of_cloud.entry(public).or_insert_with(|| {
                            let text = |v: Option<&str>| v.map_or_else(|| empty.clone(), Arc::from);
                            remotes.intern(RemoteLabels {
                                name: name.unwrap_or_else(|| empty.clone()),
                                zone: empty.clone(),
                                region: text(cloud.map(|m| m.region)),
                                provider: cloud.map_or("", |m| m.provider.as_str()),
                                service: text(cloud.map(|m| m.service)),
                                country: text(geo.country.as_deref()),
                                namespace: empty.clone(),
                                kind: empty.clone(),
                            })
                        });
                        (id, folded, tag.unwrap_or(0))
                    }
                }
            }
            _ => (0, 0, 0),
        };
        let labels = LabelKey {
            hook,
            direction: Direction::from_u8(key.direction).into(),
            traffic_class: class,
            interface,
            workload,
            remote: remote_id,
            remote_folded: folded,
            egress_path,
        };
        Labelled { labels, settled, tag }
    }

    /// A pod or node of the cluster at the flow's remote address: (class, remote id, folded
    /// id). Workload names are bounded by the cluster's workloads, so no top-K guard.
    fn kube_peer(&mut self, key: &FlowKey) -> Option<(TrafficClass, u32, u32)> {
        let kube = self.kube.as_ref()?;
        let remote = remote_address(key)?;
        // A flow to a Service address carries its connection's ports (see FlowKey::local_port).
        let connection = match address(key.family, &key.local_addr) {
            Some(local) if key.local_port != 0 => Some(Connection {
                protocol: key.protocol,
                source: SocketAddr::new(local, key.local_port),
                destination: SocketAddr::new(remote, key.port),
            }),
            _ => None,
        };
        let peer = kube.peer(remote, connection.as_ref())?;
        let class = peer.class;
        let text = |v: &Option<Arc<str>>| v.clone().unwrap_or_else(|| self.empty.clone());
        let labels = RemoteLabels {
            name: peer.workload.clone(),
            zone: text(&peer.zone),
            region: text(&peer.region),
            provider: "",
            service: self.empty.clone(),
            country: self.empty.clone(),
            namespace: peer.namespace.clone(),
            kind: peer.kind.clone(),
        };
        let id = self.remotes.intern(labels);
        Some((class, id, self.folded(id)))
    }

    /// Every Kubernetes Service virtual IP, when they changed since the last call (`None`
    /// off Kubernetes): what the kernel's service map must hold.
    pub fn take_service_addresses(&self) -> Option<HashSet<IpAddr>> {
        self.kube.as_ref()?.take_service_addresses()
    }

    /// The addresses whose Kubernetes owner changed since the last call (`None`: all may
    /// have; empty off Kubernetes).
    pub fn take_kube_changes(&mut self) -> Option<Vec<IpAddr>> {
        let changed = match &self.kube {
            Some(k) => k.take_changed(),
            None => Some(Vec::new()),
        };
        if changed.is_none() {
            // A relist: pods' workloads, versions and labels are looked up again.
            self.workload_of.clear();
        }
        changed
    }

    /// The id of `remote` with its name folded into `other`, keeping what decides the price.
    fn folded(&mut self, remote: u32) -> u32 {
        if let Some(&id) = self.folded_of.get(&remote) {
            return id;
        }
        let r = self.remotes.get(remote).clone();
        let id = self.remotes.intern(RemoteLabels {
            name: if r.name.is_empty() { r.name } else { OTHER.into() },
            zone: self.empty.clone(),
            country: self.empty.clone(),
            namespace: self.empty.clone(),
            kind: self.empty.clone(),
            ..r
        });
        self.folded_of.insert(remote, id);
        id
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
            workload: self.workloads.get(key.workload).workload.clone(),
            namespace: self.workloads.get(key.workload).namespace.clone(),
            workload_kind: self.workloads.get(key.workload).kind.clone(),
            workload_version: self.workloads.get(key.workload).version.clone(),
            chargeback: self.chargeback_of(key.workload),
            remote: remote.name,
            remote_zone: remote.zone,
            remote_region: remote.region,
            remote_provider: remote.provider,
            remote_service: remote.service,
            remote_country: remote.country,
            remote_namespace: remote.namespace,
            remote_kind: remote.kind,
            egress_path: key.egress_path,
        }
    }

    /// A flow's full detail for the API (bytes and cost left at zero for the caller): its
    /// label set's workload, hook, interface and path, and the remote classified afresh with
    /// its raw address, port, name, cloud range, AS and country.
    pub fn describe(&self, key: &FlowKey, labels: &LabelKey) -> FlowDetail {
        let flow = self.labels(labels);
        let remote_addr = remote_address(key);
        let remote = self.classifier.classify(remote_addr);
        let geo = match remote_addr {
            Some(a) if remote.class.is_public() => self.geoip.lookup(a),
            _ => GeoInfo::default(),
        };
        let network = remote.network.map(|i| self.remotes.get(self.remote_of_network[i]));
        let dns_name = match (&self.dns, remote_addr) {
            (Some(names), Some(a)) if remote.class.is_public() => names.name(a),
            _ => None,
        };
        let name = network
            .map(|n| n.name.to_string())
            .or(dns_name.map(|n| n.to_string()))
            .or(geo.as_organization);
        let region = match (remote.cloud, network) {
            (Some(m), _) => Some(m.region.to_owned()),
            (None, Some(n)) if !n.region.is_empty() => Some(n.region.to_string()),
            _ => None,
        };
        FlowDetail {
            workload: flow.workload.to_string(),
            hook: flow.hook.as_str().into(),
            interface: flow.interface.to_string(),
            direction: flow.direction.as_str().into(),
            protocol: crate::api::protocol_name(key.protocol),
            local_address: address(key.family, &key.local_addr),
            remote_address: remote_addr,
            port: key.port,
            traffic_class: remote.class.as_str().into(),
            name,
            provider: remote.cloud.map(|m| m.provider.as_str().into()),
            service: remote.cloud.map(|m| m.service.into()),
            region,
            asn: geo.asn,
            country: geo.country,
            egress_path: labels.egress_path.as_str().into(),
            bytes: 0,
            packets: 0,
            bytes_per_second: 0.0,
            cost_usd: 0.0,
            avoidable: false,
        }
    }

    /// What the agent decides about `address` from `from` now (`/api/v1/classify`): its
    /// classifier, paths, MaxMind databases, DNS names, Kubernetes peers and `pricer`.
    pub fn verdict(
        &self,
        address: std::net::IpAddr,
        from: Option<std::net::IpAddr>,
        pricer: &crate::prices::Pricer,
    ) -> crate::verdict::Verdict {
        let text = |v: &Arc<str>| (!v.is_empty()).then(|| v.to_string());
        let networks = |i: usize| {
            let n = self.remotes.get(self.remote_of_network[i]);
            crate::verdict::NetworkInfo {
                name: n.name.to_string(),
                zone: text(&n.zone),
                region: text(&n.region),
            }
        };
        let kube = |ip| self.kube.as_ref().and_then(|k| k.remote(ip));
        let judge = crate::verdict::Judge {
            classifier: &self.classifier,
            paths: &self.paths,
            geoip: &self.geoip,
            dns: self.dns.as_ref(),
            pricer,
            networks: &networks,
            kube: &kube,
        };
        judge.verdict(address, from)
    }

    /// Interned remote label tuples (bounded by the configured networks, the cloud ranges met
    /// and the names admitted).
    pub fn interned_remotes(&self) -> usize {
        self.remotes.values.len()
    }

    /// The name of an interned workload id.
    pub fn workload_name(&self, id: u32) -> Arc<str> {
        self.workloads.get(id).workload.clone()
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
        let cycle = self.cgroups.cycle();
        if let Some((id, used)) = self.workload_of.get_mut(&cgroup_id) {
            *used = cycle;
            return (*id, true);
        }
        let (id, settled) = self.workload_uncached(cgroup_id);
        if settled {
            self.workload_of.insert(cgroup_id, (id, cycle));
        }
        (id, settled)
    }

    fn workload_uncached(&mut self, cgroup_id: u64) -> (u32, bool) {
        let empty_chargeback = self.empty_chargeback.clone();
        let Some(path) = self.cgroups.resolve_path(cgroup_id) else {
            return (
                self.workloads
                    .intern(LocalLabels::named(UNKNOWN_WORKLOAD.into(), empty_chargeback)),
                false,
            );
        };
        let plain = |path: &str| {
            let name = workload_name(std::path::Path::new(path.trim_start_matches('/')));
            LocalLabels::named(name.into(), empty_chargeback.clone())
        };
        let (labels, settled) = match self.kube.as_ref().map(|k| k.cgroup(&path)) {
            None | Some(CgroupIdentity::NotAPod) => (plain(&path), true),
            // A pod the index does not know yet: asked again next cycle.
            Some(CgroupIdentity::UnknownPod) => {
                (LocalLabels::named(UNKNOWN_WORKLOAD.into(), empty_chargeback.clone()), false)
            }
            Some(CgroupIdentity::Pod(p)) => {
                let values = self
                    .chargeback_names
                    .iter()
                    .cloned()
                    .zip(p.chargeback.into_iter().map(Arc::from));
                (
                    LocalLabels {
                        workload: p.workload.into(),
                        namespace: p.namespace.into(),
                        kind: p.kind.into(),
                        version: p.version.into(),
                        chargeback: ChargebackLabels(values.collect()),
                    },
                    true,
                )
            }
        };
        (self.workloads.intern(labels), settled)
    }

    /// The chargeback labels of an interned local id: the pod's values, or the allowlist's
    /// names with empty values (folded `other` and non-pod cgroups), so every series has the
    /// same label names.
    fn chargeback_of(&self, id: u32) -> ChargebackLabels {
        let c = &self.workloads.get(id).chargeback;
        if c.0.is_empty() { self.empty_chargeback.clone() } else { c.clone() }
    }
}

/// The folded remote of a public remote in `cloud` (named or not): `other` (or empty) with the
/// provider, service and region that decide the price. Cached by (range, named).
fn folded_public(
    remotes: &mut Interner<RemoteLabels>,
    cache: &mut HashMap<(Option<u64>, bool), u32, RandomState>,
    empty: &Arc<str>,
    cloud: Option<CloudMatch<'_>>,
    named: bool,
) -> u32 {
    let key = (cloud.map(|m| m.id), named);
    if let Some(&id) = cache.get(&key) {
        return id;
    }
    let text = |v: Option<&str>| v.map_or_else(|| empty.clone(), Arc::from);
    let id = remotes.intern(RemoteLabels {
        name: if named { OTHER.into() } else { empty.clone() },
        zone: empty.clone(),
        region: text(cloud.map(|m| m.region)),
        provider: cloud.map_or("", |m| m.provider.as_str()),
        service: text(cloud.map(|m| m.service)),
        country: empty.clone(),
        namespace: empty.clone(),
        kind: empty.clone(),
    });
    cache.insert(key, id);
    id
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
    fn names_are_admitted_first_come_then_by_bytes_per_window() {
        let mut g = NameGuard { k: 2, window_cycles: 2, ..NameGuard::default() };
        let tag = |w: u64, r: u64| w << NAME_BITS | r;
        assert!(g.admit(7, 10) && g.admit(7, 11) && g.admit(7, 10));
        assert!(!g.admit(7, 12), "k = 2 names for workload 7");
        assert!(g.admit(8, 12), "another workload has its own k");
        // Name 12 moved the most bytes of workload 7 in the window, then 11.
        assert!(!g.end_cycle([(tag(7, 10), 5), (tag(7, 12), 50)]));
        assert!(g.end_cycle([(tag(7, 11), 20), (tag(7, 12), 1)]), "window over: new top 2");
        assert!(g.admit(7, 12) && g.admit(7, 11) && !g.admit(7, 10));
        assert!(g.admit(8, 13) && !g.admit(8, 14), "8 was quiet: it keeps 12 and fills 13");
        // Only name 10 moved in the next window: it joins the best of the names before (11).
        assert!(!g.end_cycle([(tag(7, 10), 1)]));
        assert!(g.end_cycle([]));
        assert!(g.admit(7, 10) && g.admit(7, 11) && !g.admit(7, 12));
    }

    /// A DNS response: `name` A `addr`, TTL 300.
    fn answer(name: &str, addr: [u8; 4]) -> Vec<u8> {
        let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        for label in name.split('.') {
            m.push(label.len() as u8);
            m.extend(label.as_bytes());
        }
        m.extend([0, 0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4]);
        m.extend(addr);
        m
    }

    #[test]
    fn names_beyond_the_top_k_fold_into_other_without_being_interned() {
        let root = std::env::temp_dir().join(format!("egressor-names-{}", std::process::id()));
        std::fs::create_dir_all(root.join("app.service")).unwrap();
        let ino = std::fs::metadata(root.join("app.service")).unwrap().ino();
        let config = FileConfig::default();
        let names = DnsNames::new(10_000, std::time::Duration::from_secs(60));
        let mut a = Attributor::new(
            CgroupResolver::new(root.clone()),
            Classifier::new(&config, Arc::default()),
            &config,
            HashMap::new(),
        )
        .with_dns(names.clone())
        .with_name_limit(5, 10);
        let before = a.interned_remotes();
        let mut seen = HashSet::new();
        for i in 0..1000u32 {
            let addr = [203, 0, (i >> 8) as u8, i as u8];
            names.learn(&answer(&format!("host{i}.example.test"), addr), false);
            let mut k = FlowKey {
                cgroup_id: ino,
                direction: Direction::Egress as u8,
                family: family::IPV4,
                ..FlowKey::zeroed()
            };
            k.remote_addr[0] = u32::from_ne_bytes(addr);
            let l = a.label_key(&k);
            assert_ne!(l.tag, 0, "named remotes report usage");
            seen.insert(a.labels(&l.labels).remote.to_string());
        }
        assert_eq!(seen.len(), 6, "five names and other: {seen:?}");
        assert!(seen.contains("other") && seen.contains("host0.example.test"));
        assert!(a.interned_remotes() - before <= 6 + 1, "interned: {}", a.interned_remotes());
        std::fs::remove_dir_all(root).unwrap();
    }

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
        let key = |l: Labelled<LabelKey>| (l.labels, l.settled);
        let (app_a, settled) = key(a.label_key(&flow(ino("a/app.service"), [10, 1, 0, 1])));
        assert!(settled);
        let (app_b, _) = key(a.label_key(&flow(ino("b/app.service"), [10, 2, 0, 1])));
        let (db, _) = key(a.label_key(&flow(ino("c/db.service"), [10, 1, 0, 1])));
        let (gone, settled) = key(a.label_key(&flow(u64::MAX, [10, 1, 0, 1])));
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
