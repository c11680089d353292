//! Remote names from DNS on real traffic: a real DNS server (dnsmasq, bound only inside a
//! namespace this test made) answers A and AAAA records behind a CNAME chain, over UDP and
//! over TCP; a client in a cgroup resolves with the system resolver and sends to the answers;
//! the flow counters carry the name the client asked for.

use std::{
    path::PathBuf,
    process::{Child, Stdio},
    time::Duration,
};

use egressor_tests::*;

const HELPER: &str = env!("CARGO_BIN_EXE_egressor-traffic");

/// dnsmasq, killed on drop.
struct Dnsmasq(Child);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `/etc/netns/<ns>/resolv.conf`, which `ip netns exec` mounts over /etc/resolv.conf;
/// removed on drop.
struct NetnsResolvConf(PathBuf);

impl NetnsResolvConf {
    fn write(ns: &Netns, text: &str) -> Self {
        let dir = PathBuf::from("/etc/netns").join(&ns.name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("resolv.conf"), text).unwrap();
        Self(dir)
    }
}

impl Drop for NetnsResolvConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn flows_carry_the_queried_name_through_cname_chains_over_udp_and_tcp() {
    if !require_bpf("flows_carry_the_queried_name_through_cname_chains_over_udp_and_tcp") {
        return;
    }
    let w = World::new("d", &["203.0.113.10", "203.0.113.11", "2001:db8:5::10"]);
    let (client, server) = (&w.client, &w.world);
    let _dnsmasq = Dnsmasq(
        server
            .command("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--user=root",
                "--bind-interfaces",
                &format!("--listen-address={}", HOST.v4),
                "--port=53",
                "--local-ttl=300",
                "--host-record=api.example.test,203.0.113.10,2001:db8:5::10",
                "--cname=edge.example.test,api.example.test",
                "--cname=www.example.test,edge.example.test",
                "--host-record=tcp.example.test,203.0.113.11",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("dnsmasq (apt-get install dnsmasq-base)"),
    );
    std::thread::sleep(Duration::from_millis(300));
    let cgroup = Cgroup::new("dc");
    let config = temp_file("dns.yaml", "cloud_ranges: {sources: []}\n");
    let agent = Agent::start(&["--config.file", config.to_str().unwrap()]);

    let (count, size) = (10u64, 400u64);
    let resolve_send = |name: &str| {
        let out = helper_in_cgroup(
            &cgroup,
            client,
            HELPER,
            &["resolve-send", name, "9400", &count.to_string(), &size.to_string()],
        );
        out["addresses"].clone()
    };
    // Over UDP: the chain www → edge → api, A and AAAA.
    let resolv =
        NetnsResolvConf::write(client, &format!("nameserver {}\noptions timeout:2\n", HOST.v4));
    assert_eq!(resolve_send("www.example.test"), "203.0.113.10,2001:db8:5::10");
    // Over TCP (glibc's use-vc).
    drop(resolv);
    let _resolv = NetnsResolvConf::write(
        client,
        &format!("nameserver {}\noptions use-vc timeout:2\n", HOST.v4),
    );
    assert_eq!(resolve_send("tcp.example.test"), "203.0.113.11");
    agent.settle();

    let m = agent.metrics();
    let named = |name: &str| {
        m.sum(
            "egressor_flow_bytes_total",
            &[("workload", cgroup.workload.as_str()), ("direction", "egress"), ("remote", name)],
        )
    };
    // Each datagram: payload + 8 UDP + 20 IPv4 (or 40 IPv6) bytes.
    assert_eq!(named("www.example.test"), (count * (size + 28) + count * (size + 48)) as f64);
    assert_eq!(named("tcp.example.test"), (count * (size + 28)) as f64);
    assert_eq!(named("api.example.test"), 0.0, "the name asked for, not the chain's end");
    let captured = m.sum("egressor_dns_responses_total", &[("outcome", "captured")]);
    assert!(captured >= 3.0, "A and AAAA over UDP, A over TCP: {captured}");
    assert_eq!(m.sum("egressor_dns_parse_errors_total", &[]), 0.0);

    // The API shows the name next to the raw address.
    let (_, body) = agent.get("/api/v1/flows?top=1000").unwrap();
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    let tcp_flow = reply["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["remote_address"] == "203.0.113.11" && f["direction"] == "egress")
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(tcp_flow["name"], "tcp.example.test");
    let _ = std::fs::remove_file(config);
}
