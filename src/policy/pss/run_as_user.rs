//! `runAsUser` (restricted, from v1.23; Running as Non-root user): neither the pod nor any
//! container may set `securityContext.runAsUser: 0`. Unset is fine (the image's user, which
//! `runAsNonRoot` covers). A pod-level 0 is reported even when every container sets another
//! user. From v1.35 a pod with `hostUsers: false` is exempt.

use super::text::{container, problem};
use super::{Control, Level};
use crate::pod::PodView;
use crate::policy::{Finding, Sink};

pub const ID: &str = "pss-run-as-non-root-user";

pub static CONTROL: Control = Control {
    id: ID,
    upstream_id: "runAsUser",
    name: "Running as Non-root user",
    level: Level::Restricted,
    revisions: &[23, 35],
    overrides: None,
    evaluate,
};

const FIELD: &str = "securityContext.runAsUser";
const FIX: &str = "set securityContext.runAsUser to a non-zero UID, or remove it";

fn evaluate<'v>(minor: u32, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    if minor >= 35 && pod.spec.in_user_namespace() {
        return;
    }
    if pod.spec.pod_security().and_then(|sc| sc.run_as_user) == Some(0) {
        sink.report(Finding::pod(
            FIELD,
            problem("runAsUser=0", "pod must not set runAsUser=0"),
            FIX,
        ));
    }
    for at in pod.spec.all_containers() {
        if !sink.in_scope(&at) {
            continue;
        }
        if at.container.security().and_then(|sc| sc.run_as_user) == Some(0) {
            let detail = format!("{} must not set runAsUser=0", container(&at));
            sink.report(Finding::for_container(
                &at,
                FIELD,
                problem("runAsUser=0", &detail),
                FIX,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, each_list, run};

    #[test]
    fn zero_at_either_level_is_denied() {
        assert_eq!(
            run(
                "pss-run-as-non-root-user",
                r#"{"securityContext":{"runAsUser":0},"containers":[{"name":"c","securityContext":{"runAsUser":1000}}]}"#
            ),
            vec!["spec.securityContext.runAsUser: runAsUser=0 (pod must not set runAsUser=0)"]
        );
        for (list, pod) in each_list(r#"{"name":"c","securityContext":{"runAsUser":0}}"#) {
            let pod = pod.replacen('{', r#"{"securityContext":{"runAsUser":1000},"#, 1);
            assert_eq!(
                run("pss-run-as-non-root-user", &pod),
                vec![format!(
                    "spec.{list}[0].securityContext.runAsUser: runAsUser=0 (container \"c\" must not set runAsUser=0)"
                )]
            );
        }
        for ok in [
            r#"{"containers":[{"name":"c"}]}"#,
            r#"{"securityContext":{"runAsUser":1},"containers":[{"name":"c","securityContext":{"runAsUser":null}}]}"#,
        ] {
            assert!(run("pss-run-as-non-root-user", ok).is_empty());
        }
    }

    #[test]
    fn versions_and_user_namespaces() {
        let pod = r#"{"hostUsers":false,"securityContext":{"runAsUser":0}}"#;
        assert!(run("pss-run-as-non-root-user", pod).is_empty());
        assert_eq!(run(&at("pss-run-as-non-root-user", "v1.34"), pod).len(), 1);
        let restricted_v1_22 = "pod-security\nparams: {level: restricted, version: v1.22}";
        let root = r#"{"securityContext":{"runAsUser":0,"runAsNonRoot":true}}"#;
        assert!(
            run(restricted_v1_22, root).is_empty(),
            "not defined before v1.23"
        );
    }
}
