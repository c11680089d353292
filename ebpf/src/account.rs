//! Flow accounting: turns one packet into a [`FlowKey`] and adds its wire bytes and segments
//! to `FLOWS`, or to `OVERFLOW` when the map has no room left.

use core::{
    intrinsics::{AtomicOrdering, atomic_xadd},
    mem::{MaybeUninit, size_of},
};

use aya_ebpf::{
    helpers::generated::bpf_skb_cgroup_id,
    macros::map,
    maps::{HashMap, PerCpuArray, PerCpuHashMap},
    programs::sk_buff::SkBuff,
};
use egressor_common::{
    DEFAULT_FLOW_MAP_ENTRIES, DataplaneConfig, Direction, FlowCounters, FlowKey, Hook,
    OVERFLOW_SLOTS, SERVICE_MAP_ENTRIES, ServiceAddress, overflow_slot,
};

use crate::packet::{ETHERNET_HEADER, parse, parse_common, skip_ethernet};

/// Flow counters. User space sets the real size before loading (`--flow-map.max-entries`).
#[map]
static FLOWS: PerCpuHashMap<FlowKey, FlowCounters> =
    PerCpuHashMap::with_max_entries(DEFAULT_FLOW_MAP_ENTRIES, 0);

/// Bytes and packets whose flow found no room in `FLOWS`, by hook and direction.
#[map]
static OVERFLOW: PerCpuArray<FlowCounters> = PerCpuArray::with_max_entries(OVERFLOW_SLOTS, 0);

/// Kubernetes Service virtual IPs, kept by user space from the Service watch. Flows to them
/// keep both ports (see `FlowKey::local_port`).
#[map]
static SERVICES: HashMap<ServiceAddress, u8> = HashMap::with_max_entries(SERVICE_MAP_ENTRIES, 0);

/// Written by user space before load; read-only to the programs (the verifier then prunes
/// the branches it rules out).
#[unsafe(no_mangle)]
static CONFIG: DataplaneConfig = DataplaneConfig {
    include_loopback: 0,
    capture_dns: 0,
    track_services: 0,
    _pad: 0,
    dns_events_per_second: 0,
};

/// `LOOPBACK_IFINDEX`: every network namespace's `lo` has index 1.
const LOOPBACK_IFINDEX: u32 = 1;
const BPF_NOEXIST: u64 = 1;

#[inline(always)]
fn include_loopback() -> bool {
    // SAFETY: a plain read of a global; volatile so the compiler does not fold the default.
    unsafe { core::ptr::read_volatile(&CONFIG.include_loopback) != 0 }
}

/// Whether DNS responses are copied to user space.
#[inline(always)]
pub fn capture_dns_enabled() -> bool {
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile(&CONFIG.capture_dns) != 0 }
}

/// Whether flows' remote addresses are looked up in `SERVICES`.
#[inline(always)]
fn track_services() -> bool {
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile(&CONFIG.track_services) != 0 }
}

/// DNS responses copied at most per second and CPU.
#[inline(always)]
pub fn dns_events_per_second() -> u32 {
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile(&CONFIG.dns_events_per_second) }
}

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// Hands a received packet's payload to the DNS capture when it may be a DNS response (the
/// capture checks the source port and the QR bit). `direction` is the entry point's constant,
/// so that the egress programs contain no DNS code at all.
#[inline(always)]
fn maybe_dns(
    skb: &SkBuff,
    key: &FlowKey,
    direction: Direction,
    l3: usize,
    parsed: (u32, [u16; 2]),
    l3_len: u32,
) {
    let (headers, [source_port, _]) = parsed;
    if direction != Direction::Ingress || source_port != egressor_common::DNS_PORT {
        return;
    }
    let tcp = key.protocol == IPPROTO_TCP;
    if tcp || key.protocol == IPPROTO_UDP {
        let payload = l3 + headers as usize;
        crate::dns::capture(skb, source_port, payload, l3 + l3_len as usize, tcp);
    }
}

/// Counts a packet seen by a cgroup_skb program. `skb->data` is at the network header and
/// `skb->len` is the IP packet's length.
#[inline(always)]
pub fn count_cgroup(skb: &SkBuff, direction: Direction) {
    let raw = skb.skb;
    // SAFETY: context fields the kernel lets cgroup_skb programs read.
    let (ifindex, protocol) = unsafe { ((*raw).ifindex, (*raw).protocol) };
    if ifindex == LOOPBACK_IFINDEX && !include_loopback() {
        return;
    }
    let mut slot = MaybeUninit::uninit();
    let key = new_key(&mut slot, Hook::Cgroup, direction);
    // SAFETY: bpf_skb_cgroup_id is allowed for cgroup_skb and only reads the socket.
    key.cgroup_id = unsafe { bpf_skb_cgroup_id(raw) };
    let egress = direction == Direction::Egress;
    let ethertype = u16::from_be(protocol as u16);
    let parsed = match parse_common::<false>(skb, ethertype, egress, key) {
        Some(parsed) => parsed,
        None => parse(skb, 0, ethertype, egress, key),
    };
    if track_services() {
        keep_service_tuple(key, parsed.1, egress);
    }
    let len = skb.len();
    maybe_dns(skb, key, direction, 0, parsed, len);
    record(skb, key, Hook::Cgroup, direction, parsed.0, len);
}

/// For a TCP/UDP flow to a Kubernetes Service address, keeps both ports: the key is then
/// one connection, which user space finds in the conntrack table of the node to learn which
/// backend the NAT chose (the socket sees the Service address, before NAT).
#[inline(always)]
fn keep_service_tuple(key: &mut FlowKey, [source, destination]: [u16; 2], egress: bool) {
    if key.protocol != IPPROTO_TCP && key.protocol != IPPROTO_UDP {
        return;
    }
    let service = ServiceAddress { addr: key.remote_addr, family: key.family, _pad: [0; 3] };
    // SAFETY: `get` is unsafe because the value may change under the reference while
    // another CPU updates it; only its presence is used here.
    if unsafe { SERVICES.get(service) }.is_some() {
        let (local, remote) = if egress { (source, destination) } else { (destination, source) };
        key.local_port = local;
        key.port = remote;
    }
}

/// Counts a packet seen by a TC program. With `ETHERNET`, `skb->data` is at the Ethernet
/// header (VLAN tags may follow); without, at the network header.
#[inline(always)]
pub fn count_tc<const ETHERNET: bool>(skb: &SkBuff, direction: Direction) {
    let raw = skb.skb;
    // SAFETY: context fields the kernel lets TC programs read.
    let (ifindex, protocol) = unsafe { ((*raw).ifindex, (*raw).protocol) };
    let len = skb.len();
    let mut slot = MaybeUninit::uninit();
    let key = new_key(&mut slot, Hook::Tc, direction);
    key.ifindex = ifindex;
    let egress = direction == Direction::Egress;
    let ethertype = u16::from_be(protocol as u16);
    let fast = parse_common::<ETHERNET>(skb, ethertype, egress, key);
    let (l3, parsed, l3_len) = if let Some(parsed) = fast {
        let l3 = if ETHERNET { ETHERNET_HEADER } else { 0 };
        (l3, parsed, len.saturating_sub(l3 as u32))
    } else if ETHERNET {
        match skip_ethernet(skb) {
            Some((l3, ethertype)) => {
                (l3, parse(skb, l3, ethertype, egress, key), len.saturating_sub(l3 as u32))
            }
            // Shorter than an Ethernet header: count it whole, as non-IP.
            None => (0, parse(skb, 0, 0, egress, key), len),
        }
    } else {
        (0, parse(skb, 0, ethertype, egress, key), len)
    };
    maybe_dns(skb, key, direction, l3, parsed, l3_len);
    record(skb, key, Hook::Tc, direction, parsed.0, l3_len);
}

/// Zeroes `slot` in place with seven 8-byte stores and sets hook and direction. Volatile
/// stores into a slot that is never moved: a zeroed `FlowKey` value compiles to a call to
/// compiler_builtins' byte-by-byte memset on BPF, which used to be the program's largest cost.
#[inline(always)]
fn new_key(slot: &mut MaybeUninit<FlowKey>, hook: Hook, direction: Direction) -> &mut FlowKey {
    let words = slot.as_mut_ptr() as *mut u64;
    for i in 0..size_of::<FlowKey>() / 8 {
        // SAFETY: FlowKey is 56 bytes, 8-byte aligned, and valid for any bit pattern.
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
    }
    // SAFETY: every byte was written above.
    let key = unsafe { slot.assume_init_mut() };
    key.hook = hook as u8;
    key.direction = direction as u8;
    key
}

/// Adds one packet to its flow. `per_segment_headers` is what the parse found of IP plus
/// transport header; `l3_len` is the packet's length from the IP header on. `hook` and
/// `direction` are the caller's constants (the key holds them too, but a load from the key
/// after the parse's helper calls is a run-time value to the compiler).
#[inline(always)]
fn record(
    skb: &SkBuff,
    key: &FlowKey,
    hook: Hook,
    direction: Direction,
    per_segment_headers: u32,
    l3_len: u32,
) {
    // SAFETY: context fields readable by both program types.
    let (gso_size, gso_segs) = unsafe { ((*skb.skb).gso_size, (*skb.skb).gso_segs) };
    // A GSO/TSO (or GRO) super-packet leaves as `gso_segs` segments, each carrying its own
    // IP and transport header: count what the wire (and the bill) sees.
    let segments = if gso_size == 0 || gso_segs == 0 { 1 } else { gso_segs as u64 };
    let bytes = l3_len as u64 + (segments - 1) * per_segment_headers as u64;
    add_to_flow(key, hook, direction, bytes, segments);
}

#[inline(always)]
fn add_to_flow(key: &FlowKey, hook: Hook, direction: Direction, bytes: u64, packets: u64) {
    if let Some(counters) = FLOWS.get_ptr_mut(key) {
        add(hook, counters, bytes, packets);
        return;
    }
    let fresh = FlowCounters { bytes, packets };
    if FLOWS.insert(key, fresh, BPF_NOEXIST).is_ok() {
        return;
    }
    // Either another CPU created the entry first (EEXIST) or the map is full (E2BIG).
    if let Some(counters) = FLOWS.get_ptr_mut(key) {
        add(hook, counters, bytes, packets);
    } else if let Some(counters) = OVERFLOW.get_ptr_mut(overflow_slot(hook, direction)) {
        add(hook, counters, bytes, packets);
    }
}

/// Adds to this CPU's slot of a flow (or overflow slot) of `hook`.
///
/// cgroup programs add with BPF's atomic add (`lock xadd`; `AtomicU64::fetch_add` is not
/// available for the bpf target, hence the intrinsic): the egress program runs in process
/// context with bottom halves enabled, so a softirq can interrupt it on the same CPU and
/// count a packet of the same flow (a TCP ACK sent while the socket writes).
///
/// TC programs add with plain loads and stores: they run with bottom halves disabled (TC
/// ingress in the receive softirq, TC egress under `__dev_queue_xmit`'s `rcu_read_lock_bh`),
/// so no other TC program runs on this CPU between the load and the store, and no cgroup
/// program ever touches a TC flow or overflow slot (the hook is part of both keys). This
/// saves two locked instructions per packet.
#[inline(always)]
fn add(hook: Hook, counters: *mut FlowCounters, bytes: u64, packets: u64) {
    // SAFETY: `counters` points to this CPU's value in a BPF map, valid for the program's
    // run and aligned to 8 bytes; see above for why TC needs no atomics.
    unsafe {
        match hook {
            Hook::Tc => {
                (*counters).bytes += bytes;
                (*counters).packets += packets;
            }
            Hook::Cgroup => {
                atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(
                    &raw mut (*counters).bytes,
                    bytes,
                );
                atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(
                    &raw mut (*counters).packets,
                    packets,
                );
            }
        }
    }
}
