//! Evaluates a pod view against a policy set.
//!
//! The engine knows nothing of HTTP, AdmissionReviews or files: admission, `portier check` and
//! (later) the cluster audit all call [`evaluate`] on the same view, so they cannot disagree.
//! When nothing is wrong it allocates nothing.
//!
//! CEL policies judge the whole object, of any kind, rather than the pod view: a caller that
//! has the object calls [`evaluate_admission`], which adds them through the CEL room's one
//! seam ([`crate::cel::judge`]). Sets without CEL policies never reach it.

use crate::labels::{Labels, NoLabels};
use crate::namespaces::NamespaceLabels;
use crate::pod::{PodView, WorkloadKind};
use crate::policy::{Check, Decision, Finding, ImageVerdicts, Mode, PolicySet, Sink, Unverified};

pub use crate::policy::{Annotation, Violation};

/// What a policy needs to know about the request besides the pod.
#[derive(Debug, Clone, Copy)]
pub struct Request<'r> {
    pub kind: WorkloadKind,
    pub namespace: &'r str,
    /// The object's name as the request gives it (empty or `None` when it is generated).
    pub name: Option<&'r str>,
    /// The requesting user; `None` outside admission (offline check, audit).
    pub user: Option<&'r str>,
    /// The labels of the object under review (and of the one an UPDATE replaces), for
    /// `objectSelector`.
    pub object_labels: ObjectLabels<'r>,
    /// What is known of the namespace's labels, for `namespaceSelector` and the Pod Security
    /// labels.
    pub namespace_labels: NamespaceLabels<'r>,
    /// `CREATE` or `UPDATE` at admission; `None` outside it.
    pub operation: Option<&'r str>,
    /// The object an UPDATE replaces, as JSON text, when the caller has it (read only by
    /// policies that need it: Pod Security admission's "significant update").
    pub old_object: Option<&'r str>,
}

/// The labels `objectSelector` reads.
#[derive(Clone, Copy)]
pub struct ObjectLabels<'r> {
    pub object: &'r dyn Labels,
    /// The object an UPDATE replaces.
    pub old: Option<&'r dyn Labels>,
}

impl std::fmt::Debug for ObjectLabels<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObjectLabels")
    }
}

impl ObjectLabels<'static> {
    pub const NONE: ObjectLabels<'static> = ObjectLabels {
        object: &NoLabels,
        old: None,
    };
}

impl<'r> Request<'r> {
    /// A request for a `kind` workload in `namespace` by `user`, with no labels known (no
    /// object labels, the namespace's not given): enough for policies without label
    /// selectors.
    pub fn new(kind: WorkloadKind, namespace: &'r str, user: Option<&'r str>) -> Request<'r> {
        Request {
            kind,
            namespace,
            name: None,
            user,
            object_labels: ObjectLabels::NONE,
            namespace_labels: NamespaceLabels::NOT_GIVEN,
            operation: None,
            old_object: None,
        }
    }

    pub fn with_name(mut self, name: Option<&'r str>) -> Self {
        self.name = name;
        self
    }

    pub fn with_object_labels(mut self, object: &'r dyn Labels) -> Self {
        self.object_labels.object = object;
        self
    }

    pub fn with_old_object_labels(mut self, old: &'r dyn Labels) -> Self {
        self.object_labels.old = Some(old);
        self
    }

    pub fn with_namespace_labels(mut self, labels: NamespaceLabels<'r>) -> Self {
        self.namespace_labels = labels;
        self
    }

    pub fn with_operation(
        mut self,
        operation: Option<&'r str>,
        old_object: Option<&'r str>,
    ) -> Self {
        self.operation = operation;
        self.old_object = old_object;
        self
    }
}

/// Every violation found, in policy order, and how many policies judged the object.
#[derive(Debug, Default)]
pub struct Verdict<'p, 'v> {
    pub violations: Vec<Violation<'p, 'v>>,
    /// Audit annotations policies add besides their violations (Pod Security admission's
    /// `enforce-policy` and `exempt`), in policy order.
    pub annotations: Vec<Annotation<'p>>,
    /// Policies whose selectors chose the object (with or without a violation).
    pub judged: usize,
    /// Audit annotations CEL policies recorded, keyed `<policy>/<key>` as the API server
    /// forms them.
    pub cel_annotations: Vec<(String, String)>,
}

impl<'p, 'v> Verdict<'p, 'v> {
    /// Whether an enforce-mode policy was violated.
    pub fn denies(&self) -> bool {
        self.violations.iter().any(|v| v.mode == Mode::Enforce)
    }

    pub fn in_mode(&self, mode: Mode) -> impl Iterator<Item = &Violation<'p, 'v>> {
        self.violations.iter().filter(move |v| v.mode == mode)
    }

    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    /// The positions (in the set) of the policies with a violation, each once, in order.
    pub fn violated_policies(&self) -> impl Iterator<Item = usize> + '_ {
        let mut last = None;
        self.violations.iter().filter_map(move |v| {
            let first = last != Some(v.policy_index);
            last = Some(v.policy_index);
            first.then_some(v.policy_index)
        })
    }

    /// Policies that judged the object and found nothing.
    pub fn passed(&self) -> usize {
        self.judged - self.violated_policies().count()
    }
}

/// Judges `pod` (the pod of a `request.kind` workload: its annotations and spec) against every
/// policy that selects the request, without image signatures (nothing is known of them, so
/// `signed-images` reports nothing).
pub fn evaluate<'p, 'v>(
    set: &'p PolicySet,
    request: &Request<'_>,
    pod: PodView<'v, '_>,
) -> Verdict<'p, 'v> {
    evaluate_with(set, request, pod, &Unverified)
}

/// [`evaluate`], reading image signature verdicts from `images`.
pub fn evaluate_with<'p, 'v>(
    set: &'p PolicySet,
    request: &Request<'_>,
    pod: PodView<'v, '_>,
    images: &dyn ImageVerdicts,
) -> Verdict<'p, 'v> {
    #[cfg(any(test, feature = "test-seams"))]
    seams::EVALUATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut violations = Vec::new();
    let mut annotations = Vec::new();
    let mut judged = 0;
    for (index, policy) in set.policies().iter().enumerate() {
        if matches!(policy.check, Check::Cel(_)) {
            // Judged over the whole object, by `evaluate_admission`.
            continue;
        }
        let decision = policy.selector.decide(request);
        if decision == Decision::NotJudged {
            continue;
        }
        judged += 1;
        let mut sink = Sink::new(policy, index, &mut violations).annotating(&mut annotations);
        match decision {
            Decision::Undecided(undecided) => {
                sink.report(Finding::undecided(request.namespace, undecided));
            }
            _ => policy.check.evaluate(pod, request, images, &mut sink),
        }
    }
    Verdict {
        violations,
        annotations,
        judged,
        cel_annotations: Vec::new(),
    }
}

/// Whether a policy that may judge `request` needs its namespace's labels (a
/// `namespaceSelector`, or a check that reads them): only then are they looked up.
pub fn needs_namespace_labels(set: &PolicySet, request: &Request<'_>) -> bool {
    let unknown = request.with_namespace_labels(NamespaceLabels::NOT_GIVEN);
    set.policies()
        .iter()
        .any(|p| p.reads_namespace_labels() && p.selector.decide(&unknown) != Decision::NotJudged)
}

/// Judges a request with every policy: the built-in checks on its pod (`workload`: the
/// request as their selectors read it and the pod, for the kinds that have one) and the CEL
/// policies on the whole object (`admission`).
pub fn evaluate_admission<'p, 'v>(
    set: &'p PolicySet,
    workload: Option<(&Request<'_>, PodView<'v, '_>)>,
    images: &dyn ImageVerdicts,
    admission: &crate::cel::Admission<'_>,
) -> Verdict<'p, 'v> {
    let mut verdict = match workload {
        Some((request, pod)) => evaluate_with(set, request, pod, images),
        None => Verdict::default(),
    };
    if set.has_cel() {
        let mut judged = crate::cel::Judged::default();
        crate::cel::judge(set, admission, &mut judged);
        verdict.judged += judged.judged;
        verdict.cel_annotations = judged.annotations;
        if !judged.violations.is_empty() {
            verdict.violations.append(&mut judged.violations);
            // Policy order, each policy's violations together (a stable sort).
            verdict.violations.sort_by_key(|v| v.policy_index);
        }
    }
    verdict
}

/// Counters that tests read to prove how often the engine ran (not in the product's API).
#[cfg(any(test, feature = "test-seams"))]
pub mod seams {
    use std::sync::atomic::{AtomicU64, Ordering};

    pub(crate) static EVALUATIONS: AtomicU64 = AtomicU64::new(0);
    pub(crate) static DECODES: AtomicU64 = AtomicU64::new(0);

    /// Evaluations of a set so far, in this process.
    pub fn evaluations() -> u64 {
        EVALUATIONS.load(Ordering::Relaxed)
    }

    /// AdmissionReviews decoded so far, in this process.
    pub fn decodes() -> u64 {
        DECODES.load(Ordering::Relaxed)
    }
}

/// The policies (with their positions) whose selectors choose `request`, in set order (a
/// policy whose selector cannot be decided is not among them: it reports that instead).
pub fn selecting<'p, 'r>(
    set: &'p PolicySet,
    request: &'r Request<'r>,
) -> impl Iterator<Item = (usize, &'p crate::policy::Policy)> + 'r
where
    'p: 'r,
{
    set.policies()
        .iter()
        .enumerate()
        .filter(move |(_, p)| p.selector.decide(request) == Decision::Judged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::decode_workload;

    const SET: &str = r#"
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: no-privileged}
spec: {check: privileged, mode: enforce}
---
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: non-root}
spec: {check: run-as-non-root, mode: warn, exclude: {namespaces: [legacy]}}
"#;

    #[test]
    fn collects_per_policy_and_respects_selectors_and_modes() {
        let set = PolicySet::from_yaml("set.yaml", SET).unwrap();
        let json = r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","securityContext":{"privileged":true}}]}}}}"#;
        let w = decode_workload(WorkloadKind::Deployment, json).unwrap();
        let pod = w.pod().unwrap();
        let req = Request::new(WorkloadKind::Deployment, "shop", Some("alice"));
        let verdict = evaluate(&set, &req, pod);
        assert!(verdict.denies());
        assert_eq!(verdict.violations.len(), 2);
        assert_eq!(
            verdict.violations[0].message(WorkloadKind::Deployment.pod_spec_path()),
            "no-privileged/privileged: container \"app\" spec.template.spec.containers[0].securityContext.privileged: \
             is true: a privileged container has full access to the host — remove securityContext.privileged or set it to false"
        );
        assert_eq!(verdict.in_mode(Mode::Warn).count(), 1);

        let legacy = Request {
            namespace: "legacy",
            ..req
        };
        assert_eq!(evaluate(&set, &legacy, pod).violations.len(), 1);
    }

    #[test]
    fn an_undecidable_namespace_selector_fails_closed_in_the_policys_mode() {
        let set = PolicySet::from_yaml(
            "set.yaml",
            "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: prod-only}\nspec: {check: privileged, match: {namespaceSelector: {matchLabels: {tier: prod}}}}\n",
        )
        .unwrap();
        let w = decode_workload(
            WorkloadKind::Pod,
            r#"{"spec":{"containers":[{"name":"a"}]}}"#,
        )
        .unwrap();
        let pod = w.pod().unwrap();
        let req = Request::new(WorkloadKind::Pod, "shop", None)
            .with_namespace_labels(NamespaceLabels::Unknown("portier has no API access"));
        let verdict = evaluate(&set, &req, pod);
        assert!(verdict.denies());
        assert_eq!(verdict.judged, 1);
        assert_eq!(
            verdict.violations[0].message("spec"),
            "prod-only/privileged: pod metadata.namespace: cannot decide spec.match.namespaceSelector: \
             the labels of namespace \"shop\" are not known (portier has no API access) — give portier \
             read access to namespaces (get, list, watch), or, offline, the namespace's labels"
        );
        assert_eq!(selecting(&set, &req).count(), 0);
        let prod: std::collections::BTreeMap<String, String> =
            [("tier".to_owned(), "prod".to_owned())].into();
        let known = req.with_namespace_labels(NamespaceLabels::Known(
            &prod,
            crate::namespaces::LabelSource::Cache,
        ));
        assert!(evaluate(&set, &known, pod).is_clean());
        assert_eq!(evaluate(&set, &known, pod).judged, 1);
        assert_eq!(selecting(&set, &known).count(), 1);
    }

    #[test]
    fn a_compliant_pod_is_clean() {
        let set = PolicySet::from_yaml("set.yaml", SET).unwrap();
        let json =
            r#"{"spec":{"securityContext":{"runAsNonRoot":true},"containers":[{"name":"app"}]}}"#;
        let w = decode_workload(WorkloadKind::Pod, json).unwrap();
        let pod = w.pod().unwrap();
        let req = Request::new(WorkloadKind::Pod, "shop", None);
        let verdict = evaluate(&set, &req, pod);
        assert!(verdict.is_clean());
        assert!(!verdict.denies());
    }
}
