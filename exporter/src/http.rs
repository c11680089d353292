//! The HTTP surface: OpenMetrics on the telemetry path, `/healthz` (the process serves),
//! `/readyz` (programs attached and a first read cycle done) and a landing page.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use prometheus_client::{encoding::text::encode, registry::Registry};

/// Content type of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    /// Set once the programs are attached and the first read cycle has completed.
    pub ready: Arc<AtomicBool>,
    pub telemetry_path: String,
}

/// The router: `telemetry_path`, `/healthz`, `/readyz`, `/`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route(&state.telemetry_path.clone(), get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/", get(landing))
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = String::with_capacity(64 * 1024);
    match encode(&mut body, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response(),
        Err(e) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics: {e}\n")).into_response()
        }
    }
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
        }
    }

    async fn get(app: Router, path: &str) -> (StatusCode, String, String) {
        let r = app.oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
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
    async fn readyz_follows_the_flag_and_healthz_always_answers() {
        assert_eq!(get(app(state(false)), "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(get(app(state(true)), "/readyz").await.0, StatusCode::OK);
        assert_eq!(get(app(state(false)), "/healthz").await.0, StatusCode::OK);
        assert!(get(app(state(false)), "/").await.2.contains("href=\"/custom\""));
    }
}
