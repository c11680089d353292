//! Kubernetes attribution: which pod and workload a cgroup belongs to ([`cgroup_path`]), and
//! what the cluster says about pods, nodes, owners and Services ([`index`], filled by the
//! watches in [`watch`]); which backend served a connection to a Service ([`conntrack`]).

pub mod cgroup_path;
pub mod conntrack;
pub mod index;
pub mod watch;

use std::{
    net::IpAddr,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use tracing::warn;

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};

use self::{
    cgroup_path::pod_of,
    conntrack::{Connection, Conntrack},
    index::{KubeIndex, Text},
    watch::SharedIndex,
};
use crate::classify::TrafficClass;

/// Default pod label holding a workload's version.
pub const DEFAULT_VERSION_LABEL: &str = "app.kubernetes.io/version";

/// The local side of a flow in Kubernetes terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPod {
    /// Namespace.
    pub namespace: String,
    /// Workload name (Deployment, StatefulSet, …; the pod itself when bare).
    pub workload: String,
    /// Workload kind.
    pub kind: String,
    /// Value of the version label, empty when absent.
    pub version: String,
    /// Values of the chargeback labels, in [`KubeAttribution::chargeback`] order (pod label,
    /// else namespace label, else empty).
    pub chargeback: Vec<String>,
}

/// What a cgroup is, in Kubernetes terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupIdentity {
    /// Not a pod's cgroup (a systemd unit, the root, …).
    NotAPod,
    /// A pod the index does not know (yet): not synced, or deleted before it was seen.
    UnknownPod,
    /// A known pod.
    Pod(LocalPod),
}

/// The other end of a flow, when it is a pod, a node or a Service of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePeer {
    /// Namespace (empty for a node).
    pub namespace: Text,
    /// Workload name, or the node's name.
    pub workload: Text,
    /// Workload kind, or `Node`.
    pub kind: Text,
    /// The node it runs on (itself for a node).
    pub node: Option<Text>,
    /// That node's zone.
    pub zone: Option<Text>,
    /// That node's region.
    pub region: Option<Text>,
    /// The class of traffic between this node and it, from both ends' nodes: same node
    /// (`same_host`), same zone, cross zone, cross region; `unknown` when a zone is not
    /// known — never a guess. Computed when the peer is built (the index rebuilds peers when
    /// a node's place changes), not per flow.
    pub class: TrafficClass,
}

/// How flows to Service addresses were resolved, by outcome (`egressor_kubernetes_service_lookups_total`).
#[derive(Debug, Default)]
pub struct ServiceLookups {
    /// Counts in [`ServiceLookup`] order.
    pub counts: [AtomicU64; SERVICE_LOOKUP_RESULTS.len()],
}

/// How one flow to a Service address was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServiceLookup {
    /// Conntrack named the backend.
    Backend,
    /// Conntrack shows no NAT: the reply came from the Service address itself.
    NoNat,
    /// Conntrack has no such entry.
    NotFound,
    /// Conntrack could not be asked (the lookup failed, or the socket could not be opened
    /// at start; both logged).
    Error,
    /// The flow has no connection tuple: its Service was not yet in the kernel's map.
    NoTuple,
}

/// The `result` label values of [`ServiceLookups`], in [`ServiceLookup`] order.
pub const SERVICE_LOOKUP_RESULTS: [&str; 5] =
    ["backend", "no_nat", "not_found", "error", "no_tuple"];

impl ServiceLookups {
    /// Counts one outcome; returns how many of that outcome there have been.
    fn count(&self, result: ServiceLookup) -> u64 {
        self.counts[result as usize].fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Attribution from the Kubernetes index.
#[derive(Debug, Clone)]
pub struct KubeAttribution {
    /// The index the watches fill.
    pub index: SharedIndex,
    /// The node's conntrack table, where the backend of a connection to a Service is found;
    /// `None` when it cannot be asked (flows to Services are then `unknown`).
    pub conntrack: Option<Arc<Mutex<Conntrack>>>,
    /// Outcomes of Service lookups.
    pub service_lookups: Arc<ServiceLookups>,
    /// The pod label holding the version.
    pub version_label: String,
    /// Chargeback label keys (`--kubernetes.labels`), in order.
    pub chargeback: Vec<String>,
}

/// Longest chargeback label value kept (longer ones are cut).
pub const MAX_CHARGEBACK_VALUE: usize = 128;

impl KubeAttribution {
    /// What the cgroup at `path` (relative to the cgroup2 root) belongs to.
    pub fn cgroup(&self, path: &str) -> CgroupIdentity {
        let Some(pod) = pod_of(path) else { return CgroupIdentity::NotAPod };
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        let Some(info) = index.pod(&pod.uid) else { return CgroupIdentity::UnknownPod };
        let workload = info.workload();
        CgroupIdentity::Pod(LocalPod {
            namespace: info.namespace.to_string(),
            workload: workload.name.to_string(),
            kind: workload.kind.to_string(),
            version: info.label(&self.version_label).unwrap_or_default().to_owned(),
            chargeback: self
                .chargeback
                .iter()
                .map(|k| {
                    let mut v = index.label(info, k).unwrap_or_default().to_owned();
                    v.truncate(MAX_CHARGEBACK_VALUE);
                    v
                })
                .collect(),
        })
    }

    /// The pod that owns `ip` now, else the node that has it (hostNetwork pods share their
    /// node's address: the remote side cannot tell them apart, and says the node).
    pub fn remote(&self, ip: IpAddr) -> Option<Arc<RemotePeer>> {
        remote_in(&self.index.read().unwrap_or_else(|p| p.into_inner()), ip)
    }

    /// The other end of a flow to `remote`. For a Service's virtual IP that is the backend
    /// that served `connection` (the flow's full tuple, as the socket saw it), found in
    /// conntrack; where conntrack cannot say, the Service itself with no zone (its class is
    /// then `unknown`, never a guess). Anything else: [`KubeAttribution::remote`].
    pub fn peer(&self, remote: IpAddr, connection: Option<&Connection>) -> Option<Arc<RemotePeer>> {
        let service = {
            let index = self.index.read().unwrap_or_else(|p| p.into_inner());
            match index.service_by_ip(remote) {
                None => return remote_in(&index, remote),
                Some(s) => s.clone(),
            }
        };
        // Conntrack is asked without the index lock held.
        let answer = match (connection, &self.conntrack) {
            (Some(c), Some(ct)) => {
                Some(ct.lock().unwrap_or_else(|p| p.into_inner()).reply_source(c))
            }
            _ => None,
        };
        let (result, backend) = match &answer {
            None if connection.is_none() => (ServiceLookup::NoTuple, None),
            None | Some(Err(_)) => (ServiceLookup::Error, None),
            Some(Ok(Some(b))) if b.ip().to_canonical() == remote.to_canonical() => {
                (ServiceLookup::NoNat, None)
            }
            Some(Ok(Some(b))) => (ServiceLookup::Backend, Some(b.ip())),
            Some(Ok(None)) => (ServiceLookup::NotFound, None),
        };
        let n = self.service_lookups.count(result);
        // A failed lookup is logged at the 1st, 2nd, 4th, 8th… failure: visible, never a flood.
        if let Some(Err(e)) = &answer
            && n.is_power_of_two()
        {
            warn!(error = %crate::reader::error_chain(e), errors = n, "conntrack lookup failed; flows to Services are attributed to the Service, class unknown");
        }
        let service_peer = || RemotePeer {
            namespace: service.namespace.clone(),
            workload: service.name.clone(),
            kind: Text::from("Service"),
            node: None,
            zone: None,
            region: None,
            class: TrafficClass::Unknown,
        };
        let Some(backend) = backend else { return Some(Arc::new(service_peer())) };
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        if let Some(peer) = remote_in(&index, backend) {
            return Some(peer);
        }
        // A backend that is no pod or node the index knows: its EndpointSlice may say where.
        let Some(endpoint) = index.endpoint_by_ip(backend) else {
            return Some(Arc::new(service_peer()));
        };
        let region =
            endpoint.node.as_deref().and_then(|n| index.node(n)).and_then(|n| n.region.clone());
        let class = index.class_of(endpoint.node.as_ref(), endpoint.zone.as_ref(), region.as_ref());
        Some(Arc::new(RemotePeer {
            node: endpoint.node.clone(),
            zone: endpoint.zone.clone(),
            region,
            class,
            ..service_peer()
        }))
    }

    /// Every Service virtual IP, when they changed since the last call.
    pub fn take_service_addresses(&self) -> Option<std::collections::HashSet<IpAddr>> {
        self.index.write().unwrap_or_else(|p| p.into_inner()).take_service_addresses()
    }

    /// Addresses whose owner changed since the last call (`None`: everything changed).
    pub fn take_changed(&self) -> Option<Vec<std::net::IpAddr>> {
        self.index.write().unwrap_or_else(|p| p.into_inner()).take_changed()
    }
}

/// The pod that owns `ip` now in `index`, else the node that has it.
fn remote_in(index: &KubeIndex, ip: IpAddr) -> Option<Arc<RemotePeer>> {
    if let Some(pod) = index.pod_by_ip(ip) {
        return Some(pod.peer.clone());
    }
    index.node_by_ip(ip).map(|(_, node)| node.peer.clone())
}

/// Connects with `kubeconfig` if given, else the in-cluster configuration (service account
/// token and `KUBERNETES_SERVICE_HOST`), else the default kubeconfig.
///
/// # Errors
/// kube's error naming what could not be read or used.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, kube::Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(kube::Error::InferKubeconfig)?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(kube::Error::InferKubeconfig)?
        }
        None => Config::infer().await.map_err(kube::Error::InferConfig)?,
    };
    Client::try_from(config)
}
