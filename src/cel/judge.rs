//! The CEL room's one seam into the engine: the CEL policies of a set that select a request,
//! evaluated over the whole object, as violations the engine reports like any other.

use std::borrow::Cow;

use super::admission::Admission;
use super::matcher::Attributes;
use super::policy::{Applies, Origin};
use crate::engine::ObjectLabels;
use crate::labels::{Labels, NoLabels};
use crate::namespaces::{LabelSource, NamespaceLabels};
use crate::policy::{Check, Decision, FieldPath, Finding, Mode, PolicySet, Violation};

/// What the CEL policies found in one request.
#[derive(Debug, Default)]
pub struct Judged<'p, 'v> {
    pub violations: Vec<Violation<'p, 'v>>,
    /// Audit annotations, keyed `<policy>/<key>` as the API server forms them.
    pub annotations: Vec<(String, String)>,
    /// CEL policies that selected the request.
    pub judged: usize,
}

/// Whether some CEL policy of `set` may select a request of these `attributes`, of the kind
/// named `kind`, by `user`: portier's policies by their kind, namespace and user globs,
/// ValidatingAdmissionPolicies by their rules and their binding's, as [`judge`] first
/// decides; label selectors are left to it. `false` only when [`judge`] would judge nothing,
/// so a review no CEL policy selects need not be read for CEL at all.
pub fn may_select(
    set: &PolicySet,
    attributes: &Attributes<'_>,
    kind: &str,
    user: Option<&str>,
) -> bool {
    set.policies().iter().any(|policy| match &policy.check {
        Check::Cel(cel) => match cel.origin {
            Origin::Portier { .. } => policy
                .selector
                .judges_kind(kind, attributes.namespace, user),
            Origin::Binding { .. } => cel.rules_select(attributes),
        },
        _ => false,
    })
}

/// Judges `admission` with every CEL policy of `set` that selects it: portier's own by their
/// `match`/`exclude` (on the object's kind name), ValidatingAdmissionPolicies by their rules
/// and their binding's.
pub fn judge<'p, 'v>(set: &'p PolicySet, admission: &Admission<'_>, out: &mut Judged<'p, 'v>) {
    for (index, policy) in set.policies().iter().enumerate() {
        let Check::Cel(cel) = &policy.check else {
            continue;
        };
        let outcome = match cel.origin {
            Origin::Portier { .. } => {
                if !policy.selector.judges_kind(
                    admission.kind,
                    admission.attributes.namespace,
                    admission.user,
                ) {
                    continue;
                }
                let object = ObjectLabels {
                    object: match &admission.labels {
                        Some(labels) => labels,
                        None => &NoLabels,
                    },
                    old: admission.old_labels.as_ref().map(|l| l as &dyn Labels),
                };
                let namespace = match admission.namespace_selector_labels() {
                    Ok(Some(labels)) => NamespaceLabels::Known(labels, LabelSource::Object),
                    // A cluster-scoped object is in no namespace: no selector exempts it.
                    Ok(None) => NamespaceLabels::Known(&NoLabels, LabelSource::Object),
                    Err(why) => NamespaceLabels::Unknown(why),
                };
                match policy.selector.decide_labels_of(object, namespace) {
                    Decision::NotJudged => continue,
                    Decision::Undecided(undecided) => {
                        let finding = Finding::undecided(admission.attributes.namespace, undecided);
                        cel.undecided(finding.problem.into_owned())
                    }
                    Decision::Judged => cel.evaluate(admission),
                }
            }
            Origin::Binding { .. } => match cel.applies(admission) {
                Applies::No => continue,
                Applies::Yes => cel.evaluate(admission),
                Applies::Undecided(problem) => cel.undecided(problem),
            },
        };
        out.judged += 1;
        for failure in outcome.failures {
            let (mode, audited) = match cel.origin {
                Origin::Portier { .. } => (policy.mode, false),
                // A configuration error or a failed audit annotation denies, whatever the
                // binding's actions (the API server's `addConfigError`).
                Origin::Binding { .. } if failure.always_denies => (Mode::Enforce, false),
                Origin::Binding { .. } => {
                    (policy.mode, cel.actions.audit && policy.mode != Mode::Audit)
                }
            };
            out.violations.push(Violation {
                policy,
                policy_index: index,
                finding: Finding {
                    container: None,
                    path: FieldPath::Object(Cow::Borrowed("")),
                    problem: Cow::Owned(failure.message),
                    fix: Cow::Borrowed(""),
                    reason: Some(status_reason(&failure.reason)),
                    denied_object: Some(denied_object(admission)),
                },
                mode,
                audited,
                verbatim: false,
            });
        }
        out.annotations.extend(outcome.annotations);
    }
}

/// The request as the API server names one it forbids (`admission.NewForbidden`):
/// `<resource>[.<group>] "<name>"`, the name being the request's, else the object's, else its
/// `generateName`, else `Unknown`.
fn denied_object(admission: &Admission<'_>) -> String {
    let a = &admission.attributes;
    let object_name = |key: &str| {
        admission
            .metadata
            .and_then(|m| m.get(key))
            .and_then(|n| n.as_str())
            .filter(|n| !n.is_empty())
    };
    let name = Some(a.name)
        .filter(|n| !n.is_empty())
        .or_else(|| object_name("name"))
        .or_else(|| object_name("generateName"))
        .unwrap_or("Unknown");
    match a.group {
        "" => format!("{} {name:?}", a.resource),
        group => format!("{}.{group} {name:?}", a.resource),
    }
}

/// The status reasons a validation may give, as static names.
fn status_reason(reason: &str) -> &'static str {
    match reason {
        "Unauthorized" => "Unauthorized",
        "Forbidden" => "Forbidden",
        "RequestEntityTooLarge" => "RequestEntityTooLarge",
        _ => "Invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cel::Json;
    use crate::namespaces::NamespaceLabels;

    const POLICIES: &str = r#"
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: portier-kinds}
spec:
  check: cel
  mode: enforce
  match: {kinds: [Service, "Ingress*"], namespaces: ["shop*"]}
  exclude: {users: ["system:serviceaccount:kube-system:*"]}
  params:
    validations: [{expression: "false"}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: vap}
spec:
  matchConstraints:
    resourceRules:
      - {apiGroups: ["apps"], apiVersions: ["v1"], operations: [CREATE], resources: ["deployments", "statefulsets/scale"]}
      - {apiGroups: [""], apiVersions: ["*"], operations: ["*"], resources: ["pods/*"], scope: Namespaced}
    excludeResourceRules:
      - {apiGroups: [""], apiVersions: ["*"], operations: ["*"], resources: ["pods/exec"], resourceNames: [debug]}
    namespaceSelector: {matchLabels: {team: a}}
    objectSelector: {matchExpressions: [{key: tier, operator: NotIn, values: [test]}]}
  validations: [{expression: "false"}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: vap}
spec:
  policyName: vap
  validationActions: [Deny]
  matchResources:
    excludeResourceRules:
      - {apiGroups: ["apps"], apiVersions: ["v1"], operations: ["*"], resources: ["deployments"], resourceNames: [legacy]}
"#;

    /// Skipping CEL for a request `may_select` turns down is safe only if `judge` would judge
    /// it with no policy: checked over every combination of a few values of each attribute.
    #[test]
    fn a_request_may_select_turns_down_is_judged_by_no_policy() {
        let set = PolicySet::from_yaml("p.yaml", POLICIES).unwrap();
        let resources = [
            ("", "v1", "pods", "Pod"),
            ("", "v1", "services", "Service"),
            ("networking.k8s.io", "v1", "ingresses", "Ingress"),
            ("apps", "v1", "deployments", "Deployment"),
            ("apps", "v1", "statefulsets", "StatefulSet"),
            ("apps", "v2", "deployments", "Deployment"),
            ("", "v1", "namespaces", "Namespace"),
        ];
        let (mut turned_down, mut judged) = (0, 0);
        for (group, version, resource, kind) in resources {
            for sub in ["", "exec", "scale", "status"] {
                for operation in ["CREATE", "UPDATE", "DELETE", "CONNECT"] {
                    for namespace in ["", "shop", "kube-system"] {
                        for name in ["", "debug", "legacy"] {
                            for user in ["alice", "system:serviceaccount:kube-system:ctl"] {
                                for tier in ["prod", "test"] {
                                    let request = Json::from_value(&serde_json::json!({
                                        "uid": "u", "kind": {"group": group, "version": version, "kind": kind},
                                        "resource": {"group": group, "version": version, "resource": resource},
                                        "subResource": sub, "operation": operation, "namespace": namespace,
                                        "name": name, "userInfo": {"username": user},
                                        "object": {"metadata": {"name": name, "labels": {"tier": tier}}},
                                    }));
                                    let admission = Admission::from_request(request.node())
                                        .with_namespace_labels(NamespaceLabels::Unknown(
                                            "not known",
                                        ));
                                    let mut out = Judged::default();
                                    judge(&set, &admission, &mut out);
                                    let may =
                                        may_select(&set, &admission.attributes, kind, Some(user));
                                    assert!(
                                        may || out.judged == 0,
                                        "{resource}/{sub} {operation} {namespace}/{name} by {user}: turned down, yet judged"
                                    );
                                    turned_down += usize::from(!may);
                                    judged += usize::from(out.judged > 0);
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(
            turned_down > 1000 && judged > 100,
            "{turned_down} turned down, {judged} judged"
        );
    }
}
