//! `capabilities_baseline` (baseline, Capabilities): `securityContext.capabilities.add` may
//! only hold capabilities of the runtime's default set, spelt exactly (case-sensitive, no
//! `CAP_` prefix). `drop` is not read. Restricted replaces this control by
//! `capabilities_restricted` from v1.22.

use super::text::{container, join_quote, problem, sorted_distinct};
use super::{Control, Level};
use crate::pod::PodView;
use crate::policy::{Finding, Sink};

pub const ID: &str = "pss-capabilities-baseline";

pub static CONTROL: Control = Control {
    id: ID,
    upstream_id: "capabilities_baseline",
    name: "Capabilities",
    level: Level::Baseline,
    revisions: &[0],
    overrides: None,
    evaluate,
};

/// The capabilities a container may add at the baseline level.
pub const ALLOWED: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

pub(super) fn allowed(cap: &str) -> bool {
    ALLOWED.contains(&cap)
}

fn evaluate<'v>(_minor: u32, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    for at in pod.spec.all_containers() {
        if !sink.in_scope(&at) {
            continue;
        }
        let Some(caps) = at
            .container
            .security()
            .and_then(|sc| sc.capabilities.as_ref())
        else {
            continue;
        };
        if caps.add().iter().all(|c| allowed(c)) {
            continue;
        }
        let bad = sorted_distinct(caps.add().iter().map(|c| &**c).filter(|c| !allowed(c)));
        let detail = format!(
            "{} must not include {} in securityContext.capabilities.add",
            container(&at),
            join_quote(&bad)
        );
        sink.report(Finding::for_container(
            &at,
            "securityContext.capabilities.add",
            problem("non-default capabilities", &detail),
            format!(
                "add only capabilities of the default set: {}",
                ALLOWED.join(", ")
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{each_list, run};
    use super::ALLOWED;

    #[test]
    fn only_default_capabilities_may_be_added() {
        let c = r#"{"name":"c","securityContext":{"capabilities":{"add":["SYS_ADMIN","CHOWN","NET_RAW","SYS_ADMIN","chown"],"drop":["ALL"]}}}"#;
        for (list, pod) in each_list(c) {
            assert_eq!(
                run("pss-capabilities-baseline", &pod),
                vec![format!(
                    "spec.{list}[0].securityContext.capabilities.add: non-default capabilities (container \"c\" must not include \"NET_RAW\", \"SYS_ADMIN\", \"chown\" in securityContext.capabilities.add)"
                )]
            );
        }
        let all = format!(
            r#"{{"name":"c","securityContext":{{"capabilities":{{"add":{}}}}}}}"#,
            serde_json::to_string(&ALLOWED).unwrap()
        );
        for (_, pod) in each_list(&all) {
            assert!(run("pss-capabilities-baseline", &pod).is_empty());
        }
        for ok in [
            r#"{"name":"c","securityContext":{"capabilities":{"drop":["NET_RAW"],"add":null}}}"#,
            r#"{"name":"c","securityContext":{"capabilities":null}}"#,
            r#"{"name":"c"}"#,
        ] {
            assert!(
                run(
                    "pss-capabilities-baseline",
                    &format!(r#"{{"containers":[{ok}]}}"#)
                )
                .is_empty()
            );
        }
    }
}
