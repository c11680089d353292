//! Remote names from DNS on real traffic: a real DNS server (dnsmasq, bound only inside a
//! namespace this test made) answers A and AAAA records behind a CNAME chain, over UDP and
//! TCP, over IPv4 and IPv6; a client in a cgroup resolves with the system resolver and sends
//! to the answers; the flow counters carry the name the client asked for, and
//! `egressor classify --agent` says the same name for the address. The capture itself copies
//! only responses from port 53, at most `--dns.events-per-second` per CPU, and counts the rest.

use std::{
    path::PathBuf,
    process::{Child, Stdio},
    time::Duration,
};

use egressor_tests::*;

const HELPER: &str = env!("CARGO_BIN_EXE_egressor-traffic");

/// A server process (dnsmasq, an echo), killed on drop.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
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
    let w = World::new("d", &["203.0.113.10", "203.0.113.11", "203.0.113.12", "2001:db8:5::10"]);
    let (client, server) = (&w.client, &w.world);
    let _dnsmasq = KillOnDrop(
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
                &format!("--listen-address={}", HOST.v6),
                "--port=53",
                "--local-ttl=300",
                "--host-record=api.example.test,203.0.113.10,2001:db8:5::10",
                "--cname=edge.example.test,api.example.test",
                "--cname=www.example.test,edge.example.test",
                "--host-record=tcp.example.test,203.0.113.11",
                "--host-record=six.example.test,203.0.113.12",
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
    // Over UDP to a nameserver's IPv6 address.
    drop(_resolv);
    let _resolv =
        NetnsResolvConf::write(client, &format!("nameserver {}\noptions timeout:2\n", HOST.v6));
    assert_eq!(resolve_send("six.example.test"), "203.0.113.12");
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
    assert_eq!(named("six.example.test"), (count * (size + 28)) as f64);
    assert_eq!(named("api.example.test"), 0.0, "the name asked for, not the chain's end");
    let captured = m.sum("egressor_dns_responses_total", &[("outcome", "captured")]);
    assert!(captured >= 4.0, "A and AAAA over UDP, A over TCP, A over IPv6: {captured}");
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

    // `egressor classify --agent` asks the agent: the names it learned, in the order asked.
    let out = run(&[
        egressor_bin().to_str().unwrap(),
        "classify",
        "--agent",
        &agent.url(),
        "--json",
        "2001:db8:5::10",
        "203.0.113.11",
        "203.0.113.99",
    ]);
    let verdicts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let field = |i: usize, k: &str| verdicts[i][k].clone();
    assert_eq!(
        (field(0, "name"), field(0, "name_source")),
        ("www.example.test".into(), "dns".into())
    );
    assert_eq!(
        (field(1, "name"), field(1, "name_source")),
        ("tcp.example.test".into(), "dns".into())
    );
    assert_eq!(field(1, "traffic_class"), "internet");
    assert_eq!(field(2, "name"), serde_json::Value::Null, "never resolved: no name");
    let _ = std::fs::remove_file(config);
}

/// CPUs the kernel may run the programs on (the rate limit is per CPU).
fn online_cpus() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

#[test]
fn dns_capture_copies_only_port_53_responses_and_is_rate_limited() {
    if !require_bpf("dns_capture_copies_only_port_53_responses_and_is_rate_limited") {
        return;
    }
    let w = World::new("r", &["203.0.113.20"]);
    let (client, server) = (&w.client, &w.world);
    let cgroup = Cgroup::new("rc");
    let config = temp_file("dns-rate.yaml", "cloud_ranges: {sources: []}\n");
    let per_second = 20u64;
    let agent = Agent::start(&[
        "--config.file",
        config.to_str().unwrap(),
        "--dns.events-per-second",
        &per_second.to_string(),
    ]);
    let echo = |port: u16, count: u64| -> f64 {
        let server = KillOnDrop(
            server
                .command(HELPER)
                .args(["udp-echo", &format!("203.0.113.20:{port}"), &count.to_string()])
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(200));
        let target = format!("203.0.113.20:{port}");
        let out =
            helper_in_cgroup(&cgroup, client, HELPER, &["dns-echo", &target, &count.to_string()]);
        drop(server);
        out["seconds"].parse().unwrap()
    };
    let outcomes = || {
        let m = agent.metrics();
        let o = |o: &str| m.sum("egressor_dns_responses_total", &[("outcome", o)]);
        (o("captured"), o("rate_limited"), o("ring_full"))
    };
    // The names learned for 203.0.113.0–199 (the answers' addresses), from the agent.
    let flood_names = || -> Vec<String> {
        let list: Vec<String> = (0..200).map(|i| format!("203.0.113.{i}")).collect();
        let (code, body) =
            agent.get(&format!("/api/v1/classify?address={}", list.join(","))).unwrap();
        assert_eq!(code, 200, "{body}");
        let verdicts: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        verdicts.iter().filter_map(|v| v["name"].as_str().map(str::to_owned)).collect()
    };
    // The machine's own DNS traffic is counted too (the agent sees every socket): allow a
    // little of it on top of the test's.
    let noise = 30.0;

    // DNS responses from another port are never copied.
    echo(5300, 100);
    agent.settle();
    let before = outcomes();
    assert!(before.0 + before.1 + before.2 < noise, "{before:?} after responses from port 5300");
    assert_eq!(flood_names(), Vec::<String>::new(), "nothing learned from port 5300");

    // 1,000 responses from port 53 as fast as the echo goes: the first per second and CPU
    // are copied, the rest counted as rate limited; nothing is lost without a count.
    let n = 1_000.0;
    let seconds = echo(53, n as u64);
    agent.settle();
    let after = outcomes();
    let (captured, limited, full) = (after.0 - before.0, after.1 - before.1, after.2 - before.2);
    let seen = captured + limited + full;
    assert!(seen >= n && seen < n + noise, "{seen} responses counted for {n} sent");
    let windows = seconds.ceil() + 1.0;
    let bound = per_second as f64 * online_cpus() as f64 * windows;
    assert!(
        captured >= per_second as f64 && captured <= bound + noise,
        "{captured} captured in {seconds:.2} s at {per_second}/s per CPU"
    );
    assert!(limited >= n - bound, "{limited} rate limited");
    let names = flood_names();
    assert!(
        !names.is_empty() && names.len() as f64 <= captured,
        "{} addresses named, {captured} responses captured",
        names.len()
    );
    assert!(names.iter().all(|n| n.ends_with(".flood.test")), "{names:?}");
    assert_eq!(agent.metrics().sum("egressor_dns_parse_errors_total", &[]), 0.0);
    let _ = std::fs::remove_file(config);
}
