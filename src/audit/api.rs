//! The few Kubernetes API calls the audit makes, through the `kube` client, and what their
//! failures mean to a scan.
//!
//! Lists are read as raw JSON pages (`limit` / `continue`) and their items handed on as raw
//! JSON text: the same text admission receives, so the audit decodes it with the very decoder
//! admission uses, and a page is dropped as soon as it has been judged.

use std::path::Path;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::Request;
use kube::core::params::ListParams;
use kube::{Client, Config};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::pod::WorkloadKind;

/// Why a call to the API server failed, in the terms a scan acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiFailure {
    /// HTTP 401: the API server refused the credentials. Nothing else will work either.
    Unauthorized(String),
    /// HTTP 403: this identity may not do that (RBAC).
    Forbidden(String),
    /// HTTP 404 naming the namespace: it no longer exists.
    NamespaceGone(String),
    /// HTTP 404 for the resource type: the API server does not serve it (e.g. a CRD that is
    /// not installed).
    NotServed(String),
    /// HTTP 410 Gone: a `continue` token expired (the API server compacted that snapshot).
    Expired(String),
    /// Any other answer that is not a success (after the client's retries of 429/503/504).
    Status { code: u16, message: String },
    /// No answer at all: connection refused, DNS, TLS, timeout.
    Transport(String),
    /// A success whose body is not what the API server sends.
    Decode(String),
}

impl ApiFailure {
    /// Whether this failure means the API server cannot be used at all, so scanning further
    /// namespaces would only repeat it: no answer, refused credentials, or a request the API
    /// server rejects as malformed (400: a bad label selector is bad in every namespace).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ApiFailure::Unauthorized(_)
                | ApiFailure::Transport(_)
                | ApiFailure::Status { code: 400, .. }
        )
    }

    pub fn message(&self) -> &str {
        match self {
            ApiFailure::Unauthorized(m)
            | ApiFailure::Forbidden(m)
            | ApiFailure::NamespaceGone(m)
            | ApiFailure::NotServed(m)
            | ApiFailure::Expired(m)
            | ApiFailure::Transport(m)
            | ApiFailure::Decode(m) => m,
            ApiFailure::Status { message, .. } => message,
        }
    }
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiFailure::Unauthorized(m) => write!(f, "401 Unauthorized: {m}"),
            ApiFailure::Forbidden(m) => write!(f, "403 Forbidden: {m}"),
            ApiFailure::NamespaceGone(m) | ApiFailure::NotServed(m) => {
                write!(f, "404 Not Found: {m}")
            }
            ApiFailure::Expired(m) => write!(f, "410 Gone: {m}"),
            ApiFailure::Status { code, message } => write!(f, "HTTP {code}: {message}"),
            ApiFailure::Transport(m) => write!(f, "no answer from the API server: {m}"),
            ApiFailure::Decode(m) => write!(f, "unexpected answer from the API server: {m}"),
        }
    }
}

/// Maps a kube client error to what it means for a scan.
pub fn classify(error: kube::Error) -> ApiFailure {
    match error {
        kube::Error::Api(status) => {
            let message = if status.message.is_empty() {
                status.reason.clone()
            } else {
                status.message.clone()
            };
            match status.code {
                401 => ApiFailure::Unauthorized(message),
                403 => ApiFailure::Forbidden(message),
                404 if status
                    .details
                    .as_ref()
                    .is_some_and(|d| d.kind == "namespaces") =>
                {
                    ApiFailure::NamespaceGone(message)
                }
                404 => ApiFailure::NotServed(message),
                410 => ApiFailure::Expired(message),
                code => ApiFailure::Status { code, message },
            }
        }
        kube::Error::SerdeError(e) => ApiFailure::Decode(e.to_string()),
        other => ApiFailure::Transport(error_chain(&other)),
    }
}

/// An error and its sources, `a: b: c`, without repeating a source its parent already printed.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

/// Where the client's configuration comes from.
#[derive(Debug, Clone, Default)]
pub struct Connect {
    /// A kubeconfig file; `None` infers the configuration as kubectl does (`$KUBECONFIG`,
    /// `~/.kube/config`), then the in-cluster service account.
    pub kubeconfig: Option<std::path::PathBuf>,
    /// A kubeconfig context other than the current one.
    pub context: Option<String>,
    /// How long one API call may take before it counts as no answer.
    pub timeout: Option<Duration>,
}

/// The client could not be configured (before any request was sent).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(String);

/// A client and the API server it talks to.
#[derive(Clone)]
pub struct Connection {
    pub client: Client,
    /// The API server's URL, for messages.
    pub server: String,
}

/// Builds a kube client from `connect`.
pub async fn client(connect: &Connect) -> Result<Connection, ConnectError> {
    let options = KubeConfigOptions {
        context: connect.context.clone(),
        ..KubeConfigOptions::default()
    };
    let mut config = match (&connect.kubeconfig, &connect.context) {
        (Some(path), _) => {
            let kubeconfig = read_kubeconfig(path)?;
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| {
                    ConnectError(format!(
                        "cannot use kubeconfig {}: {}",
                        path.display(),
                        error_chain(&e)
                    ))
                })?
        }
        (None, Some(_)) => Config::from_kubeconfig(&options).await.map_err(|e| {
            ConnectError(format!("cannot load the kubeconfig: {}", error_chain(&e)))
        })?,
        (None, None) => Config::infer().await.map_err(|e| {
            ConnectError(format!(
                "no Kubernetes configuration found (no kubeconfig, not in a cluster): {}",
                error_chain(&e)
            ))
        })?,
    };
    if let Some(timeout) = connect.timeout {
        config.read_timeout = Some(timeout);
        config.connect_timeout = Some(timeout.min(Duration::from_secs(10)));
    }
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config)
        .map_err(|e| ConnectError(format!("cannot build the API client: {}", error_chain(&e))))?;
    Ok(Connection { client, server })
}

fn read_kubeconfig(path: &Path) -> Result<Kubeconfig, ConnectError> {
    Kubeconfig::read_from(path).map_err(|e| {
        ConnectError(format!(
            "cannot read kubeconfig {}: {}",
            path.display(),
            error_chain(&e)
        ))
    })
}

/// The REST collection of a judged kind in a namespace, e.g. `/apis/apps/v1/namespaces/shop/deployments`.
pub fn collection_path(kind: WorkloadKind, namespace: &str) -> String {
    let prefix = match api_version(kind) {
        "v1" => "/api/v1".to_owned(),
        group_version => format!("/apis/{group_version}"),
    };
    format!("{prefix}/namespaces/{namespace}/{}", plural(kind))
}

/// The apiVersion objects of `kind` are served as.
pub fn api_version(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Pod | WorkloadKind::ReplicationController | WorkloadKind::PodTemplate => "v1",
        WorkloadKind::Deployment
        | WorkloadKind::StatefulSet
        | WorkloadKind::DaemonSet
        | WorkloadKind::ReplicaSet => "apps/v1",
        WorkloadKind::Job | WorkloadKind::CronJob => "batch/v1",
    }
}

/// The resource name RBAC and URLs use for `kind`.
pub fn plural(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Pod => "pods",
        WorkloadKind::ReplicationController => "replicationcontrollers",
        WorkloadKind::Deployment => "deployments",
        WorkloadKind::StatefulSet => "statefulsets",
        WorkloadKind::DaemonSet => "daemonsets",
        WorkloadKind::ReplicaSet => "replicasets",
        WorkloadKind::Job => "jobs",
        WorkloadKind::CronJob => "cronjobs",
        WorkloadKind::PodTemplate => "podtemplates",
    }
}

/// One page of a list, borrowed from the response text.
#[derive(Debug, Deserialize)]
pub struct RawList<'a> {
    #[serde(default)]
    pub metadata: Option<RawListMeta>,
    #[serde(borrow, default)]
    pub items: Option<Vec<&'a RawValue>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawListMeta {
    #[serde(default, rename = "continue")]
    pub continue_token: Option<String>,
}

impl RawList<'_> {
    /// The token for the next page; `None` on the last page.
    pub fn next_token(&self) -> Option<&str> {
        self.metadata
            .as_ref()
            .and_then(|m| m.continue_token.as_deref())
            .filter(|t| !t.is_empty())
    }

    pub fn items(&self) -> &[&RawValue] {
        self.items.as_deref().unwrap_or(&[])
    }
}

/// Paged list calls with a fixed page size and label selector.
#[derive(Clone)]
pub struct Lister {
    client: Client,
    page_size: u32,
    selector: Option<String>,
}

impl Lister {
    pub fn new(client: Client, page_size: u32, selector: Option<String>) -> Lister {
        Lister {
            client,
            page_size: page_size.max(1),
            selector,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Fetches one page of the collection at `path`. `labels` applies the label selector
    /// (workloads), not for namespaces.
    pub async fn page(
        &self,
        path: &str,
        continue_token: Option<&str>,
        labels: bool,
    ) -> Result<String, ApiFailure> {
        let mut params = ListParams::default().limit(self.page_size);
        if let (true, Some(selector)) = (labels, &self.selector) {
            params = params.labels(selector);
        }
        if let Some(token) = continue_token {
            params = params.continue_token(token);
        }
        let request = Request::new(path)
            .list(&params)
            .map_err(|e| ApiFailure::Decode(format!("cannot build the request: {e}")))?;
        self.client.request_text(request).await.map_err(classify)
    }
}

/// The part of an item's metadata the audit reads besides what the pod decoder reads.
#[derive(Debug, Default, Deserialize)]
pub struct ItemHead {
    #[serde(default)]
    pub metadata: Option<ItemMeta>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemMeta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub owner_references: Option<Vec<OwnerReference>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct OwnerReference {
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub controller: Option<bool>,
}

impl ItemHead {
    pub fn parse(json: &str) -> Result<ItemHead, serde_json::Error> {
        serde_json::from_str(json)
    }

    pub fn name(&self) -> &str {
        self.metadata
            .as_ref()
            .and_then(|m| m.name.as_deref())
            .unwrap_or("")
    }

    pub fn uid(&self) -> &str {
        self.metadata
            .as_ref()
            .and_then(|m| m.uid.as_deref())
            .unwrap_or("")
    }

    /// The uid of the managing controller (the owner reference with `controller: true`).
    pub fn controller_uid(&self) -> Option<&str> {
        self.metadata
            .as_ref()?
            .owner_references
            .as_deref()?
            .iter()
            .find(|o| o.controller == Some(true) && !o.uid.is_empty())
            .map(|o| o.uid.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_api_groups() {
        assert_eq!(
            collection_path(WorkloadKind::Pod, "shop"),
            "/api/v1/namespaces/shop/pods"
        );
        assert_eq!(
            collection_path(WorkloadKind::Deployment, "shop"),
            "/apis/apps/v1/namespaces/shop/deployments"
        );
        assert_eq!(
            collection_path(WorkloadKind::CronJob, "a"),
            "/apis/batch/v1/namespaces/a/cronjobs"
        );
        assert_eq!(
            collection_path(WorkloadKind::ReplicationController, "a"),
            "/api/v1/namespaces/a/replicationcontrollers"
        );
    }

    #[test]
    fn raw_lists_borrow_items_and_expose_the_continue_token() {
        let body = r#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"7","continue":"abc"},
            "items":[{"metadata":{"name":"a","uid":"u1","ownerReferences":[{"uid":"x","controller":false},{"uid":"rs","controller":true}]}},{"metadata":{"name":"b"}}]}"#;
        let list: RawList = serde_json::from_str(body).unwrap();
        assert_eq!(list.next_token(), Some("abc"));
        assert_eq!(list.items().len(), 2);
        let head = ItemHead::parse(list.items()[0].get()).unwrap();
        assert_eq!((head.name(), head.uid()), ("a", "u1"));
        assert_eq!(head.controller_uid(), Some("rs"));
        let head = ItemHead::parse(list.items()[1].get()).unwrap();
        assert_eq!(head.controller_uid(), None);
        let last: RawList =
            serde_json::from_str(r#"{"metadata":{"continue":""},"items":null}"#).unwrap();
        assert_eq!(last.next_token(), None);
        assert!(last.items().is_empty());
    }
}
