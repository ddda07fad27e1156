//! ValidatingAdmissionPolicies run unchanged: the same policies, bindings and params applied to
//! a real kube-apiserver (v1.32, VAP GA) and loaded into `portier serve` as files give the
//! same verdicts on the same objects: allowed or denied, the HTTP code and reason, the message
//! and the warnings.
//!
//! One namespace, two phases, the same dry-run creates in each:
//! 1. the API server enforces the policies itself (portier's webhook is registered but holds no
//!    policy, so it allows everything);
//! 2. the policies are deleted from the API server and written into portier's policy
//!    directory (hot reload); the webhook configuration routes Services and ConfigMaps to it
//!    too, as a user who runs policies on those kinds configures it.
//!
//! The only difference allowed is the prefix the API server puts before a webhook's denial
//! (`admission webhook "validate.portier.dev" denied the request: `).

mod common;
mod k8s;

use http_body_util::BodyExt;
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use k8s::eventually;
use k8s::objects::object;
use k8s::webhooks::Portier;

/// Four policies and their bindings, as a team would write them: images from our registry, no
/// LoadBalancer Services, a team label on everything (Deny); replicas under a limit read from
/// a ConfigMap (Deny, params); no `:latest` (Warn); a rule for namespaces labelled
/// `e2e-tier: gold` that reads `namespaceObject` (portier reads both from its namespace
/// cache). Every binding selects only objects
/// labelled `vap-e2e: "on"`, so nothing else in the cluster is judged.
fn policies(ns: &str) -> String {
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: e2e-rules}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - {{apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}}
      - {{apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [services, configmaps]}}
  variables:
    - name: containers
      expression: "object.kind == 'Deployment' ? object.spec.template.spec.containers : []"
  validations:
    - expression: "variables.containers.all(c, c.image.startsWith('registry.acme.example/'))"
      messageExpression: "'image ' + variables.containers.filter(c, !c.image.startsWith('registry.acme.example/'))[0].image + ' is not from registry.acme.example'"
      reason: Forbidden
    - expression: "object.kind != 'Service' || object.spec.?type.orValue('ClusterIP') != 'LoadBalancer'"
      message: no LoadBalancer Services
    - expression: "'team' in object.metadata.?labels.orValue({{}})"
      messageExpression: "object.kind + ' ' + object.metadata.name + ' has no team label'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: e2e-rules}}
spec:
  policyName: e2e-rules
  validationActions: [Deny]
  matchResources:
    objectSelector: {{matchLabels: {{vap-e2e: "on"}}}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: e2e-replicas}}
spec:
  paramKind: {{apiVersion: v1, kind: ConfigMap}}
  matchConstraints:
    resourceRules:
      - {{apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}}
  validations:
    - expression: "object.spec.replicas <= int(params.data.max)"
      messageExpression: "'replicas ' + string(object.spec.replicas) + ' is over ' + params.data.max"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: e2e-replicas}}
spec:
  policyName: e2e-replicas
  validationActions: [Deny]
  paramRef: {{name: replica-limits, namespace: {ns}, parameterNotFoundAction: Deny}}
  matchResources:
    objectSelector: {{matchLabels: {{vap-e2e: "on"}}}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: e2e-latest}}
spec:
  matchConstraints:
    resourceRules:
      - {{apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}}
  validations:
    - expression: "object.spec.template.spec.containers.all(c, !c.image.endsWith(':latest'))"
      message: images must not use the latest tag
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: e2e-latest}}
spec:
  policyName: e2e-latest
  validationActions: [Warn]
  matchResources:
    objectSelector: {{matchLabels: {{vap-e2e: "on"}}}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: e2e-namespace}}
spec:
  matchConstraints:
    namespaceSelector: {{matchLabels: {{e2e-tier: gold}}}}
    resourceRules:
      - {{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}}
  validations:
    - expression: "object.data.?a.orValue('') != 'not-in-' + namespaceObject.metadata.labels['e2e-tier']"
      messageExpression: "'not in a ' + namespaceObject.metadata.labels['e2e-tier'] + ' namespace like ' + namespaceObject.metadata.name"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: e2e-namespace}}
spec:
  policyName: e2e-namespace
  validationActions: [Deny]
  matchResources:
    objectSelector: {{matchLabels: {{vap-e2e: "on"}}}}
"#
    )
}

fn params(ns: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "replica-limits", "namespace": ns}, "data": {"max": "5"}})
}

fn labels(team: bool) -> Value {
    match team {
        true => json!({"vap-e2e": "on", "team": "shop"}),
        false => json!({"vap-e2e": "on"}),
    }
}

fn deployment(name: &str, image: &str, replicas: u32) -> (&'static str, Value) {
    (
        "deployments",
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels(true)},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": image}]}}}}),
    )
}

fn service(name: &str, kind: &str, team: bool) -> (&'static str, Value) {
    (
        "services",
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels(team)},
            "spec": {"type": kind, "selector": {"app": name}, "ports": [{"port": 80}]}}),
    )
}

fn config_map(name: &str, team: bool) -> (&'static str, Value) {
    config_map_of(name, team, "b")
}

fn config_map_of(name: &str, team: bool, a: &str) -> (&'static str, Value) {
    (
        "configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels(team)},
            "data": {"a": a}}),
    )
}

/// The objects judged in both phases.
fn cases() -> Vec<(&'static str, Value)> {
    vec![
        deployment("good", "registry.acme.example/app:1.0", 2),
        deployment("foreign", "docker.io/library/nginx:1.27", 2),
        deployment("latest", "registry.acme.example/app:latest", 2),
        deployment("foreign-latest", "docker.io/library/nginx:latest", 2),
        deployment("wide", "registry.acme.example/app:1.0", 9),
        service("web", "ClusterIP", true),
        service("edge", "LoadBalancer", true),
        service("bare-edge", "LoadBalancer", false),
        config_map("settings", true),
        config_map("loose", false),
        config_map_of("gold", true, "not-in-gold"),
    ]
}

/// What the client saw of one create.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    http_status: u16,
    reason: String,
    message: String,
    warnings: Vec<String>,
}

/// A dry-run create of `object` in `ns`, sent by hand: kube's typed API drops the warning
/// headers.
async fn attempt(client: &Client, ns: &str, (resource, object): &(&str, Value)) -> Verdict {
    let prefix = match object["apiVersion"].as_str() {
        Some("v1") => "/api/v1".to_owned(),
        Some(group_version) => format!("/apis/{group_version}"),
        None => panic!("no apiVersion: {object}"),
    };
    let pp = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let request = kube::core::Request::new(format!("{prefix}/namespaces/{ns}/{resource}"))
        .create(&pp, serde_json::to_vec(object).unwrap())
        .unwrap();
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .unwrap();
    let http_status = response.status().as_u16();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    let text = |key: &str| body[key].as_str().unwrap_or("").to_owned();
    let (reason, message) = match body["kind"].as_str() {
        Some("Status") => (text("reason"), text("message")),
        _ => (String::new(), String::new()),
    };
    Verdict {
        http_status,
        reason,
        message: message
            .trim_start_matches("admission webhook \"validate.portier.dev\" denied the request: ")
            .to_owned(),
        warnings,
    }
}

async fn verdicts(client: &Client, ns: &str) -> Vec<Verdict> {
    let mut out = Vec::new();
    for case in cases() {
        out.push(attempt(client, ns, &case).await);
    }
    out
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(yaml).unwrap()
}

/// Waits until a create of `case` is refused (`refused`) or admitted.
async fn until(client: &Client, ns: &str, case: (&str, Value), refused: bool, what: &str) {
    eventually(what, || {
        let case = case.clone();
        async move {
            let verdict = attempt(client, ns, &case).await;
            ((verdict.http_status >= 400) == refused).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portier_and_the_api_server_agree_on_the_same_policies() {
    // A policy that selects nothing: portier allows everything until phase 2.
    let inert = "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: inert}\nspec: {check: privileged, mode: audit, match: {namespaces: [nowhere]}}\n";
    // With a kubeconfig: portier's namespace cache gives namespaceSelector and namespaceObject.
    let kubeconfig = k8s::cluster().kubeconfig.to_str().unwrap().to_owned();
    let portier = Portier::start_with(
        "vap",
        &[("inert.yaml".to_owned(), inert.to_owned())],
        &["--kubeconfig", &kubeconfig],
    )
    .await;
    let client = portier.client.clone();
    let ns = portier.ns.clone();
    let pp = PostParams::default();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let label = json!({"metadata": {"labels": {"e2e-tier": "gold"}}});
    namespaces
        .patch(&ns, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    config_maps.create(&pp, &object(params(&ns))).await.unwrap();

    // Phase 1: the API server's own ValidatingAdmissionPolicy plugin.
    let yaml = policies(&ns);
    let vaps: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(client.clone());
    for doc in documents(&yaml) {
        match doc["kind"].as_str() {
            Some("ValidatingAdmissionPolicy") => {
                vaps.create(&pp, &object(doc)).await.unwrap();
            }
            _ => {
                bindings.create(&pp, &object(doc)).await.unwrap();
            }
        }
    }
    // Policies apply once the API server has compiled them and its informers have them.
    until(
        &client,
        &ns,
        deployment("probe", "docker.io/x:1", 1),
        true,
        "the VAPs to deny",
    )
    .await;
    until(
        &client,
        &ns,
        deployment("probe", "registry.acme.example/x:1", 9),
        true,
        "the params binding to deny",
    )
    .await;
    until(
        &client,
        &ns,
        config_map("probe", false),
        true,
        "the VAPs to judge ConfigMaps",
    )
    .await;
    let api_server = verdicts(&client, &ns).await;

    // Phase 2: the same documents in portier's policy directory, the API server's removed.
    for doc in documents(&yaml) {
        let name = doc["metadata"]["name"].as_str().unwrap().to_owned();
        match doc["kind"].as_str() {
            Some("ValidatingAdmissionPolicy") => {
                vaps.delete(&name, &DeleteParams::default()).await.unwrap();
            }
            _ => {
                bindings
                    .delete(&name, &DeleteParams::default())
                    .await
                    .unwrap();
            }
        }
    }
    until(
        &client,
        &ns,
        deployment("probe", "docker.io/x:1", 1),
        false,
        "the VAPs to be gone",
    )
    .await;
    until(
        &client,
        &ns,
        config_map("probe", false),
        false,
        "the VAPs to be gone",
    )
    .await;
    // Route Services and ConfigMaps to portier as well.
    let webhooks: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mut configuration =
        serde_json::to_value(webhooks.get(&portier.config_name()).await.unwrap()).unwrap();
    configuration["webhooks"][0]["rules"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
            "resources": ["services", "configmaps"], "scope": "Namespaced"
        }));
    webhooks
        .replace(&portier.config_name(), &pp, &object(configuration))
        .await
        .unwrap();
    let params_file = serde_json::to_string(&params(&ns)).unwrap();
    std::fs::write(portier.policy_dir().join("params.yaml"), params_file).unwrap();
    std::fs::write(portier.policy_dir().join("policies.yaml"), &yaml).unwrap();
    until(
        &client,
        &ns,
        deployment("probe", "docker.io/x:1", 1),
        true,
        "portier to load the VAPs",
    )
    .await;
    until(
        &client,
        &ns,
        config_map("probe", false),
        true,
        "the webhook to judge ConfigMaps",
    )
    .await;
    let portier_verdicts = verdicts(&client, &ns).await;

    let disagreements: Vec<String> = cases()
        .iter()
        .zip(&api_server)
        .zip(&portier_verdicts)
        .filter(|((_, theirs), ours)| theirs != ours)
        .map(|((case, theirs), ours)| {
            let name = case.1["metadata"]["name"].as_str().unwrap();
            format!("{name}:\n  the API server: {theirs:?}\n  portier:        {ours:?}")
        })
        .collect();
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    // The cases cover what they claim to: denials with both reasons, a warning, admissions.
    let statuses: Vec<u16> = api_server.iter().map(|v| v.http_status).collect();
    assert_eq!(
        statuses,
        [201, 403, 201, 403, 422, 201, 422, 422, 201, 422, 422],
        "{api_server:#?}"
    );
    assert_eq!(api_server[2].warnings.len(), 1, "{api_server:#?}");
    assert!(api_server[0].warnings.is_empty(), "{api_server:#?}");
    portier.unregister().await;
}

/// What the API server refuses to store, portier refuses to load: expressions outside the
/// environment a ValidatingAdmissionPolicy compiles against. `cel.bind` (cel-go's Bindings
/// extension, which Kubernetes enables for DRA device selectors but not for admission
/// policies) and `authorizer` (portier has none) among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expressions_the_api_server_refuses_portier_refuses_too() {
    let client = k8s::cluster().client().await;
    let vaps: Api<ValidatingAdmissionPolicy> = Api::all(client);
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let policy = |name: &str, expression: &str| {
        format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata: {{name: {name}}}\nspec:\n  matchConstraints:\n    resourceRules:\n      - {{apiGroups: [''], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}}\n  validations:\n    - expression: {expression:?}\n"
        )
    };
    let accepted = policy("accepted", "object.metadata.name.startsWith('a')");
    let stored = vaps
        .create(&dry_run, &object(documents(&accepted).remove(0)))
        .await;
    assert!(stored.is_ok(), "a valid policy must be stored: {stored:?}");
    portier::policy::Sources::from_files(vec![("accepted.yaml".to_owned(), accepted)])
        .compile()
        .unwrap_or_else(|e| panic!("portier must load what the API server stores: {e}"));
    // (name, expression, whether the API server stores it, whether portier loads it)
    for (name, expression, stored, loads) in [
        (
            "bind",
            "cel.bind(n, object.metadata.name, n.startsWith('a'))",
            false,
            false,
        ),
        // The API server cannot know portier has no authorizer.
        (
            "authorizer",
            "authorizer.group('').resource('pods').check('get').allowed()",
            true,
            false,
        ),
        (
            "unknown-function",
            "object.metadata.name.shout()",
            false,
            false,
        ),
        (
            "syntax",
            "object.metadata.name.startsWith('a'",
            false,
            false,
        ),
        ("wrong-type", "1 + 'a' == 2", false, false),
        // `object` has no schema when a policy is stored: a type error inside it surfaces
        // when it runs, as an evaluation error that failurePolicy decides, in both.
        ("dynamic-type", "object.metadata.name + 1 == 2", true, true),
    ] {
        let yaml = policy(name, expression);
        let answer = vaps
            .create(&dry_run, &object(documents(&yaml).remove(0)))
            .await;
        match (stored, answer) {
            (true, Ok(_)) => {}
            (true, Err(e)) => panic!("{name}: the API server refused {expression:?}: {e}"),
            (false, Ok(_)) => panic!("{name}: the API server stored {expression:?}"),
            (false, Err(kube::Error::Api(status))) => {
                assert_eq!(status.code, 422, "{name}: {status:?}")
            }
            (false, Err(e)) => panic!("{name}: {e}"),
        }
        let loaded =
            portier::policy::Sources::from_files(vec![(format!("{name}.yaml"), yaml)]).compile();
        assert_eq!(
            loaded.is_ok(),
            loads,
            "{name}: {expression:?}: {:?}",
            loaded.err()
        );
    }
}
