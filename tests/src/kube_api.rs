//! A local Kubernetes API server for tests: it serves the real list and watch wire format
//! (`GET /api/v1/pods` → a `PodList` with a `resourceVersion`, paged by `limit` and
//! `continue`; `?watch=true` → a stream of
//! `{"type": "ADDED" | "MODIFIED" | "DELETED", "object": …}` lines from that version on) for
//! Pods, Nodes, ReplicaSets, Jobs, Namespaces, Services and EndpointSlices, from recorded JSON objects, and lets a test add, change
//! and delete objects while the agent watches. Kinds can be made to answer 403 (RBAC) and the
//! server can start late (API server down at start).

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Body,
    extract::{Query, State},
    http::{StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::get,
};
use futures::StreamExt;
use serde_json::{Value, json};

/// Collection paths served, with their list kinds.
pub const KINDS: [(&str, &str, &str); 7] = [
    ("/api/v1/pods", "PodList", "v1"),
    ("/api/v1/nodes", "NodeList", "v1"),
    ("/apis/apps/v1/replicasets", "ReplicaSetList", "apps/v1"),
    ("/apis/batch/v1/jobs", "JobList", "batch/v1"),
    ("/api/v1/namespaces", "NamespaceList", "v1"),
    ("/api/v1/services", "ServiceList", "v1"),
    ("/apis/discovery.k8s.io/v1/endpointslices", "EndpointSliceList", "discovery.k8s.io/v1"),
];

#[derive(Default)]
struct Store {
    version: u64,
    /// path → (namespace/name → object).
    objects: BTreeMap<&'static str, BTreeMap<String, Value>>,
    /// Every change: (version, path, event).
    log: Vec<(u64, &'static str, Value)>,
    forbidden: Vec<&'static str>,
    requests: u64,
}

/// The server; stopped when dropped.
pub struct FakeKube {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    store: Arc<Mutex<Store>>,
    changed: tokio::sync::broadcast::Sender<()>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

fn key(object: &Value) -> String {
    let m = &object["metadata"];
    format!("{}/{}", m["namespace"].as_str().unwrap_or(""), m["name"].as_str().unwrap_or(""))
}

fn path_of(kind: &str) -> &'static str {
    match kind {
        "Pod" => KINDS[0].0,
        "Node" => KINDS[1].0,
        "ReplicaSet" => KINDS[2].0,
        "Job" => KINDS[3].0,
        "Namespace" => KINDS[4].0,
        "Service" => KINDS[5].0,
        "EndpointSlice" => KINDS[6].0,
        other => panic!("kind {other} not served"),
    }
}

impl FakeKube {
    /// Starts on a free port.
    pub fn start() -> Self {
        Self::start_on(crate::free_port())
    }

    /// Starts on `port` (a test that wants the API down at first picks the port, points the
    /// agent at it, and starts the server later).
    pub fn start_on(port: u16) -> Self {
        Self::start_forbidding(port, &[])
    }

    /// Starts on `port` with `kinds` answering 403 Forbidden, as RBAC does without the
    /// permission, from the server's first request on.
    pub fn start_forbidding(port: u16, kinds: &[&str]) -> Self {
        let forbidden = kinds.iter().map(|k| path_of(k)).collect();
        let store = Arc::new(Mutex::new(Store { version: 1000, forbidden, ..Store::default() }));
        let (changed, _) = tokio::sync::broadcast::channel(1024);
        let state = (store.clone(), changed.clone());
        let mut app = Router::new();
        for (path, _, _) in KINDS {
            app = app.route(path, get(serve));
        }
        let app = app.with_state(state);
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = std::net::TcpListener::bind(address).expect("bind fake API");
        listener.set_nonblocking(true).unwrap();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        // Its own thread and runtime: usable from plain and from async tests alike.
        std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let server = axum::serve(listener, app).with_graceful_shutdown(async {
                    let _ = stop.await;
                });
                let _ = server.await;
            });
        });
        Self { url: format!("http://127.0.0.1:{port}"), store, changed, shutdown: Some(shutdown) }
    }

    /// Writes a kubeconfig pointing at a server on `url` (a bearer token, as a service
    /// account has) and returns its path.
    pub fn kubeconfig_for(url: &str) -> PathBuf {
        crate::temp_file(
            "kubeconfig",
            &format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
                 users:\n- name: fake\n  user:\n    token: fake-token\n\
                 contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
                 current-context: fake\n"
            ),
        )
    }

    /// A kubeconfig pointing at this server.
    pub fn kubeconfig(&self) -> PathBuf {
        Self::kubeconfig_for(&self.url)
    }

    /// Adds or replaces an object (its `kind` picks the collection): ADDED or MODIFIED.
    pub fn apply(&self, mut object: Value) {
        let path = path_of(object["kind"].as_str().expect("kind"));
        let mut s = self.store.lock().unwrap();
        s.version += 1;
        let version = s.version;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let k = key(&object);
        let existed = s.objects.entry(path).or_default().insert(k, object.clone()).is_some();
        let kind = if existed { "MODIFIED" } else { "ADDED" };
        s.log.push((version, path, json!({"type": kind, "object": object})));
        drop(s);
        let _ = self.changed.send(());
    }

    /// Deletes an object: DELETED.
    pub fn delete(&self, object: &Value) {
        let path = path_of(object["kind"].as_str().expect("kind"));
        let mut s = self.store.lock().unwrap();
        s.version += 1;
        let version = s.version;
        if let Some(mut gone) = s.objects.entry(path).or_default().remove(&key(object)) {
            gone["metadata"]["resourceVersion"] = json!(version.to_string());
            s.log.push((version, path, json!({"type": "DELETED", "object": gone})));
        }
        drop(s);
        let _ = self.changed.send(());
    }

    /// Serves every object of `tests/fixtures/kubernetes/`.
    pub fn with_fixtures(self) -> Self {
        for name in
            ["namespaces", "nodes", "replicasets", "jobs", "pods", "services", "endpointslices"]
        {
            for object in fixture(name) {
                self.apply(object);
            }
        }
        self
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.store.lock().unwrap().requests
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
    }
}

/// The objects of `tests/fixtures/kubernetes/<name>.json`.
pub fn fixture(name: &str) -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("fixtures/kubernetes/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

type ServerState = (Arc<Mutex<Store>>, tokio::sync::broadcast::Sender<()>);

async fn serve(
    State((store, changed)): State<ServerState>,
    uri: Uri,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let path = KINDS.iter().find(|k| k.0 == uri.path()).copied().unwrap();
    let mut s = store.lock().unwrap();
    s.requests += 1;
    if s.forbidden.contains(&path.0) {
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": format!("{} is forbidden: User \"system:serviceaccount:egressor:egressor\" cannot list resource", path.0),
            "reason": "Forbidden", "code": 403});
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/json")],
            status.to_string(),
        )
            .into_response();
    }
    let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    if !watch {
        // Paged as the API server pages lists: `limit` items at a time, the next page asked
        // for with the `continue` token of the previous one (here: the offset).
        let from: usize = query.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
        let limit: usize = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(usize::MAX);
        let all = s.objects.get(path.0);
        let total = all.map_or(0, |m| m.len());
        let items: Vec<Value> =
            all.map(|m| m.values().skip(from).take(limit).cloned().collect()).unwrap_or_default();
        let mut metadata = json!({"resourceVersion": s.version.to_string()});
        if from.saturating_add(limit) < total {
            metadata["continue"] = json!((from + limit).to_string());
            metadata["remainingItemCount"] = json!(total - from - limit);
        }
        let list =
            json!({"kind": path.1, "apiVersion": path.2, "metadata": metadata, "items": items});
        return ([(header::CONTENT_TYPE, "application/json")], list.to_string()).into_response();
    }
    let from: u64 = query.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
    drop(s);
    // Replay what came after `from`, then whatever comes next, as JSON lines.
    let receiver = tokio_stream::wrappers::BroadcastStream::new(changed.subscribe());
    let mut sent = from;
    let lines = futures::stream::once(async {}).chain(receiver.map(|_| ())).map(move |()| {
        let s = store.lock().unwrap();
        let mut out = String::new();
        for (version, p, event) in &s.log {
            if *version > sent && *p == path.0 {
                out.push_str(&event.to_string());
                out.push('\n');
            }
        }
        sent = s.version.max(sent);
        Ok::<_, std::convert::Infallible>(out)
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(lines))
        .unwrap()
}
