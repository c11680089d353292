//! The Kubernetes watches against a local API server speaking the list/watch wire format
//! with recorded objects: the index fills from the lists, follows watch events (IP reuse,
//! finished pods), survives an API server that is down at start and a kind RBAC forbids.

use std::{
    sync::{Arc, RwLock, atomic::Ordering},
    time::{Duration, Instant},
};

use egressor::kubernetes::{
    client,
    index::{KubeIndex, Workload},
    watch::{self, WatchStatus},
};
use egressor_tests::kube_api::{FakeKube, fixture};

type Index = Arc<RwLock<KubeIndex>>;

async fn start_watching(kubeconfig: &std::path::Path) -> (Index, Arc<WatchStatus>) {
    let index = Arc::new(RwLock::new(KubeIndex::new(vec![
        "app.kubernetes.io/version".into(),
        "team".into(),
    ])));
    let status = Arc::new(WatchStatus::default());
    let c = client(Some(kubeconfig)).await.unwrap();
    watch::spawn(c, index.clone(), status.clone());
    (index, status)
}

/// Waits (at most 20 s) until `ok` holds.
async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn synced(status: &WatchStatus, kinds: &[usize]) -> bool {
    kinds.iter().all(|&k| status.kinds[k].lists.load(Ordering::Relaxed) > 0)
}

fn workload(index: &Index, uid: &str) -> Option<Workload> {
    let i = index.read().unwrap();
    i.pod(uid).map(|p| p.workload())
}

const API_POD: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
const JOB_POD: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_and_watch_events_fill_the_index() {
    let fake = FakeKube::start().with_fixtures();
    let (index, status) = start_watching(&fake.kubeconfig()).await;
    until("all four kinds listed", || synced(&status, &[0, 1, 2, 3])).await;

    let w = |kind: &str, name: &str| Some(Workload { kind: kind.into(), name: name.into() });
    assert_eq!(workload(&index, API_POD), w("Deployment", "api"), "Pod → ReplicaSet → Deployment");
    assert_eq!(workload(&index, "7c9e6679-7425-40de-944b-e07fc1f90ae7"), w("StatefulSet", "db"));
    assert_eq!(workload(&index, JOB_POD), w("CronJob", "report"), "Pod → Job → CronJob");
    assert_eq!(
        workload(&index, "c9bf9e57-1685-4c89-bafb-ff5af830be8a"),
        w("Pod", "debug"),
        "a bare pod"
    );
    assert_eq!(
        workload(&index, "a3bb189e-8bf9-3888-9912-ace4e6543002"),
        w("DaemonSet", "node-exporter")
    );
    {
        let i = index.read().unwrap();
        let api = i.pod(API_POD).unwrap();
        assert_eq!(api.label("app.kubernetes.io/version"), Some("1.4.2"));
        assert_eq!(api.label("team"), Some("payments"));
        assert!(api.label("pod-template-hash").is_none(), "only the labels asked for");
        for ip in ["10.0.1.101", "2600:1f18:1:100::101"] {
            assert_eq!(
                i.pod_by_ip(ip.parse().unwrap()).map(|p| &*p.name),
                Some("api-7d9f8c6b5-x2x7q"),
                "{ip}"
            );
        }
        // The hostNetwork pod does not claim the node's address; the node does.
        let (node, info) = i.node_by_ip("10.0.1.10".parse().unwrap()).unwrap();
        assert_eq!(
            (&**node, info.zone.as_deref()),
            ("ip-10-0-1-10.ec2.internal", Some("us-east-1a"))
        );
        assert!(i.pod_by_ip("10.0.1.10".parse().unwrap()).is_none());
        assert_eq!(
            &**i.node_by_ip("3.80.0.20".parse().unwrap()).unwrap().0,
            "ip-10-0-2-20.ec2.internal",
            "ExternalIP"
        );
        let legacy = i.node("ip-10-0-3-30.ec2.internal").unwrap();
        assert_eq!(
            (legacy.zone.as_deref(), legacy.region.as_deref()),
            (Some("us-east-1c"), Some("us-east-1"))
        );
    }

    // IP reuse: `debug` is deleted and a new pod gets its address.
    let pods = fixture("pods");
    let debug = pods.iter().find(|p| p["metadata"]["name"] == "debug").unwrap().clone();
    fake.delete(&debug);
    until("debug gone", || {
        index.read().unwrap().pod("c9bf9e57-1685-4c89-bafb-ff5af830be8a").is_none()
    })
    .await;
    assert!(
        index.read().unwrap().pod_by_ip("10.0.2.104".parse().unwrap()).is_none(),
        "no stale identity"
    );
    let mut reuse = debug.clone();
    reuse["metadata"]["name"] = "debug-2".into();
    reuse["metadata"]["uid"] = "d2c9f0a1-3b4e-4c5d-8e6f-7a8b9c0d1e2f".into();
    fake.apply(reuse);
    until("debug-2 has the address", || {
        index
            .read()
            .unwrap()
            .pod_by_ip("10.0.2.104".parse().unwrap())
            .is_some_and(|p| &*p.name == "debug-2")
    })
    .await;
    // A finished pod gives its address up.
    let mut done = pods.iter().find(|p| p["metadata"]["uid"] == JOB_POD).unwrap().clone();
    done["status"]["phase"] = "Succeeded".into();
    fake.apply(done);
    until("finished pod releases its IP", || {
        index.read().unwrap().pod_by_ip("10.0.1.103".parse().unwrap()).is_none()
    })
    .await;
    assert_eq!(status.kinds[0].errors.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_down_at_start_is_retried_and_a_forbidden_kind_is_counted() {
    let port = egressor_tests::free_port();
    let kubeconfig = FakeKube::kubeconfig_for(&format!("http://127.0.0.1:{port}"));
    let (index, status) = start_watching(&kubeconfig).await;
    until("errors while the API server is down", || {
        status.kinds[0].errors.load(Ordering::Relaxed) > 0
    })
    .await;
    assert_eq!(index.read().unwrap().sizes().0, 0);

    // Jobs are forbidden from the server's first answer: forbidding them after it starts
    // would let a retrying list of Jobs succeed in between.
    let fake = FakeKube::start_forbidding(port, &["Job"]).with_fixtures();
    until("pods, nodes and replicasets listed after the retry", || synced(&status, &[0, 1, 2]))
        .await;
    // The server starts while the fixtures are still being added: a list may see some of
    // them, the watch brings the rest.
    until("all six pods", || index.read().unwrap().sizes().0 == 6).await;
    until("the forbidden kind counts errors", || {
        status.kinds[3].errors.load(Ordering::Relaxed) > 1
    })
    .await;
    assert_eq!(status.kinds[3].lists.load(Ordering::Relaxed), 0);
    // Without Jobs, the CronJob pod's workload stops at its Job: known, not guessed.
    let w = workload(&index, JOB_POD).unwrap();
    assert_eq!((&*w.kind, &*w.name), ("Job", "report-28901234"));
    assert!(fake.requests() > 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_and_endpoint_slices_fill_the_index_and_follow_changes() {
    let fake = FakeKube::start().with_fixtures();
    let (index, status) = start_watching(&fake.kubeconfig()).await;
    until("Services and EndpointSlices listed", || synced(&status, &[5, 6])).await;
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    {
        let mut i = index.write().unwrap();
        let name = |a: &str| i.service_by_ip(ip(a)).map(|s| format!("{}/{}", s.namespace, s.name));
        assert_eq!(name("10.96.0.20").as_deref(), Some("shop/db"));
        assert_eq!(name("10.96.0.40").as_deref(), Some("shop/legacy-db"));
        let addresses = i.take_service_addresses().expect("changed since the start");
        let mut addresses: Vec<_> = addresses.into_iter().map(|a| a.to_string()).collect();
        addresses.sort();
        // The headless Service (clusterIP None) has no virtual IP.
        assert_eq!(addresses, ["10.96.0.20", "10.96.0.30", "10.96.0.40"]);
        assert!(i.take_service_addresses().is_none(), "nothing changed since");
        let e = i.endpoint_by_ip(ip("10.0.3.200")).expect("the hand-written slice");
        assert_eq!(
            (&*e.service.name, e.zone.as_deref(), e.node.as_deref()),
            ("legacy-db", Some("us-east-1c"), Some("ip-10-0-3-30.ec2.internal"))
        );
        assert_eq!(&*i.endpoint_by_ip(ip("10.0.2.102")).unwrap().service.name, "db");
    }
    // A Service's address changes, another is deleted: the index and the set follow.
    let services = fixture("services");
    let mut db = services.iter().find(|s| s["metadata"]["name"] == "db").unwrap().clone();
    db["spec"]["clusterIP"] = "10.96.0.21".into();
    db["spec"]["clusterIPs"] = serde_json::json!(["10.96.0.21"]);
    fake.apply(db);
    fake.delete(services.iter().find(|s| s["metadata"]["name"] == "cache").unwrap());
    until("the new address", || index.read().unwrap().service_by_ip(ip("10.96.0.21")).is_some())
        .await;
    until("cache gone", || index.read().unwrap().service_by_ip(ip("10.96.0.30")).is_none()).await;
    {
        let mut i = index.write().unwrap();
        assert!(i.service_by_ip(ip("10.96.0.20")).is_none(), "the old address is no Service's");
        let mut addresses: Vec<_> =
            i.take_service_addresses().unwrap().into_iter().map(|a| a.to_string()).collect();
        addresses.sort();
        assert_eq!(addresses, ["10.96.0.21", "10.96.0.40"]);
    }
    let slices = fixture("endpointslices");
    fake.delete(slices.iter().find(|s| s["metadata"]["name"] == "legacy-db-1").unwrap());
    until("slice gone", || index.read().unwrap().endpoint_by_ip(ip("10.0.3.200")).is_none()).await;
    assert_eq!(status.kinds[5].errors.load(Ordering::Relaxed), 0);
    assert_eq!(status.kinds[6].errors.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_object_is_counted_and_skipped_without_failing_its_list() {
    let fake = FakeKube::start().with_fixtures();
    // In the list: a pod whose `spec.containers` is a string, not a list.
    let pods = fixture("pods");
    let mut broken = pods.iter().find(|p| p["metadata"]["name"] == "debug").unwrap().clone();
    broken["metadata"]["name"] = "broken".into();
    broken["metadata"]["uid"] = "e1e2e3e4-0000-4000-8000-000000000001".into();
    broken["spec"]["containers"] = "oops".into();
    fake.apply(broken.clone());
    let (index, status) = start_watching(&fake.kubeconfig()).await;
    until("pods and nodes listed", || synced(&status, &[0, 1])).await;
    let malformed = || status.kinds[0].malformed.load(Ordering::Relaxed);
    assert_eq!(malformed(), 1);
    assert!(workload(&index, API_POD).is_some(), "the rest of the list is in the index");
    assert!(index.read().unwrap().pod("e1e2e3e4-0000-4000-8000-000000000001").is_none());
    // In the watch: a node whose `status.addresses` is a number; then a good event.
    let nodes = fixture("nodes");
    let mut node = nodes[2].clone();
    node["status"]["addresses"] = 7.into();
    fake.apply(node);
    let mut relabelled = nodes[1].clone();
    relabelled["metadata"]["labels"]["topology.kubernetes.io/zone"] = "us-east-1d".into();
    fake.apply(relabelled);
    until("the good event after the bad one", || {
        index
            .read()
            .unwrap()
            .node("ip-10-0-2-20.ec2.internal")
            .is_some_and(|n| n.zone.as_deref() == Some("us-east-1d"))
    })
    .await;
    assert_eq!(status.kinds[1].malformed.load(Ordering::Relaxed), 1);
    assert_eq!(
        index.read().unwrap().node("ip-10-0-3-30.ec2.internal").and_then(|n| n.zone.clone()),
        Some("us-east-1c".into()),
        "the malformed update left the node as it was"
    );
    // A malformed object's deletion still deletes (by its metadata).
    let api_pod = pods.iter().find(|p| p["metadata"]["uid"] == API_POD).unwrap().clone();
    let mut bad = api_pod.clone();
    bad["spec"]["containers"] = 1.into();
    fake.apply(bad.clone());
    fake.delete(&bad);
    until("the pod deleted", || index.read().unwrap().pod(API_POD).is_none()).await;
    assert_eq!(status.kinds[0].errors.load(Ordering::Relaxed), 0, "never a watch error");
}
