//! `runAsNonRoot` (restricted, Running as Non-root): the pod must set
//! `securityContext.runAsNonRoot: true`, or every container must; nobody may set it to false.
//! `runAsUser` is not read here (see `runAsUser`). From v1.35 a pod with `hostUsers: false`
//! is exempt.
//!
//! As upstream: an explicit `false` anywhere (pod or container) is reported, and only when
//! there is none are the containers that leave the field unset without a pod-level `true`
//! reported. A pod-level `false` is reported even when every container sets `true`.

use super::text::{container, problem};
use super::{Control, Level};
use crate::pod::PodView;
use crate::policy::{Finding, Sink};

pub const ID: &str = "pss-run-as-non-root";

pub static CONTROL: Control = Control {
    id: ID,
    upstream_id: "runAsNonRoot",
    name: "Running as Non-root",
    level: Level::Restricted,
    revisions: &[0, 35],
    overrides: None,
    evaluate,
};

const FIELD: &str = "securityContext.runAsNonRoot";
const REASON: &str = "runAsNonRoot != true";

fn evaluate<'v>(minor: u32, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    if minor >= 35 && pod.spec.in_user_namespace() {
        return;
    }
    let pod_value = pod.spec.pod_security().and_then(|sc| sc.run_as_non_root);
    let container_value = |at: &crate::pod::ContainerRef<'_, '_>| {
        at.container.security().and_then(|sc| sc.run_as_non_root)
    };
    let explicit = pod_value == Some(false)
        || pod
            .spec
            .all_containers()
            .any(|at| sink.in_scope(&at) && container_value(&at) == Some(false));
    if explicit {
        if pod_value == Some(false) {
            sink.report(Finding::pod(
                FIELD,
                problem(REASON, &format!("pod must not set {FIELD}=false")),
                "set securityContext.runAsNonRoot: true",
            ));
        }
        for at in pod.spec.all_containers() {
            if sink.in_scope(&at) && container_value(&at) == Some(false) {
                let detail = format!("{} must not set {FIELD}=false", container(&at));
                sink.report(Finding::for_container(
                    &at,
                    FIELD,
                    problem(REASON, &detail),
                    "set securityContext.runAsNonRoot: true, or remove it and set it on the pod",
                ));
            }
        }
        return;
    }
    if pod_value == Some(true) {
        return;
    }
    for at in pod.spec.all_containers() {
        if sink.in_scope(&at) && container_value(&at).is_none() {
            let detail = format!("pod or {} must set {FIELD}=true", container(&at));
            sink.report(Finding::for_container(
                &at,
                FIELD,
                problem(REASON, &detail),
                "set securityContext.runAsNonRoot: true on the pod or the container",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, each_list, run};

    #[test]
    fn pod_level_true_covers_containers_that_leave_it_unset() {
        for c in [
            r#"{"name":"c"}"#,
            r#"{"name":"c","securityContext":{"runAsNonRoot":true}}"#,
        ] {
            for (_, pod) in each_list(c) {
                let pod = pod.replacen('{', r#"{"securityContext":{"runAsNonRoot":true},"#, 1);
                assert!(run("pss-run-as-non-root", &pod).is_empty());
            }
        }
        for (list, pod) in each_list(r#"{"name":"c","securityContext":{"runAsUser":1000}}"#) {
            assert_eq!(
                run("pss-run-as-non-root", &pod),
                vec![format!(
                    "spec.{list}[0].securityContext.runAsNonRoot: runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true)"
                )],
                "runAsUser does not count"
            );
        }
        for (_, pod) in each_list(r#"{"name":"c","securityContext":{"runAsNonRoot":true}}"#) {
            assert!(run("pss-run-as-non-root", &pod).is_empty());
        }
        assert!(
            run("pss-run-as-non-root", "{}").is_empty(),
            "no containers, nothing unset"
        );
    }

    #[test]
    fn explicit_false_at_either_level_is_reported_before_unset_ones() {
        let pod = r#"{"securityContext":{"runAsNonRoot":false},"containers":[
            {"name":"a","securityContext":{"runAsNonRoot":true}},{"name":"b"}],
            "initContainers":[{"name":"i","securityContext":{"runAsNonRoot":false}}]}"#;
        assert_eq!(
            run("pss-run-as-non-root", pod),
            vec![
                "spec.securityContext.runAsNonRoot: runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)",
                "spec.initContainers[0].securityContext.runAsNonRoot: runAsNonRoot != true (container \"i\" must not set securityContext.runAsNonRoot=false)",
            ]
        );
        for (list, pod) in each_list(r#"{"name":"c","securityContext":{"runAsNonRoot":false}}"#) {
            let pod = pod.replacen('{', r#"{"securityContext":{"runAsNonRoot":true},"#, 1);
            assert_eq!(
                run("pss-run-as-non-root", &pod),
                vec![format!(
                    "spec.{list}[0].securityContext.runAsNonRoot: runAsNonRoot != true (container \"c\" must not set securityContext.runAsNonRoot=false)"
                )]
            );
        }
    }

    #[test]
    fn user_namespaces_exempt_from_v1_35() {
        let pod = r#"{"hostUsers":false,"containers":[{"name":"c","securityContext":{"runAsNonRoot":false}}]}"#;
        assert!(run("pss-run-as-non-root", pod).is_empty());
        assert_eq!(run(&at("pss-run-as-non-root", "v1.34"), pod).len(), 1);
        let host = pod.replace(r#""hostUsers":false"#, r#""hostUsers":true"#);
        assert_eq!(run("pss-run-as-non-root", &host).len(), 1);
    }
}
