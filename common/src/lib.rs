//! Types shared by egressor's eBPF programs (`ebpf/`) and its agent (`exporter/`).
//!
//! Every type is `#[repr(C)]` with explicit padding fields so that the kernel and user space
//! agree on the layout byte for byte, and so that a zeroed key hashes the same on both sides.
//! The BPF hash map hashes the whole key, padding included: programs must zero the key before
//! filling it.
#![no_std]

/// Name of the per-CPU hash map `FlowKey` → `FlowCounters`.
pub const FLOWS_MAP: &str = "FLOWS";
/// Name of the per-CPU array `OverflowSlot` index → `FlowCounters` for bytes that found no
/// room in [`FLOWS_MAP`].
pub const OVERFLOW_MAP: &str = "OVERFLOW";
/// Name of the global variable holding the [`DataplaneConfig`].
pub const CONFIG_GLOBAL: &str = "CONFIG";
/// Version of the maps an agent pins in bpffs (`--bpf.pin-path`): [`FLOWS_MAP`],
/// [`OVERFLOW_MAP`] and [`DNS_STATS_MAP`] with their key and value types. An agent reuses
/// pinned maps of its own version only; others it removes, and counting starts over. Bump
/// it whenever one of those maps changes type, key or value layout, or meaning (the test
/// `pinned_layout_is_version_1` fails until you do).
pub const PIN_LAYOUT_VERSION: u32 = 1;
/// Default maximum number of entries in [`FLOWS_MAP`].
pub const DEFAULT_FLOW_MAP_ENTRIES: u32 = 65_536;
/// Name of the hash map of [`ServiceAddress`]es (Kubernetes Service virtual IPs, filled by
/// user space from the Service watch) whose flows keep both ports in the key.
pub const SERVICES_MAP: &str = "SERVICES";
/// Entries of [`SERVICES_MAP`]: Kubernetes' documented scalability limit is 10,000 Services
/// per cluster; dual-stack Services have two addresses.
pub const SERVICE_MAP_ENTRIES: u32 = 32_768;

/// Key of [`SERVICES_MAP`]: an address in [`FlowKey`]'s encoding and its family. 20 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ServiceAddress {
    /// Address words, as [`FlowKey::remote_addr`].
    pub addr: [u32; 4],
    /// One of [`family`].
    pub family: u8,
    /// Always zero.
    pub _pad: [u8; 3],
}

/// First port of the Linux default ephemeral range (`net.ipv4.ip_local_port_range`,
/// 32768–60999). Ports at or above it are never put in a flow key.
///
/// The **service port rule**: for TCP and UDP the key holds the lower of the two ports if
/// it is below `EPHEMERAL_PORT_MIN`, else 0. The side that listens almost always has the
/// lower, well-known or registered port (1–32767, which covers Kubernetes NodePorts
/// 30000–32767), and the client's ephemeral port would multiply flows without saying
/// anything about the service. ICMP and other protocols have port 0.
pub const EPHEMERAL_PORT_MIN: u16 = 32_768;

/// Which hook counted a flow; also the first half of an [`OverflowSlot`].
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    /// cgroup_skb ingress/egress on the cgroup v2 root: per socket, before NAT.
    Cgroup = 0,
    /// TC (TCX or clsact) on an interface: per interface, as on the wire.
    Tc = 1,
}

/// Direction of a packet, seen from this host (or from the pod's socket for cgroup hooks).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Received: the remote address is the packet's source.
    Ingress = 0,
    /// Sent: the remote address is the packet's destination.
    Egress = 1,
}

impl Direction {
    /// Decodes the byte stored in a [`FlowKey`]; any value but 0 is egress.
    pub const fn from_u8(v: u8) -> Self {
        if v == 0 { Self::Ingress } else { Self::Egress }
    }
}

/// Address family stored in [`FlowKey::family`].
pub mod family {
    /// Not an IP packet (ARP, LLDP, …): [`super::FlowKey::port`] holds the EtherType.
    pub const NON_IP: u8 = 0;
    /// IPv4: the first 4 bytes of each address are used, the rest are zero.
    pub const IPV4: u8 = 4;
    /// IPv6.
    pub const IPV6: u8 = 6;
}

/// Key of one flow in [`FLOWS_MAP`]: 56 bytes, no implicit padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
pub struct FlowKey {
    /// cgroup v2 id (the cgroup directory's inode number) of the socket; 0 for TC.
    pub cgroup_id: u64,
    /// Interface index for TC; 0 for cgroup hooks.
    pub ifindex: u32,
    /// [`Hook`] as a byte.
    pub hook: u8,
    /// [`Direction`] as a byte.
    pub direction: u8,
    /// One of [`family`].
    pub family: u8,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, …) of the transport header
    /// reached after skipping IPv6 extension headers; 0 when not IP.
    pub protocol: u8,
    /// This host's (or socket's) address as four 32-bit words holding the address bytes in
    /// network order (`u32::to_ne_bytes` of each word gives the bytes back); IPv4 uses the
    /// first word, the rest are zero. Words, not bytes, so the programs copy addresses with
    /// four loads and stores instead of sixteen.
    pub local_addr: [u32; 4],
    /// The peer's address, same encoding as `local_addr`.
    pub remote_addr: [u32; 4],
    /// Service port (see [`EPHEMERAL_PORT_MIN`]) in host byte order, or the EtherType for
    /// non-IP frames. For a flow to a [`SERVICES_MAP`] address: the remote's port, always.
    pub port: u16,
    /// 0, except for TCP/UDP flows of a cgroup hook to a [`SERVICES_MAP`] address (a
    /// Kubernetes Service's virtual IP): this socket's own port, host byte order. With it the
    /// key is one connection's full tuple, which user space looks up in the node's conntrack
    /// table to find the backend the NAT chose (the [`EPHEMERAL_PORT_MIN`] rule keeps
    /// ephemeral ports out of every other key).
    pub local_port: u16,
    /// Always zero (explicit padding, hashed by the kernel).
    pub _pad: [u8; 4],
}

impl FlowKey {
    /// An all-zero key, the starting point for every packet.
    pub const fn zeroed() -> Self {
        Self {
            cgroup_id: 0,
            ifindex: 0,
            hook: 0,
            direction: 0,
            family: 0,
            protocol: 0,
            local_addr: [0; 4],
            remote_addr: [0; 4],
            port: 0,
            local_port: 0,
            _pad: [0; 4],
        }
    }
}

impl Default for FlowKey {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// Bytes and packets of one flow on one CPU, as billed: L3 bytes (IP header included,
/// link-layer header excluded), with a GSO/TSO super-packet counted as the segments it
/// becomes on the wire.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
pub struct FlowCounters {
    /// L3 bytes.
    pub bytes: u64,
    /// Packets (segments on the wire).
    pub packets: u64,
}

/// Index into [`OVERFLOW_MAP`]: `hook * 2 + direction`.
pub const fn overflow_slot(hook: Hook, direction: Direction) -> u32 {
    (hook as u32) * 2 + direction as u32
}
/// Number of entries in [`OVERFLOW_MAP`].
pub const OVERFLOW_SLOTS: u32 = 4;

/// Settings user space writes into the programs' read-only data before loading them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataplaneConfig {
    /// 1 to count traffic on loopback interfaces, 0 to skip it.
    pub include_loopback: u8,
    /// 1 to copy DNS responses to [`DNS_EVENTS_MAP`], 0 not to.
    pub capture_dns: u8,
    /// 1 to look flows' remote addresses up in [`SERVICES_MAP`] (Kubernetes nodes), 0 not to.
    pub track_services: u8,
    /// Always zero.
    pub _pad: u8,
    /// DNS responses copied at most per second and CPU; the rest are counted in
    /// [`dns_stat::RATE_LIMITED`].
    pub dns_events_per_second: u32,
}

/// Name of the ring buffer of [`DnsEvent`]s.
pub const DNS_EVENTS_MAP: &str = "DNS_EVENTS";
/// Name of the per-CPU array of DNS capture counters (indexes in [`dns_stat`]).
pub const DNS_STATS_MAP: &str = "DNS_STATS";
/// The DNS port (RFC 1035 §4.2). Only packets from this port (responses) are ever copied.
pub const DNS_PORT: u16 = 53;
/// DNS message bytes copied at most per response: the EDNS buffer size the DNS flag day 2020
/// recommends (1232) fits, with room for TCP's length prefix.
pub const DNS_MAX_PAYLOAD: usize = 1536;
/// Size of the DNS ring buffer (bytes; a power of two, multiple of the page size): ~680
/// responses of [`DNS_MAX_PAYLOAD`]. User space drains it every 100 ms, not only at read
/// cycles. It counts twice in the agent's RSS (the ring is mapped twice, one physical copy).
pub const DNS_RING_BYTES: u32 = 1 << 20;

/// One DNS response as copied by the kernel side: the message bytes after the UDP header
/// (or, for TCP, after the TCP header: the two-byte length prefix comes first).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DnsEvent {
    /// Bytes of `data` that hold the message (≤ [`DNS_MAX_PAYLOAD`]).
    pub len: u16,
    /// 1 when the response came over TCP.
    pub tcp: u8,
    /// Always zero.
    pub _pad: [u8; 5],
    /// The message.
    pub data: [u8; DNS_MAX_PAYLOAD],
}

/// Indexes of [`DNS_STATS_MAP`].
pub mod dns_stat {
    /// Responses copied to the ring buffer.
    pub const CAPTURED: u32 = 0;
    /// Responses not copied because the per-CPU rate was exceeded.
    pub const RATE_LIMITED: u32 = 1;
    /// Responses not copied because the ring buffer was full (user space behind).
    pub const RING_FULL: u32 = 2;
    /// Rate limiter state: start of the current one-second window (ns, per CPU).
    pub const WINDOW_START: u32 = 3;
    /// Rate limiter state: responses copied in the current window (per CPU).
    pub const WINDOW_COUNT: u32 = 4;
    /// Slots in the array.
    pub const SLOTS: u32 = 5;
}

impl FlowKey {
    /// The address bytes (network order) of an address field.
    pub fn address_bytes(words: &[u32; 4]) -> [u8; 16] {
        let mut out = [0; 16];
        for (chunk, word) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        out
    }

    /// An address field from address bytes (network order).
    pub fn address_words(bytes: &[u8; 16]) -> [u32; 4] {
        let mut out = [0; 4];
        for (word, chunk) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            *word = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        out
    }
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: all five types are `repr(C)`, `Copy`, made only of integers and byte arrays,
    // and have no implicit padding, so every bit pattern is valid.
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowCounters {}
    unsafe impl aya::Pod for super::DataplaneConfig {}
    unsafe impl aya::Pod for super::DnsEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ServiceAddress {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(core::mem::size_of::<FlowKey>(), 56);
        assert_eq!(core::mem::size_of::<FlowCounters>(), 16);
        assert_eq!(core::mem::size_of::<DataplaneConfig>(), 8);
        assert_eq!(core::mem::size_of::<ServiceAddress>(), 20);
    }

    /// Changing a pinned map's types without bumping [`PIN_LAYOUT_VERSION`] would make a new
    /// agent read an old agent's counters with the wrong layout.
    #[test]
    fn pinned_layout_is_version_1() {
        let layout = (
            core::mem::size_of::<FlowKey>(),
            core::mem::size_of::<FlowCounters>(),
            OVERFLOW_SLOTS,
            dns_stat::SLOTS,
        );
        assert_eq!((PIN_LAYOUT_VERSION, layout), (1, (56, 16, 4, 5)), "bump PIN_LAYOUT_VERSION");
    }

    #[test]
    fn address_words_round_trip() {
        let bytes = [32, 1, 13, 184, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        assert_eq!(FlowKey::address_bytes(&FlowKey::address_words(&bytes)), bytes);
    }

    #[test]
    fn overflow_slots_are_distinct() {
        let slots = [
            overflow_slot(Hook::Cgroup, Direction::Ingress),
            overflow_slot(Hook::Cgroup, Direction::Egress),
            overflow_slot(Hook::Tc, Direction::Ingress),
            overflow_slot(Hook::Tc, Direction::Egress),
        ];
        assert_eq!(slots, [0, 1, 2, 3]);
        assert!(slots.iter().all(|s| *s < OVERFLOW_SLOTS));
    }
}
