//! Harness for egressor's end-to-end tests: privileges, network namespaces, veth pairs,
//! cgroups and the agent process, each cleaned up on drop (also when a test fails), plus
//! scraping `/metrics` and reading the kernel's own counters as the oracle.
//!
//! Tests that need root and BPF call [`require_bpf`] first: on a laptop they print why they
//! skip; with `EGRESSOR_REQUIRE_BPF=1` (CI) a missing privilege fails the test.

pub mod fakes;
pub mod flowlog_gen;
pub mod kube_api;
pub mod pcap;

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

/// Environment variable that turns skips into failures.
pub const REQUIRE_BPF_ENV: &str = "EGRESSOR_REQUIRE_BPF";

/// Whether this process can load BPF programs and create namespaces. Prints the reason and
/// returns `false` when it cannot; panics instead when `EGRESSOR_REQUIRE_BPF=1`.
pub fn require_bpf(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let reason = if unsafe { libc::geteuid() } != 0 {
        Some("needs root (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_SYS_ADMIN for namespaces)")
    } else if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        Some("kernel has no BTF (/sys/kernel/btf/vmlinux)")
    } else if Command::new("ip").arg("-V").output().is_err() {
        Some("iproute2 (`ip`) is not installed; run scripts/setup.sh")
    } else {
        None
    };
    match reason {
        None => true,
        Some(reason) if std::env::var(REQUIRE_BPF_ENV).as_deref() == Ok("1") => {
            panic!("{test}: {reason}, and {REQUIRE_BPF_ENV}=1 forbids skipping")
        }
        Some(reason) => {
            eprintln!("SKIPPED {test}: {reason}");
            false
        }
    }
}

/// A file of the third-party test data (`../shared/data/`, see its SOURCES.md): from
/// `EGRESSOR_SHARED_DATA`, else next to the workspace, else `/work/shared/data`. `None`
/// (after printing why) when it is missing on a developer's machine; a panic when
/// `EGRESSOR_REQUIRE_BPF=1` (CI), where nothing may be skipped.
pub fn shared_data(relative: &str) -> Option<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let roots = std::env::var_os("EGRESSOR_SHARED_DATA")
        .map(PathBuf::from)
        .into_iter()
        .chain([workspace.join("../shared/data"), PathBuf::from("/work/shared/data")]);
    for root in roots {
        let path = root.join(relative);
        if path.exists() {
            return Some(path);
        }
    }
    let why = format!("test data {relative} not found (set EGRESSOR_SHARED_DATA)");
    if std::env::var(REQUIRE_BPF_ENV).as_deref() == Ok("1") {
        panic!("{why}, and {REQUIRE_BPF_ENV}=1 forbids skipping");
    }
    eprintln!("SKIPPED: {why}");
    None
}

/// Runs a command, panicking with its output if it fails.
pub fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A short name unique to this process and call, for namespaces and links (≤ 15 bytes).
pub fn unique_name(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("eg{tag}{}{n}", std::process::id() % 100_000)
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        let name = unique_name(tag);
        run(&["ip", "netns", "add", &name]);
        run(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Self { name }
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `args` inside the namespace, panicking on failure.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Addresses of one end of a test link.
#[derive(Debug, Clone)]
pub struct LinkAddresses {
    pub v4: &'static str,
    pub v6: &'static str,
}

/// A veth pair: `host` in the root namespace (or in a second test namespace), `peer` in
/// `ns`. Created down; call [`Veth::up`] once the programs are attached, so the kernel's
/// counters and the agent's start from the same packet. Deleted on drop.
pub struct Veth {
    pub host: String,
    pub peer: String,
    pub ns: String,
    /// Namespace of the `host` end; `None` for the root namespace.
    pub host_ns: Option<String>,
}

/// Host side of every test link (TEST-NET-2 and the documentation IPv6 prefix).
pub const HOST: LinkAddresses = LinkAddresses { v4: "198.51.100.1", v6: "2001:db8:100::1" };
/// Namespace side of every test link.
pub const PEER: LinkAddresses = LinkAddresses { v4: "198.51.100.2", v6: "2001:db8:100::2" };

fn ip_in(ns: Option<&str>, args: &[&str]) -> Output {
    match ns {
        None => run(&[&["ip"], args].concat()),
        Some(ns) => run(&[&["ip", "-n", ns], args].concat()),
    }
}

fn in_ns(ns: Option<&str>, args: &[&str]) -> Output {
    match ns {
        None => run(args),
        Some(ns) => run(&[&["ip", "netns", "exec", ns], args].concat()),
    }
}

impl Veth {
    /// Creates the pair with [`HOST`] and [`PEER`] addresses (/24 and /64), links down.
    /// With `offloads == false`, TSO, GSO, GRO and checksum offload are off on both ends.
    pub fn new(tag: &str, ns: &Netns, offloads: bool) -> Self {
        Self::between(tag, None, ns, offloads)
    }

    /// As [`Veth::new`], with the `host` end in `host_ns` instead of the root namespace:
    /// neither address then belongs to this machine's root namespace.
    pub fn between(tag: &str, host_ns: Option<&Netns>, ns: &Netns, offloads: bool) -> Self {
        let host = unique_name(tag) + "h";
        let peer = unique_name(tag) + "p";
        run(&["ip", "link", "add", &host, "type", "veth", "peer", "name", &peer]);
        let veth =
            Self { host, peer, ns: ns.name.clone(), host_ns: host_ns.map(|n| n.name.clone()) };
        run(&["ip", "link", "set", &veth.peer, "netns", &ns.name]);
        if let Some(h) = &veth.host_ns {
            run(&["ip", "link", "set", &veth.host, "netns", h]);
        }
        for (dev, n, a) in [
            (&veth.host, veth.host_ns.as_deref(), &HOST),
            (&veth.peer, Some(veth.ns.as_str()), &PEER),
        ] {
            // No IPv6 link-local address, router solicitations or DAD: fewer stray packets.
            ip_in(n, &["link", "set", "dev", dev, "addrgenmode", "none"]);
            ip_in(n, &["addr", "add", &format!("{}/24", a.v4), "dev", dev]);
            ip_in(n, &["addr", "add", &format!("{}/64", a.v6), "dev", dev, "nodad"]);
            if !offloads {
                let mut cmd = vec!["ethtool", "-K", dev.as_str()];
                cmd.extend(["tso", "off", "gso", "off", "gro", "off", "tx", "off", "rx", "off"]);
                in_ns(n, &cmd);
            }
        }
        veth
    }

    /// Brings both ends up and waits until both report operstate `up` (before that, the
    /// kernel's link watch may still drop packets at a not yet activated qdisc).
    pub fn up(&self) {
        ip_in(Some(&self.ns), &["link", "set", &self.peer, "up"]);
        ip_in(self.host_ns.as_deref(), &["link", "set", &self.host, "up"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        let state = |ns: Option<&str>, dev: &str| {
            let out = in_ns(ns, &["cat", &format!("/sys/class/net/{dev}/operstate")]);
            String::from_utf8_lossy(&out.stdout).trim() == "up"
        };
        while !(state(self.host_ns.as_deref(), &self.host) && state(Some(&self.ns), &self.peer)) {
            assert!(Instant::now() < deadline, "{} did not come up", self.host);
            thread::sleep(Duration::from_millis(20));
        }
        // Link watch sets operstate just before it activates the qdisc.
        thread::sleep(Duration::from_millis(100));
    }

    /// Adds another address pair (host end, peer end) with prefix length `len`.
    pub fn add_addresses(&self, host: &str, peer: &str, len: u8) {
        let host_cidr = format!("{host}/{len}");
        let peer_cidr = format!("{peer}/{len}");
        ip_in(self.host_ns.as_deref(), &["addr", "add", &host_cidr, "dev", &self.host, "nodad"]);
        ip_in(Some(&self.ns), &["addr", "add", &peer_cidr, "dev", &self.peer, "nodad"]);
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let mut cmd = Command::new("ip");
        if let Some(ns) = &self.host_ns {
            cmd.args(["-n", ns]);
        }
        let _ = cmd.args(["link", "del", &self.host]).stderr(Stdio::null()).status();
    }
}

/// A client namespace whose default routes (v4 and v6) lead through a veth into a second
/// namespace, "the world", which owns `remotes` on its loopback: real public addresses (an S3
/// range, say) played without any route out of the machine. Both namespaces are the test's.
pub struct World {
    /// Where the workload runs (with the veth's [`PEER`] addresses).
    pub client: Netns,
    /// Where the remotes live (with the veth's [`HOST`] addresses).
    pub world: Netns,
    /// The link between them.
    pub veth: Veth,
}

impl World {
    /// Creates both namespaces, the link (up), the remotes (`/32` or `/128`) and the client's
    /// default routes via [`HOST`].
    pub fn new(tag: &str, remotes: &[&str]) -> Self {
        let client = Netns::new(&format!("{tag}c"));
        let world = Netns::new(&format!("{tag}w"));
        let veth = Veth::between(tag, Some(&world), &client, true);
        for addr in remotes {
            let len = if addr.contains(':') { 128 } else { 32 };
            world.run(&["ip", "addr", "add", &format!("{addr}/{len}"), "dev", "lo"]);
        }
        world.run(&["ip", "link", "set", "lo", "up"]);
        veth.up();
        client.run(&["ip", "route", "add", "default", "via", HOST.v4]);
        client.run(&["ip", "-6", "route", "add", "default", "via", HOST.v6]);
        Self { client, world, veth }
    }

    /// Adds `gateway`/`len` in the world and `source`/`len` in the client, and makes the
    /// client's default route of that family go via `gateway` from `source` (a subnet the
    /// configuration knows, say).
    pub fn route_from(&self, gateway: &str, source: &str, len: u8) {
        self.veth.add_addresses(gateway, source, len);
        let family = if gateway.contains(':') { "-6" } else { "-4" };
        self.client
            .run(&["ip", family, "route", "replace", "default", "via", gateway, "src", source]);
    }
}

/// The kernel's own counters of an interface (`/sys/class/net/<if>/statistics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IfStats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

impl IfStats {
    pub fn read(dev: &str) -> Self {
        let read = |f: &str| -> u64 {
            let p = format!("/sys/class/net/{dev}/statistics/{f}");
            std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("read {p}: {e}"))
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("parse {p}: {e}"))
        };
        Self {
            rx_bytes: read("rx_bytes"),
            rx_packets: read("rx_packets"),
            tx_bytes: read("tx_bytes"),
            tx_packets: read("tx_packets"),
        }
    }
}

/// A cgroup v2 directory under the cgroup2 mount, removed on drop (after its processes
/// have exited).
pub struct Cgroup {
    pub path: PathBuf,
    /// The path relative to the cgroup2 root, as the agent names the workload.
    pub workload: String,
    /// Directories created above `path` (removed after it, deepest first).
    parents: Vec<PathBuf>,
}

impl Cgroup {
    pub fn new(tag: &str) -> Self {
        let root = cgroup2_root();
        let name = format!("egressor-test-{}", unique_name(tag));
        let path = root.join(&name);
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Self { path, workload: format!("/{name}"), parents: Vec::new() }
    }

    /// A cgroup at `egressor-test-<tag>/<relative>` (a kubelet-shaped path, say), every
    /// directory created on the way removed on drop.
    pub fn nested(tag: &str, relative: &str) -> Self {
        let mut at = cgroup2_root().join(format!("egressor-test-{}", unique_name(tag)));
        let mut created = vec![at.clone()];
        std::fs::create_dir(&at).unwrap_or_else(|e| panic!("mkdir {}: {e}", at.display()));
        for part in relative.split('/').filter(|p| !p.is_empty()) {
            at = at.join(part);
            std::fs::create_dir(&at).unwrap_or_else(|e| panic!("mkdir {}: {e}", at.display()));
            created.push(at.clone());
        }
        let path = created.pop().unwrap();
        let workload = format!("/{}", path.strip_prefix(cgroup2_root()).unwrap().display());
        created.reverse();
        Self { path, workload, parents: created }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for dir in std::iter::once(&self.path).chain(&self.parents) {
            let removed = (0..50).any(|_| {
                std::fs::remove_dir(dir).is_ok() || {
                    thread::sleep(Duration::from_millis(100));
                    false
                }
            });
            if !removed {
                eprintln!("could not remove cgroup {}", dir.display());
            }
        }
    }
}

/// The cgroup2 mount point (first cgroup2 entry of /proc/self/mountinfo).
pub fn cgroup2_root() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    info.lines()
        .find_map(|l| {
            let (mount, fs) = l.split_once(" - ")?;
            if fs.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            mount.split_whitespace().nth(4).map(PathBuf::from)
        })
        .expect("a cgroup2 mount")
}

/// Waits for a quiet window on `dev` and asserts that the agent's TC totals (attributed plus
/// overflow) equal the kernel's interface counters exactly in both directions, less the
/// link-layer bytes the kernel counts and L3 does not: the Ethernet header of every frame,
/// plus `extra_link_layer` bytes each way (VLAN tags). Returns the kernel's counters.
pub fn assert_agent_matches_kernel(agent: &Agent, dev: &str, extra_link_layer: u64) -> IfStats {
    let (kernel, rx, tx) = quiet_comparison(agent, dev);
    let l3 = |bytes: u64, packets: u64| bytes - ETHERNET_HEADER * packets - extra_link_layer;
    assert_eq!(rx, (l3(kernel.rx_bytes, kernel.rx_packets), kernel.rx_packets), "ingress");
    assert_eq!(tx, (l3(kernel.tx_bytes, kernel.tx_packets), kernel.tx_packets), "egress");
    kernel
}

/// Path of the `egressor` binary (built by scripts/test.sh before the tests run).
pub fn egressor_bin() -> PathBuf {
    if let Ok(p) = std::env::var("EGRESSOR_BIN") {
        return p.into();
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug/egressor");
    assert!(bin.exists(), "{} missing: run `cargo build -p egressor` first", bin.display());
    bin
}

/// A running `egressor agent`, stopped with SIGTERM on drop.
pub struct Agent {
    child: Option<Child>,
    pub port: u16,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Agent {
    /// Starts the agent with `args` (listen address and a 200 ms read interval are added)
    /// and waits until `/readyz` answers 200.
    pub fn start(args: &[&str]) -> Self {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut child = Command::new(egressor_bin())
            .args(["agent", "--web.listen-address", &listen, "--read-interval", "200ms"])
            .args(args)
            .env("EGRESSOR_LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn egressor");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[agent] {line}");
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let mut agent = Self { child: Some(child), port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = agent.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("agent exited with {status} before ready:\n{}", agent.log());
            }
            if agent.get("/readyz").is_some_and(|(code, _)| code == 200) {
                return agent;
            }
            assert!(Instant::now() < deadline, "agent not ready after 30 s:\n{}", agent.log());
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Everything the agent has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// GET `path`: status and body, `None` if nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        self.get_with(path, None)
    }

    /// The agent's base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// GETs `path` with an optional `Authorization: Bearer` token: (status, body).
    pub fn get_with(&self, path: &str, token: Option<&str>) -> Option<(u16, String)> {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let mut request = agent.get(&url);
        if let Some(t) = token {
            request = request.header("Authorization", &format!("Bearer {t}"));
        }
        let mut r = request.call().ok()?;
        let code = r.status().as_u16();
        Some((code, r.body_mut().read_to_string().ok()?))
    }

    /// Scrapes and parses `/metrics`.
    pub fn metrics(&self) -> Metrics {
        let (code, body) = self.get("/metrics").expect("scrape /metrics");
        assert_eq!(code, 200, "{body}");
        Metrics::parse(&body)
    }

    /// The raw `/metrics` text.
    pub fn metrics_text(&self) -> String {
        self.get("/metrics").expect("scrape /metrics").1
    }

    /// Waits two read intervals so the agent has read everything the kernel counted.
    pub fn settle(&self) {
        thread::sleep(Duration::from_millis(600));
    }

    /// Kills the agent with SIGKILL (no cleanup runs) and waits for it.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the agent with SIGTERM and returns its exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate().expect("agent was running")
    }

    fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// A parsed scrape.
pub struct Metrics {
    pub samples: Vec<prometheus_parse::Sample>,
}

impl Metrics {
    pub fn parse(text: &str) -> Self {
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("parse exposition");
        Self { samples: scrape.samples }
    }

    /// Sum of every sample named `name` whose labels include all of `matching`.
    pub fn sum(&self, name: &str, matching: &[(&str, &str)]) -> f64 {
        self.select(name, matching).map(|(_, v)| v).sum()
    }

    /// `(labels, value)` of every sample named `name` whose labels include `matching`.
    pub fn select<'a>(
        &'a self,
        name: &'a str,
        matching: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = (HashMap<String, String>, f64)> + 'a {
        self.samples
            .iter()
            .filter(move |s| {
                s.metric == name && matching.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .map(|s| {
                let labels = s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                (labels, value(&s.value))
            })
    }
}

fn value(v: &prometheus_parse::Value) -> f64 {
    use prometheus_parse::Value::*;
    match v {
        Counter(x) | Gauge(x) | Untyped(x) => *x,
        _ => f64::NAN,
    }
}

/// Bytes and packets the agent reports for a hook, interface and direction: attributed
/// flows plus overflow.
pub fn agent_totals(m: &Metrics, hook: &str, interface: &str, direction: &str) -> (u64, u64) {
    let flows = [("hook", hook), ("interface", interface), ("direction", direction)];
    let overflow = [("hook", hook), ("direction", direction)];
    let bytes = m.sum("egressor_flow_bytes_total", &flows)
        + m.sum("egressor_flow_overflow_bytes_total", &overflow);
    let packets = m.sum("egressor_flow_packets_total", &flows)
        + m.sum("egressor_flow_overflow_packets_total", &overflow);
    (bytes as u64, packets as u64)
}

/// Ethernet header bytes the kernel's interface counters include and L3 counting does not.
pub const ETHERNET_HEADER: u64 = 14;

/// Waits until the interface is quiet (its counters unchanged across two agent read
/// intervals) and returns the kernel's counters with the agent's TC totals read in that
/// quiet window: `(kernel, agent_rx, agent_tx)` where agent values are `(bytes, packets)`.
pub fn quiet_comparison(agent: &Agent, dev: &str) -> (IfStats, (u64, u64), (u64, u64)) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let before = IfStats::read(dev);
        agent.settle();
        let m = agent.metrics();
        let after = IfStats::read(dev);
        if before == after {
            let rx = agent_totals(&m, "tc", dev, "ingress");
            let tx = agent_totals(&m, "tc", dev, "egress");
            return (after, rx, tx);
        }
        assert!(Instant::now() < deadline, "{dev} never went quiet");
    }
}

/// A UDP echo server on `bind` in this (root) namespace: answers `count` datagrams, then
/// returns how many it echoed. Gives up after 20 s of silence.
pub fn udp_echo(bind: &str, count: usize) -> thread::JoinHandle<usize> {
    let socket = std::net::UdpSocket::bind(bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
    socket.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    thread::spawn(move || {
        let mut buf = vec![0; 65_536];
        let mut echoed = 0;
        while echoed < count {
            let Ok((n, from)) = socket.recv_from(&mut buf) else { break };
            socket.send_to(&buf[..n], from).expect("echo");
            echoed += 1;
        }
        echoed
    })
}

/// A TCP sink on `bind` in this namespace: accepts one connection, reads to EOF, closes,
/// returns the bytes received.
pub fn tcp_sink(bind: &str) -> thread::JoinHandle<u64> {
    let listener = TcpListener::bind(bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
    thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let mut sink = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut sink).expect("read") as u64
    })
}

/// Sends `bytes` over one TCP connection to `target` from this namespace and waits for the
/// peer to close.
pub fn tcp_send(target: &str, bytes: u64) {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = target.parse().expect("target");
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {target}: {e}"));
    let chunk = vec![0x24u8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        s.write_all(&chunk[..n]).expect("write");
        left -= n as u64;
    }
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("read to EOF");
}

/// Runs the traffic helper in `ns` and returns its `key=value` output.
pub fn helper(ns: &Netns, helper: &str, args: &[&str]) -> HashMap<String, String> {
    let mut full = vec![helper];
    full.extend_from_slice(args);
    let out = ns.run(&full);
    parse_kv(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `key=value` lines.
pub fn parse_kv(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// A counter from `/proc/net/snmp` as seen inside `ns`, e.g. `("Tcp", "OutSegs")`.
pub fn snmp(ns: &Netns, group: &str, field: &str) -> u64 {
    let text = String::from_utf8_lossy(&ns.run(&["cat", "/proc/net/snmp"]).stdout).into_owned();
    let prefix = format!("{group}:");
    let mut rows = text.lines().filter(|l| l.starts_with(&prefix));
    let names: Vec<&str> = rows.next().expect("header").split_whitespace().collect();
    let values: Vec<&str> = rows.next().expect("values").split_whitespace().collect();
    let i = names.iter().position(|n| *n == field).unwrap_or_else(|| panic!("no {group}.{field}"));
    values[i].parse().expect("number")
}

/// Writes `text` to a fresh file in the temp dir and returns its path.
pub fn temp_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}-{name}", unique_name("f")));
    std::fs::write(&path, text).expect("write temp file");
    path
}

/// Runs `helper args…` as a process inside `cgroup` and `ns` and returns its `key=value`
/// output: the shell moves itself into the cgroup first, then enters the namespace (`ip netns
/// exec` remounts /sys, so the cgroup must be joined before).
pub fn helper_in_cgroup(
    cgroup: &Cgroup,
    ns: &Netns,
    helper: &str,
    args: &[&str],
) -> HashMap<String, String> {
    let out = run(&["sh", "-c", &in_cgroup_script(cgroup, ns, helper, args)]);
    parse_kv(&String::from_utf8_lossy(&out.stdout))
}

/// Starts `helper args…` inside `cgroup` and `ns` like [`helper_in_cgroup`], without waiting;
/// its stdout is piped (read it with `wait_with_output` and [`parse_kv`]).
pub fn spawn_in_cgroup(cgroup: &Cgroup, ns: &Netns, helper: &str, args: &[&str]) -> Child {
    Command::new("sh")
        .args(["-c", &in_cgroup_script(cgroup, ns, helper, args)])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn helper")
}

fn in_cgroup_script(cgroup: &Cgroup, ns: &Netns, helper: &str, args: &[&str]) -> String {
    format!(
        "echo $$ > '{}' && exec ip netns exec '{}' '{}' {}",
        cgroup.path.join("cgroup.procs").display(),
        ns.name,
        helper,
        args.join(" ")
    )
}

/// A real Prometheus server (Debian's `prometheus`) scraping one target every second (and
/// evaluating its rule files every second), stopped and its data removed on drop.
pub struct Prometheus {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`) at `/metrics`.
    pub fn start(target: &str) -> Self {
        Self::with_rules(target, None)
    }

    /// Starts Prometheus scraping `target`, with the rule file `rules` loaded.
    pub fn with_rules(target: &str, rules: Option<&Path>) -> Self {
        let rule_files =
            rules.map(|r| format!("rule_files: ['{}']\n", r.display())).unwrap_or_default();
        Self::custom(
            &format!(
                "{rule_files}scrape_configs:\n  - job_name: egressor\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
            &[],
        )
    }

    /// Starts Prometheus with `config` after the 1-second global block (rule files, scrape
    /// and remote-write sections) and `args` added to its command line.
    pub fn custom(config: &str, args: &[&str]) -> Self {
        Self::custom_with_data(config, args, |_| {})
    }

    /// As [`Prometheus::custom`], with `fill` given the (empty) TSDB directory before the
    /// server starts: for backfilled blocks (`promtool tsdb create-blocks-from`).
    pub fn custom_with_data(config: &str, args: &[&str], fill: impl FnOnce(&Path)) -> Self {
        let dir = std::env::temp_dir().join(unique_name("prom"));
        std::fs::create_dir_all(dir.join("data")).expect("prometheus dir");
        fill(&dir.join("data"));
        let path = dir.join("prometheus.yml");
        std::fs::write(
            &path,
            format!(
                "global: {{scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s}}\n\
                 {config}"
            ),
        )
        .expect("write config");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus (apt-get install prometheus)");
        Self { child, port, dir }
    }

    /// Runs an instant query and returns the first result's value, `None` when empty or
    /// Prometheus is not answering yet.
    pub fn query(&self, promql: &str) -> Option<f64> {
        self.query_all(promql)?.first()?.1.into()
    }

    /// Runs an instant query and returns every result's labels and value; `None` when
    /// Prometheus does not answer or refuses the query.
    pub fn query_all(&self, promql: &str) -> Option<Vec<(HashMap<String, String>, f64)>> {
        self.query_all_at(promql, None)
    }

    /// [`Prometheus::query_all`] evaluated at `time` (Unix seconds; `None`: now).
    pub fn query_all_at(
        &self,
        promql: &str,
        time: Option<u64>,
    ) -> Option<Vec<(HashMap<String, String>, f64)>> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let mut request = ureq::get(&url).query("query", promql);
        if let Some(t) = time {
            request = request.query("time", t.to_string());
        }
        let mut r = request.call().ok()?;
        let body: serde_json::Value =
            serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()?;
        let rows = body["data"]["result"].as_array()?;
        Some(
            rows.iter()
                .filter_map(|row| {
                    let labels = row["metric"]
                        .as_object()?
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect();
                    Some((labels, row["value"][1].as_str()?.parse().ok()?))
                })
                .collect(),
        )
    }

    /// Polls `promql` until it returns `want` (within 1e-9 relative), or panics after 30 s
    /// with the last value.
    pub fn wait_for(&self, promql: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        while Instant::now() < deadline {
            last = self.query(promql);
            if last.is_some_and(|v| (v - want).abs() <= want.abs() * 1e-9) {
                return;
            }
            thread::sleep(Duration::from_millis(250));
        }
        panic!("Prometheus: {promql} = {last:?}, want {want}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Ids of every eBPF program loaded in the kernel.
pub fn loaded_program_ids() -> std::collections::HashSet<u32> {
    aya::programs::loaded_programs().filter_map(Result::ok).map(|p| p.id()).collect()
}

/// Starts an agent and returns it with the ids of the programs it loaded (programs loaded
/// by others in the meantime would be included: tests run one at a time).
pub fn start_agent_tracking_programs(args: &[&str]) -> (Agent, std::collections::HashSet<u32>) {
    let before = loaded_program_ids();
    let agent = Agent::start(args);
    let mine = loaded_program_ids().difference(&before).copied().collect();
    (agent, mine)
}

/// Stops `agent` with SIGTERM and asserts a clean exit and that every program it loaded is
/// gone from the kernel (links detached, programs unloaded).
pub fn stop_and_assert_detached(agent: Agent, programs: &std::collections::HashSet<u32>) {
    assert!(!programs.is_empty(), "the agent loaded programs");
    assert!(agent.stop().success(), "clean exit on SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<u32> = loaded_program_ids().intersection(programs).copied().collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "programs still loaded after exit: {left:?}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// Every key of the `FLOWS` map of the agent whose programs are `programs` (ids from
/// [`start_agent_tracking_programs`]): the kernel's own view of the flows, to check what
/// the parser put in a key.
pub fn kernel_flow_keys(
    programs: &std::collections::HashSet<u32>,
) -> Vec<egressor_common::FlowKey> {
    use aya::maps::{Map, MapData, PerCpuHashMap};
    use egressor_common::{FlowCounters, FlowKey};
    let map_ids: std::collections::HashSet<u32> = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| programs.contains(&p.id()))
        .filter_map(|p| p.map_ids().ok().flatten())
        .flatten()
        .collect();
    for id in map_ids {
        let Ok(info) = aya::maps::MapInfo::from_id(id) else { continue };
        if info.name_as_str() != Some(egressor_common::FLOWS_MAP) {
            continue;
        }
        let data = MapData::from_id(id).expect("open FLOWS by id");
        let map = Map::from_map_data(data).expect("FLOWS as a map");
        let flows: PerCpuHashMap<_, FlowKey, FlowCounters> =
            PerCpuHashMap::try_from(map).expect("FLOWS is a per-CPU hash");
        return flows.keys().filter_map(Result::ok).collect();
    }
    panic!("no FLOWS map among the agent's programs' maps");
}

/// Resident memory of a process, from /proc/<pid>/status (kB).
pub fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
