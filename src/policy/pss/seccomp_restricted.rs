//! `seccompProfile_restricted` (restricted, from v1.19; Seccomp): the pod must set
//! `securityContext.seccompProfile.type` to `RuntimeDefault` or `Localhost`, or every container
//! must; nobody may set another type. It replaces `seccompProfile_baseline` in the restricted
//! level. From v1.25 Windows pods are exempt (and so get no seccomp control in restricted).
//!
//! As upstream: explicit bad types (pod or containers) are reported first and alone; a bad
//! pod-level type is reported even when every container sets a good one.

use super::seccomp_baseline::bad_type;
use super::text::{container, problem};
use super::{Control, Level};
use crate::pod::{ContainerRef, PodView, SeccompProfile};
use crate::policy::{Finding, Sink};

pub const ID: &str = "pss-seccomp-restricted";

pub static CONTROL: Control = Control {
    id: ID,
    upstream_id: "seccompProfile_restricted",
    name: "Seccomp (restricted)",
    level: Level::Restricted,
    revisions: &[19, 25],
    overrides: Some("seccompProfile_baseline"),
    evaluate,
};

const FIELD: &str = "securityContext.seccompProfile.type";
const FIX: &str = "set securityContext.seccompProfile.type to RuntimeDefault or Localhost";

fn profile<'s>(at: &ContainerRef<'s, '_>) -> Option<&'s SeccompProfile<'s>> {
    at.container
        .security()
        .and_then(|sc| sc.seccomp_profile.as_ref())
}

fn evaluate<'v>(minor: u32, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    if minor >= 25 && pod.spec.is_windows() {
        return;
    }
    let pod_profile = pod
        .spec
        .pod_security()
        .and_then(|sc| sc.seccomp_profile.as_ref());
    let pod_bad = bad_type(pod_profile);
    let explicit = pod_bad.is_some()
        || pod
            .spec
            .all_containers()
            .any(|at| sink.in_scope(&at) && bad_type(profile(&at)).is_some());
    if explicit {
        if let Some(kind) = pod_bad {
            let detail = format!("pod must not set {FIELD} to \"{kind}\"");
            sink.report(Finding::pod(FIELD, problem("seccompProfile", &detail), FIX));
        }
        for at in pod.spec.all_containers() {
            if !sink.in_scope(&at) {
                continue;
            }
            if let Some(kind) = bad_type(profile(&at)) {
                let detail = format!("{} must not set {FIELD} to \"{kind}\"", container(&at));
                sink.report(Finding::for_container(
                    &at,
                    FIELD,
                    problem("seccompProfile", &detail),
                    FIX,
                ));
            }
        }
        return;
    }
    if pod_profile.is_some() {
        // Set, and not bad: it covers every container that sets none.
        return;
    }
    for at in pod.spec.all_containers() {
        if sink.in_scope(&at) && profile(&at).is_none() {
            let detail = format!(
                "pod or {} must set {FIELD} to \"RuntimeDefault\" or \"Localhost\"",
                container(&at)
            );
            sink.report(Finding::for_container(
                &at,
                FIELD,
                problem("seccompProfile", &detail),
                "set securityContext.seccompProfile.type to RuntimeDefault or Localhost on the pod or the container",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, each_list, run};

    #[test]
    fn pod_level_profile_covers_containers_that_set_none() {
        for ok in ["RuntimeDefault", "Localhost"] {
            for (_, pod) in each_list(r#"{"name":"c"}"#) {
                let pod = pod.replacen(
                    '{',
                    &format!(r#"{{"securityContext":{{"seccompProfile":{{"type":"{ok}"}}}},"#),
                    1,
                );
                assert!(run("pss-seccomp-restricted", &pod).is_empty());
            }
        }
        for (list, pod) in each_list(r#"{"name":"c","securityContext":{}}"#) {
            assert_eq!(
                run("pss-seccomp-restricted", &pod),
                vec![format!(
                    "spec.{list}[0].securityContext.seccompProfile.type: seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
                )]
            );
        }
        for (_, pod) in each_list(
            r#"{"name":"c","securityContext":{"seccompProfile":{"type":"Localhost","localhostProfile":"x"}}}"#,
        ) {
            assert!(run("pss-seccomp-restricted", &pod).is_empty());
        }
    }

    #[test]
    fn explicit_bad_types_are_reported_alone() {
        let pod = r#"{"securityContext":{"seccompProfile":{"type":"Unconfined"}},
            "containers":[{"name":"a","securityContext":{"seccompProfile":{"type":"RuntimeDefault"}}},{"name":"b"}]}"#;
        assert_eq!(
            run("pss-seccomp-restricted", pod),
            vec![
                r#"spec.securityContext.seccompProfile.type: seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")"#
            ]
        );
        for (list, pod) in
            each_list(r#"{"name":"c","securityContext":{"seccompProfile":{"type":"Unconfined"}}}"#)
        {
            let pod = pod.replacen('[', r#"[{"name":"unset"},"#, 1);
            assert_eq!(
                run("pss-seccomp-restricted", &pod),
                vec![format!(
                    "spec.{list}[1].securityContext.seccompProfile.type: seccompProfile (container \"c\" must not set securityContext.seccompProfile.type to \"Unconfined\")"
                )]
            );
        }
    }

    #[test]
    fn windows_pods_are_exempt_from_v1_25() {
        let pod = r#"{"os":{"name":"windows"},"containers":[{"name":"c"}]}"#;
        assert!(run("pss-seccomp-restricted", pod).is_empty());
        assert_eq!(run(&at("pss-seccomp-restricted", "v1.24"), pod).len(), 1);
    }
}
