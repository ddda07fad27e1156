//! `run-as-non-root`: every container must end up running as a non-root user.
//!
//! A container passes when its effective `runAsUser` (container over pod) is non-zero, or when
//! its effective `runAsNonRoot` is true and no `runAsUser: 0` is set: the kubelet refuses to
//! start such a container, so portier reports it up front rather than letting it crash-loop.
//!
//! Mutation (`spec.mutate: true`) sets `runAsNonRoot: true` where nothing decides it: on the
//! pod when no container says otherwise, else on each container that sets neither field;
//! optionally also the pod's `runAsUser` / `runAsGroup` from params. It changes nothing when
//! the user wrote a root UID or `runAsNonRoot: false` for the pod: that stays for validation
//! to judge.

use std::num::NonZeroU32;

use serde::Deserialize;
use serde_json::{Value, json};

use super::edit::{self, ALL_CONTAINERS, Object};
use super::{Finding, Sink};
use crate::pod::PodSpec;

pub const ID: &str = "run-as-non-root";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Params {
    /// Mutation only: the pod `runAsUser` to set along with `runAsNonRoot`.
    #[serde(default)]
    pub run_as_user: Option<NonZeroU32>,
    /// Mutation only: the pod `runAsGroup` to set along with `runAsNonRoot`.
    #[serde(default)]
    pub run_as_group: Option<NonZeroU32>,
}

const NON_ROOT: &[&str] = &["securityContext", "runAsNonRoot"];
const USER: &[&str] = &["securityContext", "runAsUser"];
const GROUP: &[&str] = &["securityContext", "runAsGroup"];

/// Fills `runAsNonRoot: true` where nothing decides it; returns whether anything changed.
pub fn mutate(params: &Params, spec: &mut Object) -> bool {
    let says_root = |o: &Object| {
        edit::get(o, USER) == Some(&json!(0)) || edit::get(o, NON_ROOT) == Some(&json!(false))
    };
    if says_root(spec) {
        return false;
    }
    let container_says_root = edit::containers(spec, ALL_CONTAINERS).any(says_root);
    if edit::get(spec, NON_ROOT).is_some() {
        // The pod decides already (true): nothing is missing.
        return false;
    }
    if !container_says_root {
        let mut changed = edit::set_if_absent(spec, NON_ROOT, Value::Bool(true));
        if let Some(uid) = params.run_as_user {
            changed |= edit::set_if_absent(spec, USER, json!(uid.get()));
        }
        if let Some(gid) = params.run_as_group {
            changed |= edit::set_if_absent(spec, GROUP, json!(gid.get()));
        }
        return changed;
    }
    let mut changed = false;
    for container in edit::containers_mut(spec, ALL_CONTAINERS) {
        if edit::get(container, USER).is_none() {
            changed |= edit::set_if_absent(container, NON_ROOT, Value::Bool(true));
        }
    }
    changed
}

const ROOT_FIX: &str = "set runAsUser to a non-zero UID";
const FALSE_PROBLEM: &str = "runAsNonRoot is false, so the image may run as root";
const FALSE_FIX: &str = "set runAsNonRoot: true, or a non-zero runAsUser";

pub fn evaluate<'v>(_params: &Params, pod: &'v PodSpec<'_>, sink: &mut Sink<'_, '_, 'v>) {
    let pod_sc = pod.pod_security();
    let pod_non_root = pod_sc.and_then(|sc| sc.run_as_non_root);
    let pod_user = pod_sc.and_then(|sc| sc.run_as_user);
    for at in pod.all_containers() {
        if !sink.in_scope(&at) {
            continue;
        }
        let sc = at.container.security();
        let (user, user_at_pod) = match sc.and_then(|sc| sc.run_as_user) {
            Some(uid) => (Some(uid), false),
            None => (pod_user, true),
        };
        let (non_root, non_root_at_pod) = match sc.and_then(|sc| sc.run_as_non_root) {
            Some(v) => (Some(v), false),
            None => (pod_non_root, true),
        };
        let finding = match (user, non_root) {
            (Some(0), _) if user_at_pod => Finding::inherited(
                &at,
                "securityContext.runAsUser",
                "runs as root: runAsUser is 0 (set for the pod)",
                ROOT_FIX,
            ),
            (Some(0), _) => Finding::for_container(
                &at,
                "securityContext.runAsUser",
                "runs as root: runAsUser is 0",
                ROOT_FIX,
            ),
            (Some(_), _) | (None, Some(true)) => continue,
            (None, Some(false)) if non_root_at_pod => Finding::inherited(
                &at,
                "securityContext.runAsNonRoot",
                FALSE_PROBLEM,
                FALSE_FIX,
            ),
            (None, Some(false)) => Finding::for_container(
                &at,
                "securityContext.runAsNonRoot",
                FALSE_PROBLEM,
                FALSE_FIX,
            ),
            (None, None) => Finding::for_container(
                &at,
                "securityContext.runAsNonRoot",
                "is not set (nor a non-zero runAsUser), so the image may run as root",
                "set securityContext.runAsNonRoot: true on the pod or the container",
            ),
        };
        sink.report(finding);
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::testing::findings;

    const POLICY: &str = "check: run-as-non-root";

    #[test]
    fn pod_level_non_root_covers_every_container_kind() {
        let pod = r#"{"securityContext":{"runAsNonRoot":true},
            "initContainers":[{"name":"i"}],"containers":[{"name":"a"}],"ephemeralContainers":[{"name":"e"}]}"#;
        assert!(findings(POLICY, pod).is_empty());
    }

    #[test]
    fn unset_is_reported_for_each_container_kind() {
        let pod = r#"{"initContainers":[{"name":"i"}],"containers":[{"name":"a"}],"ephemeralContainers":[{"name":"e"}]}"#;
        assert_eq!(
            findings(POLICY, pod),
            vec![
                "init container i spec.initContainers[0].securityContext.runAsNonRoot",
                "container a spec.containers[0].securityContext.runAsNonRoot",
                "ephemeral container e spec.ephemeralContainers[0].securityContext.runAsNonRoot",
            ]
        );
    }

    #[test]
    fn container_setting_overrides_the_pod() {
        let pod = r#"{"securityContext":{"runAsNonRoot":true},
            "containers":[{"name":"a","securityContext":{"runAsNonRoot":false}},{"name":"b"}]}"#;
        assert_eq!(
            findings(POLICY, pod),
            vec!["container a spec.containers[0].securityContext.runAsNonRoot"]
        );
        let pod = r#"{"securityContext":{"runAsNonRoot":false},
            "containers":[{"name":"a","securityContext":{"runAsNonRoot":true}}]}"#;
        assert!(findings(POLICY, pod).is_empty());
    }

    #[test]
    fn non_zero_run_as_user_alone_passes_and_zero_fails_at_either_level() {
        let pod = r#"{"containers":[{"name":"a","securityContext":{"runAsUser":1000}}]}"#;
        assert!(findings(POLICY, pod).is_empty());
        let pod = r#"{"securityContext":{"runAsUser":1000,"runAsNonRoot":false},"containers":[{"name":"a"}]}"#;
        assert!(findings(POLICY, pod).is_empty());

        let pod = r#"{"securityContext":{"runAsNonRoot":true},
            "containers":[{"name":"a","securityContext":{"runAsUser":0}}]}"#;
        assert_eq!(
            findings(POLICY, pod),
            vec!["container a spec.containers[0].securityContext.runAsUser"]
        );
        let pod = r#"{"securityContext":{"runAsNonRoot":true,"runAsUser":0},"containers":[{"name":"a"}]}"#;
        assert_eq!(
            findings(POLICY, pod),
            vec!["container a spec.securityContext.runAsUser"]
        );
        // A container's own UID overrides the pod's root UID.
        let pod = r#"{"securityContext":{"runAsUser":0},
            "containers":[{"name":"a","securityContext":{"runAsUser":10}}]}"#;
        assert!(findings(POLICY, pod).is_empty());
    }

    #[test]
    fn pod_level_false_is_reported_at_the_pod_path() {
        let pod = r#"{"securityContext":{"runAsNonRoot":false},"containers":[{"name":"a"}]}"#;
        assert_eq!(
            findings(POLICY, pod),
            vec!["container a spec.securityContext.runAsNonRoot"]
        );
    }

    #[test]
    fn excluded_images_are_not_judged() {
        let policy = "check: run-as-non-root\nexclude: {images: ['registry.k8s.io/pause:*']}";
        let pod = r#"{"containers":[{"name":"p","image":"registry.k8s.io/pause:3.10"},{"name":"a","image":"app"}]}"#;
        assert_eq!(
            findings(policy, pod),
            vec!["container a spec.containers[1].securityContext.runAsNonRoot"]
        );
    }
}
