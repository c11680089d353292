//! egressor: an eBPF, Prometheus-native exporter of who moves data where, and what it costs.
//!
//! The `egressor` binary's library. `agent` is the entry point of `egressor agent`; the
//! other modules are its parts, one concern each.

#![warn(missing_docs)]

pub mod accounting;
pub mod agent;
pub mod api;
pub mod attribution;
pub mod cgroups;
pub mod checkpoint;
pub mod classify;
pub mod cli;
pub mod cloud;
pub mod commands;
pub mod config;
pub mod dashboards;
pub mod dataplane;
pub mod destinations;
pub mod discovery;
pub mod dns;
pub mod error;
pub mod explainer;
pub mod flow_table;
pub mod flowlogs;
pub mod geoip;
pub mod http;
pub mod http_api;
pub mod http_client;
pub mod kubernetes;
pub mod labels;
pub mod manifests;
pub mod metrics;
pub mod paths;
pub mod prices;
pub mod process;
pub mod reader;
pub mod rules;
pub mod verdict;
