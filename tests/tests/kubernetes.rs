//! Kubernetes attribution on real traffic: a local API server speaks the list/watch wire
//! format with recorded objects; cgroups follow the kubelet's path shapes for two pods (systemd
//! driver with containerd, cgroupfs driver); processes in them send real datagrams from their
//! own network namespace; `/metrics` carries namespace, workload, kind and version, with the
//! exact bytes sent.

use egressor_tests::{kube_api::FakeKube, *};

const HELPER: &str = env!("CARGO_BIN_EXE_egressor-traffic");
/// Pod UIDs from tests/fixtures/kubernetes/pods.json.
const API_POD: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
const DB_POD: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const CONTAINER: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[test]
fn pods_cgroups_get_namespace_workload_kind_and_version() {
    if !require_bpf("pods_cgroups_get_namespace_workload_kind_and_version") {
        return;
    }
    let fake = FakeKube::start().with_fixtures();
    let kubeconfig = fake.kubeconfig();
    let w = World::new("k8", &["203.0.113.50"]);
    // The systemd driver's shape (UID dashes as underscores) for the Deployment's pod, the
    // cgroupfs driver's for the StatefulSet's.
    let api = Cgroup::nested(
        "k8a",
        &format!(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CONTAINER}.scope",
            API_POD.replace('-', "_")
        ),
    );
    let db = Cgroup::nested("k8d", &format!("kubepods/besteffort/pod{DB_POD}/{CONTAINER}"));
    let plain = Cgroup::new("k8p");
    let agent = Agent::start(&["--kubeconfig", kubeconfig.to_str().unwrap()]);
    // The agent is ready once it has read the kernel; wait for the watches too.
    for _ in 0..100 {
        if agent.metrics().sum("egressor_kubernetes_lists_total", &[("kind", "Pod")]) > 0.0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let send = |cgroup: &Cgroup, n: u64, size: u64| {
        let out = helper_in_cgroup(
            cgroup,
            &w.client,
            HELPER,
            &["udp-send", "203.0.113.50:9500", &n.to_string(), &size.to_string()],
        );
        assert_eq!(out["sent"], n.to_string());
        n * (size + 28)
    };
    let api_bytes = send(&api, 30, 700);
    let db_bytes = send(&db, 20, 300);
    let plain_bytes = send(&plain, 10, 100);
    agent.settle();

    let m = agent.metrics();
    let egress = |labels: &[(&str, &str)]| {
        m.sum("egressor_flow_bytes_total", &[&[("direction", "egress")], labels].concat())
    };
    let api_labels = [
        ("namespace", "shop"),
        ("workload", "api"),
        ("workload_kind", "Deployment"),
        ("workload_version", "1.4.2"),
    ];
    assert_eq!(egress(&api_labels), api_bytes as f64, "{}", agent.metrics_text());
    let db_labels = [
        ("namespace", "shop"),
        ("workload", "db"),
        ("workload_kind", "StatefulSet"),
        ("workload_version", ""),
    ];
    assert_eq!(egress(&db_labels), db_bytes as f64);
    // A cgroup that is no pod's keeps its path name, with empty Kubernetes labels.
    let plain_labels =
        [("workload", plain.workload.as_str()), ("namespace", ""), ("workload_kind", "")];
    assert_eq!(egress(&plain_labels), plain_bytes as f64);
    assert_eq!(m.sum("egressor_kubernetes_objects", &[("kind", "Pod")]), 5.0);
    assert_eq!(m.sum("egressor_kubernetes_watch_errors_total", &[]), 0.0);
}
