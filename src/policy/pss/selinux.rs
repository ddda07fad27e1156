//! `seLinuxOptions` (baseline, SELinux): in the pod's and each container's
//! `securityContext.seLinuxOptions`, `type` must be empty or one of `container_t`,
//! `container_init_t`, `container_kvm_t` (and `container_engine_t` from v1.31), and `user` and
//! `role` must be empty. `level` is not read. Like upstream, a bad pod-level setting is
//! reported even when containers override it.

use super::text::{container, problem};
use super::{Control, Level};
use crate::pod::{PodView, SeLinuxOptions, Text};
use crate::policy::{Finding, Sink};

pub const ID: &str = "pss-selinux";

pub static CONTROL: Control = Control {
    id: ID,
    upstream_id: "seLinuxOptions",
    name: "SELinux",
    level: Level::Baseline,
    revisions: &[0, 31],
    overrides: None,
    evaluate,
};

pub(super) fn allowed_type(kind: &str, minor: u32) -> bool {
    match kind {
        "" | "container_t" | "container_init_t" | "container_kvm_t" => true,
        "container_engine_t" => minor >= 31,
        _ => false,
    }
}

fn kind<'o>(options: &'o SeLinuxOptions<'_>) -> &'o str {
    options.kind.as_deref().unwrap_or("")
}

fn is_set(value: &Option<Text<'_>>) -> bool {
    value.as_deref().is_some_and(|v| !v.is_empty())
}

fn valid(options: &SeLinuxOptions<'_>, minor: u32) -> bool {
    allowed_type(kind(options), minor) && !is_set(&options.user) && !is_set(&options.role)
}

/// The offending settings of `options`: (field below `seLinuxOptions`, upstream's words).
/// Only called to report.
fn offences(options: &SeLinuxOptions<'_>, minor: u32) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if !allowed_type(kind(options), minor) {
        out.push(("type", format!("type \"{}\"", kind(options))));
    }
    if is_set(&options.user) {
        out.push(("user", "user may not be set".to_owned()));
    }
    if is_set(&options.role) {
        out.push(("role", "role may not be set".to_owned()));
    }
    out
}

fn fix(field: &str) -> &'static str {
    match field {
        "type" => {
            "remove seLinuxOptions.type or use container_t, container_init_t, container_kvm_t or (from v1.31) container_engine_t"
        }
        "user" => "remove seLinuxOptions.user",
        _ => "remove seLinuxOptions.role",
    }
}

fn evaluate<'v>(minor: u32, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    let pod_options = pod
        .spec
        .pod_security()
        .and_then(|sc| sc.se_linux_options.as_ref());
    if let Some(options) = pod_options.filter(|o| !valid(o, minor)) {
        for (field, words) in offences(options, minor) {
            let detail = format!("pod set forbidden securityContext.seLinuxOptions: {words}");
            sink.report(Finding::pod(
                format!("securityContext.seLinuxOptions.{field}"),
                problem("seLinuxOptions", &detail),
                fix(field),
            ));
        }
    }
    for at in pod.spec.all_containers() {
        if !sink.in_scope(&at) {
            continue;
        }
        let options = at
            .container
            .security()
            .and_then(|sc| sc.se_linux_options.as_ref());
        let Some(options) = options.filter(|o| !valid(o, minor)) else {
            continue;
        };
        for (field, words) in offences(options, minor) {
            let detail = format!(
                "{} set forbidden securityContext.seLinuxOptions: {words}",
                container(&at)
            );
            sink.report(Finding::for_container(
                &at,
                format!("securityContext.seLinuxOptions.{field}"),
                problem("seLinuxOptions", &detail),
                fix(field),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, each_list, run};

    #[test]
    fn pod_level_options() {
        let pod = r#"{"securityContext":{"seLinuxOptions":{"type":"foo","user":"bar","role":"baz","level":"s0:c1"}},
            "containers":[{"name":"a","securityContext":{"seLinuxOptions":{"type":"container_t"}}}]}"#;
        let d = "seLinuxOptions (pod set forbidden securityContext.seLinuxOptions:";
        assert_eq!(
            run("pss-selinux", pod),
            vec![
                format!("spec.securityContext.seLinuxOptions.type: {d} type \"foo\")"),
                format!("spec.securityContext.seLinuxOptions.user: {d} user may not be set)"),
                format!("spec.securityContext.seLinuxOptions.role: {d} role may not be set)"),
            ]
        );
        assert!(
            run(
                "pss-selinux",
                r#"{"securityContext":{"seLinuxOptions":{"level":"s0:c1,c2","type":""}}}"#
            )
            .is_empty()
        );
    }

    #[test]
    fn container_options_in_every_container_kind() {
        for (field, json, words) in [
            ("type", r#"{"type":"spc_t"}"#, r#"type "spc_t""#),
            ("user", r#"{"user":"system_u"}"#, "user may not be set"),
            ("role", r#"{"role":"system_r"}"#, "role may not be set"),
        ] {
            let c = format!(r#"{{"name":"c","securityContext":{{"seLinuxOptions":{json}}}}}"#);
            for (list, pod) in each_list(&c) {
                assert_eq!(
                    run("pss-selinux", &pod),
                    vec![format!(
                        "spec.{list}[0].securityContext.seLinuxOptions.{field}: seLinuxOptions (container \"c\" set forbidden securityContext.seLinuxOptions: {words})"
                    )]
                );
            }
        }
        for ok in [
            "container_t",
            "container_init_t",
            "container_kvm_t",
            "container_engine_t",
            "",
        ] {
            let c = format!(
                r#"{{"name":"c","securityContext":{{"seLinuxOptions":{{"type":"{ok}","user":"","role":""}}}}}}"#
            );
            for (_, pod) in each_list(&c) {
                assert!(run("pss-selinux", &pod).is_empty(), "{pod}");
            }
        }
    }

    #[test]
    fn container_engine_t_is_allowed_from_v1_31() {
        let pod = r#"{"securityContext":{"seLinuxOptions":{"type":"container_engine_t"}}}"#;
        assert!(run(&at("pss-selinux", "v1.31"), pod).is_empty());
        assert_eq!(
            run(&at("pss-selinux", "v1.30"), pod),
            vec![
                "spec.securityContext.seLinuxOptions.type: seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: type \"container_engine_t\")"
            ]
        );
    }
}
