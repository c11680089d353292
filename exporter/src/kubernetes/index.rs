//! What the agent keeps of the cluster: small projections of Pods, Nodes, ReplicaSets, Jobs,
//! Namespaces, Services and EndpointSlices (never whole objects: 10k pods take ~10 MB),
//! indexed by what attribution asks: pod UID (the local side, from cgroups), pod IP, node IP
//! and Service IP (the remote side), and owner (the workload). Each pod and node carries its
//! remote view, built when it or what it depends on changes, so a flow's lookup is one probe.
//!
//! **IP reuse.** A pod IP is reused once its pod is gone. The IP index holds the pod that
//! owns an address now: a pod's deletion removes its addresses only if they still point to it,
//! and a newer pod taking an address replaces the old mapping. A pod that has finished
//! (Succeeded or Failed) no longer owns its addresses.
//!
//! **Services.** A Service's virtual IPs (`spec.clusterIPs`) name the Service; which backend
//! served a connection comes from conntrack (see [`super::conntrack`]). EndpointSlices give
//! the zone and node of backends that are no pod of the index (`endpoints[].zone`,
//! `nodeName`: endpoints of a selector-less Service, pods not yet seen).

use std::{
    collections::{BTreeMap, HashMap as StdHashMap},
    net::IpAddr,
    sync::Arc,
};

use k8s_openapi::api::{
    apps::v1::ReplicaSet,
    batch::v1::Job,
    core::v1::{Namespace, Node, Pod, Service},
    discovery::v1::EndpointSlice,
};
use kube::ResourceExt;

use super::RemotePeer;
use crate::classify::TrafficClass;

/// Maps with foldhash: attribution looks up pods, nodes and owners per new flow (the
/// benchmark's target is ≤ 200 ns per flow at 10k pods), and keys are not attacker-chosen.
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;

/// Shared text: names, zones and kinds are cloned into every flow's attribution, so they are
/// reference-counted rather than copied.
pub type Text = Arc<str>;

/// Node label of the zone (and its legacy name).
pub const ZONE_LABELS: [&str; 2] =
    ["topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone"];
/// Node label of the region (and its legacy name).
pub const REGION_LABELS: [&str; 2] =
    ["topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region"];

/// The workload a pod belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Workload {
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `CronJob`, `Job`, `ReplicaSet`, `Pod`, or
    /// another owner's kind.
    pub kind: Text,
    /// Its name.
    pub name: Text,
}

/// A pod, as kept (shared by the UID and the IP indexes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// UID.
    pub uid: Text,
    /// Namespace.
    pub namespace: Text,
    /// Name.
    pub name: Text,
    /// Node it runs on.
    pub node: Option<Text>,
    /// Pod IPs (v4 and v6); empty for hostNetwork pods (their IPs are the node's).
    pub ips: Vec<IpAddr>,
    /// Whether it shares the node's network namespace.
    pub host_network: bool,
    /// Its controller owner reference (kind, name).
    pub owner: Option<(Text, Text)>,
    /// The pod as the remote end of a flow: its workload (resolved through the owner chain)
    /// and its node's place, rebuilt when the pod, an owner or the node's place changes (not
    /// per lookup: attribution asks per flow).
    pub peer: Arc<RemotePeer>,
    /// The labels kept (version and chargeback labels asked for in the configuration), as
    /// (key, value) pairs: two or three per pod, where a map would cost a 500-byte node.
    pub labels: Vec<(Text, Text)>,
    /// Whether it has finished (Succeeded or Failed).
    pub finished: bool,
}

impl PodInfo {
    /// Its workload (from [`PodInfo::peer`]): ReplicaSet → Deployment, Job → CronJob;
    /// StatefulSet, DaemonSet and other owners as they are; a bare pod is its own workload.
    /// An owner not (yet) known stops the chain where it is.
    pub fn workload(&self) -> Workload {
        Workload { kind: self.peer.kind.clone(), name: self.peer.workload.clone() }
    }

    /// A kept label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| &**k == key).map(|(_, v)| &**v)
    }
}

/// Interned low-cardinality text (namespaces, nodes, owner kinds): one allocation each,
/// however many pods name it. Bounded by the cluster's namespaces and nodes over the
/// agent's life.
#[derive(Debug, Default)]
struct Strings(std::collections::HashSet<Text, foldhash::fast::RandomState>);

impl Strings {
    fn intern(&mut self, s: &str) -> Text {
        if let Some(t) = self.0.get(s) {
            return t.clone();
        }
        let t = Text::from(s);
        self.0.insert(t.clone());
        t
    }
}

/// A node, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Zone label.
    pub zone: Option<Text>,
    /// Region label.
    pub region: Option<Text>,
    /// InternalIP and ExternalIP addresses.
    pub addresses: Vec<IpAddr>,
    /// The node as the remote end of a flow to one of its addresses.
    pub peer: Arc<RemotePeer>,
}

/// A Service, as its virtual IPs name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceName {
    /// Namespace.
    pub namespace: Text,
    /// Name.
    pub name: Text,
}

/// A backend address from an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    /// The Service it backs.
    pub service: ServiceName,
    /// `endpoints[].zone`.
    pub zone: Option<Text>,
    /// `endpoints[].nodeName`.
    pub node: Option<Text>,
}

/// The indexes.
#[derive(Debug, Default)]
pub struct KubeIndex {
    /// (namespace, name) → the Service's virtual IPs.
    services: HashMap<(String, String), Vec<IpAddr>>,
    service_by_ip: HashMap<IpAddr, ServiceName>,
    /// Whether `service_by_ip` changed since [`KubeIndex::take_service_addresses`].
    services_changed: bool,
    /// (namespace, slice name) → the addresses it lists.
    slices: HashMap<(String, String), Vec<IpAddr>>,
    endpoint_by_ip: HashMap<IpAddr, EndpointInfo>,
    pods: HashMap<Text, Arc<PodInfo>>,
    pod_by_ip: HashMap<IpAddr, Arc<PodInfo>>,
    nodes: HashMap<Text, NodeInfo>,
    node_by_ip: HashMap<IpAddr, Text>,
    /// namespace → ReplicaSet → its owner (kind, name); nested so a lookup borrows.
    replicasets: Owners,
    /// namespace → Job → its owner (kind, name).
    jobs: Owners,
    /// Pod and namespace labels to keep.
    keep_labels: Vec<Text>,
    /// Namespace, node and kind names, shared by the pods that name them.
    strings: Strings,
    /// Node name → (zone, region) from the configuration, over the node's labels.
    topology: HashMap<String, (Option<String>, Option<String>)>,
    /// This node's name, and its place (kept up to date from its Node object).
    local_node: Option<Text>,
    local_place: (Option<Text>, Option<Text>),
    /// This node's place from the configuration, where its labels say nothing.
    fallback_place: (Option<Text>, Option<Text>),
    /// Namespace → its kept labels.
    namespaces: HashMap<String, BTreeMap<String, String>>,
    /// Addresses whose owner (pod or node) changed since the last
    /// [`KubeIndex::take_changed`]: flows to them are attributed again.
    changed: Vec<IpAddr>,
    /// Everything changed (a relist): every flow is attributed again.
    changed_all: bool,
}

/// namespace → owned object → its owner (kind, name).
type Owners = HashMap<Text, HashMap<Text, Option<(Text, Text)>>>;

fn controller(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<(Text, Text)> {
    let refs = meta.owner_references.as_ref()?;
    refs.iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first())
        .map(|r| (Text::from(r.kind.as_str()), Text::from(r.name.as_str())))
}

/// Adds (`Some`) or removes (`None`) one owned object's owner; whether that changed what
/// the index holds.
fn set_owner(
    owners: &mut Owners,
    namespace: &str,
    name: &str,
    owner: Option<Option<(Text, Text)>>,
) -> bool {
    match owner {
        Some(owner) => {
            let m = match owners.get_mut(namespace) {
                Some(m) => m,
                None => owners.entry(namespace.into()).or_default(),
            };
            match m.get_mut(name) {
                Some(held) if *held == owner => false,
                Some(held) => {
                    *held = owner;
                    true
                }
                None => {
                    m.insert(name.into(), owner);
                    true
                }
            }
        }
        None => {
            let Some(m) = owners.get_mut(namespace) else { return false };
            let removed = m.remove(name).is_some();
            if m.is_empty() {
                owners.remove(namespace);
            }
            removed
        }
    }
}

/// (namespace, name) → UID of the objects a relist returned (namespace empty for
/// cluster-scoped kinds): what a sweep keeps. Pods are kept by UID too: a pod deleted and
/// created again under its name (a StatefulSet's) while the watch was down is a new pod.
pub type Listed = StdHashMap<(String, String), String>;

/// The keys of `objects`.
pub fn listed<K: kube::Resource>(objects: &[K]) -> Listed {
    objects.iter().map(listed_key).collect()
}

/// One object's entry in a [`Listed`] map.
pub fn listed_key<K: kube::Resource>(object: &K) -> ((String, String), String) {
    let meta = object.meta();
    let key = (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default());
    (key, meta.uid.clone().unwrap_or_default())
}

/// Drops the objects a relist did not return from a (namespace, name) → addresses map;
/// returns their addresses.
fn sweep_addresses(
    objects: &mut HashMap<(String, String), Vec<IpAddr>>,
    keep: &Listed,
) -> Vec<IpAddr> {
    let mut gone = Vec::new();
    objects.retain(|key, ips| {
        let kept = keep.contains_key(key);
        if !kept {
            gone.append(ips);
        }
        kept
    });
    gone
}

/// Drops the owned objects a relist did not return.
fn sweep_owners(owners: &mut Owners, keep: &Listed) {
    for (namespace, m) in owners.iter_mut() {
        m.retain(|name, _| keep.contains_key(&(namespace.to_string(), name.to_string())));
    }
    owners.retain(|_, m| !m.is_empty());
}

fn text(s: Option<&String>) -> Option<Text> {
    s.map(|s| Text::from(s.as_str()))
}

impl KubeIndex {
    /// An empty index keeping the pod labels named in `keep_labels`.
    pub fn new(keep_labels: Vec<String>) -> Self {
        let keep_labels = keep_labels.iter().map(|k| Text::from(k.as_str())).collect();
        Self { keep_labels, ..Self::default() }
    }

    /// Names the node the agent runs on: [`KubeIndex::local_place`] follows its Node object.
    pub fn with_local_node(mut self, name: &str) -> Self {
        self.local_node = Some(name.into());
        self
    }

    /// This node's place from the configuration file (`node.zone`, `node.region`), used
    /// where its Node object has no topology labels.
    pub fn with_fallback_place(mut self, zone: Option<&str>, region: Option<&str>) -> Self {
        self.fallback_place = (zone.map(Text::from), region.map(Text::from));
        self
    }

    /// This node's zone and region, from its Node object (or the configuration).
    pub fn local_place(&self) -> (Option<&str>, Option<&str>) {
        let (zone, region) = (&self.local_place.0, &self.local_place.1);
        (
            zone.as_deref().or(self.fallback_place.0.as_deref()),
            region.as_deref().or(self.fallback_place.1.as_deref()),
        )
    }

    /// The class of traffic between this node and a peer on `node` in `zone` and `region`
    /// (see [`RemotePeer::class`]).
    pub fn class_of(
        &self,
        node: Option<&Text>,
        zone: Option<&Text>,
        region: Option<&Text>,
    ) -> TrafficClass {
        if node.is_some() && node == self.local_node.as_ref() {
            return TrafficClass::SameHost;
        }
        let (here_zone, here_region) = self.local_place();
        if let (Some(a), Some(b)) = (here_region, region.map(|r| &**r))
            && a != b
        {
            return TrafficClass::CrossRegion;
        }
        match (here_zone, zone.map(|z| &**z)) {
            (Some(a), Some(b)) if a == b => TrafficClass::SameZone,
            (Some(_), Some(_)) => TrafficClass::CrossZone,
            _ => TrafficClass::Unknown,
        }
    }

    /// Zones and regions of nodes from the configuration (`kubernetes.nodes`): what is given
    /// wins over the node's topology labels.
    pub fn with_topology(mut self, nodes: &[crate::config::NodeTopology]) -> Self {
        self.topology =
            nodes.iter().map(|n| (n.name.clone(), (n.zone.clone(), n.region.clone()))).collect();
        self
    }

    /// Adds or updates a pod.
    pub fn apply_pod(&mut self, pod: &Pod) {
        let Some(uid) = pod.metadata.uid.as_deref().map(Text::from) else { return };
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
        let phase = status.and_then(|s| s.phase.as_deref());
        let finished = matches!(phase, Some("Succeeded" | "Failed"));
        let mut ips: Vec<IpAddr> = status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|v| v.iter().filter_map(|p| p.ip.parse().ok()).collect())
            .unwrap_or_default();
        if ips.is_empty()
            && let Some(ip) = status.and_then(|s| s.pod_ip.as_ref()).and_then(|ip| ip.parse().ok())
        {
            ips.push(ip);
        }
        if host_network {
            ips.clear();
        }
        let labels = pod.labels();
        let namespace = self.strings.intern(&pod.namespace().unwrap_or_default());
        let name: Text = pod.name_any().into();
        let owner =
            controller(&pod.metadata).map(|(kind, name)| (self.strings.intern(&kind), name));
        let workload = self.resolve(&namespace, &name, owner.as_ref());
        let node = spec.and_then(|s| s.node_name.as_deref()).map(|n| self.strings.intern(n));
        let peer = self.pod_peer(&namespace, node.as_ref(), &workload);
        let info = Arc::new(PodInfo {
            uid: uid.clone(),
            namespace,
            name,
            node,
            ips,
            host_network,
            owner,
            peer,
            labels: self
                .keep_labels
                .iter()
                .filter_map(|k| labels.get(&**k).map(|v| (k.clone(), Text::from(v.as_str()))))
                .collect(),
            finished,
        });
        if let Some(old) = self.pods.get(&uid) {
            for ip in old.ips.clone() {
                self.release_ip(ip, &uid);
            }
        }
        if !info.finished {
            for ip in &info.ips {
                let previous = self.pod_by_ip.insert(*ip, info.clone());
                if previous.is_none_or(|p| p.uid != uid) {
                    self.changed.push(*ip);
                }
            }
        }
        self.pods.insert(uid, info);
    }

    /// Removes a pod.
    pub fn delete_pod(&mut self, pod: &Pod) {
        let Some(uid) = pod.metadata.uid.as_deref() else { return };
        if let Some(old) = self.pods.remove(uid) {
            for ip in &old.ips {
                self.release_ip(*ip, uid);
            }
        }
    }

    fn release_ip(&mut self, ip: IpAddr, uid: &str) {
        if self.pod_by_ip.get(&ip).is_some_and(|owner| &*owner.uid == uid) {
            self.pod_by_ip.remove(&ip);
            self.changed.push(ip);
        }
    }

    /// A pod's workload, following the owner chain: ReplicaSet → Deployment, Job → CronJob;
    /// StatefulSet, DaemonSet and other owners as they are; a bare pod is its own workload.
    /// An owner not (yet) known stops the chain where it is.
    fn resolve(&self, namespace: &str, name: &Text, owner: Option<&(Text, Text)>) -> Workload {
        let Some((kind, owner_name)) = owner else {
            return Workload { kind: Text::from("Pod"), name: name.clone() };
        };
        let owners = match &**kind {
            "ReplicaSet" => &self.replicasets,
            "Job" => &self.jobs,
            _ => return Workload { kind: kind.clone(), name: owner_name.clone() },
        };
        match owners.get(namespace).and_then(|m| m.get(&**owner_name)) {
            Some(Some((kind, name))) => Workload { kind: kind.clone(), name: name.clone() },
            _ => Workload { kind: kind.clone(), name: owner_name.clone() },
        }
    }

    /// Resolves again the workload of the pods owned by a `kind` (`ReplicaSet`, `Job`) in
    /// `namespace` named `name` — every such pod when `name` is `None` (a relist). Owners
    /// change rarely (a rollout's new ReplicaSet), so a pass over the pods is cheap enough.
    fn reresolve(&mut self, kind: &str, namespace: Option<&str>, name: Option<&str>) {
        let stale: Vec<Arc<PodInfo>> = self
            .pods
            .values()
            .filter(|p| {
                p.owner.as_ref().is_some_and(|(k, n)| {
                    &**k == kind
                        && namespace.is_none_or(|ns| *p.namespace == *ns)
                        && name.is_none_or(|want| **n == *want)
                })
            })
            .cloned()
            .collect();
        for pod in stale {
            let workload = self.resolve(&pod.namespace, &pod.name, pod.owner.as_ref());
            if workload != pod.workload() {
                let peer = self.pod_peer(&pod.namespace, pod.node.as_ref(), &workload);
                self.replace_pod(Arc::new(PodInfo { peer, ..(*pod).clone() }));
                // The pod's own flows (the local side, by cgroup) are labelled again too.
                self.changed_all = true;
            }
        }
    }

    /// The remote-end view of a pod: its workload and its node's place.
    fn pod_peer(
        &self,
        namespace: &Text,
        node: Option<&Text>,
        workload: &Workload,
    ) -> Arc<RemotePeer> {
        let place = node.and_then(|n| self.nodes.get(&**n));
        let (zone, region) =
            (place.and_then(|p| p.zone.clone()), place.and_then(|p| p.region.clone()));
        Arc::new(RemotePeer {
            namespace: namespace.clone(),
            workload: workload.name.clone(),
            kind: workload.kind.clone(),
            node: node.cloned(),
            class: self.class_of(node, zone.as_ref(), region.as_ref()),
            zone,
            region,
        })
    }

    /// Puts `fresh` in place of the pod with its UID, in both indexes.
    fn replace_pod(&mut self, fresh: Arc<PodInfo>) {
        for ip in &fresh.ips {
            if let Some(slot) = self.pod_by_ip.get_mut(ip)
                && slot.uid == fresh.uid
            {
                *slot = fresh.clone();
                self.changed.push(*ip);
            }
        }
        self.pods.insert(fresh.uid.clone(), fresh);
    }

    /// Rebuilds the remote-end view of the pods on `node` (every pod when `None`) after its
    /// place changed. Nodes change place rarely; heartbeats do not come here.
    fn refresh_pods_on(&mut self, node: Option<&str>) {
        let on: Vec<Arc<PodInfo>> = self
            .pods
            .values()
            .filter(|p| node.is_none_or(|n| p.node.as_deref() == Some(n)))
            .cloned()
            .collect();
        for pod in on {
            let peer = self.pod_peer(&pod.namespace, pod.node.as_ref(), &pod.workload());
            if peer != pod.peer {
                self.replace_pod(Arc::new(PodInfo { peer, ..(*pod).clone() }));
            }
        }
    }

    /// Replaces every pod with `pods` (what a relist returns, at once).
    pub fn replace_pods(&mut self, pods: &[Pod]) {
        for p in pods {
            self.apply_pod(p);
        }
        self.sweep_pods(&listed(pods));
    }

    /// Ends a relist of pods (each applied as it arrived): removes the pods it did not
    /// return (deleted while the watch was down).
    pub fn sweep_pods(&mut self, keep: &Listed) {
        let gone: Vec<Arc<PodInfo>> = self
            .pods
            .values()
            .filter(|p| {
                let key = (p.namespace.to_string(), p.name.to_string());
                keep.get(&key).is_none_or(|uid| *uid != *p.uid)
            })
            .cloned()
            .collect();
        for pod in gone {
            self.pods.remove(&pod.uid);
            for ip in &pod.ips {
                self.release_ip(*ip, &pod.uid);
            }
        }
        self.changed_all = true;
    }

    /// Adds or updates a node.
    pub fn apply_node(&mut self, node: &Node) {
        if self.put_node(node) {
            self.node_moved(&node.name_any());
        }
    }

    /// Rebuilds the remote views that depend on node `name`'s place: its pods', or, when it
    /// is this node, every pod's and node's (each class has this node at one end).
    fn node_moved(&mut self, name: &str) {
        if self.local_node.as_deref() == Some(name) {
            self.refresh_node_peers();
            self.refresh_pods_on(None);
        } else {
            self.refresh_pods_on(Some(name));
        }
    }

    /// Rebuilds every node's remote-end view (after this node's place changed).
    fn refresh_node_peers(&mut self) {
        let peers: Vec<(Text, Arc<RemotePeer>)> = self
            .nodes
            .iter()
            .map(|(name, n)| (name.clone(), self.node_peer(name, n.zone.clone(), n.region.clone())))
            .collect();
        for (name, peer) in peers {
            if let Some(node) = self.nodes.get_mut(&name) {
                node.peer = peer;
            }
        }
    }

    /// The remote-end view of a node.
    fn node_peer(&self, name: &Text, zone: Option<Text>, region: Option<Text>) -> Arc<RemotePeer> {
        Arc::new(RemotePeer {
            namespace: Text::from(""),
            workload: name.clone(),
            kind: Text::from("Node"),
            node: Some(name.clone()),
            class: self.class_of(Some(name), zone.as_ref(), region.as_ref()),
            zone,
            region,
        })
    }

    /// Adds or updates a node without touching its pods; whether its place changed (or it is
    /// new).
    fn put_node(&mut self, node: &Node) -> bool {
        let name: Text = node.name_any().into();
        let labels = node.labels();
        let label = |keys: [&str; 2]| keys.iter().find_map(|k| text(labels.get(*k)));
        let addresses: Vec<IpAddr> = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .map(|a| {
                a.iter()
                    .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
                    .filter_map(|a| a.address.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let configured = self.topology.get(&*name);
        let zone = configured.and_then(|c| text(c.0.as_ref())).or_else(|| label(ZONE_LABELS));
        let region = configured.and_then(|c| text(c.1.as_ref())).or_else(|| label(REGION_LABELS));
        let old = self.nodes.get(&name);
        let moved = old.is_none_or(|old| old.zone != zone || old.region != region);
        if old.is_some() && moved {
            // Every flow to a pod on this node changes class.
            self.changed_all = true;
        }
        if old.is_some_and(|old| old.addresses == addresses) && !moved {
            return false; // a heartbeat
        }
        self.delete_node_named(&name);
        for ip in &addresses {
            self.node_by_ip.insert(*ip, name.clone());
            self.changed.push(*ip);
        }
        if self.local_node.as_ref() == Some(&name) {
            self.local_place = (zone.clone(), region.clone());
        }
        let peer = self.node_peer(&name, zone.clone(), region.clone());
        self.nodes.insert(name, NodeInfo { zone, region, addresses, peer });
        moved
    }

    /// Removes a node.
    pub fn delete_node(&mut self, node: &Node) {
        let name = node.name_any();
        self.delete_node_named(&name);
        self.node_moved(&name);
    }

    fn delete_node_named(&mut self, name: &str) {
        if let Some(old) = self.nodes.remove(name) {
            for ip in old.addresses {
                if self.node_by_ip.get(&ip).is_some_and(|n| &**n == name) {
                    self.node_by_ip.remove(&ip);
                    self.changed.push(ip);
                }
            }
        }
        if self.local_node.as_deref() == Some(name) {
            self.local_place = (None, None);
        }
    }

    /// Replaces every node.
    pub fn replace_nodes(&mut self, nodes: &[Node]) {
        for n in nodes {
            self.list_node(n);
        }
        self.sweep_nodes(&listed(nodes));
    }

    /// A node a relist returned: added or updated, its pods refreshed at the sweep.
    pub fn list_node(&mut self, node: &Node) {
        self.put_node(node);
    }

    /// Ends a relist of nodes: removes those it did not return, then refreshes every pod's
    /// and node's remote view once.
    pub fn sweep_nodes(&mut self, keep: &Listed) {
        let gone: Vec<Text> = self
            .nodes
            .keys()
            .filter(|n| !keep.contains_key(&(String::new(), n.to_string())))
            .cloned()
            .collect();
        for name in gone {
            self.delete_node_named(&name);
        }
        self.changed_all = true;
        self.refresh_node_peers();
        self.refresh_pods_on(None);
    }

    /// Adds, updates (`present`) or removes a ReplicaSet's owner.
    pub fn apply_replicaset(&mut self, rs: &ReplicaSet, present: bool) {
        let owner = present.then(|| controller(&rs.metadata));
        let (namespace, name) = (rs.namespace().unwrap_or_default(), rs.name_any());
        if set_owner(&mut self.replicasets, &namespace, &name, owner) {
            self.reresolve("ReplicaSet", Some(&namespace), Some(&name));
        }
    }

    /// Adds, updates or removes a Job's owner.
    pub fn apply_job(&mut self, job: &Job, present: bool) {
        let owner = present.then(|| controller(&job.metadata));
        let (namespace, name) = (job.namespace().unwrap_or_default(), job.name_any());
        if set_owner(&mut self.jobs, &namespace, &name, owner) {
            self.reresolve("Job", Some(&namespace), Some(&name));
        }
    }

    /// Adds, updates or removes a namespace's kept labels.
    pub fn apply_namespace(&mut self, ns: &Namespace, present: bool) {
        let name = ns.name_any();
        if !present {
            self.namespaces.remove(&name);
            return;
        }
        let labels = ns.labels();
        let kept = self
            .keep_labels
            .iter()
            .filter_map(|k| labels.get(&**k).map(|v| (k.to_string(), v.clone())))
            .collect();
        self.namespaces.insert(name, kept);
    }

    /// Replaces every namespace.
    pub fn replace_namespaces(&mut self, all: &[Namespace]) {
        for n in all {
            self.apply_namespace(n, true);
        }
        self.sweep_namespaces(&listed(all));
    }

    /// Ends a relist of namespaces.
    pub fn sweep_namespaces(&mut self, keep: &Listed) {
        self.namespaces.retain(|name, _| keep.contains_key(&(String::new(), name.clone())));
    }

    /// A kept label of a pod, else of its namespace.
    pub fn label<'a>(&'a self, pod: &'a PodInfo, key: &str) -> Option<&'a str> {
        pod.label(key).or_else(|| {
            self.namespaces.get(&*pod.namespace).and_then(|l| l.get(key)).map(String::as_str)
        })
    }

    /// Replaces every ReplicaSet.
    pub fn replace_replicasets(&mut self, all: &[ReplicaSet]) {
        for rs in all {
            self.list_replicaset(rs);
        }
        self.sweep_replicasets(&listed(all));
    }

    /// A ReplicaSet a relist returned; its pods are resolved again at the sweep.
    pub fn list_replicaset(&mut self, rs: &ReplicaSet) {
        let (namespace, name) = (rs.namespace().unwrap_or_default(), rs.name_any());
        set_owner(&mut self.replicasets, &namespace, &name, Some(controller(&rs.metadata)));
    }

    /// Ends a relist of ReplicaSets: drops those it did not return, resolves every pod's
    /// workload again once.
    pub fn sweep_replicasets(&mut self, keep: &Listed) {
        sweep_owners(&mut self.replicasets, keep);
        self.reresolve("ReplicaSet", None, None);
    }

    /// Replaces every Job.
    pub fn replace_jobs(&mut self, all: &[Job]) {
        for j in all {
            self.list_job(j);
        }
        self.sweep_jobs(&listed(all));
    }

    /// A Job a relist returned.
    pub fn list_job(&mut self, job: &Job) {
        let (namespace, name) = (job.namespace().unwrap_or_default(), job.name_any());
        set_owner(&mut self.jobs, &namespace, &name, Some(controller(&job.metadata)));
    }

    /// Ends a relist of Jobs.
    pub fn sweep_jobs(&mut self, keep: &Listed) {
        sweep_owners(&mut self.jobs, keep);
        self.reresolve("Job", None, None);
    }

    /// Adds or updates (`present`) or removes a Service's virtual IPs (headless Services,
    /// `None`, have none).
    pub fn apply_service(&mut self, service: &Service, present: bool) {
        let key = (service.namespace().unwrap_or_default(), service.name_any());
        if let Some(old) = self.services.remove(&key) {
            for ip in old {
                self.service_by_ip.remove(&ip);
                self.changed.push(ip);
            }
            self.services_changed = true;
        }
        if !present {
            return;
        }
        let spec = service.spec.as_ref();
        let mut ips: Vec<IpAddr> = spec
            .and_then(|s| s.cluster_ips.as_ref())
            .map(|v| v.iter().filter_map(|ip| ip.parse().ok()).collect())
            .unwrap_or_default();
        if ips.is_empty()
            && let Some(ip) = spec.and_then(|s| s.cluster_ip.as_ref()).and_then(|i| i.parse().ok())
        {
            ips.push(ip);
        }
        for ip in &ips {
            let name =
                ServiceName { namespace: key.0.as_str().into(), name: key.1.as_str().into() };
            self.service_by_ip.insert(ip.to_canonical(), name);
            self.changed.push(*ip);
        }
        self.services_changed |= !ips.is_empty();
        self.services.insert(key, ips);
    }

    /// Replaces every Service.
    pub fn replace_services(&mut self, all: &[Service]) {
        for s in all {
            self.apply_service(s, true);
        }
        self.sweep_services(&listed(all));
    }

    /// Ends a relist of Services.
    pub fn sweep_services(&mut self, keep: &Listed) {
        for ip in sweep_addresses(&mut self.services, keep) {
            self.service_by_ip.remove(&ip.to_canonical());
            self.changed.push(ip);
        }
        self.services_changed = true;
        self.changed_all = true;
    }

    /// The Service whose virtual IP `ip` is.
    pub fn service_by_ip(&self, ip: IpAddr) -> Option<&ServiceName> {
        self.service_by_ip.get(&ip.to_canonical())
    }

    /// Every Service virtual IP, when they changed since the last call.
    pub fn take_service_addresses(&mut self) -> Option<std::collections::HashSet<IpAddr>> {
        std::mem::take(&mut self.services_changed)
            .then(|| self.service_by_ip.keys().copied().collect())
    }

    /// Adds, updates or removes an EndpointSlice's addresses.
    pub fn apply_endpoint_slice(&mut self, slice: &EndpointSlice, present: bool) {
        let key = (slice.namespace().unwrap_or_default(), slice.name_any());
        if let Some(old) = self.slices.remove(&key) {
            for ip in old {
                self.endpoint_by_ip.remove(&ip);
            }
        }
        if !present {
            return;
        }
        let Some(service) = slice.labels().get("kubernetes.io/service-name").cloned() else {
            return;
        };
        let service = ServiceName { namespace: key.0.as_str().into(), name: service.into() };
        let mut ips = Vec::new();
        for endpoint in slice.endpoints.iter().flatten() {
            for ip in endpoint.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
                let ip = ip.to_canonical();
                self.endpoint_by_ip.insert(
                    ip,
                    EndpointInfo {
                        service: service.clone(),
                        zone: text(endpoint.zone.as_ref()),
                        node: text(endpoint.node_name.as_ref()),
                    },
                );
                ips.push(ip);
            }
        }
        self.slices.insert(key, ips);
    }

    /// Replaces every EndpointSlice.
    pub fn replace_endpoint_slices(&mut self, all: &[EndpointSlice]) {
        for s in all {
            self.apply_endpoint_slice(s, true);
        }
        self.sweep_endpoint_slices(&listed(all));
    }

    /// Ends a relist of EndpointSlices.
    pub fn sweep_endpoint_slices(&mut self, keep: &Listed) {
        for ip in sweep_addresses(&mut self.slices, keep) {
            self.endpoint_by_ip.remove(&ip);
        }
    }

    /// The EndpointSlice entry of a backend address.
    pub fn endpoint_by_ip(&self, ip: IpAddr) -> Option<&EndpointInfo> {
        self.endpoint_by_ip.get(&ip.to_canonical())
    }

    /// A pod by UID.
    pub fn pod(&self, uid: &str) -> Option<&PodInfo> {
        self.pods.get(uid).map(|p| &**p)
    }

    /// The pod that owns `ip` now (hostNetwork pods own none).
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<&PodInfo> {
        self.pod_by_ip.get(&ip.to_canonical()).map(|p| &**p)
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name)
    }

    /// The node that has `ip` as InternalIP or ExternalIP.
    pub fn node_by_ip(&self, ip: IpAddr) -> Option<(&Text, &NodeInfo)> {
        let name = self.node_by_ip.get(&ip.to_canonical())?;
        self.nodes.get(name).map(|n| (name, n))
    }

    /// The addresses whose owner changed since the last call, or `None` when everything did
    /// (a relist, a node's zone).
    pub fn take_changed(&mut self) -> Option<Vec<IpAddr>> {
        let all = std::mem::take(&mut self.changed_all);
        let changed = std::mem::take(&mut self.changed);
        if all { None } else { Some(changed) }
    }

    /// (pods, nodes, pod IPs) held: for the self-metrics and the churn test.
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.pods.len(), self.nodes.len(), self.pod_by_ip.len())
    }

    /// (Service virtual IPs, EndpointSlice addresses) held.
    pub fn service_sizes(&self) -> (usize, usize) {
        (self.service_by_ip.len(), self.endpoint_by_ip.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeTopology;

    fn nodes() -> Vec<Node> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/kubernetes/nodes.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn configured_topology_wins_over_node_labels() {
        let overrides = [
            NodeTopology {
                name: "ip-10-0-2-20.ec2.internal".into(),
                zone: Some("use1-az6".into()),
                region: None,
            },
            NodeTopology { name: "absent".into(), zone: Some("x".into()), region: None },
        ];
        let mut index = KubeIndex::new(Vec::new()).with_topology(&overrides);
        index.replace_nodes(&nodes());
        let n2 = index.node("ip-10-0-2-20.ec2.internal").unwrap();
        assert_eq!(n2.zone.as_deref(), Some("use1-az6"), "the configured zone");
        assert_eq!(n2.region.as_deref(), Some("us-east-1"), "the label where none is configured");
        let n1 = index.node("ip-10-0-1-10.ec2.internal").unwrap();
        assert_eq!(n1.zone.as_deref(), Some("us-east-1a"), "labels where nothing is configured");
    }

    fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> Vec<T> {
        let path =
            format!("{}/../tests/fixtures/kubernetes/{name}.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn late_owners_and_moved_nodes_reach_the_pods_remote_view() {
        let mut index = KubeIndex::new(Vec::new()).with_local_node("ip-10-0-1-10.ec2.internal");
        let pods: Vec<Pod> = fixture("pods");
        index.replace_pods(&pods);
        let db: IpAddr = "10.0.2.102".parse().unwrap();
        let api: IpAddr = "10.0.1.101".parse().unwrap();
        // Before ReplicaSets and Nodes are known: the ReplicaSet's name, no zone.
        let peer = index.pod_by_ip(api).unwrap().peer.clone();
        assert_eq!((&*peer.kind, &*peer.workload), ("ReplicaSet", "api-7d9f8c6b5"));
        assert_eq!(index.pod_by_ip(db).unwrap().peer.zone, None);
        index.take_changed();
        index.replace_replicasets(&fixture::<ReplicaSet>("replicasets"));
        let peer = index.pod_by_ip(api).unwrap().peer.clone();
        assert_eq!((&*peer.kind, &*peer.workload), ("Deployment", "api"), "resolved again");
        assert!(index.take_changed().is_none(), "every flow relabels: its local side too");
        index.replace_nodes(&nodes());
        assert_eq!(index.pod_by_ip(db).unwrap().peer.zone.as_deref(), Some("us-east-1b"));
        assert_eq!(index.local_place(), (Some("us-east-1a"), Some("us-east-1")));
        // db-0's node moves zone; a heartbeat (same node again) changes nothing.
        let mut moved = nodes()[1].clone();
        moved
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("topology.kubernetes.io/zone".into(), "us-east-1d".into());
        let before = index.pod_by_ip(db).unwrap().peer.clone();
        index.apply_node(&nodes()[1]);
        assert!(Arc::ptr_eq(&before, &index.pod_by_ip(db).unwrap().peer), "heartbeat: untouched");
        index.apply_node(&moved);
        assert_eq!(index.pod_by_ip(db).unwrap().peer.zone.as_deref(), Some("us-east-1d"));
        assert_eq!(
            index.node_by_ip("10.0.2.20".parse().unwrap()).unwrap().1.peer.zone.as_deref(),
            Some("us-east-1d")
        );
        let class = |index: &KubeIndex, ip: IpAddr| index.pod_by_ip(ip).unwrap().peer.class;
        assert_eq!(class(&index, api), TrafficClass::SameHost, "api runs on this node");
        assert_eq!(class(&index, db), TrafficClass::CrossZone);
        // This node moves into db-0's zone: every peer's class follows.
        let mut here = nodes()[0].clone();
        here.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("topology.kubernetes.io/zone".into(), "us-east-1d".into());
        index.apply_node(&here);
        assert_eq!(class(&index, db), TrafficClass::SameZone);
        let node_2 = index.node_by_ip("10.0.2.20".parse().unwrap()).unwrap().1;
        assert_eq!(node_2.peer.class, TrafficClass::SameZone, "node peers too");
        index.delete_node(&moved);
        assert_eq!(index.pod_by_ip(db).unwrap().peer.zone, None, "its node is gone: no zone");
        // This node's Node object goes: no place here, so no class can be said for pods on
        // other nodes, or for the other nodes, any more.
        index.apply_node(&nodes()[1]);
        assert_eq!(class(&index, db), TrafficClass::CrossZone);
        index.delete_node(&here);
        assert_eq!(class(&index, db), TrafficClass::Unknown, "pods elsewhere");
        let node_2 = index.node_by_ip("10.0.2.20".parse().unwrap()).unwrap().1;
        assert_eq!(node_2.peer.class, TrafficClass::Unknown, "other nodes");
    }
}
