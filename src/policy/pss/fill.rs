//! Mutation for the Pod Security Standards: the compliant values that can be filled in safely
//! where a pod leaves them absent (restricted controls only; nothing in baseline can be).
//!
//! Windows pods (`spec.os.name: windows`) get none of them: upstream exempts them from these
//! controls, and the API server rejects these Linux-only fields on Windows pods.

use serde_json::json;

use crate::policy::edit::{self, ALL_CONTAINERS, Object};
use crate::policy::{privileged, run_as_non_root};

/// A control's fill: returns whether it changed anything.
pub type Fill = fn(&mut Object) -> bool;

/// The fill of the control with upstream id `upstream_id`, if it has one.
pub fn fill_for(upstream_id: &str) -> Option<Fill> {
    match upstream_id {
        "allowPrivilegeEscalation" => Some(no_privilege_escalation),
        "capabilities_restricted" => Some(drop_all_capabilities),
        "seccompProfile_restricted" => Some(runtime_default_seccomp),
        "runAsNonRoot" => Some(run_as_non_root),
        _ => None,
    }
}

fn is_windows(spec: &Object) -> bool {
    edit::get(spec, &["os", "name"]) == Some(&json!("windows"))
}

fn no_privilege_escalation(spec: &mut Object) -> bool {
    !is_windows(spec) && privileged::fill_no_privilege_escalation(spec)
}

/// `capabilities.drop: ["ALL"]` on every container that drops nothing (a `drop` list the user
/// wrote is left as it is).
fn drop_all_capabilities(spec: &mut Object) -> bool {
    if is_windows(spec) {
        return false;
    }
    let mut changed = false;
    for container in edit::containers_mut(spec, ALL_CONTAINERS) {
        changed |= edit::set_if_absent(
            container,
            &["securityContext", "capabilities", "drop"],
            json!(["ALL"]),
        );
    }
    changed
}

/// The pod's `seccompProfile: {type: RuntimeDefault}` when the pod sets none (containers that
/// set their own keep it).
fn runtime_default_seccomp(spec: &mut Object) -> bool {
    !is_windows(spec)
        && edit::set_if_absent(
            spec,
            &["securityContext", "seccompProfile"],
            json!({"type": "RuntimeDefault"}),
        )
}

fn run_as_non_root(spec: &mut Object) -> bool {
    run_as_non_root::mutate(&run_as_non_root::Params::default(), spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn fills_restricted_defaults_but_not_on_windows_or_over_user_values() {
        let mut spec = json!({"containers": [{"name": "a"}, {"name": "b", "securityContext": {"capabilities": {"drop": ["NET_RAW"]}}}]})
            .as_object()
            .unwrap()
            .clone();
        assert!(drop_all_capabilities(&mut spec));
        assert!(runtime_default_seccomp(&mut spec));
        assert!(!runtime_default_seccomp(&mut spec));
        let v = Value::Object(spec);
        assert_eq!(
            v["containers"][0]["securityContext"]["capabilities"]["drop"],
            json!(["ALL"])
        );
        assert_eq!(
            v["containers"][1]["securityContext"]["capabilities"]["drop"],
            json!(["NET_RAW"])
        );
        assert_eq!(
            v["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );

        let mut windows = json!({"os": {"name": "windows"}, "containers": [{"name": "a"}]})
            .as_object()
            .unwrap()
            .clone();
        assert!(!drop_all_capabilities(&mut windows));
        assert!(!runtime_default_seccomp(&mut windows));
        assert!(!no_privilege_escalation(&mut windows));
    }
}
