//! `portier audit`: the dry run over what already runs in a cluster.
//!
//! The audit lists Pods and the pod controllers (and, for CEL policies, the kinds they select)
//! through the Kubernetes API, namespace by namespace and page by page, and judges each object with the decoder and engine admission
//! uses: the raw JSON of a list item is what admission would receive, so `audit`, `check` and
//! the webhook cannot disagree. Every policy is judged as if it were in enforce mode; each
//! violation still says which mode its policy is really in.
//!
//! A pod is judged on the top-most listed controller that manages it (Pod → ReplicaSet →
//! Deployment, Pod → Job → CronJob), which is reported once with the number of its pods.
//! Controllers are listed first and only an owner map (uid → top-most controller) is kept, so
//! pod pages are judged and dropped one by one and memory stays flat however many pods run.
//!
//! `signed-images` is judged as admission judges it, one page at a time: what the page's
//! objects need verified and the cache lacks is planned first, verified together (the verifier
//! runs a bounded number at a time, each bounded by its rule's `timeout`), then each object is
//! judged once with those verdicts. Only the page in hand is kept for that, so memory stays as
//! flat as without verification. Without a verifier
//! ([`ScanOptions::images`] `None`), those policies report nothing and the summary says so.
//! Objects are judged as admission would see them after `/mutate` (tags `mutateDigest` would
//! pin count as pinned), and a pod that reports the digests it runs
//! (`status.containerStatuses[].imageID`) is verified by those: a pod managed by a controller
//! is then reported itself when what it runs fails, its pods sharing one finding counted
//! together.
//!
//! CEL policies (portier's `check: cel` and ValidatingAdmissionPolicies with their bindings)
//! judge every kind they select, as at admission: [`cel_resources`] asks the API server's
//! discovery what it serves and chooses, with the policies' own matchers, the listable
//! resources a CREATE of whose objects they would be called for. Workloads of such a kind are
//! judged by them in the same pass (one more JSON decode per object, only for those kinds),
//! including pods and ReplicaSets folded into their controller: the built-in checks judge
//! those on the controller, but a policy on Pods judges every pod. The other namespaced
//! resources are listed in each namespace after the workloads, exactly like them (page size,
//! `continue`, 410 restart, a 403 or 404 reported per resource); the cluster-scoped ones once,
//! after every namespace, with `--all-namespaces` only (with `-n` the summary says they were
//! not audited), as a result whose namespace is `""` (its report is a ClusterPolicyReport).
//! Each object is judged as a CREATE of it through the seam `check` uses
//! ([`judge_object`]), `namespaceObject` and `namespaceSelector` reading the
//! Namespace the audit listed (`-A`) or read (`-n`) and nothing else: one it could not read
//! makes the policies that need it fail closed, saying why (the API's answer). Sets without
//! CEL policies make no discovery call and decode nothing more.
//!
//! Failures are kept per namespace: a forbidden namespace (403), one that disappears during the
//! scan (404) or an expired `continue` token (410, the list restarts once) is reported and the
//! scan goes on. Only a dead or refusing API server stops it.

pub mod api;
mod cel_judge;
pub mod cel_resources;
pub mod drive;
mod namespace_scan;
pub mod output;
pub mod periodic;
pub mod report;
pub mod running;
mod scan;
mod summary;

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use crate::images::Verifier;
use crate::pod::WorkloadKind;
use crate::row::Row;

pub use api::{ApiFailure, Connect, ConnectError, Connection, Lister, client};
pub use cel_judge::{CelNamespace, judge_object};
pub use scan::Scanner;
pub use summary::{NamespaceSummary, PolicySummary, Summary};

/// The controllers, parents before children: a ReplicaSet or Job can only be folded into a
/// Deployment or CronJob that was listed before it.
pub const CONTROLLER_ORDER: [WorkloadKind; 7] = [
    WorkloadKind::Deployment,
    WorkloadKind::CronJob,
    WorkloadKind::StatefulSet,
    WorkloadKind::DaemonSet,
    WorkloadKind::ReplicationController,
    WorkloadKind::ReplicaSet,
    WorkloadKind::Job,
];

/// The list page size when none is given.
pub const DEFAULT_PAGE_SIZE: u32 = 500;

/// Which namespaces to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace (listed through the API, which needs `list` on namespaces).
    All,
    /// These namespaces, in this order.
    Namespaces(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub scope: Scope,
    /// A label selector passed to every workload list call.
    pub selector: Option<String>,
    pub page_size: u32,
    /// Verifies image signatures for `signed-images` (registry access, as admission does);
    /// `None` judges without them, so those policies report nothing.
    pub images: Option<Arc<Verifier>>,
}

/// Whether the `signed-images` policies of a scan were checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageSignatures {
    /// Image signatures were verified against the registries.
    Verified,
    /// They were not (`--no-verify-images`): the `signed-images` policies judged references
    /// and digests only.
    NotVerified,
}

/// Why a scan could not run or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("{}", unusable(.0))]
    Unreachable(ApiFailure),
    #[error("{0:?} is not a namespace name (lowercase letters, digits and '-', at most 63)")]
    BadNamespace(String),
    #[error(
        "cannot list namespaces for --all-namespaces: {0}; name the namespaces with -n instead, or grant list on namespaces"
    )]
    NamespacesForbidden(ApiFailure),
    #[error("cannot list namespaces: {0}")]
    Namespaces(ApiFailure),
    #[error("the scan stopped in namespace {namespace:?} after {done} namespace(s): {failure}")]
    Interrupted {
        namespace: String,
        done: usize,
        failure: ApiFailure,
    },
}

/// Why the API cannot be used, said as the user needs it.
pub fn unusable(failure: &ApiFailure) -> String {
    match failure {
        ApiFailure::Transport(_) => format!("cannot reach the Kubernetes API: {failure}"),
        _ => format!("the Kubernetes API refused the audit: {failure}"),
    }
}

/// Whether `name` is a valid namespace name (an RFC 1123 label).
pub fn is_namespace_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// What an audited object is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectKind {
    /// A Pod or pod controller, listed by the workload scan.
    Workload(WorkloadKind),
    /// An object of another resource, listed for the CEL policies that select it.
    Other(Arc<cel_resources::Resource>),
}

impl ObjectKind {
    /// The kind's name, e.g. `Deployment` or `Service`.
    pub fn as_str(&self) -> &str {
        match self {
            ObjectKind::Workload(kind) => kind.as_str(),
            ObjectKind::Other(resource) => &resource.kind,
        }
    }

    /// The `apiVersion` its objects are listed in.
    pub fn api_version(&self) -> String {
        match self {
            ObjectKind::Workload(kind) => api::api_version(*kind).to_owned(),
            ObjectKind::Other(resource) => resource.api_version(),
        }
    }
}

/// One object judged (a workload, or an object of another kind a CEL policy selects), with
/// what it violates.
#[derive(Debug, Clone)]
pub struct WorkloadResult {
    pub kind: ObjectKind,
    pub name: String,
    pub uid: String,
    /// Pods it stands for: the pods under a controller, 1 for a pod judged itself.
    pub pods: u32,
    /// Policies that judge this workload and found nothing wrong.
    pub passed: u32,
    /// One per violation, in policy order.
    pub rows: Vec<Row>,
}

/// What went wrong in one namespace (the scan went on).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    pub namespace: String,
    /// The resource concerned (`pods`, `deployments`, ...), or the object (`Pod/web-1`).
    pub resource: String,
    pub message: String,
}

/// How completely a namespace was scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every kind was listed and every object judged.
    Complete,
    /// Some kinds or objects could not be listed or judged; the rest was.
    Partial,
    /// Nothing could be listed (403 on every kind).
    Forbidden,
    /// The namespace disappeared during the scan.
    Vanished,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Complete => "complete",
            Status::Partial => "partial",
            Status::Forbidden => "forbidden",
            Status::Vanished => "vanished",
        }
    }
}

/// Everything found in one namespace, or (`namespace` empty) among the cluster-scoped objects.
#[derive(Debug, Clone)]
pub struct NamespaceResult {
    pub namespace: String,
    pub status: Status,
    /// Workloads with at least one violation: controllers in listing order, then pods.
    pub workloads: Vec<WorkloadResult>,
    /// Top-most controllers judged (with or without violations).
    pub controllers: u32,
    /// Pods judged on their controller.
    pub covered_pods: u32,
    /// Pods judged themselves (no listed controller).
    pub standalone_pods: u32,
    /// Objects of other kinds judged for the CEL policies that select them.
    pub objects: u32,
    /// (workload, policy) pairs judged without a violation.
    pub passed: u64,
    pub problems: Vec<Problem>,
    /// Things worth saying that did not cost results (a list restarted after 410 Gone).
    pub notes: Vec<String>,
    /// List calls that succeeded.
    pub lists_ok: u32,
    /// When the namespace was judged.
    pub judged_at: SystemTime,
}

impl NamespaceResult {
    /// Whether this is the cluster-scoped objects' result rather than a namespace's.
    pub fn is_cluster_scope(&self) -> bool {
        self.namespace.is_empty()
    }

    /// Workloads judged: top-most controllers and standalone pods.
    pub fn judged(&self) -> u64 {
        u64::from(self.controllers) + u64::from(self.standalone_pods)
    }

    pub fn violations(&self) -> usize {
        self.workloads.iter().map(|w| w.rows.len()).sum()
    }

    pub fn rows(&self) -> impl Iterator<Item = (&WorkloadResult, &Row)> {
        self.workloads
            .iter()
            .flat_map(|w| w.rows.iter().map(move |r| (w, r)))
    }
}
