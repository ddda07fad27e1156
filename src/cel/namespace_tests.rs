//! `namespaceSelector` and `namespaceObject` of ValidatingAdmissionPolicies, and requests of
//! any kind at `/validate`: decided from what is known of the namespace (the Namespaces among
//! `check`'s inputs; at admission, what the caller passes), and failing closed when it is not.

use serde_json::{Value, json};

use super::policy_tests::{check, rows, set};
use crate::admission::{self, Endpoint, Outcome};

const SELECTED: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: replicas}
spec:
  failurePolicy: Ignore
  matchConstraints:
    resourceRules:
      - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}
      - {apiGroups: [rbac.authorization.k8s.io], apiVersions: [v1], operations: [CREATE], resources: [clusterroles]}
      - {apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [namespaces]}
  validations:
    - expression: "!has(object.spec) || !has(object.spec.replicas) || object.spec.replicas <= 5"
      message: too many replicas
    - expression: "object.kind != 'ClusterRole' && object.kind != 'Namespace'"
      message: not here
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: replicas-prod}
spec:
  policyName: replicas
  validationActions: [Deny]
  matchResources:
    namespaceSelector: {matchLabels: {env: prod}}
"#;

fn deployment(namespace: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web-{namespace}, namespace: {namespace}}}\nspec:\n  replicas: {replicas}\n  template:\n    spec:\n      containers: [{{name: app, image: app:1}}]\n---\n"
    )
}

const NAMESPACES: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {env: prod, tier: gold}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: lab, labels: {env: dev}}\n---\n";

#[test]
fn namespace_selectors_read_the_input_namespaces() {
    let set = set(SELECTED);
    let report = check(
        &set,
        &format!(
            "{NAMESPACES}{}{}apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: reader}}\n",
            deployment("shop", 9),
            deployment("lab", 9)
        ),
    );
    let rows = rows(&report);
    let at = |what: &str| rows.iter().filter(|r| r.0 == what).count();
    // Labelled env=prod: judged. env=dev: not. A cluster-scoped object: never exempted by a
    // namespace selector. A Namespace: matched on its own labels.
    assert_eq!(at("Deployment/web-shop"), 1, "{rows:?}");
    assert_eq!(at("Deployment/web-lab"), 0, "{rows:?}");
    assert_eq!(at("ClusterRole/reader"), 1, "{rows:?}");
    assert_eq!(at("Namespace/shop"), 1, "{rows:?}");
    assert_eq!(at("Namespace/lab"), 0, "{rows:?}");
    assert!(rows.iter().all(|r| r.2 == "enforce"), "{rows:?}");
}

#[test]
fn a_namespace_nothing_is_known_of_fails_closed() {
    let set = set(SELECTED);
    // `elsewhere` is not among the inputs, and the policy's failurePolicy is Ignore: still
    // denied, saying why.
    let report = check(&set, &format!("{NAMESPACES}{}", deployment("elsewhere", 1)));
    let rows: Vec<_> = rows(&report)
        .into_iter()
        .filter(|r| r.0.starts_with("Deployment/"))
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].2, "enforce");
    assert!(
        rows[0].3.starts_with(
            "cannot decide spec.matchResources.namespaceSelector (env=prod): the labels of namespace \"elsewhere\" are not known"
        ),
        "{rows:?}"
    );
    // A request the rules do not choose needs no namespace.
    let report = check(
        &set,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: elsewhere}\n",
    );
    assert!(report.rows.is_empty(), "{:?}", report.rows);
}

const NAMESPACE_OBJECT: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: gold-only}
spec:
  matchConstraints:
    resourceRules:
      - {apiGroups: ["*"], apiVersions: ["*"], operations: ["*"], resources: ["*"]}
  variables:
    - name: tier
      expression: "namespaceObject == null ? 'none' : namespaceObject.metadata.?labels[?'tier'].orValue('')"
  validations:
    - expression: "variables.tier in ['gold', 'none']"
      messageExpression: "'namespace ' + namespaceObject.metadata.name + ' is ' + variables.tier"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: gold-only}
spec: {policyName: gold-only, validationActions: [Deny]}
"#;

#[test]
fn namespace_object_is_the_input_namespace() {
    let set = set(NAMESPACE_OBJECT);
    let report = check(
        &set,
        &format!(
            "{NAMESPACES}{}{}",
            deployment("shop", 1),
            deployment("lab", 1)
        ),
    );
    let rows = rows(&report);
    // Namespaces themselves see null (as the API server binds it); shop is gold; lab is not.
    assert_eq!(
        rows.iter().map(|r| (&*r.0, &*r.3)).collect::<Vec<_>>(),
        [("Deployment/web-lab", "namespace lab is")],
        "{rows:?}"
    );
    let report = check(&set, &deployment("elsewhere", 1));
    let rows = super::policy_tests::rows(&report);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0]
            .3
            .starts_with("cannot evaluate namespaceObject: namespace \"elsewhere\" is not known"),
        "{rows:?}"
    );
}

fn review(
    operation: &str,
    kind: (&str, &str, &str, &str),
    namespace: &str,
    object: Value,
) -> Vec<u8> {
    let (group, version, kind, resource) = kind;
    let mut request = json!({
        "uid": "e911857d-c318-11e8-bbad-025000000001",
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": object["metadata"]["name"],
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
        "object": object,
        "oldObject": null,
        "dryRun": false,
        "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
    });
    if operation == "DELETE" {
        request["oldObject"] = request["object"].take();
    }
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": request
    }))
    .unwrap()
}

const NO_LOAD_BALANCERS: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: no-load-balancers}
spec:
  matchConstraints:
    resourceRules:
      - {apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [services]}
      - {apiGroups: [""], apiVersions: [v1], operations: [DELETE], resources: [configmaps]}
  validations:
    - expression: "request.operation != 'DELETE'"
      message: configmaps stay
      reason: Forbidden
    - expression: "request.operation == 'DELETE' || object.spec.?type.orValue('ClusterIP') != 'LoadBalancer'"
      messageExpression: "'service ' + object.metadata.name + ' is a LoadBalancer'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: no-load-balancers}
spec: {policyName: no-load-balancers, validationActions: [Deny]}
"#;

fn response(answer: &admission::Answer) -> Value {
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    body["response"].clone()
}

#[test]
fn validate_judges_any_kind_operation_and_subresource() {
    let set = set(NO_LOAD_BALANCERS);
    let service = |kind: &str| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"type": kind, "ports": [{"port": 80}]}})
    };
    let services = ("", "v1", "Service", "services");
    let lb = review("CREATE", services, "shop", service("LoadBalancer"));
    let answer = admission::review(&lb, &set, Endpoint::Validate);
    assert_eq!(answer.outcome, Outcome::Denied);
    let r = response(&answer);
    assert_eq!(
        r["status"]["message"],
        "services \"web\" is forbidden: ValidatingAdmissionPolicy 'no-load-balancers' with binding 'no-load-balancers' denied request: service web is a LoadBalancer"
    );
    assert_eq!(
        (r["status"]["code"].as_i64(), r["status"]["reason"].as_str()),
        (Some(422), Some("Invalid"))
    );
    let subject = answer.subject.unwrap();
    assert_eq!(
        (
            subject.kind.as_str(),
            subject.name.as_str(),
            subject.user.as_str()
        ),
        ("Service", "web", "alice")
    );

    let fine = review("CREATE", services, "shop", service("ClusterIP"));
    assert_eq!(
        admission::review(&fine, &set, Endpoint::Validate).outcome,
        Outcome::Allowed
    );
    // /mutate never runs CEL policies: they validate.
    assert_eq!(
        admission::review(&lb, &set, Endpoint::Mutate).outcome,
        Outcome::Allowed
    );

    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}});
    let delete = review(
        "DELETE",
        ("", "v1", "ConfigMap", "configmaps"),
        "shop",
        config_map,
    );
    let answer = admission::review(&delete, &set, Endpoint::Validate);
    let r = response(&answer);
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(
        (r["status"]["code"].as_i64(), r["status"]["reason"].as_str()),
        (Some(403), Some("Forbidden"))
    );
    // A set without CEL policies allows other kinds as before.
    let plain = super::policy_tests::set(
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: p}\nspec: {check: privileged}\n",
    );
    assert_eq!(
        admission::review(&lb, &plain, Endpoint::Validate).outcome,
        Outcome::Allowed
    );
}

#[test]
fn validate_decides_namespace_selectors_with_what_it_is_given() {
    let set = set(SELECTED);
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"}, "spec": {"replicas": 9}});
    let body = review(
        "CREATE",
        ("apps", "v1", "Deployment", "deployments"),
        "shop",
        deployment,
    );
    // `review` knows nothing of namespaces: the selector cannot be decided, so it denies.
    let r = response(&admission::review(&body, &set, Endpoint::Validate));
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        r["status"]["message"].as_str().unwrap().contains(
            "cannot decide spec.matchResources.namespaceSelector (env=prod): the labels of namespace \"shop\" are not known"
        ),
        "{r}"
    );
    // Given the labels, it decides.
    let judge = |labels: &[(&str, &str)]| {
        let admission::Decoded::Judge(judgement) = admission::decode(&body, Endpoint::Validate)
        else {
            panic!("a deployment is a workload");
        };
        let labels = labels.to_vec();
        let labels: &[(&str, &str)] = &labels;
        let answer = admission::answer(
            &judgement,
            &set,
            &crate::policy::Unverified,
            crate::namespaces::NamespaceLabels::Known(
                &labels,
                crate::namespaces::LabelSource::Cache,
            ),
        );
        answer.outcome
    };
    assert_eq!(judge(&[("env", "prod")]), Outcome::Denied);
    assert_eq!(judge(&[("env", "dev")]), Outcome::Allowed);
    // A Namespace is matched on its own labels, with nothing else known.
    let namespace = |env: &str| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "labels": {"env": env}}});
    let kind = ("", "v1", "Namespace", "namespaces");
    let prod = review("CREATE", kind, "n", namespace("prod"));
    assert_eq!(
        admission::review(&prod, &set, Endpoint::Validate).outcome,
        Outcome::Denied
    );
    let dev = review("CREATE", kind, "n", namespace("dev"));
    assert_eq!(
        admission::review(&dev, &set, Endpoint::Validate).outcome,
        Outcome::Allowed
    );
}
