//! CEL policies and ValidatingAdmissionPolicies at `/validate`, over HTTPS: they deny, warn
//! and audit Pods and Deployments with the API server's messages and reasons, hot-reload with
//! the policy directory, and a broken expression never replaces the set in force.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, deployment, good_container, pod};
use serde_json::{Value, json};

const NO_LATEST: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: no-latest-tag}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - {apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [pods]}
      - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}
  variables:
    - name: containers
      expression: "object.kind == 'Pod' ? object.spec.containers : object.spec.template.spec.containers"
  validations:
    - expression: "variables.containers.all(c, !c.image.endsWith(':latest'))"
      messageExpression: "'image ' + variables.containers.filter(c, c.image.endsWith(':latest'))[0].image + ' uses the latest tag'"
      reason: Invalid
  auditAnnotations:
    - key: images
      valueExpression: "variables.containers.map(c, c.image).join(',')"
"#;

fn binding(actions: &str) -> String {
    format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {{name: no-latest-tag-binding}}\nspec:\n  policyName: no-latest-tag\n  validationActions: {actions}\n"
    )
}

fn latest_pod() -> Value {
    let mut container = good_container("app");
    container["image"] = json!("registry.example.com/shop/app:latest");
    pod("shop", vec![container])
}

#[tokio::test]
async fn a_binding_denies_pods_and_deployments_as_the_api_server_words_it() {
    let server = TestServer::start(&[
        ("vap.yaml", NO_LATEST),
        ("binding.yaml", &binding("[Deny, Audit]")),
    ])
    .await;
    let response = server.validate(latest_pod()).await;
    assert_eq!(response["allowed"], false, "{response}");
    assert_eq!(
        response["status"]["message"],
        "pods \"web\" is forbidden: ValidatingAdmissionPolicy 'no-latest-tag' with binding 'no-latest-tag-binding' denied request: image registry.example.com/shop/app:latest uses the latest tag"
    );
    assert_eq!(response["status"]["reason"], "Invalid");
    assert_eq!(response["status"]["code"], 422);
    // Deny+Audit also records the failure; the policy's audit annotation is keyed
    // <policy>.<key> (a webhook's keys may not hold the API server's '/').
    let annotations = &response["auditAnnotations"];
    assert!(
        annotations["no-latest-tag-binding"]
            .as_str()
            .is_some_and(|m| m.contains("uses the latest tag")),
        "{response}"
    );
    assert_eq!(
        annotations["no-latest-tag.images"],
        "registry.example.com/shop/app:latest"
    );

    let mut spec = json!({"containers": [good_container("app")]});
    spec["containers"][0]["image"] = json!("nginx:latest");
    let response = server.validate(deployment("shop", spec)).await;
    assert_eq!(response["allowed"], false, "{response}");
    assert!(
        response["status"]["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("image nginx:latest uses the latest tag")),
        "{response}"
    );

    let response = server
        .validate(pod("shop", vec![good_container("app")]))
        .await;
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(
        response["auditAnnotations"]["no-latest-tag.images"],
        "registry.example.com/shop/app:1.0"
    );
    server.stop().await;
}

#[tokio::test]
async fn warn_and_audit_bindings_allow() {
    let server = TestServer::start(&[
        ("vap.yaml", NO_LATEST),
        ("binding.yaml", &binding("[Warn]")),
    ])
    .await;
    let response = server.validate(latest_pod()).await;
    assert_eq!(response["allowed"], true, "{response}");
    let warning = response["warnings"][0].as_str().unwrap_or("");
    assert!(
        warning.starts_with("Validation failed for ValidatingAdmissionPolicy 'no-latest-tag' with binding 'no-latest-tag-binding': image"),
        "{response}"
    );
    server.stop().await;

    let server = TestServer::start(&[
        ("vap.yaml", NO_LATEST),
        ("binding.yaml", &binding("[Audit]")),
    ])
    .await;
    let response = server.validate(latest_pod()).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert!(response.get("warnings").is_none(), "{response}");
    assert!(
        response["auditAnnotations"]["no-latest-tag-binding"]
            .as_str()
            .is_some_and(|m| m.contains("uses the latest tag")),
        "{response}"
    );
    server.stop().await;
}

#[tokio::test]
async fn portier_cel_policies_judge_alongside_the_built_in_checks() {
    let cel = r#"
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: team-label}
spec:
  check: cel
  mode: enforce
  match: {kinds: [Pod]}
  params:
    validations:
      - expression: "has(object.metadata.labels) && 'team' in object.metadata.labels"
        message: every pod needs a team label
"#;
    let privileged = common::policy("no-privileged", "privileged", "enforce", "{}");
    let server = TestServer::start(&[("cel.yaml", cel), ("builtin.yaml", &privileged)]).await;
    let mut p = pod("shop", vec![good_container("app")]);
    p["spec"]["containers"][0]["securityContext"]["privileged"] = json!(true);
    let response = server.validate(p).await;
    let message = response["status"]["message"].as_str().unwrap_or("");
    // Both, in policy order (files in name order), with the first denial's reason.
    assert!(
        message.starts_with("no-privileged/privileged: container \"app\""),
        "{message}"
    );
    assert!(
        message.ends_with("; team-label/cel: every pod needs a team label"),
        "{message}"
    );
    assert_eq!(response["status"]["reason"], "Forbidden");
    assert_eq!(response["status"]["code"], 403);
    server.stop().await;
}

/// Functional deadline for a reload to show; the reload's speed is not asserted.
const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vap_file_hot_reloads_and_a_broken_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("vap.yaml"), NO_LATEST).unwrap();
    std::fs::write(dir.path().join("binding.yaml"), binding("[Warn]")).unwrap();
    let server = TestServer::start_in(dir, Duration::from_secs(60)).await;
    assert_eq!(server.validate(latest_pod()).await["allowed"], true);

    common::replace_file(
        &server.path().join("binding.yaml"),
        &binding("[Deny]"),
        0o644,
    );
    let started = Instant::now();
    while server.validate(latest_pod()).await["allowed"] != false {
        assert!(
            started.elapsed() < DEADLINE,
            "the new binding never took effect"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A broken expression: the file is refused, the set in force stays.
    let broken = NO_LATEST.replace("c.image.endsWith(':latest')", "c.image.endsWith(:latest)");
    let failed_before = reloads_failed(&server).await;
    common::replace_file(&server.path().join("vap.yaml"), &broken, 0o644);
    let started = Instant::now();
    while reloads_failed(&server).await == failed_before {
        assert!(
            started.elapsed() < DEADLINE,
            "the broken file was never read"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.validate(latest_pod()).await["allowed"], false);
    assert_eq!(
        server
            .validate(pod("shop", vec![good_container("app")]))
            .await["allowed"],
        true
    );
    server.stop().await;
}

async fn reloads_failed(server: &TestServer) -> u64 {
    let (_, metrics) = server.get("/metrics").await;
    metrics
        .lines()
        .find(|l| l.starts_with("portier_policy_reloads_total{result=\"failed\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}
