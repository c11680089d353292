//! TC accuracy: the agent's per-interface counters equal the kernel's own interface
//! counters exactly (less the Ethernet header), and GSO super-packets count as the segments
//! the wire carries.

use egressor_tests::*;

const HELPER: &str = env!("CARGO_BIN_EXE_egressor-traffic");

#[test]
fn tcx_counters_equal_interface_counters_with_offloads_off() {
    if require_bpf("tcx_counters_equal_interface_counters_with_offloads_off") {
        exact_counts("tcx");
    }
}

#[test]
fn clsact_counters_equal_interface_counters_with_offloads_off() {
    if require_bpf("clsact_counters_equal_interface_counters_with_offloads_off") {
        exact_counts("clsact");
    }
}

/// UDP and TCP both ways, IPv4 and IPv6, over a veth whose host end has the TC programs
/// attached with `mode`; the agent's counters must equal the interface's.
fn exact_counts(mode: &str) {
    let ns = Netns::new("tc");
    let veth = Veth::new("t", &ns, false);
    let (agent, programs) =
        start_agent_tracking_programs(&["--interface", &veth.host, "--tc.attach-mode", mode]);
    let attached = agent.metrics();
    for direction in ["ingress", "egress"] {
        let l = [
            ("hook", "tc"),
            ("direction", direction),
            ("target", veth.host.as_str()),
            ("mechanism", mode),
        ];
        assert_eq!(attached.sum("egressor_program_attached", &l), 1.0, "{direction} via {mode}");
    }
    veth.up();

    // UDP both ways (request from the namespace, echo from the host), IPv4 and IPv6.
    let (count, size) = (40, 1000);
    let echo4 = udp_echo(&format!("{}:9000", HOST.v4), count);
    let echo6 = udp_echo(&format!("[{}]:9000", HOST.v6), count);
    let c = count.to_string();
    let s = size.to_string();
    helper(&ns, HELPER, &["udp-send", &format!("{}:9000", HOST.v4), &c, &s, "echo"]);
    helper(&ns, HELPER, &["udp-send", &format!("[{}]:9000", HOST.v6), &c, &s, "echo"]);
    assert_eq!(echo4.join().unwrap(), count);
    assert_eq!(echo6.join().unwrap(), count);

    // TCP both ways: namespace → host, then host → namespace.
    let bytes: u64 = 3_000_000;
    let sink = tcp_sink(&format!("{}:5001", HOST.v4));
    helper(&ns, HELPER, &["tcp-send", &format!("{}:5001", HOST.v4), &bytes.to_string()]);
    assert_eq!(sink.join().unwrap(), bytes);
    let mut ns_sink = ns
        .command(HELPER)
        .args(["tcp-sink", &format!("[{}]:5002", PEER.v6)])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sink");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(ns_sink.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.starts_with("listening="), "{line}");
    tcp_send(&format!("[{}]:5002", PEER.v6), bytes);
    assert!(ns_sink.wait().unwrap().success());

    let kernel = assert_agent_matches_kernel(&agent, &veth.host, 0);
    let sent_packets = 2 * count as u64 + bytes / 1500;
    assert!(kernel.rx_packets > sent_packets, "the traffic reached the interface: {kernel:?}");
    assert!(kernel.tx_packets > sent_packets, "{kernel:?}");
    stop_and_assert_detached(agent, &programs);
    if mode == "clsact" {
        let filters = run(&["tc", "filter", "show", "dev", &veth.host, "ingress"]);
        assert!(filters.stdout.is_empty(), "clsact filter left behind");
    }
}

#[test]
fn gso_super_packets_count_as_wire_segments() {
    if !require_bpf("gso_super_packets_count_as_wire_segments") {
        return;
    }
    let ns = Netns::new("gs");
    let veth = Veth::new("g", &ns, true);
    let config = temp_file(
        "gso.yaml",
        &format!("networks:\n  - {{cidr: {}/32, name: bulk-peer}}\n", PEER.v4),
    );
    let agent =
        Agent::start(&["--interface", &veth.host, "--config.file", config.to_str().unwrap()]);
    veth.up();
    // Pace the sender (token bucket, bursts larger than any GSO packet so tbf never splits
    // one): unpaced, veth floods the receiving CPU's backlog, which drops super-packets
    // before any hook sees them, and the retransmissions would blur the oracle.
    ns.run(&[
        "tc", "qdisc", "add", "dev", &veth.peer, "root", "tbf", "rate", "400mbit", "burst",
        "256kb", "latency", "200ms",
    ]);

    let segs_before = snmp(&ns, "Tcp", "OutSegs");
    let retrans_before = snmp(&ns, "Tcp", "RetransSegs");
    let rx_before = IfStats::read(&veth.host);
    let bytes: u64 = 20_000_000;
    let sink = tcp_sink(&format!("{}:5201", HOST.v4));
    helper(&ns, HELPER, &["tcp-send", &format!("{}:5201", HOST.v4), &bytes.to_string()]);
    assert_eq!(sink.join().unwrap(), bytes);
    let segments = snmp(&ns, "Tcp", "OutSegs") - segs_before;
    assert_eq!(snmp(&ns, "Tcp", "RetransSegs"), retrans_before, "no retransmissions");
    let (kernel, _, _) = quiet_comparison(&agent, &veth.host);
    let skbs = kernel.rx_packets - rx_before.rx_packets;
    assert!(skbs < segments, "GSO in use: {skbs} skbs carried {segments} segments");

    let m = agent.metrics();
    let peer = [("hook", "tc"), ("direction", "ingress"), ("remote", "bulk-peer")];
    let got_packets = m.sum("egressor_flow_packets_total", &peer) as u64;
    let got_bytes = m.sum("egressor_flow_bytes_total", &peer) as u64;
    // Every segment: IPv4 header (20) + TCP header with the timestamp option (32); the SYN
    // carries 8 more option bytes (MSS, SACK-permitted, timestamps, window scale: 40).
    let expected = bytes + segments * (20 + 32) + 8;
    assert_eq!(got_packets, segments, "one packet per wire segment");
    assert_eq!(got_bytes, expected, "payload + per-segment headers");
    let _ = std::fs::remove_file(config);
}

#[test]
fn clsact_filters_left_by_a_killed_agent_are_replaced() {
    if !require_bpf("clsact_filters_left_by_a_killed_agent_are_replaced") {
        return;
    }
    let ns = Netns::new("ks");
    let veth = Veth::new("k", &ns, false);
    let args = ["--interface", veth.host.as_str(), "--tc.attach-mode", "clsact"];
    let filters = || {
        let out = run(&["tc", "filter", "show", "dev", &veth.host, "ingress"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("egr_tc_ingress"))
            .count()
    };
    let killed = Agent::start(&args);
    killed.kill();
    assert_eq!(filters(), 1, "SIGKILL leaves the netlink filter behind");
    let agent = Agent::start(&args);
    assert_eq!(filters(), 1, "the new agent replaced it instead of adding a second");
    assert!(agent.log().contains("removed a filter left by an egressor"), "{}", agent.log());
    assert!(agent.stop().success());
    assert_eq!(filters(), 0, "a clean exit removes its filter");
}
