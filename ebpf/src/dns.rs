//! DNS capture: copies DNS responses (from port 53, over UDP or TCP, IPv4 or IPv6) to a ring
//! buffer for user space to learn which name an address was looked up by. Nothing but DNS is
//! ever copied: the source port must be 53 and the message's QR bit must say "response".
//! At most `dns_events_per_second` per CPU and [`DNS_MAX_PAYLOAD`] bytes per response; what
//! is not copied is counted in `DNS_STATS`.

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, generated::bpf_skb_load_bytes},
    macros::map,
    maps::{PerCpuArray, RingBuf},
    programs::sk_buff::SkBuff,
};
use egressor_common::{DNS_MAX_PAYLOAD, DNS_PORT, DNS_RING_BYTES, DnsEvent, dns_stat};

use crate::account::{capture_dns_enabled, dns_events_per_second};

/// DNS responses for user space.
#[map]
static DNS_EVENTS: RingBuf = RingBuf::with_byte_size(DNS_RING_BYTES, 0);

/// Counters and the rate limiter's state, per CPU (indexes in `dns_stat`).
#[map]
static DNS_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(dns_stat::SLOTS, 0);

const NS_PER_SECOND: u64 = 1_000_000_000;
/// Offset of the flags byte holding QR in a DNS header (RFC 1035 §4.1.1).
const DNS_FLAGS_OFFSET: usize = 2;
const DNS_QR: u8 = 0x80;
/// Covers every length up to `DNS_MAX_PAYLOAD` (1536 < 2048).
const LEN_MASK: u32 = 0x7ff;

#[inline(always)]
fn bump(slot: u32) {
    if let Some(v) = DNS_STATS.get_ptr_mut(slot) {
        // SAFETY: this CPU's slot of a per-CPU array; captures run in softirq context, which
        // does not nest on one CPU.
        unsafe { *v += 1 };
    }
}

/// Copies the DNS message at `payload` (bytes past `skb->data`; `end` is where the packet
/// ends) if the packet came from port 53 and carries a response. `tcp`: the message starts
/// with TCP's two-byte length prefix.
#[inline(always)]
pub fn capture(skb: &SkBuff, source_port: u16, payload: usize, end: usize, tcp: bool) {
    if source_port != DNS_PORT || !capture_dns_enabled() || payload >= end {
        return;
    }
    let prefix = if tcp { 2 } else { 0 };
    match skb.load::<u8>(payload + prefix + DNS_FLAGS_OFFSET) {
        Ok(flags) if flags & DNS_QR != 0 => {}
        _ => return,
    }
    let (Some(start), Some(count)) = (
        DNS_STATS.get_ptr_mut(dns_stat::WINDOW_START),
        DNS_STATS.get_ptr_mut(dns_stat::WINDOW_COUNT),
    ) else {
        return;
    };
    // SAFETY: see `bump`.
    unsafe {
        let now = bpf_ktime_get_ns();
        if now.wrapping_sub(*start) >= NS_PER_SECOND {
            *start = now;
            *count = 0;
        }
        if *count >= u64::from(dns_events_per_second()) {
            bump(dns_stat::RATE_LIMITED);
            return;
        }
        *count += 1;
    }
    let Some(mut entry) = DNS_EVENTS.reserve::<DnsEvent>(0) else {
        bump(dns_stat::RING_FULL);
        return;
    };
    let event = entry.as_mut_ptr();
    let wanted = end - payload;
    let capped = (if wanted < DNS_MAX_PAYLOAD { wanted } else { DNS_MAX_PAYLOAD }) as u32;
    // LLVM folds the bound checks below into forms the verifier cannot follow; a volatile
    // read hides the value from LLVM, so the mask and checks stay as written and the verifier
    // sees 1 ≤ len ≤ DNS_MAX_PAYLOAD.
    // SAFETY: a read of a local.
    let len = unsafe { core::ptr::read_volatile(&capped) } & LEN_MASK;
    if len == 0 || len > DNS_MAX_PAYLOAD as u32 {
        entry.discard(0);
        return;
    }
    // SAFETY: `event` points to the reserved, writable ring buffer record, used by nothing
    // else until it is submitted; `len` (1..=DNS_MAX_PAYLOAD) fits `data`. The helper is
    // called directly: the verifier must see `len` ≥ 1, which `SkBuff::load_bytes` loses.
    let copied = unsafe {
        bpf_skb_load_bytes(
            skb.skb as *const _,
            payload as u32,
            (&raw mut (*event).data).cast(),
            len,
        )
    };
    if copied != 0 {
        entry.discard(0);
        return;
    }
    // SAFETY: as above.
    unsafe {
        (*event).len = len as u16;
        (*event).tcp = u8::from(tcp);
        (*event)._pad = [0; 5];
    }
    entry.submit(0);
    bump(dns_stat::CAPTURED);
}
