use super::encode::truncate_chars;
use super::*;
use serde_json::{Value, json};

const SET: &str = r#"
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: no-privileged}
spec: {check: privileged, mode: enforce}
---
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: non-root}
spec: {check: run-as-non-root, mode: warn}
---
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: limits}
spec: {check: resource-limits, mode: audit, params: {require: {limits: [memory]}}}
"#;

fn set() -> PolicySet {
    PolicySet::from_yaml("set.yaml", SET).unwrap()
}

fn review_of(kind: (&str, &str), operation: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": kind.0, "version": "v1", "kind": kind.1},
            "resource": {"group": kind.0, "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": operation,
            "userInfo": {"username": "alice"},
            "object": object,
            "oldObject": null,
            "dryRun": false
        }
    }))
    .unwrap()
}

fn response(answer: &Answer) -> Value {
    let v: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    v["response"].clone()
}

fn pod(containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}})
}

#[test]
fn compliant_pod_is_allowed_with_nothing_else() {
    let body = review_of(
        ("", "Pod"),
        "CREATE",
        pod(
            json!([{"name": "a", "securityContext": {"runAsNonRoot": true},
            "resources": {"limits": {"memory": "1Gi"}}}]),
        ),
    );
    let answer = review(&body, &set(), Endpoint::Validate);
    assert_eq!(answer.http_status, 200);
    assert_eq!(answer.outcome, Outcome::Allowed);
    assert_eq!(
        response(&answer),
        json!({"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": true})
    );
}

#[test]
fn modes_decide_deny_warning_and_audit_annotation() {
    let body = review_of(
        ("", "Pod"),
        "CREATE",
        pod(json!([{"name": "a", "securityContext": {"privileged": true}}])),
    );
    let answer = review(&body, &set(), Endpoint::Validate);
    let r = response(&answer);
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403);
    assert_eq!(r["status"]["reason"], "Forbidden");
    let message = r["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("no-privileged/privileged: container \"a\" spec.containers[0].securityContext.privileged: is true"),
        "{message}"
    );
    let warnings = r["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1);
    let warning = warnings[0].as_str().unwrap();
    assert!(
        warning.starts_with("non-root/run-as-non-root: container \"a\""),
        "{warning}"
    );
    assert!(warning.chars().count() <= MAX_WARNING_CHARS);
    let audit = r["auditAnnotations"]["limits"].as_str().unwrap();
    assert!(audit.contains("resources.limits.memory"), "{audit}");
    assert_eq!(answer.outcome, Outcome::Denied);
    let decided: Vec<_> = answer
        .decisions
        .iter()
        .map(|d| (d.policy_index, d.policy.as_str(), d.check, d.mode))
        .collect();
    assert_eq!(
        decided,
        vec![
            (0, "no-privileged", "privileged", Mode::Enforce),
            (1, "non-root", "run-as-non-root", Mode::Warn),
            (2, "limits", "resource-limits", Mode::Audit),
        ]
    );
    let subject = answer.subject.unwrap();
    assert_eq!(subject.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(
        (subject.operation.as_str(), subject.kind.as_str()),
        ("CREATE", "Pod")
    );
    assert_eq!(
        (subject.namespace.as_str(), subject.name.as_str()),
        ("shop", "p")
    );
    assert_eq!(subject.user, "alice");
}

#[test]
fn deployment_paths_point_into_the_template() {
    let object = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"hostNetwork": true,
            "containers": [{"name": "web", "securityContext": {"privileged": true}}]}}}});
    let body = review_of(("apps", "Deployment"), "CREATE", object);
    let r = response(&review(&body, &set(), Endpoint::Validate));
    let message = r["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("spec.template.spec.containers[0].securityContext.privileged"),
        "{message}"
    );
}

#[test]
fn pod_template_paths_point_into_its_template() {
    let object = json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
        "template": {"spec": {"hostNetwork": true,
            "containers": [{"name": "web", "securityContext": {"privileged": true}}]}}});
    let body = review_of(("", "PodTemplate"), "CREATE", object);
    let r = response(&review(&body, &set(), Endpoint::Validate));
    assert_eq!(r["allowed"], false);
    let message = r["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("template.spec.containers[0].securityContext.privileged")
            && !message.contains("spec.template"),
        "{message}"
    );
}

#[test]
fn unjudged_kinds_operations_and_subresources_are_allowed() {
    let privileged = pod(json!([{"name": "a", "securityContext": {"privileged": true}}]));
    for (kind, op) in [
        (("", "ConfigMap"), "CREATE"),
        (("", "Pod"), "DELETE"),
        (("", "Pod"), "CONNECT"),
    ] {
        let body = review_of(kind, op, privileged.clone());
        assert_eq!(
            response(&review(&body, &set(), Endpoint::Validate))["allowed"],
            true
        );
    }
    let mut status_update: Value =
        serde_json::from_slice(&review_of(("", "Pod"), "UPDATE", privileged.clone())).unwrap();
    status_update["request"]["subResource"] = json!("status");
    let body = serde_json::to_vec(&status_update).unwrap();
    assert_eq!(
        response(&review(&body, &set(), Endpoint::Validate))["allowed"],
        true
    );
    // Every pod subresource but those carrying no pod spec is judged as the Pod it carries,
    // as Pod Security admission does: ephemeral containers, in-place resize, and one newer
    // than portier.
    // The ones left alone are upstream's ignoredPodSubresources.
    let judged = ["ephemeralcontainers", "resize", "somethingnew"];
    let ignored = [
        "exec",
        "attach",
        "binding",
        "eviction",
        "log",
        "portforward",
        "proxy",
    ];
    let cases = judged.map(|s| (s, false)).into_iter();
    for (subresource, allowed) in cases.chain(ignored.map(|s| (s, true))) {
        status_update["request"]["subResource"] = json!(subresource);
        let body = serde_json::to_vec(&status_update).unwrap();
        assert_eq!(
            response(&review(&body, &set(), Endpoint::Validate))["allowed"],
            allowed,
            "{subresource}"
        );
    }
    // A controller's subresources (scale, status) carry no pod template.
    let mut scale: Value =
        serde_json::from_slice(&review_of(("apps", "Deployment"), "UPDATE", privileged)).unwrap();
    scale["request"]["subResource"] = json!("scale");
    let body = serde_json::to_vec(&scale).unwrap();
    assert_eq!(
        response(&review(&body, &set(), Endpoint::Validate))["allowed"],
        true
    );
}

#[test]
fn malformed_json_is_http_400_with_a_status_body() {
    for body in [&b"{not json"[..], b"", b"\xff\xfe", b"[1,2"] {
        let answer = review(body, &set(), Endpoint::Validate);
        assert_eq!(answer.http_status, 400);
        let status: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["code"], 400);
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .contains("not valid JSON")
        );
    }
}

#[test]
fn wrong_shape_with_a_uid_fails_closed() {
    let mut v: Value =
        serde_json::from_slice(&review_of(("", "Pod"), "CREATE", json!({}))).unwrap();
    v["request"]["object"] = json!({"spec": {"containers": "not-a-list"}});
    let answer = review(&serde_json::to_vec(&v).unwrap(), &set(), Endpoint::Validate);
    let r = response(&answer);
    assert_eq!(r["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 400);
    let message = r["status"]["message"].as_str().unwrap();
    assert!(message.contains("spec.containers"), "{message}");
    assert_eq!(answer.outcome, Outcome::Invalid);

    v["request"]["object"] = json!("a string");
    let r = response(&review(
        &serde_json::to_vec(&v).unwrap(),
        &set(),
        Endpoint::Validate,
    ));
    assert_eq!(r["allowed"], false);

    // The request itself of the wrong shape, uid still readable.
    v["request"]["operation"] = json!(42);
    let r = response(&review(
        &serde_json::to_vec(&v).unwrap(),
        &set(),
        Endpoint::Validate,
    ));
    assert_eq!(r["allowed"], false);
    assert_eq!(r["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");

    // Mutation never denies.
    let r = response(&review(
        &serde_json::to_vec(&v).unwrap(),
        &set(),
        Endpoint::Mutate,
    ));
    assert_eq!(r["allowed"], true);
}

#[test]
fn reviews_without_a_uid_or_of_another_kind_are_rejected() {
    let answer = review(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}"#, &set(), Endpoint::Validate);
    assert_eq!(answer.http_status, 400);
    let answer = review(
        br#"{"apiVersion":"v1","kind":"ConfigMap"}"#,
        &set(),
        Endpoint::Validate,
    );
    assert_eq!(answer.http_status, 400);
    let answer = review(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
        &set(),
        Endpoint::Validate,
    );
    assert_eq!(answer.http_status, 400);
    let answer = review(b"42", &set(), Endpoint::Validate);
    assert_eq!(answer.http_status, 400);
    let positional =
        br#"["admission.k8s.io/v1","AdmissionReview",{"uid":"u","operation":"CREATE"}]"#;
    let answer = review(positional, &set(), Endpoint::Validate);
    assert_eq!(answer.http_status, 400);
    assert!(String::from_utf8_lossy(&answer.body).contains("must be a JSON object"));
}

#[test]
fn create_without_object_fails_closed() {
    let mut v: Value =
        serde_json::from_slice(&review_of(("", "Pod"), "CREATE", json!(null))).unwrap();
    v["request"].as_object_mut().unwrap().remove("object");
    let r = response(&review(
        &serde_json::to_vec(&v).unwrap(),
        &set(),
        Endpoint::Validate,
    ));
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("request.object is missing")
    );
}

#[test]
fn truncation_counts_characters_not_bytes() {
    let s = "é".repeat(130);
    let t = truncate_chars(s, 120);
    assert_eq!(t.chars().count(), 120);
    assert!(t.ends_with('…'));
    assert_eq!(truncate_chars("short".into(), 120), "short");
    assert_eq!(truncate_chars("x".repeat(120), 120), "x".repeat(120));
}

#[test]
fn the_one_pass_decoder_answers_exactly_as_the_general_path() {
    let privileged = pod(json!([{"name": "a", "securityContext": {"privileged": true}}]));
    let compliant = pod(
        json!([{"name": "a", "securityContext": {"runAsNonRoot": true},
        "resources": {"limits": {"memory": "1Gi"}}}]),
    );
    let mut bodies = vec![
        review_of(("", "Pod"), "CREATE", privileged.clone()),
        review_of(("", "Pod"), "UPDATE", compliant.clone()),
        review_of(("", "Pod"), "DELETE", privileged.clone()),
        review_of(("", "ConfigMap"), "CREATE", json!({"data": {}})),
        review_of(("", "Pod"), "CREATE", json!(null)),
        review_of(("", "Pod"), "CREATE", json!([1, 2])),
        review_of(("", "Pod"), "CREATE", json!({"spec": {"containers": {}}})),
        review_of(
            ("apps", "Deployment"),
            "CREATE",
            json!({"spec": {"template": {
            "spec": {"hostPID": true, "containers": [{"name": "x"}]}}}}),
        ),
    ];
    // Object before kind and operation (not the API server's order), escaped keys,
    // duplicate fields, a subresource, a review that is not an object, trailing garbage.
    let reordered = br#"{"request":{"object":{"spec":{"containers":[{"name":"a","securityContext":{"privileged":true}}]}},"operation":"CREATE","uid":"u1","kind":{"group":"","kind":"Pod"}},"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}"#;
    let escaped = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u2","kind":{"group":"","kind":"Pod"},"operation":"CREATE","obj\u0065ct":{"spec":{"containers":[{"name":"a","securityContext":{"privileged":true}}]}}}}"#;
    let duplicate = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u3","kind":{"group":"","kind":"Pod"},"operation":"CREATE","object":{"spec":{}},"object":{"spec":{"containers":[{"name":"a","securityContext":{"privileged":true}}]}}}}"#;
    let subresource = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u4","kind":{"group":"","kind":"Pod"},"subResource":"status","operation":"UPDATE","object":{"spec":{"containers":[{"name":"a","securityContext":{"privileged":true}}]}}}}"#;
    let ephemeral = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u5","kind":{"group":"","kind":"Pod"},"subResource":"ephemeralcontainers","operation":"UPDATE","object":{"spec":{"containers":[{"name":"a","securityContext":{"privileged":true}}]}}}}"#;
    let trailing = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u6","kind":{"group":"","kind":"Pod"},"operation":"CREATE","object":{"spec":{}}}} x"#;
    // Invalid UTF-8 in a string that is read (the user) and in one that is skipped.
    for needle in [&b"alice"[..], b"authenticated"] {
        let mut not_utf8 =
            include_bytes!("../../tests/fixtures/review-privileged-pod.json").to_vec();
        let at = not_utf8
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap();
        not_utf8[at] = 0xff;
        bodies.push(not_utf8);
    }
    for extra in [
        &reordered[..],
        escaped,
        duplicate,
        subresource,
        ephemeral,
        trailing,
        b"[]",
        b"{}",
    ] {
        bodies.push(extra.to_vec());
    }
    for fixture in [
        &include_bytes!("../../tests/fixtures/review-deployment-8k.json")[..],
        include_bytes!("../../tests/fixtures/review-privileged-pod.json"),
        include_bytes!("../../tests/fixtures/review-pod-2k.json"),
        include_bytes!("../../tests/fixtures/review-deployment-64k.json"),
    ] {
        bodies.push(fixture.to_vec());
    }
    let set = set();
    for body in &bodies {
        for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
            let fast = review(body, &set, endpoint);
            let general = match decode_general(body, endpoint) {
                Decoded::Answered(answer) => answer,
                Decoded::Judge(judgement) => answer(
                    &judgement,
                    &set,
                    &Unverified,
                    crate::namespaces::NamespaceLabels::NOT_GIVEN,
                ),
                Decoded::Namespace(..) => panic!("no namespace reviews here"),
                Decoded::Other(other) => {
                    answer_other(&other, &set, crate::namespaces::NamespaceLabels::NOT_GIVEN)
                }
            };
            let text = String::from_utf8_lossy(body);
            assert_eq!(fast.http_status, general.http_status, "{text}");
            assert_eq!(fast.outcome, general.outcome, "{text}");
            assert_eq!(fast.decisions, general.decisions, "{text}");
            assert_eq!(
                String::from_utf8_lossy(&fast.body),
                String::from_utf8_lossy(&general.body),
                "{text}"
            );
        }
    }
    // The API server's order (the fixtures') takes the one pass and decodes the object in
    // it. (json! sorts keys, putting operation after object: those take the raw path.)
    let api_server_order = include_bytes!("../../tests/fixtures/review-privileged-pod.json");
    let (_, workload) = decode_one_pass(api_server_order, Endpoint::Validate).unwrap();
    assert!(workload.is_some());
    assert!(
        decode_one_pass(reordered, Endpoint::Validate)
            .unwrap()
            .1
            .is_none()
    );
}
