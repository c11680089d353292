//! The chart's values (`deploy/helm/egressor/values.yaml`, embedded), as typed structs: the
//! one source of the defaults for both the Helm chart and `egressor manifests`. Files given
//! with `--values` merge over them the way Helm merges `-f` files (maps key by key, anything
//! else replaced, `null` deletes), and unknown keys are errors naming the key.

use std::{collections::BTreeMap, path::Path};

use k8s_openapi::api::core::v1::{LocalObjectReference, ResourceRequirements, Toleration};
use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::{config::FileConfig, error::ConfigError};

/// The chart's `values.yaml`, as committed.
pub const DEFAULT_VALUES: &str = include_str!("../../../deploy/helm/egressor/values.yaml");

/// Every value the chart reads; see the comments in `values.yaml` for each one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Values {
    /// Image of both components.
    pub image: Image,
    /// Secrets to pull the image with.
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// The agent's DaemonSet.
    pub agent: Agent,
    /// The agent's Service.
    pub service: ServiceValues,
    /// The prometheus-operator scrape.
    pub service_monitor: ServiceMonitorValues,
    /// The prometheus-operator rule bundle.
    pub prometheus_rule: PrometheusRuleValues,
    /// The Grafana dashboard ConfigMaps.
    pub dashboards: DashboardValues,
    /// The explainer's Deployment.
    pub explainer: Explainer,
}

/// `image`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Image {
    /// Registry and repository.
    pub repository: String,
    /// Tag; empty means the chart's appVersion (this crate's version).
    pub tag: String,
    /// `imagePullPolicy`.
    pub pull_policy: String,
}

impl Image {
    /// `repository:tag`, the tag defaulting to this version.
    pub fn reference(&self) -> String {
        let tag = if self.tag.is_empty() { env!("CARGO_PKG_VERSION") } else { &self.tag };
        format!("{}:{tag}", self.repository)
    }
}

/// `agent`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Agent {
    /// Port of /metrics and the probes on the node.
    pub port: u16,
    /// `--prices`; empty: the node's sheet.
    pub prices: String,
    /// The `--config.file` contents.
    pub config: Value,
    /// Kubernetes attribution options.
    pub kubernetes: AgentKubernetes,
    /// Cardinality caps and memory bounds.
    pub limits: Limits,
    /// `--web.api.allow`.
    pub api_allow: Vec<String>,
    /// `--read-interval`.
    pub read_interval: String,
    /// `--log.level`.
    pub log_level: String,
    /// `--bpf.pin-path`; empty: no pins.
    pub pin_path: String,
    /// More flags, appended.
    pub extra_args: Vec<String>,
    /// Requests and limits.
    pub resources: ResourceRequirements,
    /// Pod tolerations.
    pub tolerations: Vec<Toleration>,
    /// Pod node selector.
    pub node_selector: BTreeMap<String, String>,
    /// Pod priority class.
    pub priority_class_name: String,
}

/// `agent.kubernetes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentKubernetes {
    /// `--kubernetes.labels`.
    pub labels: Vec<String>,
    /// `--kubernetes.version-label`.
    pub version_label: String,
}

/// `agent.limits`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Limits {
    /// `--flow-map.max-entries`.
    pub flow_map_entries: u32,
    /// `--series.max`.
    pub series: u32,
    /// `--remote-names.top-k`.
    pub remote_names_top_k: u32,
    /// `--dns.cache-size`.
    pub dns_cache_size: u32,
    /// `--destinations.memory`.
    pub destinations_memory: u64,
}

/// `service`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceValues {
    /// Add the `prometheus.io/scrape` annotations.
    pub scrape_annotations: bool,
}

/// `serviceMonitor`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceMonitorValues {
    /// Render it.
    pub enabled: bool,
    /// Extra labels (the Prometheus' selector).
    pub labels: BTreeMap<String, String>,
    /// Scrape interval.
    pub interval: String,
}

/// `prometheusRule`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrometheusRuleValues {
    /// Render it.
    pub enabled: bool,
    /// Extra labels (the Prometheus' rule selector).
    pub labels: BTreeMap<String, String>,
    /// A rule file's text replacing the bundled one; empty: the bundle.
    pub rules: String,
}

/// `dashboards`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DashboardValues {
    /// Render them.
    pub enabled: bool,
    /// Labels the Grafana sidecar watches.
    pub labels: BTreeMap<String, String>,
    /// Annotations (the sidecar's folder).
    pub annotations: BTreeMap<String, String>,
    /// Their namespace; empty: the release's.
    pub namespace: String,
}

/// `explainer`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Explainer {
    /// Render it.
    pub enabled: bool,
    /// Its port.
    pub port: u16,
    /// `--prometheus.url`.
    pub prometheus_url: String,
    /// The Secret with its credentials.
    pub secret_name: String,
    /// `--slack.channel` (bot token mode); empty: the incoming webhook.
    pub slack_channel: String,
    /// The Secret holds `anthropic-api-key` (`--claude.api-key-file`); false: no Claude.
    pub anthropic_key: bool,
    /// `--claude.model`; empty: the default.
    pub claude_model: String,
    /// `--redact.pod-names`.
    pub redact_pod_names: String,
    /// Requests and limits.
    pub resources: ResourceRequirements,
}

/// Helm's merge of a values file over another: maps merge key by key, anything else is
/// replaced, and `null` deletes the key.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(base), Value::Mapping(over)) => {
            for (key, value) in over {
                if value.is_null() {
                    base.remove(&key);
                } else if let Some(slot) = base.get_mut(&key) {
                    merge(slot, value);
                } else {
                    base.insert(key, value);
                }
            }
        }
        (base, over) => *base = over,
    }
}

impl Values {
    /// The embedded defaults with `files` merged over them in order, checked.
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::Parse`] naming the file (and the key, line
    /// and column); [`ConfigError::Invalid`] listing the values that cannot work, among them
    /// every problem of `agent.config` the agent would report.
    pub fn load(files: &[impl AsRef<Path>]) -> Result<Self, ConfigError> {
        let origin = Path::new("values.yaml (embedded)");
        let mut merged: Value = ConfigError::parse_yaml(DEFAULT_VALUES, origin)?;
        let mut last = origin.to_owned();
        for file in files {
            let path = file.as_ref();
            let text = ConfigError::read_file(path)?;
            let over: Value = ConfigError::parse_yaml(&text, path)?;
            if !over.is_null() {
                merge(&mut merged, over);
            }
            last = path.to_owned();
        }
        let values: Values = serde_yaml_ng::from_value(merged)
            .map_err(|e| ConfigError::Parse { path: last.clone(), message: e.to_string() })?;
        let problems = values.problems();
        if problems.is_empty() {
            Ok(values)
        } else {
            Err(ConfigError::Invalid { path: last, problems })
        }
    }

    /// The agent's configuration file text (`agent.config` as YAML).
    pub fn agent_config_text(&self) -> String {
        if self.agent.config.as_mapping().is_some_and(|m| m.is_empty())
            || self.agent.config.is_null()
        {
            return "{}\n".to_owned();
        }
        serde_yaml_ng::to_string(&self.agent.config).expect("a YAML value serializes")
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let config = self.agent_config_text();
        if let Err(e) = FileConfig::parse(&config, Path::new("agent.config")) {
            problems.push(e.to_string());
        }
        if let Err(e) = humantime::parse_duration(&self.agent.read_interval) {
            problems.push(format!("agent.readInterval {:?}: {e}", self.agent.read_interval));
        }
        for cidr in &self.agent.api_allow {
            if cidr.parse::<ipnet::IpNet>().is_err() {
                problems.push(format!("agent.apiAllow {cidr:?}: not a CIDR"));
            }
        }
        if self.agent.kubernetes.labels.len() > 10 {
            problems.push("agent.kubernetes.labels: at most 10".to_owned());
        }
        if !["hash", "drop", "keep"].contains(&self.explainer.redact_pod_names.as_str()) {
            problems.push(format!(
                "explainer.redactPodNames {:?}: one of hash, drop, keep",
                self.explainer.redact_pod_names
            ));
        }
        if self.explainer.enabled && self.explainer.secret_name.is_empty() {
            problems
                .push("explainer.secretName: required (the Secret with its credentials)".into());
        }
        problems
    }
}
