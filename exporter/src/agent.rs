//! `egressor agent`: validates flags and configuration, loads and attaches the programs,
//! runs the read loop and serves HTTP until SIGINT or SIGTERM.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, atomic::AtomicBool, mpsc},
};

use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::{
    accounting::Accounting,
    attribution::Attributor,
    cgroups::{CgroupResolver, check_cgroup_dir, find_cgroup2_mount},
    checkpoint::CheckpointFile,
    classify::Classifier,
    cli::{AgentArgs, HookMode, KubernetesMode, SetupArgs},
    cloud::sources::{CloudRanges, SourceMetrics},
    config::FileConfig,
    dataplane::{Dataplane, DataplaneOptions, Interface},
    destinations::Destinations,
    discovery::{self, Discovered},
    dns::DnsNames,
    error::{AgentError, ConfigError},
    geoip::GeoIp,
    http::{AppState, app},
    http_api::{ApiState, Guard},
    kubernetes::{
        self, KubeAttribution, ServiceLookups,
        conntrack::{Conntrack, ConntrackError},
        index::KubeIndex,
        watch::{self, WatchStatus},
    },
    metrics::{PREFIX, SharedSnapshot, registry},
    prices::{PriceSheet, Pricer},
    reader::{Reader, Request},
};

/// Everything the agent needs, validated.
#[derive(Debug)]
pub struct AgentPlan {
    /// The validated configuration file.
    pub file: FileConfig,
    /// The price sheet in use.
    pub prices: PriceSheet,
    /// The MaxMind databases given.
    pub geoip: GeoIp,
    /// The API's bearer token, if one is required.
    pub api_token: Option<String>,
    /// What to load and where to attach it.
    pub dataplane: DataplaneOptions,
}

/// Validates flags, the config file, the price sheet, interfaces and the cgroup path.
/// Every problem here is the operator's to fix: exit code 2.
///
/// # Errors
/// The first [`ConfigError`] found in that order.
pub fn plan(args: &AgentArgs, discovered: Option<&Discovered>) -> Result<AgentPlan, ConfigError> {
    if !args.telemetry_path.starts_with('/')
        || ["/", "/healthz", "/readyz"].contains(&args.telemetry_path.as_str())
    {
        return Err(ConfigError::Flag {
            flag: "--web.telemetry-path",
            problem: format!(
                "{:?} must start with '/' and not be /, /healthz or /readyz",
                args.telemetry_path
            ),
        });
    }
    let (file, prices) = load_setup(&args.setup, discovered)?;

    let (use_cgroup, use_tc) = match args.hook {
        HookMode::Auto => (args.interfaces.is_empty(), !args.interfaces.is_empty()),
        HookMode::Cgroup => (true, false),
        HookMode::Tc => (false, true),
        HookMode::Both => (true, true),
    };
    if use_tc && args.interfaces.is_empty() {
        return Err(ConfigError::Flag {
            flag: "--hook",
            problem: "tc and both need at least one --interface".into(),
        });
    }
    if !use_tc && !args.interfaces.is_empty() {
        return Err(ConfigError::Flag {
            flag: "--interface",
            problem: "given with --hook cgroup; use --hook tc or --hook both".into(),
        });
    }
    let interfaces = if use_tc {
        args.interfaces.iter().map(|n| interface(n)).collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    let cgroup = if use_cgroup {
        let path = match &args.cgroup_path {
            Some(p) => p.clone(),
            None => find_cgroup2_mount()?,
        };
        check_cgroup_dir(&path)?;
        Some(path)
    } else {
        None
    };
    let geoip = GeoIp::open(args.setup.geoip_asn.as_deref(), args.setup.geoip_country.as_deref())?;
    let api_token = match &args.api_bearer_token_file {
        None => None,
        Some(path) => {
            let token = ConfigError::read_file(path)?.trim().to_owned();
            if token.is_empty() {
                return Err(ConfigError::Flag {
                    flag: "--web.api.bearer-token-file",
                    problem: format!("{} is empty", path.display()),
                });
            }
            Some(token)
        }
    };
    Ok(AgentPlan {
        file,
        prices,
        geoip,
        api_token,
        dataplane: DataplaneOptions {
            cgroup,
            interfaces,
            tc_attach_mode: args.tc_attach_mode,
            include_loopback: args.include_loopback,
            max_flows: args.flow_map_max_entries,
            dns_events_per_second: args.dns_events_per_second,
            track_services: kubernetes_wanted(args),
            pin_path: args.pin_path.clone(),
        },
    })
}

/// Whether `--kubernetes` (and the environment, for `auto`) turns Kubernetes attribution on.
fn kubernetes_wanted(args: &AgentArgs) -> bool {
    match args.kubernetes {
        KubernetesMode::Off => false,
        KubernetesMode::On => true,
        KubernetesMode::Auto => {
            std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() || args.kubeconfig.is_some()
        }
    }
}

/// Asks the cloud's metadata service when the configuration file enables it; `None` when it
/// does not, when the file does not load (the caller reports that), or when the service
/// fails (logged as a warning).
pub async fn discover(args: &SetupArgs) -> Option<Discovered> {
    let path = args.config_file.as_ref()?;
    let file = FileConfig::load(path).ok()?;
    if !file.discovery.aws_imds {
        return None;
    }
    match discovery::aws_imds(&file.discovery.endpoint).await {
        Ok(found) => Some(found),
        Err(e) => {
            warn!(error = %e, "instance metadata unavailable; using the configuration alone");
            None
        }
    }
}

/// Loads the configuration file (filled in with `discovered`) and the price sheet; the node's
/// provider and region default to the sheet's.
///
/// # Errors
/// The [`ConfigError`] of the configuration file, then of the price sheet.
pub fn load_setup(
    args: &SetupArgs,
    discovered: Option<&Discovered>,
) -> Result<(FileConfig, PriceSheet), ConfigError> {
    let mut file = match &args.config_file {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    if let Some(found) = discovered {
        let added = discovery::merge(&mut file, found);
        info!(zone = ?file.node.zone, region = ?file.node.region, added, "discovered from instance metadata");
    }
    let prices = PriceSheet::load(
        args.prices.as_deref(),
        (file.node.provider, file.node.region.as_deref()),
    )?;
    file.node.provider.get_or_insert(prices.provider);
    file.node.region.get_or_insert_with(|| prices.region.clone());
    Ok((file, prices))
}

/// Looks up an interface's index and link type.
fn interface(name: &str) -> Result<Interface, ConfigError> {
    let unknown = || ConfigError::UnknownInterface { name: name.to_owned() };
    if name.is_empty() || name.contains('/') {
        return Err(unknown());
    }
    let index = nix::net::if_::if_nametoindex(name).map_err(|_| unknown())?;
    let link_type = std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("type"))
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .ok_or_else(unknown)?;
    // if_arp.h: ARPHRD_ETHER 1, ARPHRD_LOOPBACK 772 carry an Ethernet header; ARPHRD_NONE
    // 65534 (WireGuard, tun), IPIP 768, SIT 776, IPGRE 778, ARPHRD_RAWIP 519 start at IP.
    let ethernet = match link_type {
        1 | 772 => true,
        65534 | 768 | 776 | 778 | 519 => false,
        other => {
            return Err(ConfigError::Flag {
                flag: "--interface",
                problem: format!(
                    "{name}: link type {other} is not supported (Ethernet or IP only)"
                ),
            });
        }
    };
    Ok(Interface { name: name.to_owned(), index, ethernet })
}

/// Runs the agent until SIGINT/SIGTERM.
///
/// # Errors
/// [`AgentError::Config`] (exit 2), or a dataplane or HTTP failure (exit 1).
pub async fn run(args: AgentArgs) -> Result<(), AgentError> {
    let discovered = discover(&args.setup).await;
    let plan = plan(&args, discovered.as_ref())?;
    let listener = TcpListener::bind(args.listen_address)
        .await
        .map_err(|source| AgentError::Http { address: args.listen_address, source })?;

    // The lock first: a second agent must not touch the pins of a running one.
    let checkpoint = match &args.pin_path {
        Some(_) => Some(CheckpointFile::lock(&args.checkpoint_file)?),
        None => None,
    };
    let dataplane = tokio::task::block_in_place(|| Dataplane::load(&plan.dataplane))?;
    info!(
        flow_map_max_entries = plan.dataplane.max_flows,
        prices = %format!("{} {}", plan.prices.provider, plan.prices.region),
        node_zone = plan.file.node.zone.as_deref().unwrap_or("(unknown)"),
        node_region = plan.file.node.region.as_deref().unwrap_or("(unknown)"),
        networks = plan.file.networks.len(),
        "counting"
    );
    let prices = Arc::new(plan.prices);
    let snapshot = Arc::new(SharedSnapshot::default());
    let api_snapshot = snapshot.clone();
    let (mut registry, self_metrics) = registry(
        snapshot.clone(),
        prices.clone(),
        dataplane.attachments(),
        dataplane.capacity(),
        args.series_max as u64,
    );
    let range_metrics = SourceMetrics::default();
    range_metrics.register(registry.sub_registry_with_prefix(PREFIX));
    let ranges = tokio::task::block_in_place(|| {
        CloudRanges::start(plan.file.cloud_ranges.clone(), range_metrics)
    });
    let cloud_table = ranges.shared();
    if ranges.has_urls() {
        tokio::spawn(ranges.refresh_forever());
    }
    let ready = Arc::new(AtomicBool::new(false));

    let dns_names = DnsNames::new(args.dns_cache_size, args.dns_grace_period);
    let kube =
        start_kubernetes(&args, &plan.file, registry.sub_registry_with_prefix(PREFIX)).await?;
    let interfaces: HashMap<u32, Arc<str>> =
        plan.dataplane.interfaces.iter().map(|i| (i.index, Arc::from(i.name.as_str()))).collect();
    let cgroup_root = plan.dataplane.cgroup.clone().unwrap_or_else(|| PathBuf::from("/"));
    let idle_cycles = cycles_in(args.flow_idle_timeout, args.read_interval);
    let mut reader = Reader {
        dataplane,
        accounting: Accounting::with_flow_capacity(
            idle_cycles,
            u64::from(cycles_in(args.series_idle_timeout, args.read_interval)),
            args.series_max,
            plan.dataplane.max_flows as usize,
        ),
        attributor: Attributor::new(
            CgroupResolver::new(cgroup_root),
            Classifier::new(&plan.file, cloud_table),
            &plan.file,
            interfaces,
        )
        .with_geoip(plan.geoip)
        .with_dns(dns_names.clone())
        .with_kubernetes_opt(kube)
        .with_name_limit(
            args.remote_names_top_k,
            u64::from(cycles_in(args.remote_names_window, args.read_interval)),
        ),
        pricer: Pricer::new(prices.clone(), &plan.file.pricing),
        snapshot,
        metrics: self_metrics,
        ready: ready.clone(),
        relabel_next: false,
        dns: dns_names,
        pending_services: None,
        checkpoint: None,
        adopt_next: false,
        destinations: Destinations::new(
            u64::from(cycles_in(args.destinations_window, args.read_interval)),
            args.destinations_lookback,
            args.destinations_memory,
        ),
    };
    if let Some(file) = checkpoint {
        resume(&mut reader, &file);
        reader.checkpoint = Some(file);
    }
    let (stop_tx, stop_rx) = mpsc::channel();
    let api_tx = stop_tx.clone();
    let interval = args.read_interval;
    let reader = std::thread::Builder::new()
        .name("egressor-reader".into())
        .spawn(move || reader.run(interval, stop_rx))
        .map_err(AgentError::Reader)?;

    let state = AppState {
        registry: Arc::new(registry),
        ready,
        telemetry_path: args.telemetry_path.clone(),
        api: Some(ApiState {
            reader: api_tx,
            snapshot: api_snapshot,
            guard: Arc::new(Guard { allow: args.api_allow.clone(), token: plan.api_token.clone() }),
        }),
        guard_metrics: args.guard_metrics,
    };
    let address = listener.local_addr().unwrap_or(args.listen_address);
    info!(
        "serving OpenMetrics on http://{address}{} (read interval {:?})",
        args.telemetry_path, args.read_interval
    );
    let service = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, service).with_graceful_shutdown(shutdown()).await;

    if args.pin_path.is_some() {
        info!("shutting down: the pinned programs keep counting for the next agent");
    } else {
        info!("shutting down: detaching programs");
    }
    let _ = stop_tx.send(Request::Stop);
    if reader.join().is_err() {
        warn!("the reader thread panicked");
    }
    served.map_err(|source| AgentError::Http { address, source })
}

/// With pinned maps: resumes the accounting from the checkpoint when it continues the reused
/// flow map; otherwise the maps' current totals count as already exported (no byte twice).
/// Fresh maps make an old checkpoint meaningless: it is deleted.
fn resume(reader: &mut Reader, file: &CheckpointFile) {
    if !reader.dataplane.pins_reused() {
        file.remove();
        return;
    }
    let map_id = reader.dataplane.flow_map_id();
    let checkpoint = match file.read() {
        Ok(Some(c)) => match file.continues(&c, map_id) {
            Ok(()) => Some(c),
            Err(why) => {
                warn!("the checkpoint is not used: {why}");
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            warn!(error = %crate::reader::error_chain(&e), "the checkpoint is not used");
            None
        }
    };
    match checkpoint {
        Some(c) => {
            let attributor = &mut reader.attributor;
            let (flows, series) = reader.accounting.restore(c.saved, |l| attributor.restored(l));
            info!(flows, series, "resumed the counters from the checkpoint");
        }
        None => {
            warn!(
                "pinned maps without a usable checkpoint: their current totals count as already exported (bytes the last agent had not exported are not)"
            );
            reader.adopt_next = true;
        }
    }
}

/// Starts the Kubernetes watches when `--kubernetes` says so; their self-metrics go into
/// `registry`.
///
/// # Errors
/// [`ConfigError::Flag`] when Kubernetes is asked for (or found) but its configuration cannot
/// be read. An unreachable API server is not an error: the watches retry.
async fn start_kubernetes(
    args: &AgentArgs,
    file: &FileConfig,
    registry: &mut prometheus_client::registry::Registry,
) -> Result<Option<KubeAttribution>, ConfigError> {
    if !kubernetes_wanted(args) {
        return Ok(None);
    }
    // Which backend served a connection to a Service: the conntrack table of the namespace
    // where the Service NAT happens (the node's).
    let conntrack_netns = args.kubernetes_conntrack_netns.as_deref();
    let conntrack = match Conntrack::open(conntrack_netns) {
        Ok(c) => Some(Arc::new(std::sync::Mutex::new(c))),
        Err(e @ ConntrackError::Netns { .. }) => {
            return Err(ConfigError::Flag {
                flag: "--kubernetes.conntrack-netns",
                problem: crate::reader::error_chain(&e),
            });
        }
        Err(e) => {
            warn!(error = %crate::reader::error_chain(&e), "conntrack cannot be asked (CAP_NET_ADMIN?): flows to Services are attributed to the Service, class unknown");
            None
        }
    };
    let client =
        kubernetes::client(args.kubeconfig.as_deref()).await.map_err(|e| ConfigError::Flag {
            flag: "--kubeconfig",
            problem: format!(
                "cannot set up the Kubernetes client: {}",
                crate::reader::error_chain(&e)
            ),
        })?;
    // The pod and namespace labels to keep: the version label and the chargeback labels.
    let mut keep = vec![args.kubernetes_version_label.clone()];
    keep.extend(args.kubernetes_labels.iter().cloned());

    let node_name = args.kubernetes_node_name.clone().unwrap_or_else(|| {
        nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default()
    });
    info!(node = %node_name, "this node in the cluster");
    let index = Arc::new(std::sync::RwLock::new(
        KubeIndex::new(keep)
            .with_topology(&file.kubernetes.nodes)
            .with_local_node(&node_name)
            .with_fallback_place(file.node.zone.as_deref(), file.node.region.as_deref()),
    ));
    let status = Arc::new(WatchStatus::default());
    let service_lookups = Arc::new(ServiceLookups::default());
    watch::register(registry, status.clone(), index.clone(), service_lookups.clone());
    watch::spawn(client, index.clone(), status);
    info!("watching Pods, Nodes, ReplicaSets, Jobs, Namespaces, Services and EndpointSlices");
    Ok(Some(KubeAttribution {
        chargeback: args.kubernetes_labels.clone(),
        index,
        conntrack,
        service_lookups,
        version_label: args.kubernetes_version_label.clone(),
    }))
}

/// Read cycles in `timeout` (at least one), rounded up.
fn cycles_in(timeout: std::time::Duration, interval: std::time::Duration) -> u32 {
    let cycles = timeout.as_secs_f64() / interval.as_secs_f64();
    cycles.ceil().clamp(1.0, u32::MAX as f64) as u32
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!("cannot listen for SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => info!("received SIGINT"),
        () = term => info!("received SIGTERM"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn plan_of(args: &AgentArgs) -> Result<AgentPlan, ConfigError> {
        plan(args, None)
    }

    fn args(extra: &[&str]) -> AgentArgs {
        let mut argv = vec!["egressor", "agent"];
        argv.extend_from_slice(extra);
        let Command::Agent(a) = Cli::try_parse_from(argv).unwrap().command else { panic!("agent") };
        *a
    }

    #[test]
    fn cycles_round_up() {
        assert_eq!(cycles_in(Duration::from_secs(120), Duration::from_secs(10)), 12);
        assert_eq!(cycles_in(Duration::from_secs(5), Duration::from_secs(10)), 1);
        assert_eq!(cycles_in(Duration::from_millis(1500), Duration::from_secs(1)), 2);
    }

    #[test]
    fn unknown_interface_is_named() {
        let e = plan_of(&args(&["--interface", "nope0"])).unwrap_err();
        assert_eq!(e.to_string(), "--interface nope0: no such network interface (see `ip link`)");
    }

    #[test]
    fn loopback_interface_is_ethernet_framed() {
        let p = plan_of(&args(&["--interface", "lo"])).unwrap();
        assert_eq!(p.dataplane.interfaces[0].name, "lo");
        assert!(p.dataplane.interfaces[0].ethernet);
        assert!(p.dataplane.cgroup.is_none(), "--interface switches to TC only");
    }

    #[test]
    fn flag_combinations_are_checked() {
        assert!(plan_of(&args(&["--hook", "tc"])).unwrap_err().to_string().contains("--hook"));
        let e = plan_of(&args(&["--hook", "cgroup", "--interface", "lo"])).unwrap_err();
        assert!(e.to_string().starts_with("--interface"), "{e}");
        let e = plan_of(&args(&["--web.telemetry-path", "metrics"])).unwrap_err();
        assert!(e.to_string().starts_with("--web.telemetry-path"), "{e}");
    }

    #[test]
    fn missing_cgroup_dir_is_named() {
        let e = plan_of(&args(&["--cgroup.path", "/nonexistent/cg"])).unwrap_err().to_string();
        assert!(e.starts_with("--cgroup.path /nonexistent/cg:"), "{e}");
    }
}
