//! Header parsing: IPv4, IPv6 (walking the extension headers that can be walked safely), TCP,
//! UDP, and the Ethernet/VLAN header in front of them on TC hooks.
//!
//! Every read goes through [`read`], the one place that checks bounds. A header that cannot
//! be read (truncated packet, non-linear data the helper cannot reach) stops the parse where
//! it is: the packet is still counted, with whatever the parse had found so far.

use core::mem::size_of;

use aya_ebpf::programs::sk_buff::SkBuff;
use egressor_common::{EPHEMERAL_PORT_MIN, family};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
    tcp::TcpHdr,
    udp::UdpHdr,
};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
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

/// What one packet's headers say about its flow.
pub struct Headers {
    /// One of [`family`].
    pub family: u8,
    /// Transport protocol number, 0 when unknown.
    pub protocol: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Service port (see [`EPHEMERAL_PORT_MIN`]), or the EtherType for non-IP frames.
    pub port: u16,
    /// Bytes of IP plus transport header that every GSO segment carries: what a super-packet
    /// adds per extra segment on the wire.
    pub per_segment_headers: u32,
}

impl Headers {
    const fn non_ip(ethertype: u16) -> Self {
        Self {
            family: family::NON_IP,
            protocol: 0,
            src: [0; 16],
            dst: [0; 16],
            port: ethertype,
            per_segment_headers: 0,
        }
    }
}

/// Reads a `T` at `offset` bytes past `skb->data`: directly when the bytes lie in the linear
/// part, through `bpf_skb_load_bytes` (which also reaches paged data) otherwise.
#[inline(always)]
fn read<T: Copy>(skb: &SkBuff, offset: usize) -> Option<T> {
    // SAFETY: `skb.skb` is the context pointer the kernel passed to the program.
    let (start, end) = unsafe { ((*skb.skb).data as usize, (*skb.skb).data_end as usize) };
    if start + offset + size_of::<T>() <= end {
        // SAFETY: the verifier-visible check above keeps the read inside the packet.
        Some(unsafe { core::ptr::read_unaligned((start + offset) as *const T) })
    } else {
        skb.load::<T>(offset).ok()
    }
}

/// Skips the Ethernet header and up to [`MAX_VLAN_TAGS`] VLAN tags.
///
/// Returns the network header's offset and its EtherType (host order), or `None` when the
/// frame is too short for an Ethernet header.
#[inline(always)]
pub fn skip_ethernet(skb: &SkBuff) -> Option<(usize, u16)> {
    let eth: EthHdr = read(skb, 0)?;
    let mut ethertype = u16::from_be(eth.ether_type);
    let mut offset = EthHdr::LEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        // A VLAN tag: 2 bytes TCI, then the inner EtherType.
        let inner: [u8; 2] = read(skb, offset + 2)?;
        ethertype = u16::from_be_bytes(inner);
        offset += 4;
    }
    Some((offset, ethertype))
}

/// Parses the IP packet at `l3` (EtherType `ethertype`, host order).
#[inline(always)]
pub fn parse(skb: &SkBuff, l3: usize, ethertype: u16) -> Headers {
    match ethertype {
        ETH_P_IP => parse_ipv4(skb, l3),
        ETH_P_IPV6 => parse_ipv6(skb, l3),
        other => Headers::non_ip(other),
    }
}

#[inline(always)]
fn parse_ipv4(skb: &SkBuff, l3: usize) -> Headers {
    let mut h = Headers::non_ip(0);
    h.family = family::IPV4;
    let Some(ip) = read::<Ipv4Hdr>(skb, l3) else {
        return h;
    };
    h.src[..4].copy_from_slice(&ip.src_addr);
    h.dst[..4].copy_from_slice(&ip.dst_addr);
    h.protocol = ip.proto;
    let ihl = ip.ihl() as usize;
    if ihl < Ipv4Hdr::LEN {
        return h;
    }
    h.per_segment_headers = ihl as u32;
    // Only the first fragment carries the transport header.
    if ip.frag_offset() != 0 {
        return h;
    }
    transport(skb, l3 + ihl, &mut h);
    h
}

#[inline(always)]
fn parse_ipv6(skb: &SkBuff, l3: usize) -> Headers {
    let mut h = Headers::non_ip(0);
    h.family = family::IPV6;
    let Some(ip) = read::<Ipv6Hdr>(skb, l3) else {
        return h;
    };
    h.src = ip.src_addr;
    h.dst = ip.dst_addr;
    let mut next = ip.next_hdr;
    let mut offset = l3 + Ipv6Hdr::LEN;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        let len = match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                // RFC 8200 §4.3–4.6: next header, length in 8-octet units not counting the
                // first 8.
                let Some(ext) = read::<[u8; 2]>(skb, offset) else {
                    break;
                };
                next = ext[0];
                (ext[1] as usize + 1) * 8
            }
            IPPROTO_FRAGMENT => {
                // RFC 8200 §4.5: fixed 8 bytes; only the first fragment has the transport
                // header.
                let Some(frag) = read::<[u8; 4]>(skb, offset) else {
                    break;
                };
                next = frag[0];
                let frag_offset = u16::from_be_bytes([frag[2], frag[3]]) >> 3;
                if frag_offset != 0 {
                    h.protocol = next;
                    h.per_segment_headers = (offset + 8 - l3) as u32;
                    return h;
                }
                8
            }
            IPPROTO_AH => {
                // RFC 4302 §2.2: length in 4-octet units minus 2.
                let Some(ext) = read::<[u8; 2]>(skb, offset) else {
                    break;
                };
                next = ext[0];
                (ext[1] as usize + 2) * 4
            }
            _ => break,
        };
        offset += len;
    }
    h.protocol = next;
    h.per_segment_headers = (offset - l3) as u32;
    transport(skb, offset, &mut h);
    h
}

/// Reads the TCP/UDP ports at `l4`, sets the service port and adds the transport header to
/// the per-segment header bytes.
#[inline(always)]
fn transport(skb: &SkBuff, l4: usize, h: &mut Headers) {
    let (sport, dport, header_len) = match h.protocol {
        IPPROTO_TCP => {
            let Some(tcp) = read::<TcpHdr>(skb, l4) else {
                return;
            };
            let len = tcp.doff() as u32 * 4;
            (u16::from_be_bytes(tcp.source), u16::from_be_bytes(tcp.dest), len)
        }
        IPPROTO_UDP | IPPROTO_UDPLITE => {
            let Some(udp) = read::<UdpHdr>(skb, l4) else {
                return;
            };
            (u16::from_be_bytes(udp.src), u16::from_be_bytes(udp.dst), UdpHdr::LEN as u32)
        }
        _ => return,
    };
    h.per_segment_headers += header_len;
    h.port = service_port(sport, dport);
}

/// The service port rule: the lower port if it is below the ephemeral range, else 0.
#[inline(always)]
const fn service_port(a: u16, b: u16) -> u16 {
    let low = if a < b { a } else { b };
    if low < EPHEMERAL_PORT_MIN { low } else { 0 }
}
