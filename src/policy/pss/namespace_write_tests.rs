//! Namespace writes as upstream's `ValidateNamespace` and `EvaluatePodsInNamespace` judge them
//! (admission.go; the expectations of its `admission_test.go`: `TestValidateNamespace`).

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::policy::pss::labels::aggregate;

fn policy(params: serde_json::Value) -> NamespacePolicy {
    let mut params = params;
    params["level"] = json!("namespace");
    NamespacePolicy::compile(params).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (format!("pod-security.kubernetes.io/{k}"), v.to_string()))
        .collect()
}

fn write<'r>(
    operation: &'r str,
    new: &'r BTreeMap<String, String>,
    old: Option<&'r BTreeMap<String, String>>,
) -> Write<'r> {
    Write {
        operation,
        name: "shop",
        labels: new,
        old_labels: old.map(|o| o as &dyn Labels),
    }
}

fn lv(text: &str) -> LevelVersion {
    let (level, version) = text.split_once(':').unwrap();
    let l = labels(&[("enforce", level), ("enforce-version", version)]);
    policy_to_evaluate(&l, PsaPolicy::default()).0.enforce
}

#[test]
fn invalid_labels_are_refused_on_create_and_on_an_update_that_changes_them() {
    let p = policy(json!({}));
    let bad = labels(&[("enforce", "strict")]);
    let NamespaceWrite::Invalid(errors) = p.judge_namespace_write(write("CREATE", &bad, None))
    else {
        panic!("refused")
    };
    assert_eq!(
        aggregate(&errors),
        "metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted"
    );
    let good = labels(&[]);
    assert!(matches!(
        p.judge_namespace_write(write("UPDATE", &bad, Some(&good))),
        NamespaceWrite::Invalid(_)
    ));
    // The same invalid labels as before: an unrelated update goes through.
    assert_eq!(
        p.judge_namespace_write(write("UPDATE", &bad, Some(&bad))),
        NamespaceWrite::Allowed
    );
    // Other invalid labels than before: refused.
    let other = labels(&[("enforce", "strict"), ("warn-version", "1.2")]);
    assert!(matches!(
        p.judge_namespace_write(write("UPDATE", &other, Some(&bad))),
        NamespaceWrite::Invalid(e) if e.len() == 2
    ));
}

#[test]
fn only_an_update_that_sets_or_tightens_enforce_checks_the_pods() {
    let p = policy(json!({}));
    let case = |old: &[(&str, &str)], new: &[(&str, &str)]| {
        let (old, new) = (labels(old), labels(new));
        p.judge_namespace_write(write("UPDATE", &new, Some(&old)))
    };
    let restricted = [("enforce", "restricted")];
    assert_eq!(
        case(&[], &restricted),
        NamespaceWrite::CheckPods(lv("restricted:latest"))
    );
    assert_eq!(
        case(&[("enforce", "baseline")], &restricted),
        NamespaceWrite::CheckPods(lv("restricted:latest"))
    );
    // Unchanged, relaxed at the same version, or to privileged: nothing to check.
    assert_eq!(case(&restricted, &restricted), NamespaceWrite::Allowed);
    assert_eq!(
        case(&restricted, &[("enforce", "baseline")]),
        NamespaceWrite::Allowed
    );
    assert_eq!(
        case(&restricted, &[("enforce", "privileged")]),
        NamespaceWrite::Allowed
    );
    // Another version, even of a laxer level, is checked.
    assert_eq!(
        case(
            &restricted,
            &[("enforce", "baseline"), ("enforce-version", "v1.20")]
        ),
        NamespaceWrite::CheckPods(lv("baseline:v1.20"))
    );
    // Only warn or audit changed: enforce is what counts.
    assert_eq!(
        case(&[], &[("warn", "restricted")]),
        NamespaceWrite::Allowed
    );
    // A CREATE never checks pods (a new namespace has none).
    let new = labels(&restricted);
    assert_eq!(
        p.judge_namespace_write(write("CREATE", &new, None)),
        NamespaceWrite::Allowed
    );
}

#[test]
fn an_exempt_namespace_is_warned_that_its_policy_is_ignored() {
    let p = policy(json!({"exemptions": {"namespaces": ["shop"]}}));
    let new = labels(&[
        ("enforce", "restricted"),
        ("audit-version", "v1.20"),
        ("warn", "baseline"),
    ]);
    let expected = NamespaceWrite::Warned(
        "namespace \"shop\" is exempt from Pod Security, and the policy (enforce=restricted:latest, warn=baseline:latest) will be ignored".into(),
    );
    assert_eq!(
        p.judge_namespace_write(write("CREATE", &new, None)),
        expected
    );
    let old = labels(&[]);
    assert_eq!(
        p.judge_namespace_write(write("UPDATE", &new, Some(&old))),
        expected
    );
    // Fully privileged, or what the defaults give anyway: nothing to say.
    let privileged = labels(&[("enforce", "privileged")]);
    assert_eq!(
        p.judge_namespace_write(write("CREATE", &privileged, None)),
        NamespaceWrite::Allowed
    );
    let p = policy(
        json!({"exemptions": {"namespaces": ["shop"]}, "defaults": {"enforce": "baseline", "warn": "baseline"}}),
    );
    let same = labels(&[("enforce", "baseline")]);
    assert_eq!(
        p.judge_namespace_write(write("CREATE", &same, None)),
        NamespaceWrite::Allowed
    );
}

fn pod(name: &str, controller: Option<&str>, privileged: bool) -> ExistingPod {
    let json = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "nginx",
            "securityContext": {"privileged": privileged}}]}});
    ExistingPod {
        name: name.into(),
        controller_uid: controller.map(Into::into),
        runtime_class: None,
        json: json.to_string(),
    }
}

#[test]
fn violating_pods_are_grouped_by_reason_under_the_first_name() {
    let p = policy(json!({}));
    let pods = [
        pod("web-b", Some("rs-1"), true),
        pod("web-a", Some("rs-1"), true),
        pod("solo", None, true),
        pod("fine", None, false),
        pod("zeta", None, false),
    ];
    let warnings = existing_pod_warnings(&p, "shop", lv("baseline:latest"), &pods, || false);
    assert_eq!(
        warnings,
        [
            "existing pods in namespace \"shop\" violate the new PodSecurity enforce level \"baseline:latest\"",
            "solo (and 2 other pods): privileged",
        ]
    );
    let warnings = existing_pod_warnings(&p, "shop", lv("restricted:latest"), &pods, || false);
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings[1].starts_with("fine (and 1 other pod): allowPrivilegeEscalation != false"));
    assert!(
        warnings[2].starts_with("solo (and 2 other pods): privileged, allowPrivilegeEscalation")
    );
}

#[test]
fn the_pod_limit_and_the_time_budget_are_said() {
    let p = policy(json!({"exemptions": {"runtimeClasses": ["kata"]}}));
    let mut pods: Vec<ExistingPod> = (0..MAX_PODS_TO_CHECK + 2)
        .map(|i| pod(&format!("p{i:05}"), (i == 0).then_some("rs"), false))
        .collect();
    // The only violating pod is the second replica of one controller: the pods of other
    // controllers and without one are judged first, so it is beyond the limit.
    pods[1] = pod("bad", Some("rs"), true);
    pods.push(ExistingPod {
        runtime_class: Some("kata".into()),
        ..pod("exempt", None, true)
    });
    let warnings = existing_pod_warnings(&p, "shop", lv("baseline:latest"), &pods, || false);
    assert_eq!(
        warnings,
        [format!(
            "new PodSecurity enforce level only checked against the first {MAX_PODS_TO_CHECK} of {} existing pods",
            MAX_PODS_TO_CHECK + 2
        )]
    );
    let mut judged = 0;
    let warnings = existing_pod_warnings(&p, "shop", lv("baseline:latest"), &pods, || {
        judged += 1;
        judged == 10
    });
    assert_eq!(
        warnings,
        [format!(
            "new PodSecurity enforce level only checked against the first 10 of {} existing pods",
            MAX_PODS_TO_CHECK + 2
        )]
    );
}
