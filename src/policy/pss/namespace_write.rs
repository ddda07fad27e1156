//! A Namespace CREATE or UPDATE as Pod Security admission judges it (upstream's
//! `k8s.io/pod-security-admission/admission/admission.go`: `ValidateNamespace`,
//! `EvaluatePodsInNamespace`, `prioritizePods`, `decoratePodWarnings`,
//! `exemptNamespaceWarning`):
//!
//! - invalid PSA labels are refused (`Namespace "x" is invalid: metadata.labels[...]: ...`), on
//!   CREATE always, on UPDATE unless the old object had the very same errors;
//! - an exempt namespace that asks for a policy gets a warning that it will be ignored;
//! - an UPDATE that sets or tightens `enforce` (a stricter level at the same version, or
//!   another version, never to privileged) is allowed with warnings naming the existing pods
//!   that would violate it: at most [`MAX_PODS_TO_CHECK`], within a time budget, one pod per
//!   controller first, identical reasons grouped under the first pod name.
//!
//! Pure functions here; listing the pods is `namespaces::pods`' job.

use std::collections::{HashMap, HashSet};

use super::labels::{
    AUDIT, AUDIT_VERSION, ENFORCE, ENFORCE_VERSION, LabelError, LevelVersion, PsaLevel, PsaPolicy,
    WARN, WARN_VERSION, policy_to_evaluate,
};
use super::namespace::NamespacePolicy;
use crate::labels::Labels;
use crate::pod::{WorkloadKind, decode_workload};

/// Upstream's `defaultNamespaceMaxPodsToCheck`.
pub const MAX_PODS_TO_CHECK: usize = 3000;
/// Upstream's `defaultNamespacePodCheckTimeout` (at most half of what remains of the review).
pub const POD_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// What Pod Security admission makes of a Namespace write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceWrite {
    /// Allowed, nothing to say.
    Allowed,
    /// Refused: the new labels are invalid (upstream's field errors, in its order).
    Invalid(Vec<LabelError>),
    /// Allowed with this warning (an exempt namespace's policy is ignored).
    Warned(String),
    /// Allowed, with warnings about the existing pods that violate the new `enforce` level.
    CheckPods(LevelVersion),
}

/// A Namespace write: its operation, name, and the labels before (UPDATE) and after.
#[derive(Clone, Copy)]
pub struct Write<'r> {
    pub operation: &'r str,
    pub name: &'r str,
    pub labels: &'r dyn Labels,
    /// The labels of the object an UPDATE replaces.
    pub old_labels: Option<&'r dyn Labels>,
}

impl NamespacePolicy {
    /// Upstream's `ValidateNamespace` (subresources are never routed here).
    pub fn judge_namespace_write(&self, write: Write<'_>) -> NamespaceWrite {
        let (new_policy, new_errors) = policy_to_evaluate(write.labels, self.defaults);
        match write.operation {
            "CREATE" => {
                if !new_errors.is_empty() {
                    return NamespaceWrite::Invalid(new_errors);
                }
                self.exempt_warning(write, &new_policy)
                    .map_or(NamespaceWrite::Allowed, NamespaceWrite::Warned)
            }
            "UPDATE" => {
                // An UPDATE whose object an API server sent without the old one cannot be
                // compared: judged as if the namespace had no labels before.
                let old_labels = write.old_labels.unwrap_or(&crate::labels::NoLabels);
                let (old_policy, old_errors) = policy_to_evaluate(old_labels, self.defaults);
                if !new_errors.is_empty() && (old_errors.is_empty() || new_errors != old_errors) {
                    return NamespaceWrite::Invalid(new_errors);
                }
                let (new, old) = (new_policy.enforce, old_policy.enforce);
                if new == old
                    || new.level == PsaLevel::Privileged
                    || (new.version == old.version
                        && new.level.strictness() <= old.level.strictness())
                {
                    return NamespaceWrite::Allowed;
                }
                if self.exempt_namespace(write.name) {
                    return self
                        .exempt_warning(write, &new_policy)
                        .map_or(NamespaceWrite::Allowed, NamespaceWrite::Warned);
                }
                NamespaceWrite::CheckPods(new)
            }
            _ => NamespaceWrite::Allowed,
        }
    }

    /// Upstream's `exemptNamespaceWarning`, for an exempt namespace only.
    fn exempt_warning(&self, write: Write<'_>, policy: &PsaPolicy) -> Option<String> {
        if !self.exempt_namespace(write.name)
            || policy.fully_privileged()
            || equivalent(policy, &self.defaults)
        {
            return None;
        }
        let has = |key| write.labels.label(key).is_some();
        let mut parts = Vec::new();
        for (mode, lv, level_key, version_key) in [
            ("enforce", policy.enforce, ENFORCE, ENFORCE_VERSION),
            ("audit", policy.audit, AUDIT, AUDIT_VERSION),
            ("warn", policy.warn, WARN, WARN_VERSION),
        ] {
            if lv.level != PsaLevel::Privileged && (has(level_key) || has(version_key)) {
                parts.push(format!("{mode}={lv}"));
            }
        }
        Some(format!(
            "namespace {:?} is exempt from Pod Security, and the policy ({}) will be ignored",
            write.name,
            parts.join(", ")
        ))
    }

    /// Whether a pod with this RuntimeClass is exempt.
    pub fn exempt_runtime_class_name(&self, runtime_class: Option<&str>) -> bool {
        runtime_class.is_some_and(|rc| {
            !rc.is_empty() && self.exemptions.runtime_classes.iter().any(|n| n == rc)
        })
    }
}

/// Upstream's `Policy.Equivalent`: privileged at any version equals privileged.
fn equivalent(a: &PsaPolicy, b: &PsaPolicy) -> bool {
    let same = |x: LevelVersion, y: LevelVersion| {
        (x.level == PsaLevel::Privileged && y.level == PsaLevel::Privileged) || x == y
    };
    same(a.enforce, b.enforce) && same(a.audit, b.audit) && same(a.warn, b.warn)
}

/// An existing pod, as listed: what `prioritizePods` reads, and the pod as JSON to judge.
#[derive(Debug, Clone)]
pub struct ExistingPod {
    pub name: String,
    /// The uid of its controller (the owner reference with `controller: true`).
    pub controller_uid: Option<String>,
    pub runtime_class: Option<String>,
    pub json: String,
}

/// Upstream's `EvaluatePodsInNamespace` over pods already listed: `out_of_time` is asked after
/// each pod judged (upstream checks its context's deadline there).
pub fn existing_pod_warnings(
    policy: &NamespacePolicy,
    namespace: &str,
    enforce: LevelVersion,
    pods: &[ExistingPod],
    mut out_of_time: impl FnMut() -> bool,
) -> Vec<String> {
    let prioritized = prioritize(policy, pods);
    let total = prioritized.len();
    let considered = &prioritized[..total.min(MAX_PODS_TO_CHECK)];
    let mut checked = considered.len();
    // Each distinct reason, in the order first seen, with its first-named pod and count.
    let mut reasons: Vec<String> = Vec::new();
    let mut counts: HashMap<String, (String, usize)> = HashMap::new();
    for (i, pod) in considered.iter().enumerate() {
        if let Some(reason) = judge_existing(policy, enforce, pod) {
            match counts.get_mut(&reason) {
                Some((first, count)) => {
                    if pod.name < *first {
                        first.clone_from(&pod.name);
                    }
                    *count += 1;
                }
                None => {
                    counts.insert(reason.clone(), (pod.name.clone(), 1));
                    reasons.push(reason);
                }
            }
        }
        if out_of_time() {
            checked = i + 1;
            break;
        }
    }
    let mut warnings = Vec::new();
    if checked < total {
        warnings.push(format!(
            "new PodSecurity enforce level only checked against the first {checked} of {total} existing pods"
        ));
    }
    if !reasons.is_empty() {
        warnings.push(format!(
            "existing pods in namespace {namespace:?} violate the new PodSecurity enforce level {:?}",
            enforce.to_string()
        ));
    }
    let mut decorated: Vec<String> = reasons
        .into_iter()
        .map(|reason| {
            let (name, count) = &counts[&reason];
            match count {
                1 => format!("{name}: {reason}"),
                2 => format!("{name} (and 1 other pod): {reason}"),
                n => format!("{name} (and {} other pods): {reason}", n - 1),
            }
        })
        .collect();
    decorated.sort();
    warnings.extend(decorated);
    warnings
}

/// Upstream's `prioritizePods`: exempt RuntimeClasses left out, then one pod per controller
/// (and every pod without one) before the other replicas.
fn prioritize<'p>(policy: &NamespacePolicy, pods: &'p [ExistingPod]) -> Vec<&'p ExistingPod> {
    let mut first = Vec::with_capacity(pods.len());
    let mut replicas = Vec::new();
    let mut controllers = HashSet::new();
    for pod in pods {
        if policy.exempt_runtime_class_name(pod.runtime_class.as_deref()) {
            continue;
        }
        match &pod.controller_uid {
            None => first.push(pod),
            Some(uid) if controllers.contains(uid.as_str()) => replicas.push(pod),
            Some(uid) => {
                controllers.insert(uid.as_str());
                first.push(pod);
            }
        }
    }
    first.extend(replicas);
    first
}

/// The `ForbiddenReason` of one pod at `enforce`; a pod that cannot be read is not judged
/// (the API server stored it, so it was a valid pod).
fn judge_existing(
    policy: &NamespacePolicy,
    enforce: LevelVersion,
    pod: &ExistingPod,
) -> Option<String> {
    let workload = decode_workload(WorkloadKind::Pod, &pod.json).ok()?;
    let view = workload.pod()?;
    policy.judge(enforce, view).map(|(_, reason)| reason)
}

#[cfg(test)]
#[path = "namespace_write_tests.rs"]
mod tests;
