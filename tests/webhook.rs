//! The webhook end to end: real server, real TLS, real HTTPS client.

mod common;

use common::{
    TestServer, deployment, good_container, pod, policy, post_with, review, review_bytes, review_op,
};
use serde_json::{Value, json};

/// All four checks in enforce mode.
fn enforce_all() -> Vec<(&'static str, String)> {
    vec![
        (
            "privileged.yaml",
            policy("no-privileged", "privileged", "enforce", "{}"),
        ),
        (
            "host.yaml",
            policy(
                "no-host-namespaces",
                "host-namespaces",
                "enforce",
                "{hostPorts: {}}",
            ),
        ),
        (
            "non-root.yaml",
            policy("non-root", "run-as-non-root", "enforce", "{}"),
        ),
        (
            "resources.yaml",
            policy(
                "resources",
                "resource-limits",
                "enforce",
                "{max: {limits: {memory: 1Gi}}}",
            ),
        ),
    ]
}

async fn start(files: &[(&str, String)]) -> TestServer {
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    TestServer::start(&files).await
}

fn message(response: &Value) -> &str {
    response["status"]["message"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_compliant_pod_is_allowed() {
    let server = start(&enforce_all()).await;
    let object = pod(
        "shop",
        vec![good_container("app"), good_container("sidecar")],
    );
    let response = server.validate(object).await;
    assert_eq!(response["uid"], "2b752327-a529-4ffd-b2e2-478455e80a0d");
    assert_eq!(response["allowed"], true, "{response}");
    assert!(response.get("status").is_none());
    assert!(response.get("warnings").is_none());
    server.stop().await;
}

#[tokio::test]
async fn each_check_denies_and_names_the_field() {
    let server = start(&enforce_all()).await;
    type Breaker = fn(&mut Value);
    let cases: [(&str, Breaker, &str); 6] = [
        (
            "no-privileged/privileged",
            |p| p["spec"]["containers"][0]["securityContext"]["privileged"] = json!(true),
            "spec.containers[0].securityContext.privileged",
        ),
        (
            "no-host-namespaces/host-namespaces",
            |p| p["spec"]["hostPID"] = json!(true),
            "spec.hostPID",
        ),
        (
            "no-host-namespaces/host-namespaces",
            |p| p["spec"]["containers"][0]["ports"][0]["hostPort"] = json!(8080),
            "spec.containers[0].ports[0].hostPort",
        ),
        (
            "non-root/run-as-non-root",
            |p| p["spec"]["containers"][0]["securityContext"]["runAsUser"] = json!(0),
            "spec.containers[0].securityContext.runAsUser",
        ),
        (
            "resources/resource-limits",
            |p| {
                p["spec"]["containers"][0]["resources"]["limits"]
                    .as_object_mut()
                    .unwrap()
                    .remove("cpu");
            },
            "spec.containers[0].resources.limits.cpu",
        ),
        (
            "resources/resource-limits",
            |p| p["spec"]["containers"][0]["resources"]["limits"]["memory"] = json!("2Gi"),
            "spec.containers[0].resources.limits.memory",
        ),
    ];
    for (expected_policy, break_it, field) in cases {
        let mut object = pod("shop", vec![good_container("app")]);
        break_it(&mut object);
        let response = server.validate(object).await;
        assert_eq!(response["allowed"], false, "{response}");
        assert_eq!(response["status"]["code"], 403);
        let msg = message(&response);
        assert!(
            msg.starts_with(&format!("{expected_policy}: ")) && msg.contains(field),
            "expected {expected_policy} naming {field}, got: {msg}"
        );
        assert!(msg.contains(" — "), "message says how to fix it: {msg}");
    }
    server.stop().await;
}

#[tokio::test]
async fn several_violations_are_all_listed() {
    let server = start(&enforce_all()).await;
    let mut object = pod("shop", vec![good_container("app")]);
    object["spec"]["hostNetwork"] = json!(true);
    object["spec"]["initContainers"] =
        json!([{"name": "init", "securityContext": {"privileged": true}}]);
    let response = server.validate(object).await;
    let msg = message(&response);
    assert!(
        msg.contains("init container \"init\" spec.initContainers[0].securityContext.privileged"),
        "{msg}"
    );
    assert!(msg.contains("pod spec.hostNetwork"), "{msg}");
    assert!(
        msg.contains("spec.initContainers[0].resources.requests.cpu"),
        "{msg}"
    );
    assert!(msg.split("; ").count() >= 4, "{msg}");
    server.stop().await;
}

#[tokio::test]
async fn a_deployment_whose_template_violates_is_denied() {
    let server = start(&enforce_all()).await;
    let mut spec = json!({"containers": [good_container("web")]});
    spec["containers"][0]["securityContext"]["privileged"] = json!(true);
    let response = server.validate(deployment("shop", spec)).await;
    assert_eq!(response["allowed"], false);
    assert!(
        message(&response).contains("spec.template.spec.containers[0].securityContext.privileged"),
        "{response}"
    );

    let good = server
        .validate(deployment(
            "shop",
            json!({"containers": [good_container("web")]}),
        ))
        .await;
    assert_eq!(good["allowed"], true, "{good}");
    server.stop().await;
}

#[tokio::test]
async fn cronjob_and_ephemeral_containers_are_judged() {
    let server = start(&enforce_all()).await;
    let cronjob = json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "shop"},
        "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure",
            "containers": [good_container("job")],
            "hostIPC": true}}}}}
    });
    let response = server.validate(cronjob).await;
    assert!(
        message(&response).contains("spec.jobTemplate.spec.template.spec.hostIPC"),
        "{response}"
    );

    // kubectl debug adds an ephemeral container through pods/ephemeralcontainers.
    let mut object = pod("shop", vec![good_container("app")]);
    object["spec"]["ephemeralContainers"] =
        json!([{"name": "debugger", "image": "busybox", "securityContext": {"privileged": true}}]);
    let mut body = review_op(&object, "UPDATE");
    body["request"]["subResource"] = json!("ephemeralcontainers");
    let (status, answer) = server
        .post("/validate", serde_json::to_vec(&body).unwrap())
        .await;
    assert_eq!(status, 200);
    let msg = message(&answer["response"]);
    assert!(msg.contains("ephemeral container \"debugger\" spec.ephemeralContainers[0].securityContext.privileged"), "{msg}");
    // Ephemeral containers cannot carry resources, so resource-limits leaves them alone.
    assert!(!msg.contains("ephemeralContainers[0].resources"), "{msg}");
    server.stop().await;
}

#[tokio::test]
async fn warn_mode_allows_with_warnings_and_audit_mode_with_annotations() {
    let server = start(&[
        (
            "warn.yaml",
            policy("warn-privileged", "privileged", "warn", "{}"),
        ),
        (
            "audit.yaml",
            policy("audit-non-root", "run-as-non-root", "audit", "{}"),
        ),
    ])
    .await;
    let mut object = pod("shop", vec![json!({"name": "app", "image": "nginx"})]);
    object["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    let response = server.validate(object).await;
    assert_eq!(response["allowed"], true, "{response}");
    let warnings = response["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1);
    let warning = warnings[0].as_str().unwrap();
    assert!(
        warning.starts_with("warn-privileged/privileged: container \"app\""),
        "{warning}"
    );
    assert!(warning.chars().count() <= 120, "{warning}");
    let audit = response["auditAnnotations"]["audit-non-root"]
        .as_str()
        .unwrap();
    assert!(
        audit.contains("spec.containers[0].securityContext.runAsNonRoot"),
        "{audit}"
    );
    assert!(response.get("status").is_none());

    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics
            .contains(r#"portier_policy_decisions_total{mode="warn",policy="warn-privileged"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"portier_policy_decisions_total{mode="audit",policy="audit-non-root"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"portier_admission_requests_total{endpoint="validate",outcome="allowed"} 1"#
        ),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn unjudged_kinds_and_operations_are_allowed() {
    let server = start(&enforce_all()).await;
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "shop"}, "data": {"a": "b"}});
    assert_eq!(server.validate(config_map).await["allowed"], true);

    let mut bad = pod("shop", vec![good_container("app")]);
    bad["spec"]["hostNetwork"] = json!(true);
    let delete = review_op(&bad, "DELETE");
    let (_, answer) = server
        .post("/validate", serde_json::to_vec(&delete).unwrap())
        .await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");

    // The mutating endpoint answers too, and never denies.
    let (status, answer) = server.post("/mutate", review_bytes(&bad)).await;
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["allowed"], true);
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    server.stop().await;
}

#[tokio::test]
async fn malformed_json_is_a_400_and_the_server_keeps_serving() {
    let server = start(&enforce_all()).await;
    for body in [
        &b"{\"apiVersion\": "[..],
        b"not json at all",
        b"",
        b"\x00\x01\x02",
    ] {
        let (status, answer) = server.post("/validate", body.to_vec()).await;
        assert_eq!(status, 400);
        assert_eq!(answer["kind"], "Status");
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains("not valid JSON"),
            "{answer}"
        );
    }
    // Valid JSON of the wrong shape with a uid: fails closed with the uid echoed.
    let mut wrong = review(&pod("shop", vec![]));
    wrong["request"]["object"]["spec"]["containers"] = json!("nope");
    let (status, answer) = server
        .post("/validate", serde_json::to_vec(&wrong).unwrap())
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(
        answer["response"]["uid"],
        "2b752327-a529-4ffd-b2e2-478455e80a0d"
    );
    assert!(
        message(&answer["response"]).contains("spec.containers"),
        "{answer}"
    );

    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
    let ok = server
        .validate(pod("shop", vec![good_container("app")]))
        .await;
    assert_eq!(ok["allowed"], true);
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains(
            r#"portier_admission_requests_total{endpoint="validate",outcome="invalid"} 5"#
        ),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_body_over_3_mib_is_refused_with_413() {
    let server = start(&enforce_all()).await;
    // Valid JSON padded past the limit, as a large object with a huge annotation would be.
    let mut object = pod("shop", vec![good_container("app")]);
    object["metadata"]["annotations"] = json!({"big": "x".repeat(3 * 1024 * 1024)});
    for client in [server.pki.client(false), server.pki.client(true)] {
        let (status, answer) =
            post_with(&client, &server.base, "/validate", review_bytes(&object)).await;
        assert_eq!(status, 413, "{answer}");
        assert_eq!(answer["reason"], "RequestEntityTooLarge");
    }
    // Just under the limit is fine.
    object["metadata"]["annotations"] = json!({"big": "x".repeat(3 * 1024 * 1024 - 4096)});
    let response = server.validate(object).await;
    assert_eq!(response["allowed"], true);
    server.stop().await;
}

#[tokio::test]
async fn health_readiness_metrics_and_unknown_routes() {
    let server = start(&enforce_all()).await;
    assert_eq!(server.get("/healthz").await, (200, "ok".to_string()));
    assert_eq!(server.get("/readyz").await, (200, "ok".to_string()));
    let (status, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("portier_policies_loaded 4"), "{metrics}");
    assert!(
        metrics.contains(r#"portier_policy_reloads_total{result="ok"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("portier_admission_duration_seconds_bucket"),
        "{metrics}"
    );
    let (status, body) = server.get_webhook("/nowhere").await;
    assert_eq!(status, 404);
    assert!(body.contains("\"kind\":\"Status\""), "{body}");
    let (status, body) = server.get_webhook("/validate").await;
    assert_eq!(status, 405);
    assert!(body.contains("MethodNotAllowed"), "{body}");
    // The webhook port serves reviews only; operations live on their own plain-HTTP port.
    for path in ["/metrics", "/healthz", "/readyz"] {
        let (status, body) = server.get_webhook(path).await;
        assert_eq!(status, 404, "{path} on the webhook port: {body}");
    }
    let (status, _) = server.get("/validate").await;
    assert_eq!(status, 404, "the ops port serves no reviews");
    server.stop().await;
}

#[tokio::test]
async fn http1_keep_alive_and_http2_both_serve_reviews() {
    let server = start(&enforce_all()).await;
    for (http2, version) in [
        (false, reqwest::Version::HTTP_11),
        (true, reqwest::Version::HTTP_2),
    ] {
        let client = server.pki.client(http2);
        for _ in 0..5 {
            let r = client
                .post(format!("{}/validate", server.base))
                .body(review_bytes(&pod("shop", vec![good_container("app")])))
                .send()
                .await
                .unwrap();
            assert_eq!(r.version(), version);
            let answer: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            assert_eq!(answer["response"]["allowed"], true);
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_is_refused() {
    let server = start(&enforce_all()).await;
    let stranger = common::TestPki::new().client(true);
    let result = stranger
        .get(format!("{}/healthz", server.base))
        .send()
        .await;
    assert!(
        result.is_err(),
        "TLS handshake must fail against another CA"
    );
    server.stop().await;
}
