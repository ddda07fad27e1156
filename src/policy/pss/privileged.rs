//! `privileged` (baseline, Privileged Containers): no container may set
//! `securityContext.privileged: true`. There is no pod-level field.

use super::text::{container, problem};
use super::{Control, Level};
use crate::pod::PodView;
use crate::policy::{Finding, Sink};

pub const ID: &str = "pss-privileged";

pub static CONTROL: Control = Control {
    id: ID,
    upstream_id: "privileged",
    name: "Privileged Containers",
    level: Level::Baseline,
    revisions: &[0],
    overrides: None,
    evaluate,
};

fn evaluate<'v>(_minor: u32, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    for at in pod.spec.all_containers() {
        if !sink.in_scope(&at) {
            continue;
        }
        if at.container.security().and_then(|sc| sc.privileged) == Some(true) {
            let detail = format!(
                "{} must not set securityContext.privileged=true",
                container(&at)
            );
            sink.report(Finding::for_container(
                &at,
                "securityContext.privileged",
                problem("privileged", &detail),
                "remove securityContext.privileged or set it to false",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{each_list, run};

    #[test]
    fn privileged_true_is_denied_false_and_unset_pass() {
        for (list, pod) in each_list(r#"{"name":"c","securityContext":{"privileged":true}}"#) {
            assert_eq!(
                run("pss-privileged", &pod),
                vec![format!(
                    "spec.{list}[0].securityContext.privileged: privileged (container \"c\" must not set securityContext.privileged=true)"
                )]
            );
        }
        for ok in [
            r#"{"name":"c","securityContext":{"privileged":false}}"#,
            r#"{"name":"c","securityContext":{}}"#,
            r#"{"name":"c","securityContext":null}"#,
            r#"{"name":"c"}"#,
        ] {
            for (_, pod) in each_list(ok) {
                assert!(run("pss-privileged", &pod).is_empty(), "{pod}");
            }
        }
    }
}
