//! Entry points: thin wrappers that pick the hook and direction, count, and let the packet go.

use aya_ebpf::{
    bindings::TC_ACT_UNSPEC,
    macros::{cgroup_skb, classifier},
    programs::{SkBuffContext, TcContext},
};
use egressor_common::Direction;

use crate::account::{count_cgroup, count_tc};

/// cgroup_skb verdict that lets the packet through.
const CGROUP_PASS: i32 = 1;
/// TC verdict that hands the packet to the next program (TCX_NEXT) or the default action
/// (clsact): an observer never decides a packet's fate.
const TC_CONTINUE: i32 = TC_ACT_UNSPEC;
/// Link-layer header length of Ethernet (VLAN tags in the packet are skipped on top).
const ETHERNET: bool = true;
/// No link-layer header (WireGuard, tun, …).
const NO_L2: bool = false;

#[cgroup_skb(ingress)]
pub fn egr_cg_ingress(ctx: SkBuffContext) -> i32 {
    count_cgroup(&ctx.skb, Direction::Ingress);
    CGROUP_PASS
}

#[cgroup_skb(egress)]
pub fn egr_cg_egress(ctx: SkBuffContext) -> i32 {
    count_cgroup(&ctx.skb, Direction::Egress);
    CGROUP_PASS
}

#[classifier]
pub fn egr_tc_ingress(ctx: TcContext) -> i32 {
    count_tc::<ETHERNET>(&ctx.skb, Direction::Ingress);
    TC_CONTINUE
}

#[classifier]
pub fn egr_tc_egress(ctx: TcContext) -> i32 {
    count_tc::<ETHERNET>(&ctx.skb, Direction::Egress);
    TC_CONTINUE
}

#[classifier]
pub fn egr_tc_ingress3(ctx: TcContext) -> i32 {
    count_tc::<NO_L2>(&ctx.skb, Direction::Ingress);
    TC_CONTINUE
}

#[classifier]
pub fn egr_tc_egress3(ctx: TcContext) -> i32 {
    count_tc::<NO_L2>(&ctx.skb, Direction::Egress);
    TC_CONTINUE
}

/// Empty cgroup_skb program: the floor the data-plane benchmark measures next to
/// `egr_cg_ingress`/`egr_cg_egress` (the agent never loads it).
#[cgroup_skb]
pub fn egr_noop_cg(_ctx: SkBuffContext) -> i32 {
    CGROUP_PASS
}

/// Empty TC program: the benchmark's floor for the TC programs (never loaded by the agent).
#[classifier]
pub fn egr_noop_tc(_ctx: TcContext) -> i32 {
    TC_CONTINUE
}
