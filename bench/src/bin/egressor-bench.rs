//! egressor's benchmarks, run as root on a machine like CI's (bench/run.sh builds and runs
//! this in release mode). Each number is printed next to a baseline measured in the same
//! run, and as a ratio to its target:
//!
//! 1. data-plane cost per packet (`bpf_stats`: run_time_ns / run_cnt) of each program under
//!    64-byte UDP and TCP bulk load over a test veth, next to an empty program of the same
//!    type attached at the same hook and direction (the floor), the TCP transfer five times
//!    with the runs pooled; target ≤ 100 ns per packet, goal ≤ 60 ns;
//! 2. iperf3 throughput without and with the programs attached;
//! 3. one read cycle over 100 000 kernel map entries plus rendering `/metrics`, next to the
//!    bare batch read of the same map; target ≤ 50 ms;
//! 4. the agent's RSS with 10 000 active flows; target ≤ 30 MB;
//! 5. the agent's RSS with 10 000 pods in its Kubernetes index and 20 000 flows to them;
//!    target ≤ 40 MB.

use std::{
    collections::{HashMap, HashSet},
    fs::File,
    process::{Command, Stdio},
    sync::{Arc, atomic::AtomicBool},
    thread,
    time::{Duration, Instant},
};

use aya::{
    EbpfLoader,
    programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, SchedClassifier, TcAttachType},
    sys::{Stats, enable_stats},
};
use egressor::{
    accounting::Accounting,
    attribution::Attributor,
    cgroups::CgroupResolver,
    classify::Classifier,
    config::FileConfig,
    dataplane::{Dataplane, DataplaneOptions, EBPF_OBJECT},
    metrics::{SharedSnapshot, registry},
    prices::{PriceSheet, Pricer},
    reader::Reader,
};
use egressor_common::{FlowCounters, FlowKey, family};
use egressor_tests::*;

const AGENT_PROGRAMS: [&str; 4] =
    ["egr_cg_ingress", "egr_cg_egress", "egr_tc_ingress", "egr_tc_egress"];

fn helper_bin() -> String {
    egressor_bin().with_file_name("egressor-traffic").display().to_string()
}

fn main() {
    if !require_bpf("egressor-bench") {
        return;
    }
    // Optional arguments pick sections: packet, throughput, cycle, rss, kube-rss.
    let only: Vec<String> = std::env::args().skip(1).collect();
    let want = |s: &str| only.is_empty() || only.iter().any(|o| o == s);
    println!(
        "egressor benchmarks ({} CPUs)\n",
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    if want("packet") {
        per_packet_cost();
    }
    if want("throughput") {
        throughput();
    }
    if want("cycle") {
        read_cycle();
    }
    if want("rss") {
        rss_with_flows();
    }
    if want("kube-rss") {
        rss_with_pods_and_flows();
    }
}

fn rss_with_pods_and_flows() {
    // EGRESSOR_BENCH_PODS changes the count (0: the agent's Kubernetes baseline).
    let pods: u32 =
        std::env::var("EGRESSOR_BENCH_PODS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    println!("## Agent RSS with {pods} pods and {} flows\n", 2 * pods);
    let fake = egressor_tests::kube_api::FakeKube::start().with_fixtures();
    // 10,000 pods of 500 Deployments (the fixtures' ReplicaSet shape), spread over the
    // fixtures' nodes, with addresses 10.200.0.1 … 10.200.39.16.
    let template = egressor_tests::kube_api::fixture("pods")[0].clone();
    for i in 0..pods {
        let mut p = template.clone();
        let ip =
            std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 200, 0, 0)) + i + 1);
        p["metadata"]["name"] = format!("app-{}-7d9f8c6b5-{i:05}", i % 500).into();
        p["metadata"]["uid"] = format!("00000000-0000-4000-8000-{i:012}").into();
        p["metadata"]["ownerReferences"][0]["name"] = format!("app-{}-7d9f8c6b5", i % 500).into();
        p["status"]["podIP"] = ip.to_string().into();
        p["status"]["podIPs"] = serde_json::json!([{ "ip": ip.to_string() }]);
        fake.apply(p);
    }
    let w = World::new("bk", &[]);
    let cgroup = Cgroup::new("bk");
    let kubeconfig = fake.kubeconfig();
    let agent = Agent::start(&["--kubeconfig", kubeconfig.to_str().unwrap()]);
    let want = f64::from(pods) + 6.0;
    for _ in 0..600 {
        if agent.metrics().sum("egressor_kubernetes_objects", &[("kind", "Pod")]) >= want {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    agent.settle();
    let idle = rss_kb(agent.pid());
    // Two ports to each pod: 20,000 egress flows (the client namespace routes 10.200.0.0/16
    // into a namespace with no route onward, where the datagrams end).
    for port in ["9000", "9001"] {
        helper_in_cgroup(
            &cgroup,
            &w.client,
            &helper_bin(),
            &["udp-scatter", "32", port, &pods.to_string(), "10.200.0.0/16"],
        );
    }
    agent.settle();
    agent.settle();
    let m = agent.metrics();
    let entries = m.sum("egressor_flow_map_entries", &[]);
    let to_pods = m.sum("egressor_flow_packets_total", &[("remote_namespace", "shop")]);
    let busy = rss_kb(agent.pid());
    println!(
        "| pods in index | flows in map | packets attributed to a pod | RSS with pods (MB) | RSS with pods and flows (MB) | ratio to 40 MB target |\n|---|---|---|---|---|---|"
    );
    println!(
        "| {} | {entries} | {to_pods} | {:.1} | {:.1} | {:.2} |\n",
        m.sum("egressor_kubernetes_objects", &[("kind", "Pod")]),
        idle as f64 / 1024.0,
        busy as f64 / 1024.0,
        busy as f64 / 1024.0 / 40.0
    );
}

/// (run_time_ns, run_cnt) summed per program name, for programs whose id is in `ids`.
/// Run time (ns) and run count of each program in `labels` (by id), summed by label.
fn program_stats(labels: &HashMap<u32, String>) -> HashMap<String, (u64, u64)> {
    let mut out: HashMap<String, (u64, u64)> = HashMap::new();
    for info in aya::programs::loaded_programs().filter_map(Result::ok) {
        let Some(label) = labels.get(&info.id()) else { continue };
        let e = out.entry(label.clone()).or_default();
        e.0 += info.run_time().as_nanos() as u64;
        e.1 += info.run_count();
    }
    out
}

/// Repetitions of the TCP transfer in the per-packet table.
const TCP_REPETITIONS: usize = 5;

/// One program's counts over one run of a workload: (run time ns, runs) of the program and
/// of its empty twin at the same attach point, and the wire packets the agent counted.
#[derive(Clone, Copy, Debug)]
struct Measured {
    program: (u64, u64),
    floor: (u64, u64),
    wire_packets: f64,
}

impl Measured {
    /// Sums of run time, runs and wire packets over `each`.
    fn pooled(each: &[Measured]) -> Measured {
        let add = |a: (u64, u64), b: (u64, u64)| (a.0 + b.0, a.1 + b.1);
        each.iter().fold(
            Measured { program: (0, 0), floor: (0, 0), wire_packets: 0.0 },
            |sum, m| Measured {
                program: add(sum.program, m.program),
                floor: add(sum.floor, m.floor),
                wire_packets: sum.wire_packets + m.wire_packets,
            },
        )
    }

    fn ns_per_run(&self) -> f64 {
        self.program.0 as f64 / self.program.1 as f64
    }

    fn floor_ns(&self) -> f64 {
        self.floor.0 as f64 / self.floor.1 as f64
    }

    /// Wire packets, at least one per run (a run counts at least one packet).
    fn wire_packets(&self) -> f64 {
        self.wire_packets.max(self.program.1 as f64)
    }

    /// The program's run time above the floor, spread over the wire packets it counted.
    fn above_floor_per_wire_packet(&self) -> f64 {
        (self.ns_per_run() - self.floor_ns()) * self.program.1 as f64 / self.wire_packets()
    }
}

fn program_ids() -> HashSet<u32> {
    aya::programs::loaded_programs().filter_map(Result::ok).map(|i| i.id()).collect()
}

fn per_packet_cost() {
    println!("## Data-plane cost per packet (bpf_stats run_time_ns / run_cnt)\n");
    let ns = Netns::new("bp");
    let veth = Veth::new("b", &ns, true);
    let cgroup = Cgroup::new("bp");
    let before = program_ids();
    let agent = Agent::start(&["--hook", "both", "--interface", &veth.host]);
    // The agent's programs by name.
    let mut labels: HashMap<u32, String> = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|info| !before.contains(&info.id()))
        .map(|info| (info.id(), info.name_as_str().unwrap_or("?").to_owned()))
        .collect();

    // The floors: an empty program of the same type at each of the agent's attach points,
    // each from its own copy of the object so that each has its own counts. (One empty
    // program at both directions would average them, weighted by the busier: under the TCP
    // transfer, five data skbs for each ACK.)
    let floor_label = |prog: &str| format!("floor of {prog}");
    let root = File::open(cgroup2_root()).expect("cgroup root");
    let mut floors = Vec::new();
    let attach_points = [
        ("egr_cg_ingress", Some(CgroupSkbAttachType::Ingress), TcAttachType::Ingress),
        ("egr_cg_egress", Some(CgroupSkbAttachType::Egress), TcAttachType::Egress),
        ("egr_tc_ingress", None, TcAttachType::Ingress),
        ("egr_tc_egress", None, TcAttachType::Egress),
    ];
    for (prog, cgroup_direction, tc_direction) in attach_points {
        let mut object =
            EbpfLoader::new().map_max_entries("FLOWS", 1).load(EBPF_OBJECT).expect("load object");
        let id = match cgroup_direction {
            Some(direction) => {
                let noop: &mut CgroupSkb =
                    object.program_mut("egr_noop_cg").unwrap().try_into().unwrap();
                noop.load().expect("load egr_noop_cg");
                noop.attach(&root, direction, CgroupAttachMode::Single).unwrap();
                noop.info().unwrap().id()
            }
            None => {
                let noop: &mut SchedClassifier =
                    object.program_mut("egr_noop_tc").unwrap().try_into().unwrap();
                noop.load().expect("load egr_noop_tc");
                noop.attach(&veth.host, tc_direction).unwrap();
                noop.info().unwrap().id()
            }
        };
        labels.insert(id, floor_label(prog));
        floors.push(object);
    }

    let _stats = enable_stats(Stats::RunTime).expect("BPF_ENABLE_STATS");
    veth.up();
    let helper = helper_bin();

    // (name, repetitions, run once). The TCP transfer is repeated: `egr_tc_egress` sees only
    // its ACKs, 1,000–5,000 skbs a transfer, too few for one transfer's mean to settle (the
    // empty program's own floor moved 115–258 ns between two transfers). Each row pools
    // every repetition's run time and runs, and shows the spread of the repetitions' own
    // figures next to it.
    type Workload<'a> = (&'a str, usize, Box<dyn Fn() + 'a>);
    let workloads: [Workload; 3] = [
        (
            "UDP, 64-byte payload, 200k datagrams",
            1,
            Box::new(|| {
                let sink = udp_sink(&format!("{}:9500", HOST.v4));
                helper_in_cgroup(
                    &cgroup,
                    &ns,
                    &helper,
                    &["udp-send", &format!("{}:9500", HOST.v4), "200000", "64"],
                );
                sink.join().unwrap();
            }),
        ),
        (
            // The other way, so that the host side's TC egress program runs under the flood
            // too (nothing listens in the namespace: its few port-unreachable replies are
            // rate-limited by the kernel).
            "UDP, 64-byte payload, 200k datagrams, host → namespace",
            1,
            Box::new(|| {
                let target = format!("{}:9502", PEER.v4);
                run(&[&helper, "udp-send", &target, "200000", "64"]);
            }),
        ),
        (
            "TCP bulk, 1 GB",
            TCP_REPETITIONS,
            Box::new(|| {
                let sink = tcp_sink(&format!("{}:9501", HOST.v4));
                helper_in_cgroup(
                    &cgroup,
                    &ns,
                    &helper,
                    &["tcp-send", &format!("{}:9501", HOST.v4), "1000000000"],
                );
                sink.join().unwrap();
            }),
        ),
    ];
    println!(
        "| workload | program | runs (skbs) | ns/run | floor ns/run | above floor | wire packets | above floor per wire packet | each repetition | ratio to 100 ns target |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    // Wire packets each program counted (segments of super-packets included), from the
    // agent's own counters: (hook, interface, direction) per program.
    let selector = |prog: &str| -> [(&str, &str); 3] {
        match prog {
            "egr_cg_ingress" => [("hook", "cgroup"), ("interface", ""), ("direction", "ingress")],
            "egr_cg_egress" => [("hook", "cgroup"), ("interface", ""), ("direction", "egress")],
            "egr_tc_ingress" => {
                [("hook", "tc"), ("interface", &veth.host), ("direction", "ingress")]
            }
            _ => [("hook", "tc"), ("interface", &veth.host), ("direction", "egress")],
        }
    };
    let wire = |prog: &str| {
        agent.settle();
        agent.metrics().sum("egressor_flow_packets_total", &selector(prog))
            + agent.metrics().sum("egressor_flow_overflow_packets_total", &selector(prog)[..1])
    };
    for (name, repetitions, run) in workloads {
        let mut measured: Vec<Vec<Measured>> = Vec::new();
        for _ in 0..repetitions {
            let wire_start: Vec<f64> = AGENT_PROGRAMS.iter().map(|p| wire(p)).collect();
            let start = program_stats(&labels);
            run();
            let end = program_stats(&labels);
            let wire_end: Vec<f64> = AGENT_PROGRAMS.iter().map(|p| wire(p)).collect();
            let delta = |label: &str| {
                let (t0, c0) = start.get(label).copied().unwrap_or_default();
                let (t1, c1) = end.get(label).copied().unwrap_or_default();
                (t1.saturating_sub(t0), c1.saturating_sub(c0))
            };
            measured.push(
                AGENT_PROGRAMS
                    .iter()
                    .enumerate()
                    .map(|(i, prog)| Measured {
                        program: delta(prog),
                        floor: delta(&floor_label(prog)),
                        wire_packets: wire_end[i] - wire_start[i],
                    })
                    .collect(),
            );
        }
        for (i, prog) in AGENT_PROGRAMS.into_iter().enumerate() {
            let each: Vec<Measured> = measured.iter().map(|m| m[i]).collect();
            let pooled = Measured::pooled(&each);
            if std::env::var_os("EGRESSOR_BENCH_DEBUG").is_some() {
                eprintln!("{prog}: {each:?}");
            }
            if pooled.program.1 < 1000 * repetitions as u64 {
                // This workload barely uses this program (e.g. host → namespace under a
                // one-way UDP flood): too few runs for a per-packet figure.
                continue;
            }
            let (runs, ns_per, floor_ns) =
                (pooled.program.1, pooled.ns_per_run(), pooled.floor_ns());
            let mut spread: Vec<f64> =
                each.iter().map(Measured::above_floor_per_wire_packet).collect();
            spread.sort_by(f64::total_cmp);
            let spread = match spread.as_slice() {
                [one] => format!("{one:.1}"),
                many => format!(
                    "{:.1}–{:.1} (median {:.1})",
                    many[0],
                    many[many.len() - 1],
                    many[many.len() / 2]
                ),
            };
            let per_wire = pooled.above_floor_per_wire_packet();
            println!(
                "| {name} | {prog} | {runs} | {ns_per:.1} | {floor_ns:.1} | {:.1} | {:.0} | {per_wire:.1} | {spread} | {:.2} |",
                ns_per - floor_ns,
                pooled.wire_packets(),
                per_wire / 100.0
            );
        }
    }
    drop(agent);
    drop(floors);
    println!();
}

/// A UDP sink that reads until one second of silence; returns datagrams read.
fn udp_sink(bind: &str) -> thread::JoinHandle<u64> {
    let socket = std::net::UdpSocket::bind(bind).expect("bind sink");
    socket.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut n = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match socket.recv_from(&mut buf) {
                Ok(_) => n += 1,
                Err(_) if n > 0 || Instant::now() > deadline => return n,
                Err(_) => {}
            }
        }
    })
}

fn iperf3(ns: &Netns, seconds: u32) -> f64 {
    let mut server = Command::new("iperf3")
        .args(["-s", "-1", "-B", HOST.v4, "-p", "5299"])
        .stdout(Stdio::null())
        .spawn()
        .expect("iperf3 (apt-get install iperf3)");
    thread::sleep(Duration::from_millis(300));
    let out = ns.run(&["iperf3", "-c", HOST.v4, "-p", "5299", "-t", &seconds.to_string(), "-J"]);
    let _ = server.wait();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    json["end"]["sum_received"]["bits_per_second"].as_f64().expect("bits_per_second") / 1e9
}

fn throughput() {
    println!("## iperf3 TCP throughput over the test veth (Gbit/s, 3 s runs, alternating)\n");
    let ns = Netns::new("bt");
    let veth = Veth::new("t", &ns, true);
    veth.up();
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        without.push(iperf3(&ns, 3));
        let agent = Agent::start(&["--hook", "both", "--interface", &veth.host]);
        with.push(iperf3(&ns, 3));
        drop(agent);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (median(&mut without), median(&mut with));
    println!("| no programs | cgroup + TC programs | ratio |\n|---|---|---|");
    println!("| {a:.2} | {b:.2} | {:.3} |", b / a);
    println!(
        "(runs without: {without:.2?}; with: {with:.2?}; this VM varies 20–30 % run to run)\n"
    );
}

fn read_cycle() {
    println!("## One read cycle over 100 000 kernel map entries + rendering /metrics\n");
    const FLOWS: u32 = 100_000;
    let options = DataplaneOptions {
        cgroup: None,
        interfaces: Vec::new(),
        tc_attach_mode: egressor::cli::TcAttachMode::Auto,
        include_loopback: false,
        max_flows: FLOWS + 1024,
        dns_events_per_second: 1000,
        track_services: false,
        pin_path: None,
    };
    let mut dataplane = Dataplane::load(&options).expect("load dataplane");
    let cpus = dataplane.cpus();
    let root = cgroup2_root();
    // 50 real workloads (cgroups), so attribution resolves them as on a busy node.
    let cgroups: Vec<Cgroup> = (0..50).map(|_| Cgroup::new("rc")).collect();
    let ids: Vec<u64> = cgroups
        .iter()
        .map(|c| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&c.path).unwrap()))
        .collect();
    for i in 0..FLOWS {
        let mut key = FlowKey {
            cgroup_id: ids[i as usize % ids.len()],
            direction: (i % 2) as u8,
            ..FlowKey::zeroed()
        };
        key.family = family::IPV4;
        key.protocol = 6;
        key.remote_addr[0] = u32::from_ne_bytes((0x0A00_0000u32 + i).to_be_bytes());
        key.port = 443;
        let values = vec![FlowCounters { bytes: 1500, packets: 1 }; cpus];
        dataplane.flow_map_mut().insert(key, values.try_into().unwrap(), 0).expect("seed");
    }
    // Floor: the bare batch read.
    let (t, cpu) = (Instant::now(), process_cpu());
    let mut n = 0;
    dataplane.read_flows(|_, _| n += 1).expect("read");
    let (bare, bare_cpu) = (t.elapsed(), process_cpu() - cpu);
    assert_eq!(n, FLOWS);

    // The agent's defaults: flows idle 12 reads leave the map, label sets 360 reads.
    // As the agent does: the flow table reserved for the map's capacity.
    let new_accounting =
        || Accounting::with_flow_capacity(12, 360, usize::MAX, options.max_flows as usize);
    let snapshot = Arc::new(SharedSnapshot::default());
    let (registry, metrics) =
        registry(snapshot.clone(), Arc::new(PriceSheet::embedded()), &[], FLOWS, u64::MAX);
    let mut reader = Reader {
        dataplane,
        accounting: new_accounting(),
        attributor: Attributor::new(
            CgroupResolver::new(root),
            Classifier::new(&FileConfig::default(), Default::default()),
            &FileConfig::default(),
            HashMap::new(),
        ),
        pricer: Pricer::new(Arc::new(PriceSheet::embedded()), &Default::default()),
        snapshot,
        metrics,
        ready: Arc::new(AtomicBool::new(true)),
        relabel_next: false,
        dns: egressor::dns::DnsNames::new(100_000, Duration::from_secs(300)),
        pending_services: None,
        checkpoint: None,
        adopt_next: false,
        destinations: egressor::destinations::Destinations::new(
            30,
            Duration::from_secs(86_400),
            1_000_000,
        ),
    };
    let cycle = |reader: &mut Reader, label: &str| {
        let (t, cpu) = (Instant::now(), process_cpu());
        reader.cycle().expect("cycle");
        let read = t.elapsed();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let (total, cpu) = (t.elapsed(), process_cpu() - cpu);
        println!(
            "| {label} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} |",
            read.as_secs_f64() * 1e3,
            (total - read).as_secs_f64() * 1e3,
            total.as_secs_f64() * 1e3,
            cpu.as_secs_f64() * 1e3,
            total.as_secs_f64() / bare.as_secs_f64(),
            total.as_secs_f64() * 1e3 / 50.0
        );
    };
    println!(
        "bare batch read of {FLOWS} entries: {:.1} ms ({:.1} ms of CPU)\n",
        bare.as_secs_f64() * 1e3,
        bare_cpu.as_secs_f64() * 1e3
    );
    println!(
        "| cycle | read+account ms | render ms | total ms | CPU ms (all threads) | ratio to bare read | ratio to 50 ms target |"
    );
    println!("|---|---|---|---|---|---|---|");
    cycle(&mut reader, "first (every flow new, fresh process)");
    cycle(&mut reader, "steady state");
    cycle(&mut reader, "steady state");
    // A burst: every flow new to an agent that has been running (its allocator and its
    // per-cgroup caches warm), as when 100k flows appear within one read interval.
    reader.accounting = new_accounting();
    cycle(&mut reader, "every flow new, running agent");
    cycle(&mut reader, "steady state");
    // With --bpf.pin-path every cycle also writes the checkpoint (here to /tmp, a tmpfs or
    // a disk depending on the machine; the DaemonSet writes to the host's /run).
    let path = std::env::temp_dir().join(format!("egressor-bench-ckpt-{}", std::process::id()));
    reader.checkpoint = Some(egressor::checkpoint::CheckpointFile::lock(&path).expect("lock"));
    cycle(&mut reader, "steady state + checkpoint");
    cycle(&mut reader, "steady state + checkpoint");
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!("\ncheckpoint of {FLOWS} flows: {:.1} MB", size as f64 / 1e6);
    drop(reader.checkpoint.take());
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(format!("{}.lock", path.display()));
    println!();
}

/// CPU time of this process so far, every thread's (those that ended too): a read cycle
/// over more than one batch uses two threads, so its wall time alone understates its cost.
fn process_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_PROCESS_CPUTIME_ID always exists.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn rss_with_flows() {
    println!("## Agent RSS with 10 000 active flows\n");
    let ns = Netns::new("br");
    let veth = Veth::new("r", &ns, true);
    let cgroup = Cgroup::new("br");
    let agent = Agent::start(&[]);
    veth.up();
    let idle = rss_kb(agent.pid());
    // 10 000 distinct service ports below the ephemeral range: 10 000 egress flows.
    helper_in_cgroup(&cgroup, &ns, &helper_bin(), &["udp-spray", HOST.v4, "1", "10000", "32"]);
    agent.settle();
    agent.settle();
    let entries = agent.metrics().sum("egressor_flow_map_entries", &[]);
    let busy = rss_kb(agent.pid());
    println!(
        "| flows in map | RSS idle (MB) | RSS with flows (MB) | ratio to 30 MB target |\n|---|---|---|---|"
    );
    println!(
        "| {entries} | {:.1} | {:.1} | {:.2} |\n",
        idle as f64 / 1024.0,
        busy as f64 / 1024.0,
        busy as f64 / 1024.0 / 30.0
    );
}
