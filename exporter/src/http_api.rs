//! HTTP side of the JSON API ([`crate::api`]) and the guard in front of it: a CIDR allowlist
//! on the client address and an optional bearer token (RFC 6750), also applied to the
//! telemetry path with `--web.guard-metrics`.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, mpsc},
    time::Duration,
};

use axum::{
    Json,
    extract::{ConnectInfo, Query, Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use ipnet::IpNet;

use crate::{
    api::{ClassTotals, FlowsQuery, MAX_TOP, Summary, WorkloadCost},
    metrics::SharedSnapshot,
    reader::Request as ReaderRequest,
    verdict::MAX_ADDRESSES,
};

/// Time allowed for the reader thread to answer (it answers between two read cycles).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Who may call guarded routes.
#[derive(Debug, Clone)]
pub struct Guard {
    /// Client addresses allowed (`--web.api.allow`).
    pub allow: Vec<IpNet>,
    /// Bearer token required when set (`--web.api.bearer-token-file`).
    pub token: Option<String>,
}

/// What the API handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The reader thread's request channel.
    pub reader: mpsc::Sender<ReaderRequest>,
    /// The last read cycle's snapshot.
    pub snapshot: Arc<SharedSnapshot>,
    /// The guard.
    pub guard: Arc<Guard>,
}

fn refuse(status: StatusCode, why: &str) -> Response {
    let mut r = (status, format!("{why}\n")).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer realm=\"egressor\"".parse().unwrap());
    }
    r
}

/// Middleware: lets the request through if the client address is allowed and, when a token
/// is configured, the `Authorization: Bearer` header carries it.
pub async fn guard(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let Some(client) = client.map(|ip| ip.to_canonical()) else {
        return refuse(StatusCode::FORBIDDEN, "client address unknown");
    };
    if !guard.allow.iter().any(|n| n.contains(&client)) {
        return refuse(StatusCode::FORBIDDEN, &format!("{client} is not in --web.api.allow"));
    }
    if let Some(token) = &guard.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Compared in constant time: the token is a secret.
        let ok = given.is_some_and(|g| {
            g.len() == token.len()
                && g.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        });
        if !ok {
            return refuse(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        }
    }
    next.run(request).await
}

/// `GET /api/v1/flows?top=N&sort=bytes|rate|cost`.
pub async fn flows(
    State(api): State<ApiState>,
    query: Result<Query<FlowsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return refuse(
            StatusCode::BAD_REQUEST,
            &format!("query: top=1..{MAX_TOP} and sort=bytes|rate|cost, nothing else"),
        );
    };
    if query.top == 0 || query.top > MAX_TOP {
        return refuse(
            StatusCode::BAD_REQUEST,
            &format!("top={} is not in 1..={MAX_TOP}", query.top),
        );
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    if api.reader.send(ReaderRequest::Flows(query, tx)).is_err() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the reader has stopped");
    }
    match tokio::time::timeout(REPLY_TIMEOUT, rx).await {
        Ok(Ok(reply)) => Json(reply).into_response(),
        _ => refuse(StatusCode::SERVICE_UNAVAILABLE, "the reader did not answer in time"),
    }
}

/// Query of `/api/v1/classify`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyQuery {
    /// Remote addresses, comma-separated.
    pub address: String,
    /// The local address that selects the subnet (and so the egress path).
    pub from: Option<std::net::IpAddr>,
}

/// `GET /api/v1/classify?address=A[,B…][&from=LOCAL]`: the agent's verdict on each address
/// ([`crate::verdict::Verdict`]), at most [`MAX_ADDRESSES`] of them.
pub async fn classify(
    State(api): State<ApiState>,
    query: Result<Query<ClassifyQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let usage = format!("query: address=ADDR[,ADDR…] (at most {MAX_ADDRESSES}) and from=ADDR");
    let Ok(Query(query)) = query else {
        return refuse(StatusCode::BAD_REQUEST, &usage);
    };
    let mut addresses = Vec::new();
    for a in query.address.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match a.parse() {
            Ok(ip) => addresses.push(ip),
            Err(_) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    &format!("address {a:?} is not an IP address"),
                );
            }
        }
    }
    if addresses.is_empty() || addresses.len() > MAX_ADDRESSES {
        return refuse(StatusCode::BAD_REQUEST, &usage);
    }
    let (reply, rx) = tokio::sync::oneshot::channel();
    let request = ReaderRequest::Classify { addresses, from: query.from, reply };
    if api.reader.send(request).is_err() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the reader has stopped");
    }
    match tokio::time::timeout(REPLY_TIMEOUT, rx).await {
        Ok(Ok(verdicts)) => Json(verdicts).into_response(),
        _ => refuse(StatusCode::SERVICE_UNAVAILABLE, "the reader did not answer in time"),
    }
}

/// `GET /api/v1/summary`.
pub async fn summary(State(api): State<ApiState>) -> Json<Summary> {
    let snap = api.snapshot.load();
    let mut by_class: BTreeMap<(&str, &str), ClassTotals> = BTreeMap::new();
    let mut by_hook: BTreeMap<&str, u64> = BTreeMap::new();
    let mut workloads: BTreeMap<&str, WorkloadCost> = BTreeMap::new();
    let (mut cost, mut avoidable) = (0.0, 0.0);
    for (l, t, c) in &snap.series {
        let class = l.traffic_class.as_str();
        let direction = l.direction.as_str();
        let row = by_class.entry((class, direction)).or_insert_with(|| ClassTotals {
            traffic_class: class.into(),
            direction: direction.into(),
            bytes: 0,
            cost_usd: 0.0,
            avoidable_cost_usd: 0.0,
        });
        row.bytes += t.bytes;
        row.cost_usd += c.usd;
        row.avoidable_cost_usd += c.avoidable_usd;
        *by_hook.entry(l.hook.as_str()).or_default() += t.bytes;
        if !l.workload.is_empty() {
            let w = workloads.entry(&l.workload).or_insert_with(|| WorkloadCost {
                workload: l.workload.to_string(),
                bytes: 0,
                cost_usd: 0.0,
            });
            w.bytes += t.bytes;
            w.cost_usd += c.usd;
        }
        cost += c.usd;
        avoidable += c.avoidable_usd;
    }
    let mut top_workloads: Vec<_> = workloads.into_values().collect();
    top_workloads.sort_by(|a, b| b.cost_usd.total_cmp(&a.cost_usd).then(b.bytes.cmp(&a.bytes)));
    top_workloads.truncate(10);
    Json(Summary {
        by_class: by_class.into_values().collect(),
        by_hook: by_hook.into_iter().map(|(h, b)| (h.to_owned(), b)).collect(),
        top_workloads,
        cost_usd: cost,
        avoidable_cost_usd: avoidable,
        series: snap.series_count,
    })
}
