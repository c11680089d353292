//! The explainer's own metrics (`egressor_explainer_*`): notifications received, duplicates
//! and rejections, explanations produced, Prometheus queries and Slack posts.

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use super::{
    Explainer,
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

/// The counters, registered once.
pub(super) struct Metrics {
    registry: Registry,
    received: Family<StatusLabels, Counter>,
    duplicates: Counter,
    rejected: Family<ReasonLabels, Counter>,
    explanations: Family<SourceLabels, Counter>,
    queries: Family<ResultLabels, Counter>,
    slack: Family<ResultLabels, Counter>,
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
