//! The scanner: resolves the namespaces to scan, then lists each one kind by kind and page by
//! page (controllers before pods), restarting a list once when its `continue` token expires.
//! What a page holds is judged by [`NamespaceScan`].

use std::sync::Arc;

use super::namespace_scan::NamespaceScan;
use super::{
    ApiFailure, AuditError, CONTROLLER_ORDER, ImageSignatures, Lister, NamespaceResult,
    ScanOptions, Scope, api, is_namespace_name,
};
use crate::images::Verifier;
use crate::pod::WorkloadKind;
use crate::policy::PolicySet;

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
