//! `appArmorProfile` (baseline, AppArmor): the pod's and each container's
//! `securityContext.appArmorProfile.type` must be `RuntimeDefault` or `Localhost` when set, and
//! every `container.apparmor.security.beta.kubernetes.io/*` annotation must be empty,
//! `runtime/default` or `localhost/<profile>`.
//!
//! Upstream is literal: a bad pod-level profile is reported even when every container sets a
//! good one, and any annotation with the prefix counts, whether or not it names a container.

use super::text::{container, go_quote, problem};
use super::{Control, Level};
use crate::pod::{AppArmorProfile, PodView};
use crate::policy::{Finding, Sink};

pub const ID: &str = "pss-apparmor";

pub static CONTROL: Control = Control {
    id: ID,
    upstream_id: "appArmorProfile",
    name: "AppArmor",
    level: Level::Baseline,
    revisions: &[0],
    overrides: None,
    evaluate,
};

pub(super) const PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";
const FIELD: &str = "securityContext.appArmorProfile.type";
const FIELD_FIX: &str =
    "set securityContext.appArmorProfile.type to RuntimeDefault or Localhost, or remove it";

/// A profile set in a security context, if it is forbidden: its type (`""` when unset).
pub(super) fn bad_type<'p>(profile: Option<&'p AppArmorProfile<'_>>) -> Option<&'p str> {
    let kind = profile?.kind.as_deref().unwrap_or("");
    match kind {
        "RuntimeDefault" | "Localhost" => None,
        other => Some(other),
    }
}

pub(super) fn allowed_annotation(value: &str) -> bool {
    value.is_empty() || value == "runtime/default" || value.starts_with("localhost/")
}

fn evaluate<'v>(_minor: u32, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    let pod_profile = pod
        .spec
        .pod_security()
        .and_then(|sc| sc.app_armor_profile.as_ref());
    if let Some(kind) = bad_type(pod_profile) {
        let detail = format!("pod must not set AppArmor profile type to \"{kind}\"");
        sink.report(Finding::pod(
            FIELD,
            problem("forbidden AppArmor profile", &detail),
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
            .and_then(|sc| sc.app_armor_profile.as_ref());
        if let Some(kind) = bad_type(profile) {
            let detail = format!(
                "{} must not set AppArmor profile type to \"{kind}\"",
                container(&at)
            );
            sink.report(Finding::for_container(
                &at,
                FIELD,
                problem("forbidden AppArmor profile", &detail),
                FIELD_FIX,
            ));
        }
    }
    let bad = |(key, value): &(&str, &str)| key.starts_with(PREFIX) && !allowed_annotation(value);
    if !pod.annotations.iter().any(|kv| bad(&kv)) {
        return;
    }
    // Upstream lists the offending annotations as sorted `key="value"` strings.
    let mut annotations: Vec<(String, &str)> = pod
        .annotations
        .iter()
        .filter(bad)
        .map(|(key, value)| (format!("{key}={}", go_quote(value)), key))
        .collect();
    annotations.sort();
    for (setting, key) in annotations {
        let detail = format!("annotation must not set AppArmor profile type to \"{setting}\"");
        sink.report(Finding::annotation(
            None,
            key,
            problem("forbidden AppArmor profile", &detail),
            "set the annotation to runtime/default or localhost/<profile>, or use securityContext.appArmorProfile",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{each_list, run, run_pod};

    #[test]
    fn profile_types_at_pod_and_container_level() {
        for bad in ["Unconfined", "", "runtime/default", "localhost"] {
            let pod = format!(
                r#"{{"securityContext":{{"appArmorProfile":{{"type":"{bad}"}}}},"containers":[{{"name":"c","securityContext":{{"appArmorProfile":{{"type":"RuntimeDefault"}}}}}}]}}"#
            );
            assert_eq!(
                run("pss-apparmor", &pod),
                vec![format!(
                    "spec.securityContext.appArmorProfile.type: forbidden AppArmor profile (pod must not set AppArmor profile type to \"{bad}\")"
                )],
                "a bad pod profile is reported even when containers set a good one"
            );
        }
        let c = r#"{"name":"c","securityContext":{"appArmorProfile":{"type":"Unconfined"}}}"#;
        for (list, pod) in each_list(c) {
            assert_eq!(
                run("pss-apparmor", &pod),
                vec![format!(
                    "spec.{list}[0].securityContext.appArmorProfile.type: forbidden AppArmor profile (container \"c\" must not set AppArmor profile type to \"Unconfined\")"
                )]
            );
        }
        assert_eq!(
            run(
                "pss-apparmor",
                r#"{"containers":[{"name":"c","securityContext":{"appArmorProfile":{}}}]}"#
            ),
            vec![
                "spec.containers[0].securityContext.appArmorProfile.type: forbidden AppArmor profile (container \"c\" must not set AppArmor profile type to \"\")"
            ],
            "a profile without a type is an empty type"
        );
        for ok in ["RuntimeDefault", "Localhost"] {
            let pod = format!(
                r#"{{"securityContext":{{"appArmorProfile":{{"type":"{ok}"}}}},"initContainers":[{{"name":"c","securityContext":{{"appArmorProfile":{{"type":"{ok}","localhostProfile":"p"}}}}}}]}}"#
            );
            assert!(run("pss-apparmor", &pod).is_empty());
        }
        assert!(
            run(
                "pss-apparmor",
                r#"{"securityContext":{"appArmorProfile":null},"containers":[{"name":"c"}]}"#
            )
            .is_empty()
        );
    }

    #[test]
    fn annotations_as_upstream_lists_them() {
        let pod = r#"{"metadata":{"annotations":{
            "container.apparmor.security.beta.kubernetes.io/f":"unknown",
            "container.apparmor.security.beta.kubernetes.io/":"bogus",
            "container.apparmor.security.beta.kubernetes.io/a":"",
            "container.apparmor.security.beta.kubernetes.io/b":"runtime/default",
            "container.apparmor.security.beta.kubernetes.io/c":"localhost/",
            "container.apparmor.security.beta.kubernetes.io/d":"localhost/foo",
            "container.apparmor.security.beta.kubernetes.io/e":"unconfined",
            "apparmor.security.beta.kubernetes.io/x":"unconfined"}},"spec":{}}"#;
        let p = "metadata.annotations[container.apparmor.security.beta.kubernetes.io/";
        let d = "forbidden AppArmor profile (annotation must not set AppArmor profile type to \"container.apparmor.security.beta.kubernetes.io/";
        assert_eq!(
            run_pod("pss-apparmor", pod),
            vec![
                format!("{p}]: {d}=\"bogus\"\")"),
                format!("{p}e]: {d}e=\"unconfined\"\")"),
                format!("{p}f]: {d}f=\"unknown\"\")"),
            ]
        );
        let escaped = r#"{"metadata":{"annotations":{"container.apparmor.security.beta.kubernetes.io/a":"x\"y\n"}},"spec":{}}"#;
        assert_eq!(
            run_pod("pss-apparmor", escaped),
            vec![format!("{p}a]: {d}a=\"x\\\"y\\n\"\")")],
            "values are quoted as Go's %q does"
        );
    }
}
