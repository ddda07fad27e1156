//! `/mutate` end to end: the returned patch, applied with a real JSON Patch implementation,
//! gives an object that `/validate` admits; mutating again gives no patch; user values are
//! never changed; what a patch cannot fix is left to validation.

mod common;

use base64::Engine as _;
use common::{TestServer, deployment, pod, review_op};
use serde_json::{Value, json};

const POLICIES: &str = r#"
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: non-root}
spec: {check: run-as-non-root, mode: enforce, mutate: true, params: {runAsUser: 10001}}
---
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: no-escalation}
spec: {check: privileged, mode: enforce, mutate: true, params: {allowPrivilegeEscalation: false}}
---
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: resources}
spec:
  check: resource-limits
  mode: enforce
  mutate: true
  params: {defaults: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 500m, memory: 256Mi}}}
---
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: host}
spec: {check: host-namespaces, mode: enforce}
"#;

async fn server() -> TestServer {
    TestServer::start(&[("policies.yaml", POLICIES)]).await
}

/// Posts `object` to `endpoint` and returns the response part.
async fn ask(server: &TestServer, endpoint: &str, object: &Value) -> Value {
    let body = serde_json::to_vec(&review_op(object, "CREATE")).unwrap();
    let (status, answer) = server.post(endpoint, body).await;
    assert_eq!(status, 200, "{answer}");
    answer["response"].clone()
}

/// The decoded JSON Patch of a /mutate response, if any.
fn patch_of(response: &Value) -> Option<json_patch::Patch> {
    let encoded = response.get("patch")?.as_str()?;
    assert_eq!(response["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    Some(serde_json::from_slice(&bytes).unwrap())
}

/// /mutate, apply the patch, /validate: the API server's own sequence.
async fn mutate_then_validate(
    server: &TestServer,
    object: &Value,
) -> (Value, Option<json_patch::Patch>, Value) {
    let response = ask(server, "/mutate", object).await;
    assert_eq!(
        response["allowed"], true,
        "mutation never denies: {response}"
    );
    let patch = patch_of(&response);
    let mut patched = object.clone();
    if let Some(p) = &patch {
        json_patch::patch(&mut patched, p)
            .expect("the patch applies to the object it was made for");
    }
    let verdict = ask(server, "/validate", &patched).await;
    (patched, patch, verdict)
}

fn bare(name: &str) -> Value {
    json!({"name": name, "image": "registry.example.com/app:1"})
}

#[tokio::test]
async fn a_pod_that_only_lacked_defaults_is_patched_and_then_admitted() {
    let server = server().await;
    let object = pod("shop", vec![bare("app"), bare("sidecar")]);
    let (patched, patch, verdict) = mutate_then_validate(&server, &object).await;
    assert!(patch.is_some());
    assert_eq!(verdict["allowed"], true, "{verdict}");
    let spec = &patched["spec"];
    assert_eq!(
        spec["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 10001})
    );
    for c in spec["containers"].as_array().unwrap() {
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(
            c["resources"],
            json!({"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}})
        );
    }
    assert_eq!(
        patched["metadata"]["annotations"]["portier.dev/mutated-by"],
        "no-escalation,non-root,resources"
    );
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains(r#"portier_policy_mutations_total{policy="resources"} 1"#),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn controllers_are_patched_in_their_pod_template() {
    let server = server().await;
    let mut with_init = json!({"initContainers": [bare("migrate")], "containers": [bare("web")]});
    let deploy = deployment("shop", with_init.clone());
    let (patched, patch, verdict) = mutate_then_validate(&server, &deploy).await;
    assert_eq!(verdict["allowed"], true, "{verdict}");
    let paths: Vec<String> = patch.unwrap().0.iter().map(op_path).collect();
    assert!(
        paths.iter().all(|p| p.starts_with("/spec/template/")),
        "{paths:?}"
    );
    assert_eq!(
        patched["spec"]["template"]["spec"]["initContainers"][0]["resources"]["limits"]["memory"],
        "256Mi"
    );
    assert_eq!(
        patched["spec"]["template"]["metadata"]["annotations"]["portier.dev/mutated-by"],
        "no-escalation,non-root,resources"
    );
    assert_eq!(
        patched["spec"]["replicas"], 2,
        "nothing outside the template changes"
    );

    with_init["restartPolicy"] = json!("OnFailure");
    let cronjob = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "shop"},
        "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": with_init}}}}});
    let (_, patch, verdict) = mutate_then_validate(&server, &cronjob).await;
    assert_eq!(verdict["allowed"], true, "{verdict}");
    let paths: Vec<String> = patch.unwrap().0.iter().map(op_path).collect();
    assert!(
        paths
            .iter()
            .all(|p| p.starts_with("/spec/jobTemplate/spec/template/")),
        "{paths:?}"
    );
    server.stop().await;
}

fn op_path(op: &json_patch::PatchOperation) -> String {
    serde_json::to_value(op).unwrap()["path"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn mutating_a_mutated_object_gives_no_patch() {
    let server = server().await;
    for object in [
        pod("shop", vec![bare("app")]),
        deployment(
            "shop",
            json!({"initContainers": [bare("i")], "containers": [bare("web")]}),
        ),
    ] {
        let (patched, patch, _) = mutate_then_validate(&server, &object).await;
        assert!(patch.is_some());
        let again = ask(&server, "/mutate", &patched).await;
        assert_eq!(again["allowed"], true);
        assert!(
            again.get("patch").is_none() && again.get("patchType").is_none(),
            "{again}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn values_the_user_wrote_are_never_changed() {
    let server = server().await;
    let mut object = pod("shop", vec![bare("app")]);
    object["spec"]["containers"][0]["securityContext"] =
        json!({"allowPrivilegeEscalation": true, "runAsUser": 1000});
    object["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": "2"}, "limits": {"memory": "50Mi"}});
    let response = ask(&server, "/mutate", &object).await;
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch_of(&response).unwrap()).unwrap();
    let c = &patched["spec"]["containers"][0];
    assert_eq!(
        c["securityContext"]["allowPrivilegeEscalation"], true,
        "user's true stays"
    );
    assert_eq!(c["securityContext"]["runAsUser"], 1000);
    assert_eq!(c["resources"]["requests"]["cpu"], "2");
    assert_eq!(c["resources"]["limits"]["memory"], "50Mi");
    // Filled values respect what is there: the cpu limit is raised to the request, the memory
    // request lowered to the limit, so the API server accepts the pod.
    assert_eq!(c["resources"]["limits"]["cpu"], "2");
    assert_eq!(
        c["resources"]["requests"]["memory"], "50Mi",
        "the 64Mi default is above the 50Mi limit"
    );
    // The user's escalation: true is not fixed, so validation still denies it.
    let verdict = ask(&server, "/validate", &patched).await;
    assert_eq!(verdict["allowed"], false);
    assert!(
        verdict["status"]["message"]
            .as_str()
            .unwrap()
            .contains("allowPrivilegeEscalation: is true"),
        "{verdict}"
    );
    server.stop().await;
}

#[tokio::test]
async fn what_a_patch_cannot_fix_is_not_silently_changed() {
    let server = server().await;
    let mut object = pod("shop", vec![bare("root"), bare("app")]);
    object["spec"]["hostNetwork"] = json!(true);
    object["spec"]["containers"][0]["securityContext"] =
        json!({"privileged": true, "runAsUser": 0});
    let (patched, _, verdict) = mutate_then_validate(&server, &object).await;
    let root = &patched["spec"]["containers"][0];
    assert!(
        root["securityContext"]
            .get("allowPrivilegeEscalation")
            .is_none(),
        "no allowPrivilegeEscalation: false on a privileged container (the API server would reject it)"
    );
    assert!(
        patched["spec"]["securityContext"]
            .get("runAsNonRoot")
            .is_none(),
        "no pod-level runAsNonRoot when a container runs as root (the kubelet would refuse to start it)"
    );
    assert_eq!(
        patched["spec"]["containers"][1]["securityContext"]["runAsNonRoot"],
        true
    );
    assert_eq!(patched["spec"]["hostNetwork"], true);
    assert_eq!(verdict["allowed"], false);
    let message = verdict["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("hostNetwork")
            && message.contains("privileged")
            && message.contains("runAsUser"),
        "{message}"
    );
    server.stop().await;
}

#[tokio::test]
async fn annotation_keys_are_escaped_json_pointers() {
    let server = server().await;
    let mut object = pod("shop", vec![bare("app")]);
    object["metadata"]["annotations"] = json!({"example.com/a~b": "kept"});
    let response = ask(&server, "/mutate", &object).await;
    let patch = patch_of(&response).unwrap();
    let paths: Vec<String> = patch.0.iter().map(op_path).collect();
    assert!(
        paths.contains(&"/metadata/annotations/portier.dev~1mutated-by".to_string()),
        "{paths:?}"
    );
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    assert_eq!(
        patched["metadata"]["annotations"]["example.com/a~b"],
        "kept"
    );
    assert_eq!(
        patched["metadata"]["annotations"]["portier.dev/mutated-by"],
        "no-escalation,non-root,resources"
    );
    server.stop().await;
}

#[test]
fn mutation_that_cannot_work_is_a_load_error() {
    let load = |spec: &str| {
        portier::policy::PolicySet::from_yaml(
            "m.yaml",
            &format!(
                "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: m}}\nspec: {spec}\n"
            ),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    let e = load("{check: host-namespaces, mutate: true}").unwrap_err();
    assert!(
        e.contains("spec.mutate: host-namespaces has nothing safe to fill in"),
        "{e}"
    );
    let e = load("{check: resource-limits, mutate: true}").unwrap_err();
    assert!(e.contains("needs params.defaults"), "{e}");
    let e = load("{check: privileged, mutate: true}").unwrap_err();
    assert!(e.contains("allowPrivilegeEscalation: false"), "{e}");
    let e = load("{check: resource-limits, mutate: true, params: {defaults: {limits: {memory: 2Gi}}, max: {limits: {memory: 1Gi}}}}").unwrap_err();
    assert!(
        e.contains("spec.params.defaults.limits.memory: 2Gi is above the maximum 1Gi"),
        "{e}"
    );
    let e = load("{check: resource-limits, mutate: true, params: {defaults: {requests: {cpu: '2'}, limits: {cpu: '1'}}}}").unwrap_err();
    assert!(
        e.contains("default request 2 is above the default limit 1"),
        "{e}"
    );
    let e = load("{check: run-as-non-root, mutate: true, params: {runAsUser: 0}}").unwrap_err();
    assert!(e.contains("spec.params.runAsUser"), "{e}");
    assert!(load("{check: run-as-non-root, mutate: true}").is_ok());
}

mod properties {
    use super::*;
    use portier::admission::{self, Endpoint};
    use portier::policy::PolicySet;
    use proptest::prelude::*;

    fn maybe<T: std::fmt::Debug + Clone + 'static>(
        s: impl Strategy<Value = T> + 'static,
    ) -> impl Strategy<Value = Option<T>> {
        prop_oneof![Just(None), s.prop_map(Some)]
    }

    fn container() -> impl Strategy<Value = Value> {
        (
            maybe(any::<bool>()),
            maybe(prop_oneof![Just(0i64), Just(1000i64)]),
            maybe(any::<bool>()),
            maybe(any::<bool>()),
            maybe(prop_oneof![Just("50m"), Just("2"), Just("300m")]),
            maybe(prop_oneof![Just("32Mi"), Just("1Gi")]),
            maybe(prop_oneof![Just("1"), Just("200m")]),
            any::<bool>(),
        )
            .prop_map(
                |(non_root, uid, privileged, escalation, req_cpu, lim_mem, lim_cpu, null_sc)| {
                    let mut sc = serde_json::Map::new();
                    if let Some(v) = non_root {
                        sc.insert("runAsNonRoot".into(), json!(v));
                    }
                    if let Some(v) = uid {
                        sc.insert("runAsUser".into(), json!(v));
                    }
                    if let Some(v) = privileged {
                        sc.insert("privileged".into(), json!(v));
                    }
                    if let Some(v) = escalation {
                        sc.insert("allowPrivilegeEscalation".into(), json!(v));
                    }
                    let mut resources = json!({});
                    if let Some(v) = req_cpu {
                        resources["requests"] = json!({"cpu": v});
                    }
                    if let Some(v) = lim_mem {
                        resources["limits"] = json!({"memory": v});
                    }
                    if let Some(v) = lim_cpu {
                        resources["limits"]["cpu"] = json!(v);
                    }
                    let mut c = json!({"name": "c", "image": "app", "resources": resources});
                    c["securityContext"] = if null_sc && sc.is_empty() {
                        Value::Null
                    } else {
                        Value::Object(sc)
                    };
                    c
                },
            )
    }

    fn workload() -> impl Strategy<Value = Value> {
        (
            prop::collection::vec(container(), 1..4),
            prop::collection::vec(container(), 0..2),
            maybe(any::<bool>()),
            maybe(prop_oneof![Just(0i64), Just(7i64)]),
            any::<bool>(),
        )
            .prop_map(|(containers, init, pod_non_root, pod_uid, as_deployment)| {
                let mut spec = json!({"containers": containers});
                if !init.is_empty() { spec["initContainers"] = json!(init); }
                let mut sc = serde_json::Map::new();
                if let Some(v) = pod_non_root { sc.insert("runAsNonRoot".into(), json!(v)); }
                if let Some(v) = pod_uid { sc.insert("runAsUser".into(), json!(v)); }
                if !sc.is_empty() { spec["securityContext"] = Value::Object(sc); }
                if as_deployment { deployment("shop", spec) } else { json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop"}, "spec": spec}) }
            })
    }

    fn answer(set: &PolicySet, object: &Value, endpoint: Endpoint) -> Value {
        let body = serde_json::to_vec(&review_op(object, "CREATE")).unwrap();
        let a = admission::review(&body, set, endpoint);
        assert_eq!(a.http_status, 200);
        serde_json::from_slice::<Value>(&a.body).unwrap()["response"].clone()
    }

    /// The violations of `object` under `set`, as (policy, path) pairs.
    fn violations(set: &PolicySet, object: &Value) -> Vec<String> {
        let response = answer(set, object, Endpoint::Validate);
        response["status"]["message"]
            .as_str()
            .unwrap_or("")
            .split("; ")
            .filter(|s| !s.is_empty())
            .map(|m| m.split(": ").take(2).collect::<Vec<_>>().join(": "))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn mutate_apply_validate_never_keeps_what_the_patch_claims_to_fix(object in workload()) {
            let set = PolicySet::from_yaml("p.yaml", POLICIES).unwrap();
            let response = answer(&set, &object, Endpoint::Mutate);
            prop_assert_eq!(&response["allowed"], &json!(true));
            let Some(patch) = patch_of(&response) else {
                // No patch: nothing a mutating policy could fill in.
                return Ok(());
            };
            let mut patched = object.clone();
            json_patch::patch(&mut patched, &patch).unwrap();
            let claimed: Vec<&str> = patched.pointer(if object["kind"] == "Pod" { "/metadata/annotations" } else { "/spec/template/metadata/annotations" })
                .and_then(|a| a["portier.dev/mutated-by"].as_str()).unwrap_or("").split(',').collect();
            // Every violation a claimed policy reports after the patch was there before it:
            // the patch fixed what it touched and broke nothing.
            let before = violations(&set, &object);
            for v in violations(&set, &patched) {
                let policy = v.split('/').next().unwrap();
                if claimed.contains(&policy) {
                    prop_assert!(before.contains(&v), "the patch introduced {v}");
                }
            }
            // Idempotent.
            let again = answer(&set, &patched, Endpoint::Mutate);
            prop_assert!(again.get("patch").is_none(), "second mutation patched again: {again}");
        }
    }
}

#[tokio::test]
async fn pod_security_restricted_fills_what_it_can_and_the_result_passes_it() {
    let policies = "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: restricted}\n\
        spec: {check: pod-security, mode: enforce, mutate: true, params: {level: restricted}}\n";
    let server = TestServer::start(&[("p.yaml", policies)]).await;
    let object = pod("shop", vec![bare("app"), bare("sidecar")]);
    let before = ask(&server, "/validate", &object).await;
    assert_eq!(before["allowed"], false, "a bare pod breaks restricted");
    let (patched, patch, verdict) = mutate_then_validate(&server, &object).await;
    assert!(patch.is_some());
    assert_eq!(verdict["allowed"], true, "{verdict}");
    let spec = &patched["spec"];
    assert_eq!(
        spec["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    for c in spec["containers"].as_array().unwrap() {
        assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    }
    // Windows pods get none of the Linux-only fields (the API server would reject them).
    let mut windows = pod("shop", vec![bare("app")]);
    windows["spec"]["os"] = json!({"name": "windows"});
    let (patched, _, _) = mutate_then_validate(&server, &windows).await;
    assert!(
        patched["spec"]["containers"][0]["securityContext"]
            .get("capabilities")
            .is_none()
    );
    assert!(
        patched["spec"]
            .pointer("/securityContext/seccompProfile")
            .is_none()
    );
    server.stop().await;
}
