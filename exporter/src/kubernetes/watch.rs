//! One watch per kind (Pods, Nodes, ReplicaSets, Jobs, Namespaces, Services, EndpointSlices), each a kube-runtime watcher with the
//! default backoff: a list, then a watch from its resourceVersion, relisting when the watch
//! is lost. Events update the [`KubeIndex`]; a relist applies each object as it arrives
//! (only projections are kept, never the list) and then sweeps what it did not return
//! (objects deleted while the watch was down disappear). Errors (API server down, RBAC
//! forbidden) are logged and counted per kind, and the watcher retries: attribution
//! meanwhile says `unknown` where it must, and nothing stops.
//!
//! **Malformed objects.** The watches read objects untyped ([`DynamicObject`]) and decode
//! each one on its own: an object that does not decode (a field of the wrong type, say) is
//! logged with its namespace and name, counted, and skipped — it never fails the list that
//! holds it, which would keep the whole kind out of sync. A malformed deletion still deletes
//! (by its metadata).

use std::{
    fmt::Debug,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use futures::StreamExt;
use k8s_openapi::api::{
    apps::v1::ReplicaSet,
    batch::v1::Job,
    core::v1::{Namespace, Node, Pod, Service},
    discovery::v1::EndpointSlice,
};
use kube::{
    Api, Client, Resource,
    api::{ApiResource, DynamicObject},
    runtime::{WatchStreamExt, watcher},
};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use super::index::{KubeIndex, Listed, listed_key};

/// Per-kind health of the watches.
#[derive(Debug, Default)]
pub struct WatchStatus {
    /// Kinds in [`KINDS`] order.
    pub kinds: [KindStatus; 7],
}

/// One kind's counters.
#[derive(Debug, Default)]
pub struct KindStatus {
    /// Events applied.
    pub events: AtomicU64,
    /// Watch errors (each followed by a retry with backoff).
    pub errors: AtomicU64,
    /// Completed lists (1 once the kind is in sync; more after relists).
    pub lists: AtomicU64,
    /// Objects that did not decode as their kind (skipped).
    pub malformed: AtomicU64,
}

/// The kinds' names, in [`WatchStatus::kinds`] order.
pub const KINDS: [&str; 7] =
    ["Pod", "Node", "ReplicaSet", "Job", "Namespace", "Service", "EndpointSlice"];

/// The shared index.
pub type SharedIndex = Arc<RwLock<KubeIndex>>;

/// Starts the watches on the current tokio runtime.
pub fn spawn(client: Client, index: SharedIndex, status: Arc<WatchStatus>) {
    spawn_kind::<Pod>(client.clone(), index.clone(), status.clone(), 0, |i, e| match e {
        Change::Apply(p) | Change::Listed(p) => i.apply_pod(p),
        Change::Delete(p) => i.delete_pod(p),
        Change::Sweep(keep) => i.sweep_pods(keep),
    });
    spawn_kind::<Node>(client.clone(), index.clone(), status.clone(), 1, |i, e| match e {
        Change::Apply(n) => i.apply_node(n),
        Change::Listed(n) => i.list_node(n),
        Change::Delete(n) => i.delete_node(n),
        Change::Sweep(keep) => i.sweep_nodes(keep),
    });
    spawn_kind::<ReplicaSet>(client.clone(), index.clone(), status.clone(), 2, |i, e| match e {
        Change::Apply(r) => i.apply_replicaset(r, true),
        Change::Listed(r) => i.list_replicaset(r),
        Change::Delete(r) => i.apply_replicaset(r, false),
        Change::Sweep(keep) => i.sweep_replicasets(keep),
    });
    spawn_kind::<Job>(client.clone(), index.clone(), status.clone(), 3, |i, e| match e {
        Change::Apply(j) => i.apply_job(j, true),
        Change::Listed(j) => i.list_job(j),
        Change::Delete(j) => i.apply_job(j, false),
        Change::Sweep(keep) => i.sweep_jobs(keep),
    });
    spawn_kind::<Namespace>(client.clone(), index.clone(), status.clone(), 4, |i, e| match e {
        Change::Apply(n) | Change::Listed(n) => i.apply_namespace(n, true),
        Change::Delete(n) => i.apply_namespace(n, false),
        Change::Sweep(keep) => i.sweep_namespaces(keep),
    });
    spawn_kind::<Service>(client.clone(), index.clone(), status.clone(), 5, |i, e| match e {
        Change::Apply(s) | Change::Listed(s) => i.apply_service(s, true),
        Change::Delete(s) => i.apply_service(s, false),
        Change::Sweep(keep) => i.sweep_services(keep),
    });
    spawn_kind::<EndpointSlice>(client, index, status, 6, |i, e| match e {
        Change::Apply(s) | Change::Listed(s) => i.apply_endpoint_slice(s, true),
        Change::Delete(s) => i.apply_endpoint_slice(s, false),
        Change::Sweep(keep) => i.sweep_endpoint_slices(keep),
    });
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// The watches' self-metrics, read at scrape time.
#[derive(Debug)]
struct WatchCollector {
    status: Arc<WatchStatus>,
    index: SharedIndex,
    service_lookups: Arc<super::ServiceLookups>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

impl prometheus_client::collector::Collector for WatchCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> std::fmt::Result {
        use prometheus_client::{
            encoding::EncodeMetric,
            metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
        };
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        let (pods, nodes, pod_ips) = index.sizes();
        let (service_ips, endpoint_ips) = index.service_sizes();
        drop(index);
        for (name, help, pick) in [
            ("kubernetes_watch_events", "Watch events applied, by kind", 0),
            (
                "kubernetes_watch_errors",
                "Watch errors (API server unreachable, forbidden, malformed objects), each followed by a retry with backoff",
                1,
            ),
            (
                "kubernetes_lists",
                "Complete lists of a kind (1 once in sync; more after relists)",
                2,
            ),
            (
                "kubernetes_malformed_objects",
                "Objects that did not decode as their kind: logged with their name and skipped",
                3,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (slot, kind) in KINDS.iter().enumerate() {
                let c = &self.status.kinds[slot];
                let v =
                    [&c.events, &c.errors, &c.lists, &c.malformed][pick].load(Ordering::Relaxed);
                ConstCounter::new(v).encode(family.encode_family(&KindLabels { kind })?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "kubernetes_objects",
            "Objects held in the index: pods, nodes, pod IPs, Service virtual IPs and EndpointSlice addresses",
            None,
            MetricType::Gauge,
        )?;
        for (kind, n) in [
            ("Pod", pods),
            ("Node", nodes),
            ("PodIP", pod_ips),
            ("ServiceIP", service_ips),
            ("EndpointIP", endpoint_ips),
        ] {
            ConstGauge::new(n as i64).encode(family.encode_family(&KindLabels { kind })?)?;
        }
        let mut family = encoder.encode_descriptor(
            "kubernetes_service_lookups",
            "Flows to Service virtual IPs by how their backend was found: backend (conntrack named it), no_nat, not_found (no conntrack entry), error (conntrack could not be asked), no_tuple (no connection ports in the flow)",
            None,
            MetricType::Counter,
        )?;
        for (slot, result) in super::SERVICE_LOOKUP_RESULTS.iter().enumerate() {
            let v = self.service_lookups.counts[slot].load(Ordering::Relaxed);
            ConstCounter::new(v).encode(family.encode_family(&ResultLabels { result })?)?;
        }
        Ok(())
    }
}

/// Registers the watches' self-metrics (`egressor_kubernetes_*`).
pub fn register(
    registry: &mut prometheus_client::registry::Registry,
    status: Arc<WatchStatus>,
    index: SharedIndex,
    service_lookups: Arc<super::ServiceLookups>,
) {
    registry.register_collector(Box::new(WatchCollector { status, index, service_lookups }));
}

/// What a watch event does to the index.
enum Change<'a, K> {
    /// A live event: added or modified.
    Apply(&'a K),
    /// A live event: deleted.
    Delete(&'a K),
    /// An object of a (re)list, applied as it arrives: the projection is kept, never the
    /// whole list of objects (10k pods would take hundreds of MB as full objects).
    Listed(&'a K),
    /// The (re)list is complete: what it did not return is gone.
    Sweep(&'a Listed),
}

fn spawn_kind<K>(
    client: Client,
    index: SharedIndex,
    status: Arc<WatchStatus>,
    slot: usize,
    apply: fn(&mut KubeIndex, Change<'_, K>),
) where
    K: Resource + Clone + Default + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    tokio::spawn(async move {
        let kind = KINDS[slot];
        let counters = &status.kinds[slot];
        let resource = ApiResource::erase::<K>(&K::DynamicType::default());
        let api = Api::<DynamicObject>::all_with(client, &resource);
        // Small pages: a page is decoded whole before its objects are projected, so the page
        // size bounds the agent's peak memory while it lists (10k pods: the Pod kind).
        let config = watcher::Config::default().page_size(LIST_PAGE_SIZE);
        let mut stream = watcher(api, config).default_backoff().boxed();
        let mut listing = Listed::new();
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    warn!(kind, error = %e, "Kubernetes watch failed; retrying with backoff");
                    continue;
                }
            };
            counters.events.fetch_add(1, Ordering::Relaxed);
            let decoded = |object: DynamicObject| decode::<K>(kind, counters, object);
            let mut index = index.write().unwrap_or_else(|p| p.into_inner());
            match event {
                watcher::Event::Init => listing.clear(),
                watcher::Event::InitApply(o) => {
                    if let Ok(o) = decoded(o) {
                        let (key, uid) = listed_key(&o);
                        listing.insert(key, uid);
                        apply(&mut index, Change::Listed(&o));
                    }
                }
                watcher::Event::InitDone => {
                    apply(&mut index, Change::Sweep(&listing));
                    release_freed_memory();
                    if counters.lists.fetch_add(1, Ordering::Relaxed) == 0 {
                        info!(kind, objects = listing.len(), "Kubernetes metadata in sync");
                    }
                    listing = Listed::new();
                }
                watcher::Event::Apply(o) => {
                    if let Ok(o) = decoded(o) {
                        apply(&mut index, Change::Apply(&o));
                    }
                }
                watcher::Event::Delete(o) => {
                    // A deletion needs only the metadata: a malformed one still deletes.
                    let o = decoded(o).unwrap_or_else(|metadata| {
                        let mut bare = K::default();
                        *bare.meta_mut() = *metadata;
                        bare
                    });
                    apply(&mut index, Change::Delete(&o));
                }
            }
        }
    });
}

/// Objects per page of a list.
const LIST_PAGE_SIZE: u32 = 100;

/// Gives the pages a list decoded and freed back to the system: glibc keeps freed heap
/// memory for reuse, so the pages' peak would otherwise stay in the agent's RSS.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; no pointer is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Decodes one object as `K`; one that does not decode is logged, counted and given back as
/// its metadata.
fn decode<K: Resource + DeserializeOwned>(
    kind: &'static str,
    counters: &KindStatus,
    object: DynamicObject,
) -> Result<K, Box<kube::api::ObjectMeta>> {
    let decoded = serde_json::to_value(&object).and_then(serde_json::from_value::<K>);
    decoded.map_err(|e| {
        counters.malformed.fetch_add(1, Ordering::Relaxed);
        let metadata = object.metadata;
        warn!(
            kind,
            namespace = metadata.namespace.as_deref().unwrap_or(""),
            name = metadata.name.as_deref().unwrap_or(""),
            error = %e,
            "malformed Kubernetes object skipped"
        );
        Box::new(metadata)
    })
}
