//! Kubernetes attribution on real traffic: a local API server speaks the list/watch wire
//! format with recorded objects; cgroups follow the kubelet's path shapes for two pods (systemd
//! driver with containerd, cgroupfs driver); processes in them send real datagrams from their
//! own network namespace; `/metrics` carries namespace, workload, kind, version and the
//! chargeback labels, with the exact bytes sent.

use egressor_tests::{kube_api::FakeKube, *};

const HELPER: &str = env!("CARGO_BIN_EXE_egressor-traffic");
/// Pod UIDs from tests/fixtures/kubernetes/pods.json.
const API_POD: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
const DB_POD: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const CONTAINER: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// The agent is ready once it has read the kernel; this waits for the Pod watch's first list
/// too (at most 10 s).
fn wait_for_pod_list(agent: &Agent) {
    for _ in 0..100 {
        if agent.metrics().sum("egressor_kubernetes_lists_total", &[("kind", "Pod")]) > 0.0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the Pod watch never listed:\n{}", agent.log());
}

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
    let agent = Agent::start(&[
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--kubernetes.labels",
        "team,cost-center",
    ]);
    wait_for_pod_list(&agent);
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
    // Chargeback: the pod's own `team` label wins over its namespace's; `cost-center` comes
    // from the namespace.
    let chargeback =
        [("workload", "api"), ("label_team", "payments"), ("label_cost_center", "cc-1234")];
    assert_eq!(egress(&chargeback), api_bytes as f64, "{}", agent.metrics_text());
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
    assert_eq!(m.sum("egressor_kubernetes_objects", &[("kind", "Pod")]), 6.0);
    assert_eq!(m.sum("egressor_kubernetes_watch_errors_total", &[]), 0.0);
}

#[test]
fn remote_pods_and_nodes_get_workload_zone_class_and_reused_ips_a_new_identity() {
    if !require_bpf("remote_pods_and_nodes_get_workload_zone_class_and_reused_ips_a_new_identity") {
        return;
    }
    let fake = FakeKube::start().with_fixtures();
    let kubeconfig = fake.kubeconfig();
    // Peers from the fixtures: db-0 on node 2 (us-east-1b), the CronJob's pod on node 1 (this
    // node, us-east-1a), node 3 itself (us-east-1c, legacy labels), the bare pod `debug`.
    let (db, job, node3, debug) = ("10.0.2.102", "10.0.1.103", "10.0.3.30", "10.0.2.104");
    let db_v6 = "2600:1f18:1:200::102";
    let w = World::new("k9", &[db, db_v6, job, node3, debug]);
    let api = Cgroup::nested("k9a", &format!("kubepods/burstable/pod{API_POD}/{CONTAINER}"));
    let agent = Agent::start(&[
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--kubernetes.node-name",
        "ip-10-0-1-10.ec2.internal",
    ]);
    wait_for_pod_list(&agent);
    let send = |target: &str, n: u64, size: u64| {
        let target = format!("{target}:9600");
        let out = helper_in_cgroup(
            &api,
            &w.client,
            HELPER,
            &["udp-send", &target, &n.to_string(), &size.to_string()],
        );
        assert_eq!(out["sent"], n.to_string());
        n * (size + 28)
    };
    let to_db = send(db, 20, 500);
    let to_job = send(job, 10, 200);
    let to_node = send(node3, 5, 100);
    let to_debug = send(debug, 7, 300);
    agent.settle();

    // The IP of `debug` goes to a new pod in another namespace.
    let pods = egressor_tests::kube_api::fixture("pods");
    let old = pods.iter().find(|p| p["metadata"]["name"] == "debug").unwrap().clone();
    fake.delete(&old);
    let mut new = old.clone();
    new["metadata"]["name"] = "debug-2".into();
    new["metadata"]["namespace"] = "tools".into();
    new["metadata"]["uid"] = "d2c9f0a1-3b4e-4c5d-8e6f-7a8b9c0d1e2f".into();
    fake.apply(new);
    std::thread::sleep(std::time::Duration::from_millis(600)); // the event, then a read cycle
    let to_debug_2 = send(debug, 9, 300);
    agent.settle();

    let m = agent.metrics();
    let bytes = |labels: &[(&str, &str)]| {
        m.sum(
            "egressor_flow_bytes_total",
            &[&[("direction", "egress"), ("workload", "api"), ("namespace", "shop")], labels]
                .concat(),
        )
    };
    let to = |remote: &str, kind: &str, class: &str| {
        bytes(&[("remote", remote), ("remote_kind", kind), ("traffic_class", class)])
    };
    assert_eq!(to("db", "StatefulSet", "cross_zone"), to_db as f64, "{}", agent.metrics_text());
    assert_eq!(
        bytes(&[("remote", "db"), ("remote_namespace", "shop"), ("remote_zone", "us-east-1b")]),
        to_db as f64
    );
    assert_eq!(to("report", "CronJob", "same_host"), to_job as f64, "same node");
    assert_eq!(
        to("ip-10-0-3-30.ec2.internal", "Node", "cross_zone"),
        to_node as f64,
        "a node's address"
    );
    assert_eq!(
        bytes(&[("remote", "ip-10-0-3-30.ec2.internal"), ("remote_zone", "us-east-1c")]),
        to_node as f64
    );
    // Each byte to the reused address lands on the identity that owned it at the time.
    assert_eq!(
        bytes(&[("remote", "debug"), ("remote_namespace", "default"), ("remote_kind", "Pod")]),
        to_debug as f64
    );
    assert_eq!(bytes(&[("remote", "debug-2"), ("remote_namespace", "tools")]), to_debug_2 as f64);
    // Cross-zone costs 0.01 USD/GiB on the sender's egress (AWS us-east-1 sheet, 2025-07-01).
    let cost = m.sum(
        "egressor_flow_cost_usd_total",
        &[("direction", "egress"), ("workload", "api"), ("remote", "db")],
    );
    assert!((cost - to_db as f64 / (1u64 << 30) as f64 * 0.01).abs() < 1e-15, "{cost}");
}

#[test]
fn host_network_pods_sharing_the_node_address_are_told_apart_by_cgroup() {
    if !require_bpf("host_network_pods_sharing_the_node_address_are_told_apart_by_cgroup") {
        return;
    }
    let fake = FakeKube::start().with_fixtures();
    let kubeconfig = fake.kubeconfig();
    let w = World::new("kh", &["203.0.113.60"]);
    // node-exporter and kube-proxy: both hostNetwork DaemonSet pods on node 1, one network
    // namespace (here the test's client namespace plays the node's), two cgroups.
    let exporter = Cgroup::nested(
        "khe",
        &format!("kubepods/besteffort/poda3bb189e-8bf9-3888-9912-ace4e6543002/{CONTAINER}"),
    );
    let proxy = Cgroup::nested(
        "khp",
        &format!("kubepods/besteffort/pod5f0e2e1b-7c3a-4d59-9a1e-3b6c7d8e9f01/{CONTAINER}"),
    );
    let agent = Agent::start(&["--kubeconfig", kubeconfig.to_str().unwrap()]);
    wait_for_pod_list(&agent);
    let send = |cgroup: &Cgroup, n: u64| {
        let out = helper_in_cgroup(
            cgroup,
            &w.client,
            HELPER,
            &["udp-send", "203.0.113.60:9700", &n.to_string(), "200"],
        );
        assert_eq!(out["sent"], n.to_string());
        n * 228
    };
    let (e, p) = (send(&exporter, 12), send(&proxy, 17));
    agent.settle();
    let m = agent.metrics();
    let of = |workload: &str| {
        m.sum(
            "egressor_flow_bytes_total",
            &[
                ("direction", "egress"),
                ("namespace", "kube-system"),
                ("workload", workload),
                ("workload_kind", "DaemonSet"),
            ],
        )
    };
    assert_eq!((of("node-exporter"), of("kube-proxy")), (e as f64, p as f64));
}

#[test]
fn a_thousand_pods_created_and_deleted_leave_memory_and_series_at_baseline() {
    if !require_bpf("a_thousand_pods_created_and_deleted_leave_memory_and_series_at_baseline") {
        return;
    }
    let fake = FakeKube::start().with_fixtures();
    let kubeconfig = fake.kubeconfig();
    let agent = Agent::start(&["--kubeconfig", kubeconfig.to_str().unwrap()]);
    let pods = |m: &Metrics| m.sum("egressor_kubernetes_objects", &[("kind", "Pod")]);
    let wait_for = |want: f64| {
        for _ in 0..300 {
            if pods(&agent.metrics()) == want {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the index never held {want} pods");
    };
    wait_for(6.0);
    let baseline = (rss_kb(agent.pid()), agent.metrics().sum("egressor_series", &[]));
    let template = egressor_tests::kube_api::fixture("pods")[0].clone();
    let churn: Vec<_> = (0..1000u32)
        .map(|i| {
            let mut p = template.clone();
            p["metadata"]["name"] = format!("api-7d9f8c6b5-{i:05}").into();
            p["metadata"]["uid"] = format!("00000000-0000-4000-8000-{i:012}").into();
            p["status"]["podIP"] = format!("10.1.{}.{}", i / 250, i % 250 + 1).into();
            p["status"]["podIPs"] =
                serde_json::json!([{"ip": format!("10.1.{}.{}", i / 250, i % 250 + 1)}]);
            p
        })
        .collect();
    // Twelve rounds of 1,000 pods created and deleted. The allocator's arenas warm up over
    // the first rounds, then RSS moves in steps that stop (measured over 30 rounds: +2.5 MB
    // by round 4, +1.5 MB more by round 16, then flat). A leak of the pods' records (≥ 500 B
    // each) would add ≥ 4 MB over the last eight rounds.
    let mut rounds = Vec::new();
    for _ in 0..12 {
        for p in &churn {
            fake.apply(p.clone());
        }
        wait_for(1006.0);
        let peak = rss_kb(agent.pid());
        for p in &churn {
            fake.delete(p);
        }
        wait_for(6.0);
        rounds.push((peak, rss_kb(agent.pid())));
    }
    let series_after = agent.metrics().sum("egressor_series", &[]);
    let each: Vec<String> =
        rounds.iter().map(|(peak, after)| format!("peak {peak} kB, after {after} kB")).collect();
    println!(
        "RSS (debug build): baseline {} kB; rounds: {}; series {} → {}",
        baseline.0,
        each.join("; "),
        baseline.1,
        series_after
    );
    assert_eq!(agent.metrics().sum("egressor_kubernetes_objects", &[("kind", "PodIP")]), 6.0);
    // Pods that never sent create no series (other processes on the machine may add a few).
    assert!(series_after <= baseline.1 + 2.0, "series {} → {series_after}", baseline.1);
    assert!(
        rounds[11].1 <= rounds[3].1 + 2048,
        "RSS grew {} kB over the last eight rounds",
        rounds[11].1.saturating_sub(rounds[3].1)
    );
}

#[test]
fn an_api_server_down_at_start_leaves_bytes_unknown_until_it_answers_then_they_move() {
    if !require_bpf(
        "an_api_server_down_at_start_leaves_bytes_unknown_until_it_answers_then_they_move",
    ) {
        return;
    }
    let port = free_port();
    let kubeconfig = FakeKube::kubeconfig_for(&format!("http://127.0.0.1:{port}"));
    let w = World::new("kd", &["203.0.113.70"]);
    let api = Cgroup::nested("kda", &format!("kubepods/burstable/pod{API_POD}/{CONTAINER}"));
    // The agent starts, serves and counts while nothing answers at the API server's address.
    let agent = Agent::start(&["--kubeconfig", kubeconfig.to_str().unwrap()]);
    let send = |n: u64| {
        let out = helper_in_cgroup(
            &api,
            &w.client,
            HELPER,
            &["udp-send", "203.0.113.70:9700", &n.to_string(), "300"],
        );
        assert_eq!(out["sent"], n.to_string());
        n * (300 + 28)
    };
    let before = send(10);
    agent.settle();
    let m = agent.metrics();
    // 203.0.113.70 is a public address: nothing else on the machine sends there.
    let egress = |m: &Metrics, workload: &str| {
        let labels =
            [("direction", "egress"), ("workload", workload), ("traffic_class", "internet")];
        m.sum("egressor_flow_bytes_total", &labels)
    };
    assert_eq!(
        egress(&m, "unknown"),
        before as f64,
        "a pod not known yet is unknown\n{}",
        agent.metrics_text()
    );
    assert!(
        m.sum("egressor_kubernetes_watch_errors_total", &[("kind", "Pod")]) > 0.0,
        "the failures are counted"
    );
    assert!(agent.log().contains("Kubernetes watch failed; retrying with backoff"), "and logged");
    // The API server comes up: the watches recover, the flow's later bytes move to its pod's
    // workload; what was counted before stays where it was counted.
    let fake = FakeKube::start_on(port).with_fixtures();
    for _ in 0..300 {
        if agent.metrics().sum("egressor_kubernetes_objects", &[("kind", "Pod")]) >= 6.0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    agent.settle();
    let after = send(7);
    agent.settle();
    let m = agent.metrics();
    assert_eq!(egress(&m, "unknown"), before as f64, "{}", agent.metrics_text());
    assert_eq!(egress(&m, "api"), after as f64, "{}", agent.metrics_text());
    assert_eq!(
        m.sum("egressor_flow_bytes_total", &[("workload", "api"), ("namespace", "shop")]),
        after as f64
    );
    drop(fake);
}

/// What kube-proxy does on a node, done by nftables in the namespace that plays the node:
/// DNAT of Service addresses to backends, the `db` Service alternating between its two
/// backends per connection (`numgen inc`, deterministic where kube-proxy's `numgen random`
/// is not), and counters of what each backend received (the oracle).
const SERVICE_NAT: &str = "table ip egressor_test {
  counter db_0 {}
  counter db_1 {}
  counter legacy {}
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 10.96.0.20 udp dport 9600 dnat to numgen inc mod 2 map { 0 : 10.0.2.102, 1 : 10.0.3.105 }
    ip daddr 10.96.0.40 udp dport 9600 dnat to 10.0.3.200
  }
  chain input {
    type filter hook input priority filter; policy accept;
    ip daddr 10.0.2.102 udp dport 9600 counter name db_0
    ip daddr 10.0.3.105 udp dport 9600 counter name db_1
    ip daddr 10.0.3.200 udp dport 9600 counter name legacy
  }
}
";

/// Bytes an nftables named counter of [`SERVICE_NAT`] counted (L3, as the agent counts).
fn nft_counter_bytes(ns: &Netns, name: &str) -> u64 {
    let out = ns.run(&["nft", "list", "counter", "ip", "egressor_test", name]);
    let text = String::from_utf8_lossy(&out.stdout);
    let bytes = text.split_whitespace().skip_while(|w| *w != "bytes").nth(1);
    bytes.and_then(|b| b.parse().ok()).unwrap_or_else(|| panic!("no bytes in {text}"))
}

#[test]
fn cluster_ip_bytes_land_on_the_zone_of_the_backend_that_served_them() {
    if !require_bpf("cluster_ip_bytes_land_on_the_zone_of_the_backend_that_served_them") {
        return;
    }
    let fake = FakeKube::start().with_fixtures();
    // A second `db` replica, on node 3 (us-east-1c, legacy zone labels); db-0 is on node 2
    // (us-east-1b); this node is node 1 (us-east-1a).
    let pods = egressor_tests::kube_api::fixture("pods");
    let mut db_1 = pods.iter().find(|p| p["metadata"]["name"] == "db-0").unwrap().clone();
    db_1["metadata"]["name"] = "db-1".into();
    db_1["metadata"]["uid"] = "6f7a8b9c-0d1e-4f2a-8b3c-4d5e6f7a8b9c".into();
    db_1["spec"]["nodeName"] = "ip-10-0-3-30.ec2.internal".into();
    db_1["status"]["podIP"] = "10.0.3.105".into();
    db_1["status"]["podIPs"] = serde_json::json!([{"ip": "10.0.3.105"}]);
    fake.apply(db_1);
    let kubeconfig = fake.kubeconfig();
    let (db_0_ip, db_1_ip, legacy_ip) = ("10.0.2.102", "10.0.3.105", "10.0.3.200");
    let w = World::new("ks", &[db_0_ip, db_1_ip, legacy_ip]);
    let rules = temp_file("service-nat.nft", SERVICE_NAT);
    w.world.run(&["nft", "-f", rules.to_str().unwrap()]);
    let api = Cgroup::nested("ksa", &format!("kubepods/burstable/pod{API_POD}/{CONTAINER}"));
    let conntrack_netns = format!("/run/netns/{}", w.world.name);
    let agent = Agent::start(&[
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--kubernetes.node-name",
        "ip-10-0-1-10.ec2.internal",
        "--kubernetes.conntrack-netns",
        &conntrack_netns,
    ]);
    wait_for_pod_list(&agent);
    for _ in 0..100 {
        if agent.metrics().sum("egressor_kubernetes_lists_total", &[("kind", "Service")]) > 0.0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    agent.settle(); // a read cycle puts the Service addresses into the kernel's map

    let mut echoes: Vec<_> = [db_0_ip, db_1_ip]
        .iter()
        .map(|ip| {
            w.world
                .command(HELPER)
                .args(["udp-echo", &format!("{ip}:9600"), "50"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("echo server")
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let send = |target: &str, n: u64, size: u64, echo: bool| {
        let (n_text, size_text) = (n.to_string(), size.to_string());
        let mut args = vec!["udp-send", target, &n_text, &size_text];
        if echo {
            args.push("echo");
        }
        let out = helper_in_cgroup(&api, &w.client, HELPER, &args);
        assert_eq!(out["sent"], n.to_string(), "{out:?}");
        n * (size + 28)
    };
    // Two connections (two sockets) to the db Service: one lands on each backend.
    let first = send("10.96.0.20:9600", 20, 400, true);
    let second = send("10.96.0.20:9600", 30, 300, true);
    // A Service without backends (no NAT rule): nobody can say where it went.
    let to_cache = send("10.96.0.30:9600", 5, 100, false);
    // A selector-less Service whose EndpointSlice names an address that is no pod.
    let to_legacy = send("10.96.0.40:9600", 8, 200, false);
    agent.settle();
    for e in &mut echoes {
        let _ = e.kill();
        let _ = e.wait();
    }

    let (db_0, db_1, legacy) = (
        nft_counter_bytes(&w.world, "db_0"),
        nft_counter_bytes(&w.world, "db_1"),
        nft_counter_bytes(&w.world, "legacy"),
    );
    assert_eq!(db_0 + db_1, first + second, "the backends got every byte sent");
    assert!(db_0 > 0 && db_1 > 0, "each backend served one connection: {db_0} {db_1}");
    assert_eq!(legacy, to_legacy);

    let m = agent.metrics();
    let bytes = |direction: &str, labels: &[(&str, &str)]| {
        m.sum(
            "egressor_flow_bytes_total",
            &[&[("direction", direction), ("workload", "api"), ("namespace", "shop")], labels]
                .concat(),
        )
    };
    let text = agent.metrics_text();
    for direction in ["egress", "ingress"] {
        // Each byte on the zone of the backend that served it: the oracle is what each
        // backend received (the echo sends the same bytes back).
        let on = |zone: &str| {
            bytes(
                direction,
                &[
                    ("remote", "db"),
                    ("remote_kind", "StatefulSet"),
                    ("remote_zone", zone),
                    ("traffic_class", "cross_zone"),
                ],
            )
        };
        assert_eq!(on("us-east-1b"), db_0 as f64, "{direction} to db-0\n{text}");
        assert_eq!(on("us-east-1c"), db_1 as f64, "{direction} to db-1\n{text}");
    }
    assert_eq!(
        bytes(
            "egress",
            &[("remote", "cache"), ("remote_kind", "Service"), ("traffic_class", "unknown")]
        ),
        to_cache as f64,
        "no backend known: the Service, class unknown\n{text}"
    );
    assert_eq!(
        bytes(
            "egress",
            &[
                ("remote", "legacy-db"),
                ("remote_kind", "Service"),
                ("remote_zone", "us-east-1c"),
                ("traffic_class", "cross_zone")
            ]
        ),
        to_legacy as f64,
        "the EndpointSlice's zone\n{text}"
    );
    let lookups =
        |result: &str| m.sum("egressor_kubernetes_service_lookups_total", &[("result", result)]);
    assert!(lookups("backend") >= 5.0, "2 × 2 db flows and the legacy one\n{text}");
    // The cache's packets: not NATed, and dropped unrouted before conntrack confirms them.
    assert!(lookups("no_nat") + lookups("not_found") >= 1.0, "{text}");
    assert_eq!(lookups("error"), 0.0, "{}", agent.log());
    // Inter-zone: 0.01 USD/GiB on the sender's egress (AWS us-east-1 sheet, 2025-07-01).
    let cost = m.sum(
        "egressor_flow_cost_usd_total",
        &[("direction", "egress"), ("workload", "api"), ("remote", "db")],
    );
    let want = (db_0 + db_1) as f64 / (1u64 << 30) as f64 * 0.01;
    assert!((cost - want).abs() < 1e-15, "{cost} vs {want}");
}
