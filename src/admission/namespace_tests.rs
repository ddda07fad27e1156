//! Namespace reviews end to end through the wire format (decode, judge, encode).

use serde_json::{Value, json};

use crate::admission::{Endpoint, review};
use crate::policy::PolicySet;

const PSA: &str = "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: psa}\nspec:\n  check: pod-security\n";

fn set(spec: &str) -> PolicySet {
    PolicySet::from_yaml("psa.yaml", &format!("{PSA}{spec}")).unwrap()
}

fn namespace(labels: &[(&str, &str)]) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (format!("pod-security.kubernetes.io/{k}"), json!(v)))
        .chain([("team".to_owned(), json!("shop"))])
        .collect();
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": labels}})
}

fn body(operation: &str, object: Value, old: Option<Value>) -> Vec<u8> {
    let mut request = json!({
        "uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Namespace"},
        "resource": {"group": "", "version": "v1", "resource": "namespaces"},
        "name": "shop", "namespace": "shop", "operation": operation,
        "userInfo": {"username": "alice"}, "object": object,
    });
    if let Some(old) = old {
        request["oldObject"] = old;
    }
    serde_json::to_vec(
        &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}),
    )
    .unwrap()
}

fn answer(set: &PolicySet, body: &[u8], endpoint: Endpoint) -> Value {
    let out = review(body, set, endpoint);
    assert_eq!(out.http_status, 200);
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    v["response"].clone()
}

#[test]
fn invalid_labels_are_refused_with_upstreams_field_errors() {
    let set = set("  params: {level: namespace}\n");
    let bad = namespace(&[("enforce", "strict"), ("audit-version", "1.30")]);
    let r = answer(&set, &body("CREATE", bad, None), Endpoint::Validate);
    assert_eq!(r["allowed"], false);
    assert_eq!(
        r["status"],
        json!({
            "status": "Failure", "reason": "Invalid", "code": 422,
            "message": "Namespace \"shop\" is invalid: [metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted, metadata.labels[pod-security.kubernetes.io/audit-version]: Invalid value: \"1.30\": must be \"latest\" or \"v1.x\"]",
            "details": {"name": "shop", "kind": "Namespace", "causes": [
                {"reason": "FieldValueInvalid", "field": "metadata.labels[pod-security.kubernetes.io/enforce]",
                 "message": "Invalid value: \"strict\": must be one of privileged, baseline, restricted"},
                {"reason": "FieldValueInvalid", "field": "metadata.labels[pod-security.kubernetes.io/audit-version]",
                 "message": "Invalid value: \"1.30\": must be \"latest\" or \"v1.x\""},
            ]},
        })
    );
    // /mutate never judges namespaces; a policy in warn mode only warns.
    let bad = namespace(&[("enforce", "strict")]);
    let r = answer(&set, &body("CREATE", bad.clone(), None), Endpoint::Mutate);
    assert_eq!(r["allowed"], true);
    let warn = PolicySet::from_yaml(
        "psa.yaml",
        &format!("{PSA}  mode: warn\n  params: {{level: namespace}}\n"),
    )
    .unwrap();
    let r = answer(&warn, &body("CREATE", bad, None), Endpoint::Validate);
    assert_eq!(r["allowed"], true);
    assert_eq!(
        r["warnings"],
        json!([
            "Namespace \"shop\" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted"
        ])
    );
}

#[test]
fn a_tightened_enforce_level_without_api_access_says_the_pods_could_not_be_listed() {
    let set = set("  params: {level: namespace}\n");
    let before = namespace(&[]);
    let after = namespace(&[("enforce", "restricted")]);
    let r = answer(
        &set,
        &body("UPDATE", after.clone(), Some(before.clone())),
        Endpoint::Validate,
    );
    assert_eq!(r["allowed"], true);
    assert_eq!(
        r["warnings"],
        json!(["failed to list pods while checking new PodSecurity enforce level"])
    );
    // Relaxing checks nothing.
    let r = answer(
        &set,
        &body("UPDATE", before, Some(after)),
        Endpoint::Validate,
    );
    assert_eq!(r, json!({"uid": "u1", "allowed": true}));
}

#[test]
fn selectors_read_the_labels_being_written_and_exempt_namespaces_are_warned() {
    // The namespaceSelector reads the object's own labels: `team: shop` is on it.
    let set = set(
        "  match: {namespaceSelector: {matchLabels: {team: shop}}}\n  params: {level: namespace, exemptions: {namespaces: [shop]}}\n",
    );
    let r = answer(
        &set,
        &body("CREATE", namespace(&[("enforce", "baseline")]), None),
        Endpoint::Validate,
    );
    assert_eq!(
        r["warnings"],
        json!([
            "namespace \"shop\" is exempt from Pod Security, and the policy (enforce=baseline:latest) will be ignored"
        ])
    );
    let other = set.policies().len();
    let set = PolicySet::from_yaml(
        "psa.yaml",
        &format!("{PSA}  match: {{namespaceSelector: {{matchLabels: {{team: other}}}}}}\n  params: {{level: namespace}}\n"),
    )
    .unwrap();
    assert_eq!(set.policies().len(), other);
    let r = answer(
        &set,
        &body("CREATE", namespace(&[("enforce", "strict")]), None),
        Endpoint::Validate,
    );
    assert_eq!(r["allowed"], true, "not selected: not judged");
}

#[test]
fn a_review_whose_namespace_is_unreadable_fails_closed() {
    let set = set("  params: {level: namespace}\n");
    let r = answer(
        &set,
        &body("CREATE", json!({"metadata": {"labels": "x"}}), None),
        Endpoint::Validate,
    );
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"].as_str().unwrap().starts_with(
            "portier cannot judge this request: request.object is not a valid Namespace"
        ),
        "{r}"
    );
}

/// A Namespace write judged both as Pod Security admission does and by CEL policies: a CEL
/// refusal is the answer; otherwise the warnings and audit annotations of both are returned.
#[test]
fn a_namespace_write_carries_the_words_of_pod_security_and_cel_policies() {
    let cel = |name: &str, mode: &str, expression: &str| {
        format!(
            "---\napiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: {name}}}\nspec:\n  check: cel\n  mode: {mode}\n  match: {{kinds: [Namespace]}}\n  params:\n    validations:\n      - expression: \"{expression}\"\n        message: {name} says no\n"
        )
    };
    let yaml = format!(
        "{PSA}  params: {{level: namespace}}\n{}{}",
        cel("owner-label", "warn", "has(object.metadata.labels.owner)"),
        cel("recorded", "audit", "object.metadata.name != 'shop'"),
    );
    let set = PolicySet::from_yaml("mixed.yaml", &yaml).unwrap();
    let before = namespace(&[]);
    let after = namespace(&[("enforce", "restricted")]);
    let r = answer(
        &set,
        &body("UPDATE", after.clone(), Some(before.clone())),
        Endpoint::Validate,
    );
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(
        r["warnings"],
        json!([
            "failed to list pods while checking new PodSecurity enforce level",
            "owner-label/cel: owner-label says no"
        ])
    );
    assert_eq!(
        r["auditAnnotations"],
        json!({"recorded": "recorded/cel: recorded says no"})
    );

    // An invalid label is refused by Pod Security alone, without the CEL warnings.
    let invalid = namespace(&[("enforce", "strict")]);
    let r = answer(&set, &body("CREATE", invalid, None), Endpoint::Validate);
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["reason"], "Invalid");
    assert!(r.get("warnings").is_none(), "{r}");

    // A CEL refusal wins over Pod Security's allowance.
    let yaml = format!(
        "{PSA}  params: {{level: namespace}}\n{}",
        cel(
            "owner-required",
            "enforce",
            "has(object.metadata.labels.owner)"
        ),
    );
    let set = PolicySet::from_yaml("mixed.yaml", &yaml).unwrap();
    let r = answer(
        &set,
        &body("UPDATE", after, Some(before)),
        Endpoint::Validate,
    );
    assert_eq!(r["allowed"], false);
    assert_eq!(
        r["status"]["message"], "owner-required/cel: owner-required says no",
        "{r}"
    );
}
