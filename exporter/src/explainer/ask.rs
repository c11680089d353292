//! `egressor ask` and `POST /api/v1/ask`: a free-form question answered by Claude with a
//! bounded tool-use loop over Prometheus' HTTP API
//! (<https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/overview>). Tools: an
//! instant query, a range query over the last `range` (each series summarised: points,
//! min, max, mean, last) and a label's values. Every result is cut to `max_rows` rows (the
//! model is told how many were left out), an empty result is reported as a fact ("no
//! data"), a failed query as a tool error the model can correct. After `max_tool_calls`
//! calls the model must answer (`tool_choice: none`); the answer ends with the queries that
//! were run. Questions and tool results pass through the [`Redaction`] before they leave;
//! the answer comes back with the real names.

use std::{fmt::Write, time::Duration};

use serde_json::{Value, json};

use super::{
    claude::{Block, Claude, ClaudeError, Reply},
    context::Prometheus,
    redact::Redaction,
    summary::significant,
};

/// The instructions, identical across requests (cached).
pub const SYSTEM: &str = "\
You answer questions about network egress and its cost, using the tools to query the \
Prometheus that stores egressor's metrics. egressor counts bytes per flow in the kernel and \
prices them with the cloud's data-transfer price sheet.

Metrics (counters; use rate() or increase()):
- egressor_flow_bytes_total, egressor_flow_packets_total: bytes and packets by workload, \
namespace, direction (egress, ingress), traffic_class (same-host, same-zone, cross-zone, \
cross-region, internet, cloud-service, private, unknown), egress_path (direct, nat_gateway, \
vpc_endpoint, transit_gateway), remote (a destination's workload, network or DNS name), \
remote_service (S3, DYNAMODB, …), remote_region, remote_zone.
- egressor_flow_cost_usd_total: USD by the same labels; egressor_flow_avoidable_cost_usd_total: \
USD a gateway VPC endpoint would save.
- Recording rules: namespace_workload:egressor_egress_bytes:rate5m, \
namespace_workload:egressor_flow_cost_usd:rate5m and their 1h/1d variants.

Rules: query before you answer; prefer few, aggregated queries (sum by (...), topk). \
Results are cut to a row limit and say how many rows were left out. \"no data\" means the \
query matched nothing: a fact, not a failure. Use only numbers the tools returned; never \
invent one. Values such as [address-2] or pod-1a2b3c4d are placeholders for redacted \
addresses and pod names. Answer in at most 12 sentences, with the numbers and their units \
(bytes per second, USD per day), and say which queries the answer rests on.";

/// The tools' definitions.
pub fn tools() -> Vec<Value> {
    vec![
        json!({
            "name": "instant_query",
            "description": "Run a PromQL instant query now. Returns at most the row limit of \
                series (labels and value), largest first, and how many were left out.",
            "input_schema": {"type": "object", "properties": {
                "expr": {"type": "string", "description": "PromQL expression"}},
                "required": ["expr"]},
        }),
        json!({
            "name": "range_query",
            "description": "Run a PromQL range query over the last `range` at `step`. Each \
                series comes back summarised: points, min, max, mean and last value.",
            "input_schema": {"type": "object", "properties": {
                "expr": {"type": "string", "description": "PromQL expression"},
                "range": {"type": "string", "description": "how far back, e.g. 6h, 2d, 1w"},
                "step": {"type": "string", "description": "resolution, e.g. 5m, 1h"}},
                "required": ["expr", "range", "step"]},
        }),
        json!({
            "name": "label_values",
            "description": "List the values of a label (e.g. workload, namespace, \
                traffic_class), optionally only on series matching a selector.",
            "input_schema": {"type": "object", "properties": {
                "label": {"type": "string"},
                "match": {"type": "string", "description": "series selector, e.g. egressor_flow_bytes_total{namespace=\"shop\"}"}},
                "required": ["label"]},
        }),
    ]
}

/// Bounds of the loop.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most tool calls.
    pub max_tool_calls: usize,
    /// Most rows of one result.
    pub max_rows: usize,
}

/// The answer to a question.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Answer {
    /// The model's answer, names restored, followed by the queries run.
    pub answer: String,
    /// The queries run, in order (`instant_query: sum(…)`).
    pub queries: Vec<String>,
    /// Tool calls made.
    pub tool_calls: usize,
    /// Whether the loop stopped at `max_tool_calls`.
    pub stopped_at_limit: bool,
}

/// Answers `question`.
///
/// # Errors
/// The model's [`ClaudeError`] (Prometheus failures are results the model sees).
pub async fn ask(
    question: &str,
    claude: &Claude,
    prometheus: &Prometheus,
    limits: Limits,
    redaction: &mut Redaction,
    mut observe: impl FnMut(Result<&Reply, &ClaudeError>, Duration),
) -> Result<Answer, ClaudeError> {
    let now = time::OffsetDateTime::now_utc();
    let mut messages = vec![json!({"role": "user", "content": [{"type": "text", "text":
        redaction.apply(&format!("{question}\n\n(Now: Unix time {}.)", now.unix_timestamp()))}]})];
    let tools = tools();
    let mut queries = Vec::new();
    let mut calls = 0;
    loop {
        let at_limit = calls >= limits.max_tool_calls;
        let body = claude.body(SYSTEM, &messages, &tools, at_limit);
        let reply = claude.send(&body, &mut observe).await?;
        let uses: Vec<(&str, &str, &Value)> = reply
            .content
            .iter()
            .filter_map(|b| match b {
                Block::ToolUse { id, name, input } => Some((id.as_str(), name.as_str(), input)),
                _ => None,
            })
            .collect();
        if uses.is_empty() || at_limit {
            let mut answer = redaction.restore(reply.text().trim());
            if at_limit {
                let _ = write!(
                    answer,
                    "\n\n(Stopped at the limit of {} tool calls.)",
                    limits.max_tool_calls
                );
            }
            if !queries.is_empty() {
                answer.push_str("\n\nQueries run:");
                for q in &queries {
                    let _ = write!(answer, "\n- {q}");
                }
            }
            return Ok(Answer { answer, queries, tool_calls: calls, stopped_at_limit: at_limit });
        }
        let mut results = Vec::new();
        for (id, name, input) in uses {
            let (text, is_error) = if calls < limits.max_tool_calls {
                calls += 1;
                let (cited, outcome) =
                    run_tool(prometheus, name, input, limits.max_rows, redaction).await;
                if let Some(cited) = cited {
                    queries.push(cited);
                }
                match outcome {
                    Ok(text) => (text, false),
                    Err(text) => (text, true),
                }
            } else {
                (
                    format!(
                        "not run: the limit of {} tool calls is reached; answer now",
                        limits.max_tool_calls
                    ),
                    true,
                )
            };
            results.push(json!({"type": "tool_result", "tool_use_id": id,
                "content": redaction.apply(&text), "is_error": is_error}));
        }
        messages.push(json!({"role": "assistant", "content": reply.raw_content}));
        messages.push(json!({"role": "user", "content": results}));
    }
}

fn string<'a>(input: &'a Value, key: &str) -> Result<&'a str, String> {
    input[key]
        .as_str()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| format!("`{key}` is missing"))
}

/// Runs one tool: the query as cited, and its result text (or the error the model sees).
async fn run_tool(
    prometheus: &Prometheus,
    name: &str,
    input: &Value,
    max_rows: usize,
    redaction: &Redaction,
) -> (Option<String>, Result<String, String>) {
    // The model may use placeholders in a query: they mean the real names.
    let restored = |s: &str| redaction.restore(s);
    match name {
        "instant_query" => {
            let expr = match string(input, "expr") {
                Ok(e) => restored(e),
                Err(e) => return (None, Err(e)),
            };
            let result =
                prometheus.api("query", &[("query", &expr)]).await.map(|d| vector(&d, max_rows));
            (Some(format!("instant_query: {expr}")), result)
        }
        "range_query" => {
            let (expr, range, step) =
                match (string(input, "expr"), string(input, "range"), string(input, "step")) {
                    (Ok(e), Ok(r), Ok(s)) => (restored(e), r.to_owned(), s.to_owned()),
                    (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return (None, Err(e)),
                };
            let cited = Some(format!("range_query over {range} at {step}: {expr}"));
            let (Ok(range_d), Ok(step_d)) =
                (humantime::parse_duration(&range), humantime::parse_duration(&step))
            else {
                return (
                    cited,
                    Err(format!(
                        "`range` {range:?} and `step` {step:?} must be durations such as 6h or 5m"
                    )),
                );
            };
            if step_d.is_zero() || range_d.as_secs_f64() / step_d.as_secs_f64() > 11_000.0 {
                return (cited, Err("at most 11,000 points per series: use a longer step".into()));
            }
            let end = time::OffsetDateTime::now_utc().unix_timestamp();
            let start = (end - range_d.as_secs() as i64).to_string();
            let (end, step) = (end.to_string(), step_d.as_secs_f64().to_string());
            let result = prometheus
                .api(
                    "query_range",
                    &[("query", &expr), ("start", &start), ("end", &end), ("step", &step)],
                )
                .await
                .map(|d| matrix(&d, max_rows));
            (cited, result)
        }
        "label_values" => {
            let label = match string(input, "label") {
                Ok(l) => l.to_owned(),
                Err(e) => return (None, Err(e)),
            };
            let selector = input["match"].as_str().map(restored);
            let mut params = Vec::new();
            if let Some(m) = &selector {
                params.push(("match[]", m.as_str()));
            }
            let cited = match &selector {
                Some(m) => format!("label_values: {label} on {m}"),
                None => format!("label_values: {label}"),
            };
            let result = prometheus.api(&format!("label/{label}/values"), &params).await.map(|d| {
                let values: Vec<&str> =
                    d.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                bounded(values.iter().map(|v| v.to_string()).collect(), max_rows, "values")
            });
            (Some(cited), result)
        }
        other => (None, Err(format!("no tool named {other:?}"))),
    }
}

/// `rows` cut to `max_rows`, with the count of the rest; "no data" when empty.
fn bounded(rows: Vec<String>, max_rows: usize, what: &str) -> String {
    if rows.is_empty() {
        return "no data: nothing matched (a fact, not an error)".into();
    }
    let total = rows.len();
    let mut out: Vec<String> = rows.into_iter().take(max_rows).collect();
    if total > max_rows {
        out.push(format!("({} more {what} not shown; {total} in all)", total - max_rows));
    }
    out.join("\n")
}

fn labels(metric: &Value) -> String {
    let pairs: Vec<String> = metric
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or_default()))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

fn number(v: &Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
}

/// An instant query's result (vector or scalar), largest first.
fn vector(data: &Value, max_rows: usize) -> String {
    if data["resultType"] == "scalar" || data["resultType"] == "string" {
        return format!("{}", data["result"][1]);
    }
    let mut rows: Vec<(f64, String)> = data["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (number(&r["value"][1]), labels(&r["metric"])))
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    bounded(
        rows.into_iter().map(|(v, l)| format!("{l} {}", significant(v))).collect(),
        max_rows,
        "series",
    )
}

/// A range query's result: each series summarised, largest last value first.
fn matrix(data: &Value, max_rows: usize) -> String {
    let mut rows: Vec<(f64, String)> = data["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let points: Vec<f64> =
                r["values"].as_array().into_iter().flatten().map(|p| number(&p[1])).collect();
            let last = points.last().copied().unwrap_or(f64::NAN);
            let min = points.iter().copied().fold(f64::INFINITY, f64::min);
            let max = points.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mean = points.iter().sum::<f64>() / points.len().max(1) as f64;
            let text = format!(
                "{} points={} min={} max={} mean={} last={}",
                labels(&r["metric"]),
                points.len(),
                significant(min),
                significant(max),
                significant(mean),
                significant(last)
            );
            (last, text)
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    bounded(rows.into_iter().map(|(_, t)| t).collect(), max_rows, "series")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_cut_to_the_row_limit_and_empty_is_a_fact() {
        let data = json!({"resultType": "vector", "result": (0..30).map(|i| json!(
            {"metric": {"workload": format!("w{i}")}, "value": [0, format!("{i}")]})).collect::<Vec<_>>()});
        let text = vector(&data, 3);
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(
            text.starts_with("{workload=\"w29\"} 29")
                && text.ends_with("(27 more series not shown; 30 in all)")
        );
        assert!(vector(&json!({"resultType": "vector", "result": []}), 3).starts_with("no data"));
        let m = json!({"resultType": "matrix", "result": [{"metric": {"a": "b"}, "values": [[0, "1"], [60, "3"]]}]});
        assert_eq!(matrix(&m, 3), "{a=\"b\"} points=2 min=1 max=3 mean=2 last=3");
    }
}
