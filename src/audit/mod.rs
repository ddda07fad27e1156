//! `portier audit`: the dry run over what already runs in a cluster.
//!
//! The audit lists Pods and the pod controllers through the Kubernetes API, namespace by
//! namespace and page by page, and judges each object with the decoder and engine admission
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
//! Failures are kept per namespace: a forbidden namespace (403), one that disappears during the
//! scan (404) or an expired `continue` token (410, the list restarts once) is reported and the
//! scan goes on. Only a dead or refusing API server stops it.

pub mod api;
pub mod output;
pub mod periodic;
pub mod report;
pub mod running;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::engine::{self, Request};
use crate::image_pass::ReviewImages;
use crate::images::{Miss, Verified, Verifier, deadline_for};
use crate::pod::{self, WorkloadKind};
use crate::policy::signed_images;
use crate::policy::{PolicySet, Unverified};
use crate::row::Row;

pub use api::{ApiFailure, Connect, ConnectError, Connection, Lister, client};

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

/// One workload judged, with what it violates.
#[derive(Debug, Clone)]
pub struct WorkloadResult {
    pub kind: WorkloadKind,
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

/// Everything found in one namespace.
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

/// A scan in progress: call [`Scanner::next_namespace`] until it returns `None`.
pub struct Scanner<'s> {
    lister: Lister,
    set: &'s PolicySet,
    /// Set when the policy set has `signed-images` policies and images are to be verified.
    images: Option<Arc<Verifier>>,
    image_signatures: Option<ImageSignatures>,
    namespaces: Vec<String>,
    next: usize,
    lists_ok: u64,
    stopped: bool,
}

impl<'s> Scanner<'s> {
    /// Resolves the namespaces to scan (listing them for [`Scope::All`]).
    pub async fn start(
        client: kube::Client,
        set: &'s PolicySet,
        options: &ScanOptions,
    ) -> Result<Scanner<'s>, AuditError> {
        let lister = Lister::new(client, options.page_size, options.selector.clone());
        let checks_images = !set.signed_images_policies().is_empty();
        let images = options.images.clone().filter(|_| checks_images);
        let image_signatures = checks_images.then_some(if images.is_some() {
            ImageSignatures::Verified
        } else {
            ImageSignatures::NotVerified
        });
        let mut scanner = Scanner {
            lister,
            set,
            images,
            image_signatures,
            namespaces: Vec::new(),
            next: 0,
            lists_ok: 0,
            stopped: false,
        };
        scanner.namespaces = match &options.scope {
            Scope::All => scanner.list_namespaces().await?,
            Scope::Namespaces(names) => {
                if let Some(bad) = names.iter().find(|n| !is_namespace_name(n)) {
                    return Err(AuditError::BadNamespace(bad.clone()));
                }
                let mut seen = std::collections::HashSet::new();
                names
                    .iter()
                    .filter(|n| seen.insert(n.as_str()))
                    .cloned()
                    .collect()
            }
        };
        Ok(scanner)
    }

    /// The namespaces this scan covers, in order.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// Whether the `signed-images` policies are checked; `None` when the set has none.
    pub fn image_signatures(&self) -> Option<ImageSignatures> {
        self.image_signatures
    }

    /// Namespaces done so far.
    pub fn done(&self) -> usize {
        self.next
    }

    /// Successful list calls so far (namespaces included).
    pub fn lists_ok(&self) -> u64 {
        self.lists_ok
    }

    pub fn lister(&self) -> &Lister {
        &self.lister
    }

    async fn list_namespaces(&mut self) -> Result<Vec<String>, AuditError> {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        let mut restarted = false;
        loop {
            let body = match self
                .lister
                .page("/api/v1/namespaces", token.as_deref(), false)
                .await
            {
                Ok(body) => body,
                Err(ApiFailure::Expired(_)) if !restarted => {
                    tracing::warn!(
                        "the namespace list's continue token expired (410 Gone); listing namespaces again"
                    );
                    restarted = true;
                    names.clear();
                    token = None;
                    continue;
                }
                Err(failure) if failure.is_fatal() && self.lists_ok == 0 => {
                    return Err(AuditError::Unreachable(failure));
                }
                Err(failure @ ApiFailure::Forbidden(_)) => {
                    return Err(AuditError::NamespacesForbidden(failure));
                }
                Err(failure) => return Err(AuditError::Namespaces(failure)),
            };
            self.lists_ok += 1;
            let list: api::RawList = serde_json::from_str(&body)
                .map_err(|e| AuditError::Namespaces(ApiFailure::Decode(e.to_string())))?;
            for item in list.items() {
                let head = api::ItemHead::parse(item.get())
                    .map_err(|e| AuditError::Namespaces(ApiFailure::Decode(e.to_string())))?;
                if !head.name().is_empty() {
                    names.push(head.name().to_owned());
                }
            }
            match list.next_token() {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        Ok(names)
    }

    /// Scans the next namespace. `Ok(None)` when all are done (or after a stop); an error
    /// when the API server cannot be used any more: the results returned so far stand.
    pub async fn next_namespace(&mut self) -> Result<Option<NamespaceResult>, AuditError> {
        if self.stopped || self.next >= self.namespaces.len() {
            return Ok(None);
        }
        let namespace = self.namespaces[self.next].clone();
        let mut scan = NamespaceScan::new(self.set, self.images.clone(), &namespace);
        let outcome = self.scan_namespace(&mut scan).await;
        self.lists_ok += u64::from(scan.lists_ok);
        if let Err(failure) = outcome {
            self.stopped = true;
            let done = self.next;
            return Err(if self.lists_ok == 0 {
                AuditError::Unreachable(failure)
            } else {
                AuditError::Interrupted {
                    namespace,
                    done,
                    failure,
                }
            });
        }
        self.next += 1;
        Ok(Some(scan.finish()))
    }

    /// Lists every judged kind of one namespace into `scan`. An error only for a failure that
    /// makes further calls pointless (see [`ApiFailure::is_fatal`]).
    async fn scan_namespace(&self, scan: &mut NamespaceScan<'_>) -> Result<(), ApiFailure> {
        for kind in CONTROLLER_ORDER.into_iter().chain([WorkloadKind::Pod]) {
            self.list_kind(scan, kind).await?;
            if scan.vanished {
                break;
            }
        }
        Ok(())
    }

    /// Lists one kind page by page, judging each page before fetching the next. An expired
    /// `continue` token restarts the list once, dropping what the first attempt had judged.
    async fn list_kind(
        &self,
        scan: &mut NamespaceScan<'_>,
        kind: WorkloadKind,
    ) -> Result<(), ApiFailure> {
        let path = api::collection_path(kind, &scan.namespace);
        let resource = api::plural(kind);
        let mark = scan.mark();
        let mut token: Option<String> = None;
        let mut restarted = false;
        loop {
            let body = match self.lister.page(&path, token.as_deref(), true).await {
                Ok(body) => body,
                Err(ApiFailure::Expired(message)) if !restarted => {
                    restarted = true;
                    scan.restore(&mark);
                    scan.notes.push(format!(
                        "{resource}: the continue token expired (410 Gone: {message}); listing {resource} in {} again from the start",
                        scan.namespace
                    ));
                    token = None;
                    continue;
                }
                Err(failure) if failure.is_fatal() => return Err(failure),
                Err(failure) => {
                    scan.failed(resource, &failure);
                    return Ok(());
                }
            };
            scan.lists_ok += 1;
            let list: api::RawList = match serde_json::from_str(&body) {
                Ok(list) => list,
                Err(e) => {
                    scan.failed(resource, &ApiFailure::Decode(e.to_string()));
                    return Ok(());
                }
            };
            let verified = scan.verify_page(kind, list.items()).await;
            for item in list.items() {
                scan.ingest(kind, item.get(), &verified);
            }
            match list.next_token() {
                Some(next) => token = Some(next.to_owned()),
                None => return Ok(()),
            }
        }
    }
}

/// The state of one namespace being scanned.
struct NamespaceScan<'s> {
    set: &'s PolicySet,
    images: Option<Arc<Verifier>>,
    namespace: String,
    /// uid of every listed controller → index of its top-most listed controller in `tops`.
    owners: HashMap<String, usize>,
    /// Top-most controllers, with or without violations (their pod counts grow as pods come).
    tops: Vec<WorkloadResult>,
    /// Standalone pods with violations.
    pods: Vec<WorkloadResult>,
    /// Pods managed by a listed controller whose running digests fail a `signed-images`
    /// policy, with the index of their top-most controller.
    running_pods: Vec<(usize, WorkloadResult)>,
    covered_pods: u32,
    standalone_pods: u32,
    /// Passes of the standalone pods judged clean and not kept (those kept count their own).
    clean_pod_passes: u64,
    problems: Vec<Problem>,
    notes: Vec<String>,
    forbidden: u32,
    vanished: bool,
    lists_ok: u32,
}

/// Where a list started, to undo it if it must restart.
struct Mark {
    tops: usize,
    pods: usize,
    running_pods: usize,
    pod_counts: Vec<u32>,
    covered_pods: u32,
    standalone_pods: u32,
    clean_pod_passes: u64,
    problems: usize,
}

impl<'s> NamespaceScan<'s> {
    fn new(set: &'s PolicySet, images: Option<Arc<Verifier>>, namespace: &str) -> Self {
        NamespaceScan {
            set,
            images,
            namespace: namespace.to_owned(),
            owners: HashMap::new(),
            tops: Vec::new(),
            pods: Vec::new(),
            running_pods: Vec::new(),
            covered_pods: 0,
            standalone_pods: 0,
            clean_pod_passes: 0,
            problems: Vec::new(),
            notes: Vec::new(),
            forbidden: 0,
            vanished: false,
            lists_ok: 0,
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            tops: self.tops.len(),
            pods: self.pods.len(),
            running_pods: self.running_pods.len(),
            pod_counts: self.tops.iter().map(|t| t.pods).collect(),
            covered_pods: self.covered_pods,
            standalone_pods: self.standalone_pods,
            clean_pod_passes: self.clean_pod_passes,
            problems: self.problems.len(),
        }
    }

    fn restore(&mut self, mark: &Mark) {
        self.tops.truncate(mark.tops);
        self.owners.retain(|_, top| *top < mark.tops);
        for (top, pods) in self.tops.iter_mut().zip(&mark.pod_counts) {
            top.pods = *pods;
        }
        self.pods.truncate(mark.pods);
        self.running_pods.truncate(mark.running_pods);
        self.covered_pods = mark.covered_pods;
        self.standalone_pods = mark.standalone_pods;
        self.clean_pod_passes = mark.clean_pod_passes;
        self.problems.truncate(mark.problems);
    }

    fn failed(&mut self, resource: &str, failure: &ApiFailure) {
        match failure {
            ApiFailure::Forbidden(_) => self.forbidden += 1,
            ApiFailure::NamespaceGone(_) => self.vanished = true,
            _ => {}
        }
        let message = match failure {
            ApiFailure::NamespaceGone(_) => {
                format!("the namespace disappeared during the scan ({failure})")
            }
            ApiFailure::Expired(_) => format!(
                "{failure}; the list was restarted once and its continue token expired again"
            ),
            _ => failure.to_string(),
        };
        self.problems.push(Problem {
            namespace: self.namespace.clone(),
            resource: resource.to_owned(),
            message,
        });
    }

    /// Plans what the page's objects will ask of `signed-images` that the verifier's cache
    /// lacks, and verifies it: the verdicts [`NamespaceScan::ingest`] judges the page with.
    async fn verify_page(&self, kind: WorkloadKind, items: &[&RawValue]) -> Vec<Verified> {
        let Some(verifier) = &self.images else {
            return Vec::new();
        };
        let mut misses: Vec<Miss> = Vec::new();
        let mut seen: HashSet<(u64, Box<str>)> = HashSet::new();
        for item in items {
            let json = item.get();
            let Ok(head) = api::ItemHead::parse(json) else {
                continue;
            };
            let folded = head
                .controller_uid()
                .is_some_and(|owner| self.owners.contains_key(owner));
            if folded && kind != WorkloadKind::Pod {
                continue;
            }
            let running = self.running_digests(kind, json);
            if folded && running.is_empty() {
                continue;
            }
            let Ok(workload) = pod::decode_workload(kind, json) else {
                continue;
            };
            let Some(pod) = workload.pod() else {
                continue;
            };
            let request = Request {
                kind,
                namespace: &self.namespace,
                user: None,
            };
            let mut images = ReviewImages::new(verifier)
                .before_mutation(true)
                .running(&running);
            for miss in images.misses(self.set, &request, pod) {
                if seen.insert((miss.0.cache_id, miss.1.clone())) {
                    misses.push(miss);
                }
            }
        }
        if misses.is_empty() {
            return Vec::new();
        }
        let deadline = deadline_for(&misses);
        verifier.verify_all(misses, deadline).await
    }

    /// Takes one listed object: folds it into its top-most listed controller, or judges it
    /// (with the page's `verified` verdicts and the verifier's cache).
    fn ingest(&mut self, kind: WorkloadKind, json: &str, verified: &[Verified]) {
        let head = match api::ItemHead::parse(json) {
            Ok(head) => head,
            Err(e) => {
                self.problems.push(Problem {
                    namespace: self.namespace.clone(),
                    resource: api::plural(kind).to_owned(),
                    message: format!("an item is not a valid object: {e}"),
                });
                return;
            }
        };
        let top = head
            .controller_uid()
            .and_then(|owner| self.owners.get(owner).copied());
        if let Some(top) = top {
            if kind == WorkloadKind::Pod {
                self.tops[top].pods += 1;
                self.covered_pods += 1;
                self.ingest_running(top, json, &head, verified);
            } else {
                self.owners.insert(head.uid().to_owned(), top);
            }
            return;
        }
        let running = self.running_digests(kind, json);
        let judged = match &self.images {
            Some(verifier) => {
                let images = ReviewImages::new(verifier)
                    .before_mutation(true)
                    .running(&running)
                    .sharing(verified);
                self.judge(kind, json, &head, &images)
            }
            None => self.judge(kind, json, &head, &Unverified),
        };
        let judged = match judged {
            Ok(judged) => judged,
            Err(message) => {
                self.problems.push(Problem {
                    namespace: self.namespace.clone(),
                    resource: format!("{kind}/{}", head.name()),
                    message: format!("not judged: {message}"),
                });
                return;
            }
        };
        if kind == WorkloadKind::Pod {
            self.standalone_pods += 1;
            if judged.rows.is_empty() {
                self.clean_pod_passes += u64::from(judged.passed);
            } else {
                self.pods.push(judged);
            }
        } else {
            if !head.uid().is_empty() {
                self.owners.insert(head.uid().to_owned(), self.tops.len());
            }
            self.tops.push(judged);
        }
    }

    /// The digests a pod's containers run, when images are verified and the set has a
    /// `signed-images` policy to verify them with.
    fn running_digests(&self, kind: WorkloadKind, json: &str) -> Vec<(String, String)> {
        if kind != WorkloadKind::Pod || self.images.is_none() {
            return Vec::new();
        }
        running::running_digests(json)
    }

    /// Judges a pod managed by the controller `top` for the digests it runs (its spec was
    /// judged on the controller): kept only when they fail.
    fn ingest_running(
        &mut self,
        top: usize,
        json: &str,
        head: &api::ItemHead,
        verified: &[Verified],
    ) {
        let Some(verifier) = self.images.clone() else {
            return;
        };
        let running = running::running_digests(json);
        if running.is_empty() {
            return;
        }
        let images = ReviewImages::new(&verifier)
            .before_mutation(true)
            .running(&running)
            .sharing(verified);
        let Ok(mut judged) = self.judge(WorkloadKind::Pod, json, head, &images) else {
            return;
        };
        keep_running_rows(&mut judged, &running);
        if !judged.rows.is_empty() {
            self.running_pods.push((top, judged));
        }
    }

    /// Decodes `json` as admission would and evaluates it, every policy counting, with the
    /// image signature verdicts of `images`.
    fn judge(
        &self,
        kind: WorkloadKind,
        json: &str,
        head: &api::ItemHead,
        images: &dyn crate::images::ImageVerdicts,
    ) -> Result<WorkloadResult, String> {
        let workload = pod::decode_workload(kind, json).map_err(|_| {
            format!(
                "not a valid {kind}: {}",
                pod::explain_decode_error(kind, json)
            )
        })?;
        let name = head.name();
        let mut judged = WorkloadResult {
            kind,
            name: name.to_owned(),
            uid: head.uid().to_owned(),
            pods: u32::from(kind == WorkloadKind::Pod),
            passed: 0,
            rows: Vec::new(),
        };
        let Some(pod) = workload.pod() else {
            return Ok(judged);
        };
        let request = Request {
            kind,
            namespace: &self.namespace,
            user: None,
        };
        let verdict = engine::evaluate_with(self.set, &request, pod, images);
        judged.rows = verdict
            .violations
            .iter()
            .map(|v| Row::from_violation(kind, &self.namespace, name, v))
            .collect();
        judged.passed = u32::try_from(verdict.passed()).unwrap_or(u32::MAX);
        Ok(judged)
    }

    fn finish(self) -> NamespaceResult {
        let kinds_listed = CONTROLLER_ORDER.len() as u32 + 1;
        let status = if self.vanished {
            Status::Vanished
        } else if self.forbidden >= kinds_listed {
            Status::Forbidden
        } else if self.problems.is_empty() {
            Status::Complete
        } else {
            Status::Partial
        };
        let mut problems = self.problems;
        if status == Status::Forbidden {
            // One line says it: every kind answered 403.
            let first = problems
                .first()
                .map(|p| p.message.clone())
                .unwrap_or_default();
            problems = vec![Problem {
                namespace: self.namespace.clone(),
                resource: "*".to_owned(),
                message: format!("no kind may be listed here; the first answer: {first}"),
            }];
        }
        let controllers = u32::try_from(self.tops.len()).unwrap_or(u32::MAX);
        let passed = self
            .tops
            .iter()
            .chain(&self.pods)
            .map(|j| u64::from(j.passed))
            .sum::<u64>()
            + self.clean_pod_passes;
        // Each controller, then its pods that run what it does not; then standalone pods.
        let mut running = merge_running(self.running_pods).into_iter().peekable();
        let mut workloads: Vec<WorkloadResult> = Vec::new();
        for (index, top) in self.tops.into_iter().enumerate() {
            if !top.rows.is_empty() {
                workloads.push(top);
            }
            while let Some((_, pod)) = running.next_if(|(t, _)| *t == index) {
                workloads.push(pod);
            }
        }
        workloads.extend(self.pods);
        NamespaceResult {
            namespace: self.namespace,
            status,
            workloads,
            controllers,
            covered_pods: self.covered_pods,
            standalone_pods: self.standalone_pods,
            passed,
            problems,
            notes: self.notes,
            lists_ok: self.lists_ok,
            judged_at: SystemTime::now(),
        }
    }
}

/// Keeps the `signed-images` findings about containers whose running digest was judged: the
/// rest of a managed pod's spec was judged on its controller already.
fn keep_running_rows(judged: &mut WorkloadResult, running: &[(String, String)]) {
    judged.rows.retain(|row| {
        row.check == signed_images::ID
            && row
                .container
                .as_deref()
                .is_some_and(|c| running.iter().any(|(name, _)| name == c))
    });
    judged.passed = 0;
}

/// One entry per controller and finding: the pods of one controller that run the same failing
/// digests are reported once, on the first of them, with their number; in controller order.
fn merge_running(running_pods: Vec<(usize, WorkloadResult)>) -> Vec<(usize, WorkloadResult)> {
    let same = |a: &[Row], b: &[Row]| {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                (&x.policy, &x.container, &x.path, &x.message)
                    == (&y.policy, &y.container, &y.path, &y.message)
            })
    };
    let mut merged: Vec<(usize, WorkloadResult)> = Vec::new();
    for (top, pod) in running_pods {
        if pod.rows.is_empty() {
            continue;
        }
        match merged
            .iter_mut()
            .find(|(t, m)| *t == top && same(&m.rows, &pod.rows))
        {
            Some((_, m)) => m.pods += 1,
            None => merged.push((top, pod)),
        }
    }
    merged.sort_by_key(|(top, _)| *top);
    merged
}

/// Totals over a whole scan, for the summary tables, the JSON summary and the gauges.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Namespaces the scan meant to cover.
    pub namespaces_total: usize,
    /// Namespaces fully scanned.
    pub namespaces_complete: usize,
    /// Workloads judged: top-most controllers and standalone pods.
    pub workloads: u64,
    pub controllers: u64,
    /// Pods judged on their controller.
    pub covered_pods: u64,
    pub standalone_pods: u64,
    pub violations: u64,
    /// Workloads with at least one violation.
    pub violating_workloads: u64,
    /// False when a namespace or a kind could not be scanned, or the scan stopped.
    pub complete: bool,
    /// Why the scan stopped early, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Whether the `signed-images` policies were checked; absent when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_signatures: Option<ImageSignatures>,
    pub policies: Vec<PolicySummary>,
    pub namespaces: Vec<NamespaceSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicySummary {
    pub policy: String,
    /// The mode the policy is really in (the audit judges every policy as enforce).
    pub mode: String,
    pub check: String,
    pub violations: u64,
    /// Workloads with at least one violation of this policy.
    pub workloads: u64,
    /// Pods those workloads stand for: what enforcing the policy would stop from being
    /// re-created.
    pub pods: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NamespaceSummary {
    pub namespace: String,
    pub status: Status,
    pub workloads: u64,
    pub pods: u64,
    pub violations: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

impl Summary {
    pub fn new(set: &PolicySet, namespaces_total: usize) -> Summary {
        Summary {
            namespaces_total,
            complete: true,
            policies: set
                .policies()
                .iter()
                .map(|p| PolicySummary {
                    policy: p.name.clone(),
                    mode: p.mode.as_str().to_owned(),
                    check: p.check.id().to_owned(),
                    violations: 0,
                    workloads: 0,
                    pods: 0,
                })
                .collect(),
            ..Summary::default()
        }
    }

    /// Adds one namespace's results.
    pub fn add(&mut self, ns: &NamespaceResult) {
        let judged = ns.judged();
        let violations = ns.violations() as u64;
        self.workloads += judged;
        self.controllers += u64::from(ns.controllers);
        self.covered_pods += u64::from(ns.covered_pods);
        self.standalone_pods += u64::from(ns.standalone_pods);
        self.violations += violations;
        self.violating_workloads += ns.workloads.len() as u64;
        if ns.status == Status::Complete {
            self.namespaces_complete += 1;
        } else {
            self.complete = false;
        }
        for workload in &ns.workloads {
            let mut last: Option<&str> = None;
            for row in &workload.rows {
                let Some(p) = self.policies.iter_mut().find(|p| p.policy == row.policy) else {
                    continue;
                };
                p.violations += 1;
                if last != Some(row.policy.as_str()) {
                    p.workloads += 1;
                    p.pods += u64::from(workload.pods);
                    last = Some(row.policy.as_str());
                }
            }
        }
        self.namespaces.push(NamespaceSummary {
            namespace: ns.namespace.clone(),
            status: ns.status,
            workloads: judged,
            pods: u64::from(ns.covered_pods) + u64::from(ns.standalone_pods),
            violations,
            problems: ns.problems.clone(),
        });
    }

    /// Records that the scan stopped early.
    pub fn stop(&mut self, why: String) {
        self.complete = false;
        self.stopped = Some(why);
    }

    /// Every problem of every namespace.
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.namespaces.iter().flat_map(|n| n.problems.iter())
    }
}
