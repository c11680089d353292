//! `egressor manifests`: the Kubernetes objects that run egressor, built as typed
//! `k8s-openapi` values (the way `linkerd install` does) from the Helm chart's own
//! `values.yaml` ([`values`]), and printed as one multi-document YAML stream.
//!
//! The chart `deploy/helm/egressor` is a thin wrapper over the same objects: a test renders
//! it with a Go template engine and fails when any object differs from this module's output
//! for the same values files, and `deploy/kubernetes/*.yaml` are this output for the defaults
//! (stale fails too). Both validate against the Kubernetes OpenAPI schemas and the
//! prometheus-operator CRDs.
//!
//! What and why:
//! - The agent's DaemonSet ([`agent`]) runs on every node (tolerates every taint), as UID 0
//!   with every capability dropped but `BPF` (load programs, create maps), `PERFMON` (the
//!   verifier's packet reads), `NET_ADMIN` (attach networking programs, read conntrack) and
//!   `DAC_READ_SEARCH` (cgroup id → path by handle; optional) — the set the capability tests
//!   prove is enough; the kernel grants capabilities to UID 0 only without ambient support.
//!   Read-only root filesystem, no privilege escalation, no host PID namespace.
//!   `hostNetwork`: the node's conntrack table (which backend served a Service connection)
//!   and the TC interfaces live in the node's network namespace; the cgroup hooks alone
//!   would not need it. The host's cgroup2 tree is mounted read-only at
//!   `/host/sys/fs/cgroup` (the container's own `/sys/fs/cgroup` is its cgroup namespace),
//!   bpffs at `/sys/fs/bpf`; `NODE_NAME` comes from the downward API. Rolling updates
//!   replace one node at a time without a gap in the counts: the agent pins its maps and
//!   links under `agent.pinPath` and checkpoints its counters to the host's `/run/egressor`
//!   (tmpfs: valid until reboot, like the pins), so the next agent carries on where the last
//!   one stopped. Uninstalling leaves the pinned programs counting until `egressor unpin`
//!   runs on the node (or it reboots).
//! - RBAC: get, list, watch on exactly what the agent watches: pods, nodes, namespaces
//!   (chargeback labels), services, endpointslices, replicasets and jobs (a pod's owner →
//!   its Deployment or CronJob).
//! - The explainer's Deployment ([`explainer`]) runs as a non-root user with no
//!   capabilities; its credentials come from a Secret this output never contains.
//! - [`monitoring`]: ServiceMonitor, PrometheusRule (the `alerts/` bundle, byte for byte)
//!   and the dashboards as ConfigMaps for Grafana's sidecar.

pub mod agent;
pub mod explainer;
pub mod monitoring;
pub mod values;

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{HTTPGetAction, Namespace, Probe, VolumeMount},
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};
use serde::Serialize;

pub use values::Values;

/// Which objects to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Everything.
    All,
    /// Namespace, RBAC, agent and explainer: plain Kubernetes kinds.
    Core,
    /// ServiceMonitor, PrometheusRule and dashboard ConfigMaps (prometheus-operator and
    /// Grafana's sidecar).
    Monitoring,
}

/// The release the objects are named after (Helm's `.Release`).
#[derive(Debug, Clone)]
pub struct Release {
    /// Release name: objects are `<release>-egressor-*`, or `<release>-*` when the release
    /// name already contains `egressor` (Helm's `fullname` convention).
    pub name: String,
    /// Namespace of every namespaced object.
    pub namespace: String,
}

impl Default for Release {
    fn default() -> Self {
        Self { name: "egressor".into(), namespace: "egressor".into() }
    }
}

impl Release {
    /// The chart's `egressor.fullname`: at most 63 characters, no trailing `-`.
    pub fn fullname(&self) -> String {
        let full = if self.name.contains("egressor") {
            self.name.clone()
        } else {
            format!("{}-egressor", self.name)
        };
        full.chars().take(63).collect::<String>().trim_end_matches('-').to_owned()
    }

    /// The name of `component`'s objects: `<fullname>-<component>`.
    pub fn name_of(&self, component: &str) -> String {
        format!("{}-{component}", self.fullname())
    }

    /// The selector labels of `component`'s pods (`egressor.selectorLabels`).
    pub fn selector(&self, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_owned(), "egressor".to_owned()),
            ("app.kubernetes.io/instance".to_owned(), self.name.clone()),
            ("app.kubernetes.io/component".to_owned(), component.to_owned()),
        ])
    }

    /// Metadata of an object of `component` (`egressor.labels`: the selector labels and the
    /// version); `namespace` is `None` for cluster-scoped kinds.
    pub fn meta(&self, name: String, namespaced: bool, component: &str) -> ObjectMeta {
        let mut labels = self.selector(component);
        labels.insert("app.kubernetes.io/version".into(), env!("CARGO_PKG_VERSION").into());
        ObjectMeta {
            name: Some(name),
            namespace: namespaced.then(|| self.namespace.clone()),
            labels: Some(labels),
            ..Default::default()
        }
    }
}

pub(crate) fn http_probe(path: &str, port: u16, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(port.into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(3),
        ..Default::default()
    }
}

pub(crate) fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..Default::default()
    }
}

/// Appends `object` as a YAML document.
fn document(out: &mut String, object: &impl Serialize) -> Result<(), serde_yaml_ng::Error> {
    out.push_str("---\n");
    out.push_str(&serde_yaml_ng::to_string(object)?);
    Ok(())
}

/// The objects of `part` for `values` and `release`, as a multi-document YAML stream; `core`
/// starts with the Namespace (the chart leaves it to `helm install --create-namespace`).
///
/// # Errors
/// The YAML serializer's error, or a `prometheusRule.rules` text that is not YAML.
pub fn render(
    values: &Values,
    release: &Release,
    part: Part,
) -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::from(
        "# Generated by `egressor manifests`; do not edit (a test fails when this is stale).\n",
    );
    if part != Part::Monitoring {
        let namespace = Namespace {
            metadata: release.meta(release.namespace.clone(), false, "namespace"),
            ..Default::default()
        };
        document(&mut out, &namespace)?;
        let (account, role, binding) = agent::rbac(release);
        document(&mut out, &account)?;
        document(&mut out, &role)?;
        document(&mut out, &binding)?;
        document(&mut out, &agent::config_map(values, release))?;
        document(&mut out, &agent::daemon_set(values, release))?;
        document(&mut out, &agent::service(values, release))?;
        if values.explainer.enabled {
            document(&mut out, &explainer::deployment(values, release))?;
            document(&mut out, &explainer::service(values, release))?;
        }
    }
    if part != Part::Core {
        if values.service_monitor.enabled {
            document(&mut out, &monitoring::service_monitor(values, release))?;
        }
        if values.prometheus_rule.enabled {
            document(&mut out, &monitoring::prometheus_rule(values, release)?)?;
        }
        if values.dashboards.enabled {
            for dashboard in monitoring::dashboards(values, release) {
                document(&mut out, &dashboard)?;
            }
        }
    }
    Ok(out)
}
