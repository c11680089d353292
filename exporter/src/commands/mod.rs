//! The subcommands beside the agent: `egressor classify`, `egressor prices`,
//! `egressor top`, `egressor rules`, `egressor dashboards` and `egressor ask` (Claude over
//! Prometheus; the explainer's tool loop from the command line). The first three load the same
//! configuration and price sheet as the agent and call the same classifier and pricer, so
//! what they print is what the agent would count; the last two generate the alert bundle
//! and the Grafana dashboards from one values file. `egressor unpin` removes what an agent
//! left pinned in bpffs.

pub mod ask;
pub mod classify;
pub mod dashboards;
pub mod prices;
pub mod rules;
pub mod top;
pub mod unpin;
