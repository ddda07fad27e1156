//! The scanner: resolves the namespaces to scan, then lists each one kind by kind and page by
//! page (controllers before pods, then the other resources CEL policies select), restarting a
//! list once when its `continue` token expires; with every namespace done, the cluster-scoped
//! resources CEL policies select, once. What a page holds is judged by [`NamespaceScan`].

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;

use super::cel_resources::{self, CelResources, Resource};
use super::namespace_scan::NamespaceScan;
use super::{
    ApiFailure, AuditError, CONTROLLER_ORDER, ImageSignatures, Lister, NamespaceResult,
    ScanOptions, Scope, api, is_namespace_name,
};
use crate::images::Verifier;
use crate::namespaces::{Found, KnownNamespaces, LabelSource};
use crate::pod::WorkloadKind;
use crate::policy::PolicySet;

/// Why the audit does not know a namespace's labels.
const UNREAD: &str = "the audit could not read the namespace from the API";

/// A scan in progress: call [`Scanner::next_namespace`] until it returns `None`.
pub struct Scanner<'s> {
    lister: Lister,
    set: &'s PolicySet,
    /// Set when the policy set has `signed-images` policies and images are to be verified.
    images: Option<Arc<Verifier>>,
    image_signatures: Option<ImageSignatures>,
    namespaces: Vec<String>,
    /// The Namespace objects listed (or read, for named namespaces, when a policy reads
    /// namespace labels).
    known: KnownNamespaces,
    /// Why each named namespace that could not be read is unknown (the API's answer).
    unread: HashMap<String, String>,
    /// What the CEL policies select; `None` when the set has none.
    cel: Option<Arc<CelResources>>,
    /// Whether the cluster-scoped resources CEL policies select are still to be listed.
    cluster_pending: bool,
    /// What the scan says once: kinds not served, cluster-scoped kinds not audited.
    notes: Vec<String>,
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
            known: KnownNamespaces::new(UNREAD),
            unread: HashMap::new(),
            cel: None,
            cluster_pending: false,
            notes: Vec::new(),
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
                let names: Vec<String> = names
                    .iter()
                    .filter(|n| seen.insert(n.as_str()))
                    .cloned()
                    .collect();
                if set.policies().iter().any(|p| p.reads_namespace_labels()) {
                    scanner.read_namespaces(&names).await;
                }
                names
            }
        };
        if set.has_cel() {
            scanner.select_cel_resources(&options.scope).await;
        }
        Ok(scanner)
    }

    /// Asks discovery what the API server serves and chooses what the CEL policies select.
    /// Without discovery, they are judged on the workloads only, and the scan says so.
    async fn select_cel_resources(&mut self, scope: &Scope) {
        let selected = match cel_resources::discover(self.lister.client()).await {
            Ok(discovered) => cel_resources::select(self.set, &discovered),
            Err(failure) => {
                self.notes.push(format!(
                    "the API server's discovery failed ({failure}): CEL policies were judged on Pods and pod controllers only"
                ));
                CelResources {
                    unknown: Vec::new(),
                    ..cel_resources::select(self.set, &[])
                }
            }
        };
        self.notes.extend(selected.unknown.iter().cloned());
        if !selected.cluster.is_empty() {
            match scope {
                Scope::All => self.cluster_pending = true,
                Scope::Namespaces(_) => {
                    let names: Vec<String> = selected.cluster.iter().map(|r| r.name()).collect();
                    self.notes.push(format!(
                        "cluster-scoped resources CEL policies select were not audited (only with --all-namespaces): {}",
                        names.join(", ")
                    ));
                }
            }
        }
        self.cel = Some(Arc::new(selected));
    }

    /// What the scan says once (kinds not served, cluster-scoped kinds not audited).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Reads the named namespaces (their labels), each once; one that cannot be read stays
    /// unknown, and the policies that need its labels say so in their rows.
    async fn read_namespaces(&mut self, names: &[String]) {
        let api: kube::Api<Namespace> = kube::Api::all(self.lister.client().clone());
        for name in names {
            match api.get(name).await {
                Ok(namespace) => self.known.insert(namespace, LabelSource::Listed),
                Err(e) => {
                    tracing::warn!(
                        namespace = %name,
                        error = %api::error_chain(&e),
                        "cannot read the namespace: policies that read its labels cannot decide"
                    );
                    let failure = api::classify(e);
                    self.unread.insert(
                        name.clone(),
                        format!("the audit could not read the namespace: {failure}"),
                    );
                }
            }
        }
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
                    // Its labels, for label selectors and Pod Security labels.
                    if let Ok(namespace) = serde_json::from_str::<Namespace>(item.get()) {
                        self.known.insert(namespace, LabelSource::Listed);
                    }
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
        if self.stopped {
            return Ok(None);
        }
        if self.next >= self.namespaces.len() {
            return self.cluster_scope().await;
        }
        let namespace = self.namespaces[self.next].clone();
        let found = match self.unread.get(&namespace) {
            Some(why) => Found::Unknown(why),
            None => self.known.find(&namespace),
        };
        let mut scan = NamespaceScan::new(
            self.set,
            self.images.clone(),
            &namespace,
            found,
            self.cel.clone(),
        );
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

    /// The cluster-scoped resources CEL policies select, listed once after every namespace
    /// (`Ok(None)` when there are none, or once done): a result whose namespace is `""`.
    async fn cluster_scope(&mut self) -> Result<Option<NamespaceResult>, AuditError> {
        let Some(cel) = self.cel.clone().filter(|_| self.cluster_pending) else {
            return Ok(None);
        };
        self.cluster_pending = false;
        let found = Found::Unknown("a cluster-scoped object is in no namespace");
        let mut scan = NamespaceScan::new(self.set, None, "", found, Some(Arc::clone(&cel)));
        let mut outcome = Ok(());
        for resource in &cel.cluster {
            outcome = self.list_kind(&mut scan, Listed::Other(resource)).await;
            if outcome.is_err() {
                break;
            }
        }
        self.lists_ok += u64::from(scan.lists_ok);
        if let Err(failure) = outcome {
            self.stopped = true;
            return Err(AuditError::Interrupted {
                namespace: "(cluster-scoped)".to_owned(),
                done: self.next,
                failure,
            });
        }
        Ok(Some(scan.finish()))
    }

    /// Lists every judged kind of one namespace into `scan`. An error only for a failure that
    /// makes further calls pointless (see [`ApiFailure::is_fatal`]).
    async fn scan_namespace(&self, scan: &mut NamespaceScan<'_>) -> Result<(), ApiFailure> {
        let others = self.cel.iter().flat_map(|cel| cel.namespaced.iter());
        let workloads = CONTROLLER_ORDER.into_iter().chain([WorkloadKind::Pod]);
        let listed = workloads
            .map(Listed::Workload)
            .chain(others.map(Listed::Other));
        for listed in listed {
            self.list_kind(scan, listed).await?;
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
        listed: Listed<'_>,
    ) -> Result<(), ApiFailure> {
        let in_namespace = Some(scan.namespace.as_str()).filter(|n| !n.is_empty());
        let (path, resource) = match listed {
            Listed::Workload(kind) => (
                api::collection_path(kind, &scan.namespace),
                api::plural(kind).to_owned(),
            ),
            Listed::Other(r) => (r.collection_path(in_namespace), r.name()),
        };
        let resource = resource.as_str();
        scan.kinds_tried += 1;
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
            match listed {
                Listed::Workload(kind) => {
                    let verified = scan.verify_page(kind, list.items()).await;
                    for item in list.items() {
                        scan.ingest(kind, item.get(), &verified);
                    }
                }
                Listed::Other(r) => {
                    for item in list.items() {
                        scan.ingest_other(r, item.get());
                    }
                }
            }
            match list.next_token() {
                Some(next) => token = Some(next.to_owned()),
                None => return Ok(()),
            }
        }
    }
}

/// What one list call lists: a workload kind, or a resource CEL policies select.
#[derive(Clone, Copy)]
enum Listed<'r> {
    Workload(WorkloadKind),
    Other(&'r Arc<Resource>),
}
