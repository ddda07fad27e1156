//! `seccompProfile_baseline` (baseline, Seccomp): the seccomp profile must not be
//! `Unconfined` (nor any type but `RuntimeDefault` and `Localhost`); unset is fine.
//!
//! - From v1.19 upstream reads the fields: the pod's and each container's
//!   `securityContext.seccompProfile.type`, when `seccompProfile` is set.
//! - Before v1.19 it reads the annotations instead: `seccomp.security.alpha.kubernetes.io/pod`
//!   and `container.seccomp.security.alpha.kubernetes.io/<container name>`, which must be
//!   `runtime/default`, `docker/default` or `localhost/<profile>` when present.
//!
//! Restricted replaces this control by `seccompProfile_restricted` from v1.19.

use super::text::{container, go_quote, problem};
use super::{Control, Level};
use crate::pod::{ContainerRef, PodView, SeccompProfile};
use crate::policy::{Finding, Sink};

pub const ID: &str = "pss-seccomp-baseline";

pub static CONTROL: Control = Control {
    id: ID,
    upstream_id: "seccompProfile_baseline",
    name: "Seccomp",
    level: Level::Baseline,
    revisions: &[0, 19],
    overrides: None,
    evaluate,
};

const FIELD: &str = "securityContext.seccompProfile.type";
const FIELD_FIX: &str =
    "set securityContext.seccompProfile.type to RuntimeDefault or Localhost, or remove it";
pub(super) const POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
pub(super) const CONTAINER_ANNOTATION: &str = "container.seccomp.security.alpha.kubernetes.io/";

/// The type of a set profile if it is forbidden (`""` when the profile has no type).
pub(super) fn bad_type<'p>(profile: Option<&'p SeccompProfile<'_>>) -> Option<&'p str> {
    match profile?.kind.as_deref().unwrap_or("") {
        "RuntimeDefault" | "Localhost" => None,
        other => Some(other),
    }
}

fn evaluate<'v>(minor: u32, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    if minor < 19 {
        annotations(pod, sink);
    } else {
        fields(pod, sink);
    }
}

fn fields<'v>(pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    let pod_profile = pod
        .spec
        .pod_security()
        .and_then(|sc| sc.seccomp_profile.as_ref());
    if let Some(kind) = bad_type(pod_profile) {
        let detail = format!("pod must not set {FIELD} to \"{kind}\"");
        sink.report(Finding::pod(
            FIELD,
            problem("seccompProfile", &detail),
            FIELD_FIX,
        ));
    }
    for at in pod.spec.all_containers() {
        if !sink.in_scope(&at) {
            continue;
        }
        let profile = at
            .container
            .security()
            .and_then(|sc| sc.seccomp_profile.as_ref());
        if let Some(kind) = bad_type(profile) {
            let detail = format!("{} must not set {FIELD} to \"{kind}\"", container(&at));
            sink.report(Finding::for_container(
                &at,
                FIELD,
                problem("seccompProfile", &detail),
                FIELD_FIX,
            ));
        }
    }
}

pub(super) fn allowed_annotation(value: &str) -> bool {
    value == "runtime/default" || value == "docker/default" || value.starts_with("localhost/")
}

fn annotations<'v>(pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    let report = |sink: &mut Sink<'_, '_, 'v>, at: Option<&ContainerRef<'v, '_>>, key, value| {
        let detail = format!("forbidden annotation {key}={}", go_quote(value));
        sink.report(Finding::annotation(
            at,
            key,
            problem("seccompProfile", &detail),
            "set the annotation to runtime/default or localhost/<profile>, or remove it",
        ));
    };
    if let Some(value) = pod.annotations.get(POD_ANNOTATION)
        && !allowed_annotation(value)
    {
        report(sink, None, POD_ANNOTATION, value);
    }
    // Only the annotations of containers the pod has count.
    for (key, value) in pod.annotations.iter() {
        let Some(name) = key.strip_prefix(CONTAINER_ANNOTATION) else {
            continue;
        };
        if allowed_annotation(value) || pod.annotations.get(key) != Some(value) {
            // Allowed, or a repeated key of which the last one counts.
            continue;
        }
        let Some(at) = pod
            .spec
            .all_containers()
            .find(|at| at.container.name == name)
        else {
            continue;
        };
        if sink.in_scope(&at) {
            report(sink, Some(&at), key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, each_list, run, run_pod};

    #[test]
    fn fields_at_pod_and_container_level() {
        assert_eq!(
            run(
                "pss-seccomp-baseline",
                r#"{"securityContext":{"seccompProfile":{"type":"Unconfined"}},"containers":[{"name":"c","securityContext":{"seccompProfile":{"type":"RuntimeDefault"}}}]}"#
            ),
            vec![
                r#"spec.securityContext.seccompProfile.type: seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")"#
            ]
        );
        for bad in ["Unconfined", "", "runtime/default"] {
            let c = format!(
                r#"{{"name":"c","securityContext":{{"seccompProfile":{{"type":"{bad}"}}}}}}"#
            );
            for (list, pod) in each_list(&c) {
                assert_eq!(
                    run("pss-seccomp-baseline", &pod),
                    vec![format!(
                        "spec.{list}[0].securityContext.seccompProfile.type: seccompProfile (container \"c\" must not set securityContext.seccompProfile.type to \"{bad}\")"
                    )]
                );
            }
        }
        for ok in [
            r#"{"securityContext":{"seccompProfile":{"type":"RuntimeDefault"}},"containers":[{"name":"c","securityContext":{"seccompProfile":{"type":"Localhost","localhostProfile":"p.json"}}}]}"#,
            r#"{"securityContext":{},"containers":[{"name":"c","securityContext":{"seccompProfile":null}}]}"#,
        ] {
            assert!(run("pss-seccomp-baseline", ok).is_empty());
        }
    }

    #[test]
    fn annotations_before_v1_19_fields_after() {
        let pod = r#"{"metadata":{"annotations":{
            "seccomp.security.alpha.kubernetes.io/pod":"unconfined",
            "container.seccomp.security.alpha.kubernetes.io/a":"",
            "container.seccomp.security.alpha.kubernetes.io/b":"docker/default",
            "container.seccomp.security.alpha.kubernetes.io/e":"localhost/p",
            "container.seccomp.security.alpha.kubernetes.io/i":"unconfined",
            "container.seccomp.security.alpha.kubernetes.io/gone":"unconfined"}},
            "spec":{"securityContext":{"seccompProfile":{"type":"Unconfined"}},
              "initContainers":[{"name":"i"}],"containers":[{"name":"a"},{"name":"b"}],
              "ephemeralContainers":[{"name":"e"}]}}"#;
        assert_eq!(
            run_pod(&at("pss-seccomp-baseline", "v1.18"), pod),
            vec![
                r#"metadata.annotations[seccomp.security.alpha.kubernetes.io/pod]: seccompProfile (forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined")"#,
                r#"metadata.annotations[container.seccomp.security.alpha.kubernetes.io/a]: seccompProfile (forbidden annotation container.seccomp.security.alpha.kubernetes.io/a="")"#,
                r#"metadata.annotations[container.seccomp.security.alpha.kubernetes.io/i]: seccompProfile (forbidden annotation container.seccomp.security.alpha.kubernetes.io/i="unconfined")"#,
            ]
        );
        assert_eq!(
            run_pod(&at("pss-seccomp-baseline", "v1.19"), pod),
            vec![
                r#"spec.securityContext.seccompProfile.type: seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")"#
            ],
            "from v1.19 annotations are not read"
        );
    }
}
