//! `procMount` (baseline, /proc Mount Type): `securityContext.procMount` must be unset or
//! `Default`. From v1.35 a pod with `hostUsers: false` (its own user namespace) may set any
//! value; restricted then replaces this control by `procMount_restricted`, which never relaxes.

use super::text::{container, problem};
use super::{Control, Level};
use crate::pod::PodView;
use crate::policy::{Finding, Sink};

pub const ID: &str = "pss-proc-mount";

pub static CONTROL: Control = Control {
    id: ID,
    upstream_id: "procMount",
    name: "/proc Mount Type",
    level: Level::Baseline,
    revisions: &[0, 35],
    overrides: None,
    evaluate,
};

fn evaluate<'v>(minor: u32, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    if minor >= 35 && pod.spec.in_user_namespace() {
        return;
    }
    check(pod, sink);
}

/// Upstream's `procMount_1_0`, shared with `procMount_restricted`.
pub(super) fn check<'v>(pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    for at in pod.spec.all_containers() {
        if !sink.in_scope(&at) {
            continue;
        }
        let Some(value) = at
            .container
            .security()
            .and_then(|sc| sc.proc_mount.as_deref())
        else {
            continue;
        };
        if value == "Default" {
            continue;
        }
        let detail = format!(
            "{} must not set securityContext.procMount to \"{value}\"",
            container(&at)
        );
        sink.report(Finding::for_container(
            &at,
            "securityContext.procMount",
            problem("procMount", &detail),
            "remove securityContext.procMount or set it to Default",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, each_list, run};

    #[test]
    fn only_default_or_unset_passes() {
        for bad in ["Unmasked", "other", ""] {
            let c = format!(r#"{{"name":"c","securityContext":{{"procMount":"{bad}"}}}}"#);
            for (list, pod) in each_list(&c) {
                assert_eq!(
                    run("pss-proc-mount", &pod),
                    vec![format!(
                        "spec.{list}[0].securityContext.procMount: procMount (container \"c\" must not set securityContext.procMount to \"{bad}\")"
                    )]
                );
            }
        }
        for ok in [
            r#"{"name":"c","securityContext":{"procMount":"Default"}}"#,
            r#"{"name":"c","securityContext":{"procMount":null}}"#,
            r#"{"name":"c"}"#,
        ] {
            for (_, pod) in each_list(ok) {
                assert!(run("pss-proc-mount", &pod).is_empty());
            }
        }
    }

    #[test]
    fn user_namespaces_relax_it_from_v1_35() {
        let pod = |host_users: &str| {
            format!(
                r#"{{{host_users}"containers":[{{"name":"d","securityContext":{{"procMount":"Unmasked"}}}}]}}"#
            )
        };
        let userns = pod(r#""hostUsers":false,"#);
        assert!(run("pss-proc-mount", &userns).is_empty());
        assert!(run(&at("pss-proc-mount", "v1.35"), &userns).is_empty());
        assert_eq!(run(&at("pss-proc-mount", "v1.34"), &userns).len(), 1);
        assert_eq!(run("pss-proc-mount", &pod(r#""hostUsers":true,"#)).len(), 1);
        assert_eq!(run("pss-proc-mount", &pod("")).len(), 1, "unset is true");
        assert_eq!(
            run("pss-proc-mount-restricted", &userns).len(),
            1,
            "the restricted control does not relax"
        );
    }
}
