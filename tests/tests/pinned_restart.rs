//! Upgrades without gaps (`--bpf.pin-path`): an agent killed mid-traffic and started again
//! (SIGKILL, then a graceful SIGTERM restart) still reports exactly the bytes the kernel's
//! interface counters saw (TC hooks), or exactly the datagrams a workload sent (cgroup hooks,
//! the DaemonSet's default), including those sent while no agent ran; without pins the same
//! restart loses them. An incompatible pinned layout is replaced, and `egressor unpin`
//! detaches what is left.

use std::{
    path::PathBuf,
    thread,
    time::{Duration, Instant},
};

use egressor_tests::*;

const HELPER: &str = env!("CARGO_BIN_EXE_egressor-traffic");

/// A private bpffs mount, unmounted on drop (which unpins, and so detaches, what is left).
struct BpfFs {
    path: PathBuf,
}

impl BpfFs {
    fn mount(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("egressor-bpffs-{}", unique_name(tag)));
        std::fs::create_dir_all(&path).unwrap();
        let out = run(&["mount", "-t", "bpf", "bpf", path.to_str().unwrap()]);
        assert!(out.status.success(), "mount bpffs: {}", String::from_utf8_lossy(&out.stderr));
        Self { path }
    }
}

/// Where an agent pins (`egressor` in a fresh bpffs mount) and its checkpoint file (not
/// created yet).
fn pin_paths(tag: &str) -> (BpfFs, PathBuf, PathBuf) {
    let bpffs = BpfFs::mount(tag);
    let pins = bpffs.path.join("egressor");
    let checkpoint = temp_file(&format!("{tag}-checkpoint"), "");
    std::fs::remove_file(&checkpoint).unwrap();
    (bpffs, pins, checkpoint)
}

impl Drop for BpfFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Paced TCP from the namespace to the host: `bytes` at 24 Mbit/s (about 3 s for 9 MB),
/// so restarts happen mid-stream. Returns the sender's thread.
fn paced_stream(ns: &Netns, veth: &Veth, port: u16, bytes: u64) -> thread::JoinHandle<()> {
    ns.run(&[
        "tc", "qdisc", "replace", "dev", &veth.peer, "root", "tbf", "rate", "24mbit", "burst",
        "32kb", "latency", "400ms",
    ]);
    let sink = tcp_sink(&format!("{}:{port}", HOST.v4));
    let target = format!("{}:{port}", HOST.v4);
    let ns_name = ns.name.clone();
    thread::spawn(move || {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &ns_name, HELPER, "tcp-send", &target, &bytes.to_string()])
            .output()
            .expect("run the sender");
        assert!(out.status.success(), "sender: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(sink.join().unwrap(), bytes, "the sink got every byte");
    })
}

fn agent_args<'a>(veth: &'a Veth, pins: Option<&'a str>, checkpoint: &'a str) -> Vec<&'a str> {
    let mut args = vec!["--interface", veth.host.as_str(), "--tc.attach-mode", "tcx"];
    if let Some(p) = pins {
        args.extend(["--bpf.pin-path", p, "--bpf.checkpoint-file", checkpoint]);
    }
    args
}

fn rx_bytes(dev: &str) -> u64 {
    IfStats::read(dev).rx_bytes
}

#[test]
fn restarts_with_pinned_maps_lose_and_double_nothing() {
    if !require_bpf("restarts_with_pinned_maps_lose_and_double_nothing") {
        return;
    }
    let ns = Netns::new("pin");
    let veth = Veth::new("p", &ns, false);
    let (_bpffs, pins, checkpoint) = pin_paths("pin");
    let (pins_s, ckpt_s) = (pins.to_str().unwrap(), checkpoint.to_str().unwrap());
    let args = agent_args(&veth, Some(pins_s), ckpt_s);

    let (first, first_programs) = start_agent_tracking_programs(&args);
    veth.up();
    let stream = paced_stream(&ns, &veth, 5301, 9_000_000);
    thread::sleep(Duration::from_millis(1200));

    // SIGKILL mid-stream: no cleanup runs; the pinned programs keep counting.
    let at_kill = rx_bytes(&veth.host);
    let (second, second_programs) = kill_and_take_over(first, &first_programs, &args, || {
        assert!(rx_bytes(&veth.host) > at_kill + 100_000, "bytes flowed while no agent ran");
    });
    // A graceful restart (an upgrade) mid-stream too.
    thread::sleep(Duration::from_millis(600));
    let (third, third_programs) = stop_and_take_over(second, &second_programs, &args);
    stream.join().unwrap();

    // Every byte the interface saw, exactly once, across both restarts.
    let kernel = assert_agent_matches_kernel(&third, &veth.host, 0);
    assert!(kernel.rx_bytes > 9_000_000, "{kernel:?}");

    // `egressor unpin` refuses while an agent runs, then detaches everything.
    let refused = unpin(pins_s, ckpt_s);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("another egressor agent is running"), "{stderr}");
    assert!(third.stop().success());
    assert!(loaded_program_ids().is_superset(&third_programs), "still counting after the stop");
    let out = unpin(pins_s, ckpt_s);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!pins.exists() && !checkpoint.exists(), "pins and checkpoint removed");
    wait_unloaded(&third_programs, "after egressor unpin");
}

/// SIGKILLs `agent` (no cleanup runs; its pinned programs keep counting), runs `in_gap` after
/// a gap with no agent, and starts the next agent on the same pins, which resumes from the
/// checkpoint and swaps its own programs into the pinned links (the killed agent's leave).
fn kill_and_take_over(
    agent: Agent,
    programs: &std::collections::HashSet<u32>,
    args: &[&str],
    in_gap: impl FnOnce(),
) -> (Agent, std::collections::HashSet<u32>) {
    agent.kill();
    thread::sleep(Duration::from_millis(700));
    in_gap();
    let (next, next_programs) = start_agent_tracking_programs(args);
    let log = next.log();
    assert!(log.contains("resumed the counters from the checkpoint"), "{log}");
    assert!(log.contains("taken_over=true"), "the pinned links were taken over: {log}");
    wait_unloaded(programs, "the killed agent's programs, swapped out of the links");
    (next, next_programs)
}

/// Stops `agent` gracefully (an upgrade): its pinned programs outlive it and keep counting
/// until the next agent, started after a gap, swaps them out.
fn stop_and_take_over(
    agent: Agent,
    programs: &std::collections::HashSet<u32>,
    args: &[&str],
) -> (Agent, std::collections::HashSet<u32>) {
    assert!(agent.stop().success());
    assert!(
        loaded_program_ids().is_superset(programs) && !programs.is_empty(),
        "pinned programs outlive the agent that stopped"
    );
    thread::sleep(Duration::from_millis(500));
    let (next, next_programs) = start_agent_tracking_programs(args);
    wait_unloaded(programs, "the stopped agent's programs, swapped out of the links");
    (next, next_programs)
}

/// `egressor unpin` of `pins` and `checkpoint`.
fn unpin(pins: &str, checkpoint: &str) -> std::process::Output {
    let bin = egressor_bin();
    let args = ["unpin", "--bpf.pin-path", pins, "--bpf.checkpoint-file", checkpoint];
    std::process::Command::new(bin).args(args).output().unwrap()
}

/// Waits until none of `programs` is loaded any more.
fn wait_unloaded(programs: &std::collections::HashSet<u32>, what: &str) {
    assert!(!programs.is_empty(), "{what}: the agent loaded programs");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !loaded_program_ids().is_disjoint(programs) {
        if Instant::now() >= deadline {
            let left: Vec<String> = aya::programs::loaded_programs()
                .filter_map(Result::ok)
                .filter(|p| programs.contains(&p.id()))
                .map(|p| format!("{} {}", p.id(), p.name_as_str().unwrap_or("?")))
                .collect();
            panic!("{what}: programs still loaded: {left:?}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The DaemonSet's path: cgroup hooks on the cgroup v2 root, pinned. A workload paces
/// datagrams across a SIGKILL and a graceful restart; the last agent reports every one of
/// them, once.
#[test]
fn cgroup_hook_restarts_with_pinned_maps_lose_and_double_nothing() {
    if !require_bpf("cgroup_hook_restarts_with_pinned_maps_lose_and_double_nothing") {
        return;
    }
    let ns = Netns::new("pincg");
    let veth = Veth::new("q", &ns, false);
    let cgroup = Cgroup::new("pincg");
    let (_bpffs, pins, checkpoint) = pin_paths("pincg");
    let (pins_s, ckpt_s) = (pins.to_str().unwrap(), checkpoint.to_str().unwrap());
    let args = ["--bpf.pin-path", pins_s, "--bpf.checkpoint-file", ckpt_s];

    let (first, first_programs) = start_agent_tracking_programs(&args);
    veth.up();
    // A socket at the target, so no datagram comes back as an ICMP error.
    let _sink = std::net::UdpSocket::bind(format!("{}:9401", HOST.v4)).unwrap();
    let target = format!("{}:9401", HOST.v4);
    // 400 datagrams a second for 4 s, 1,000 payload bytes each.
    let size = 1000u64;
    let sender = spawn_in_cgroup(&cgroup, &ns, HELPER, &["udp-pace", &target, "1000", "400000:4"]);
    thread::sleep(Duration::from_millis(1200));

    let (second, second_programs) = kill_and_take_over(first, &first_programs, &args, || {});
    thread::sleep(Duration::from_millis(600));
    let (third, third_programs) = stop_and_take_over(second, &second_programs, &args);
    let out = sender.wait_with_output().unwrap();
    assert!(out.status.success(), "sender failed");
    let sent: u64 = parse_kv(&String::from_utf8_lossy(&out.stdout))["step0"].parse().unwrap();
    assert!(sent > 1000, "the sender paced {sent} datagrams");
    third.settle();

    let m = third.metrics();
    let l = [("hook", "cgroup"), ("workload", cgroup.workload.as_str()), ("direction", "egress")];
    let counted = (
        m.sum("egressor_flow_bytes_total", &l) as u64,
        m.sum("egressor_flow_packets_total", &l) as u64,
    );
    // IPv4 (20) + UDP (8) headers on each datagram, each counted once across two restarts.
    assert_eq!(counted, (sent * (size + 28), sent), "egress of {}", cgroup.workload);
    assert!(third.stop().success());
    let out = unpin(pins_s, ckpt_s);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_unloaded(&third_programs, "after egressor unpin");
}

#[test]
fn restarts_without_pins_lose_the_bytes_in_between() {
    if !require_bpf("restarts_without_pins_lose_the_bytes_in_between") {
        return;
    }
    let ns = Netns::new("nopin");
    let veth = Veth::new("n", &ns, false);
    let args = agent_args(&veth, None, "");
    let first = Agent::start(&args);
    veth.up();
    let stream = paced_stream(&ns, &veth, 5302, 6_000_000);
    thread::sleep(Duration::from_millis(1000));
    first.kill();
    thread::sleep(Duration::from_millis(700));
    let second = Agent::start(&args);
    stream.join().unwrap();
    let (kernel, rx, _) = quiet_comparison(&second, &veth.host);
    let l3 = kernel.rx_bytes - ETHERNET_HEADER * kernel.rx_packets;
    assert!(rx.0 + 1_000_000 < l3, "without pins the restart loses bytes: {} of {l3}", rx.0);
}

#[test]
fn an_incompatible_pinned_layout_is_replaced() {
    if !require_bpf("an_incompatible_pinned_layout_is_replaced") {
        return;
    }
    let ns = Netns::new("pinv");
    let veth = Veth::new("v", &ns, false);
    let (_bpffs, pins, checkpoint) = pin_paths("pinv");
    let (pins_s, ckpt_s) = (pins.to_str().unwrap(), checkpoint.to_str().unwrap());
    let mut args = agent_args(&veth, Some(pins_s), ckpt_s);
    args.extend(["--flow-map.max-entries", "4096"]);
    let (first, programs) = start_agent_tracking_programs(&args);
    assert!(first.stop().success());
    // An older layout's directory, and a changed map size: both replaced.
    std::fs::create_dir_all(pins.join("v0/maps")).unwrap();
    *args.last_mut().unwrap() = "8192";
    let second = Agent::start(&args);
    let log = second.log();
    assert!(log.contains("removing pins of another egressor layout version"), "{log}");
    assert!(log.contains("holds 4096 entries, --flow-map.max-entries asks for 8192"), "{log}");
    assert!(!pins.join("v0").exists(), "the old layout is gone");
    // The first agent's programs left with their links.
    wait_unloaded(&programs, "the replaced layout's programs");
    veth.up();
    paced_stream(&ns, &veth, 5303, 500_000).join().unwrap();
    assert_agent_matches_kernel(&second, &veth.host, 0);
    drop(second);
    for f in [checkpoint.clone(), PathBuf::from(format!("{ckpt_s}.lock"))] {
        let _ = std::fs::remove_file(f);
    }
}
