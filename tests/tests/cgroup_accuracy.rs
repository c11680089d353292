//! cgroup accuracy: a process in a cgroup and network namespace of its own sends N
//! datagrams of known size; the agent reports exactly N × (payload + UDP + IP header) bytes
//! egress for that cgroup's workload, and the echoed replies as ingress.

use egressor_tests::*;

const HELPER: &str = env!("CARGO_BIN_EXE_egressor-traffic");

#[test]
fn cgroup_workload_gets_exactly_its_datagrams() {
    if !require_bpf("cgroup_workload_gets_exactly_its_datagrams") {
        return;
    }
    let ns = Netns::new("cg");
    let veth = Veth::new("c", &ns, true);
    let cgroup = Cgroup::new("cg");
    let (agent, programs) = start_agent_tracking_programs(&[]);
    veth.up();

    let (n, size) = (25u64, 700u64);
    let echo4 = udp_echo(&format!("{}:9100", HOST.v4), n as usize);
    let echo6 = udp_echo(&format!("[{}]:9100", HOST.v6), n as usize);
    let (count, bytes) = (n.to_string(), size.to_string());
    let target4 = format!("{}:9100", HOST.v4);
    let target6 = format!("[{}]:9100", HOST.v6);
    let out4 =
        helper_in_cgroup(&cgroup, &ns, HELPER, &["udp-send", &target4, &count, &bytes, "echo"]);
    let out6 =
        helper_in_cgroup(&cgroup, &ns, HELPER, &["udp-send", &target6, &count, &bytes, "echo"]);
    assert_eq!(out4["replies"], count);
    assert_eq!(out6["replies"], count);
    assert_eq!(echo4.join().unwrap(), n as usize);
    assert_eq!(echo6.join().unwrap(), n as usize);
    agent.settle();

    let m = agent.metrics();
    let mine = |direction| {
        let l =
            [("hook", "cgroup"), ("workload", cgroup.workload.as_str()), ("direction", direction)];
        (
            m.sum("egressor_flow_bytes_total", &l) as u64,
            m.sum("egressor_flow_packets_total", &l) as u64,
        )
    };
    // IPv4: 20-byte header, IPv6: 40; UDP: 8.
    let expected = n * (size + 8 + 20) + n * (size + 8 + 40);
    assert_eq!(mine("egress"), (expected, 2 * n), "egress of {}", cgroup.workload);
    assert_eq!(mine("ingress"), (expected, 2 * n), "replies as ingress");
    let classes: Vec<_> = m
        .select("egressor_flow_bytes_total", &[("workload", cgroup.workload.as_str())])
        .map(|(l, _)| l["traffic_class"].clone())
        .collect();
    // The peer addresses sit on this host's end of the veth: the remote is this host.
    assert!(classes.iter().all(|c| c == "same_host"), "{classes:?}");
    stop_and_assert_detached(agent, &programs);
}

#[test]
fn loopback_is_excluded_unless_asked_for() {
    if !require_bpf("loopback_is_excluded_unless_asked_for") {
        return;
    }
    let ns = Netns::new("lo");
    let cgroup = Cgroup::new("lo");
    let without = Agent::start(&[]);
    let with = Agent::start(&["--include-loopback"]);
    let echo = "127.0.0.1:9200";
    // The echo server runs in the namespace too: both ends are the cgroup's own sockets.
    let script =
        format!("{HELPER} udp-echo {echo} 5 & sleep 0.3; exec {HELPER} udp-send {echo} 5 100 echo");
    let procs = cgroup.path.join("cgroup.procs");
    run(&[
        "sh",
        "-c",
        &format!(
            "echo $$ > '{}' && exec ip netns exec '{}' sh -c '{}'",
            procs.display(),
            ns.name,
            script.replace('\'', "'\\''")
        ),
    ]);
    with.settle();
    let bytes = |a: &Agent| {
        a.metrics().sum("egressor_flow_bytes_total", &[("workload", cgroup.workload.as_str())])
    };
    // 5 requests + 5 replies of 100 + 8 + 20 bytes, each seen leaving and arriving.
    assert_eq!(bytes(&with) as u64, 4 * 5 * 128, "--include-loopback counts lo");
    assert_eq!(bytes(&without), 0.0, "loopback excluded by default");
}

#[test]
fn both_hooks_count_each_byte_once_per_hook() {
    if !require_bpf("both_hooks_count_each_byte_once_per_hook") {
        return;
    }
    let ns = Netns::new("bh");
    let veth = Veth::new("h", &ns, false);
    let cgroup = Cgroup::new("bh");
    let config = temp_file("both.yaml", "networks:\n  - {cidr: 198.51.100.0/24, name: v4-link}\n");
    let cfg = config.to_str().unwrap();
    let agent = Agent::start(&["--hook", "both", "--interface", &veth.host, "--config.file", cfg]);
    veth.up();
    let (n, size) = (20u64, 500u64);
    let echo = udp_echo(&format!("{}:9150", HOST.v4), n as usize);
    let target = format!("{}:9150", HOST.v4);
    helper_in_cgroup(
        &cgroup,
        &ns,
        HELPER,
        &["udp-send", &target, &n.to_string(), &size.to_string(), "echo"],
    );
    assert_eq!(echo.join().unwrap(), n as usize);

    assert_agent_matches_kernel(&agent, &veth.host, 0);
    let m = agent.metrics();
    for direction in ["egress", "ingress"] {
        let l =
            [("hook", "cgroup"), ("workload", cgroup.workload.as_str()), ("direction", direction)];
        assert_eq!(m.sum("egressor_flow_bytes_total", &l) as u64, n * (size + 28), "{direction}");
        assert_eq!(m.sum("egressor_flow_packets_total", &l) as u64, n);
    }
    // The same datagrams on the TC side, once each: the IPv4 link carries nothing else
    // (ARP is non-IP), and from the host's interface the peer is the remote.
    for direction in ["egress", "ingress"] {
        let l = [("hook", "tc"), ("remote", "v4-link"), ("direction", direction)];
        assert_eq!(
            m.sum("egressor_flow_bytes_total", &l) as u64,
            n * (size + 28),
            "tc {direction}"
        );
        assert_eq!(m.sum("egressor_flow_packets_total", &l) as u64, n);
    }
    let _ = std::fs::remove_file(config);
}
