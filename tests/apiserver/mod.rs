//! A stand-in for kube-apiserver, for what the real one (`tests/k8s`) cannot be made to do on
//! demand: a namespace that vanishes in the middle of a scan, a `continue` token that expires
//! between two pages, a 500 from one list, and 100 000 pods made on the fly for the scale runs.
//! Everything else the audit does is tested against the real API server (`tests/audit.rs`).
//!
//! It speaks the part of the real API the audit lists with, in the real wire format (every
//! object and list is a `k8s_openapi` type, every error a `metav1.Status` worded as the API
//! server words it): `GET` lists of namespaces, pods and the pod controllers, with `limit` /
//! `continue` pagination (`metadata.continue`, `remainingItemCount`, `resourceVersion`).
//!
//! Every request is recorded (method, path, query, status) so tests can check what was asked
//! after a failure. The server runs on its own thread and runtime on 127.0.0.1:0 and stops when
//! the handle is dropped.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta, Status, StatusDetails};
use k8s_openapi::{ListableResource, Resource};
use serde::Serialize;

use crate::common::workloads::{controller_ref, object_meta};

pub const TOKEN: &str = "audit-test-token";

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// The status the stand-in answered.
    pub status: u16,
}

impl Recorded {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Makes pod number `i` of a generated collection.
pub type PodMaker = Arc<dyn Fn(usize) -> Pod + Send + Sync>;

/// The objects of one namespace, and how it misbehaves.
#[derive(Default, Clone)]
pub struct NsState {
    pub pods: Vec<Pod>,
    pub deployments: Vec<Deployment>,
    pub replicasets: Vec<ReplicaSet>,
    pub statefulsets: Vec<StatefulSet>,
    pub daemonsets: Vec<DaemonSet>,
    pub replicationcontrollers: Vec<ReplicationController>,
    pub jobs: Vec<Job>,
    pub cronjobs: Vec<CronJob>,
    /// Pods made on the fly (`count`, maker), for scale runs: nothing is held in memory.
    pub generated_pods: Option<(usize, PodMaker)>,
    /// The namespace disappears after this many successful list calls in it (404 after).
    pub vanish_after: Option<usize>,
    /// Resources whose first request with a `continue` token gets 410 Gone.
    pub expire_once: BTreeSet<String>,
    /// Resources whose lists fail with 500, as an API server whose etcd times out does.
    pub internal_error: BTreeSet<String>,
    lists_served: usize,
}

/// The cluster the stand-in serves.
#[derive(Default)]
pub struct Cluster {
    pub namespaces: BTreeMap<String, NsState>,
    resource_version: u64,
}

impl Cluster {
    pub fn new() -> Cluster {
        Cluster {
            resource_version: 1000,
            ..Cluster::default()
        }
    }

    pub fn ns(&mut self, name: &str) -> &mut NsState {
        self.namespaces.entry(name.to_owned()).or_default()
    }

    fn next_rv(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }
}

/// A running stand-in.
pub struct StandIn {
    pub addr: SocketAddr,
    state: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    cluster: Mutex<Cluster>,
    requests: Mutex<Vec<Recorded>>,
}

impl StandIn {
    pub fn start(cluster: Cluster) -> StandIn {
        let state = Arc::new(Shared {
            cluster: Mutex::new(cluster),
            requests: Mutex::new(Vec::new()),
        });
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new().fallback(handle).with_state(shared);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        StandIn {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig for this server into `dir`: a token user, and a context whose
    /// namespace is `namespace`.
    pub fn kubeconfig(&self, dir: &Path, namespace: &str) -> PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(&path, kubeconfig_text(&self.url(), TOKEN, namespace)).unwrap();
        path
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn clear_requests(&self) {
        self.state.requests.lock().unwrap().clear();
    }

    /// Changes the cluster while the server runs.
    pub fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R {
        f(&mut self.state.cluster.lock().unwrap())
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn kubeconfig_text(server: &str, token: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: stand-in
  cluster:
    server: {server}
users:
- name: auditor
  user:
    token: {token}
contexts:
- name: stand-in
  context:
    cluster: stand-in
    user: auditor
    namespace: {namespace}
current-context: stand-in
"
    )
}

// ---------------------------------------------------------------------------------------------
// Requests

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query: Vec<(String, String)> = request
        .uri()
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    let response = if authorized {
        route(&shared, &method, &path, &query)
    } else {
        status(401, "Unauthorized", "Unauthorized", None)
    };
    shared.requests.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path,
        query,
        status: response.status().as_u16(),
    });
    response
}

fn route(shared: &Shared, method: &Method, path: &str, query: &[(String, String)]) -> Response {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let mut cluster = shared.cluster.lock().unwrap();
    match (method, segments.as_slice()) {
        (&Method::GET, ["api", "v1", "namespaces"]) => list_namespaces(&mut cluster, param),
        (&Method::GET, ["api", "v1", "namespaces", ns, resource])
            if matches!(*resource, "pods" | "replicationcontrollers") =>
        {
            list_workloads(&mut cluster, ns, resource, param)
        }
        (&Method::GET, ["apis", "apps" | "batch", "v1", "namespaces", ns, resource]) => {
            list_workloads(&mut cluster, ns, resource, param)
        }
        _ => not_found(),
    }
}

fn not_found() -> Response {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(StatusDetails::default()),
    )
}

/// A `metav1.Status` answer, as the API server words it.
pub fn status(code: u16, reason: &str, message: &str, details: Option<StatusDetails>) -> Response {
    let body = Status {
        code: Some(i32::from(code)),
        details,
        message: Some(message.to_owned()),
        metadata: ListMeta::default(),
        reason: Some(reason.to_owned()),
        status: Some("Failure".to_owned()),
    };
    json_response(code, &body)
}

fn json_response<T: Serialize>(code: u16, body: &T) -> Response {
    (
        StatusCode::from_u16(code).unwrap(),
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(serde_json::to_vec(body).unwrap()),
    )
        .into_response()
}

fn namespace_not_found(ns: &str) -> Response {
    status(
        404,
        "NotFound",
        &format!("namespaces \"{ns}\" not found"),
        Some(StatusDetails {
            name: Some(ns.to_owned()),
            kind: Some("namespaces".to_owned()),
            ..StatusDetails::default()
        }),
    )
}

/// A `continue` token: opaque to clients, like the API server's (which is base64 JSON).
fn encode_token(resource_version: &str, offset: usize) -> String {
    format!("{resource_version}:{offset}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_token(token: &str) -> Option<(String, usize)> {
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    let (rv, offset) = text.split_once(':')?;
    Some((rv.to_owned(), offset.parse().ok()?))
}

/// The window of a list a request asks for: (offset, limit), or an error response.
fn window<'q>(
    param: impl Fn(&str) -> Option<&'q str>,
) -> Result<(usize, Option<usize>), Box<Response>> {
    let limit = match param("limit") {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| Box::new(status(400, "BadRequest", "invalid limit", None)))?,
        ),
        None => None,
    };
    let offset = match param("continue") {
        Some(token) => {
            decode_token(token)
                .ok_or_else(|| {
                    Box::new(status(
                        400,
                        "BadRequest",
                        "continue key is not valid: illegal base64 data",
                        None,
                    ))
                })?
                .1
        }
        None => 0,
    };
    Ok((offset, limit.filter(|l| *l > 0)))
}

/// One page of `items` (already filtered) as `List<T>` with the API server's list metadata.
fn page<T>(items: Vec<T>, total: usize, offset: usize, limit: Option<usize>, rv: &str) -> Response
where
    T: ListableResource + Serialize,
{
    let end = limit.map_or(total, |l| (offset + l).min(total));
    let more = end < total;
    let list = k8s_openapi::List {
        items,
        metadata: ListMeta {
            continue_: more.then(|| encode_token(rv, end)),
            remaining_item_count: more.then(|| (total - end) as i64),
            resource_version: Some(rv.to_owned()),
            ..ListMeta::default()
        },
    };
    json_response(200, &list)
}

fn slice<T: Clone>(items: &[T], offset: usize, limit: Option<usize>) -> Vec<T> {
    let end = limit.map_or(items.len(), |l| (offset + l).min(items.len()));
    items
        .get(offset.min(items.len())..end)
        .unwrap_or(&[])
        .to_vec()
}

fn list_namespaces<'q>(cluster: &mut Cluster, param: impl Fn(&str) -> Option<&'q str>) -> Response {
    let (offset, limit) = match window(&param) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let names: Vec<String> = cluster.namespaces.keys().cloned().collect();
    let all: Vec<Namespace> = names
        .iter()
        .map(|n| Namespace {
            metadata: ObjectMeta {
                name: Some(n.clone()),
                uid: Some(format!("ns-{n}")),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        })
        .collect();
    let rv = cluster.next_rv();
    page(slice(&all, offset, limit), all.len(), offset, limit, &rv)
}

fn list_workloads<'q>(
    cluster: &mut Cluster,
    ns: &str,
    resource: &str,
    param: impl Fn(&str) -> Option<&'q str>,
) -> Response {
    let rv = cluster.next_rv();
    let Some(state) = cluster.namespaces.get_mut(ns) else {
        // The real API server answers an empty list for a namespace that does not exist.
        return empty_list(resource, &rv);
    };
    if state.internal_error.contains(resource) {
        return status(
            500,
            "InternalError",
            "Internal error occurred: etcdserver: request timed out",
            Some(StatusDetails {
                causes: Some(vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause {
                        message: Some("etcdserver: request timed out".to_owned()),
                        ..Default::default()
                    },
                ]),
                ..StatusDetails::default()
            }),
        );
    }
    if state.vanish_after.is_some_and(|n| state.lists_served >= n) {
        return namespace_not_found(ns);
    }
    if param("continue").is_some() && state.expire_once.remove(resource) {
        return status(
            410,
            "Expired",
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
            None,
        );
    }
    let (offset, limit) = match window(&param) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    state.lists_served += 1;
    macro_rules! typed {
        ($items:expr) => {{
            let total = $items.len();
            page(slice(&$items, offset, limit), total, offset, limit, &rv)
        }};
    }
    match resource {
        "pods" => match &state.generated_pods {
            Some((count, make)) => {
                let end = limit.map_or(*count, |l| (offset + l).min(*count));
                let items: Vec<Pod> = (offset.min(end)..end).map(|i| make(i)).collect();
                page(items, *count, offset, limit, &rv)
            }
            None => typed!(state.pods),
        },
        "deployments" => typed!(state.deployments),
        "replicasets" => typed!(state.replicasets),
        "statefulsets" => typed!(state.statefulsets),
        "daemonsets" => typed!(state.daemonsets),
        "replicationcontrollers" => typed!(state.replicationcontrollers),
        "jobs" => typed!(state.jobs),
        "cronjobs" => typed!(state.cronjobs),
        _ => not_found(),
    }
}

fn empty_list(resource: &str, rv: &str) -> Response {
    fn none<T: ListableResource + Serialize>(rv: &str) -> Response {
        page(Vec::<T>::new(), 0, 0, None, rv)
    }
    match resource {
        "pods" => none::<Pod>(rv),
        "deployments" => none::<Deployment>(rv),
        "replicasets" => none::<ReplicaSet>(rv),
        "statefulsets" => none::<StatefulSet>(rv),
        "daemonsets" => none::<DaemonSet>(rv),
        "replicationcontrollers" => none::<ReplicationController>(rv),
        "jobs" => none::<Job>(rv),
        "cronjobs" => none::<CronJob>(rv),
        _ => not_found(),
    }
}

// ---------------------------------------------------------------------------------------------
// Metadata for `common::workloads` objects, with the uids the real API server would assign

pub fn meta(name: &str, ns: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        uid: Some(format!("uid-{ns}-{name}")),
        resource_version: Some("1".to_owned()),
        ..object_meta(name, ns, labels)
    }
}

/// `meta` with a controller owner reference to `owner` (a `T` made with `meta`).
pub fn owned_meta<T: Resource>(
    name: &str,
    ns: &str,
    labels: &[(&str, &str)],
    owner: &str,
) -> ObjectMeta {
    ObjectMeta {
        owner_references: Some(vec![controller_ref::<T>(
            owner,
            &format!("uid-{ns}-{owner}"),
        )]),
        ..meta(name, ns, labels)
    }
}
