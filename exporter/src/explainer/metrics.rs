//! The explainer's own metrics (`egressor_explainer_*`): notifications received, duplicates
//! and rejections, explanations produced, Prometheus queries, Claude requests (by result,
//! latency, tokens) and Slack posts.

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use super::{
    Explainer,
    claude::{ClaudeError, Reply},
    context::{Answer, Facts},
    webhook::Status,
};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TokenLabels {
    r#type: &'static str,
}

fn latency() -> Histogram {
    // 0.25 s to 64 s.
    Histogram::new(exponential_buckets(0.25, 2.0, 9))
}

/// The counters, registered once.
pub(super) struct Metrics {
    registry: Registry,
    received: Family<StatusLabels, Counter>,
    duplicates: Counter,
    rejected: Family<ReasonLabels, Counter>,
    explanations: Family<SourceLabels, Counter>,
    queries: Family<ResultLabels, Counter>,
    slack: Family<ResultLabels, Counter>,
    claude: Family<ResultLabels, Counter>,
    claude_seconds: Histogram,
    tokens: Family<TokenLabels, Counter>,
    fallbacks: Family<ReasonLabels, Counter>,
    questions: Family<ResultLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut root = Registry::default();
        root.register_collector(Box::new(crate::process::ProcessCollector));
        let registry = root.sub_registry_with_prefix("egressor_explainer");
        let m = Self {
            registry: Registry::default(),
            received: Family::default(),
            duplicates: Counter::default(),
            rejected: Family::default(),
            explanations: Family::default(),
            queries: Family::default(),
            slack: Family::default(),
            claude: Family::default(),
            claude_seconds: latency(),
            tokens: Family::default(),
            fallbacks: Family::default(),
            questions: Family::default(),
        };
        registry.register(
            "notifications",
            "Alertmanager notifications taken, by group status",
            m.received.clone(),
        );
        registry.register(
            "notifications_duplicate",
            "Notifications dropped as already seen within --dedupe.ttl (retries, HA peers)",
            m.duplicates.clone(),
        );
        registry.register(
            "notifications_rejected",
            "Webhook requests refused, by reason (unauthorized, malformed)",
            m.rejected.clone(),
        );
        registry.register(
            "explanations",
            "Explanations produced, by source (deterministic summary, or the model)",
            m.explanations.clone(),
        );
        registry.register(
            "prometheus_queries",
            "Context queries to Prometheus, by result (data, empty, failed)",
            m.queries.clone(),
        );
        registry.register("slack_posts", "Slack posts, by result (ok, failed)", m.slack.clone());
        registry.register(
            "claude_requests",
            "Requests to the Anthropic Messages API, each attempt, by result (ok, rate_limited, \
             overloaded, server_error, timeout, unreachable, malformed, spend_limit, refused)",
            m.claude.clone(),
        );
        registry.register_with_unit(
            "claude_request_duration",
            "Time of one request to the Anthropic Messages API",
            prometheus_client::registry::Unit::Seconds,
            m.claude_seconds.clone(),
        );
        registry.register(
            "explanation_fallbacks",
            "Notifications posted with the deterministic summary alone, by reason (no_api_key, \
             empty_reply, or the last Claude error: rate_limited, overloaded, timeout, …)",
            m.fallbacks.clone(),
        );
        registry.register(
            "questions",
            "Questions to POST /api/v1/ask, by result (answered, failed)",
            m.questions.clone(),
        );
        registry.register(
            "claude_tokens",
            "Tokens the model's replies reported, by type (input, output, cache_read, cache_creation)",
            m.tokens.clone(),
        );
        Self { registry: root, ..m }
    }
}

impl Metrics {
    pub(super) fn received(&self, status: Status) {
        self.received.get_or_create(&StatusLabels { status: status.as_str() }).inc();
    }

    pub(super) fn duplicate(&self) {
        self.duplicates.inc();
    }

    pub(super) fn rejected(&self, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub(super) fn explained(&self, source: &'static str) {
        self.explanations.get_or_create(&SourceLabels { source }).inc();
    }

    pub(super) fn queries(&self, facts: &Facts) {
        let answers = [
            &facts.expression,
            &facts.egress_now,
            &facts.egress_day_ago,
            &facts.baseline,
            &facts.new_destinations,
            &facts.new_destination_names,
            &facts.cost_per_day,
            &facts.destinations,
        ];
        for answer in answers.into_iter().flatten() {
            let result = match answer {
                Answer::Rows(rows) if rows.is_empty() => "empty",
                Answer::Rows(_) => "data",
                Answer::Failed(_) => "failed",
            };
            self.queries.get_or_create(&ResultLabels { result }).inc();
        }
    }

    pub(super) fn claude_attempt(
        &self,
        outcome: Result<&Reply, &ClaudeError>,
        took: std::time::Duration,
    ) {
        self.claude_seconds.observe(took.as_secs_f64());
        let result = match outcome {
            Ok(reply) => {
                let u = reply.usage;
                for (r#type, n) in [
                    ("input", u.input_tokens),
                    ("output", u.output_tokens),
                    ("cache_read", u.cache_read_input_tokens),
                    ("cache_creation", u.cache_creation_input_tokens),
                ] {
                    self.tokens.get_or_create(&TokenLabels { r#type }).inc_by(n);
                }
                "ok"
            }
            Err(e) => e.kind(),
        };
        self.claude.get_or_create(&ResultLabels { result }).inc();
    }

    pub(super) fn fallback(&self, reason: &'static str) {
        self.fallbacks.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub(super) fn asked(&self, ok: bool) {
        let result = if ok { "answered" } else { "failed" };
        self.questions.get_or_create(&ResultLabels { result }).inc();
    }

    pub(super) fn posted(&self, ok: bool) {
        self.slack.get_or_create(&ResultLabels { result: if ok { "ok" } else { "failed" } }).inc();
    }
}

/// `GET /metrics`: the classic text format.
pub(super) async fn serve(State(ex): State<Explainer>) -> Response {
    let mut text = String::new();
    if let Err(e) = encode(&mut text, &ex.metrics.registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    ([(header::CONTENT_TYPE, crate::http::OPENMETRICS_CONTENT_TYPE)], text).into_response()
}
