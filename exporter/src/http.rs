//! The HTTP surface: OpenMetrics on the telemetry path, `/healthz` (the process serves),
//! `/readyz` (programs attached and a first read cycle done) and a landing page. Responses
//! are gzip-compressed for clients that accept it (Prometheus does), as client_golang does.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tower_http::compression::CompressionLayer;

use crate::http_api::{self, ApiState};

/// Content type of the OpenMetrics text format, served to clients that accept it
/// (Prometheus asks for it).
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text format, served to every other client
/// (curl, `promtool check metrics`, older scrapers).
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The registry to encode on each scrape.
    pub registry: Arc<Registry>,
    /// Set once the programs are attached and the first read cycle has completed.
    pub ready: Arc<AtomicBool>,
    /// Path of the metrics (`--web.telemetry-path`).
    pub telemetry_path: String,
    /// The JSON API, when served.
    pub api: Option<ApiState>,
    /// Whether the telemetry path sits behind the API's guard (`--web.guard-metrics`).
    pub guard_metrics: bool,
}

/// The router: `telemetry_path`, `/healthz`, `/readyz`, `/`, and with an API state
/// `/api/v1/flows`, `/api/v1/summary` and `/api/v1/classify` behind the guard.
pub fn app(state: AppState) -> Router {
    let mut metrics_route = Router::new().route(&state.telemetry_path.clone(), get(metrics));
    let mut router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/", get(landing));
    if let Some(api) = state.api.clone() {
        let guard = axum::middleware::from_fn_with_state(api.guard.clone(), http_api::guard);
        if state.guard_metrics {
            metrics_route = metrics_route.layer(guard.clone());
        }
        let routes = Router::new()
            .route("/api/v1/flows", get(http_api::flows))
            .route("/api/v1/summary", get(http_api::summary))
            .route("/api/v1/classify", get(http_api::classify))
            .with_state(api)
            .layer(guard);
        router = router.merge(routes);
    }
    router.merge(metrics_route).with_state(state).layer(CompressionLayer::new().gzip(true))
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let mut body = String::with_capacity(64 * 1024);
    if let Err(e) = encode(&mut body, &state.registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics: {e}\n"))
            .into_response();
    }
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response()
    } else {
        ([(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)], openmetrics_to_text(&body)).into_response()
    }
}

/// Rewrites OpenMetrics text (as prometheus-client writes it) into the classic text format
/// 0.0.4: counter families are named with their `_total` suffix in `# HELP` and `# TYPE`,
/// `# UNIT` and `# EOF` are dropped, `unknown` becomes `untyped`. Samples are identical in
/// both formats.
pub fn openmetrics_to_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            // Held until the TYPE line says whether the name needs `_total`.
            help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "unknown" => (name.to_owned(), "untyped"),
                other => (name.to_owned(), other),
            };
            if let Some(h) = help.take() {
                let text = h.split_once(' ').map_or("", |(_, t)| t);
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "programs not attached or first read pending\n")
            .into_response()
    }
}

async fn landing(State(state): State<AppState>) -> Html<String> {
    let path = &state.telemetry_path;
    Html(format!(
        "<!doctype html><html><head><title>egressor</title></head><body>\
         <h1>egressor</h1><p>Who moves data where, and what it costs.</p>\
         <ul><li><a href=\"{path}\">{path}</a> (OpenMetrics)</li>\
         <li><a href=\"/api/v1/flows?top=20&amp;sort=cost\">/api/v1/flows</a> (top flows, JSON)</li>\
         <li><a href=\"/api/v1/summary\">/api/v1/summary</a></li>\
         <li><a href=\"/healthz\">/healthz</a></li><li><a href=\"/readyz\">/readyz</a></li></ul>\
         </body></html>"
    ))
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    fn state(ready: bool) -> AppState {
        let mut registry = Registry::with_prefix("egressor");
        let c = prometheus_client::metrics::counter::Counter::<u64>::default();
        c.inc();
        registry.register("test", "a test counter", c);
        AppState {
            registry: Arc::new(registry),
            ready: Arc::new(AtomicBool::new(ready)),
            telemetry_path: "/custom".into(),
            api: None,
            guard_metrics: false,
        }
    }

    async fn get(app: Router, path: &str) -> (StatusCode, String, String) {
        get_accepting(app, path, "application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
            .await
    }

    async fn get_accepting(app: Router, path: &str, accept: &str) -> (StatusCode, String, String) {
        let request = Request::get(path).header(header::ACCEPT, accept).body(Body::empty());
        let r = app.oneshot(request.unwrap()).await.unwrap();
        let ct = r.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned());
        let status = r.status();
        let body = to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, ct.unwrap_or_default(), String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn metrics_are_openmetrics_on_the_configured_path() {
        let (status, ct, body) = get(app(state(true)), "/custom").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct, OPENMETRICS_CONTENT_TYPE);
        assert!(body.contains("egressor_test_total 1\n") && body.ends_with("# EOF\n"), "{body}");
        assert_eq!(get(app(state(true)), "/metrics").await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn other_clients_get_the_classic_text_format() {
        let (status, ct, body) = get_accepting(app(state(true)), "/custom", "*/*").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct, TEXT_CONTENT_TYPE);
        assert_eq!(
            body,
            "# HELP egressor_test_total a test counter.\n# TYPE egressor_test_total counter\n\
             egressor_test_total 1\n"
        );
    }

    #[tokio::test]
    async fn metrics_are_gzipped_for_clients_that_accept_it() {
        let request = Request::get("/custom")
            .header(header::ACCEPT, "application/openmetrics-text; version=1.0.0")
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(Body::empty())
            .unwrap();
        let r = app(state(true)).oneshot(request).await.unwrap();
        assert_eq!(r.headers().get(header::CONTENT_ENCODING).unwrap(), "gzip");
        let body = to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
            .unwrap();
        assert!(text.contains("egressor_test_total 1\n") && text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn conversion_keeps_gauges_and_histograms_and_drops_units() {
        let om = "# HELP x_seconds Time.\n# TYPE x_seconds histogram\n# UNIT x_seconds seconds\n\
                  x_seconds_sum 1.5\nx_seconds_count 2\nx_seconds_bucket{le=\"+Inf\"} 2\n\
                  # HELP g A gauge.\n# TYPE g gauge\ng{a=\"b\"} 3\n# TYPE u unknown\nu 1\n# EOF\n";
        let text = openmetrics_to_text(om);
        assert_eq!(
            text,
            "# HELP x_seconds Time.\n# TYPE x_seconds histogram\nx_seconds_sum 1.5\n\
             x_seconds_count 2\nx_seconds_bucket{le=\"+Inf\"} 2\n# HELP g A gauge.\n\
             # TYPE g gauge\ng{a=\"b\"} 3\n# TYPE u untyped\nu 1\n"
        );
    }

    #[tokio::test]
    async fn readyz_follows_the_flag_and_healthz_always_answers() {
        assert_eq!(get(app(state(false)), "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(get(app(state(true)), "/readyz").await.0, StatusCode::OK);
        assert_eq!(get(app(state(false)), "/healthz").await.0, StatusCode::OK);
        assert!(get(app(state(false)), "/").await.2.contains("href=\"/custom\""));
    }
}
