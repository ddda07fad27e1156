//! A stand-in for kube-apiserver, for the audit tests: no real API server can run on these
//! machines, so this one speaks the part of the real API the audit uses, with the real wire
//! format (every object and list is a `k8s_openapi` type, every error a `metav1.Status`):
//!
//! - `GET` lists of namespaces, pods and the pod controllers, with `limit` / `continue`
//!   pagination (`metadata.continue`, `remainingItemCount`, `resourceVersion`) and
//!   `labelSelector` (`k=v`, `k==v`, `k!=v`, `k`, `!k`);
//! - 401 without the kubeconfig's bearer token, 403 in a forbidden namespace (or for chosen
//!   resources), 404 in a namespace that has vanished, 410 Gone for an expired `continue`
//!   token, as the API server words them;
//! - `PATCH` of `wgpolicyk8s.io/v1alpha2` PolicyReports as server-side apply does it: only
//!   `application/apply-patch+yaml`, `fieldManager` required, the name in the body must match
//!   the URL, creates (201) or replaces the fields the manager applied (200), strict field
//!   validation against the CRD schema of `deploy/crds/policyreports.yaml` (400 for an unknown
//!   field, 422 for a wrong type or value), 404 when the CRD is not installed.
//!
//! Every request is recorded (method, path, query, content type, body) so tests can check that
//! pagination really happened. The server runs on its own thread and runtime on 127.0.0.1:0
//! and stops when the handle is dropped.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::apps::v1::{
    DaemonSet, Deployment, DeploymentSpec, ReplicaSet, ReplicaSetSpec, StatefulSet, StatefulSetSpec,
};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, Namespace, Pod, PodSecurityContext, PodSpec, PodTemplateSpec, ReplicationController,
    SecurityContext,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ListMeta, ObjectMeta, OwnerReference, Status, StatusDetails,
};
use k8s_openapi::{ListableResource, Metadata, Resource};
use serde::Serialize;
use serde_json::{Value, json};

pub const TOKEN: &str = "audit-test-token";
pub const USER: &str = "system:serviceaccount:portier:portier";

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: String,
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
    /// Resources listed with 403 (`*` for all).
    pub forbidden: BTreeSet<String>,
    /// The namespace disappears after this many successful list calls in it (404 after).
    pub vanish_after: Option<usize>,
    /// Resources whose first request with a `continue` token gets 410 Gone.
    pub expire_once: BTreeSet<String>,
    lists_served: usize,
}

/// The cluster the stand-in serves.
#[derive(Default)]
pub struct Cluster {
    pub namespaces: BTreeMap<String, NsState>,
    /// 403 on listing namespaces.
    pub forbid_namespace_list: bool,
    /// Whether the PolicyReport CRD is installed.
    pub policy_report_crd: bool,
    /// Stored PolicyReports by (namespace, name).
    pub policy_reports: BTreeMap<(String, String), Value>,
    /// Serve the Policy WG's original v1alpha2 schema, which has no `source` (as some
    /// clusters still do), instead of the shipped one.
    pub old_policy_report_schema: bool,
    resource_version: u64,
    uid_counter: u64,
}

impl Cluster {
    pub fn new() -> Cluster {
        Cluster {
            policy_report_crd: true,
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
    schema: Value,
}

impl StandIn {
    pub fn start(cluster: Cluster) -> StandIn {
        let state = Arc::new(Shared {
            cluster: Mutex::new(cluster),
            requests: Mutex::new(Vec::new()),
            schema: policy_report_schema(),
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

    pub fn policy_reports(&self) -> BTreeMap<(String, String), Value> {
        self.with_cluster(|c| c.policy_reports.clone())
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
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    let body = axum::body::to_bytes(request.into_body(), 16 << 20)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let response = if authorized {
        route(
            &shared,
            &method,
            &path,
            &query,
            content_type.as_deref(),
            &body,
        )
    } else {
        status(401, "Unauthorized", "Unauthorized", None)
    };
    shared.requests.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path,
        query,
        content_type,
        body,
        status: response.status().as_u16(),
    });
    response
}

fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    content_type: Option<&str>,
    body: &str,
) -> Response {
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
            list_workloads(&mut cluster, ns, resource, "", param)
        }
        (
            &Method::GET,
            [
                "apis",
                group @ ("apps" | "batch"),
                "v1",
                "namespaces",
                ns,
                resource,
            ],
        ) => list_workloads(&mut cluster, ns, resource, group, param),
        (
            &Method::PATCH,
            [
                "apis",
                "wgpolicyk8s.io",
                "v1alpha2",
                "namespaces",
                ns,
                "policyreports",
                name,
            ],
        ) if cluster.policy_report_crd => apply_report(
            &mut cluster,
            &shared.schema,
            ns,
            name,
            param,
            content_type,
            body,
        ),
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

fn forbidden(resource: &str, group: &str, ns: Option<&str>, verb: &str) -> Response {
    let scope = match ns {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_owned(),
    };
    let qualified = if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    };
    status(
        403,
        "Forbidden",
        &format!(
            "{qualified} is forbidden: User \"{USER}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"
        ),
        Some(StatusDetails {
            kind: Some(resource.to_owned()),
            group: Some(group.to_owned()),
            ..StatusDetails::default()
        }),
    )
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

fn select<T>(items: &[T], selector: Option<&str>) -> Vec<T>
where
    T: Metadata<Ty = ObjectMeta> + Clone,
{
    items
        .iter()
        .filter(|o| selector.is_none_or(|s| matches_selector(s, o.metadata().labels.as_ref())))
        .cloned()
        .collect()
}

fn slice<T: Clone>(items: &[T], offset: usize, limit: Option<usize>) -> Vec<T> {
    let end = limit.map_or(items.len(), |l| (offset + l).min(items.len()));
    items
        .get(offset.min(items.len())..end)
        .unwrap_or(&[])
        .to_vec()
}

/// What the API server says of a selector it cannot parse (requirements without a key).
fn selector_error(selector: &str) -> Option<String> {
    selector.split(',').map(str::trim).find_map(|req| {
        let key = req
            .split(['=', '!'])
            .find(|part| !part.is_empty())
            .unwrap_or("");
        (req.starts_with('=') || key.is_empty())
            .then(|| "unable to parse requirement: found '=', expected: identifier".to_owned())
    })
}

/// Equality-based label selectors (`a=b,c!=d,e,!f`), as the API server evaluates them.
pub fn matches_selector(selector: &str, labels: Option<&BTreeMap<String, String>>) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    selector
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .all(|req| {
            if let Some((k, v)) = req.split_once("!=") {
                labels.get(k.trim()).map(String::as_str) != Some(v.trim())
            } else if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
                labels.get(k.trim()).map(String::as_str) == Some(v.trim())
            } else if let Some(k) = req.strip_prefix('!') {
                !labels.contains_key(k.trim())
            } else {
                labels.contains_key(req)
            }
        })
}

fn list_namespaces<'q>(cluster: &mut Cluster, param: impl Fn(&str) -> Option<&'q str>) -> Response {
    if cluster.forbid_namespace_list {
        return forbidden("namespaces", "", None, "list");
    }
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
    group: &str,
    param: impl Fn(&str) -> Option<&'q str>,
) -> Response {
    let rv = cluster.next_rv();
    let Some(state) = cluster.namespaces.get_mut(ns) else {
        // The real API server answers an empty list for a namespace that does not exist.
        return empty_list(resource, &rv);
    };
    if state.forbidden.contains("*") || state.forbidden.contains(resource) {
        return forbidden(resource, group, Some(ns), "list");
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
    let selector = param("labelSelector");
    if let Some(bad) = selector.and_then(selector_error) {
        return status(400, "BadRequest", &bad, None);
    }
    state.lists_served += 1;
    macro_rules! typed {
        ($items:expr) => {{
            let selected = select(&$items, selector);
            let total = selected.len();
            page(slice(&selected, offset, limit), total, offset, limit, &rv)
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

/// Server-side apply of a PolicyReport.
fn apply_report<'q>(
    cluster: &mut Cluster,
    schema: &Value,
    ns: &str,
    name: &str,
    param: impl Fn(&str) -> Option<&'q str>,
    content_type: Option<&str>,
    body: &str,
) -> Response {
    if content_type != Some("application/apply-patch+yaml") {
        return status(
            415,
            "UnsupportedMediaType",
            &format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml; got {content_type:?}"
            ),
            None,
        );
    }
    let Some(state) = cluster.namespaces.get(ns) else {
        return namespace_not_found(ns);
    };
    if state.vanish_after.is_some_and(|n| state.lists_served >= n) {
        return namespace_not_found(ns);
    }
    if state.forbidden.contains("*") || state.forbidden.contains("policyreports") {
        return forbidden("policyreports", "wgpolicyk8s.io", Some(ns), "patch");
    }
    let Some(manager) = param("fieldManager").filter(|m| !m.is_empty()) else {
        return status(
            400,
            "BadRequest",
            "PATCH requests with apply patch type require a fieldManager",
            None,
        );
    };
    let applied: Value = match serde_saphyr::from_str(body) {
        Ok(v) => v,
        Err(e) => {
            return status(
                400,
                "BadRequest",
                &format!("error decoding YAML: {e}"),
                None,
            );
        }
    };
    if applied["apiVersion"] != "wgpolicyk8s.io/v1alpha2" || applied["kind"] != "PolicyReport" {
        return status(
            400,
            "BadRequest",
            &format!(
                "the API version in the data ({}) does not match the expected API version (wgpolicyk8s.io/v1alpha2)",
                applied["apiVersion"]
            ),
            None,
        );
    }
    if applied["metadata"]["name"] != name {
        return status(
            400,
            "BadRequest",
            &format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                applied["metadata"]["name"]
            ),
            None,
        );
    }
    if let Some(body_ns) = applied["metadata"]["namespace"].as_str()
        && body_ns != ns
    {
        return status(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
            None,
        );
    }
    let mut schema = schema.clone();
    if cluster.old_policy_report_schema
        && let Some(fields) = schema["properties"]["results"]["items"]["properties"].as_object_mut()
    {
        fields.remove("source");
    }
    let problems = validate(&schema, &applied, "");
    let unknown: Vec<&String> = problems
        .iter()
        .filter(|p| p.contains("unknown field"))
        .collect();
    if !unknown.is_empty() && param("fieldValidation") == Some("Strict") {
        return status(
            400,
            "BadRequest",
            &format!(
                "PolicyReport in version \"v1alpha2\" cannot be handled as a PolicyReport: strict decoding error: {}",
                unknown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None,
        );
    }
    let invalid: Vec<&String> = problems
        .iter()
        .filter(|p| !p.contains("unknown field"))
        .collect();
    if !invalid.is_empty() {
        return status(
            422,
            "Invalid",
            &format!(
                "PolicyReport.wgpolicyk8s.io \"{name}\" is invalid: {}",
                invalid
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None,
        );
    }
    let key = (ns.to_owned(), name.to_owned());
    let rv = cluster.next_rv();
    let existing = cluster.policy_reports.get(&key).cloned();
    let created = existing.is_none();
    let mut stored = applied.clone();
    let meta = stored["metadata"].as_object_mut().unwrap();
    meta.insert("namespace".into(), json!(ns));
    meta.insert("resourceVersion".into(), json!(rv));
    match &existing {
        Some(old) => {
            for field in ["uid", "creationTimestamp"] {
                meta.insert(field.into(), old["metadata"][field].clone());
            }
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            let changed =
                old["results"] != applied["results"] || old["summary"] != applied["summary"];
            meta.insert("generation".into(), json!(generation + i64::from(changed)));
        }
        None => {
            cluster.uid_counter += 1;
            meta.insert(
                "uid".into(),
                json!(format!(
                    "00000000-0000-4000-8000-{:012}",
                    cluster.uid_counter
                )),
            );
            meta.insert("creationTimestamp".into(), json!("2026-11-23T10:00:00Z"));
            meta.insert("generation".into(), json!(1));
        }
    }
    meta.insert(
        "managedFields".into(),
        json!([{
            "manager": manager,
            "operation": "Apply",
            "apiVersion": "wgpolicyk8s.io/v1alpha2",
            "time": "2026-11-23T10:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {}
        }]),
    );
    cluster.policy_reports.insert(key, stored.clone());
    json_response(if created { 201 } else { 200 }, &stored)
}

// ---------------------------------------------------------------------------------------------
// The PolicyReport schema and a structural-schema validator

/// The PolicyReport v1alpha2 `openAPIV3Schema` from the CRD portier ships.
pub fn policy_report_schema() -> Value {
    crd_schema("PolicyReport")
}

pub fn crd_schema(kind: &str) -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/crds/policyreports.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let crd = docs
        .into_iter()
        .find(|d| d["spec"]["names"]["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} CRD in {path}"));
    let version = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1alpha2")
        .unwrap()
        .clone();
    version["schema"]["openAPIV3Schema"].clone()
}

/// What the API server would refuse in `value` under a CRD's structural `schema`: unknown
/// fields (`... unknown field "x"`), wrong types, values outside an enum, missing required
/// fields, integers outside their format. `metadata` is the API server's own ObjectMeta and
/// is not looked into.
pub fn validate(schema: &Value, value: &Value, path: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let at = |p: &str| {
        if p.is_empty() {
            "<root>".to_owned()
        } else {
            p.to_owned()
        }
    };
    let ty = schema["type"].as_str().unwrap_or("");
    let type_ok = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        problems.push(format!("{}: Invalid value: must be of type {ty}", at(path)));
        return problems;
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        problems.push(format!(
            "{}: Unsupported value: {value}: supported values: {}",
            at(path),
            options
                .iter()
                .map(|o| o.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    match schema["format"].as_str() {
        Some("int32") if value.as_i64().is_some_and(|n| i32::try_from(n).is_err()) => {
            problems.push(format!("{}: Invalid value: out of int32 range", at(path)));
        }
        _ => {}
    }
    if let Some(object) = value.as_object() {
        if path == ".metadata" {
            return problems;
        }
        if let Some(required) = schema["required"].as_array() {
            for field in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(field) {
                    problems.push(format!("{path}.{field}: Required value"));
                }
            }
        }
        let properties = schema["properties"].as_object();
        for (key, child) in object {
            let child_path = format!("{path}.{key}");
            if let Some(sub) = properties.and_then(|p| p.get(key)) {
                problems.extend(validate(sub, child, &child_path));
            } else if schema["additionalProperties"].is_object() {
                problems.extend(validate(
                    &schema["additionalProperties"],
                    child,
                    &child_path,
                ));
            } else if schema["x-kubernetes-preserve-unknown-fields"] != true {
                problems.push(format!(
                    "unknown field \"{}\"",
                    child_path.trim_start_matches('.')
                ));
            }
        }
    }
    if let (Some(items), Some(schema)) = (value.as_array(), schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            problems.extend(validate(schema, item, &format!("{path}[{i}]")));
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Objects, built with k8s-openapi types

pub fn meta(name: &str, ns: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(ns.to_owned()),
        uid: Some(format!("uid-{ns}-{name}")),
        resource_version: Some("1".to_owned()),
        labels: (!labels.is_empty()).then(|| {
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        }),
        ..ObjectMeta::default()
    }
}

/// `meta` with a controller owner reference to `owner` (a `T`).
pub fn owned_meta<T: Resource>(
    name: &str,
    ns: &str,
    labels: &[(&str, &str)],
    owner: &str,
) -> ObjectMeta {
    ObjectMeta {
        owner_references: Some(vec![OwnerReference {
            api_version: T::API_VERSION.to_owned(),
            kind: T::KIND.to_owned(),
            name: owner.to_owned(),
            uid: format!("uid-{ns}-{owner}"),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]),
        ..meta(name, ns, labels)
    }
}

/// How a test pod spec is wrong.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flaws {
    pub privileged: bool,
    pub root: bool,
    pub host_network: bool,
}

pub const CLEAN: Flaws = Flaws {
    privileged: false,
    root: false,
    host_network: false,
};

pub fn pod_spec(flaws: Flaws) -> PodSpec {
    PodSpec {
        host_network: flaws.host_network.then_some(true),
        security_context: Some(PodSecurityContext {
            run_as_non_root: (!flaws.root).then_some(true),
            ..PodSecurityContext::default()
        }),
        containers: vec![Container {
            name: "app".to_owned(),
            image: Some("registry.example.com/app:1".to_owned()),
            security_context: flaws.privileged.then(|| SecurityContext {
                privileged: Some(true),
                ..SecurityContext::default()
            }),
            ..Container::default()
        }],
        ..PodSpec::default()
    }
}

fn template(labels: &[(&str, &str)], flaws: Flaws) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        }),
        spec: Some(pod_spec(flaws)),
    }
}

fn selector(labels: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ..LabelSelector::default()
    }
}

pub fn pod(metadata: ObjectMeta, flaws: Flaws) -> Pod {
    Pod {
        metadata,
        spec: Some(pod_spec(flaws)),
        ..Pod::default()
    }
}

pub fn deployment(name: &str, ns: &str, labels: &[(&str, &str)], flaws: Flaws) -> Deployment {
    Deployment {
        metadata: meta(name, ns, labels),
        spec: Some(DeploymentSpec {
            selector: selector(labels),
            template: template(labels, flaws),
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

pub fn replica_set(metadata: ObjectMeta, labels: &[(&str, &str)], flaws: Flaws) -> ReplicaSet {
    ReplicaSet {
        metadata,
        spec: Some(ReplicaSetSpec {
            selector: selector(labels),
            template: Some(template(labels, flaws)),
            ..ReplicaSetSpec::default()
        }),
        ..ReplicaSet::default()
    }
}

pub fn stateful_set(name: &str, ns: &str, labels: &[(&str, &str)], flaws: Flaws) -> StatefulSet {
    StatefulSet {
        metadata: meta(name, ns, labels),
        spec: Some(StatefulSetSpec {
            selector: selector(labels),
            service_name: Some(name.to_owned()),
            template: template(labels, flaws),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

pub fn cron_job(name: &str, ns: &str, labels: &[(&str, &str)], flaws: Flaws) -> CronJob {
    CronJob {
        metadata: meta(name, ns, labels),
        spec: Some(CronJobSpec {
            schedule: "@daily".to_owned(),
            job_template: JobTemplateSpec {
                metadata: None,
                spec: Some(JobSpec {
                    template: template(labels, flaws),
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        }),
        ..CronJob::default()
    }
}

pub fn job(metadata: ObjectMeta, labels: &[(&str, &str)], flaws: Flaws) -> Job {
    Job {
        metadata,
        spec: Some(JobSpec {
            template: template(labels, flaws),
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// Counts the recorded requests per path.
pub fn per_path(requests: &[Recorded]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in requests {
        *counts.entry(r.path.clone()).or_default() += 1;
    }
    counts
}
