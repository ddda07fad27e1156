//! `privileged`: no privileged containers; optionally no privilege escalation either.
//!
//! With `params: {allowPrivilegeEscalation: false}` every container must set
//! `securityContext.allowPrivilegeEscalation: false` explicitly: when the field is unset the
//! runtime lets a process gain more privileges than its parent (setuid binaries), which is what
//! the restricted Pod Security Standard forbids.
//!
//! Mutation (with `allowPrivilegeEscalation: false`) sets `allowPrivilegeEscalation: false` on
//! every container that leaves it unset, except where the API server would reject the result:
//! a privileged container, or one that adds `SYS_ADMIN`. Those stay for validation to deny.

use serde::Deserialize;
use serde_json::{Value, json};

use super::edit::{self, ALL_CONTAINERS, Object};
use super::{Finding, Sink};
use crate::pod::PodSpec;

pub const ID: &str = "privileged";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Params {
    #[serde(default = "allowed")]
    pub allow_privilege_escalation: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            allow_privilege_escalation: allowed(),
        }
    }
}

fn allowed() -> bool {
    true
}

/// Whether this policy has anything to fill in.
pub fn can_mutate(params: &Params) -> bool {
    !params.allow_privilege_escalation
}

/// Sets `allowPrivilegeEscalation: false` where unset and valid; returns whether anything
/// changed.
pub fn mutate(params: &Params, spec: &mut Object) -> bool {
    !params.allow_privilege_escalation && fill_no_privilege_escalation(spec)
}

/// `allowPrivilegeEscalation: false` on every container that leaves it unset, except where the
/// API server would reject it (privileged, or adding `SYS_ADMIN`).
pub fn fill_no_privilege_escalation(spec: &mut Object) -> bool {
    let mut changed = false;
    for container in edit::containers_mut(spec, ALL_CONTAINERS) {
        let privileged =
            edit::get(container, &["securityContext", "privileged"]) == Some(&json!(true));
        let adds_sys_admin = edit::get(container, &["securityContext", "capabilities", "add"])
            .and_then(Value::as_array)
            .is_some_and(|caps| {
                caps.iter()
                    .any(|c| matches!(c.as_str(), Some("SYS_ADMIN" | "CAP_SYS_ADMIN")))
            });
        if !privileged && !adds_sys_admin {
            changed |= edit::set_if_absent(
                container,
                &["securityContext", "allowPrivilegeEscalation"],
                Value::Bool(false),
            );
        }
    }
    changed
}

pub fn evaluate<'v>(params: &Params, pod: &'v PodSpec<'_>, sink: &mut Sink<'_, '_, 'v>) {
    for at in pod.all_containers() {
        if !sink.in_scope(&at) {
            continue;
        }
        let sc = at.container.security();
        if sc.and_then(|sc| sc.privileged) == Some(true) {
            sink.report(Finding::for_container(
                &at,
                "securityContext.privileged",
                "is true: a privileged container has full access to the host",
                "remove securityContext.privileged or set it to false",
            ));
        }
        if !params.allow_privilege_escalation {
            let problem = match sc.and_then(|sc| sc.allow_privilege_escalation) {
                Some(false) => continue,
                Some(true) => "is true: processes may gain more privileges than their parent",
                None => "is not set, so processes may gain more privileges than their parent",
            };
            sink.report(Finding::for_container(
                &at,
                "securityContext.allowPrivilegeEscalation",
                problem,
                "set securityContext.allowPrivilegeEscalation: false",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::testing::findings;

    #[test]
    fn privileged_true_is_denied_in_every_container_kind() {
        let pod = r#"{"initContainers":[{"name":"i","securityContext":{"privileged":true}}],
            "containers":[{"name":"a","securityContext":{"privileged":false}},{"name":"b"}],
            "ephemeralContainers":[{"name":"e","securityContext":{"privileged":true}}]}"#;
        assert_eq!(
            findings("check: privileged", pod),
            vec![
                "init container i spec.initContainers[0].securityContext.privileged",
                "ephemeral container e spec.ephemeralContainers[0].securityContext.privileged",
            ]
        );
    }

    #[test]
    fn escalation_is_judged_only_when_params_ask() {
        let pod = r#"{"containers":[{"name":"a","securityContext":{"allowPrivilegeEscalation":true}},
            {"name":"b"},{"name":"c","securityContext":{"allowPrivilegeEscalation":false}}]}"#;
        assert!(findings("check: privileged", pod).is_empty());
        let strict = "check: privileged\nparams: {allowPrivilegeEscalation: false}";
        assert_eq!(
            findings(strict, pod),
            vec![
                "container a spec.containers[0].securityContext.allowPrivilegeEscalation",
                "container b spec.containers[1].securityContext.allowPrivilegeEscalation",
            ]
        );
    }

    #[test]
    fn pod_without_containers_passes() {
        assert!(findings("check: privileged", "{}").is_empty());
    }
}
