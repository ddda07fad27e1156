//! CEL policies end to end within the library: YAML documents loaded into a policy set, then
//! objects judged as `portier check` judges them (a CREATE of each), and the load errors of
//! every ValidatingAdmissionPolicy and binding field.

use crate::offline::{Images, Mutate, Report, check_text};
use crate::policy::PolicySet;
use crate::row::Row;

pub(super) fn set(yaml: &str) -> PolicySet {
    PolicySet::from_yaml("policies.yaml", yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn load_error(yaml: &str) -> String {
    PolicySet::from_yaml("policies.yaml", yaml)
        .unwrap_err()
        .to_string()
}

pub(super) fn check(set: &PolicySet, manifests: &str) -> Report {
    let mut report = Report::default();
    check_text(
        "m.yaml",
        manifests,
        set,
        Mutate::No,
        Images::Offline,
        &mut report,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    report
}

pub(super) fn rows(report: &Report) -> Vec<(String, String, String, String)> {
    report
        .rows
        .iter()
        .map(|r: &Row| {
            (
                format!("{}/{}", r.kind, r.name),
                r.policy.clone(),
                r.mode.clone(),
                r.message.clone(),
            )
        })
        .collect()
}

const REPLICAS_POLICY: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: demo-policy.example.com}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: [apps]
        apiVersions: [v1]
        operations: [CREATE, UPDATE]
        resources: [deployments]
  validations:
    - expression: "object.spec.replicas <= 5"
"#;

const BINDING: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: demo-binding-test.example.com}
spec:
  policyName: demo-policy.example.com
  validationActions: [Deny]
"#;

fn deployment(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  replicas: {replicas}\n  template:\n    spec:\n      containers: [{{name: app, image: registry.acme.example/app:1}}]\n---\n"
    )
}

#[test]
fn a_policy_with_its_binding_judges_and_without_it_does_nothing() {
    // kubernetes/website: content/en/examples/validatingadmissionpolicy/basic-example-policy.yaml
    let alone = set(REPLICAS_POLICY);
    let report = check(&alone, &deployment("big", 10));
    assert!(
        report.rows.is_empty(),
        "a policy without a binding does nothing"
    );

    let bound = set(&format!("{REPLICAS_POLICY}---{BINDING}"));
    assert_eq!(bound.len(), 1);
    assert_eq!(bound.policies()[0].name, "demo-binding-test.example.com");
    let report = check(
        &bound,
        &format!("{}{}", deployment("big", 10), deployment("small", 2)),
    );
    assert_eq!(
        rows(&report),
        vec![(
            "Deployment/big".to_owned(),
            "demo-binding-test.example.com".to_owned(),
            "enforce".to_owned(),
            "failed expression: object.spec.replicas <= 5".to_owned()
        )]
    );
    assert!(report.denies());
    assert_eq!(report.rows[0].check, "demo-policy.example.com");
}

#[test]
fn validation_actions_decide_the_mode() {
    for (actions, mode) in [
        ("[Deny]", "enforce"),
        ("[Warn]", "warn"),
        ("[Audit]", "audit"),
        ("[Deny, Audit]", "enforce"),
        ("[Warn, Audit]", "warn"),
    ] {
        let s = set(&format!(
            "{REPLICAS_POLICY}---{}",
            BINDING.replace("[Deny]", actions)
        ));
        let report = check(&s, &deployment("big", 10));
        assert_eq!(report.rows.len(), 1, "{actions}");
        assert_eq!(report.rows[0].mode, mode, "{actions}");
    }
    let e = load_error(&format!(
        "{REPLICAS_POLICY}---{}",
        BINDING.replace("[Deny]", "[Deny, Warn]")
    ));
    assert!(
        e.contains("spec.validationActions: Deny and Warn may not be used together"),
        "{e}"
    );
    let e = load_error(&format!(
        "{REPLICAS_POLICY}---{}",
        BINDING.replace("[Deny]", "[Block]")
    ));
    assert!(
        e.contains("spec.validationActions[0]: Unsupported value: \"Block\""),
        "{e}"
    );
    let e = load_error(&format!(
        "{REPLICAS_POLICY}---{}",
        BINDING.replace("[Deny]", "[]")
    ));
    assert!(e.contains("spec.validationActions: Required value"), "{e}");
}

#[test]
fn messages_follow_the_api_server_s_rules() {
    let policy = |validation: &str| {
        format!(
            "{}---{BINDING}",
            REPLICAS_POLICY.replace(
                "    - expression: \"object.spec.replicas <= 5\"\n",
                &format!("    - expression: \"object.spec.replicas <= 5\"\n{validation}"),
            )
        )
    };
    let message = |validation: &str| {
        let report = check(&set(&policy(validation)), &deployment("big", 10));
        report.rows[0].message.clone()
    };
    assert_eq!(message("      message: '  too many  '\n"), "too many");
    assert_eq!(
        message(
            "      message: too many\n      messageExpression: \"'replicas: ' + string(object.spec.replicas)\"\n"
        ),
        "replicas: 10"
    );
    // A messageExpression that errs, is empty or spans lines falls back to message.
    assert_eq!(
        message(
            "      message: too many\n      messageExpression: \"string(object.spec.missing)\"\n"
        ),
        "too many"
    );
    assert_eq!(
        message("      message: too many\n      messageExpression: \"'  '\"\n"),
        "too many"
    );
    assert_eq!(
        message("      message: too many\n      messageExpression: \"'a\\\\nb'\"\n"),
        "too many"
    );
    assert_eq!(
        message("      messageExpression: \"string(object.spec.missing)\"\n"),
        "failed expression: object.spec.replicas <= 5"
    );
    // An expression the checker types dyn is not a string: a load error, as in the API server.
    let e = load_error(&policy(
        "      messageExpression: \"object.spec.missing\"\n",
    ));
    assert!(e.contains("must evaluate to string but got dyn"), "{e}");
    let e = load_error(&policy("      message: \"two\\nlines\"\n"));
    assert!(
        e.contains("spec.validations[0].message: message must not contain line breaks"),
        "{e}"
    );
    let e = load_error(&policy("      messageExpression: \"1\"\n"));
    assert!(
        e.contains("spec.validations[0].messageExpression: must evaluate to string but got int"),
        "{e}"
    );
    let e = load_error(&policy("      reason: Teapot\n"));
    assert!(
        e.contains("spec.validations[0].reason: Unsupported value: \"Teapot\""),
        "{e}"
    );
}

#[test]
fn errors_follow_the_failure_policy() {
    let failing =
        REPLICAS_POLICY.replace("object.spec.replicas <= 5", "object.spec.paused == false");
    let report = check(&set(&format!("{failing}---{BINDING}")), &deployment("d", 1));
    assert_eq!(report.rows.len(), 1);
    assert!(
        report.rows[0].message
            == "expression 'object.spec.paused == false' resulted in error: no such key: paused",
        "{}",
        report.rows[0].message
    );
    let ignoring = failing.replace("failurePolicy: Fail", "failurePolicy: Ignore");
    let report = check(
        &set(&format!("{ignoring}---{BINDING}")),
        &deployment("d", 1),
    );
    assert!(report.rows.is_empty());
    // Under Fail, an error still goes where the binding's actions send it.
    let warned = BINDING.replace("[Deny]", "[Warn]");
    let report = check(&set(&format!("{failing}---{warned}")), &deployment("d", 1));
    assert_eq!(report.rows[0].mode, "warn");
    let e = load_error(&REPLICAS_POLICY.replace("failurePolicy: Fail", "failurePolicy: Sometimes"));
    assert!(
        e.contains("spec.failurePolicy: Unsupported value: \"Sometimes\""),
        "{e}"
    );
}

#[test]
fn any_kind_is_judged_and_rules_select_it() {
    // kubernetes/website (no-LoadBalancer), in the style of the VAP docs' examples.
    let yaml = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: no-load-balancers}
spec:
  matchConstraints:
    resourceRules:
      - {apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [services]}
  validations:
    - expression: "object.spec.type != 'LoadBalancer'"
      message: Services of type LoadBalancer are not allowed
      reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: no-load-balancers}
spec: {policyName: no-load-balancers, validationActions: [Deny]}
"#;
    let manifests = r#"
apiVersion: v1
kind: Service
metadata: {name: public, namespace: web}
spec: {type: LoadBalancer, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: internal}
spec: {type: ClusterIP, ports: [{port: 80}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
"#;
    let report = check(&set(yaml), manifests);
    assert_eq!(report.judged, 2, "the two Services");
    assert_eq!(report.skipped, 1, "the ConfigMap");
    assert_eq!(report.rows.len(), 1);
    let row = &report.rows[0];
    assert_eq!(
        (row.kind.as_str(), row.namespace.as_str(), row.name.as_str()),
        ("Service", "web", "public")
    );
    assert_eq!(row.message, "Services of type LoadBalancer are not allowed");
}

#[test]
fn portier_s_own_cel_policy() {
    // The policy of issue 15.
    let yaml = r#"
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: images-from-our-registry}
spec:
  check: cel
  mode: enforce
  match: {kinds: [Pod, Deployment, StatefulSet, DaemonSet, Job, CronJob]}
  params:
    variables:
      - name: containers
        expression: "object.spec.containers + object.spec.?initContainers.orValue([])"
    validations:
      - expression: "variables.containers.all(c, c.image.startsWith('registry.acme.example/'))"
        messageExpression: "'image ' + variables.containers.filter(c, !c.image.startsWith('registry.acme.example/'))[0].image + ' is not from registry.acme.example'"
        reason: Forbidden
"#;
    let s = set(yaml);
    let pods = r#"
apiVersion: v1
kind: Pod
metadata: {name: bad}
spec:
  containers: [{name: a, image: registry.acme.example/a:1}]
  initContainers: [{name: i, image: docker.io/library/busybox:1}]
---
apiVersion: v1
kind: Pod
metadata: {name: good}
spec:
  containers: [{name: a, image: registry.acme.example/a:1}]
---
apiVersion: v1
kind: Service
metadata: {name: not-matched}
spec: {type: LoadBalancer}
"#;
    let report = check(&s, pods);
    assert_eq!(
        rows(&report),
        vec![(
            "Pod/bad".to_owned(),
            "images-from-our-registry".to_owned(),
            "enforce".to_owned(),
            "image docker.io/library/busybox:1 is not from registry.acme.example".to_owned()
        )]
    );
    assert_eq!(
        report.skipped, 1,
        "kinds: [Pod, ...] leaves the Service out"
    );
    // A Deployment's object is the whole Deployment: this policy reads object.spec.containers,
    // which a Deployment does not have, so it errs and, under failurePolicy Fail, fails.
    let report = check(&s, &deployment("web", 1));
    assert!(
        report.rows[0].message.contains("no such key: containers"),
        "{}",
        report.rows[0].message
    );

    let e = load_error(&yaml.replace("c.image.startsWith", "c.image.startWith"));
    assert!(
        e.starts_with("policies.yaml document 1: Policy images-from-our-registry: spec.params.validations[0].expression: line 1 column"),
        "{e}"
    );
    assert!(e.contains("undeclared reference to 'startWith'"), "{e}");
    let e = load_error(&yaml.replace("match: {kinds", "match: {images: ['*'], kinds"));
    assert!(
        e.contains("spec.match.images: does not apply to cel policies"),
        "{e}"
    );
    let e = load_error(&yaml.replace(
        "reason: Forbidden",
        "reason: Forbidden\n        colour: red",
    ));
    assert!(
        e.contains("spec.params.validations[0].colour: unknown field `colour`"),
        "{e}"
    );
}

#[test]
fn audit_annotations_and_match_conditions() {
    let yaml = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: replica-audit}
spec:
  matchConstraints:
    resourceRules: [{apiGroups: [apps], apiVersions: [v1], operations: ["*"], resources: [deployments]}]
  matchConditions:
    - name: not-the-system
      expression: "!object.metadata.name.startsWith('system-')"
  validations:
    - expression: "object.spec.replicas < 50"
  auditAnnotations:
    - key: high-replica-count
      valueExpression: "'Deployment spec.replicas set to ' + string(object.spec.replicas)"
    - key: never
      valueExpression: "null"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: replica-audit}
spec: {policyName: replica-audit, validationActions: [Audit]}
"#;
    let s = set(yaml);
    let object = crate::cel::Json::parse(
        r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "a"}, "spec": {"replicas": 7}}"#,
    )
    .unwrap();
    let request = crate::cel::admission::synthetic_create(object, "default").unwrap();
    let admission = crate::cel::Admission::from_request(request.node());
    let mut judged = crate::cel::Judged::default();
    crate::cel::judge(&s, &admission, &mut judged);
    assert_eq!(judged.judged, 1);
    assert!(judged.violations.is_empty());
    assert_eq!(
        judged.annotations,
        vec![(
            "replica-audit/high-replica-count".to_owned(),
            "Deployment spec.replicas set to 7".to_owned()
        )]
    );
    // The match condition leaves system- deployments alone.
    let report = check(&s, &deployment("system-big", 100));
    assert!(report.rows.is_empty());
    let report = check(&s, &deployment("big", 100));
    assert_eq!(report.rows[0].mode, "audit");

    let e = load_error(&yaml.replace("key: high-replica-count", "key: bad/key"));
    assert!(e.contains("spec.auditAnnotations[0].key"), "{e}");
    // cel-go does not assign null to string, so a conditional annotation does not check (and
    // one typed dyn is not a string or null), in the API server as here.
    let e = load_error(&yaml.replace(
        "valueExpression: \"null\"",
        "valueExpression: \"object.spec.replicas > 5 ? 'big' : null\"",
    ));
    assert!(
        e.contains("found no matching overload for '_?_:_' applied to '(bool, string, null_type)'"),
        "{e}"
    );
    let e = load_error(&yaml.replace("valueExpression: \"null\"", "valueExpression: \"1\""));
    assert!(e.contains("spec.auditAnnotations[1].valueExpression: must evaluate to string or null_type but got int"), "{e}");
    let e = load_error(&yaml.replace("name: not-the-system", "name: \"not the system\""));
    assert!(e.contains("spec.matchConditions[0].name"), "{e}");
    let e = load_error(&yaml.replace(
        "!object.metadata.name.startsWith('system-')",
        "object.metadata.name",
    ));
    assert!(
        e.contains("spec.matchConditions[0].expression: must evaluate to bool but got dyn"),
        "{e}"
    );
}

const PARAM_POLICY: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: replica-limit}
spec:
  paramKind: {apiVersion: v1, kind: ConfigMap}
  matchConstraints:
    resourceRules: [{apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments]}]
  validations:
    - expression: "object.spec.replicas <= int(params.data.maxReplicas)"
      messageExpression: "'at most ' + params.data.maxReplicas + ' replicas'"
---
apiVersion: v1
kind: ConfigMap
metadata: {name: limits, namespace: shop, labels: {tier: small}}
data: {maxReplicas: "3"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: limits, namespace: other}
data: {maxReplicas: "30"}
"#;

fn param_binding(param_ref: &str) -> String {
    format!(
        "---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {{name: replica-limit}}\nspec:\n  policyName: replica-limit\n  validationActions: [Deny]\n  paramRef: {param_ref}\n"
    )
}

#[test]
fn params_come_from_objects_beside_the_policy() {
    // By name, in the request's namespace (the ConfigMap kind is namespaced).
    let s = set(&format!(
        "{PARAM_POLICY}{}",
        param_binding("{name: limits, parameterNotFoundAction: Deny}")
    ));
    let report = check(&s, &deployment("big", 5));
    assert_eq!(report.rows[0].message, "at most 3 replicas");
    // In a namespace of its own.
    let s = set(&format!(
        "{PARAM_POLICY}{}",
        param_binding("{name: limits, namespace: other, parameterNotFoundAction: Deny}")
    ));
    assert!(check(&s, &deployment("big", 5)).rows.is_empty());
    // By selector.
    let s = set(&format!(
        "{PARAM_POLICY}{}",
        param_binding("{selector: {matchLabels: {tier: small}}, parameterNotFoundAction: Allow}")
    ));
    assert_eq!(check(&s, &deployment("big", 5)).rows.len(), 1);
    // Not found: Allow lets it through, Deny denies.
    let s = set(&format!(
        "{PARAM_POLICY}{}",
        param_binding("{name: nope, parameterNotFoundAction: Allow}")
    ));
    assert!(check(&s, &deployment("big", 5)).rows.is_empty());
    let s = set(&format!(
        "{PARAM_POLICY}{}",
        param_binding("{name: nope, parameterNotFoundAction: Deny}")
    ));
    let report = check(&s, &deployment("big", 5));
    assert!(
        report.rows[0].message
            == "failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction",
        "{}",
        report.rows[0].message
    );
    // paramKind set, no paramRef: params is null.
    let s = set(&format!(
        "{}---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {{name: rl}}\nspec: {{policyName: replica-limit, validationActions: [Deny]}}\n",
        PARAM_POLICY
    ));
    let report = check(&s, &deployment("big", 5));
    assert!(
        report.rows[0].message.contains("resulted in error"),
        "{}",
        report.rows[0].message
    );

    let e = load_error(&format!(
        "{PARAM_POLICY}{}",
        param_binding("{name: limits}")
    ));
    assert!(
        e.contains("spec.paramRef.parameterNotFoundAction: Required value"),
        "{e}"
    );
    let e = load_error(&format!(
        "{PARAM_POLICY}{}",
        param_binding("{name: limits, selector: {}, parameterNotFoundAction: Allow}")
    ));
    assert!(e.contains("spec.paramRef: one of name or selector"), "{e}");
    // Without paramKind, params is not declared.
    let e = load_error(&format!(
        "{}---{BINDING}",
        REPLICAS_POLICY.replace("object.spec.replicas <= 5", "params.x == 1")
    ));
    assert!(e.contains("undeclared reference to 'params'"), "{e}");
}

#[test]
fn unknown_documents_and_fields_are_load_errors() {
    let e = load_error("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n");
    assert!(
        e.contains("ConfigMap x: kind: a v1 ConfigMap is not a policy"),
        "{e}"
    );
    let e = load_error(
        &REPLICAS_POLICY.replace("failurePolicy: Fail", "failurePolicy: Fail\n  colour: red"),
    );
    assert!(
        e.contains(
            "ValidatingAdmissionPolicy demo-policy.example.com: spec.colour: unknown field `colour`"
        ),
        "{e}"
    );
    let e = load_error(&REPLICAS_POLICY.replace(
        "admissionregistration.k8s.io/v1",
        "admissionregistration.k8s.io/v1beta1",
    ));
    assert!(
        e.contains("apiVersion: \"admissionregistration.k8s.io/v1beta1\" is not supported"),
        "{e}"
    );
    let e = load_error(&REPLICAS_POLICY.replace(
        "kind: ValidatingAdmissionPolicy",
        "kind: MutatingAdmissionPolicy",
    ));
    assert!(
        e.contains("kind: \"MutatingAdmissionPolicy\" is not supported"),
        "{e}"
    );
    let e = load_error(&format!(
        "{REPLICAS_POLICY}---{}",
        BINDING.replace("policyName: demo-policy.example.com", "policyName: other")
    ));
    assert!(
        e.contains("spec.policyName: no ValidatingAdmissionPolicy named \"other\""),
        "{e}"
    );
    let e = load_error(&REPLICAS_POLICY.replace(
        "operations: [CREATE, UPDATE]",
        "operations: [CREATE, PATCH]",
    ));
    assert!(
        e.contains(
            "spec.matchConstraints.resourceRules[0].operations[1]: Unsupported value: \"PATCH\""
        ),
        "{e}"
    );
    let e = load_error(&REPLICAS_POLICY.replace(
        "    resourceRules:",
        "    objectSelector: {matchExpressions: [{key: a, operator: Bogus}]}\n    resourceRules:",
    ));
    assert!(
        e.contains(
            "spec.matchConstraints.objectSelector.matchExpressions[0].operator: \"Bogus\" is not a valid label selector operator"
        ),
        "{e}"
    );
    // The empty selector, the API server's default, is fine.
    set(&REPLICAS_POLICY.replace(
        "    resourceRules:",
        "    namespaceSelector: {}\n    objectSelector: {}\n    resourceRules:",
    ));
    let e = load_error(&REPLICAS_POLICY.replace(
        "    resourceRules:",
        "    matchPolicy: Fuzzy\n    resourceRules:",
    ));
    assert!(
        e.contains("spec.matchConstraints.matchPolicy: Unsupported value: \"Fuzzy\""),
        "{e}"
    );
    let e =
        load_error(&REPLICAS_POLICY.replace("object.spec.replicas <= 5", "object.spec.replicas"));
    assert!(
        e.contains("spec.validations[0].expression: must evaluate to bool but got dyn"),
        "{e}"
    );
    let e = load_error(&format!("{REPLICAS_POLICY}---{}---{}", BINDING, BINDING));
    assert!(
        e.contains(
            "a ValidatingAdmissionPolicyBinding named \"demo-binding-test.example.com\" is already"
        ),
        "{e}"
    );
    let e = load_error(&REPLICAS_POLICY.replace(
        "  validations:\n    - expression: \"object.spec.replicas <= 5\"\n",
        "",
    ));
    assert!(e.contains("spec.validations: Required value"), "{e}");
    let e =
        load_error(&REPLICAS_POLICY.replace("name: demo-policy.example.com", "name: Demo_Policy"));
    assert!(e.contains("metadata.name"), "{e}");
}

#[test]
fn object_selectors_read_the_object_s_labels() {
    // As the Kubescape library's test bindings select their test objects.
    let binding = BINDING.replace(
        "validationActions: [Deny]",
        "validationActions: [Deny]\n  matchResources: {objectSelector: {matchLabels: {admission-policy-test: abc}}}",
    );
    let s = set(&format!("{REPLICAS_POLICY}---{binding}"));
    assert!(
        check(&s, &deployment("big", 10)).rows.is_empty(),
        "not labelled: not selected"
    );
    let labelled = deployment("big", 10).replace(
        "metadata: {name: big, namespace: shop}",
        "metadata: {name: big, namespace: shop, labels: {admission-policy-test: abc}}",
    );
    assert_eq!(check(&s, &labelled).rows.len(), 1);
}

#[test]
fn variables_are_typed_and_ordered() {
    let yaml = |vars: &str, expr: &str| {
        format!(
            "{}---{BINDING}",
            REPLICAS_POLICY
                .replace(
                    "  validations:",
                    &format!("  variables:\n{vars}  validations:")
                )
                .replace("object.spec.replicas <= 5", expr)
        )
    };
    let s = set(&yaml(
        "    - {name: isBig, expression: \"object.spec.replicas > 5\"}\n    - {name: verdict, expression: \"!variables.isBig\"}\n",
        "variables.verdict",
    ));
    assert_eq!(check(&s, &deployment("big", 10)).rows.len(), 1);
    assert!(check(&s, &deployment("small", 1)).rows.is_empty());
    let e = load_error(&yaml(
        "    - {name: first, expression: \"variables.second\"}\n    - {name: second, expression: \"true\"}\n",
        "variables.first",
    ));
    assert!(
        e.contains("spec.variables[0].expression: line 1 column"),
        "{e}"
    );
    let e = load_error(&yaml("    - {name: a-b, expression: \"true\"}\n", "true"));
    assert!(
        e.contains("spec.variables[0].name: \"a-b\" is not a valid CEL identifier"),
        "{e}"
    );
    let e = load_error(&yaml(
        "    - {name: a, expression: \"1\"}\n    - {name: a, expression: \"2\"}\n",
        "true",
    ));
    assert!(e.contains("spec.variables[1].name: Duplicate value"), "{e}");
}
