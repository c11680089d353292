//! No byte silently lost: with a flow map smaller than the number of flows, attributed plus
//! overflow bytes still equal the kernel's interface counters exactly; idle flows evicted
//! from the map keep their final counts.

use egressor_tests::*;

const HELPER: &str = env!("CARGO_BIN_EXE_egressor-traffic");

fn spray(ns: &Netns, ports: usize) {
    // Distinct service ports (below the ephemeral range) make distinct flows.
    helper(ns, HELPER, &["udp-spray", HOST.v4, "2000", &ports.to_string(), "120"]);
    helper(ns, HELPER, &["udp-spray", HOST.v6, "2000", &ports.to_string(), "120"]);
}

#[test]
fn full_map_overflows_into_counters_without_losing_bytes() {
    if !require_bpf("full_map_overflows_into_counters_without_losing_bytes") {
        return;
    }
    let ns = Netns::new("of");
    let veth = Veth::new("o", &ns, false);
    let agent = Agent::start(&["--interface", &veth.host, "--flow-map.max-entries", "8"]);
    veth.up();
    spray(&ns, 150);

    let kernel = assert_agent_matches_kernel(&agent, &veth.host, 0);
    let m = agent.metrics();
    let overflow = m.sum("egressor_flow_overflow_bytes_total", &[("hook", "tc")]);
    assert!(overflow > 0.0, "more flows than entries must overflow");
    assert!(m.sum("egressor_flow_map_entries", &[]) <= 8.0);
    assert_eq!(m.sum("egressor_flow_map_max_entries", &[]), 8.0);
    assert!(kernel.rx_packets >= 300, "{kernel:?}");
}

#[test]
fn idle_flows_are_evicted_with_their_final_counts() {
    if !require_bpf("idle_flows_are_evicted_with_their_final_counts") {
        return;
    }
    let ns = Netns::new("ev");
    let veth = Veth::new("e", &ns, false);
    let agent = Agent::start(&[
        "--interface",
        &veth.host,
        "--flow-map.max-entries",
        "512",
        "--flow.idle-timeout",
        "400ms",
    ]);
    veth.up();
    spray(&ns, 40);
    // Wait for the idle flows to be evicted, then reuse the same flows.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while agent.metrics().sum("egressor_flow_evictions_total", &[]) < 40.0 {
        assert!(std::time::Instant::now() < deadline, "no evictions:\n{}", agent.metrics_text());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    spray(&ns, 40);

    assert_agent_matches_kernel(&agent, &veth.host, 0);
    assert_eq!(agent.metrics().sum("egressor_flow_overflow_bytes_total", &[]), 0.0);
}
