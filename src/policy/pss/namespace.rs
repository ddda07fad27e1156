//! `pod-security` with `level: namespace`: Pod Security admission (PSA) as the API server runs
//! it, driven by the `pod-security.kubernetes.io/*` labels of the pod's namespace, so portier
//! can take over a cluster's PSA labels as they are. Upstream's
//! `k8s.io/pod-security-admission/admission/admission.go` (`ValidatePod`,
//! `ValidatePodController`, `EvaluatePod`), step for step:
//!
//! 1. exempt namespace, then exempt user: allowed, audit annotation `exempt`;
//! 2. the namespace's labels give the policy (`labels.rs`); none of enforce, warn and audit
//!    asks for anything: allowed (a Pod gets `enforce-policy: privileged:latest`);
//! 3. a Pod UPDATE that changes no image and adds no container is allowed unjudged;
//! 4. exempt RuntimeClass: allowed, `exempt: runtimeClass`;
//! 5. invalid labels: an `error` annotation; a Pod is judged at `enforce` (deny:
//!    `pods "x" is forbidden: violates PodSecurity "restricted:latest": ...`) and annotated
//!    `enforce-policy`; every object at `audit` (annotation `audit-violations`) and, unless
//!    denied, at `warn` (warning `would violate PodSecurity "...": ...`). Workloads with pod
//!    templates get warn and audit only, never enforce, as upstream.
//!
//! Labels that cannot be known (no API access) fail closed for Pods, as PSA refuses a pod when
//! it cannot read its namespace; a workload template, which PSA never denies, gets a warning.

use serde::Deserialize;

use super::labels::{Defaults, LevelVersion, PsaLevel, PsaPolicy, aggregate, policy_to_evaluate};
use super::{Control, LATEST_MINOR, Level, controls_for, upstream};
use crate::engine::Request;
use crate::namespaces::NamespaceLabels;
use crate::pod::{PodView, WorkloadKind, decode_workload};
use crate::policy::{FieldPath, Finding, Mode, ParamError, Sink};

/// `params.exemptions`, as PodSecurityConfiguration's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Exemptions {
    #[serde(default)]
    pub usernames: Vec<String>,
    #[serde(default)]
    pub runtime_classes: Vec<String>,
    #[serde(default)]
    pub namespaces: Vec<String>,
}

/// Params of `pod-security` with `level: namespace`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Always `namespace` here.
    #[allow(dead_code)]
    level: String,
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    exemptions: Exemptions,
}

/// A compiled `level: namespace` check.
#[derive(Debug)]
pub struct NamespacePolicy {
    pub defaults: PsaPolicy,
    pub exemptions: Exemptions,
    /// The controls of baseline and restricted at every minor version, computed once.
    baseline: Vec<Vec<&'static Control>>,
    restricted: Vec<Vec<&'static Control>>,
}

/// A level at a version judged: `None` allowed, else upstream's `ForbiddenDetail` and
/// `ForbiddenReason`.
pub type Judged = Option<(String, String)>;

impl NamespacePolicy {
    pub fn compile(params: serde_json::Value) -> Result<NamespacePolicy, ParamError> {
        let params: Params = crate::policy::typed(params)?;
        let defaults = params
            .defaults
            .compile()
            .map_err(|(field, message)| ParamError::new(field, message))?;
        let all = |level| {
            (0..=LATEST_MINOR)
                .map(|minor| controls_for(level, minor))
                .collect()
        };
        Ok(NamespacePolicy {
            defaults,
            exemptions: params.exemptions,
            baseline: all(Level::Baseline),
            restricted: all(Level::Restricted),
        })
    }

    pub fn exempt_namespace(&self, namespace: &str) -> bool {
        !namespace.is_empty() && self.exemptions.namespaces.iter().any(|n| n == namespace)
    }

    fn exempt_user(&self, user: Option<&str>) -> bool {
        user.is_some_and(|u| !u.is_empty() && self.exemptions.usernames.iter().any(|n| n == u))
    }

    fn exempt_runtime_class(&self, pod: PodView<'_, '_>) -> bool {
        pod.spec.runtime_class_name.as_deref().is_some_and(|rc| {
            !rc.is_empty() && self.exemptions.runtime_classes.iter().any(|n| n == rc)
        })
    }

    /// Judges `pod` at one level and version (upstream's `EvaluatePod` + `AggregateCheckResults`).
    pub fn judge(&self, at: LevelVersion, pod: PodView<'_, '_>) -> Judged {
        let minor = at.version.effective_minor() as usize;
        let controls = match at.level {
            PsaLevel::Privileged => return None,
            PsaLevel::Baseline => &self.baseline[minor],
            PsaLevel::Restricted => &self.restricted[minor],
        };
        let mut detail = String::new();
        let mut reason = String::new();
        for control in controls {
            if let Some((r, d)) = upstream::evaluate(control, minor as u32, pod) {
                if !detail.is_empty() {
                    detail.push_str(", ");
                    reason.push_str(", ");
                }
                detail.push_str(&r);
                reason.push_str(&r);
                if !d.is_empty() {
                    detail.push_str(" (");
                    detail.push_str(&d);
                    detail.push(')');
                }
            }
        }
        (!detail.is_empty()).then_some((detail, reason))
    }

    /// Upstream's `ValidatePod` / `ValidatePodController` for one review.
    pub fn evaluate<'v>(
        &self,
        pod: PodView<'v, '_>,
        request: &Request<'_>,
        sink: &mut Sink<'_, '_, 'v>,
    ) {
        let is_pod = request.kind == WorkloadKind::Pod;
        if self.exempt_namespace(request.namespace) {
            return sink.annotate("exempt", "namespace");
        }
        if self.exempt_user(request.user) {
            return sink.annotate("exempt", "user");
        }
        let labels = match request.namespace_labels {
            NamespaceLabels::Known(labels, _) => labels,
            NamespaceLabels::Unknown(why) => return unknown_labels(request, is_pod, why, sink),
        };
        let (policy, errors) = policy_to_evaluate(labels, self.defaults);
        if errors.is_empty() {
            if is_pod && policy.fully_privileged() {
                return sink.annotate("enforce-policy", LevelVersion::PRIVILEGED.text());
            }
            let quiet = |lv: LevelVersion| lv.level == PsaLevel::Privileged;
            if !is_pod && quiet(policy.warn) && quiet(policy.audit) {
                return;
            }
        }
        if is_pod
            && request.operation == Some("UPDATE")
            && !significant_update(pod, request.old_object)
        {
            return;
        }
        if self.exempt_runtime_class(pod) {
            return sink.annotate("exempt", "runtimeClass");
        }
        if !errors.is_empty() {
            sink.annotate(
                "error",
                format!("Failed to parse policy: {}", aggregate(&errors)),
            );
        }
        let path = || FieldPath::Object(request.kind.pod_spec_path().into());
        // Each distinct level and version is judged once (upstream's `cachedResults`).
        let mut judged: [Option<(LevelVersion, Judged)>; 3] = [None, None, None];
        let mut judge = |at: LevelVersion| -> Judged {
            let slot = judged
                .iter_mut()
                .find(|s| s.as_ref().is_none_or(|(lv, _)| *lv == at));
            match slot {
                Some(Some((_, result))) => result.clone(),
                Some(empty) => {
                    let result = self.judge(at, pod);
                    *empty = Some((at, result.clone()));
                    result
                }
                None => self.judge(at, pod),
            }
        };
        let mut denied = false;
        if is_pod {
            sink.annotate("enforce-policy", policy.enforce.text());
            if let Some((detail, _)) = judge(policy.enforce) {
                let resource = match request.name.filter(|n| !n.is_empty()) {
                    Some(name) => format!("pods {name:?}"),
                    None => "pods".to_owned(),
                };
                let message = format!(
                    "{resource} is forbidden: violates PodSecurity \"{}\": {detail}",
                    policy.enforce
                );
                denied =
                    sink.report_verbatim(Mode::Enforce, verbatim(path(), message)) == Mode::Enforce;
            }
        }
        if let Some((detail, _)) = judge(policy.audit) {
            let message = format!("would violate PodSecurity \"{}\": {detail}", policy.audit);
            sink.report_verbatim(Mode::Audit, verbatim(path(), message));
        }
        // No warnings on a request that is refused anyway (upstream's words).
        if !denied && let Some((detail, _)) = judge(policy.warn) {
            let message = format!("would violate PodSecurity \"{}\": {detail}", policy.warn);
            sink.report_verbatim(Mode::Warn, verbatim(path(), message));
        }
    }
}

fn verbatim<'v>(path: FieldPath, message: String) -> Finding<'v> {
    Finding {
        container: None,
        path,
        problem: message.into(),
        fix: "".into(),
        reason: None,
        denied_object: None,
    }
}

/// The namespace's labels are not known: a Pod is refused (PSA refuses a pod whose namespace
/// it cannot read), a workload template warned about (PSA never denies those).
fn unknown_labels(request: &Request<'_>, is_pod: bool, why: &str, sink: &mut Sink<'_, '_, '_>) {
    let message = format!(
        "cannot apply Pod Security: the labels of namespace {:?} are not known ({why}); give portier read access to namespaces (get, list, watch)",
        request.namespace
    );
    let mode = if is_pod { Mode::Enforce } else { Mode::Warn };
    sink.report_verbatim(
        mode,
        verbatim(FieldPath::Object("metadata.namespace".into()), message),
    );
    sink.annotate(
        "error",
        format!("failed to lookup namespace {:?}: {why}", request.namespace),
    );
}

/// Upstream's `isSignificantPodUpdate`: only a change of a container's image, of the number of
/// containers or init containers, or a new or changed ephemeral container is judged again. An
/// old object that cannot be read counts as significant (judged, never waved through).
pub fn significant_update(pod: PodView<'_, '_>, old_object: Option<&str>) -> bool {
    let Some(old) = old_object.and_then(|o| decode_workload(WorkloadKind::Pod, o).ok()) else {
        return true;
    };
    let Some(old) = old.spec.as_ref() else {
        return true;
    };
    let new = pod.spec;
    if new.containers().len() != old.containers().len()
        || new.init_containers().len() != old.init_containers().len()
    {
        return true;
    }
    fn image<'c>(c: &'c crate::pod::Container<'_>) -> &'c str {
        c.image.as_deref().unwrap_or("")
    }
    let changed = |a: &[crate::pod::Container<'_>], b: &[crate::pod::Container<'_>]| {
        a.iter().zip(b).any(|(x, y)| image(x) != image(y))
    };
    if changed(new.containers(), old.containers())
        || changed(new.init_containers(), old.init_containers())
    {
        return true;
    }
    new.ephemeral_containers().iter().any(|c| {
        match old.ephemeral_containers().iter().find(|o| o.name == c.name) {
            None => true,
            Some(o) => image(o) != image(c),
        }
    })
}

#[cfg(test)]
#[path = "namespace_tests.rs"]
mod tests;
