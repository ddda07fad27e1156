//! `allowPrivilegeEscalation` (restricted, from v1.8; Privilege Escalation): every container
//! must set `securityContext.allowPrivilegeEscalation: false` explicitly; unset counts as
//! allowed. From v1.25 Windows pods (`spec.os.name: windows`) are exempt.

use super::text::{container, problem};
use super::{Control, Level};
use crate::pod::PodView;
use crate::policy::{Finding, Sink};

pub const ID: &str = "pss-privilege-escalation";

pub static CONTROL: Control = Control {
    id: ID,
    upstream_id: "allowPrivilegeEscalation",
    name: "Privilege Escalation",
    level: Level::Restricted,
    revisions: &[8, 25],
    overrides: None,
    evaluate,
};

fn evaluate<'v>(minor: u32, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    if minor >= 25 && pod.spec.is_windows() {
        return;
    }
    for at in pod.spec.all_containers() {
        if !sink.in_scope(&at) {
            continue;
        }
        if at
            .container
            .security()
            .and_then(|sc| sc.allow_privilege_escalation)
            == Some(false)
        {
            continue;
        }
        let detail = format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            container(&at)
        );
        sink.report(Finding::for_container(
            &at,
            "securityContext.allowPrivilegeEscalation",
            problem("allowPrivilegeEscalation != false", &detail),
            "set securityContext.allowPrivilegeEscalation: false",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, each_list, run};

    #[test]
    fn must_be_explicitly_false_in_every_container_kind() {
        for c in [
            r#"{"name":"c"}"#,
            r#"{"name":"c","securityContext":{}}"#,
            r#"{"name":"c","securityContext":{"allowPrivilegeEscalation":true}}"#,
            r#"{"name":"c","securityContext":{"allowPrivilegeEscalation":null}}"#,
        ] {
            for (list, pod) in each_list(c) {
                assert_eq!(
                    run("pss-privilege-escalation", &pod),
                    vec![format!(
                        "spec.{list}[0].securityContext.allowPrivilegeEscalation: allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false)"
                    )]
                );
            }
        }
        for (_, pod) in
            each_list(r#"{"name":"c","securityContext":{"allowPrivilegeEscalation":false}}"#)
        {
            assert!(run("pss-privilege-escalation", &pod).is_empty());
        }
    }

    #[test]
    fn windows_pods_are_exempt_from_v1_25() {
        let pod = r#"{"os":{"name":"windows"},"containers":[{"name":"c"}]}"#;
        assert!(run("pss-privilege-escalation", pod).is_empty());
        assert!(run(&at("pss-privilege-escalation", "v1.25"), pod).is_empty());
        assert_eq!(run(&at("pss-privilege-escalation", "v1.24"), pod).len(), 1);
        let linux = r#"{"os":{"name":"linux"},"containers":[{"name":"c"}]}"#;
        assert_eq!(run("pss-privilege-escalation", linux).len(), 1);
        let case = r#"{"os":{"name":"Windows"},"containers":[{"name":"c"}]}"#;
        assert_eq!(
            run("pss-privilege-escalation", case).len(),
            1,
            "exact match"
        );
    }
}
