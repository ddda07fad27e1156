//! The OCI 1.1 referrers API in front of a real registry: Debian's docker-registry
//! (distribution 2.8) predates it, so this proxy adds it the way registries that have it
//! behave (distribution-spec v1.1 "Listing Referrers"): a manifest PUT whose body has a
//! `subject` is recorded and answered with an `OCI-Subject` header, and
//! `GET /v2/<name>/referrers/<digest>` answers an image index of those manifests'
//! descriptors (with `artifactType`, falling back to the config's media type, and their
//! annotations), filtered by `?artifactType=` with `OCI-Filters-Applied`, an empty index
//! (never 404) for a subject nobody refers to. Everything else is passed to the registry
//! untouched, so pushes, pulls and the legacy tags work as they do there.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::registry::{Registry, http_client, sha256_digest};

type Index = HashMap<(String, String), Vec<Value>>;

struct State {
    upstream: String,
    client: reqwest::Client,
    referrers: Mutex<Index>,
    /// How many referrers API requests were answered.
    pub listed: AtomicUsize,
}

/// A referrers-API-speaking registry on 127.0.0.1: `host()` is what image references name.
pub struct ReferrersApi {
    host: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
    pub registry: Registry,
}

impl ReferrersApi {
    pub async fn start() -> ReferrersApi {
        let registry = Registry::start().await;
        let state = Arc::new(State {
            upstream: registry.base_url(),
            client: http_client(),
            referrers: Mutex::new(HashMap::new()),
            listed: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let for_handler = Arc::clone(&state);
        let router = axum::Router::new().fallback(move |request: Request<Body>| {
            let state = Arc::clone(&for_handler);
            async move { handle(&state, request).await }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        ReferrersApi {
            host,
            state,
            task,
            registry,
        }
    }

    /// "127.0.0.1:PORT" of the proxy.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Referrers API requests answered so far.
    pub fn listed(&self) -> usize {
        self.state.listed.load(Ordering::SeqCst)
    }
}

impl Drop for ReferrersApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn referrers_path(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/v2/")?;
    let (name, digest) = rest.rsplit_once("/referrers/")?;
    Some((name.to_owned(), digest.to_owned()))
}

fn manifest_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    let (name, _) = rest.rsplit_once("/manifests/")?;
    Some(name.to_owned())
}

async fn handle(state: &State, request: Request<Body>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    if request.method() == "GET"
        && let Some((name, digest)) = referrers_path(&path)
    {
        state.listed.fetch_add(1, Ordering::SeqCst);
        let wanted = query.as_deref().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "artifactType")
                .map(|(_, v)| v.into_owned())
        });
        let all = state
            .referrers
            .lock()
            .unwrap()
            .get(&(name, digest))
            .cloned()
            .unwrap_or_default();
        let manifests: Vec<Value> = all
            .into_iter()
            .filter(|d| wanted.as_deref().is_none_or(|w| d["artifactType"] == w))
            .collect();
        let body = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests
        }))
        .unwrap();
        let mut response = Response::new(Body::from(body));
        response.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
        );
        if wanted.is_some() {
            response.headers_mut().insert(
                "oci-filters-applied",
                HeaderValue::from_static("artifactType"),
            );
        }
        return response;
    }
    let method = request.method().clone();
    let headers = request.headers().clone();
    let body = axum::body::to_bytes(request.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    let url = match &query {
        Some(q) => format!("{}{path}?{q}", state.upstream),
        None => format!("{}{path}", state.upstream),
    };
    let mut forward = state.client.request(method.clone(), url);
    for name in ["content-type", "accept", "authorization"] {
        for value in headers.get_all(name) {
            forward = forward.header(name, value.clone());
        }
    }
    let answer = match forward.body(body.clone()).send().await {
        Ok(a) => a,
        Err(e) => {
            let mut response = Response::new(Body::from(e.to_string()));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            return response;
        }
    };
    let status = answer.status();
    let mut response = Response::builder().status(status.as_u16());
    for name in [
        "content-type",
        "docker-content-digest",
        "location",
        "docker-upload-uuid",
        "range",
        "www-authenticate",
    ] {
        if let Some(value) = answer.headers().get(name) {
            response = response.header(name, value.clone());
        }
    }
    if method == "PUT"
        && status.as_u16() == 201
        && let Some(name) = manifest_path(&path)
        && let Ok(manifest) = serde_json::from_slice::<Value>(&body)
        && let Some(subject) = manifest["subject"]["digest"].as_str()
    {
        let artifact_type = manifest["artifactType"]
            .as_str()
            .or(manifest["config"]["mediaType"].as_str())
            .unwrap_or_default();
        let mut descriptor = json!({
            "mediaType": manifest["mediaType"],
            "digest": sha256_digest(&body),
            "size": body.len(),
            "artifactType": artifact_type,
        });
        if manifest["annotations"].is_object() {
            descriptor["annotations"] = manifest["annotations"].clone();
        }
        state
            .referrers
            .lock()
            .unwrap()
            .entry((name, subject.to_owned()))
            .or_default()
            .push(descriptor);
        response = response.header("oci-subject", subject);
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    response.body(Body::from(bytes)).unwrap()
}
