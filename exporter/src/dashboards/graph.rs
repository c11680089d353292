//! Service traffic graph: a Node Graph panel of workload → workload or destination edges, edge
//! thickness by bytes, colour by traffic class, and the same edges as a table.

use serde_json::{Value, json};

use super::{FLOWS, dashboard, panel, table, workload_variables};
use crate::rules::Values;

/// Edge colours by traffic class (CSS colour names, as the Node Graph panel draws them): the
/// dearer the class, the warmer. Applied in order, so a later class wins.
const COLOURS: [(&str, &str); 5] = [
    ("same_host|same_zone|private", "green"),
    ("cloud_same_region", "blue"),
    ("cross_zone", "yellow"),
    ("cross_region|cloud_cross_region", "orange"),
    ("internet", "red"),
];

/// `inner` (a vector by namespace, workload, remote_namespace, remote, traffic_class) with the
/// Node Graph's edge labels: `source` (namespace/workload, or the workload alone off
/// Kubernetes), `target` (the remote pod's namespace/workload, the remote's name, else its
/// traffic class), `color`, and `id` (source → target (class)).
fn edges(inner: &str) -> String {
    let mut e = format!(
        "label_join(label_join({inner}, \"source\", \"/\", \"namespace\", \"workload\"), \"peer\", \"/\", \"remote_namespace\", \"remote\")"
    );
    // "/nginx.service" (no namespace) → "nginx.service"; "shop/api" stays.
    e = format!("label_replace({e}, \"source\", \"$1\", \"source\", \"/(.*)\")");
    e = format!("label_replace({e}, \"target\", \"$1\", \"traffic_class\", \"(.*)\")");
    e = format!("label_replace({e}, \"target\", \"$1\", \"peer\", \"/(.+)\")");
    e = format!("label_replace({e}, \"target\", \"$1\", \"peer\", \"([^/]+/.+)\")");
    e = format!("label_replace({e}, \"color\", \"gray\", \"traffic_class\", \".*\")");
    for (classes, colour) in COLOURS {
        e = format!(
            "label_replace({e}, \"color\", \"{colour}\", \"traffic_class\", \"{classes}\")"
        );
    }
    format!("label_join({e}, \"id\", \" → \", \"source\", \"target\", \"traffic_class\")")
}

pub(super) fn build(_values: &Values) -> Value {
    let bytes = format!(
        "sum by (namespace, workload, remote_namespace, remote, traffic_class) (rate(egressor_flow_bytes_total{{{FLOWS},direction=\"egress\"}}[$__rate_interval]))"
    );
    // Edges of the node graph: refId "edges" (the panel finds its frame by it), the rate as
    // `mainstat`, a thickness of 1–8 px growing with log10 of the rate (1 kB/s → 1, 1 GB/s → 7).
    let mut graph = panel(
        "nodeGraph",
        "Egress: workload → destination",
        "Edges from each workload to the workloads and destinations it sends to, as thick as \
         log10 of the bytes per second, coloured by traffic class (red internet, orange \
         cross-region, yellow cross-zone, blue same-region cloud services, green local and \
         private, gray unknown).",
        "Bps",
        vec![table(edges(&bytes)), table(edges(&format!("clamp(log10({bytes}) - 2, 1, 8)")))],
    )
    .size(24, 16);
    graph.json["targets"][0]["refId"] = json!("edges");
    graph.json["targets"][1]["refId"] = json!("thickness");
    graph.json["options"] = json!({
        "edges": {"mainStatUnit": "Bps"},
        "nodes": {"mainStatUnit": "Bps"},
    });
    graph.json["transformations"] = json!([
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {
            "excludeByName": {"Time": true, "namespace": true, "workload": true,
                "remote_namespace": true, "remote": true, "peer": true},
            "renameByName": {"Value #edges": "mainstat", "Value #thickness": "thickness",
                "traffic_class": "detail__traffic_class"},
        }},
    ]);
    let list = panel(
        "table",
        "Edges",
        "The graph's edges: bytes per second from each workload to each destination.",
        "Bps",
        vec![table(format!("sort_desc({bytes})"))],
    )
    .size(24, 10);
    dashboard(
        "egressor-graph",
        "egressor / Service traffic graph",
        "Which workload sends to which workload or destination, how much, and in which traffic \
         class.",
        workload_variables(true),
        vec![graph, list],
    )
}
