//! portier behind a real kube-apiserver (`tests/k8s`): the `portier serve` binary on
//! 127.0.0.1, registered with the webhook configurations the Helm chart renders
//! (`deploy/portier.yaml`: the same rules, selectors, match conditions, failurePolicy and
//! timeouts) with `clientConfig.url` pointing at it, and objects created through a kube client.
//! The API server makes the AdmissionReviews, calls /mutate before /validate, applies the
//! failure policy, returns warnings and writes audit annotations: nothing here imitates it.
//!
//! Each test owns a namespace and a portier process. Its webhook configurations (named after
//! the namespace) add one requirement to the chart's namespace selector: the namespace carries
//! the test's label, so tests running side by side never call each other's portier. That
//! harness ([`Portier`]) is `tests/k8s/webhooks.rs`.

mod common;
mod k8s;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::metrics::counter;
use common::replace_file;
use k8s::objects::{object, refusal};
use k8s::webhooks::Portier;
use k8s::{eventually, test_label};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn policy(name: &str, check: &str, mode: &str, extra: &str) -> String {
    format!(
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: {name}}}\nspec:\n  check: {check}\n  mode: {mode}\n{extra}"
    )
}

/// A pod spec the chart's default set admits (restricted Pod Security, resources).
fn compliant_spec() -> Value {
    json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "app",
            "image": "registry.example.com/shop/app:1.0",
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
        }]
    })
}

/// The compliant spec with a privileged container. The API server itself refuses
/// `privileged: true` beside `allowPrivilegeEscalation: false` before validating webhooks run,
/// so that field goes.
fn privileged_spec() -> Value {
    let mut spec = compliant_spec();
    spec["containers"][0]["securityContext"] = json!({"privileged": true});
    spec
}

fn pod(name: &str, spec: Value) -> Pod {
    object(json!({"metadata": {"name": name, "labels": {"app": name}}, "spec": spec}))
}

fn deployment(name: &str, spec: Value) -> Deployment {
    object(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec}
        }
    }))
}

fn cron_job(name: &str, mut spec: Value) -> CronJob {
    spec["restartPolicy"] = json!("Never");
    object(json!({
        "metadata": {"name": name},
        "spec": {
            "schedule": "@daily",
            "jobTemplate": {"spec": {"template": {"spec": spec}}}
        }
    }))
}

const DENIED: &str = "admission webhook \"validate.portier.dev\" denied the request: ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_policies_admit_compliant_and_deny_violating_pods_deployments_and_cronjobs() {
    let portier = Portier::start_as_chart("admit").await;
    let pp = PostParams::default();

    // Compliant objects of each kind are created and stored as sent.
    let stored = portier
        .pods()
        .create(&pp, &pod("web", compliant_spec()))
        .await
        .unwrap();
    assert_eq!(
        stored.metadata.namespace.as_deref(),
        Some(portier.ns.as_str())
    );
    portier
        .api::<Deployment>()
        .create(&pp, &deployment("web", compliant_spec()))
        .await
        .unwrap();
    portier
        .api::<CronJob>()
        .create(&pp, &cron_job("nightly", compliant_spec()))
        .await
        .unwrap();

    // Violating ones are refused with portier's message, which names the field.
    let (code, message) = refusal(
        portier
            .pods()
            .create(&pp, &pod("privileged", privileged_spec()))
            .await,
    );
    assert_eq!(code, 403, "{message}");
    assert!(message.starts_with(DENIED), "{message}");
    assert!(
        message.contains("disallow-privileged/privileged: container \"app\" spec.containers[0].securityContext.privileged: is true"),
        "{message}"
    );
    assert!(message.contains(" — "), "says how to fix it: {message}");

    let mut root = compliant_spec();
    root["containers"][0]["securityContext"]["runAsUser"] = json!(0);
    let (code, message) = refusal(
        portier
            .api::<Deployment>()
            .create(&pp, &deployment("root", root))
            .await,
    );
    assert_eq!(code, 403, "{message}");
    assert!(
        message.starts_with(DENIED)
            && message.contains("require-run-as-non-root/run-as-non-root: container \"app\" spec.template.spec.containers[0].securityContext.runAsUser"),
        "{message}"
    );

    let mut host_pid = compliant_spec();
    host_pid["hostPID"] = json!(true);
    let (code, message) = refusal(
        portier
            .api::<CronJob>()
            .create(&pp, &cron_job("host", host_pid))
            .await,
    );
    assert_eq!(code, 403, "{message}");
    assert!(
        message.starts_with(DENIED)
            && message.contains("disallow-host-namespaces/host-namespaces: pod spec.jobTemplate.spec.template.spec.hostPID"),
        "{message}"
    );

    let mut no_resources = compliant_spec();
    no_resources["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("resources");
    let (_, message) = refusal(
        portier
            .pods()
            .create(&pp, &pod("greedy", no_resources))
            .await,
    );
    assert!(
        message.contains("require-resources/resource-limits: container \"app\" spec.containers[0].resources.requests.cpu"),
        "{message}"
    );

    // Updates are judged too: making the stored Deployment privileged is refused, and the
    // stored object stays as it was.
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "securityContext": {"privileged": true, "allowPrivilegeEscalation": null}}
    ]}}}});
    let (code, message) = refusal(
        portier
            .api::<Deployment>()
            .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
            .await,
    );
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("spec.template.spec.containers[0].securityContext.privileged"),
        "{message}"
    );
    let web = portier.api::<Deployment>().get("web").await.unwrap();
    let container = &web.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(
        container.security_context.as_ref().unwrap().privileged,
        None
    );

    // `kubectl debug` adds ephemeral containers through pods/ephemeralcontainers, which the
    // chart's rules include: a privileged one is refused there.
    let debug = json!({"spec": {"ephemeralContainers": [{
        "name": "debugger", "image": "registry.example.com/busybox:1",
        "securityContext": {"privileged": true}
    }]}});
    let (code, message) = refusal(
        portier
            .pods()
            .patch_subresource(
                "ephemeralcontainers",
                "web",
                &PatchParams::default(),
                &Patch::Strategic(&debug),
            )
            .await,
    );
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("ephemeral container \"debugger\" spec.ephemeralContainers[0].securityContext.privileged"),
        "{message}"
    );
    portier.unregister().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_mode_reaches_the_client_as_warning_headers() {
    let policies = vec![(
        "warn.yaml".to_owned(),
        policy("warn-privileged", "privileged", "warn", ""),
    )];
    let portier = Portier::start("warn", &policies).await;
    // kube's typed API drops response headers: send the create by hand through the same client.
    let body = serde_json::to_vec(&pod("loud", privileged_spec())).unwrap();
    let request = kube::core::Request::new(format!("/api/v1/namespaces/{}/pods", portier.ns))
        .create(&PostParams::default(), body)
        .unwrap();
    let response = portier
        .client
        .send(request.map(kube::client::Body::from))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201, "allowed and created");
    let warnings: Vec<String> = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    // RFC 7234 warn-code 299, no agent, the text a quoted-string: what kubectl unquotes and
    // prints as "Warning: ...".
    let quoted = warnings[0]
        .strip_prefix("299 - \"")
        .and_then(|w| w.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{warnings:?}"));
    let mut text = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        text.push(if c == '\\' { chars.next().unwrap() } else { c });
    }
    assert!(
        text.starts_with("warn-privileged/privileged: container \"app\" spec.containers[0].securityContext.privileged"),
        "{text}"
    );
    assert!(text.chars().count() <= 120, "{text}");
    let stored = portier.pods().get("loud").await.unwrap();
    let container = &stored.spec.unwrap().containers[0];
    assert_eq!(
        container.security_context.as_ref().unwrap().privileged,
        Some(true)
    );
    portier.unregister().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_mode_annotations_reach_the_api_servers_audit_log() {
    let policies = vec![
        (
            "audit.yaml".to_owned(),
            policy("audit-privileged", "privileged", "audit", ""),
        ),
        (
            "host.yaml".to_owned(),
            policy("audit-host", "host-namespaces", "audit", ""),
        ),
    ];
    let portier = Portier::start("audit", &policies).await;
    let mut spec = privileged_spec();
    spec["hostIPC"] = json!(true);
    portier
        .pods()
        .create(&PostParams::default(), &pod("quiet", spec))
        .await
        .expect("audit mode allows");
    let events = portier
        .cluster
        .audit_events_settled(&portier.client, &portier.ns)
        .await;
    let create = events
        .iter()
        .find(|e| {
            e["verb"] == "create"
                && e["stage"] == "ResponseComplete"
                && e["objectRef"]["namespace"] == portier.ns.as_str()
                && e["objectRef"]["name"] == "quiet"
        })
        .expect("the create is in the audit log");
    assert_eq!(create["responseStatus"]["code"], 201);
    let annotations = create["annotations"].as_object().unwrap();
    // The API server prefixes each key with the webhook's name.
    let privileged = annotations["validate.portier.dev/audit-privileged"]
        .as_str()
        .unwrap();
    assert!(
        privileged.contains("container \"app\" spec.containers[0].securityContext.privileged"),
        "{privileged}"
    );
    let host = annotations["validate.portier.dev/audit-host"]
        .as_str()
        .unwrap();
    assert!(host.contains("spec.hostIPC"), "{host}");
    portier.unregister().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutation_is_stored_and_the_mutated_object_is_then_admitted() {
    let policies = vec![
        (
            "resources.yaml".to_owned(),
            policy(
                "require-resources",
                "resource-limits",
                "enforce",
                "  mutate: true\n  params:\n    defaults: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 500m, memory: 256Mi}}\n",
            ),
        ),
        (
            "restricted.yaml".to_owned(),
            policy(
                "pss-restricted",
                "pod-security",
                "enforce",
                "  mutate: true\n  params: {level: restricted}\n",
            ),
        ),
        (
            "non-root.yaml".to_owned(),
            policy(
                "non-root",
                "run-as-non-root",
                "enforce",
                "  mutate: true\n  params: {runAsUser: 10001, runAsGroup: 10001}\n",
            ),
        ),
    ];
    let portier = Portier::start("mutate", &policies).await;
    let pp = PostParams::default();
    let bare = json!({"containers": [
        {"name": "app", "image": "registry.example.com/shop/app:1.0"},
        {"name": "sidecar", "image": "registry.example.com/shop/proxy:1.0",
         "resources": {"limits": {"memory": "32Mi"}}}
    ]});
    portier
        .pods()
        .create(&pp, &pod("bare", bare.clone()))
        .await
        .expect("the mutated pod passes validation");
    // Read back from the API server (a quorum read from etcd): the defaults are stored.
    let stored = serde_json::to_value(portier.pods().get("bare").await.unwrap()).unwrap();
    let spec = &stored["spec"];
    assert_eq!(
        spec["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 10001, "runAsGroup": 10001,
               "seccompProfile": {"type": "RuntimeDefault"}})
    );
    for c in spec["containers"].as_array().unwrap() {
        assert_eq!(
            c["securityContext"]["allowPrivilegeEscalation"], false,
            "{c}"
        );
        assert_eq!(
            c["securityContext"]["capabilities"]["drop"],
            json!(["ALL"]),
            "{c}"
        );
    }
    assert_eq!(
        spec["containers"][0]["resources"],
        json!({"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}})
    );
    // A request is never filled in above the limit the user wrote.
    assert_eq!(
        spec["containers"][1]["resources"],
        json!({"requests": {"cpu": "100m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "32Mi"}})
    );

    // A Deployment's pod template is filled in the same way.
    portier
        .api::<Deployment>()
        .create(&pp, &deployment("bare", bare))
        .await
        .expect("the mutated Deployment passes validation");
    let stored = portier.api::<Deployment>().get("bare").await.unwrap();
    let template = serde_json::to_value(stored.spec.unwrap().template.spec.unwrap()).unwrap();
    assert_eq!(template["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        template["containers"][0]["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );

    // What a patch must not fix is left to validation, which refuses it.
    let (code, message) = refusal(
        portier
            .pods()
            .create(
                &pp,
                &pod(
                    "privileged",
                    json!({"containers": [{"name": "app", "image": "registry.example.com/a:1",
                        "securityContext": {"privileged": true}}]}),
                ),
            )
            .await,
    );
    assert_eq!(code, 403, "{message}");
    assert!(
        message.starts_with(DENIED)
            && message.contains("spec.containers[0].securityContext.privileged"),
        "{message}"
    );
    portier.unregister().await;
}

/// Adds the test's label to namespace `name`, creating the namespace if it does not exist.
async fn label_namespace(client: &Client, name: &str, label: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(name).await.unwrap().is_none() {
        let ns: Namespace = object(json!({"metadata": {"name": name}}));
        match namespaces.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("{e}"),
        }
    }
    let patch = json!({"metadata": {"labels": {label: "true"}}});
    namespaces
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_excluded_namespaces_are_never_sent_to_portier() {
    let mut portier = Portier::start_as_chart("excluded").await;
    // kube-system exists once the API server's bootstrap has made it.
    let namespaces: Api<Namespace> = Api::all(portier.client.clone());
    eventually("kube-system to exist", || {
        let namespaces = namespaces.clone();
        async move { namespaces.get_opt("kube-system").await.unwrap().map(|_| ()) }
    })
    .await;
    // The test's own label on kube-system and portier's namespace: now only the chart's
    // exclusion keeps them from this test's webhooks.
    let label = test_label(&portier.ns);
    for name in ["kube-system", "portier"] {
        label_namespace(&portier.client, name, &label).await;
    }
    // A namespace labelled after them: once the webhooks reach a pod there, the API server
    // has seen the labels above too (its namespace cache applies changes in order).
    let control = portier.cluster.unique("control");
    label_namespace(&portier.client, &control, &label).await;
    // Stopped only now: Namespace writes go to portier's webhook too, and labelling the
    // control namespace is one.
    portier.stop();
    let control_pods: Api<Pod> = Api::namespaced(portier.client.clone(), &control);
    let message = eventually("the webhooks to select the control namespace", || {
        let control_pods = control_pods.clone();
        async move {
            match control_pods
                .create(&PostParams::default(), &pod("probe", compliant_spec()))
                .await
            {
                Ok(_) => {
                    control_pods
                        .delete("probe", &Default::default())
                        .await
                        .unwrap();
                    None
                }
                Err(e) => Some(e.to_string()),
            }
        }
    })
    .await;
    assert!(message.contains("failed calling webhook"), "{message}");

    // portier is down and failurePolicy is Fail, yet the excluded namespaces accept even a
    // privileged pod: the API server never asks portier about them, so they cannot lock out.
    for name in ["kube-system", "portier"] {
        let pods: Api<Pod> = Api::namespaced(portier.client.clone(), name);
        let pod_name = portier.cluster.unique("unjudged");
        pods.create(&PostParams::default(), &pod(&pod_name, privileged_spec()))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        pods.delete(&pod_name, &Default::default()).await.unwrap();
    }
    for name in ["kube-system", "portier"] {
        let patch = json!({"metadata": {"labels": {label.as_str(): null}}});
        namespaces
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    portier.unregister().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_portier_down_failure_policy_fail_denies_and_ignore_admits() {
    let mut portier = Portier::start_as_chart("down").await;
    let port = portier.url.rsplit(':').next().unwrap().to_owned();
    portier.stop();
    let (code, message) = refusal(
        portier
            .pods()
            .create(&PostParams::default(), &pod("web", compliant_spec()))
            .await,
    );
    // The API server's own words: it could not call the webhook (/mutate comes first).
    assert_eq!(code, 500, "{message}");
    assert!(
        message.starts_with("Internal error occurred: failed calling webhook \"mutate.portier.dev\": failed to call webhook: Post \"https://127.0.0.1:")
            && message.contains(&format!("127.0.0.1:{port}/mutate?timeout=3s\"")),
        "{message}"
    );
    assert!(portier.pods().get_opt("web").await.unwrap().is_none());

    // failurePolicy: Ignore on both webhooks (a strategic merge: webhooks merge by name).
    let pp = PatchParams::default();
    let ignore = |name: &str| json!({"webhooks": [{"name": name, "failurePolicy": "Ignore"}]});
    Api::<MutatingWebhookConfiguration>::all(portier.client.clone())
        .patch(
            &portier.config_name(),
            &pp,
            &Patch::Strategic(ignore("mutate.portier.dev")),
        )
        .await
        .unwrap();
    Api::<ValidatingWebhookConfiguration>::all(portier.client.clone())
        .patch(
            &portier.config_name(),
            &pp,
            &Patch::Strategic(ignore("validate.portier.dev")),
        )
        .await
        .unwrap();
    let pods = portier.pods();
    let name = eventually("the API server to apply failurePolicy: Ignore", || {
        let pods = pods.clone();
        let name = portier.cluster.unique("unchecked");
        async move {
            match pods
                .create(&PostParams::default(), &pod(&name, privileged_spec()))
                .await
            {
                Ok(_) => Some(name),
                Err(e) => {
                    // Until the new policy applies, only the same refusal is acceptable.
                    assert!(e.to_string().contains("failed calling webhook"), "{e}");
                    None
                }
            }
        }
    })
    .await;
    let stored = pods.get(&name).await.unwrap();
    let container = &stored.spec.unwrap().containers[0];
    assert_eq!(
        container.security_context.as_ref().unwrap().privileged,
        Some(true),
        "admitted without a check"
    );
    portier.unregister().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_reload_during_api_server_traffic_fails_no_request() {
    let lenient = policy("no-privileged", "privileged", "enforce", "");
    let strict = format!(
        "{lenient}---\n{}",
        policy("no-host", "host-namespaces", "enforce", "")
    );
    let portier = Portier::start("reload", &[("set.yaml".to_owned(), lenient.clone())]).await;
    let reloads_before = counter(
        &portier.metrics(),
        "portier_policy_reloads_total{result=\"ok\"}",
    );

    // Two clients create compliant pods without pause until the reloads are over.
    let stop = Arc::new(AtomicBool::new(false));
    let created = Arc::new(AtomicUsize::new(0));
    let mut traffic = Vec::new();
    for worker in 0..2 {
        let pods = portier.pods();
        let stop = Arc::clone(&stop);
        let created = Arc::clone(&created);
        traffic.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("load-{worker}-{i}");
                i += 1;
                match pods
                    .create(&PostParams::default(), &pod(&name, compliant_spec()))
                    .await
                {
                    Ok(_) => {
                        created.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failures.push(format!("{name}: {e}")),
                }
            }
            failures
        }));
    }
    eventually("the first pods of the traffic", || {
        let created = created.load(Ordering::Relaxed);
        async move { (created > 0).then_some(()) }
    })
    .await;
    let created_before = created.load(Ordering::Relaxed);
    let file = portier.policy_dir().join("set.yaml");
    for i in 1..=10u64 {
        let text = if i % 2 == 1 { &strict } else { &lenient };
        replace_file(&file, text, 0o644);
        eventually(&format!("reload {i}"), || {
            let reloads = counter(
                &portier.metrics(),
                "portier_policy_reloads_total{result=\"ok\"}",
            );
            async move { (reloads >= reloads_before + i).then_some(()) }
        })
        .await;
    }
    // The last set in force is the strict one: a pod on the host network is refused now.
    replace_file(&file, &strict, 0o644);
    eventually("reload 11", || {
        let reloads = counter(
            &portier.metrics(),
            "portier_policy_reloads_total{result=\"ok\"}",
        );
        async move { (reloads > reloads_before + 10).then_some(()) }
    })
    .await;
    let created_during = created.load(Ordering::Relaxed) - created_before;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for worker in traffic {
        failures.extend(worker.await.unwrap());
    }
    assert_eq!(failures, Vec::<String>::new(), "no request failed");
    assert!(created_during > 0, "the traffic went on during the reloads");
    let metrics = portier.metrics();
    assert_eq!(
        counter(&metrics, "portier_policy_reloads_total{result=\"failed\"}"),
        0
    );
    let mut host = compliant_spec();
    host["hostNetwork"] = json!(true);
    let (_, message) = refusal(
        portier
            .pods()
            .create(&PostParams::default(), &pod("host", host))
            .await,
    );
    assert!(
        message.starts_with(DENIED)
            && message.contains("no-host/host-namespaces: pod spec.hostNetwork"),
        "{message}"
    );
    portier.unregister().await;
}
