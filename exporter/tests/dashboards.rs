//! The Grafana dashboards in `grafana/`: generated from the committed values (a test fails when
//! they are stale), every PromQL expression parses (promql-parser, after substituting
//! Grafana's variables) and names only metrics of the metrics reference (docs/metrics.md) or
//! recording rules of the bundle, every panel has a unit and reads the templated data source.

use std::{collections::BTreeSet, path::Path};

use egressor::{
    dashboards::{SCHEMA_VERSION, configmaps, expressions, render, to_json},
    rules::Values,
};
use promql_parser::{
    parser::{Expr, parse},
    util::{ExprVisitor, walk_expr},
};
use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn committed() -> Vec<(String, Value)> {
    render(&Values::default())
        .iter()
        .map(|d| {
            let path = repo().join("grafana/dashboards").join(d.file);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (d.file.to_owned(), serde_json::from_str(&text).expect(d.file))
        })
        .collect()
}

#[test]
fn committed_dashboards_are_generated_from_the_committed_values() {
    let values = Values::load(&repo().join("alerts/values.yaml")).unwrap();
    let dashboards = render(&values);
    let stale = "is stale: run `egressor dashboards --values alerts/values.yaml --out grafana`";
    for d in &dashboards {
        let path = repo().join("grafana/dashboards").join(d.file);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(text == to_json(&d.json), "{} {stale}", path.display());
    }
    let maps = std::fs::read_to_string(repo().join("grafana/dashboards.configmap.yaml"))
        .unwrap_or_default();
    assert!(maps == configmaps(&dashboards), "grafana/dashboards.configmap.yaml {stale}");
    // The ConfigMaps carry the same JSON, under the sidecar's label.
    let docs: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(&maps)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs.len(), dashboards.len());
    for (doc, d) in docs.iter().zip(&dashboards) {
        assert_eq!(doc["metadata"]["labels"]["grafana_dashboard"].as_str(), Some("1"));
        let json: Value = serde_json::from_str(doc["data"][d.file].as_str().unwrap()).unwrap();
        assert_eq!(json, d.json, "{}", d.file);
    }
}

/// Metric names the reference documents (first column of its tables), histograms with their
/// `_bucket`, `_sum` and `_count` series.
fn reference() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join("docs/metrics.md")).unwrap();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("| `") else { continue };
        let Some((name, rest)) = rest.split_once('`') else { continue };
        if rest.contains("histogram") {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
        names.insert(name.to_owned());
    }
    names
}

fn recording_rules() -> BTreeSet<String> {
    std::fs::read_to_string(repo().join("alerts/egressor.rules.yml"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record: ").map(str::to_owned))
        .collect()
}

/// Metric names a PromQL expression selects.
struct Selected(Vec<String>);

impl ExprVisitor for Selected {
    type Error = ();
    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, ()> {
        match expr {
            Expr::VectorSelector(vs) => self.0.extend(vs.name.clone()),
            Expr::MatrixSelector(ms) => self.0.extend(ms.vs.name.clone()),
            _ => {}
        }
        Ok(true)
    }
}

/// `expr` as Prometheus receives it from Grafana, with test values for the variables.
fn substituted(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "1h")
        .replace("$__interval", "1m")
        .replace("$hook", "cgroup")
        .replace("$namespace", ".*")
        .replace("$workload", ".*")
        .replace("$instance", ".*")
}

#[test]
fn every_query_parses_and_names_documented_metrics_or_recording_rules() {
    let known: BTreeSet<String> = reference()
        .into_iter()
        .chain(recording_rules())
        .chain(["up".into(), "ALERTS".into()])
        .collect();
    assert!(known.contains("egressor_flow_bytes_total") && known.len() > 50, "{known:?}");
    let mut used = BTreeSet::new();
    for (file, dashboard) in committed() {
        let exprs = expressions(&dashboard);
        assert!(exprs.len() >= 5, "{file}: {exprs:?}");
        for expr in exprs {
            assert!(!expr.contains('$') || expr.contains("$1") || substituted(&expr) != expr);
            let ast = parse(&substituted(&expr)).unwrap_or_else(|e| panic!("{file}: {e}\n{expr}"));
            let mut names = Selected(Vec::new());
            walk_expr(&mut names, &ast).unwrap();
            assert!(!names.0.is_empty(), "{file}: selects nothing: {expr}");
            for name in names.0 {
                assert!(known.contains(&name), "{file}: {name} is no documented metric: {expr}");
                used.insert(name);
            }
        }
    }
    // The dashboards read the baselines of the bundle, not just the raw counters.
    for name in [
        "namespace_workload:egressor_egress_bytes:rate5m:avg_over_time_1d",
        "namespace_workload:egressor_egress_bytes:rate5m:max_over_time_1h_offset_1w",
        "process_resident_memory_bytes",
        // Inside histogram_quantile(…(sum(rate(…)))): the walk reaches nested selectors.
        "egressor_read_cycle_duration_seconds_bucket",
    ] {
        assert!(used.contains(name), "{name} unused");
    }
}

#[test]
fn every_panel_has_a_unit_and_reads_the_templated_data_source() {
    let templated = serde_json::json!({"type": "prometheus", "uid": "${datasource}"});
    for (file, d) in committed() {
        assert!(d["schemaVersion"].as_u64() >= Some(SCHEMA_VERSION) && SCHEMA_VERSION >= 39);
        assert!(d["uid"].as_str().is_some_and(|u| u.starts_with("egressor-")), "{file}");
        let vars = d["templating"]["list"].as_array().unwrap();
        let var = |name: &str| vars.iter().find(|v| v["name"] == name);
        let ds = var("datasource").unwrap_or_else(|| panic!("{file}: no datasource variable"));
        assert_eq!(
            (ds["type"].as_str(), ds["query"].as_str()),
            (Some("datasource"), Some("prometheus"))
        );
        for v in vars.iter().filter(|v| v["type"] == "query") {
            assert_eq!(v["datasource"], templated, "{file}: variable {}", v["name"]);
        }
        let scope: &[&str] =
            if file == "egressor-health.json" { &["instance"] } else { &["namespace", "workload"] };
        for name in scope {
            assert!(var(name).is_some(), "{file}: no ${name} variable");
        }
        let panels = d["panels"].as_array().unwrap();
        assert!(panels.len() >= 2, "{file}");
        let text = d.to_string();
        assert!(text.contains("$__rate_interval"), "{file}: no $__rate_interval");
        for p in panels {
            let title = p["title"].as_str().unwrap_or_default();
            assert_eq!(p["datasource"], templated, "{file}: {title}");
            let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or_default();
            assert!(!unit.is_empty(), "{file}: {title} has no unit");
            if p["type"] == "nodeGraph" {
                assert_eq!(p["options"]["edges"]["mainStatUnit"], "Bps", "{file}: {title}");
            }
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{file}: {title}");
            for t in targets {
                assert_eq!(t["datasource"], templated, "{file}: {title}");
            }
            for key in ["x", "y", "w", "h"] {
                assert!(p["gridPos"][key].is_u64(), "{file}: {title} gridPos");
            }
        }
    }
    // The service graph is a Node Graph with the edge fields it reads.
    let (_, graph) = committed().into_iter().find(|(f, _)| f == "egressor-graph.json").unwrap();
    let node_graph = &graph["panels"][0];
    assert_eq!(node_graph["type"], "nodeGraph");
    let exprs: Vec<&str> = node_graph["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    for expr in &exprs {
        for label in ["\"source\"", "\"target\"", "\"id\"", "\"color\""] {
            assert!(expr.contains(label), "node graph query lacks {label}: {expr}");
        }
    }
    let renamed = &node_graph["transformations"][1]["options"]["renameByName"];
    assert_eq!(
        (renamed["Value #edges"].as_str(), renamed["Value #thickness"].as_str()),
        (Some("mainstat"), Some("thickness"))
    );
}

#[test]
fn the_provisioning_file_is_a_file_provider_for_the_dashboards() {
    let text =
        std::fs::read_to_string(repo().join("grafana/provisioning/dashboards.yaml")).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    assert_eq!(doc["apiVersion"].as_u64(), Some(1));
    let provider = &doc["providers"][0];
    assert_eq!(provider["type"].as_str(), Some("file"));
    assert!(provider["options"]["path"].as_str().is_some_and(|p| p.starts_with('/')));
}
