//! `capabilities_restricted` (restricted, from v1.22; Capabilities): every container must drop
//! `ALL` (`securityContext.capabilities.drop` contains exactly `ALL`) and may add only
//! `NET_BIND_SERVICE`. It replaces `capabilities_baseline` in the restricted level. From v1.25
//! Windows pods are exempt, and so get no capabilities control at all in restricted.

use super::text::{container, join_quote, problem, sorted_distinct};
use super::{Control, Level};
use crate::pod::PodView;
use crate::policy::{Finding, Sink};

pub const ID: &str = "pss-capabilities-restricted";

pub static CONTROL: Control = Control {
    id: ID,
    upstream_id: "capabilities_restricted",
    name: "Capabilities (restricted)",
    level: Level::Restricted,
    revisions: &[22, 25],
    overrides: Some("capabilities_baseline"),
    evaluate,
};

const REASON: &str = "unrestricted capabilities";

fn evaluate<'v>(minor: u32, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    if minor >= 25 && pod.spec.is_windows() {
        return;
    }
    for at in pod.spec.all_containers() {
        if !sink.in_scope(&at) {
            continue;
        }
        let caps = at
            .container
            .security()
            .and_then(|sc| sc.capabilities.as_ref());
        let drops_all = caps.is_some_and(|c| c.drop().iter().any(|d| &**d == "ALL"));
        if !drops_all {
            let detail = format!(
                "{} must set securityContext.capabilities.drop=[\"ALL\"]",
                container(&at)
            );
            sink.report(Finding::for_container(
                &at,
                "securityContext.capabilities.drop",
                problem(REASON, &detail),
                "add ALL to securityContext.capabilities.drop",
            ));
        }
        let Some(caps) = caps else { continue };
        if caps.add().iter().all(|c| &**c == "NET_BIND_SERVICE") {
            continue;
        }
        let bad = sorted_distinct(
            caps.add()
                .iter()
                .map(|c| &**c)
                .filter(|c| *c != "NET_BIND_SERVICE"),
        );
        let detail = format!(
            "{} must not include {} in securityContext.capabilities.add",
            container(&at),
            join_quote(&bad)
        );
        sink.report(Finding::for_container(
            &at,
            "securityContext.capabilities.add",
            problem(REASON, &detail),
            "add no capability but NET_BIND_SERVICE",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, each_list, run};

    const DROP: &str = r#"must set securityContext.capabilities.drop=["ALL"])"#;

    #[test]
    fn must_drop_all_in_every_container_kind() {
        for c in [
            r#"{"name":"c"}"#,
            r#"{"name":"c","securityContext":{}}"#,
            r#"{"name":"c","securityContext":{"capabilities":{}}}"#,
            r#"{"name":"c","securityContext":{"capabilities":{"drop":["NET_RAW","all"]}}}"#,
            r#"{"name":"c","securityContext":{"capabilities":{"drop":["CAP_ALL"],"add":["NET_BIND_SERVICE"]}}}"#,
        ] {
            for (list, pod) in each_list(c) {
                assert_eq!(
                    run("pss-capabilities-restricted", &pod),
                    vec![format!(
                        "spec.{list}[0].securityContext.capabilities.drop: unrestricted capabilities (container \"c\" {DROP}"
                    )],
                    "{c}"
                );
            }
        }
        for c in [
            r#"{"name":"c","securityContext":{"capabilities":{"drop":["ALL"]}}}"#,
            r#"{"name":"c","securityContext":{"capabilities":{"drop":["NET_RAW","ALL"],"add":["NET_BIND_SERVICE"]}}}"#,
        ] {
            for (_, pod) in each_list(c) {
                assert!(run("pss-capabilities-restricted", &pod).is_empty(), "{c}");
            }
        }
    }

    #[test]
    fn may_add_only_net_bind_service() {
        let c = r#"{"name":"c","securityContext":{"capabilities":{"add":["NET_BIND_SERVICE","SYS_TIME","CHOWN","CHOWN"]}}}"#;
        for (list, pod) in each_list(c) {
            let p = format!("spec.{list}[0].securityContext.capabilities");
            assert_eq!(
                run("pss-capabilities-restricted", &pod),
                vec![
                    format!("{p}.drop: unrestricted capabilities (container \"c\" {DROP}"),
                    format!(
                        "{p}.add: unrestricted capabilities (container \"c\" must not include \"CHOWN\", \"SYS_TIME\" in securityContext.capabilities.add)"
                    ),
                ]
            );
        }
    }

    #[test]
    fn windows_pods_are_exempt_from_v1_25() {
        let pod = r#"{"os":{"name":"windows"},"containers":[{"name":"c"}]}"#;
        assert!(run("pss-capabilities-restricted", pod).is_empty());
        assert_eq!(
            run(&at("pss-capabilities-restricted", "v1.24"), pod).len(),
            1
        );
    }
}
