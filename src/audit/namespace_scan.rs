//! One namespace being scanned: each listed object is folded into its top-most listed
//! controller (Pod → ReplicaSet → Deployment, Pod → Job → CronJob) or judged, with the
//! `signed-images` verdicts its page needed verified first; pods under a controller are judged
//! again only for the digests they run.
//!
//! With CEL policies, a workload of a kind they may select is judged by them too, in the same
//! pass, as a CREATE of it; one folded into its controller is still judged by them (a
//! ValidatingAdmissionPolicy on Pods judges every pod, whatever owns it), its findings
//! reported after its controller's. Objects of other kinds the CEL policies select are judged
//! by them alone. The cluster-scoped objects are scanned the same way, as a namespace named
//! `""`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Namespace;
use serde_json::value::RawValue;

use super::cel_judge::{CelNamespace, judge_object};
use super::cel_resources::{CelResources, Resource, workload_resource};
use super::{
    ApiFailure, NamespaceResult, ObjectKind, Problem, Status, WorkloadResult, api, running,
};
use crate::engine::{self, Request};
use crate::image_pass::ReviewImages;
use crate::images::{Miss, Verified, Verifier, deadline_for};
use crate::namespaces::{Found, LabelSource};
use crate::pod::{self, WorkloadKind};
use crate::policy::signed_images;
use crate::policy::{ImageVerdicts, PolicySet, Unverified};
use crate::row::Row;

/// The state of one namespace being scanned.
pub(super) struct NamespaceScan<'s> {
    set: &'s PolicySet,
    images: Option<Arc<Verifier>>,
    pub(super) namespace: String,
    /// The Namespace as the audit listed or read it (for label selectors and Pod Security
    /// labels), or why it is not known.
    namespace_object: Option<(Arc<Namespace>, LabelSource)>,
    unknown_why: String,
    /// uid of every listed controller → index of its top-most listed controller in `tops`.
    owners: HashMap<String, usize>,
    /// Top-most controllers, with or without violations (their pod counts grow as pods come).
    tops: Vec<WorkloadResult>,
    /// Standalone pods with violations.
    pods: Vec<WorkloadResult>,
    /// Pods managed by a listed controller whose running digests fail a `signed-images`
    /// policy, with the index of their top-most controller.
    running_pods: Vec<(usize, WorkloadResult)>,
    /// What the CEL policies select and know of the namespace; `None` without CEL policies.
    cel: Option<(Arc<CelResources>, CelNamespace)>,
    /// CEL findings on objects folded into a top-most controller, with its index.
    folded: Vec<(usize, WorkloadResult)>,
    /// Objects of other kinds with CEL findings.
    others: Vec<WorkloadResult>,
    covered_pods: u32,
    standalone_pods: u32,
    objects: u32,
    /// Passes of the objects judged clean and not kept (those kept count their own), and of
    /// the CEL policies on folded objects.
    clean_pod_passes: u64,
    problems: Vec<Problem>,
    pub(super) notes: Vec<String>,
    /// Resources whose list was tried, and those that answered 403.
    pub(super) kinds_tried: u32,
    forbidden: u32,
    pub(super) vanished: bool,
    pub(super) lists_ok: u32,
}

/// Where a list started, to undo it if it must restart.
pub(super) struct Mark {
    tops: usize,
    pods: usize,
    running_pods: usize,
    folded: usize,
    others: usize,
    pod_counts: Vec<u32>,
    covered_pods: u32,
    standalone_pods: u32,
    objects: u32,
    clean_pod_passes: u64,
    problems: usize,
}

impl<'s> NamespaceScan<'s> {
    pub(super) fn new(
        set: &'s PolicySet,
        images: Option<Arc<Verifier>>,
        namespace: &str,
        found: Found<'_>,
        cel: Option<Arc<CelResources>>,
    ) -> Self {
        NamespaceScan {
            cel: cel.map(|resources| (resources, CelNamespace::new(namespace, found))),
            folded: Vec::new(),
            others: Vec::new(),
            objects: 0,
            kinds_tried: 0,
            set,
            images,
            namespace: namespace.to_owned(),
            namespace_object: match found {
                Found::Known(object, source) => Some((Arc::clone(object), source)),
                Found::Unknown(_) => None,
            },
            unknown_why: match found {
                Found::Known(..) => String::new(),
                Found::Unknown(why) => why.to_owned(),
            },
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

    pub(super) fn mark(&self) -> Mark {
        Mark {
            tops: self.tops.len(),
            pods: self.pods.len(),
            running_pods: self.running_pods.len(),
            folded: self.folded.len(),
            others: self.others.len(),
            objects: self.objects,
            pod_counts: self.tops.iter().map(|t| t.pods).collect(),
            covered_pods: self.covered_pods,
            standalone_pods: self.standalone_pods,
            clean_pod_passes: self.clean_pod_passes,
            problems: self.problems.len(),
        }
    }

    pub(super) fn restore(&mut self, mark: &Mark) {
        self.tops.truncate(mark.tops);
        self.owners.retain(|_, top| *top < mark.tops);
        for (top, pods) in self.tops.iter_mut().zip(&mark.pod_counts) {
            top.pods = *pods;
        }
        self.pods.truncate(mark.pods);
        self.running_pods.truncate(mark.running_pods);
        self.folded.truncate(mark.folded);
        self.others.truncate(mark.others);
        self.objects = mark.objects;
        self.covered_pods = mark.covered_pods;
        self.standalone_pods = mark.standalone_pods;
        self.clean_pod_passes = mark.clean_pod_passes;
        self.problems.truncate(mark.problems);
    }

    pub(super) fn failed(&mut self, resource: &str, failure: &ApiFailure) {
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
    pub(super) async fn verify_page(
        &self,
        kind: WorkloadKind,
        items: &[&RawValue],
    ) -> Vec<Verified> {
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
            let request = self.request(kind, head.name(), &workload);
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
    pub(super) fn ingest(&mut self, kind: WorkloadKind, json: &str, verified: &[Verified]) {
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
            self.ingest_folded(top, kind, json, &head);
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
            kind: ObjectKind::Workload(kind),
            name: name.to_owned(),
            uid: head.uid().to_owned(),
            pods: u32::from(kind == WorkloadKind::Pod),
            passed: 0,
            rows: Vec::new(),
        };
        let request = self.request(kind, name, &workload);
        let verdict = match (self.cel_judges(kind), workload.pod()) {
            (Some(namespace), pod) => judge_object(
                self.set,
                &workload_resource(kind),
                json,
                namespace,
                pod.map(|pod| (&request, pod)),
                images,
            )?,
            (None, Some(pod)) => engine::evaluate_with(self.set, &request, pod, images),
            (None, None) => return Ok(judged),
        };
        judged.rows = verdict
            .violations
            .iter()
            .map(|v| Row::from_violation(kind, &self.namespace, name, v))
            .collect();
        judged.passed = u32::try_from(verdict.passed()).unwrap_or(u32::MAX);
        Ok(judged)
    }

    /// What the policies read of a listed object, as admission gives it.
    fn request<'r>(
        &'r self,
        kind: WorkloadKind,
        name: &'r str,
        workload: &'r pod::Workload<'_>,
    ) -> Request<'r> {
        let found = match &self.namespace_object {
            Some((object, source)) => Found::Known(object, *source),
            None => Found::Unknown(&self.unknown_why),
        };
        Request::new(kind, &self.namespace, None)
            .with_name(Some(name))
            .with_object_labels(&workload.labels)
            .with_namespace_labels(found.labels())
    }

    /// The namespace as CEL policies see it, when one of them may select objects of `kind`.
    fn cel_judges(&self, kind: WorkloadKind) -> Option<&CelNamespace> {
        let (resources, namespace) = self.cel.as_ref()?;
        resources.judges_workload(kind).then_some(namespace)
    }

    /// Judges an object folded into the controller `top` with the CEL policies that may select
    /// its kind (the built-in checks judged it on its controller); kept when it fails them.
    fn ingest_folded(&mut self, top: usize, kind: WorkloadKind, json: &str, head: &api::ItemHead) {
        let Some(namespace) = self.cel_judges(kind) else {
            return;
        };
        let served = workload_resource(kind);
        match self.judge_cel(ObjectKind::Workload(kind), &served, json, head, namespace) {
            Ok(judged) if judged.rows.is_empty() => {
                self.clean_pod_passes += u64::from(judged.passed)
            }
            Ok(judged) => self.folded.push((top, judged)),
            Err(problem) => self.problems.push(problem),
        }
    }

    /// Takes one listed object of another kind: judged by the CEL policies alone.
    pub(super) fn ingest_other(&mut self, resource: &Arc<Resource>, json: &str) {
        let Some((_, namespace)) = &self.cel else {
            return;
        };
        let kind = ObjectKind::Other(Arc::clone(resource));
        let head = match api::ItemHead::parse(json) {
            Ok(head) => head,
            Err(e) => {
                self.problems.push(Problem {
                    namespace: self.namespace.clone(),
                    resource: resource.name(),
                    message: format!("an item is not a valid object: {e}"),
                });
                return;
            }
        };
        match self.judge_cel(kind, &resource.served(), json, &head, namespace) {
            Ok(judged) => {
                self.objects += 1;
                match judged.rows.is_empty() {
                    true => self.clean_pod_passes += u64::from(judged.passed),
                    false => self.others.push(judged),
                }
            }
            Err(problem) => self.problems.push(problem),
        }
    }

    /// Judges an object with the CEL policies alone, as a CREATE of it in this namespace.
    fn judge_cel(
        &self,
        kind: ObjectKind,
        served: &crate::cel::admission::Served<'_>,
        json: &str,
        head: &api::ItemHead,
        namespace: &CelNamespace,
    ) -> Result<WorkloadResult, Problem> {
        let verdict = judge_object(
            self.set,
            served,
            json,
            namespace,
            None,
            &Unverified as &dyn ImageVerdicts,
        )
        .map_err(|message| Problem {
            namespace: self.namespace.clone(),
            resource: format!("{}/{}", kind.as_str(), head.name()),
            message: format!("not judged: {message}"),
        })?;
        let rows = verdict
            .violations
            .iter()
            .map(|v| Row::of_object(kind.as_str(), "", &self.namespace, head.name(), v))
            .collect();
        let pods = u32::from(kind == ObjectKind::Workload(WorkloadKind::Pod));
        Ok(WorkloadResult {
            kind,
            name: head.name().to_owned(),
            uid: head.uid().to_owned(),
            pods,
            passed: u32::try_from(verdict.passed()).unwrap_or(u32::MAX),
            rows,
        })
    }

    pub(super) fn finish(self) -> NamespaceResult {
        let status = if self.vanished {
            Status::Vanished
        } else if self.kinds_tried > 0 && self.forbidden >= self.kinds_tried {
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
            .chain(&self.others)
            .map(|j| u64::from(j.passed))
            .sum::<u64>()
            + self.clean_pod_passes;
        // Each controller, then its pods that run what it does not and the CEL findings on
        // what it manages; then standalone pods, then objects of other kinds.
        let mut running = merge_running(self.running_pods).into_iter().peekable();
        let mut folded = self.folded.into_iter().peekable();
        let mut workloads: Vec<WorkloadResult> = Vec::new();
        for (index, top) in self.tops.into_iter().enumerate() {
            if !top.rows.is_empty() {
                workloads.push(top);
            }
            while let Some((_, pod)) = running.next_if(|(t, _)| *t == index) {
                workloads.push(pod);
            }
            while let Some((_, object)) = folded.next_if(|(t, _)| *t == index) {
                workloads.push(object);
            }
        }
        workloads.extend(self.pods);
        workloads.extend(self.others);
        NamespaceResult {
            namespace: self.namespace,
            status,
            workloads,
            controllers,
            covered_pods: self.covered_pods,
            standalone_pods: self.standalone_pods,
            objects: self.objects,
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
