//! What the agent keeps of the cluster: small projections of Pods, Nodes, ReplicaSets and
//! Jobs (never whole objects: 10k pods must fit in tens of MB), indexed by what attribution
//! asks: pod UID (the local side, from cgroups), pod IP and node IP (the remote side), and
//! owner (the workload).
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
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

use k8s_openapi::api::{
    apps::v1::ReplicaSet,
    batch::v1::Job,
    core::v1::{Namespace, Node, Pod, Service},
    discovery::v1::EndpointSlice,
};
use kube::ResourceExt;

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
    pub kind: String,
    /// Its name.
    pub name: String,
}

/// A pod, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Node it runs on.
    pub node: Option<String>,
    /// Pod IPs (v4 and v6); empty for hostNetwork pods (their IPs are the node's).
    pub ips: Vec<IpAddr>,
    /// Whether it shares the node's network namespace.
    pub host_network: bool,
    /// Its controller owner reference (kind, name).
    pub owner: Option<(String, String)>,
    /// The labels kept (version and chargeback labels asked for in the configuration).
    pub labels: BTreeMap<String, String>,
    /// Whether it has finished (Succeeded or Failed).
    pub finished: bool,
}

/// A node, as kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// Zone label.
    pub zone: Option<String>,
    /// Region label.
    pub region: Option<String>,
    /// InternalIP and ExternalIP addresses.
    pub addresses: Vec<IpAddr>,
}

/// A Service, as its virtual IPs name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceName {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// A backend address from an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    /// The Service it backs.
    pub service: ServiceName,
    /// `endpoints[].zone`.
    pub zone: Option<String>,
    /// `endpoints[].nodeName`.
    pub node: Option<String>,
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
    pods: HashMap<String, PodInfo>,
    pod_by_ip: HashMap<IpAddr, String>,
    nodes: HashMap<String, NodeInfo>,
    node_by_ip: HashMap<IpAddr, String>,
    /// (namespace, ReplicaSet) → its owner (kind, name).
    replicasets: HashMap<(String, String), Option<(String, String)>>,
    /// (namespace, Job) → its owner (kind, name).
    jobs: HashMap<(String, String), Option<(String, String)>>,
    /// Pod and namespace labels to keep.
    keep_labels: Vec<String>,
    /// Node name → (zone, region) from the configuration, over the node's labels.
    topology: HashMap<String, (Option<String>, Option<String>)>,
    /// Namespace → its kept labels.
    namespaces: HashMap<String, BTreeMap<String, String>>,
    /// Addresses whose owner (pod or node) changed since the last
    /// [`KubeIndex::take_changed`]: flows to them are attributed again.
    changed: Vec<IpAddr>,
    /// Everything changed (a relist): every flow is attributed again.
    changed_all: bool,
}

fn controller(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<(String, String)> {
    let refs = meta.owner_references.as_ref()?;
    refs.iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first())
        .map(|r| (r.kind.clone(), r.name.clone()))
}

impl KubeIndex {
    /// An empty index keeping the pod labels named in `keep_labels`.
    pub fn new(keep_labels: Vec<String>) -> Self {
        Self { keep_labels, ..Self::default() }
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
        let Some(uid) = pod.metadata.uid.clone() else { return };
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
        let info = PodInfo {
            namespace: pod.namespace().unwrap_or_default(),
            name: pod.name_any(),
            node: spec.and_then(|s| s.node_name.clone()),
            ips,
            host_network,
            owner: controller(&pod.metadata),
            labels: self
                .keep_labels
                .iter()
                .filter_map(|k| labels.get(k).map(|v| (k.clone(), v.clone())))
                .collect(),
            finished,
        };
        if let Some(old) = self.pods.get(&uid) {
            for ip in old.ips.clone() {
                self.release_ip(ip, &uid);
            }
        }
        if !info.finished {
            for ip in &info.ips {
                if self.pod_by_ip.insert(*ip, uid.clone()).as_ref() != Some(&uid) {
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
            for ip in old.ips {
                self.release_ip(ip, uid);
            }
        }
    }

    fn release_ip(&mut self, ip: IpAddr, uid: &str) {
        if self.pod_by_ip.get(&ip).is_some_and(|owner| owner == uid) {
            self.pod_by_ip.remove(&ip);
            self.changed.push(ip);
        }
    }

    /// Replaces every pod with `pods` (a relist after the watch was lost).
    pub fn replace_pods(&mut self, pods: &[Pod]) {
        self.pods.clear();
        self.pod_by_ip.clear();
        self.changed_all = true;
        for p in pods {
            self.apply_pod(p);
        }
    }

    /// Adds or updates a node.
    pub fn apply_node(&mut self, node: &Node) {
        let name = node.name_any();
        let labels = node.labels();
        let label = |keys: [&str; 2]| keys.iter().find_map(|k| labels.get(*k).cloned());
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
        let configured = self.topology.get(&name);
        let zone = configured.and_then(|c| c.0.clone()).or_else(|| label(ZONE_LABELS));
        let region = configured.and_then(|c| c.1.clone()).or_else(|| label(REGION_LABELS));
        if self.nodes.get(&name).is_some_and(|old| old.zone != zone || old.region != region) {
            // Every flow to a pod on this node changes class.
            self.changed_all = true;
        }
        self.delete_node_named(&name);
        for ip in &addresses {
            self.node_by_ip.insert(*ip, name.clone());
            self.changed.push(*ip);
        }
        self.nodes.insert(name, NodeInfo { zone, region, addresses });
    }

    /// Removes a node.
    pub fn delete_node(&mut self, node: &Node) {
        self.delete_node_named(&node.name_any());
    }

    fn delete_node_named(&mut self, name: &str) {
        if let Some(old) = self.nodes.remove(name) {
            for ip in old.addresses {
                if self.node_by_ip.get(&ip).is_some_and(|n| n == name) {
                    self.node_by_ip.remove(&ip);
                    self.changed.push(ip);
                }
            }
        }
    }

    /// Replaces every node.
    pub fn replace_nodes(&mut self, nodes: &[Node]) {
        self.nodes.clear();
        self.node_by_ip.clear();
        self.changed_all = true;
        for n in nodes {
            self.apply_node(n);
        }
    }

    /// Adds, updates (`Some`) or removes (`None`) a ReplicaSet's owner.
    pub fn apply_replicaset(&mut self, rs: &ReplicaSet, present: bool) {
        let key = (rs.namespace().unwrap_or_default(), rs.name_any());
        if present {
            self.replicasets.insert(key, controller(&rs.metadata));
        } else {
            self.replicasets.remove(&key);
        }
    }

    /// Adds, updates or removes a Job's owner.
    pub fn apply_job(&mut self, job: &Job, present: bool) {
        let key = (job.namespace().unwrap_or_default(), job.name_any());
        if present {
            self.jobs.insert(key, controller(&job.metadata));
        } else {
            self.jobs.remove(&key);
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
            .filter_map(|k| labels.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        self.namespaces.insert(name, kept);
    }

    /// Replaces every namespace.
    pub fn replace_namespaces(&mut self, all: &[Namespace]) {
        self.namespaces.clear();
        for n in all {
            self.apply_namespace(n, true);
        }
    }

    /// A kept label of a pod, else of its namespace.
    pub fn label<'a>(&'a self, pod: &'a PodInfo, key: &str) -> Option<&'a str> {
        pod.labels
            .get(key)
            .or_else(|| self.namespaces.get(&pod.namespace).and_then(|l| l.get(key)))
            .map(String::as_str)
    }

    /// Replaces every ReplicaSet.
    pub fn replace_replicasets(&mut self, all: &[ReplicaSet]) {
        self.replicasets.clear();
        for rs in all {
            self.apply_replicaset(rs, true);
        }
    }

    /// Replaces every Job.
    pub fn replace_jobs(&mut self, all: &[Job]) {
        self.jobs.clear();
        for j in all {
            self.apply_job(j, true);
        }
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
            let name = ServiceName { namespace: key.0.clone(), name: key.1.clone() };
            self.service_by_ip.insert(ip.to_canonical(), name);
            self.changed.push(*ip);
        }
        self.services_changed |= !ips.is_empty();
        self.services.insert(key, ips);
    }

    /// Replaces every Service.
    pub fn replace_services(&mut self, all: &[Service]) {
        self.services.clear();
        self.service_by_ip.clear();
        self.services_changed = true;
        self.changed_all = true;
        for s in all {
            self.apply_service(s, true);
        }
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
        let service = ServiceName { namespace: key.0.clone(), name: service };
        let mut ips = Vec::new();
        for endpoint in slice.endpoints.iter().flatten() {
            for ip in endpoint.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
                let ip = ip.to_canonical();
                self.endpoint_by_ip.insert(
                    ip,
                    EndpointInfo {
                        service: service.clone(),
                        zone: endpoint.zone.clone(),
                        node: endpoint.node_name.clone(),
                    },
                );
                ips.push(ip);
            }
        }
        self.slices.insert(key, ips);
    }

    /// Replaces every EndpointSlice.
    pub fn replace_endpoint_slices(&mut self, all: &[EndpointSlice]) {
        self.slices.clear();
        self.endpoint_by_ip.clear();
        for s in all {
            self.apply_endpoint_slice(s, true);
        }
    }

    /// The EndpointSlice entry of a backend address.
    pub fn endpoint_by_ip(&self, ip: IpAddr) -> Option<&EndpointInfo> {
        self.endpoint_by_ip.get(&ip.to_canonical())
    }

    /// A pod by UID.
    pub fn pod(&self, uid: &str) -> Option<&PodInfo> {
        self.pods.get(uid)
    }

    /// The pod that owns `ip` now (hostNetwork pods own none).
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<&PodInfo> {
        self.pods.get(self.pod_by_ip.get(&ip.to_canonical())?)
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name)
    }

    /// The node that has `ip` as InternalIP or ExternalIP.
    pub fn node_by_ip(&self, ip: IpAddr) -> Option<(&str, &NodeInfo)> {
        let name = self.node_by_ip.get(&ip.to_canonical())?;
        self.nodes.get(name).map(|n| (name.as_str(), n))
    }

    /// The workload of a pod, following the owner chain: ReplicaSet → Deployment,
    /// Job → CronJob; StatefulSet, DaemonSet and other owners as they are; a bare pod is its
    /// own workload. An owner not (yet) known stops the chain where it is.
    pub fn workload(&self, pod: &PodInfo) -> Workload {
        let Some((kind, name)) = pod.owner.clone() else {
            return Workload { kind: "Pod".into(), name: pod.name.clone() };
        };
        let up = match kind.as_str() {
            "ReplicaSet" => self.replicasets.get(&(pod.namespace.clone(), name.clone())),
            "Job" => self.jobs.get(&(pod.namespace.clone(), name.clone())),
            _ => None,
        };
        match up {
            Some(Some((kind, name))) => Workload { kind: kind.clone(), name: name.clone() },
            _ => Workload { kind, name },
        }
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
}
