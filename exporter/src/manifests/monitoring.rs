//! What plugs egressor into kube-prometheus-stack: the ServiceMonitor that scrapes every
//! agent (with the node's name as `node`), the PrometheusRule carrying
//! `alerts/egressor.rules.yml` unchanged, and one ConfigMap per dashboard of
//! `grafana/dashboards/` for Grafana's dashboard sidecar.
//!
//! prometheus-operator's kinds are not in `k8s-openapi`; they are built as JSON values here
//! and validated against the operator's CRD schemas (v0.89.0) by the tests.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Value, json};

use super::{Release, Values};

/// `alerts/egressor.rules.yml`, the bundle the PrometheusRule carries by default.
pub const RULES: &str = include_str!("../../../alerts/egressor.rules.yml");

/// The bundled dashboards: `(file name, JSON text)`, as in `grafana/dashboards/`.
pub const DASHBOARDS: [(&str, &str); 4] = [
    ("egressor-cost.json", include_str!("../../../grafana/dashboards/egressor-cost.json")),
    ("egressor-graph.json", include_str!("../../../grafana/dashboards/egressor-graph.json")),
    ("egressor-health.json", include_str!("../../../grafana/dashboards/egressor-health.json")),
    ("egressor-workload.json", include_str!("../../../grafana/dashboards/egressor-workload.json")),
];

fn metadata(
    release: &Release,
    name: String,
    component: &str,
    extra: &BTreeMap<String, String>,
) -> Value {
    let mut meta = release.meta(name, true, component);
    if let Some(labels) = meta.labels.as_mut() {
        labels.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    serde_json::to_value(meta).expect("ObjectMeta serializes")
}

/// The ServiceMonitor (`monitoring.coreos.com/v1`) of the agents' Service.
pub fn service_monitor(values: &Values, release: &Release) -> Value {
    let sm = &values.service_monitor;
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata(release, release.name_of("agent"), "agent", &sm.labels),
        "spec": {
            "selector": {"matchLabels": release.selector("agent")},
            "endpoints": [{
                "port": "metrics",
                "path": "/metrics",
                "interval": sm.interval,
                "relabelings": [{
                    "sourceLabels": ["__meta_kubernetes_pod_node_name"],
                    "targetLabel": "node",
                }],
            }],
        },
    })
}

/// The PrometheusRule (`monitoring.coreos.com/v1`) whose spec is `prometheusRule.rules`,
/// else [`RULES`].
///
/// # Errors
/// `prometheusRule.rules` is not YAML.
pub fn prometheus_rule(values: &Values, release: &Release) -> Result<Value, serde_yaml_ng::Error> {
    let pr = &values.prometheus_rule;
    let text = if pr.rules.is_empty() { RULES } else { &pr.rules };
    let spec: Value = serde_yaml_ng::from_str(text)?;
    Ok(json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata(release, release.fullname(), "rules", &pr.labels),
        "spec": spec,
    }))
}

/// One ConfigMap per bundled dashboard, named `<fullname>-<dashboard>-dashboard`.
pub fn dashboards(values: &Values, release: &Release) -> Vec<ConfigMap> {
    let d = &values.dashboards;
    DASHBOARDS
        .iter()
        .map(|(file, json)| {
            let stem = file.trim_end_matches(".json").trim_start_matches("egressor-");
            let mut meta = release.meta(
                format!("{}-{stem}-dashboard", release.fullname()),
                true,
                "dashboards",
            );
            if !d.namespace.is_empty() {
                meta.namespace = Some(d.namespace.clone());
            }
            if let Some(labels) = meta.labels.as_mut() {
                labels.extend(d.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            if !d.annotations.is_empty() {
                meta.annotations = Some(d.annotations.clone());
            }
            ConfigMap {
                metadata: meta,
                data: Some(BTreeMap::from([((*file).to_owned(), (*json).to_owned())])),
                ..Default::default()
            }
        })
        .collect()
}
