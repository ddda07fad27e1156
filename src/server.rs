//! The listeners: routes, body limits, TLS accept loop, load shedding, graceful shutdown.
//!
//! The webhook listener (HTTPS, optionally mutual TLS) serves only `POST /validate` and
//! `POST /mutate`. The operations listener (plain HTTP, for kubelet probes and Prometheus,
//! which then need no client certificate) serves `GET /healthz` (the process is alive),
//! `GET /readyz` (a policy set is loaded, the webhook listener is up, not shutting down) and
//! `GET /metrics`. Every error answer carries a `metav1.Status` JSON body. HTTP/1.1
//! (keep-alive) and HTTP/2 are served on both, chosen by ALPN on the webhook port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::admission::Decoded;
use crate::admission::{self, Answer};
use crate::engine;
use crate::image_pass::ReviewImages;
use crate::images::Verifier;
use crate::metrics::Metrics;
use crate::namespaces::{NamespaceCache, NamespaceLabels};
use crate::outcome::{Endpoint, Outcome};
use crate::policy::pss::namespace_write::POD_CHECK_TIMEOUT;
use crate::reload::PolicyStore;
use crate::tls::ServerTls;

/// The API server never sends more than 3 MiB (its own request limit); anything larger is
/// refused before it is read.
pub const DEFAULT_BODY_LIMIT: usize = 3 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The webhook listener (HTTPS).
    pub addr: SocketAddr,
    /// The operations listener (plain HTTP: metrics, health, readiness); none when `None`.
    pub metrics_addr: Option<SocketAddr>,
    pub body_limit: usize,
    /// Reviews being answered at once; more are refused with 503 so a flood cannot exhaust
    /// memory (the API server retries or applies the failure policy).
    pub max_in_flight: usize,
    /// A review not answered by then gets 503: below the API server's webhook timeout, so
    /// portier answers before the API server gives up on it.
    pub request_timeout: Duration,
    /// How long shutdown reports not ready before it stops accepting, so the Service drains.
    pub shutdown_delay: Duration,
    /// A client that has not finished its TLS handshake by then is dropped.
    pub handshake_timeout: Duration,
    /// A client that has not sent a request's headers by then is dropped (also idle keep-alive).
    pub header_read_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            addr: SocketAddr::from(([0, 0, 0, 0], 8443)),
            metrics_addr: Some(SocketAddr::from(([0, 0, 0, 0], 9090))),
            body_limit: DEFAULT_BODY_LIMIT,
            max_in_flight: 1024,
            request_timeout: Duration::from_millis(2500),
            shutdown_delay: Duration::from_secs(0),
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

struct AppState {
    store: Arc<PolicyStore>,
    /// Namespace labels for policies that need them.
    namespaces: Arc<NamespaceCache>,
    metrics: Arc<Metrics>,
    /// Image signature verdicts (cache, registry access) for `signed-images`.
    images: Arc<Verifier>,
    body_limit: usize,
    in_flight: Semaphore,
    request_timeout: Duration,
    ready: AtomicBool,
}

/// A running server. Call [`Server::shutdown`] to stop it; dropping it stops accepting too.
pub struct Server {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    state: Arc<AppState>,
    shutdown_delay: Duration,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds the listeners and starts serving in the background. `images` verifies image
    /// signatures for `signed-images` (its cache, registry clients and backoff are shared with
    /// whoever else holds it, such as the periodic audit).
    pub async fn start(
        options: ServeOptions,
        tls: Arc<ServerTls>,
        store: Arc<PolicyStore>,
        metrics: Arc<Metrics>,
        images: Arc<Verifier>,
    ) -> std::io::Result<Server> {
        let namespaces = NamespaceCache::without_api(
            "this server was started without access to the Kubernetes API".into(),
            Arc::clone(&metrics),
        );
        Server::start_with(options, tls, store, metrics, images, namespaces).await
    }

    /// [`Server::start`], reading namespace labels from `namespaces`.
    pub async fn start_with(
        options: ServeOptions,
        tls: Arc<ServerTls>,
        store: Arc<PolicyStore>,
        metrics: Arc<Metrics>,
        images: Arc<Verifier>,
        namespaces: Arc<NamespaceCache>,
    ) -> std::io::Result<Server> {
        let webhook_listener = TcpListener::bind(options.addr).await?;
        let local_addr = webhook_listener.local_addr()?;
        let ops_listener = match options.metrics_addr {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let metrics_addr = match &ops_listener {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let state = Arc::new(AppState {
            store,
            namespaces,
            images,
            metrics,
            body_limit: options.body_limit,
            in_flight: Semaphore::new(options.max_in_flight.max(1)),
            request_timeout: options.request_timeout,
            ready: AtomicBool::new(false),
        });
        let (stop, stopped) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(accept_loop(
            webhook_listener,
            Some(tls),
            webhook_router(Arc::clone(&state)),
            options.clone(),
            stopped.clone(),
        ))];
        if let Some(listener) = ops_listener {
            tasks.push(tokio::spawn(accept_loop(
                listener,
                None,
                ops_router(Arc::clone(&state)),
                options.clone(),
                stopped,
            )));
        }
        state.ready.store(true, Ordering::Release);
        Ok(Server {
            local_addr,
            metrics_addr,
            state,
            shutdown_delay: options.shutdown_delay,
            stop,
            tasks,
        })
    }

    /// The webhook listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The operations listener's address, if it runs.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Reports not ready, waits the shutdown delay (the Service stops sending new requests),
    /// stops accepting, and waits (bounded) for in-flight requests.
    pub async fn shutdown(mut self) {
        self.state.ready.store(false, Ordering::Release);
        tokio::time::sleep(self.shutdown_delay).await;
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    router: Router,
    options: ServeOptions,
    mut stopped: watch::Receiver<bool>,
) {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    http.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        // The configuration of the moment (the client CA may have been replaced): this
        // connection keeps it for its lifetime.
        let acceptor = tls.as_ref().map(|tls| TlsAcceptor::from(tls.config()));
        let service = TowerToHyperService::new(router.clone());
        let http = http.clone();
        let watcher = graceful.watcher();
        let handshake_timeout = options.handshake_timeout;
        tokio::spawn(async move {
            let Some(acceptor) = acceptor else {
                serve(&http, TokioIo::new(tcp), service, watcher, peer).await;
                return;
            };
            let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            serve(&http, TokioIo::new(tls), service, watcher, peer).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(options.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: in-flight connections did not finish in time");
    }
}

async fn serve<I>(
    http: &auto::Builder<TokioExecutor>,
    io: I,
    service: TowerToHyperService<Router>,
    watcher: hyper_util::server::graceful::Watcher,
    peer: SocketAddr,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let conn = http.serve_connection(io, service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

fn webhook_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

fn ops_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn validate(State(state): State<Arc<AppState>>, request: Request) -> Response {
    admit(&state, Endpoint::Validate, request).await
}

async fn mutate(State(state): State<Arc<AppState>>, request: Request) -> Response {
    admit(&state, Endpoint::Mutate, request).await
}

async fn admit(state: &AppState, endpoint: Endpoint, request: Request) -> Response {
    let started = Instant::now();
    let Ok(_permit) = state.in_flight.try_acquire() else {
        state
            .metrics
            .record_request(endpoint, Outcome::Shed, started.elapsed().as_secs_f64());
        return unavailable("too many reviews in flight; retry");
    };
    let deadline = tokio::time::Instant::now() + state.request_timeout;
    let answered =
        tokio::time::timeout_at(deadline, answer(state, endpoint, request, deadline)).await;
    let (outcome, response) = match answered {
        Ok(Ok(answer)) => {
            log_decisions(endpoint, &answer);
            let response = json(status_code(answer.http_status), answer.body);
            (answer.outcome, response)
        }
        Ok(Err(response)) => (Outcome::Invalid, response),
        Err(_) => (
            Outcome::TimedOut,
            unavailable("the review was not answered in time"),
        ),
    };
    state
        .metrics
        .record_request(endpoint, outcome, started.elapsed().as_secs_f64());
    response
}

/// The Namespace a lookup found, as CEL's `namespaceObject` reads it, when a CEL policy of
/// `set` may need it.
fn namespace_object(
    set: &crate::policy::PolicySet,
    namespace: &str,
    lookup: &Option<crate::namespaces::Lookup<'_>>,
) -> Option<crate::cel::Json<'static>> {
    if !admission::cel_needs_namespace(set, namespace) {
        return None;
    }
    let found = lookup.as_ref()?.namespace()?;
    serde_json::to_value(found)
        .ok()
        .map(|value| crate::cel::Json::from_value(&value))
}

async fn answer(
    state: &AppState,
    endpoint: Endpoint,
    request: Request,
    deadline: tokio::time::Instant,
) -> Result<Answer, Response> {
    let body = read_body(request, state.body_limit).await?;
    let snapshot = state.store.snapshot();
    let answer = match admission::decode(&body, endpoint) {
        Decoded::Answered(answer) => answer,
        Decoded::Judge(judgement) => {
            // What the review needs and the caches lack is fetched first, at most until
            // shortly before the deadline (leaving time to answer): the namespace's labels
            // when a policy needs them, then the images' signatures. It is judged once.
            let fetch_until = deadline - state.request_timeout / 10;
            let request = judgement.request();
            let lookup = match engine::needs_namespace_labels(&snapshot.set, &request) {
                true => Some(
                    state
                        .namespaces
                        .lookup(request.namespace, fetch_until)
                        .await,
                ),
                false => None,
            };
            let labels = match &lookup {
                Some(lookup) => {
                    let labels = lookup.labels();
                    state.metrics.record_namespace_labels(labels.source());
                    labels
                }
                None => NamespaceLabels::Unknown("no policy asked for them"),
            };
            let images = match judgement.pod() {
                Some(pod) => {
                    ReviewImages::new(&state.images)
                        .verify(
                            &snapshot.set,
                            &judgement.request_in(labels),
                            pod,
                            Some(fetch_until),
                        )
                        .await
                }
                None => ReviewImages::new(&state.images),
            };
            let namespace_object = namespace_object(&snapshot.set, request.namespace, &lookup);
            admission::answer_in(
                &judgement,
                &snapshot.set,
                &images,
                labels,
                namespace_object.as_ref(),
            )
        }
        Decoded::Other(other) => {
            // CEL policies alone judge it: the namespace is looked up when one needs it.
            let fetch_until = deadline - state.request_timeout / 10;
            let lookup = match admission::cel_needs_namespace(&snapshot.set, other.namespace()) {
                true => Some(
                    state
                        .namespaces
                        .lookup(other.namespace(), fetch_until)
                        .await,
                ),
                false => None,
            };
            let labels = match &lookup {
                Some(lookup) => {
                    let labels = lookup.labels();
                    state.metrics.record_namespace_labels(labels.source());
                    labels
                }
                None => NamespaceLabels::Unknown("no policy asked for them"),
            };
            let namespace_object = namespace_object(&snapshot.set, other.namespace(), &lookup);
            admission::answer_other_in(&other, &snapshot.set, labels, namespace_object.as_ref())
        }
        Decoded::Namespace(review, other) => {
            namespace_write(state, &review, &other, &snapshot.set, deadline).await
        }
    };
    // Counted once per review and policy: decisions come in policy order.
    let mut last = None;
    for d in &answer.decisions {
        if last != Some(d.policy_index)
            && let Some(counter) = snapshot.decision_counters.get(d.policy_index)
        {
            counter.inc();
        }
        last = Some(d.policy_index);
    }
    for &index in &answer.mutated {
        if let Some(counter) = snapshot.mutation_counters.get(index) {
            counter.inc();
        }
    }
    Ok(answer)
}

/// A Namespace write. Its pods are listed only when a policy asks (an `enforce` level set or
/// tightened), within upstream's budget: at most 1 s, and at most half of what remains.
async fn namespace_write(
    state: &AppState,
    review: &admission::NamespaceReview<'_>,
    other: &admission::Other<'_>,
    set: &crate::policy::PolicySet,
    deadline: tokio::time::Instant,
) -> Answer {
    let judged = review.judge(set);
    if !judged.is_empty() {
        state
            .metrics
            .record_namespace_labels(review.labels().source());
    }
    let now = tokio::time::Instant::now();
    let budget = now + POD_CHECK_TIMEOUT.min(deadline.saturating_duration_since(now) / 2);
    let pods = match admission::NamespaceReview::needs_pods(&judged) {
        true => state.namespaces.list_pods(review.name(), budget).await,
        false => Ok(Vec::new()),
    };
    admission::answer_namespace(review, &judged, other, set, &pods, || {
        tokio::time::Instant::now() >= budget
    })
}

/// One structured line per violation decided: who asked for what, which policy, what it
/// found. Never the object: env values and annotations can carry secrets.
fn log_decisions(endpoint: Endpoint, answer: &Answer) {
    let Some(subject) = &answer.subject else {
        return;
    };
    let denied = answer.outcome == Outcome::Denied;
    for d in &answer.decisions {
        tracing::info!(
            target: "portier::decision",
            endpoint = endpoint.as_str(),
            uid = %subject.uid,
            operation = %subject.operation,
            kind = %subject.kind,
            namespace = %subject.namespace,
            name = %subject.name,
            user = %subject.user,
            policy = %d.policy,
            check = d.check,
            mode = d.mode.as_str(),
            allowed = !denied,
            message = %d.message,
            "admission decision"
        );
    }
}

fn unavailable(message: &str) -> Response {
    let mut response = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        message,
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

/// Reads the whole body, refusing (413) anything over `limit`.
///
/// Before answering 413 the rest of an oversized body is read and dropped (up to
/// [`DRAIN_CAP`] bytes and [`DRAIN_TIME`]): closing a socket with unread data makes the kernel
/// reset the connection, and the client would see a broken pipe instead of the answer.
async fn read_body(request: Request, limit: usize) -> Result<bytes::Bytes, Response> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = request.into_body();
    if declared.is_some_and(|len| len > limit as u64) {
        if declared.is_some_and(|len| len <= (limit + DRAIN_CAP) as u64) {
            drain(body, limit + DRAIN_CAP).await;
        }
        return Err(too_large(limit));
    }
    // A body that arrives in one frame (most reviews) is used as it is, without a copy; a body
    // in several frames is gathered into one buffer sized from Content-Length.
    let mut first: Option<bytes::Bytes> = None;
    let mut collected = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("cannot read the request body: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len();
        if total > limit {
            drain(body, DRAIN_CAP).await;
            return Err(too_large(limit));
        }
        if data.is_empty() {
            continue;
        }
        if collected.is_empty() && first.is_none() {
            first = Some(data);
            continue;
        }
        if let Some(first) = first.take() {
            let expected = declared.map_or(0, |len| len as usize).max(total).min(limit);
            collected.reserve_exact(expected);
            collected.extend_from_slice(&first);
        }
        collected.extend_from_slice(&data);
    }
    Ok(first.unwrap_or_else(|| bytes::Bytes::from(collected)))
}

/// How much of an oversized body is read and dropped before answering 413, and for how long.
const DRAIN_CAP: usize = 8 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(2);

async fn drain(body: Body, cap: usize) {
    let discard = async {
        let mut body = body;
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                seen += data.len();
                if seen > cap {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, discard).await;
}

fn too_large(limit: usize) -> Response {
    let mut response = error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
        &format!("the request body is larger than {limit} bytes"),
    );
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

async fn healthz() -> Response {
    text(StatusCode::OK, "ok")
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    // The store holds a validated set from start-up on (empty only with --allow-empty), so
    // ready means: listening and not shutting down.
    if state.ready.load(Ordering::Acquire) {
        text(StatusCode::OK, "ok")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found(request: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("no route for {}", request.uri().path()),
    )
}

async fn method_not_allowed(request: Request) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        &format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

fn status_code(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn error(code: StatusCode, reason: &'static str, message: &str) -> Response {
    json(code, admission::status_body(code.as_u16(), reason, message))
}

fn json(code: StatusCode, body: Vec<u8>) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response()
}

fn text(code: StatusCode, body: &'static str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}
