//! The Helm chart `deploy/helm/egressor` is a thin wrapper over `egressor manifests`: rendered
//! by `tests/helm/render.go` (a test-only `helm template` on Go's text/template and sprig,
//! the engine Helm uses; `scripts/setup.sh` installs Go and the libraries) for the default
//! values and for an override file touching every value, it gives the same objects as
//! `egressor manifests` for the same values (Helm's own labels and the namespace aside),
//! validates against the Kubernetes and prometheus-operator schemas, carries
//! `alerts/egressor.rules.yml` byte for byte, rejects the values `egressor manifests`
//! rejects, and its NOTES' Alertmanager receiver passes `amtool check-config` and routes every
//! bundled alert to the explainer's Service.

mod support;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use egressor::manifests::{Part, Release, Values, render};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> PathBuf {
    repo().join("deploy/helm/egressor")
}

fn required() -> bool {
    std::env::var("EGRESSOR_REQUIRE_BPF").as_deref() == Ok("1")
}

/// Skips the test with a printed reason, or fails it under `EGRESSOR_REQUIRE_BPF=1` (CI).
macro_rules! need {
    ($tool:expr, $why:expr) => {
        match $tool {
            Some(tool) => tool,
            None => {
                assert!(!required(), "{}", $why);
                eprintln!("skipped: {}", $why);
                return;
            }
        }
    };
}

/// The renderer, built once from `tests/helm/render.go` with Debian's Go packages (GOPATH
/// mode, offline).
fn renderer() -> Option<&'static Path> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("helm-render");
            std::fs::create_dir_all(&dir).ok()?;
            let binary = dir.join("render");
            let out = Command::new("go")
                .args(["build", "-o"])
                .arg(&binary)
                .arg(repo().join("tests/helm/render.go"))
                .env("GO111MODULE", "off")
                .env("GOPATH", "/usr/share/gocode")
                .env("GOCACHE", dir.join("cache"))
                .output()
                .ok()?;
            assert!(
                out.status.success(),
                "go build tests/helm/render.go: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(binary)
        })
        .as_deref()
}

const NO_RENDERER: &str =
    "Go is not installed, so the chart cannot be rendered (scripts/setup.sh installs golang-go)";

/// What `helm template --name RELEASE --namespace NS -f VALUES` would print, and NOTES.txt.
struct Rendered {
    objects: String,
    notes: String,
}

fn helm(render: &Path, release: &Release, values: Option<&Path>) -> Result<Rendered, String> {
    let dir = tempdir();
    let notes = dir.join("NOTES.txt");
    let mut command = Command::new(render);
    command
        .args(["--strict", "--name", &release.name, "--namespace", &release.namespace])
        .arg("--notes")
        .arg(&notes);
    if let Some(values) = values {
        command.arg("-f").arg(values);
    }
    let out = command.arg(chart()).output().expect("run the renderer");
    let result = if out.status.success() {
        Ok(Rendered {
            objects: String::from_utf8(out.stdout).expect("UTF-8 output"),
            notes: std::fs::read_to_string(&notes).unwrap_or_default(),
        })
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "egressor-helm-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).expect("a YAML document"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

type Objects = BTreeMap<(String, String, String), Value>;

/// Objects by (kind, namespace, name), made comparable: the agent's config checksum is checked
/// against its own ConfigMap and then blanked; config.yaml is compared parsed (Helm's toYaml
/// and serde_yaml_ng lay the same values out differently).
fn objects(yaml: &str, side: &str) -> Objects {
    let docs = documents(yaml);
    let config = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["data"]["config.yaml"].is_string())
        .map(|d| d["data"]["config.yaml"].as_str().unwrap().to_owned());
    docs.into_iter()
        .map(|mut doc| {
            let key = |f: &str| doc["metadata"][f].as_str().unwrap_or_default().to_owned();
            let key = (doc["kind"].as_str().unwrap().to_owned(), key("namespace"), key("name"));
            if key.0 == "DaemonSet" {
                let annotations = &mut doc["spec"]["template"]["metadata"]["annotations"];
                let sum = annotations["checksum/config"].as_str().expect("checksum/config");
                let text = config.as_deref().expect("the agent's ConfigMap");
                // Helm hashes the include; the block scalar in the ConfigMap adds a newline.
                let hashed = if side == "chart" { text.strip_suffix('\n').unwrap() } else { text };
                assert_eq!(sum, hex(&Sha256::digest(hashed)), "{side}: checksum/config");
                annotations["checksum/config"] = "<sha256 of config.yaml>".into();
            }
            if let Some(text) = doc["data"]["config.yaml"].as_str() {
                doc["data"]["config.yaml"] = serde_yaml_ng::from_str(text).expect("config.yaml");
            }
            (key, doc)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes the labels only Helm sets (managed-by, helm.sh/chart) after checking they are
/// there, so the rest compares one to one with `egressor manifests`.
fn without_helm_labels(mut objects: Objects) -> Objects {
    for (key, doc) in objects.iter_mut() {
        let labels = doc["metadata"]["labels"].as_object_mut().expect("labels");
        assert_eq!(labels.remove("app.kubernetes.io/managed-by"), Some("Helm".into()), "{key:?}");
        let chart = labels.remove("helm.sh/chart");
        assert_eq!(chart, Some(format!("egressor-{}", env!("CARGO_PKG_VERSION")).into()));
    }
    objects
}

/// `egressor manifests` for these values, without the Namespace (Helm's
/// `--create-namespace` makes it).
fn manifests(values: &Values, release: &Release) -> Objects {
    let mut objects = objects(&render(values, release, Part::All).unwrap(), "manifests");
    objects.retain(|(kind, _, _), _| kind != "Namespace");
    objects
}

fn assert_same(chart: &Objects, manifests: &Objects) {
    let keys = |o: &Objects| o.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        keys(chart),
        keys(manifests),
        "the chart and `egressor manifests` differ in objects"
    );
    for (key, want) in manifests {
        let have = &chart[key];
        assert!(
            have == want,
            "{key:?} differs:\nchart:\n{}\negressor manifests:\n{}",
            serde_yaml_ng::to_string(have).unwrap(),
            serde_yaml_ng::to_string(want).unwrap()
        );
    }
}

/// Values touching every knob: another release and namespace, image, secrets, agent flags,
/// config, labels, caps, no pins, optional objects off, the explainer's bot-token mode
/// without Claude, a rule file of one's own.
const OVERRIDES: &str = r#"
image: {repository: registry.example.com/platform/egressor, tag: "9.9.9", pullPolicy: Always}
imagePullSecrets: [{name: regcred}]
agent:
  port: 19100
  prices: gcp/europe-west1
  config:
    networks:
      - {cidr: 10.1.0.0/20, name: vpc-a, zone: use1-az1, region: us-east-1}
      - {cidr: 172.16.0.0/12, name: on-prem, path: transit_gateway}
    subnets:
      - {cidr: 10.1.0.0/20, egress: nat_gateway, gateway_endpoints: [S3]}
    cloud_ranges:
      refresh: 12h
      sources: [{provider: aws, file: /etc/egressor/ranges/ip-ranges.json}]
  kubernetes: {labels: [team, cost-center], versionLabel: version}
  limits: {flowMapEntries: 131072, series: 5000, remoteNamesTopK: 5, dnsCacheSize: 1000, destinationsMemory: 2000}
  apiAllow: [10.0.0.0/8, "fd12::/16"]
  readInterval: 15s
  logLevel: debug
  pinPath: ""
  extraArgs: [--hook=both, --interface=eth0]
  resources: {requests: {cpu: 100m, memory: 256Mi}, limits: {memory: 1Gi}}
  tolerations: [{key: dedicated, operator: Equal, value: egress, effect: NoSchedule}]
  nodeSelector: {kubernetes.io/os: linux}
  priorityClassName: ""
service: {scrapeAnnotations: false}
serviceMonitor: {enabled: false}
prometheusRule:
  labels: {prometheus: main}
  rules: |
    groups:
      - name: mine
        rules:
          - alert: MyEgressAlert
            expr: sum(rate(egressor_flow_bytes_total[5m])) > 1e9
dashboards: {namespace: grafana, labels: {grafana_dashboard: "1", team: platform}, annotations: {grafana_folder: egressor}}
explainer:
  port: 18000
  prometheusUrl: http://prometheus.monitoring.svc:9090
  secretName: egressor-slack
  slackChannel: C0123456789
  anthropicKey: false
  claudeModel: claude-sonnet-4-5
  redactPodNames: keep
  resources: {requests: {cpu: 20m, memory: 64Mi}, limits: {memory: 256Mi}}
"#;

#[test]
fn the_chart_renders_what_egressor_manifests_prints() {
    let render = need!(renderer(), NO_RENDERER);
    // The chart's defaults, installed the README's way.
    let release = Release::default();
    let have = helm(render, &release, None).expect("the chart renders with its defaults");
    let defaults = Values::load(&[] as &[&str]).unwrap();
    assert_same(
        &without_helm_labels(objects(&have.objects, "chart")),
        &manifests(&defaults, &release),
    );

    // Every value overridden, under another release name and namespace.
    let dir = tempdir();
    let file = dir.join("values.yaml");
    std::fs::write(&file, OVERRIDES).unwrap();
    let release = Release { name: "prod".into(), namespace: "observability".into() };
    let have = helm(render, &release, Some(&file));
    let values = Values::load(&[&file]);
    let _ = std::fs::remove_dir_all(&dir);
    let (have, values) = (have.expect("the chart renders the overrides"), values.unwrap());
    let chart = without_helm_labels(objects(&have.objects, "chart"));
    assert_same(&chart, &manifests(&values, &release));
    // The overrides took effect (a comparison of two renderers ignoring them would pass too).
    let agent = &chart[&("DaemonSet".into(), "observability".into(), "prod-egressor-agent".into())];
    let args = &agent["spec"]["template"]["spec"]["containers"][0]["args"];
    for arg in ["--prices=gcp/europe-west1", "--hook=both", "--kubernetes.labels=team,cost-center"]
    {
        assert!(args.as_array().unwrap().contains(&arg.into()), "{arg} not in {args}");
    }
    assert!(!args.to_string().contains("--bpf.pin-path"), "{args}");
    assert!(chart.keys().all(|(kind, _, _)| kind != "ServiceMonitor"));
    let rule = &chart[&("PrometheusRule".into(), "observability".into(), "prod-egressor".into())];
    assert_eq!(rule["spec"]["groups"][0]["rules"][0]["alert"], "MyEgressAlert");
    assert!(chart.contains_key(&(
        "ConfigMap".into(),
        "grafana".into(),
        "prod-egressor-cost-dashboard".into()
    )));
}

#[test]
fn the_chart_output_validates_against_the_schemas() {
    let render = need!(renderer(), NO_RENDERER);
    let validator = need!(
        support::validator(),
        "kubernetes-validate is not installed (scripts/setup.sh installs it)"
    );
    for values in [None, Some(OVERRIDES)] {
        let dir = tempdir();
        let file = dir.join("values.yaml");
        std::fs::write(&file, values.unwrap_or("{}")).unwrap();
        let rendered = helm(render, &Release::default(), Some(&file)).expect("renders");
        let out = dir.join("chart.yaml");
        std::fs::write(&out, &rendered.objects).unwrap();
        let (ok, text) = support::validate(&validator, &out);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(ok, "{text}");
        let docs = documents(&rendered.objects);
        assert_eq!(text.matches("passed for resource").count(), docs.len(), "{text}");
        let kinds: Vec<_> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert!(kinds.contains(&"PrometheusRule"), "{kinds:?}");
        if values.is_none() {
            assert!(kinds.contains(&"ServiceMonitor"), "{kinds:?}");
        }
    }
}

#[test]
fn the_prometheus_rule_carries_the_alerts_bundle_byte_for_byte() {
    let bundle = std::fs::read_to_string(repo().join("alerts/egressor.rules.yml")).unwrap();
    // The chart's copy (Helm reads files only inside the chart) is the bundle.
    let copy = std::fs::read_to_string(chart().join("files/egressor.rules.yml")).unwrap();
    assert!(
        copy == bundle,
        "deploy/helm/egressor/files/egressor.rules.yml is stale: copy alerts/egressor.rules.yml"
    );
    for entry in std::fs::read_dir(repo().join("grafana/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let copy = std::fs::read(chart().join("files/dashboards").join(&name)).unwrap_or_default();
        assert!(copy == std::fs::read(&path).unwrap(), "files/dashboards/{name} is stale");
    }
    let render = need!(renderer(), NO_RENDERER);
    let rendered = helm(render, &Release::default(), None).unwrap();
    // The PrometheusRule's spec is the rule file's text, indented under `spec:`.
    let source = rendered
        .objects
        .split("---\n")
        .find(|doc| doc.contains("kind: PrometheusRule"))
        .expect("a PrometheusRule");
    let spec = source.split_once("\nspec:\n").expect("spec:").1;
    let text: String =
        spec.lines().map(|line| format!("{}\n", line.strip_prefix("  ").unwrap_or(line))).collect();
    assert!(text == bundle, "the PrometheusRule's spec is not alerts/egressor.rules.yml:\n{text}");
}

#[test]
fn the_chart_version_is_the_binarys() {
    let meta: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(chart().join("Chart.yaml")).unwrap())
            .unwrap();
    assert_eq!(meta["appVersion"].as_str(), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(meta["version"].as_str(), Some(env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_values_fail_in_both_with_the_values_name() {
    let render = need!(renderer(), NO_RENDERER);
    for (values, names) in [
        ("explainer: {redactPodNames: sometimes}", "redactPodNames"),
        ("explainer: {secretName: \"\"}", "secretName"),
    ] {
        let dir = tempdir();
        let file = dir.join("values.yaml");
        std::fs::write(&file, values).unwrap();
        let chart = helm(render, &Release::default(), Some(&file));
        let manifests = Values::load(&[&file]);
        let _ = std::fs::remove_dir_all(&dir);
        let Err(chart) = chart else { panic!("the chart rendered {values}") };
        assert!(chart.contains(names), "chart error for {values}: {chart}");
        let Err(manifests) = manifests else { panic!("egressor manifests took {values}") };
        assert!(manifests.to_string().contains(names), "manifests error: {manifests}");
    }
}

/// NOTES' receiver snippet, merged into a minimal Alertmanager configuration, is what
/// Alertmanager 0.25 accepts and routes every bundled alert to the explainer's Service.
#[test]
fn the_notes_route_every_alert_to_the_explainer() {
    let render = need!(renderer(), NO_RENDERER);
    let amtool = need!(
        Command::new("amtool").arg("--version").output().ok().filter(|o| o.status.success()),
        "amtool is not installed (scripts/setup.sh installs prometheus-alertmanager)"
    );
    drop(amtool);
    let release = Release { name: "prod".into(), namespace: "observability".into() };
    let rendered = helm(render, &release, None).unwrap();
    let snippet = rendered
        .notes
        .split_once("# --- Alertmanager receiver (begin)\n")
        .and_then(|(_, rest)| rest.split_once("# --- Alertmanager receiver (end)"))
        .expect("the receiver snippet in NOTES")
        .0;
    let mut config: serde_yaml_ng::Value = serde_yaml_ng::from_str(snippet).expect("YAML snippet");
    config["route"]["receiver"] = "default".into();
    // A route of the user's own after ours: `continue: true` keeps it receiving the alerts.
    let routes = config["route"]["routes"].as_sequence_mut().unwrap();
    routes.push(serde_yaml_ng::from_str("receiver: team").unwrap());
    let receivers = config["receivers"].as_sequence_mut().unwrap();
    receivers.push(serde_yaml_ng::from_str("name: default").unwrap());
    receivers.push(serde_yaml_ng::from_str("name: team").unwrap());

    let objects = documents(&rendered.objects);
    let service = objects
        .iter()
        .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == "prod-egressor-explainer")
        .expect("the explainer's Service");
    let url = config["receivers"][0]["webhook_configs"][0]["url"].as_str().unwrap().to_owned();
    assert_eq!(
        url,
        format!(
            "http://prod-egressor-explainer.observability.svc:{}/api/v1/alertmanager",
            service["spec"]["ports"][0]["port"]
        )
    );

    let dir = tempdir();
    let file = dir.join("alertmanager.yml");
    // The token file the snippet names must exist for check-config.
    let yaml = serde_yaml_ng::to_string(&config).unwrap().replace(
        "/etc/alertmanager/secrets/egressor-explainer/alertmanager-token",
        dir.join("token").to_str().unwrap(),
    );
    std::fs::write(dir.join("token"), "secret\n").unwrap();
    std::fs::write(&file, &yaml).unwrap();
    let check = Command::new("amtool").args(["check-config"]).arg(&file).output().unwrap();
    let bundle: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo().join("alerts/egressor.rules.yml")).unwrap(),
    )
    .unwrap();
    let alerts: Vec<String> = bundle["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect();
    let routes: Vec<_> = alerts
        .iter()
        .chain(["SomeoneElsesAlert".to_owned()].iter())
        .map(|alert| {
            let out = Command::new("amtool")
                .args(["config", "routes", "test", "--config.file"])
                .arg(&file)
                .arg(format!("alertname={alert}"))
                .output()
                .unwrap();
            (alert.clone(), String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        check.status.success(),
        "amtool check-config:\n{yaml}\n{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert!(alerts.len() >= 10, "{alerts:?}");
    for (alert, receivers) in routes {
        let want = if alert == "SomeoneElsesAlert" { "team" } else { "egressor-explainer,team" };
        assert_eq!(receivers, want, "{alert}");
    }
}
