//! `deploy/kubernetes/egressor.yaml` and `prometheus-operator.yaml` are `egressor manifests`'
//! output for the chart's default values (stale fails), pass
//! `kubernetes-validate --strict` (PyPI; the Kubernetes 1.37 OpenAPI schemas, unknown
//! fields rejected; `scripts/setup.sh` installs it) while a copy with one wrong field does
//! not, and holds what the module promises: capabilities exactly BPF, PERFMON, NET_ADMIN
//! and DAC_READ_SEARCH, read-only roots, read-only RBAC on the kinds the agent watches, no
//! Secret, a non-root explainer.

mod support;

use std::path::{Path, PathBuf};

use egressor::manifests::{Part, Release, Values, render};
use serde_yaml_ng::Value;

fn committed(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes").join(file)
}

/// `egressor manifests --part PART` for the chart's defaults.
fn defaults(part: Part) -> String {
    let values = Values::load(&[] as &[&str]).expect("the chart's values.yaml loads");
    render(&values, &Release::default(), part).unwrap()
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML document"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn the_committed_manifests_are_the_generated_ones() {
    for (file, part, flag) in [
        ("egressor.yaml", Part::Core, "core"),
        ("prometheus-operator.yaml", Part::Monitoring, "monitoring"),
    ] {
        let have = std::fs::read_to_string(committed(file)).unwrap_or_default();
        assert!(
            have == defaults(part),
            "deploy/kubernetes/{file} is stale: run \
             `cargo run -p egressor -- manifests --part {flag} > deploy/kubernetes/{file}`"
        );
    }
}

fn validate(validator: &Path, yaml: &str) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("egressor-manifests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("m{}.yaml", yaml.len()));
    std::fs::write(&file, yaml).unwrap();
    let result = support::validate(validator, &file);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[test]
fn the_manifests_validate_against_the_kubernetes_schemas() {
    let Some(validator) = support::validator() else {
        let why = "kubernetes-validate is not installed (scripts/setup.sh installs it)";
        assert!(std::env::var("EGRESSOR_REQUIRE_BPF").as_deref() != Ok("1"), "{why}");
        eprintln!("skipped: {why}");
        return;
    };
    let yaml = defaults(Part::All);
    let (ok, text) = validate(&validator, &yaml);
    assert!(ok, "{text}");
    assert_eq!(text.matches("passed for resource").count(), documents(&yaml).len(), "{text}");
    // The validator is live: a misspelt field and a wrong type are refused.
    for (good, bad) in [
        ("hostNetwork: true", "hostNetwork: yes-please"),
        ("readOnlyRootFilesystem: true", "readOnlyRootFilesystm: true"),
        // The prometheus-operator CRD schemas too (scripts/crd-schemas.py).
        ("targetLabel: node", "targetLabl: node"),
        ("kind: PrometheusRule\nmetadata:", "kind: PrometheusRule\nmetadta:"),
    ] {
        assert!(yaml.contains(good), "{good}");
        let (ok, text) = validate(&validator, &yaml.replacen(good, bad, 1));
        assert!(!ok, "{bad} passed: {text}");
    }
}

#[test]
fn the_agent_gets_only_what_it_needs() {
    let docs = documents(&defaults(Part::All));
    assert!(docs.iter().all(|d| d["kind"] != "Secret"), "a Secret in the output");
    let agent = find(&docs, "DaemonSet", "egressor-agent");
    let pod = &agent["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], Value::Bool(false));
    assert_eq!(pod["tolerations"][0]["operator"], "Exists");
    assert_eq!(agent["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"], 1);
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(
        security["capabilities"]["drop"],
        serde_yaml_ng::from_str::<Value>("[ALL]").unwrap()
    );
    assert_eq!(
        security["capabilities"]["add"],
        serde_yaml_ng::from_str::<Value>("[BPF, PERFMON, NET_ADMIN, DAC_READ_SEARCH]").unwrap()
    );
    assert_eq!(security["readOnlyRootFilesystem"], Value::Bool(true));
    assert_eq!(security["allowPrivilegeEscalation"], Value::Bool(false));
    assert_eq!(container["env"][0]["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");

    let role = find(&docs, "ClusterRole", "egressor-agent");
    let mut kinds = Vec::new();
    for rule in role["rules"].as_sequence().unwrap() {
        assert_eq!(rule["verbs"], serde_yaml_ng::from_str::<Value>("[get, list, watch]").unwrap());
        kinds.extend(
            rule["resources"].as_sequence().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()),
        );
    }
    kinds.sort();
    assert_eq!(
        kinds,
        ["endpointslices", "jobs", "namespaces", "nodes", "pods", "replicasets", "services"]
    );

    let explainer = find(&docs, "Deployment", "egressor-explainer");
    let pod = &explainer["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true));
    assert!(pod["containers"][0]["securityContext"]["capabilities"]["add"].is_null());
    assert!(
        pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .all(|v| v["secret"]["secretName"] == "egressor-explainer")
    );
}
