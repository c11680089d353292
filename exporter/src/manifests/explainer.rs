//! The explainer: a Deployment (non-root, no capabilities, no service-account token) and
//! its Service, the target of Alertmanager's webhook. Its credentials come from the Secret
//! `explainer.secretName`, created by the user and never by this output, mounted read-only
//! at [`SECRET_DIR`]: keys `slack-webhook-url` (or `slack-bot-token` with
//! `explainer.slackChannel`), `alertmanager-token`, and `anthropic-api-key` unless
//! `explainer.anthropicKey` is false.

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        core::v1::{
            Capabilities, Container, ContainerPort, PodSecurityContext, PodSpec, PodTemplateSpec,
            SeccompProfile, SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec,
            Volume,
        },
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};

use super::{Release, Values, http_probe, mount};

/// Where the Secret's keys are files.
pub const SECRET_DIR: &str = "/etc/egressor/explainer";
/// The non-root user and group the explainer runs as (distroless' `nonroot`).
pub const USER: i64 = 65532;

const COMPONENT: &str = "explainer";

/// The explainer's arguments, in the chart's order.
pub fn args(values: &Values) -> Vec<String> {
    let e = &values.explainer;
    let mut args = vec![
        "explainer".to_owned(),
        format!("--web.listen-address=0.0.0.0:{}", e.port),
        format!("--prometheus.url={}", e.prometheus_url),
    ];
    if e.slack_channel.is_empty() {
        args.push(format!("--slack.webhook-url-file={SECRET_DIR}/slack-webhook-url"));
    } else {
        args.push(format!("--slack.bot-token-file={SECRET_DIR}/slack-bot-token"));
        args.push(format!("--slack.channel={}", e.slack_channel));
    }
    args.push(format!("--auth.bearer-token-file={SECRET_DIR}/alertmanager-token"));
    if e.anthropic_key {
        args.push(format!("--claude.api-key-file={SECRET_DIR}/anthropic-api-key"));
    }
    if !e.claude_model.is_empty() {
        args.push(format!("--claude.model={}", e.claude_model));
    }
    args.push(format!("--redact.pod-names={}", e.redact_pod_names));
    args
}

/// The Deployment: one replica (Alertmanager retries; the explainer dedupes by group key).
pub fn deployment(values: &Values, release: &Release) -> Deployment {
    let e = &values.explainer;
    let container = Container {
        name: COMPONENT.into(),
        image: Some(values.image.reference()),
        image_pull_policy: Some(values.image.pull_policy.clone()),
        args: Some(args(values)),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: e.port.into(),
            ..Default::default()
        }]),
        liveness_probe: Some(http_probe("/healthz", e.port, 10)),
        readiness_probe: Some(http_probe("/healthz", e.port, 5)),
        resources: Some(e.resources.clone()),
        security_context: Some(SecurityContext {
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![mount("credentials", SECRET_DIR, true)]),
        ..Default::default()
    };
    Deployment {
        metadata: release.meta(release.name_of(COMPONENT), true, COMPONENT),
        spec: DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(release.selector(COMPONENT)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(release.selector(COMPONENT)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    image_pull_secrets: (!values.image_pull_secrets.is_empty())
                        .then(|| values.image_pull_secrets.clone()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(USER),
                        run_as_group: Some(USER),
                        fs_group: Some(USER),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    containers: vec![container],
                    volumes: Some(vec![Volume {
                        name: "credentials".into(),
                        secret: Some(SecretVolumeSource {
                            secret_name: Some(e.secret_name.clone()),
                            // 0440: the group (fsGroup) reads, nobody else.
                            default_mode: Some(0o440),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The Service Alertmanager posts to: `http://<name>.<namespace>.svc:<port>/api/v1/alertmanager`.
pub fn service(values: &Values, release: &Release) -> Service {
    let port = values.explainer.port;
    Service {
        metadata: release.meta(release.name_of(COMPONENT), true, COMPONENT),
        spec: Some(ServiceSpec {
            selector: Some(release.selector(COMPONENT)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: port.into(),
                target_port: Some(IntOrString::Int(port.into())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
