//! Header parsing: IPv4, IPv6 (walking the extension headers that can be walked safely), TCP,
//! UDP, and the Ethernet/VLAN header in front of them on TC hooks. The parse writes straight
//! into the flow key.
//!
//! Every read goes through [`read`], the one place that checks bounds. A header that cannot
//! be read (truncated packet, data the helper cannot reach) stops the parse where it is: the
//! packet is still counted, with whatever the parse had found so far.
//!
//! The header types here have word-sized fields (`network-types` has byte arrays, which BPF
//! reads one byte at a time) so addresses move with 32-bit loads: a per-packet cost that
//! matters at line rate.

use core::mem::size_of;

use aya_ebpf::programs::sk_buff::SkBuff;
use egressor_common::{EPHEMERAL_PORT_MIN, FlowKey, family};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
/// Offset of the EtherType in an Ethernet header; the header is 14 bytes.
const ETHERTYPE_OFFSET: usize = 12;
/// Length of an Ethernet header without VLAN tags.
pub const ETHERNET_HEADER: usize = 14;
/// Stacked VLAN tags skipped at most (QinQ).
const MAX_VLAN_TAGS: usize = 2;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_DSTOPTS: u8 = 60;
const IPPROTO_UDPLITE: u8 = 136;
/// IPv6 extension headers walked at most; a longer chain stops at the last header reached
/// (RFC 8200 §4.1 recommends no more than one of each, in a fixed order: six at most).
const MAX_IPV6_EXT_HEADERS: usize = 6;
const UDP_HEADER: u32 = 8;

/// IPv4 header without options (RFC 791 §3.1), word-aligned fields.
#[repr(C)]
#[derive(Clone, Copy)]
struct Ipv4 {
    version_ihl: u8,
    tos: u8,
    total_length: u16,
    id: u16,
    /// Flags (3 bits) and fragment offset (13 bits), network order.
    fragment: u16,
    ttl: u8,
    protocol: u8,
    checksum: u16,
    src: u32,
    dst: u32,
}

/// IPv6 fixed header (RFC 8200 §3), word-aligned fields.
#[repr(C)]
#[derive(Clone, Copy)]
struct Ipv6 {
    version_class_flow: u32,
    payload_length: u16,
    next_header: u8,
    hop_limit: u8,
    src: [u32; 4],
    dst: [u32; 4],
}

/// Reads a `T` at `offset` bytes past `skb->data`: directly when the bytes lie in the linear
/// part, through `bpf_skb_load_bytes` (which also reaches paged data) otherwise.
#[inline(always)]
fn read<T: Copy>(skb: &SkBuff, offset: usize) -> Option<T> {
    // SAFETY: `skb.skb` is the context pointer the kernel passed to the program.
    let (start, end) = unsafe { ((*skb.skb).data as usize, (*skb.skb).data_end as usize) };
    if start + offset + size_of::<T>() <= end {
        // SAFETY: the check above keeps the read inside the packet, and the verifier checks
        // it again. The address may not be aligned for `T` (an IPv4 header sits 14 bytes
        // into a frame): a plain load, as C programs use, because the kernel accepts
        // misaligned packet loads on the architectures egressor supports (x86-64, arm64:
        // CONFIG_HAVE_EFFICIENT_UNALIGNED_ACCESS) and `read_unaligned` would cost one
        // byte load per byte on BPF.
        Some(unsafe { core::ptr::read((start + offset) as *const T) })
    } else {
        skb.load::<T>(offset).ok()
    }
}

/// Bytes past the network header the fast path reads of an IPv4 packet: the header without
/// options, then a transport header's ports (bytes 0–3) and TCP's data offset (byte 12).
const FAST_IPV4: usize = size_of::<Ipv4>() + 14;
/// The same for IPv6 without extension headers.
const FAST_IPV6: usize = size_of::<Ipv6>() + 14;

/// The common packet in one straight run: IPv4 without options or IPv6 without extension
/// headers, not a later fragment, carrying TCP or UDP, with those headers in the linear part.
/// One bounds check per family, direct loads, no helper calls and no branch to the walks of
/// [`parse`], whose code a packet on a busy CPU would otherwise fetch cold.
///
/// With `ETHERNET` the packet starts with an Ethernet header (its EtherType is read here; a
/// VLAN tag sends the packet to the general path) and `ethertype` is ignored; without, the
/// network header is at `skb->data` and `ethertype` (host order) names it. Returns what
/// [`parse`] returns for the same packet, having written the same fields of `key`, or
/// `None`, having written nothing, for any other packet: [`parse`] then does the whole work.
#[inline(always)]
pub fn parse_common<const ETHERNET: bool>(
    skb: &SkBuff,
    ethertype: u16,
    egress: bool,
    key: &mut FlowKey,
) -> Option<(u32, [u16; 2])> {
    let l3 = if ETHERNET { ETHERNET_HEADER } else { 0 };
    // SAFETY: `skb.skb` is the context pointer the kernel passed to the program.
    let (start, end) = unsafe { ((*skb.skb).data as usize, (*skb.skb).data_end as usize) };
    if start + l3 + FAST_IPV4 > end {
        return None;
    }
    let ethertype = if ETHERNET {
        // SAFETY: inside the bytes checked above; see `read` on alignment.
        u16::from_be(unsafe { core::ptr::read((start + ETHERTYPE_OFFSET) as *const u16) })
    } else {
        ethertype
    };
    let ip = start + l3;
    let (headers, protocol) = match ethertype {
        ETH_P_IP => {
            // SAFETY: inside the bytes checked above.
            let v4 = unsafe { core::ptr::read(ip as *const Ipv4) };
            // Version 4, 20-byte header; fragment offset 0 (the first fragment carries the
            // transport header, as in `parse_ipv4`).
            if v4.version_ihl != 0x45 || u16::from_be(v4.fragment) & 0x1FFF != 0 {
                return None;
            }
            if v4.protocol != IPPROTO_TCP && v4.protocol != IPPROTO_UDP {
                return None;
            }
            let (local, remote) = if egress { (v4.src, v4.dst) } else { (v4.dst, v4.src) };
            key.family = family::IPV4;
            key.local_addr[0] = local;
            key.remote_addr[0] = remote;
            (size_of::<Ipv4>(), v4.protocol)
        }
        ETH_P_IPV6 => {
            if start + l3 + FAST_IPV6 > end {
                return None;
            }
            // SAFETY: inside the bytes checked just above.
            let v6 = unsafe { core::ptr::read(ip as *const Ipv6) };
            if v6.next_header != IPPROTO_TCP && v6.next_header != IPPROTO_UDP {
                return None;
            }
            let (local, remote) = if egress { (v6.src, v6.dst) } else { (v6.dst, v6.src) };
            key.family = family::IPV6;
            key.local_addr = local;
            key.remote_addr = remote;
            (size_of::<Ipv6>(), v6.next_header)
        }
        _ => return None,
    };
    let l4 = ip + headers;
    // SAFETY: the ports and TCP's data offset lie within the 14 bytes past `headers` that
    // the checks above covered.
    let [source, destination] = unsafe { core::ptr::read(l4 as *const [u16; 2]) };
    let transport = if protocol == IPPROTO_TCP {
        // SAFETY: as above.
        let doff = unsafe { core::ptr::read((l4 + 12) as *const u8) };
        ((doff >> 4) as u32) * 4
    } else {
        UDP_HEADER
    };
    key.protocol = protocol;
    let ports = [u16::from_be(source), u16::from_be(destination)];
    key.port = service_port(ports[0], ports[1]);
    Some((headers as u32 + transport, ports))
}

/// Skips the Ethernet header and up to [`MAX_VLAN_TAGS`] VLAN tags.
///
/// Returns the network header's offset and its EtherType (host order), or `None` when the
/// frame is too short for an Ethernet header.
#[inline(always)]
pub fn skip_ethernet(skb: &SkBuff) -> Option<(usize, u16)> {
    let mut ethertype = u16::from_be(read::<u16>(skb, ETHERTYPE_OFFSET)?);
    let mut offset = ETHERNET_HEADER;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        // A VLAN tag: 2 bytes TCI, then the inner EtherType.
        ethertype = u16::from_be(read::<u16>(skb, offset + 2)?);
        offset += 4;
    }
    Some((offset, ethertype))
}

/// Parses the packet at `l3` (EtherType `ethertype`, host order) into `key`'s family,
/// protocol, addresses (local and remote by `egress`) and port.
///
/// Returns the bytes of IP plus transport header that every GSO segment carries (what a
/// super-packet adds per extra segment on the wire; the payload starts that far past `l3`),
/// and the TCP/UDP source and destination ports, host order (0 when there are none).
#[inline(always)]
pub fn parse(
    skb: &SkBuff,
    l3: usize,
    ethertype: u16,
    egress: bool,
    key: &mut FlowKey,
) -> (u32, [u16; 2]) {
    let mut ports = [0; 2];
    let headers = match ethertype {
        ETH_P_IP => parse_ipv4(skb, l3, egress, key, &mut ports),
        ETH_P_IPV6 => parse_ipv6(skb, l3, egress, key, &mut ports),
        other => {
            key.family = family::NON_IP;
            key.port = other;
            0
        }
    };
    (headers, ports)
}

#[inline(always)]
fn parse_ipv4(
    skb: &SkBuff,
    l3: usize,
    egress: bool,
    key: &mut FlowKey,
    ports: &mut [u16; 2],
) -> u32 {
    key.family = family::IPV4;
    let Some(ip) = read::<Ipv4>(skb, l3) else {
        return 0;
    };
    let (local, remote) = if egress { (ip.src, ip.dst) } else { (ip.dst, ip.src) };
    key.local_addr[0] = local;
    key.remote_addr[0] = remote;
    key.protocol = ip.protocol;
    let ihl = ((ip.version_ihl & 0x0F) as usize) * 4;
    if ihl < size_of::<Ipv4>() {
        return 0;
    }
    // Only the first fragment carries the transport header.
    if u16::from_be(ip.fragment) & 0x1FFF != 0 {
        return ihl as u32;
    }
    ihl as u32 + transport(skb, l3 + ihl, ip.protocol, key, ports)
}

#[inline(always)]
fn parse_ipv6(
    skb: &SkBuff,
    l3: usize,
    egress: bool,
    key: &mut FlowKey,
    ports: &mut [u16; 2],
) -> u32 {
    key.family = family::IPV6;
    let Some(ip) = read::<Ipv6>(skb, l3) else {
        return 0;
    };
    let (local, remote) = if egress { (ip.src, ip.dst) } else { (ip.dst, ip.src) };
    key.local_addr = local;
    key.remote_addr = remote;
    let mut next = ip.next_header;
    let mut offset = l3 + size_of::<Ipv6>();
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        let len = match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                // RFC 8200 §4.3–4.6: next header, length in 8-octet units not counting the
                // first 8.
                let Some([nh, units]) = read::<[u8; 2]>(skb, offset) else {
                    break;
                };
                next = nh;
                (units as usize + 1) * 8
            }
            IPPROTO_FRAGMENT => {
                // RFC 8200 §4.5: fixed 8 bytes; only the first fragment has the transport
                // header.
                let Some([nh, _, hi, lo]) = read::<[u8; 4]>(skb, offset) else {
                    break;
                };
                next = nh;
                if u16::from_be_bytes([hi, lo]) >> 3 != 0 {
                    key.protocol = next;
                    return (offset + 8 - l3) as u32;
                }
                8
            }
            IPPROTO_AH => {
                // RFC 4302 §2.2: length in 4-octet units minus 2.
                let Some([nh, units]) = read::<[u8; 2]>(skb, offset) else {
                    break;
                };
                next = nh;
                (units as usize + 2) * 4
            }
            _ => break,
        };
        offset += len;
    }
    key.protocol = next;
    (offset - l3) as u32 + transport(skb, offset, next, key, ports)
}

/// Reads the TCP/UDP ports at `l4`, sets the service port and `ports` (source, destination).
/// Returns the transport header's length (0 for other protocols or when it cannot be read).
#[inline(always)]
fn transport(
    skb: &SkBuff,
    l4: usize,
    protocol: u8,
    key: &mut FlowKey,
    ports: &mut [u16; 2],
) -> u32 {
    let header_len = match protocol {
        // Data offset: the high nibble of byte 12, in 32-bit words. (Read as two bytes: LLVM
        // turns a one-byte bounds check into a form the verifier cannot follow.)
        IPPROTO_TCP => match read::<[u8; 2]>(skb, l4 + 12) {
            Some([doff, _]) => ((doff >> 4) as u32) * 4,
            None => return 0,
        },
        IPPROTO_UDP | IPPROTO_UDPLITE => UDP_HEADER,
        _ => return 0,
    };
    let Some([source, destination]) = read::<[u16; 2]>(skb, l4) else {
        return 0;
    };
    *ports = [u16::from_be(source), u16::from_be(destination)];
    key.port = service_port(ports[0], ports[1]);
    header_len
}

/// The service port rule: the lower port if it is below the ephemeral range, else 0.
#[inline(always)]
const fn service_port(a: u16, b: u16) -> u16 {
    let low = if a < b { a } else { b };
    if low < EPHEMERAL_PORT_MIN { low } else { 0 }
}
