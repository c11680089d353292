//! egressor's eBPF programs: per-flow byte and packet counters, no per-packet events.
//!
//! - `egr_cg_ingress` / `egr_cg_egress` (cgroup_skb, attached to the cgroup v2 root) see every
//!   socket's packets with the socket's cgroup, before NAT, in any network namespace.
//! - `egr_tc_ingress` / `egr_tc_egress` (TC on Ethernet interfaces) and `egr_tc_ingress3` /
//!   `egr_tc_egress3` (TC on interfaces without a link-layer header, such as WireGuard or tun)
//!   see an interface's packets as the wire carries them.
//!
//! All of them add to one per-CPU hash map `FLOWS` (`FlowKey` → `FlowCounters`); a packet
//! whose flow finds no room goes to `OVERFLOW`, so no counted byte is ever dropped silently.
//! Every program returns "continue": egressor only observes.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// The only way to emit BPF_ATOMIC add from Rust: the bpf target has no `AtomicU64::fetch_add`.
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", expect(internal_features, reason = "atomic_xadd, see above"))]

#[cfg(target_arch = "bpf")]
mod account;
#[cfg(target_arch = "bpf")]
mod dns;
#[cfg(target_arch = "bpf")]
mod packet;
#[cfg(target_arch = "bpf")]
mod programs;

#[cfg(not(target_arch = "bpf"))]
fn main() {
    // Built for the host only by workspace-wide commands; the real programs need
    // `--target bpfel-unknown-none` (exporter/build.rs does that).
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // SAFETY: the verifier rejects any program that could reach a panic.
    unsafe { core::hint::unreachable_unchecked() }
}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
