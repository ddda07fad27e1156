//! Property tests over every entry point that reads untrusted input: whatever the bytes, portier
//! answers (never panics), and its answers keep their promises. The same entry points have
//! `cargo fuzz` targets under `fuzz/` for longer runs.

use portier::admission::{self, Endpoint};
use portier::cel::Json;
use portier::cel::deferred::Document;
use portier::offline;
use portier::policy::PolicySet;
use portier::policy::quantity::Quantity;
use proptest::prelude::*;
use serde_json::{Value, json};

fn policies() -> PolicySet {
    PolicySet::from_dir(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies"
    )))
    .expect("shipped policies load")
}

/// Arbitrary JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-zA-Z0-9:/._-]{0,12}".prop_map(Value::from),
        Just(json!("0")),
        Just(json!(true)),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z]{1,16}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The shipped policies and a ValidatingAdmissionPolicy whose expressions read the request,
/// the object and the old object of any kind, so that reviews also go through CEL's reading of
/// the review (`cel::deferred`).
fn policies_with_cel() -> PolicySet {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"));
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.push(("reads-everything.yaml".to_owned(), r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: reads-everything}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - {apiGroups: ["*"], apiVersions: ["*"], operations: ["*"], resources: ["*"]}
  validations:
    - expression: "object == null || !has(object.metadata) || size(object.metadata) >= 0"
    - expression: "object == null || object.?spec.?template.?spec.?containers.orValue([]).all(c, c.?image.orValue('') != 'forbidden')"
    - expression: "oldObject == null || oldObject != object"
    - expression: "request.operation != 'CONNECT' && size(request.userInfo.?username.orValue('')) >= 0"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: reads-everything}
spec: {policyName: reads-everything, validationActions: [Deny]}
"#.to_owned()));
    portier::policy::Sources::from_files(files)
        .compile()
        .expect("policies load")
}

/// Arbitrary JSON values with any strings (escapes, non-ASCII), nested a few levels.
fn json_value_any_text() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A realistic review to mutate.
fn base_review() -> Value {
    serde_json::from_str(include_str!("fixtures/review-deployment-8k.json")).unwrap()
}

/// The base review with `value` at `target`, sent to `/validate` and its answer checked (a
/// readable, non-empty uid is always echoed when the answer is a review); returns the body.
fn validated_with(set: &PolicySet, target: &str, value: Value) -> Vec<u8> {
    let mut review = base_review();
    if let Some(slot) = review.pointer_mut(target) {
        *slot = value;
    }
    let uid = review
        .pointer("/request/uid")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let body = serde_json::to_vec(&review).unwrap();
    let answer = admission::review(&body, set, Endpoint::Validate);
    check_answer(&answer, uid.as_deref().filter(|u| !u.is_empty()));
    body
}

/// JSON pointers of the places policies read (and a few they skip).
const TARGETS: &[&str] = &[
    "/request",
    "/request/uid",
    "/request/kind",
    "/request/kind/kind",
    "/request/operation",
    "/request/namespace",
    "/request/userInfo",
    "/request/subResource",
    "/request/object",
    "/request/object/metadata",
    "/request/object/spec",
    "/request/object/spec/template",
    "/request/object/spec/template/spec",
    "/request/object/spec/template/spec/hostNetwork",
    "/request/object/spec/template/spec/securityContext",
    "/request/object/spec/template/spec/securityContext/runAsUser",
    "/request/object/spec/template/spec/containers",
    "/request/object/spec/template/spec/containers/0",
    "/request/object/spec/template/spec/containers/0/name",
    "/request/object/spec/template/spec/containers/0/securityContext",
    "/request/object/spec/template/spec/containers/0/securityContext/privileged",
    "/request/object/spec/template/spec/containers/0/ports",
    "/request/object/spec/template/spec/containers/0/ports/0/hostPort",
    "/request/object/spec/template/spec/containers/0/resources",
    "/request/object/spec/template/spec/containers/0/resources/limits/memory",
    "/request/object/spec/template/spec/initContainers",
    "/request/object/status",
];

fn check_answer(answer: &admission::Answer, uid_expected: Option<&str>) {
    let body: Value = serde_json::from_slice(&answer.body).expect("every answer is JSON");
    match answer.http_status {
        200 => {
            let response = &body["response"];
            assert!(response["allowed"].is_boolean(), "{body}");
            if let Some(uid) = uid_expected {
                assert_eq!(response["uid"], uid, "the uid is echoed");
            }
            if response["allowed"] == false {
                let message = response["status"]["message"]
                    .as_str()
                    .expect("a denial says why");
                assert!(!message.is_empty());
            }
        }
        400 => {
            assert_eq!(body["kind"], "Status", "{body}");
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
        other => panic!("unexpected HTTP status {other}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_get_an_answer(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let set = policies();
        for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
            check_answer(&admission::review(&bytes, &set, endpoint), None);
        }
    }

    #[test]
    fn any_value_anywhere_in_a_review_gets_an_answer(
        target in prop::sample::select(TARGETS),
        value in json_value(),
    ) {
        let set = policies();
        let body = validated_with(&set, target, value);
        // Mutation never denies.
        let mutate = admission::review(&body, &set, Endpoint::Mutate);
        if mutate.http_status == 200 {
            let v: Value = serde_json::from_slice(&mutate.body).unwrap();
            prop_assert_eq!(&v["response"]["allowed"], &json!(true));
        }
    }

    #[test]
    fn any_value_anywhere_in_a_review_gets_an_answer_from_cel_policies(
        target in prop::sample::select(TARGETS),
        value in json_value(),
    ) {
        validated_with(&policies_with_cel(), target, value);
    }

    /// What CEL expressions read of a review, decoded a level at a time as they read it, is
    /// what decoding the whole text gives, whatever the JSON and however it is laid out.
    #[test]
    fn a_document_reads_as_the_whole_text_decoded(value in json_value_any_text(), pretty in any::<bool>()) {
        let text = match pretty {
            true => serde_json::to_string_pretty(&value).unwrap(),
            false => serde_json::to_string(&value).unwrap(),
        };
        let document = Document::index(&text).expect("JSON is indexed");
        prop_assert_eq!(document.root().to_owned_json(), Json::parse(&text).unwrap());
    }

    #[test]
    fn any_text_as_a_document_reads_or_fails_cleanly(text in "[\\[\\]{}\",:a-c0-9.eE+ \\-\\\\]{0,64}") {
        if let Ok(document) = Document::index(&text) {
            let read = document.root().to_owned_json();
            if let Ok(parsed) = Json::parse(&text) {
                prop_assert_eq!(read, parsed);
            }
        }
    }

    #[test]
    fn truncated_reviews_get_an_answer(cut in 0usize..7400) {
        let set = policies();
        let body = include_bytes!("fixtures/review-deployment-8k.json");
        let cut = cut.min(body.len());
        check_answer(&admission::review(&body[..cut], &set, Endpoint::Validate), None);
    }

    #[test]
    fn any_text_as_a_policy_file_loads_or_fails_cleanly(text in ".{0,400}") {
        let _ = PolicySet::from_yaml("fuzz.yaml", &text);
    }

    #[test]
    fn any_value_in_a_policy_document_loads_or_fails_cleanly(
        field in prop::sample::select(&["spec", "spec/check", "spec/mode", "spec/match", "spec/exclude",
            "spec/params", "metadata", "metadata/name", "apiVersion"][..]),
        value in json_value(),
    ) {
        let mut doc = json!({"apiVersion": "portier.dev/v1", "kind": "Policy", "metadata": {"name": "p"},
            "spec": {"check": "resource-limits", "mode": "warn", "match": {"namespaces": ["*"]},
                     "params": {"max": {"limits": {"cpu": "2"}}}}});
        if let Some(slot) = doc.pointer_mut(&format!("/{field}")) {
            *slot = value;
        }
        // JSON is YAML: the policy loader must take it or say why.
        match PolicySet::from_yaml("fuzz.yaml", &doc.to_string()) {
            Ok(set) => prop_assert_eq!(set.len(), 1),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn any_text_as_manifests_is_checked_or_refused(text in ".{0,400}") {
        let set = policies();
        let mut report = offline::Report::default();
        let _ = offline::check_text(
            "fuzz.yaml",
            &text,
            &set,
            offline::Mutate::Yes,
            offline::Images::Offline,
            &mut report,
        );
    }

    #[test]
    fn any_quantity_text_parses_or_fails_cleanly(text in "[-+0-9.eEkKMGTPinum]{0,24}") {
        let _ = Quantity::parse(&text);
    }
}
