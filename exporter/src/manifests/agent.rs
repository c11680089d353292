//! The agent: its ServiceAccount and read-only ClusterRole, the ConfigMap holding
//! `agent.config`, the DaemonSet and the headless Service the scrape finds it by. See the
//! module above for why each privilege is there.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet},
        core::v1::{
            Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar,
            EnvVarSource, HostPathVolumeSource, ObjectFieldSelector, PodSpec, PodTemplateSpec,
            SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec, Volume,
        },
        rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject},
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use sha2::{Digest, Sha256};

use super::{Release, Values, http_probe, mount};

/// Where the ConfigMap's `config.yaml` is mounted.
pub const CONFIG_DIR: &str = "/etc/egressor/agent";
/// The host directory of the counter checkpoint (tmpfs, like the pins).
pub const STATE_DIR: &str = "/run/egressor";

const COMPONENT: &str = "agent";

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// The agent's arguments, in the chart's order.
pub fn args(values: &Values) -> Vec<String> {
    let a = &values.agent;
    let mut args = vec![
        "agent".to_owned(),
        format!("--web.listen-address=0.0.0.0:{}", a.port),
        "--cgroup.path=/host/sys/fs/cgroup".to_owned(),
        format!("--config.file={CONFIG_DIR}/config.yaml"),
    ];
    if !a.pin_path.is_empty() {
        args.push(format!("--bpf.pin-path={}", a.pin_path));
        args.push(format!("--bpf.checkpoint-file={STATE_DIR}/checkpoint"));
    }
    args.extend([
        format!("--read-interval={}", a.read_interval),
        format!("--flow-map.max-entries={}", a.limits.flow_map_entries),
        format!("--series.max={}", a.limits.series),
        format!("--remote-names.top-k={}", a.limits.remote_names_top_k),
        format!("--dns.cache-size={}", a.limits.dns_cache_size),
        format!("--destinations.memory={}", a.limits.destinations_memory),
        format!("--web.api.allow={}", a.api_allow.join(",")),
        format!("--kubernetes.version-label={}", a.kubernetes.version_label),
    ]);
    if !a.kubernetes.labels.is_empty() {
        args.push(format!("--kubernetes.labels={}", a.kubernetes.labels.join(",")));
    }
    if !a.prices.is_empty() {
        args.push(format!("--prices={}", a.prices));
    }
    args.push(format!("--log.level={}", a.log_level));
    args.extend(a.extra_args.iter().cloned());
    args
}

/// ServiceAccount, ClusterRole (get/list/watch only) and its binding.
pub fn rbac(release: &Release) -> (ServiceAccount, ClusterRole, ClusterRoleBinding) {
    let name = release.name_of(COMPONENT);
    let rule = |group: &str, resources: &[&str]| PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: ["get", "list", "watch"].map(str::to_owned).to_vec(),
        ..Default::default()
    };
    let account = ServiceAccount {
        metadata: release.meta(name.clone(), true, COMPONENT),
        ..Default::default()
    };
    let role = ClusterRole {
        metadata: release.meta(name.clone(), false, COMPONENT),
        rules: Some(vec![
            rule("", &["pods", "nodes", "namespaces", "services"]),
            rule("discovery.k8s.io", &["endpointslices"]),
            rule("apps", &["replicasets"]),
            rule("batch", &["jobs"]),
        ]),
        ..Default::default()
    };
    let binding = ClusterRoleBinding {
        metadata: release.meta(name.clone(), false, COMPONENT),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name,
            namespace: Some(release.namespace.clone()),
            ..Default::default()
        }]),
    };
    (account, role, binding)
}

/// The ConfigMap with `config.yaml` = `agent.config`.
pub fn config_map(values: &Values, release: &Release) -> ConfigMap {
    ConfigMap {
        metadata: release.meta(release.name_of(COMPONENT), true, COMPONENT),
        data: Some(BTreeMap::from([("config.yaml".to_owned(), values.agent_config_text())])),
        ..Default::default()
    }
}

fn host_path(name: &str, path: &str, type_: &str) -> Volume {
    Volume {
        name: name.into(),
        host_path: Some(HostPathVolumeSource { path: path.into(), type_: Some(type_.into()) }),
        ..Default::default()
    }
}

/// The DaemonSet: one agent per node.
pub fn daemon_set(values: &Values, release: &Release) -> DaemonSet {
    let a = &values.agent;
    let name = release.name_of(COMPONENT);
    let container = Container {
        name: COMPONENT.into(),
        image: Some(values.image.reference()),
        image_pull_policy: Some(values.image.pull_policy.clone()),
        args: Some(args(values)),
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
            container_port: a.port.into(),
            ..Default::default()
        }]),
        liveness_probe: Some(http_probe("/healthz", a.port, 10)),
        readiness_probe: Some(http_probe("/readyz", a.port, 5)),
        resources: Some(a.resources.clone()),
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
            mount("state", STATE_DIR, false),
            mount("cache", "/var/cache/egressor", false),
            mount("config", CONFIG_DIR, true),
        ]),
        ..Default::default()
    };
    let checksum = format!("{:x}", Sha256::digest(values.agent_config_text()));
    DaemonSet {
        metadata: release.meta(name.clone(), true, COMPONENT),
        spec: DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(release.selector(COMPONENT)),
                ..Default::default()
            },
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDaemonSet {
                    max_unavailable: Some(IntOrString::Int(1)),
                    ..Default::default()
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(release.selector(COMPONENT)),
                    annotations: Some(BTreeMap::from([("checksum/config".to_owned(), checksum)])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(name.clone()),
                    image_pull_secrets: non_empty(values.image_pull_secrets.clone()),
                    host_network: Some(true),
                    host_pid: Some(false),
                    dns_policy: Some("ClusterFirstWithHostNet".into()),
                    priority_class_name: (!a.priority_class_name.is_empty())
                        .then(|| a.priority_class_name.clone()),
                    node_selector: (!a.node_selector.is_empty()).then(|| a.node_selector.clone()),
                    tolerations: non_empty(a.tolerations.clone()),
                    containers: vec![container],
                    volumes: Some(vec![
                        host_path("cgroup", "/sys/fs/cgroup", "Directory"),
                        host_path("bpffs", "/sys/fs/bpf", "Directory"),
                        host_path("state", STATE_DIR, "DirectoryOrCreate"),
                        host_path("cache", "/var/cache/egressor", "DirectoryOrCreate"),
                        Volume {
                            name: "config".into(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: name.clone(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The headless Service: one endpoint per node for the scrape, with the plain-scrape
/// annotations when `service.scrapeAnnotations`.
pub fn service(values: &Values, release: &Release) -> Service {
    let port = values.agent.port;
    let mut metadata = release.meta(release.name_of(COMPONENT), true, COMPONENT);
    if values.service.scrape_annotations {
        metadata.annotations = Some(BTreeMap::from([
            ("prometheus.io/scrape".to_owned(), "true".to_owned()),
            ("prometheus.io/port".to_owned(), port.to_string()),
            ("prometheus.io/path".to_owned(), "/metrics".to_owned()),
        ]));
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            selector: Some(release.selector(COMPONENT)),
            ports: Some(vec![ServicePort {
                name: Some("metrics".into()),
                port: port.into(),
                target_port: Some(IntOrString::Int(port.into())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
