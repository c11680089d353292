//! The kernel half: loads egressor's eBPF programs, attaches them, and reads their maps.

mod bpf_sys;
pub mod pins;

use std::{
    collections::HashSet,
    io,
    net::IpAddr,
    os::fd::{AsFd, OwnedFd},
    path::PathBuf,
};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{HashMap as BpfHashMap, Map, MapData, MapError, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, LinkOrder, ProgramError, SchedClassifier,
        TcAttachType,
        links::FdLink,
        tc::{NlOptions, TcAttachOptions, qdisc_add_clsact, qdisc_detach_program},
    },
};
use egressor_common::{
    CONFIG_GLOBAL, DNS_EVENTS_MAP, DNS_STATS_MAP, DataplaneConfig, Direction, DnsEvent, FLOWS_MAP,
    FlowCounters, FlowKey, Hook, OVERFLOW_MAP, OVERFLOW_SLOTS, SERVICE_MAP_ENTRIES, SERVICES_MAP,
    ServiceAddress, dns_stat, family, overflow_slot,
};
use tracing::{debug, info, warn};

use crate::cli::TcAttachMode;

/// The eBPF object built by `exporter/build.rs` from `ebpf/`.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/egressor"));

/// Flows read per `BPF_MAP_LOOKUP_BATCH` call.
const LOOKUP_BATCH: usize = 4096;

/// What the kernel half must do.
#[derive(Debug, Clone)]
pub struct DataplaneOptions {
    /// cgroup v2 directory for the cgroup_skb programs; `None` to not attach them.
    pub cgroup: Option<PathBuf>,
    /// Interfaces for the TC programs.
    pub interfaces: Vec<Interface>,
    /// How TC programs attach.
    pub tc_attach_mode: TcAttachMode,
    /// Whether loopback traffic is counted by the cgroup programs.
    pub include_loopback: bool,
    /// `max_entries` of the flow map.
    pub max_flows: u32,
    /// DNS responses copied at most per second and CPU; 0 turns DNS capture off.
    pub dns_events_per_second: u32,
    /// Whether the cgroup programs keep both ports of flows to the addresses given to
    /// [`Dataplane::set_service_addresses`] (Kubernetes nodes).
    pub track_services: bool,
    /// bpffs directory to pin maps and links in (see [`pins`]); `None`: nothing outlives
    /// the agent.
    pub pin_path: Option<PathBuf>,
}

/// An interface to attach TC programs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// Interface index.
    pub index: u32,
    /// Whether frames start with an Ethernet header (`ARPHRD_ETHER`, loopback) or with the
    /// IP header (WireGuard, tun, GRE, …).
    pub ethernet: bool,
}

/// Loading, attaching or reading failed.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The process lacks capabilities the programs need (checked before loading).
    #[error(
        "missing {}: the agent needs CAP_BPF and CAP_PERFMON to load its programs (or \
         CAP_SYS_ADMIN for both) and CAP_NET_ADMIN to load and attach networking programs; \
         run as root or grant them (e.g. setcap, or the container's securityContext)",
        missing.join(", ")
    )]
    MissingCapabilities {
        /// Names of the missing capabilities.
        missing: Vec<&'static str>,
    },
    /// The kernel refused an operation with EPERM.
    #[error(
        "{action}: permission denied. The agent needs CAP_BPF and CAP_PERFMON to load its \
         programs, CAP_NET_ADMIN to attach them (or root)"
    )]
    Privileges {
        /// What was being done.
        action: String,
        #[source]
        /// The kernel's refusal.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The object or its maps could not be loaded.
    #[error("loading the eBPF object")]
    Load(#[source] EbpfError),
    /// The kernel refused a program (the source holds the verifier log).
    #[error("loading program {program}")]
    Program {
        /// Program name.
        program: &'static str,
        #[source]
        /// The load error, with the verifier log.
        source: ProgramError,
    },
    /// A program could not be attached.
    #[error("attaching {program} to {target}")]
    Attach {
        /// Program name.
        program: &'static str,
        /// cgroup directory or interface.
        target: String,
        #[source]
        /// The attach error.
        source: ProgramError,
    },
    /// A map is missing from the object or cannot be read.
    #[error("map {map}")]
    Map {
        /// Map name.
        map: &'static str,
        #[source]
        /// The map error.
        source: MapError,
    },
    /// Pinning in bpffs failed.
    #[error("--bpf.pin-path {}: {problem}", path.display())]
    Pin {
        /// The pin path or the entry under it.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
    /// A raw map syscall failed.
    #[error("{op} on map {map}")]
    Syscall {
        /// The operation.
        op: &'static str,
        /// Map name.
        map: &'static str,
        #[source]
        /// The syscall error.
        source: io::Error,
    },
}

/// Where a program is attached, for the log and the `egressor_program_attached` metric.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attachment {
    /// Which hook.
    pub hook: Hook,
    /// Which direction.
    pub direction: Direction,
    /// The cgroup directory or the interface name.
    pub target: String,
    /// `cgroup_link`, `tcx` or `clsact`.
    pub mechanism: &'static str,
}

/// The loaded and attached programs and their maps. Dropping it detaches everything, except
/// what is pinned ([`DataplaneOptions::pin_path`]): pinned links keep counting into the
/// pinned maps for the next agent.
pub struct Dataplane {
    // Field order matters: maps and links go before the object that owns the programs.
    flows: PerCpuHashMap<MapData, FlowKey, FlowCounters>,
    flows_fd: OwnedFd,
    overflow: PerCpuArray<MapData, FlowCounters>,
    dns_events: RingBuf<MapData>,
    dns_stats: PerCpuArray<MapData, u64>,
    services: BpfHashMap<MapData, ServiceAddress, u8>,
    /// What `services` holds.
    service_addresses: HashSet<IpAddr>,
    cpus: usize,
    capacity: u32,
    batch_supported: bool,
    lookup_and_delete_supported: bool,
    attachments: Vec<Attachment>,
    /// The flow map's kernel id (tells a checkpoint of this very map from any other).
    flow_map_id: u32,
    /// Whether pinned maps of an earlier agent were reused.
    pins_reused: bool,
    _ebpf: Ebpf,
}

impl Dataplane {
    /// Loads the object, sizes the flow map, attaches the cgroup and TC programs asked for.
    ///
    /// # Errors
    /// [`DataplaneError::Privileges`] when the kernel says EPERM anywhere, otherwise the step
    /// that failed with the kernel's reason (the verifier log for a rejected program).
    pub fn load(options: &DataplaneOptions) -> Result<Self, DataplaneError> {
        check_capabilities()?;
        raise_memlock_limit();
        let config = DataplaneConfig {
            include_loopback: u8::from(options.include_loopback),
            capture_dns: u8::from(options.dns_events_per_second > 0),
            dns_events_per_second: options.dns_events_per_second,
            track_services: u8::from(options.track_services),
            ..Default::default()
        };
        let mut pins = match &options.pin_path {
            Some(root) => Some(pins::PinLayout::prepare(root, options.max_flows)?),
            None => None,
        };
        let mut loader = EbpfLoader::new();
        loader
            .override_global(CONFIG_GLOBAL, &config, true)
            .map_max_entries(FLOWS_MAP, options.max_flows);
        if let Some(pins) = &pins {
            for name in pins::PINNED_MAPS {
                loader.map_pin_path(name, pins.map_path(name));
            }
        }
        let mut ebpf = loader
            .load(EBPF_OBJECT)
            .map_err(|e| privileges_or("loading the eBPF object", e, DataplaneError::Load))?;

        let mut attachments = Vec::new();
        if let Some(cgroup) = &options.cgroup {
            attach_cgroup(&mut ebpf, cgroup, pins.as_mut(), &mut attachments)?;
        }
        for interface in &options.interfaces {
            attach_tc(
                &mut ebpf,
                interface,
                options.tc_attach_mode,
                pins.as_mut(),
                &mut attachments,
            )?;
        }
        if let Some(pins) = &pins {
            pins.remove_unused_links();
        }

        let take = |ebpf: &mut Ebpf, name: &'static str| {
            ebpf.take_map(name).ok_or(DataplaneError::Map {
                map: name,
                source: MapError::InvalidName { name: name.into() },
            })
        };
        let flows_map = take(&mut ebpf, FLOWS_MAP)?;
        let flow_map_id = match &flows_map {
            Map::PerCpuHashMap(data) => data.info().map(|i| i.id()).unwrap_or(0),
            _ => 0,
        };
        // A second descriptor for the raw batch and lookup-and-delete syscalls.
        let flows_fd = match &flows_map {
            Map::PerCpuHashMap(data) => data.fd().as_fd().try_clone_to_owned(),
            _ => Err(io::Error::from(io::ErrorKind::InvalidData)),
        }
        .map_err(|source| DataplaneError::Syscall { op: "dup", map: FLOWS_MAP, source })?;
        let flows = PerCpuHashMap::try_from(flows_map)
            .map_err(|source| DataplaneError::Map { map: FLOWS_MAP, source })?;
        let overflow = PerCpuArray::try_from(take(&mut ebpf, OVERFLOW_MAP)?)
            .map_err(|source| DataplaneError::Map { map: OVERFLOW_MAP, source })?;
        let dns_events = RingBuf::try_from(take(&mut ebpf, DNS_EVENTS_MAP)?)
            .map_err(|source| DataplaneError::Map { map: DNS_EVENTS_MAP, source })?;
        let dns_stats = PerCpuArray::try_from(take(&mut ebpf, DNS_STATS_MAP)?)
            .map_err(|source| DataplaneError::Map { map: DNS_STATS_MAP, source })?;
        let services = BpfHashMap::try_from(take(&mut ebpf, SERVICES_MAP)?)
            .map_err(|source| DataplaneError::Map { map: SERVICES_MAP, source })?;
        let cpus = aya::util::nr_cpus().map_err(|(_, source)| DataplaneError::Syscall {
            op: "counting possible CPUs",
            map: FLOWS_MAP,
            source,
        })?;
        Ok(Self {
            flows,
            flows_fd,
            overflow,
            dns_events,
            dns_stats,
            services,
            service_addresses: HashSet::new(),
            cpus,
            capacity: options.max_flows,
            batch_supported: true,
            lookup_and_delete_supported: true,
            attachments,
            flow_map_id,
            pins_reused: pins.as_ref().is_some_and(|p| p.reused),
            _ebpf: ebpf,
        })
    }

    /// Makes the service map hold exactly `addresses` (at most [`SERVICE_MAP_ENTRIES`]: the
    /// rest are left out, and their flows keep the plain key). Returns how many are held.
    ///
    /// # Errors
    /// [`DataplaneError::Map`] when the kernel refuses an update (the map keeps what it had).
    pub fn set_service_addresses(
        &mut self,
        addresses: &HashSet<IpAddr>,
    ) -> Result<usize, DataplaneError> {
        let map = |source| DataplaneError::Map { map: SERVICES_MAP, source };
        let gone: Vec<IpAddr> = self.service_addresses.difference(addresses).copied().collect();
        for ip in gone {
            match self.services.remove(&service_address(ip)) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(map(e)),
            }
            self.service_addresses.remove(&ip);
        }
        for ip in addresses {
            if self.service_addresses.contains(ip) {
                continue;
            }
            if self.service_addresses.len() >= SERVICE_MAP_ENTRIES as usize {
                break;
            }
            self.services.insert(service_address(*ip), 1, 0).map_err(map)?;
            self.service_addresses.insert(*ip);
        }
        Ok(self.service_addresses.len())
    }

    /// The kernel flow map, for tools and benchmarks that seed or inspect it directly.
    pub fn flow_map_mut(&mut self) -> &mut PerCpuHashMap<MapData, FlowKey, FlowCounters> {
        &mut self.flows
    }

    /// Number of possible CPUs: the length of every per-CPU value.
    pub fn cpus(&self) -> usize {
        self.cpus
    }

    /// Where the programs are attached.
    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    /// `max_entries` of the flow map.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The flow map's kernel id (unique among the maps alive since boot).
    pub fn flow_map_id(&self) -> u32 {
        self.flow_map_id
    }

    /// Whether the maps were pinned by an earlier agent and still hold its counts.
    pub fn pins_reused(&self) -> bool {
        self.pins_reused
    }

    /// Calls `f` with every flow and its counters summed over CPUs.
    ///
    /// # Errors
    /// [`DataplaneError::Syscall`] or [`DataplaneError::Map`] when the map cannot be read.
    pub fn read_flows(
        &mut self,
        mut f: impl FnMut(FlowKey, FlowCounters),
    ) -> Result<(), DataplaneError> {
        if self.batch_supported {
            let fd = self.flows_fd();
            let result = bpf_sys::for_each_percpu::<FlowKey, FlowCounters>(
                fd,
                self.cpus,
                LOOKUP_BATCH,
                |key, per_cpu| f(*key, sum(per_cpu.iter())),
            );
            match result {
                Ok(()) => return Ok(()),
                Err(e) if unsupported(&e) => {
                    warn!(error = %e, "BPF_MAP_LOOKUP_BATCH unsupported; reading flows one by one");
                    self.batch_supported = false;
                }
                Err(source) => {
                    return Err(DataplaneError::Syscall {
                        op: "lookup batch",
                        map: FLOWS_MAP,
                        source,
                    });
                }
            }
        }
        for entry in self.flows.iter() {
            match entry {
                Ok((key, values)) => f(key, sum(values.iter())),
                // The entry was deleted between listing and lookup: nothing to count.
                Err(MapError::KeyNotFound) => {}
                Err(source) => return Err(DataplaneError::Map { map: FLOWS_MAP, source }),
            }
        }
        Ok(())
    }

    /// Removes an idle flow from the kernel map and returns its final counters (`None` if it
    /// was already gone).
    ///
    /// # Errors
    /// [`DataplaneError::Syscall`] or [`DataplaneError::Map`].
    pub fn remove_flow(&mut self, key: &FlowKey) -> Result<Option<FlowCounters>, DataplaneError> {
        if self.lookup_and_delete_supported {
            let mut values = vec![FlowCounters::default(); self.cpus];
            match bpf_sys::lookup_and_delete(self.flows_fd(), key, &mut values) {
                Ok(true) => return Ok(Some(sum(values.iter()))),
                Ok(false) => return Ok(None),
                Err(e) if unsupported(&e) => {
                    warn!(error = %e, "BPF_MAP_LOOKUP_AND_DELETE_ELEM unsupported on per-CPU hash maps (kernel < 5.14); a packet racing an idle flow's removal may go uncounted");
                    self.lookup_and_delete_supported = false;
                }
                Err(source) => {
                    return Err(DataplaneError::Syscall {
                        op: "lookup and delete",
                        map: FLOWS_MAP,
                        source,
                    });
                }
            }
        }
        let last = match self.flows.get(key, 0) {
            Ok(values) => sum(values.iter()),
            Err(MapError::KeyNotFound) => return Ok(None),
            Err(source) => return Err(DataplaneError::Map { map: FLOWS_MAP, source }),
        };
        match self.flows.remove(key) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(Some(last)),
            Err(source) => Err(DataplaneError::Map { map: FLOWS_MAP, source }),
        }
    }

    /// Bytes and packets that found no room in the flow map, by hook and direction; the
    /// kernel's totals since load.
    ///
    /// # Errors
    /// [`DataplaneError::Map`].
    pub fn read_overflow(&self) -> Result<Vec<(Hook, Direction, FlowCounters)>, DataplaneError> {
        let mut out = Vec::with_capacity(OVERFLOW_SLOTS as usize);
        for hook in [Hook::Cgroup, Hook::Tc] {
            for direction in [Direction::Ingress, Direction::Egress] {
                let values = self
                    .overflow
                    .get(&overflow_slot(hook, direction), 0)
                    .map_err(|source| DataplaneError::Map { map: OVERFLOW_MAP, source })?;
                out.push((hook, direction, sum(values.iter())));
            }
        }
        Ok(out)
    }

    /// Hands every DNS response the programs copied since the last call to `f` (message
    /// bytes, whether it came over TCP); returns how many.
    pub fn drain_dns(&mut self, mut f: impl FnMut(&[u8], bool)) -> usize {
        let mut n = 0;
        while let Some(item) = self.dns_events.next() {
            n += 1;
            let bytes: &[u8] = &item;
            if bytes.len() < std::mem::size_of::<DnsEvent>() {
                continue;
            }
            // SAFETY: the record is a DnsEvent written by the programs (size checked above);
            // read unaligned since ring buffer records are only 8-byte aligned.
            let event = unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const DnsEvent) };
            let len = usize::from(event.len).min(event.data.len());
            f(&event.data[..len], event.tcp != 0);
        }
        n
    }

    /// DNS capture counters summed over CPUs: (captured, rate limited, ring full).
    ///
    /// # Errors
    /// [`DataplaneError::Map`].
    pub fn dns_stats(&self) -> Result<[u64; 3], DataplaneError> {
        let mut out = [0; 3];
        for (i, slot) in [dns_stat::CAPTURED, dns_stat::RATE_LIMITED, dns_stat::RING_FULL]
            .into_iter()
            .enumerate()
        {
            let values = self
                .dns_stats
                .get(&slot, 0)
                .map_err(|source| DataplaneError::Map { map: DNS_STATS_MAP, source })?;
            out[i] = values.iter().copied().fold(0u64, u64::wrapping_add);
        }
        Ok(out)
    }

    fn flows_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.flows_fd.as_fd()
    }
}

/// `ip` in the service map's key encoding.
fn service_address(ip: IpAddr) -> ServiceAddress {
    let (addr, fam) = match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let mut bytes = [0; 16];
            bytes[..4].copy_from_slice(&v4.octets());
            (FlowKey::address_words(&bytes), family::IPV4)
        }
        IpAddr::V6(v6) => (FlowKey::address_words(&v6.octets()), family::IPV6),
    };
    ServiceAddress { addr, family: fam, _pad: [0; 3] }
}

fn sum<'a>(values: impl Iterator<Item = &'a FlowCounters>) -> FlowCounters {
    values.fold(FlowCounters::default(), |acc, v| FlowCounters {
        bytes: acc.bytes.wrapping_add(v.bytes),
        packets: acc.packets.wrapping_add(v.packets),
    })
}

fn unsupported(e: &io::Error) -> bool {
    // ENOTSUPP (524) is the kernel-internal code bpf(2) leaks for unsupported map operations.
    matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(524))
}

fn attach_cgroup(
    ebpf: &mut Ebpf,
    cgroup: &std::path::Path,
    mut pins: Option<&mut pins::PinLayout>,
    attachments: &mut Vec<Attachment>,
) -> Result<(), DataplaneError> {
    let dir = std::fs::File::open(cgroup).map_err(|e| DataplaneError::Attach {
        program: "egr_cg_ingress",
        target: cgroup.display().to_string(),
        source: ProgramError::IOError(e),
    })?;
    for (program, attach_type, direction) in [
        ("egr_cg_ingress", CgroupSkbAttachType::Ingress, Direction::Ingress),
        ("egr_cg_egress", CgroupSkbAttachType::Egress, Direction::Egress),
    ] {
        let prog: &mut CgroupSkb = program_mut(ebpf, program)?;
        prog.load().map_err(|e| program_error(program, e))?;
        let attach_error = |source| {
            privileges_or(
                &format!("attaching {program} to {}", cgroup.display()),
                source,
                |source| DataplaneError::Attach {
                    program,
                    target: cgroup.display().to_string(),
                    source,
                },
            )
        };
        let taken_over = match pins.as_deref_mut() {
            None => {
                prog.attach(&dir, attach_type, CgroupAttachMode::Single).map_err(attach_error)?;
                false
            }
            Some(pins) => {
                let name = format!("cgroup-{}", direction_name(direction));
                attach_pinned(pins, &name, program, prog, attach_error, |prog| {
                    let id = prog.attach(&dir, attach_type, CgroupAttachMode::Single)?;
                    prog.take_link(id)
                })?
            }
        };
        let a = Attachment {
            hook: Hook::Cgroup,
            direction,
            target: cgroup.display().to_string(),
            mechanism: "cgroup_link",
        };
        info!(program, target = %a.target, taken_over, "attached");
        attachments.push(a);
    }
    Ok(())
}

/// Attaches `prog` through the link pinned as `name`, or through `attach` (whose link is then
/// pinned) when none is; returns whether a pinned link was taken over. `attach_error` turns
/// the kernel's refusal into the caller's error.
fn attach_pinned<P, L>(
    pins: &mut pins::PinLayout,
    name: &str,
    program: &'static str,
    prog: &mut P,
    attach_error: impl Fn(ProgramError) -> DataplaneError,
    attach: impl FnOnce(&mut P) -> Result<L, ProgramError>,
) -> Result<bool, DataplaneError>
where
    P: ProgramFdOf,
    FdLink: TryFrom<L, Error = aya::programs::links::LinkError>,
{
    // A descriptor of its own, so that `attach` can borrow the program mutably.
    let fd = prog
        .program_fd()
        .map_err(|e| program_error(program, e))?
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| program_error(program, ProgramError::IOError(e)))?;
    pins.attach(name, fd.as_fd(), || {
        let link = attach(prog).map_err(&attach_error)?;
        FdLink::try_from(link).map_err(|e| attach_error(ProgramError::IOError(io::Error::other(e))))
    })
}

/// The loaded program's descriptor, for the program types egressor attaches.
trait ProgramFdOf {
    fn program_fd(&self) -> Result<&aya::programs::ProgramFd, ProgramError>;
}

impl ProgramFdOf for CgroupSkb {
    fn program_fd(&self) -> Result<&aya::programs::ProgramFd, ProgramError> {
        self.fd()
    }
}

impl ProgramFdOf for SchedClassifier {
    fn program_fd(&self) -> Result<&aya::programs::ProgramFd, ProgramError> {
        self.fd()
    }
}

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    }
}

fn attach_tc(
    ebpf: &mut Ebpf,
    interface: &Interface,
    mode: TcAttachMode,
    mut pins: Option<&mut pins::PinLayout>,
    attachments: &mut Vec<Attachment>,
) -> Result<(), DataplaneError> {
    let tcx = match mode {
        TcAttachMode::Tcx => true,
        TcAttachMode::Clsact => false,
        TcAttachMode::Auto => aya::util::KernelVersion::current()
            .is_ok_and(|v| v >= aya::util::KernelVersion::new(6, 6, 0)),
    };
    if !tcx {
        match qdisc_add_clsact(&interface.name) {
            Ok(()) => debug!(interface = %interface.name, "added clsact qdisc"),
            Err(e) if caused_by_errno(&e, libc::EEXIST) => {}
            Err(e) => {
                return Err(DataplaneError::Attach {
                    program: "tc",
                    target: interface.name.clone(),
                    source: ProgramError::TcError(e),
                });
            }
        }
    }
    let programs: [(&'static str, TcAttachType, Direction); 2] = if interface.ethernet {
        [
            ("egr_tc_ingress", TcAttachType::Ingress, Direction::Ingress),
            ("egr_tc_egress", TcAttachType::Egress, Direction::Egress),
        ]
    } else {
        [
            ("egr_tc_ingress3", TcAttachType::Ingress, Direction::Ingress),
            ("egr_tc_egress3", TcAttachType::Egress, Direction::Egress),
        ]
    };
    for (program, attach_type, direction) in programs {
        if !tcx {
            remove_stale_filter(&interface.name, attach_type, program);
        }
        let prog: &mut SchedClassifier = program_mut(ebpf, program)?;
        if prog.fd().is_err() {
            prog.load().map_err(|e| program_error(program, e))?;
        }
        let options = if tcx {
            TcAttachOptions::TcxOrder(LinkOrder::default())
        } else {
            TcAttachOptions::Netlink(NlOptions::default())
        };
        let attach_error = |source| {
            privileges_or(&format!("attaching {program} to {}", interface.name), source, |source| {
                DataplaneError::Attach { program, target: interface.name.clone(), source }
            })
        };
        // clsact filters are netlink objects, not links: they cannot be pinned.
        let taken_over = match pins.as_deref_mut().filter(|_| tcx) {
            None => {
                prog.attach_with_options(&interface.name, attach_type, options)
                    .map_err(attach_error)?;
                false
            }
            Some(pins) => {
                let name = format!("tc-{}-{}", interface.name, direction_name(direction));
                attach_pinned(pins, &name, program, prog, attach_error, |prog| {
                    let id = prog.attach_with_options(&interface.name, attach_type, options)?;
                    prog.take_link(id)
                })?
            }
        };
        let a = Attachment {
            hook: Hook::Tc,
            direction,
            target: interface.name.clone(),
            mechanism: if tcx { "tcx" } else { "clsact" },
        };
        info!(program, interface = %a.target, mechanism = a.mechanism, taken_over, "attached");
        attachments.push(a);
    }
    Ok(())
}

/// Removes clsact filters named like ours. TCX and cgroup links go away with the process
/// that made them; netlink filters stay when an agent is killed (SIGKILL, OOM), and each
/// restart would add another copy of the program to every packet's path.
fn remove_stale_filter(interface: &str, attach_type: TcAttachType, program: &str) {
    match qdisc_detach_program(interface, attach_type, program) {
        Ok(()) => warn!(
            interface,
            program, "removed a filter left by an egressor that did not exit cleanly"
        ),
        Err(aya::programs::tc::TcError::IoError(e)) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => debug!(interface, program, error = %e, "looking for stale filters"),
    }
}

fn program_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, DataplaneError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let program = ebpf.program_mut(name).ok_or(DataplaneError::Program {
        program: name,
        source: ProgramError::UnexpectedProgramType,
    })?;
    program.try_into().map_err(|source| DataplaneError::Program { program: name, source })
}

fn program_error(program: &'static str, source: ProgramError) -> DataplaneError {
    privileges_or(&format!("loading program {program}"), source, |source| DataplaneError::Program {
        program,
        source,
    })
}

/// Whether `errno` is the cause of `e`, anywhere in its source chain.
fn caused_by_errno(e: &(dyn std::error::Error + 'static), errno: i32) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<io::Error>().is_some_and(|io| io.raw_os_error() == Some(errno)) {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Turns an error caused by EPERM anywhere in its chain into
/// [`DataplaneError::Privileges`], anything else into `other(e)`.
fn privileges_or<E: std::error::Error + Send + Sync + 'static>(
    action: &str,
    e: E,
    other: impl FnOnce(E) -> DataplaneError,
) -> DataplaneError {
    if caused_by_errno(&e, libc::EPERM) {
        return DataplaneError::Privileges { action: action.to_owned(), source: Box::new(e) };
    }
    other(e)
}

/// Capability numbers (include/uapi/linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Checks the effective capabilities (`CapEff` in /proc/self/status) before loading: the
/// kernel's own refusals are EPERM at best and a verifier log about pointer arithmetic at
/// worst (no CAP_PERFMON). Measured: CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN suffice; without
/// CAP_PERFMON the verifier rejects packet pointer arithmetic, without CAP_NET_ADMIN the
/// cgroup link is refused.
///
/// # Errors
/// [`DataplaneError::MissingCapabilities`] naming each missing capability.
fn check_capabilities() -> Result<(), DataplaneError> {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Ok(()); // Cannot tell: let the kernel decide.
    };
    let Some(effective) = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
    else {
        return Ok(());
    };
    let missing = missing_capabilities(effective);
    if missing.is_empty() { Ok(()) } else { Err(DataplaneError::MissingCapabilities { missing }) }
}

/// The capabilities egressor needs that the `effective` set lacks. CAP_SYS_ADMIN stands in
/// for CAP_BPF and CAP_PERFMON, as the kernel allows.
fn missing_capabilities(effective: u64) -> Vec<&'static str> {
    let has = |cap: u32| effective & (1 << cap) != 0;
    let mut missing = Vec::new();
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_PERFMON");
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    missing
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; raise it (best effort).
fn raise_memlock_limit() {
    let limit = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit with a valid, initialised struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) } != 0 {
        debug!("could not raise RLIMIT_MEMLOCK: {}", io::Error::last_os_error());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_checked_as_the_kernel_does() {
        let set = |caps: &[u32]| caps.iter().fold(0u64, |acc, c| acc | 1 << c);
        assert!(missing_capabilities(set(&[CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN])).is_empty());
        assert!(missing_capabilities(set(&[CAP_SYS_ADMIN, CAP_NET_ADMIN])).is_empty());
        assert_eq!(missing_capabilities(set(&[CAP_BPF, CAP_NET_ADMIN])), ["CAP_PERFMON"]);
        assert_eq!(missing_capabilities(0), ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"]);
    }
}
