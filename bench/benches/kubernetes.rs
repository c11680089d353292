//! Kubernetes attribution per flow, against the target of ≤ 200 ns at 10k pods: the
//! index holds 10,000 pods (500 Deployments through their ReplicaSets) on 500 nodes in three
//! zones and 500 Services. A new flow asks for its remote (pod by IP → its workload and
//! class, prebuilt by the index), in a random order over the pods (cache misses included);
//! its local pod comes from its cgroup, looked up once per cgroup (also measured).
//!
//! Run with `cargo bench -p egressor-bench --bench kubernetes` (bench/run.sh does).

use std::{
    hint::black_box,
    net::IpAddr,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use criterion::{Criterion, criterion_group, criterion_main};
use egressor::kubernetes::{KubeAttribution, ServiceLookups, index::KubeIndex};
use k8s_openapi::api::{
    apps::v1::ReplicaSet,
    core::v1::{Node, Pod, Service},
};
use serde_json::json;

const PODS: u32 = 10_000;
const NODES: u32 = 500;
const DEPLOYMENTS: u32 = 500;

fn pod_ip(i: u32) -> IpAddr {
    IpAddr::from([10, 200, (i / 250) as u8, (i % 250 + 1) as u8])
}

fn uid(i: u32) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn index() -> KubeIndex {
    let mut index = KubeIndex::new(vec!["app.kubernetes.io/version".into(), "team".into()])
        .with_local_node("node-0");
    let nodes: Vec<Node> = (0..NODES)
        .map(|n| {
            serde_json::from_value(json!({
                "metadata": {"name": format!("node-{n}"), "labels": {
                    "topology.kubernetes.io/zone": format!("us-east-1{}", ["a", "b", "c"][n as usize % 3]),
                    "topology.kubernetes.io/region": "us-east-1"}},
                "status": {"addresses": [{"type": "InternalIP", "address": format!("10.0.{}.{}", n / 250, n % 250 + 1)}]}
            }))
            .unwrap()
        })
        .collect();
    index.replace_nodes(&nodes);
    let replicasets: Vec<ReplicaSet> = (0..DEPLOYMENTS)
        .map(|d| {
            serde_json::from_value(json!({"metadata": {"name": format!("app-{d}-7d9f8c6b5"), "namespace": "shop",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("app-{d}"),
                    "uid": uid(900_000 + d), "controller": true}]}}))
            .unwrap()
        })
        .collect();
    index.replace_replicasets(&replicasets);
    let pods: Vec<Pod> = (0..PODS)
        .map(|i| {
            let d = i % DEPLOYMENTS;
            serde_json::from_value(json!({
                "metadata": {"name": format!("app-{d}-7d9f8c6b5-{i:05}"), "namespace": "shop", "uid": uid(i),
                    "labels": {"app.kubernetes.io/version": "1.4.2", "team": "payments"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("app-{d}-7d9f8c6b5"),
                        "uid": uid(800_000 + d), "controller": true}]},
                "spec": {"nodeName": format!("node-{}", i % NODES), "containers": []},
                "status": {"phase": "Running", "podIP": pod_ip(i).to_string(), "podIPs": [{"ip": pod_ip(i).to_string()}]}
            }))
            .unwrap()
        })
        .collect();
    index.replace_pods(&pods);
    let services: Vec<Service> = (0..DEPLOYMENTS)
        .map(|d| {
            serde_json::from_value(
                json!({"metadata": {"name": format!("app-{d}"), "namespace": "shop"},
                "spec": {"clusterIP": format!("10.96.{}.{}", d / 250, d % 250 + 1)}}),
            )
            .unwrap()
        })
        .collect();
    index.replace_services(&services);
    index
}

fn benches(c: &mut Criterion) {
    let kube = KubeAttribution {
        index: Arc::new(RwLock::new(index())),
        conntrack: None::<Arc<Mutex<_>>>,
        service_lookups: Arc::new(ServiceLookups::default()),
        version_label: "app.kubernetes.io/version".into(),
        chargeback: vec!["team".into()],
    };
    let mut group = c.benchmark_group("Kubernetes attribution, 10k pods");
    let mut i = 0u32;
    // Per flow: the remote end and the class (the local end is resolved once per cgroup and
    // cached by the attributor).
    group.bench_function("per flow: remote pod by IP + class (peer)", |b| {
        b.iter(|| {
            i = (i + 7919) % PODS;
            let peer = kube.peer(black_box(pod_ip(i)), None).unwrap();
            black_box(peer.class)
        })
    });
    let paths: Vec<String> = (0..PODS)
        .map(|i| format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08.scope", uid(i).replace('-', "_")))
        .collect();
    // Per new cgroup (then cached): the local pod from its cgroup path.
    group.bench_function("per new cgroup: local pod by cgroup path (cgroup)", |b| {
        b.iter(|| {
            i = (i + 7919) % PODS;
            black_box(kube.cgroup(black_box(&paths[i as usize])))
        })
    });
    group.finish();
}

criterion_group! {
    name = kubernetes;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(kubernetes);
