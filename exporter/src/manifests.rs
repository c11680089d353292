//! `egressor manifests`: the Kubernetes objects that run egressor, built as typed
//! `k8s-openapi` values (the way `linkerd install` does) and printed as one multi-document
//! YAML stream. `deploy/kubernetes/egressor.yaml` is this output for the defaults; a test
//! fails when it is stale and validates it against the Kubernetes OpenAPI schemas.
//!
//! What and why:
//! - The agent's DaemonSet runs on every node (tolerates every taint), as UID 0 with every
//!   capability dropped but `BPF` (load programs, create maps), `PERFMON` (the verifier's
//!   packet reads), `NET_ADMIN` (attach networking programs, read conntrack) and
//!   `DAC_READ_SEARCH` (cgroup id → path by handle; optional) — the set the capability tests
//!   prove is enough, and the kernel grants capabilities to UID 0 only without ambient
//!   support. Read-only root filesystem, no privilege escalation, no host PID namespace.
//!   `hostNetwork`: the node's conntrack table (which backend served a Service connection)
//!   and the TC interfaces live in the node's network namespace; the cgroup hooks alone
//!   would not need it. The host's cgroup2 tree is mounted read-only at
//!   `/host/sys/fs/cgroup` (the container's own `/sys/fs/cgroup` is its cgroup namespace),
//!   bpffs at `/sys/fs/bpf`; `NODE_NAME` comes from the downward API. Rolling updates
//!   replace one node at a time, without a gap in the counts: the agent pins its maps and
//!   links under `/sys/fs/bpf/egressor` and checkpoints its counters to the host's
//!   `/run/egressor` (tmpfs: valid until reboot, like the pins), so the next agent carries
//!   on where the last one stopped. Uninstalling leaves the pinned programs counting until
//!   `egressor unpin` runs on the node (or it reboots).
//! - RBAC: get, list, watch on exactly what the agent watches: pods, nodes, namespaces
//!   (chargeback labels), services, endpointslices, replicasets and jobs (a pod's owner →
//!   its Deployment or CronJob).
//! - The explainer's Deployment runs as a non-root user with no capabilities; its secrets
//!   (Slack webhook URL, Anthropic key, Alertmanager's token) come from the Secret
//!   `egressor-explainer`, which this output never contains.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{
            DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, Deployment, DeploymentSpec,
            RollingUpdateDaemonSet,
        },
        core::v1::{
            Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
            HostPathVolumeSource, Namespace, ObjectFieldSelector, PodSecurityContext, PodSpec,
            PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretVolumeSource,
            SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec, Toleration, Volume,
            VolumeMount,
        },
        rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject},
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use serde::Serialize;

/// What the output is made for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Namespace of every namespaced object.
    pub namespace: String,
    /// Container image of both the agent and the explainer.
    pub image: String,
    /// Prometheus the explainer asks (`http://prometheus-operated.monitoring:9090`).
    pub prometheus_url: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            namespace: "egressor".into(),
            image: format!("ghcr.io/egressor/egressor:{}", env!("CARGO_PKG_VERSION")),
            prometheus_url: "http://prometheus-operated.monitoring.svc:9090".into(),
        }
    }
}

/// The agent's metrics port (`--web.listen-address`).
pub const AGENT_PORT: i32 = 10730;
/// The explainer's port.
pub const EXPLAINER_PORT: i32 = 10731;

fn labels(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "egressor".to_owned()),
        ("app.kubernetes.io/component".to_owned(), component.to_owned()),
    ])
}

fn meta(name: &str, namespace: Option<&str>, component: &str) -> ObjectMeta {
    let mut l = labels(component);
    l.insert("app.kubernetes.io/version".into(), env!("CARGO_PKG_VERSION").into());
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(str::to_owned),
        labels: Some(l),
        ..Default::default()
    }
}

fn http_probe(path: &str, port: i32, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(port),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(3),
        ..Default::default()
    }
}

fn quantities(cpu: &str, memory: &str) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_owned(), Quantity(cpu.into())),
        ("memory".to_owned(), Quantity(memory.into())),
    ])
}

fn host_path(name: &str, path: &str, type_: &str) -> Volume {
    Volume {
        name: name.into(),
        host_path: Some(HostPathVolumeSource { path: path.into(), type_: Some(type_.into()) }),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..Default::default()
    }
}

fn agent(o: &Options) -> DaemonSet {
    let container = Container {
        name: "agent".into(),
        image: Some(o.image.clone()),
        args: Some(
            [
                "agent",
                "--web.listen-address",
                &format!("0.0.0.0:{AGENT_PORT}"),
                "--cgroup.path",
                "/host/sys/fs/cgroup",
                "--bpf.pin-path",
                "/sys/fs/bpf/egressor",
                "--bpf.checkpoint-file",
                "/run/egressor/checkpoint",
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
        env: Some(vec![EnvVar {
            name: "NODE_NAME".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "spec.nodeName".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".into()),
            container_port: AGENT_PORT,
            ..Default::default()
        }]),
        liveness_probe: Some(http_probe("/healthz", AGENT_PORT, 10)),
        readiness_probe: Some(http_probe("/readyz", AGENT_PORT, 5)),
        resources: Some(ResourceRequirements {
            requests: Some(quantities("50m", "64Mi")),
            limits: Some(BTreeMap::from([("memory".to_owned(), Quantity("512Mi".into()))])),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            run_as_user: Some(0),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: Some(
                    ["BPF", "PERFMON", "NET_ADMIN", "DAC_READ_SEARCH"].map(str::to_owned).to_vec(),
                ),
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            mount("cgroup", "/host/sys/fs/cgroup", true),
            mount("bpffs", "/sys/fs/bpf", false),
            mount("state", "/run/egressor", false),
        ]),
        ..Default::default()
    };
    DaemonSet {
        metadata: meta("egressor-agent", Some(&o.namespace), "agent"),
        spec: DaemonSetSpec {
            selector: LabelSelector { match_labels: Some(labels("agent")), ..Default::default() },
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDaemonSet {
                    max_unavailable: Some(IntOrString::Int(1)),
                    ..Default::default()
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels("agent")), ..Default::default() }),
                spec: Some(PodSpec {
                    service_account_name: Some("egressor-agent".into()),
                    host_network: Some(true),
                    host_pid: Some(false),
                    dns_policy: Some("ClusterFirstWithHostNet".into()),
                    priority_class_name: Some("system-node-critical".into()),
                    tolerations: Some(vec![Toleration {
                        operator: Some("Exists".into()),
                        ..Default::default()
                    }]),
                    containers: vec![container],
                    volumes: Some(vec![
                        host_path("cgroup", "/sys/fs/cgroup", "Directory"),
                        host_path("bpffs", "/sys/fs/bpf", "Directory"),
                        host_path("state", "/run/egressor", "DirectoryOrCreate"),
                    ]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

fn rbac(o: &Options) -> (ServiceAccount, ClusterRole, ClusterRoleBinding) {
    let rule = |group: &str, resources: &[&str]| PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: ["get", "list", "watch"].map(str::to_owned).to_vec(),
        ..Default::default()
    };
    let account = ServiceAccount {
        metadata: meta("egressor-agent", Some(&o.namespace), "agent"),
        ..Default::default()
    };
    let role = ClusterRole {
        metadata: meta("egressor-agent", None, "agent"),
        rules: Some(vec![
            rule("", &["pods", "nodes", "namespaces", "services"]),
            rule("discovery.k8s.io", &["endpointslices"]),
            rule("apps", &["replicasets"]),
            rule("batch", &["jobs"]),
        ]),
        ..Default::default()
    };
    let binding = ClusterRoleBinding {
        metadata: meta("egressor-agent", None, "agent"),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "egressor-agent".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "egressor-agent".into(),
            namespace: Some(o.namespace.clone()),
            ..Default::default()
        }]),
    };
    (account, role, binding)
}

fn service(o: &Options, component: &str, port: i32, headless: bool) -> Service {
    let name = format!("egressor-{component}");
    let mut metadata = meta(&name, Some(&o.namespace), component);
    if component == "agent" {
        // The plain-scrape convention, for Prometheus setups without the operator.
        metadata.annotations = Some(BTreeMap::from([
            ("prometheus.io/scrape".to_owned(), "true".to_owned()),
            ("prometheus.io/port".to_owned(), port.to_string()),
        ]));
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            cluster_ip: headless.then(|| "None".to_owned()),
            selector: Some(labels(component)),
            ports: Some(vec![ServicePort {
                name: Some(if component == "agent" { "metrics" } else { "http" }.into()),
                port,
                target_port: Some(IntOrString::Int(port)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn explainer(o: &Options) -> Deployment {
    let secret = |key: &str, optional: bool| Volume {
        name: key.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some("egressor-explainer".into()),
            items: Some(vec![k8s_openapi::api::core::v1::KeyToPath {
                key: key.into(),
                path: key.into(),
                ..Default::default()
            }]),
            optional: Some(optional),
            ..Default::default()
        }),
        ..Default::default()
    };
    let file = |key: &str| format!("/etc/egressor/{key}/{key}");
    let container = Container {
        name: "explainer".into(),
        image: Some(o.image.clone()),
        args: Some(vec![
            "explainer".into(),
            "--web.listen-address".into(),
            format!("0.0.0.0:{EXPLAINER_PORT}"),
            "--prometheus.url".into(),
            o.prometheus_url.clone(),
            "--slack.webhook-url-file".into(),
            file("slack-webhook-url"),
            "--auth.bearer-token-file".into(),
            file("alertmanager-token"),
            "--claude.api-key-file".into(),
            file("anthropic-api-key"),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: EXPLAINER_PORT,
            ..Default::default()
        }]),
        liveness_probe: Some(http_probe("/healthz", EXPLAINER_PORT, 10)),
        readiness_probe: Some(http_probe("/healthz", EXPLAINER_PORT, 5)),
        resources: Some(ResourceRequirements {
            requests: Some(quantities("10m", "32Mi")),
            limits: Some(BTreeMap::from([("memory".to_owned(), Quantity("128Mi".into()))])),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
            ..Default::default()
        }),
        volume_mounts: Some(
            ["slack-webhook-url", "alertmanager-token", "anthropic-api-key"]
                .map(|k| mount(k, &format!("/etc/egressor/{k}"), true))
                .to_vec(),
        ),
        ..Default::default()
    };
    Deployment {
        metadata: meta("egressor-explainer", Some(&o.namespace), "explainer"),
        spec: DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(labels("explainer")),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels("explainer")),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        run_as_group: Some(65532),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    containers: vec![container],
                    volumes: Some(vec![
                        secret("slack-webhook-url", false),
                        secret("alertmanager-token", false),
                        // Without the key the explainer posts the deterministic summary.
                        secret("anthropic-api-key", true),
                    ]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Appends `object` as a YAML document.
fn document(out: &mut String, object: &impl Serialize) -> Result<(), serde_yaml_ng::Error> {
    out.push_str("---\n");
    out.push_str(&serde_yaml_ng::to_string(object)?);
    Ok(())
}

/// Every object for `o`, as a multi-document YAML stream.
///
/// # Errors
/// The YAML serializer's error (not expected for these objects).
pub fn render(o: &Options) -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::from(
        "# Generated by `egressor manifests`; do not edit (a test fails when this is stale).\n",
    );
    let namespace =
        Namespace { metadata: meta(&o.namespace, None, "namespace"), ..Default::default() };
    let (account, role, binding) = rbac(o);
    document(&mut out, &namespace)?;
    document(&mut out, &account)?;
    document(&mut out, &role)?;
    document(&mut out, &binding)?;
    document(&mut out, &agent(o))?;
    document(&mut out, &service(o, "agent", AGENT_PORT, true))?;
    document(&mut out, &explainer(o))?;
    document(&mut out, &service(o, "explainer", EXPLAINER_PORT, false))?;
    Ok(out)
}
