//! Namespace CREATE and UPDATE reviews on `/validate`: what `pod-security` with
//! `level: namespace` makes of a change to a namespace's Pod Security labels, as Pod Security
//! admission does (see `policy::pss::namespace_write`).
//!
//! The Namespace the review carries is its own labels (`LabelSource::Object`): for the PSA
//! labels and for the policy's selectors (a `namespaceSelector` or an `objectSelector` reads
//! the labels being written, not the cached ones). Namespace writes are rare, so the object is
//! decoded whole.

use std::borrow::Cow;

use k8s_openapi::api::core::v1::Namespace;
use serde_json::value::RawValue;

use super::encode::{
    Findings, NamespaceRefusal, encode_findings, fail_closed, join_annotation, namespace_answer,
};
use super::{Answer, Decision, Decoded, Endpoint, Other, Subject, answer_other, with_cel_findings};
use crate::engine::Request;
use crate::namespaces::{LabelSource, NamespaceLabels, labels_of};
use crate::pod::{Text, WorkloadKind};
use crate::policy::pss::labels::aggregate;
use crate::policy::pss::namespace::NamespacePolicy;
use crate::policy::pss::namespace_write::{
    ExistingPod, NamespaceWrite, Write, existing_pod_warnings,
};
use crate::policy::{Check, Decision as Selected, Mode, Policy, PolicySet};

/// The answer to a Namespace write: `level: namespace` policies judge it as Pod Security
/// admission does, CEL policies (if any select it) as any object. With none of the former it
/// is the CEL answer; with both, a CEL refusal is the answer, else a Pod Security refusal,
/// else the write is allowed with the warnings and audit annotations of both.
pub fn answer_namespace(
    review: &NamespaceReview<'_>,
    judged: &[Judged<'_>],
    other: &Other<'_>,
    set: &PolicySet,
    pods: &Result<Vec<ExistingPod>, String>,
    out_of_time: impl FnMut() -> bool,
) -> Answer {
    if judged.is_empty() {
        return answer_other(other, set, review.labels());
    }
    let psa = review.findings(judged, pods, out_of_time);
    if !set.has_cel() {
        return review.encode(psa, None);
    }
    with_cel_findings(other, set, review.labels(), None, |cel| match cel {
        Some((subject, cel)) if cel.denial.is_some() => encode_findings(subject, cel),
        cel => review.encode(psa, cel.map(|(_, findings)| findings)),
    })
}

/// What the `level: namespace` policies make of a Namespace write.
pub struct PodSecurityFindings {
    refusal: Option<NamespaceRefusal>,
    warnings: Vec<String>,
    annotations: Vec<(Cow<'static, str>, String)>,
    decisions: Vec<Decision>,
}

/// A Namespace write to judge.
pub struct NamespaceReview<'a> {
    uid: Text<'a>,
    operation: Text<'a>,
    /// The namespace's name (the request's `name`, else the object's).
    name: String,
    user: Option<Text<'a>>,
    object: Namespace,
    old_object: Option<Namespace>,
}

/// Whether a request is a Namespace write this module judges.
pub(super) fn is_namespace_write(
    group: &str,
    kind: &str,
    operation: &str,
    sub_resource: &str,
) -> bool {
    group.is_empty()
        && kind == "Namespace"
        && (operation == "CREATE" || operation == "UPDATE")
        && sub_resource.is_empty()
}

/// Reads the Namespace (and the one an UPDATE replaces) from the review.
pub(super) fn decode<'a>(
    uid: Text<'a>,
    operation: Text<'a>,
    name: Option<Text<'a>>,
    user: Option<Text<'a>>,
    object: Option<&'a RawValue>,
    old_object: Option<&'a RawValue>,
    other: Other<'a>,
) -> Decoded<'a> {
    let read = |raw: &RawValue, which: &str| {
        if !raw.get().trim_start().starts_with('{') {
            return Err(format!(
                "{which} is not a valid Namespace: not a JSON object"
            ));
        }
        serde_json::from_str::<Namespace>(raw.get())
            .map_err(|e| format!("{which} is not a valid Namespace: {e}"))
    };
    let Some(object) = object else {
        return Decoded::Answered(fail_closed(
            &uid,
            Endpoint::Validate,
            "request.object is missing",
        ));
    };
    let object = match read(object, "request.object") {
        Ok(o) => o,
        Err(why) => return Decoded::Answered(fail_closed(&uid, Endpoint::Validate, &why)),
    };
    let old_object = match old_object.map(|o| read(o, "request.oldObject")) {
        None => None,
        Some(Ok(o)) => Some(o),
        Some(Err(why)) => return Decoded::Answered(fail_closed(&uid, Endpoint::Validate, &why)),
    };
    let name = name
        .as_deref()
        .filter(|n| !n.is_empty())
        .or(object.metadata.name.as_deref())
        .unwrap_or("")
        .to_owned();
    Decoded::Namespace(
        Box::new(NamespaceReview {
            uid,
            operation,
            name,
            user,
            object,
            old_object,
        }),
        other,
    )
}

/// One `level: namespace` policy that judges the write, and its finding.
pub struct Judged<'p> {
    index: usize,
    policy: &'p Policy,
    check: &'p NamespacePolicy,
    write: NamespaceWrite,
}

impl NamespaceReview<'_> {
    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The labels the review writes: the namespace's labels from now on.
    pub fn labels(&self) -> NamespaceLabels<'_> {
        NamespaceLabels::Known(labels_of(&self.object), LabelSource::Object)
    }

    /// What the policies' label selectors read: the namespace's labels are its own labels.
    /// The request's kind is not read on this path (`Selector::decide_labels`).
    fn request(&self) -> Request<'_> {
        let labels = labels_of(&self.object);
        let request = Request::new(WorkloadKind::Pod, &self.name, self.user.as_deref())
            .with_name(Some(&self.name))
            .with_object_labels(labels)
            .with_namespace_labels(self.labels())
            .with_operation(Some(&self.operation), None);
        match &self.old_object {
            Some(old) => request.with_old_object_labels(labels_of(old)),
            None => request,
        }
    }

    /// What every `level: namespace` policy that selects this write makes of it.
    pub fn judge<'p>(&self, set: &'p PolicySet) -> Vec<Judged<'p>> {
        let request = self.request();
        let write = Write {
            operation: &self.operation,
            name: &self.name,
            labels: labels_of(&self.object),
            old_labels: self.old_object.as_ref().map(labels_of),
        };
        set.policies()
            .iter()
            .enumerate()
            .filter_map(|(index, policy)| {
                let Check::PodSecurityNamespace(check) = &policy.check else {
                    return None;
                };
                let selected = policy
                    .selector
                    .judges_namespace_review(&self.name, self.user.as_deref())
                    && policy.selector.decide_labels(&request) == Selected::Judged;
                selected.then(|| Judged {
                    index,
                    policy,
                    check,
                    write: check.judge_namespace_write(write),
                })
            })
            .collect()
    }

    /// Whether answering needs the namespace's existing pods.
    pub fn needs_pods(judged: &[Judged<'_>]) -> bool {
        judged.iter().any(|j| {
            j.policy.mode != Mode::Audit && matches!(j.write, NamespaceWrite::CheckPods(_))
        })
    }

    /// What the policies found, given the namespace's pods when
    /// [`NamespaceReview::needs_pods`] (else anything) and whether the time budget is spent.
    fn findings(
        &self,
        judged: &[Judged<'_>],
        pods: &Result<Vec<ExistingPod>, String>,
        mut out_of_time: impl FnMut() -> bool,
    ) -> PodSecurityFindings {
        let mut refusal: Option<NamespaceRefusal> = None;
        let mut warnings: Vec<String> = Vec::new();
        let mut annotations: Vec<(Cow<'static, str>, String)> = Vec::new();
        let mut decisions = Vec::new();
        for j in judged {
            let mut said = |mode: Mode, message: String| {
                decisions.push(Decision {
                    policy_index: j.index,
                    policy: j.policy.name.clone(),
                    check: j.policy.check.id(),
                    mode,
                    audited: false,
                    message,
                });
            };
            match &j.write {
                NamespaceWrite::Allowed => {}
                NamespaceWrite::Invalid(errors) => {
                    let message = format!(
                        "Namespace {:?} is invalid: {}",
                        self.name,
                        aggregate(errors)
                    );
                    match j.policy.mode {
                        Mode::Enforce => {
                            if refusal.is_none() {
                                refusal = Some(NamespaceRefusal {
                                    message: message.clone(),
                                    name: self.name.clone(),
                                    causes: errors.iter().map(|e| (e.field(), e.body())).collect(),
                                });
                            }
                        }
                        Mode::Warn => warnings.push(message.clone()),
                        Mode::Audit => annotations.push(("error".into(), message.clone())),
                    }
                    said(j.policy.mode, message);
                }
                NamespaceWrite::Warned(warning) if j.policy.mode != Mode::Audit => {
                    warnings.push(warning.clone());
                }
                NamespaceWrite::CheckPods(enforce) if j.policy.mode != Mode::Audit => {
                    let found = match pods {
                        Ok(pods) => existing_pod_warnings(
                            j.check,
                            &self.name,
                            *enforce,
                            pods,
                            &mut out_of_time,
                        ),
                        Err(why) => {
                            tracing::warn!(namespace = %self.name, error = %why, "cannot list the namespace's pods");
                            vec![
                                "failed to list pods while checking new PodSecurity enforce level"
                                    .to_owned(),
                            ]
                        }
                    };
                    if !found.is_empty() {
                        said(Mode::Warn, found.join("; "));
                    }
                    warnings.extend(found);
                }
                NamespaceWrite::Warned(_) | NamespaceWrite::CheckPods(_) => {}
            }
        }
        PodSecurityFindings {
            refusal,
            warnings,
            annotations,
            decisions,
        }
    }

    /// The answer: the Pod Security refusal, or an allowance with the warnings and audit
    /// annotations of the Pod Security policies, then those of the CEL policies (which did
    /// not refuse). An annotation key both use keeps one entry, its values joined.
    fn encode(&self, psa: PodSecurityFindings, cel: Option<Findings<'_>>) -> Answer {
        let PodSecurityFindings {
            refusal,
            mut warnings,
            annotations,
            mut decisions,
        } = psa;
        let mut annotations: Vec<(Cow<'_, str>, String)> = annotations;
        if let Some(cel) = cel {
            warnings.extend(cel.warnings);
            for (key, value) in cel.audit_annotations {
                join_annotation(&mut annotations, key, &value);
            }
            decisions.extend(cel.decisions);
        }
        let subject = Subject {
            uid: self.uid.to_string(),
            operation: self.operation.to_string(),
            kind: "Namespace".to_owned(),
            namespace: self.name.clone(),
            name: self.name.clone(),
            user: self.user.as_deref().unwrap_or("").to_owned(),
        };
        namespace_answer(subject, refusal, warnings, annotations, decisions)
    }
}

#[cfg(test)]
#[path = "namespace_tests.rs"]
mod tests;
