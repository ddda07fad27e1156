//! `level: namespace` answers as Pod Security admission answers (admission.go, its
//! `admission_test.go` cases, and the Pod Security admission documentation's examples).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::admission::{Decoded, Endpoint, answer, decode};
use crate::namespaces::{LabelSource, NamespaceLabels};
use crate::policy::{PolicySet, Unverified};

const PSA: &str = "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: psa}\nspec:\n  check: pod-security\n  params:\n    level: namespace\n";

fn set(extra: &str) -> PolicySet {
    PolicySet::from_yaml("psa.yaml", &format!("{PSA}{extra}")).unwrap()
}

/// A bare nginx pod, as in the PSA documentation.
fn nginx() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nginx", "namespace": "shop"},
           "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}})
}

fn review(
    kind: &str,
    group: &str,
    object: Value,
    operation: &str,
    old: Option<Value>,
    user: &str,
) -> Vec<u8> {
    let mut request = json!({
        "uid": "u1", "kind": {"group": group, "version": "v1", "kind": kind},
        "name": object["metadata"]["name"], "namespace": "shop", "operation": operation,
        "userInfo": {"username": user}, "object": object,
    });
    if let Some(old) = old {
        request["oldObject"] = old;
    }
    serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})).unwrap()
}

fn judge(set: &PolicySet, body: &[u8], labels: Option<&[(&str, &str)]>) -> Value {
    let map: BTreeMap<String, String> = labels
        .unwrap_or(&[])
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let known = match labels {
        Some(_) => NamespaceLabels::Known(&map, LabelSource::Cache),
        None => NamespaceLabels::Unknown("no kubeconfig"),
    };
    let out = match decode(body, Endpoint::Validate) {
        Decoded::Judge(j) => answer(&j, set, &Unverified, known),
        Decoded::Answered(a) => a,
        Decoded::Namespace(..) => panic!("pods only"),
        Decoded::Other(o) => crate::admission::answer_other(&o, set, known),
    };
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    v["response"].clone()
}

fn pod(labels: &[(&str, &str)]) -> Value {
    judge(
        &set(""),
        &review("Pod", "", nginx(), "CREATE", None, "alice"),
        Some(labels),
    )
}

const RESTRICTED_NGINX: &str = "allowPrivilegeEscalation != false (container \"nginx\" must set securityContext.allowPrivilegeEscalation=false), \
unrestricted capabilities (container \"nginx\" must set securityContext.capabilities.drop=[\"ALL\"]), \
runAsNonRoot != true (pod or container \"nginx\" must set securityContext.runAsNonRoot=true), \
seccompProfile (pod or container \"nginx\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")";

#[test]
fn enforce_denies_in_psas_words_and_names_the_policy_it_enforced() {
    let r = pod(&[("pod-security.kubernetes.io/enforce", "restricted")]);
    assert_eq!(r["allowed"], false);
    assert_eq!(
        r["status"]["message"],
        format!(
            "pods \"nginx\" is forbidden: violates PodSecurity \"restricted:latest\": {RESTRICTED_NGINX}"
        )
    );
    assert_eq!(r["status"]["code"], 403);
    assert_eq!(
        r["auditAnnotations"],
        json!({"enforce-policy": "restricted:latest"})
    );
    assert!(
        r.get("warnings").is_none(),
        "no warnings on a denied request"
    );
}

#[test]
fn warn_and_audit_each_with_their_own_level_and_version() {
    let r = pod(&[
        ("pod-security.kubernetes.io/enforce", "baseline"),
        ("pod-security.kubernetes.io/warn", "restricted"),
        ("pod-security.kubernetes.io/warn-version", "v1.30"),
        ("pod-security.kubernetes.io/audit", "restricted"),
    ]);
    assert_eq!(r["allowed"], true);
    assert_eq!(
        r["warnings"],
        json!([format!(
            "would violate PodSecurity \"restricted:v1.30\": {RESTRICTED_NGINX}"
        )])
    );
    assert_eq!(
        r["auditAnnotations"],
        json!({"enforce-policy": "baseline:latest",
               "audit-violations": format!("would violate PodSecurity \"restricted:latest\": {RESTRICTED_NGINX}")})
    );
}

#[test]
fn an_unlabelled_namespace_uses_the_defaults_and_privileged_judges_nothing() {
    let r = pod(&[]);
    assert_eq!(r["allowed"], true);
    assert_eq!(
        r["auditAnnotations"],
        json!({"enforce-policy": "privileged:latest"})
    );
    let s = set("    defaults: {enforce: baseline, warn: restricted, warn-version: v1.29}\n");
    let r = judge(
        &s,
        &review("Pod", "", nginx(), "CREATE", None, "alice"),
        Some(&[]),
    );
    assert_eq!(r["allowed"], true);
    assert_eq!(r["auditAnnotations"]["enforce-policy"], "baseline:latest");
    assert_eq!(
        r["warnings"][0]
            .as_str()
            .unwrap()
            .split(':')
            .next()
            .unwrap(),
        "would violate PodSecurity \"restricted"
    );
}

#[test]
fn invalid_labels_fail_closed_for_enforce_open_for_warn_and_are_reported() {
    let r = pod(&[
        ("pod-security.kubernetes.io/enforce", "strict"),
        ("pod-security.kubernetes.io/warn", "strict"),
    ]);
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("violates PodSecurity \"restricted:latest\"")
    );
    assert_eq!(
        r["auditAnnotations"]["error"],
        "Failed to parse policy: [metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted, \
         metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: \"strict\": must be one of privileged, baseline, restricted]"
    );
    // An invalid version is latest.
    let r = pod(&[
        ("pod-security.kubernetes.io/enforce", "baseline"),
        ("pod-security.kubernetes.io/enforce-version", "v1.x"),
    ]);
    assert_eq!(r["allowed"], true);
    assert_eq!(r["auditAnnotations"]["enforce-policy"], "baseline:latest");
    assert_eq!(
        r["auditAnnotations"]["error"],
        "Failed to parse policy: metadata.labels[pod-security.kubernetes.io/enforce-version]: Invalid value: \"v1.x\": must be \"latest\" or \"v1.x\""
    );
}

#[test]
fn exemptions_by_namespace_user_and_runtime_class() {
    let s = set("    exemptions: {usernames: [ci], runtimeClasses: [kata], namespaces: [shop]}\n");
    let enforce = [("pod-security.kubernetes.io/enforce", "restricted")];
    let r = judge(
        &s,
        &review("Pod", "", nginx(), "CREATE", None, "alice"),
        Some(&enforce),
    );
    assert_eq!(
        (r["allowed"].clone(), r["auditAnnotations"].clone()),
        (json!(true), json!({"exempt": "namespace"}))
    );
    let s = set("    exemptions: {usernames: [ci], runtimeClasses: [kata]}\n");
    let r = judge(
        &s,
        &review("Pod", "", nginx(), "CREATE", None, "ci"),
        Some(&enforce),
    );
    assert_eq!(r["auditAnnotations"], json!({"exempt": "user"}));
    let mut kata = nginx();
    kata["spec"]["runtimeClassName"] = json!("kata");
    let r = judge(
        &s,
        &review("Pod", "", kata, "CREATE", None, "alice"),
        Some(&enforce),
    );
    assert_eq!(r["auditAnnotations"], json!({"exempt": "runtimeClass"}));
    let r = judge(
        &s,
        &review("Pod", "", nginx(), "CREATE", None, "alice"),
        Some(&enforce),
    );
    assert_eq!(r["allowed"], false);
}

/// A bare PodTemplate is a pod-template resource to Pod Security admission (its
/// `PodSpecExtractor` reads `template`): warned and audited at the labels' levels, never refused.
#[test]
fn a_pod_template_is_judged_like_a_workload_template() {
    let template = json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "web"},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": nginx()["spec"]}});
    let labels = [
        ("pod-security.kubernetes.io/enforce", "restricted"),
        ("pod-security.kubernetes.io/audit", "restricted"),
    ];
    let r = judge(
        &set(""),
        &review("PodTemplate", "", template, "CREATE", None, "alice"),
        Some(&labels),
    );
    let violation = format!("would violate PodSecurity \"restricted:latest\": {RESTRICTED_NGINX}");
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["warnings"], json!([violation]));
    assert_eq!(
        r["auditAnnotations"],
        json!({"audit-violations": violation})
    );
}

#[test]
fn workload_templates_get_warn_and_audit_never_enforce() {
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": nginx()["spec"]}}});
    let labels = [
        ("pod-security.kubernetes.io/enforce", "restricted"),
        ("pod-security.kubernetes.io/warn", "restricted"),
    ];
    let r = judge(
        &set(""),
        &review(
            "Deployment",
            "apps",
            deployment.clone(),
            "CREATE",
            None,
            "alice",
        ),
        Some(&labels),
    );
    assert_eq!(r["allowed"], true);
    assert_eq!(
        r["warnings"],
        json!([format!(
            "would violate PodSecurity \"restricted:latest\": {RESTRICTED_NGINX}"
        )])
    );
    assert!(
        r.get("auditAnnotations").is_none(),
        "no enforce-policy on templates: {r}"
    );
    // Enforce alone warns at its level (helpers.go defaults warn to a stricter enforce).
    let r = judge(
        &set(""),
        &review(
            "Deployment",
            "apps",
            deployment.clone(),
            "CREATE",
            None,
            "alice",
        ),
        Some(&labels[..1]),
    );
    assert_eq!(r["warnings"].as_array().unwrap().len(), 1);
    // Warn and audit privileged: nothing to say about a template.
    let quiet = [
        ("pod-security.kubernetes.io/enforce", "restricted"),
        ("pod-security.kubernetes.io/warn", "privileged"),
    ];
    let r = judge(
        &set(""),
        &review("Deployment", "apps", deployment, "CREATE", None, "alice"),
        Some(&quiet),
    );
    assert_eq!(r, json!({"uid": "u1", "allowed": true}));
}

#[test]
fn pod_updates_that_change_no_image_are_not_judged_again() {
    let labels = [("pod-security.kubernetes.io/enforce", "restricted")];
    let mut relabelled = nginx();
    relabelled["metadata"]["labels"] = json!({"team": "a"});
    let r = judge(
        &set(""),
        &review("Pod", "", relabelled, "UPDATE", Some(nginx()), "alice"),
        Some(&labels),
    );
    assert_eq!(r, json!({"uid": "u1", "allowed": true}));
    let mut new_image = nginx();
    new_image["spec"]["containers"][0]["image"] = json!("nginx:2");
    let r = judge(
        &set(""),
        &review("Pod", "", new_image, "UPDATE", Some(nginx()), "alice"),
        Some(&labels),
    );
    assert_eq!(r["allowed"], false);
}

#[test]
fn unknown_labels_deny_pods_and_warn_on_templates() {
    let r = judge(
        &set(""),
        &review("Pod", "", nginx(), "CREATE", None, "alice"),
        None,
    );
    assert_eq!(r["allowed"], false);
    assert_eq!(
        r["status"]["message"],
        "cannot apply Pod Security: the labels of namespace \"shop\" are not known (no kubeconfig); give portier read access to namespaces (get, list, watch)"
    );
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
        "spec": {"template": {"spec": nginx()["spec"]}}});
    let r = judge(
        &set(""),
        &review("Job", "batch", job, "CREATE", None, "alice"),
        None,
    );
    assert_eq!(r["allowed"], true);
    assert_eq!(r["warnings"].as_array().unwrap().len(), 1);
}

#[test]
fn params_are_validated_at_load() {
    for (params, field) in [
        ("    version: v1.30\n", "spec.params"),
        (
            "    defaults: {enforce: strict}\n",
            "spec.params.defaults.enforce",
        ),
        (
            "    defaults: {enforce-version: v1.030}\n",
            "spec.params.defaults.enforce-version",
        ),
        ("    exemptions: {users: [a]}\n", "spec.params.exemptions"),
    ] {
        let e = PolicySet::from_yaml("p.yaml", &format!("{PSA}{params}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{params}: {e}");
    }
}

#[test]
fn the_shipped_preset_loads_and_judges_by_the_labels() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/presets/psa-compatible.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let restricted = [("pod-security.kubernetes.io/enforce", "restricted")];
    let body = review("Pod", "", nginx(), "CREATE", None, "alice");
    // As shipped (audit mode, for a side-by-side comparison with PSA): allowed, and what the
    // enforce label would refuse is recorded.
    let set = PolicySet::from_yaml(path, &text).unwrap();
    let r = judge(&set, &body, Some(&restricted));
    assert_eq!(r["allowed"], true, "{r}");
    let recorded = r["auditAnnotations"].to_string();
    assert!(
        recorded.contains(r#"PodSecurity \"restricted:latest\""#),
        "{r}"
    );
    // Switched to enforce, as the migration guide's last step does: refused.
    let enforce = text.replace("mode: audit", "mode: enforce");
    assert_ne!(enforce, text);
    let set = PolicySet::from_yaml(path, &enforce).unwrap();
    let r = judge(&set, &body, Some(&restricted));
    assert_eq!(r["allowed"], false);
    let r = judge(&set, &body, Some(&[]));
    assert_eq!(r["allowed"], true);
    assert!(r.get("warnings").is_none(), "{r}");
}
