//! Bad input: malformed configuration, unknown interfaces, unusable cgroup paths, bad price
//! sheets and missing privileges end with a clear message and the documented exit code;
//! odd packets (fragments, truncated headers, unknown EtherTypes, IPv6 extension chains)
//! never stop the agent nor lose a byte.

use std::process::{Command, Output};

use egressor_common::{Direction, FlowKey, Hook};
use egressor_tests::*;

const HELPER: &str = env!("CARGO_BIN_EXE_egressor-traffic");

fn agent(args: &[&str]) -> Output {
    let listen = format!("127.0.0.1:{}", free_port());
    Command::new(egressor_bin())
        .args(["agent", "--web.listen-address", &listen])
        .args(args)
        .output()
        .expect("run egressor")
}

fn assert_usage_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit code for bad input; stderr: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn malformed_config_names_file_field_and_line() {
    let bad = temp_file(
        "bad.yaml",
        "node:\n  zone: use1-az1\nnetworks:\n  - cidr: 10.0.0.300/8\n    name: x\n",
    );
    let out = agent(&["--config.file", bad.to_str().unwrap()]);
    assert_usage_error(&out, &[bad.to_str().unwrap(), "networks[0].cidr", "line 4"]);
    let typo = temp_file("typo.yaml", "nodes: {}\n");
    assert_usage_error(
        &agent(&["--config.file", typo.to_str().unwrap()]),
        &["unknown field `nodes`"],
    );
    let missing = agent(&["--config.file", "/nonexistent/egressor.yaml"]);
    assert_usage_error(&missing, &["cannot read /nonexistent/egressor.yaml", "No such file"]);
    let _ = std::fs::remove_file(bad);
    let _ = std::fs::remove_file(typo);
}

#[test]
fn bad_price_sheet_names_the_price() {
    let sheet = temp_file(
        "prices.yaml",
        "provider: aws\nregion: y\ncurrency: USD\nversion: v\nprices:\n  internet:\n    \
         egress: {usd_per_gib: -0.09, source: s, as_of: '2026-01-01'}\n",
    );
    let out = agent(&["--prices", sheet.to_str().unwrap()]);
    assert_usage_error(&out, &["prices.internet.egress.usd_per_gib"]);
    let _ = std::fs::remove_file(sheet);
}

#[test]
fn unknown_interface_and_unusable_cgroup_paths_are_usage_errors() {
    assert_usage_error(
        &agent(&["--interface", "egnope0"]),
        &["--interface egnope0: no such network interface"],
    );
    assert_usage_error(
        &agent(&["--cgroup.path", "/nonexistent/cg"]),
        &["--cgroup.path /nonexistent/cg"],
    );
    let dir = std::env::temp_dir();
    assert_usage_error(
        &agent(&["--cgroup.path", dir.to_str().unwrap()]),
        &["not a cgroup directory"],
    );
    assert_usage_error(&agent(&["--read-interval", "soon"]), &["--read-interval"]);
    assert_usage_error(&agent(&["--flow-map.max-entries", "0"]), &["--flow-map.max-entries"]);
}

/// Runs the agent as `nobody` with exactly the capabilities in `caps` (setpriv syntax,
/// e.g. `+bpf,+perfmon`), for at most `seconds`.
fn agent_with_capabilities(caps: &str, seconds: &str) -> Output {
    let listen = format!("127.0.0.1:{}", free_port());
    let set = format!("-all{caps}");
    Command::new("timeout")
        .args([seconds, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        .args([format!("--inh-caps={set}"), format!("--ambient-caps={set}")])
        .arg(format!("--bounding-set={set}"))
        .arg(egressor_bin())
        .args(["agent", "--web.listen-address", &listen])
        .output()
        .expect("setpriv (util-linux)")
}

#[test]
fn missing_capabilities_are_named() {
    if !require_bpf("missing_capabilities_are_named") {
        return;
    }
    for (caps, missing) in [
        ("", "missing CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN"),
        (",+bpf,+net_admin", "missing CAP_PERFMON:"),
        (",+bpf,+perfmon", "missing CAP_NET_ADMIN:"),
    ] {
        let out = agent_with_capabilities(caps, "10");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{caps}: {stderr}");
        assert!(stderr.contains(missing), "{caps}: {stderr}");
    }
}

#[test]
fn bpf_perfmon_and_net_admin_are_enough() {
    if !require_bpf("bpf_perfmon_and_net_admin_are_enough") {
        return;
    }
    // Still running when `timeout` stops it (exit 124) means it loaded and attached.
    let out = agent_with_capabilities(",+bpf,+perfmon,+net_admin", "3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(124), "{stderr}");
    assert!(stderr.contains("serving OpenMetrics"), "{stderr}");
}

#[test]
fn odd_packets_neither_stop_the_agent_nor_lose_bytes() {
    if !require_bpf("odd_packets_neither_stop_the_agent_nor_lose_bytes") {
        return;
    }
    let ns = Netns::new("bi");
    let veth = Veth::new("b", &ns, false);
    let (agent, programs) = start_agent_tracking_programs(&["--interface", &veth.host]);
    veth.up();
    // Crafted frames into the host (TC ingress) and out of it (TC egress), twice each.
    for _ in 0..2 {
        let sent = helper(&ns, HELPER, &["raw-frames", &veth.peer]);
        assert_eq!(sent["frames"], "14");
        let out = run(&[HELPER, "raw-frames", &veth.host]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("frames=14"));
    }
    // Real fragments: a 4000-byte datagram over a 1500-byte MTU, both families.
    let echo4 = udp_echo(&format!("{}:9400", HOST.v4), 1);
    let echo6 = udp_echo(&format!("[{}]:9400", HOST.v6), 1);
    helper(&ns, HELPER, &["udp-send", &format!("{}:9400", HOST.v4), "1", "4000", "echo"]);
    helper(&ns, HELPER, &["udp-send", &format!("[{}]:9400", HOST.v6), "1", "4000", "echo"]);
    assert_eq!(echo4.join().unwrap() + echo6.join().unwrap(), 2);

    // The two 802.1Q-tagged frames each way carry 4 link-layer bytes more.
    assert_agent_matches_kernel(&agent, &veth.host, 2 * 4);
    let m = agent.metrics();
    assert_eq!(m.sum("egressor_read_errors_total", &[]), 0.0);
    // The unknown EtherType frame (34-byte payload) in each direction, twice, counted as
    // non-IP L3 bytes; ARP adds to the class, never subtracts.
    let non_ip = m.sum("egressor_flow_bytes_total", &[("traffic_class", "non_ip")]);
    assert!(non_ip >= 4.0 * 34.0, "non-IP bytes {non_ip}");
    assert_eq!(agent.get("/healthz").map(|r| r.0), Some(200));

    // What the parser put in the kernel's keys for the crafted frames that arrived (TC
    // ingress), each checked against the frame as built in egressor-traffic.
    let keys: Vec<FlowKey> = kernel_flow_keys(&programs)
        .into_iter()
        .filter(|k| k.hook == Hook::Tc as u8 && k.direction == Direction::Ingress as u8)
        .collect();
    let has = |family: u8, protocol: u8, port: u16, remote: Option<&str>| {
        keys.iter().any(|k| {
            k.family == family
                && k.protocol == protocol
                && k.port == port
                && remote.is_none_or(|r| k.remote_addr == words(r))
        })
    };
    let (v4, v6) = (egressor_common::family::IPV4, egressor_common::family::IPV6);
    let cases = [
        (
            "IPv6 hop-by-hop → routing → dest-opts → fragment → UDP: service port 9000",
            has(v6, 17, 9000, Some(PEER.v6)),
        ),
        (
            "IPv6 non-first fragment: protocol from the fragment header, no port",
            has(v6, 17, 0, Some(PEER.v6)),
        ),
        (
            "IPv6 chain longer than the walk: stops at the 7th header (dest-opts, 60)",
            has(v6, 60, 0, Some(PEER.v6)),
        ),
        ("802.1Q-tagged IPv4 UDP: service port 9000", has(v4, 17, 9000, Some(PEER.v4))),
        ("IPv4 with options, UDP: service port 9001", has(v4, 17, 9001, Some(PEER.v4))),
        ("IPv4 non-first fragment: no port", has(v4, 17, 0, Some(PEER.v4))),
        ("TCP header cut short: protocol kept, no port", has(v4, 6, 0, Some(PEER.v4))),
        (
            "unknown EtherType kept in the port field",
            has(egressor_common::family::NON_IP, 0, 0x88B5, None),
        ),
    ];
    let missing: Vec<_> = cases.iter().filter(|(_, ok)| !ok).map(|(what, _)| *what).collect();
    assert!(missing.is_empty(), "keys missing: {missing:?}\nkeys: {keys:#?}");
    stop_and_assert_detached(agent, &programs);
}

/// An address as the key stores it.
fn words(addr: &str) -> [u32; 4] {
    let bytes = match addr.parse::<std::net::IpAddr>().expect("address") {
        std::net::IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            b
        }
        std::net::IpAddr::V6(a) => a.octets(),
    };
    FlowKey::address_words(&bytes)
}

#[test]
fn corrupt_range_files_warn_and_count_while_the_agent_runs() {
    if !require_bpf("corrupt_range_files_warn_and_count_while_the_agent_runs") {
        return;
    }
    let Some(aws) = shared_data("cloud-ranges/aws-ip-ranges.json") else { return };
    // A good AWS file, a truncated GCP file, a missing Azure file.
    let text =
        std::fs::read_to_string(shared_data("cloud-ranges/google-cloud-ip-ranges.json").unwrap())
            .unwrap();
    let truncated = temp_file("cloud-truncated.json", &text[..text.len() / 2]);
    let config = temp_file(
        "ranges.yaml",
        &format!(
            "cloud_ranges:\n  cache_dir: null\n  sources:\n    - {{provider: aws, file: {}}}\n    \
             - {{provider: gcp, file: {}}}\n    - {{provider: azure, file: /nonexistent/tags.json}}\n",
            aws.display(),
            truncated.display()
        ),
    );
    let agent = Agent::start(&["--config.file", config.to_str().unwrap()]);
    let m = agent.metrics();
    let up = |provider: &str| m.sum("egressor_cloud_ranges_up", &[("provider", provider)]);
    assert_eq!((up("aws"), up("gcp"), up("azure")), (1.0, 0.0, 0.0));
    assert_eq!(m.sum("egressor_cloud_ranges_load_errors_total", &[("provider", "gcp")]), 1.0);
    let log = agent.log();
    assert!(log.contains("not a gcp range file") && log.contains("line 1"), "{log}");
    assert!(log.contains("/nonexistent/tags.json"), "{log}");
    let _ = std::fs::remove_file(config);
    let _ = std::fs::remove_file(truncated);
}

#[test]
fn bad_maxmind_databases_and_token_files_are_usage_errors() {
    let garbage = temp_file("garbage.mmdb", "not a MaxMind database\n");
    let out = agent(&["--geoip-asn", garbage.to_str().unwrap()]);
    assert_usage_error(&out, &["--geoip-asn", garbage.to_str().unwrap(), "invalid database"]);
    if let Some(country) = shared_data("mmdb/GeoIP2-Country-Test.mmdb") {
        let out = agent(&["--geoip-asn", country.to_str().unwrap()]);
        assert_usage_error(&out, &["--geoip-asn", "GeoIP2-Country", "needs one of type ASN"]);
    }
    let empty = temp_file("empty-token", "\n");
    let out = agent(&["--web.api.bearer-token-file", empty.to_str().unwrap()]);
    assert_usage_error(&out, &["--web.api.bearer-token-file", "is empty"]);
    let _ = std::fs::remove_file(garbage);
    let _ = std::fs::remove_file(empty);
}
