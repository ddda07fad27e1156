//! portier's `level: namespace` against the real thing: the test API server's own Pod Security
//! admission (on by default in v1.32) judges pods in one namespace, portier (behind the same
//! API server, reading labels through its namespace cache) judges the same objects in a twin
//! namespace with the same labels that PSA is configured to leave alone
//! (`k8s::PSA_EXEMPT_NAMESPACES`). Every sample of `tests/fixtures/pss/pods` is created with
//! `dryRun=All` in both, for a matrix of labels (levels, versions, warn defaulting to enforce), and the API
//! server's answers must match: status code, the refusal's message after the webhook's prefix,
//! every `Warning` header, and the audit annotations after the annotation prefix.

mod common;
mod k8s;

use std::collections::BTreeMap;

use http_body_util::BodyExt;
use k8s::webhooks::Portier;
use k8s::{PSA_EXEMPT_NAMESPACES, test_label};
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

/// The PSA-compatible preset as shipped (`presets/psa-compatible.yaml`, the chart's
/// `psaCompatible`), switched to enforce as the migration guide's last step does: what is
/// compared with the API server's own PSA is what users run.
fn preset() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/presets/psa-compatible.yaml");
    let shipped = std::fs::read_to_string(path).unwrap();
    let enforcing = shipped.replace("  mode: audit\n", "  mode: enforce\n");
    assert_ne!(enforcing, shipped, "the preset ships in audit mode");
    enforcing
}

/// The label rows: each is one pair of namespaces. `latest` means v1.32 in this API server
/// and v1.37 in portier; rows with it skip the samples whose verdict changed after v1.32.
const ROWS: &[&[(&str, &str)]] = &[
    &[("enforce", "restricted"), ("enforce-version", "v1.32")],
    &[
        ("enforce", "baseline"),
        ("warn", "restricted"),
        ("warn-version", "v1.32"),
        ("audit", "restricted"),
    ],
    &[
        ("enforce", "baseline"),
        ("enforce-version", "v1.24"),
        ("warn", "restricted"),
        ("warn-version", "v1.22"),
        ("audit", "baseline"),
        ("audit-version", "v1.0"),
    ],
    // Invalid label values cannot be tried here: the API server's PSA refuses them on every
    // Namespace write (src/policy/pss/labels.rs tests their reading against upstream's words).
    &[
        ("enforce", "baseline"),
        ("enforce-version", "v1.32"),
        ("audit", "restricted"),
        ("audit-version", "v1.25"),
    ],
    &[
        ("warn", "baseline"),
        ("warn-version", "v1.0"),
        ("audit", "restricted"),
        ("audit-version", "v1.18"),
    ],
    &[
        ("enforce", "privileged"),
        ("warn", "restricted"),
        ("warn-version", "v1.32"),
    ],
    &[],
];

/// The rows that judge at `latest` somewhere (an unversioned level).
const LATEST_ROWS: [usize; 1] = [1];

/// Samples judged differently by v1.32 and by newer definitions.
const NEWER_THAN_V1_32: &[&str] = &["probe-host", "userns", "sysctls"];

fn samples() -> Vec<Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pss/pods");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        for mut doc in serde_saphyr::from_multiple::<Value>(&text).unwrap() {
            doc["metadata"].as_object_mut().unwrap().remove("namespace");
            // Each pod again as a bare PodTemplate: a pod-template resource to PSA too.
            if doc["kind"] == "Pod" {
                out.push(json!({
                    "apiVersion": "v1", "kind": "PodTemplate",
                    "metadata": {"name": doc["metadata"]["name"]},
                    "template": {"metadata": doc["metadata"], "spec": doc["spec"]},
                }));
            }
            out.push(doc);
        }
    }
    out
}

fn collection(doc: &Value, ns: &str) -> String {
    let resource = match doc["kind"].as_str().unwrap() {
        "Pod" => "pods",
        "PodTemplate" => "podtemplates",
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "DaemonSet" => "daemonsets",
        "ReplicaSet" => "replicasets",
        "Job" => "jobs",
        "CronJob" => "cronjobs",
        other => panic!("no resource for {other}"),
    };
    let prefix = match doc["apiVersion"].as_str().unwrap() {
        "v1" => "/api/v1".to_owned(),
        group => format!("/apis/{group}"),
    };
    format!("{prefix}/namespaces/{ns}/{resource}?dryRun=All")
}

/// What the API server answered: status, the refusal's message, the warnings.
#[derive(Debug, PartialEq)]
struct Answer {
    code: u16,
    message: String,
    warnings: Vec<String>,
}

/// Sends `request`: the status code, every `Warning` header, the body.
async fn send(
    client: &Client,
    request: http::Request<kube::client::Body>,
) -> (u16, Vec<String>, Value) {
    let response = client.send(request).await.unwrap();
    let code = response.status().as_u16();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (code, warnings, serde_json::from_slice(&body).unwrap())
}

async fn dry_run(client: &Client, doc: &Value, ns: &str) -> Answer {
    let request = http::Request::post(collection(doc, ns))
        .header("content-type", "application/json")
        .body(kube::client::Body::from(serde_json::to_vec(doc).unwrap()))
        .unwrap();
    let (code, warnings, body) = send(client, request).await;
    let message = match code {
        200..=299 => String::new(),
        _ => {
            let message = body["message"].as_str().unwrap_or_default();
            // A webhook's refusal reads `admission webhook "NAME" denied the request: ...`.
            match message.split_once("denied the request: ") {
                Some((_, rest)) => rest.to_owned(),
                None => message.to_owned(),
            }
        }
    };
    // The API server's own validation prints Go pointers, different on every call.
    let pointers = regex::Regex::new("0x[0-9a-f]+").unwrap();
    Answer {
        code,
        message: pointers.replace_all(&message, "0x").into_owned(),
        warnings,
    }
}

async fn labelled(client: &Client, name: &str, labels: BTreeMap<String, String>) {
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("cannot create namespace {name}: {e}"));
}

/// The audit annotations of the dry-run creations in `ns`, by object name, with the part of
/// each key's `source/` (PSA's `pod-security.kubernetes.io`, the webhook's name) dropped.
fn audit_annotations(
    cluster: &k8s::Cluster,
    ns: &str,
    source: &str,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for event in cluster.audit_events() {
        if event["objectRef"]["namespace"] != ns
            || event["verb"] != "create"
            || event["stage"] != "ResponseComplete"
        {
            continue;
        }
        let name = event["requestObject"]["metadata"]["name"]
            .as_str()
            .or(event["objectRef"]["name"].as_str())
            .or(event["responseObject"]["details"]["name"].as_str())
            .unwrap_or(event["requestURI"].as_str().unwrap_or(""))
            .to_owned();
        let mut annotations = BTreeMap::new();
        for (key, value) in event["annotations"].as_object().into_iter().flatten() {
            let Some((prefix, key)) = key.split_once('/') else {
                continue;
            };
            if prefix == source {
                annotations.insert(key.to_owned(), value.as_str().unwrap_or("").to_owned());
            }
        }
        out.insert(
            format!(
                "{}#{}",
                event["objectRef"]["resource"].as_str().unwrap_or(""),
                name
            ),
            annotations,
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portier_answers_as_the_api_servers_own_pod_security_admission() {
    let cluster = k8s::cluster();
    let policies = [("psa.yaml".to_owned(), preset())];
    let kubeconfig = cluster.kubeconfig.to_str().unwrap().to_owned();
    let mut portier = Portier::start_with("psa", &policies, &["--kubeconfig", &kubeconfig]).await;
    let client = portier.client.clone();
    let samples = samples();
    let mut compared = 0;
    let mut templates_warned = 0;
    assert!(ROWS.len() <= PSA_EXEMPT_NAMESPACES.len());
    for (row, labels) in ROWS.iter().enumerate() {
        let psa_labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (format!("pod-security.kubernetes.io/{k}"), v.to_string()))
            .collect();
        let real = format!("real-psa-{row}-{}", portier.ns);
        let ours = PSA_EXEMPT_NAMESPACES[row].to_owned();
        labelled(&client, &real, psa_labels.clone()).await;
        let mut with_test_label = psa_labels.clone();
        // Narrows portier's webhooks to this namespace (not to its PSA-judged twin).
        with_test_label.insert(test_label(&portier.ns), "true".into());
        labelled(&client, &ours, with_test_label).await;
        let uses_latest = LATEST_ROWS.contains(&row);
        for doc in &samples {
            let name = doc["metadata"]["name"].as_str().unwrap();
            if uses_latest && NEWER_THAN_V1_32.contains(&name) {
                continue;
            }
            let psa = dry_run(&client, doc, &real).await;
            let portier_answer = dry_run(&client, doc, &ours).await;
            assert_eq!(portier_answer, psa, "row {row} {labels:?}, sample {name}");
            compared += 1;
            if doc["kind"] == "PodTemplate" && !psa.warnings.is_empty() {
                templates_warned += 1;
            }
        }
        let psa = audit_annotations(cluster, &real, "pod-security.kubernetes.io");
        let got = audit_annotations(cluster, &ours, "validate.portier.dev");
        assert_eq!(got, psa, "audit annotations, row {row} {labels:?}");
    }
    assert!(compared > 100, "{compared}");
    assert!(
        templates_warned > 0,
        "PSA judges PodTemplates: some must have warned"
    );
    portier.stop();
    portier.unregister().await;
    for (row, ours) in PSA_EXEMPT_NAMESPACES.iter().enumerate().take(ROWS.len()) {
        for ns in [(*ours).to_owned(), format!("real-psa-{row}-{}", portier.ns)] {
            let _ = Api::<Namespace>::all(client.clone())
                .delete(&ns, &Default::default())
                .await;
        }
    }
}

/// A merge patch of `ns`'s labels, and what the API server answered (its warnings).
async fn relabel(client: &Client, ns: &str, labels: &[(&str, &str)]) -> Answer {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (format!("pod-security.kubernetes.io/{k}"), json!(v)))
        .collect();
    let patch = json!({"metadata": {"labels": labels}});
    let request = http::Request::patch(format!("/api/v1/namespaces/{ns}"))
        .header("content-type", "application/merge-patch+json")
        .body(kube::client::Body::from(
            serde_json::to_vec(&patch).unwrap(),
        ))
        .unwrap();
    let (code, warnings, body) = send(client, request).await;
    Answer {
        code,
        message: body["message"].as_str().unwrap_or_default().to_owned(),
        warnings,
    }
}

/// Existing pods that violate baseline and restricted in several ways: two replicas of one
/// controller (one warning, "and 1 other pod"), a pod on the host network, a plain pod that
/// only restricted refuses, and one that passes restricted.
fn existing_pods() -> Vec<Value> {
    let container = |extra: Value| {
        let mut c = json!({"name": "c", "image": "registry.example.com/app:1"});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };
    let owner = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
        "uid": "5b0d5e0a-0000-4000-8000-000000000001", "controller": true}]);
    let restricted = json!({"securityContext": {"allowPrivilegeEscalation": false,
        "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"}}});
    vec![
        json!({"metadata": {"name": "web-2", "ownerReferences": owner},
               "spec": {"containers": [container(json!({"securityContext": {"privileged": true}}))]}}),
        json!({"metadata": {"name": "web-1", "ownerReferences": owner},
               "spec": {"containers": [container(json!({"securityContext": {"privileged": true}}))]}}),
        json!({"metadata": {"name": "solo"},
               "spec": {"hostNetwork": true, "containers": [container(json!({}))]}}),
        json!({"metadata": {"name": "plain"}, "spec": {"containers": [container(json!({}))]}}),
        json!({"metadata": {"name": "fine"}, "spec": {"containers": [container(restricted)]}}),
    ]
}

/// PSA's `ValidateNamespace` on a relabelled namespace with existing pods: the API server's
/// own PSA on one namespace, portier on a twin PSA leaves alone, the same pods in both, the
/// same label changes; the warnings must be the same (the twin's one extra is PSA saying it
/// ignores the exempt twin's labels).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tightened_enforce_label_warns_about_existing_pods_as_the_api_servers_own_psa() {
    let cluster = k8s::cluster();
    let policies = [("psa.yaml".to_owned(), preset())];
    let kubeconfig = cluster.kubeconfig.to_str().unwrap().to_owned();
    let mut portier =
        Portier::start_with("psa-relabel", &policies, &["--kubeconfig", &kubeconfig]).await;
    let client = portier.client.clone();
    let real = format!("real-relabel-{}", portier.ns);
    let ours = PSA_EXEMPT_NAMESPACES[ROWS.len()].to_owned();
    labelled(&client, &real, BTreeMap::new()).await;
    labelled(
        &client,
        &ours,
        [(test_label(&portier.ns), "true".to_owned())].into(),
    )
    .await;
    for ns in [&real, &ours] {
        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), ns);
        for pod in existing_pods() {
            pods.create(
                &PostParams::default(),
                &serde_json::from_value(pod).unwrap(),
            )
            .await
            .unwrap();
        }
    }
    let psa_exempt_warning = |labels: &str| {
        format!(
            "299 - \"namespace \\\"{ours}\\\" is exempt from Pod Security, and the policy ({labels}) will be ignored\""
        )
    };
    // Set, tighten, change version only, relax (nothing to say), tighten again.
    let steps: &[(&[(&str, &str)], &str)] = &[
        (
            &[("enforce", "baseline"), ("enforce-version", "v1.32")],
            "enforce=baseline:v1.32",
        ),
        (&[("enforce", "restricted")], "enforce=restricted:v1.32"),
        (&[("enforce-version", "v1.25")], "enforce=restricted:v1.25"),
        (&[("enforce", "baseline")], ""),
        (
            &[("enforce", "restricted"), ("warn", "baseline")],
            "enforce=restricted:v1.25, warn=baseline:latest",
        ),
    ];
    let mut with_pods = 0;
    for (labels, exempt_policy) in steps {
        let psa = relabel(&client, &real, labels).await;
        let mut got = relabel(&client, &ours, labels).await;
        got.warnings
            .retain(|w| *w != psa_exempt_warning(exempt_policy));
        let expected = Answer {
            warnings: psa
                .warnings
                .iter()
                .map(|w| w.replace(&format!("\\\"{real}\\\""), &format!("\\\"{ours}\\\"")))
                .collect(),
            ..psa
        };
        assert_eq!(got, expected, "labels {labels:?}");
        with_pods += usize::from(expected.warnings.len() > 1);
    }
    assert!(with_pods >= 3, "the steps that tighten enforce list pods");
    portier.stop();
    portier.unregister().await;
    for ns in [&real, &ours] {
        let _ = Api::<Namespace>::all(client.clone())
            .delete(ns, &Default::default())
            .await;
    }
}

/// The end-to-end case for label selectors: `serve` reads a namespace's labels from
/// its watch-fed cache, so labelling a namespace changes the verdict on its next pod within a
/// second, and unlabelling it changes it back, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relabelling_a_namespace_changes_the_verdict_within_a_second() {
    const PROD_ONLY: &str = "apiVersion: portier.dev/v1
kind: Policy
metadata: {name: prod-unprivileged}
spec:
  check: privileged
  match: {namespaceSelector: {matchLabels: {tier: prod}}}
";
    let cluster = k8s::cluster();
    let policies = [("prod.yaml".to_owned(), PROD_ONLY.to_owned())];
    let kubeconfig = cluster.kubeconfig.to_str().unwrap().to_owned();
    let mut portier =
        Portier::start_with("relabel", &policies, &["--kubeconfig", &kubeconfig]).await;
    let client = portier.client.clone();
    let privileged = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root"},
        "spec": {"containers": [{"name": "c", "image": "registry.example.com/app:1",
            "securityContext": {"privileged": true}}]}});
    let ns = portier.ns.clone();
    assert_eq!(dry_run(&client, &privileged, &ns).await.code, 201);
    let namespaces = Api::<Namespace>::all(client.clone());
    for (tier, code) in [(json!("prod"), 403), (Value::Null, 201)] {
        let patch = json!({"metadata": {"labels": {"tier": tier}}});
        namespaces
            .patch(
                &ns,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .unwrap();
        let labelled = std::time::Instant::now();
        let answer = loop {
            let answer = dry_run(&client, &privileged, &ns).await;
            if answer.code == code || labelled.elapsed() > std::time::Duration::from_secs(5) {
                break answer;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        let took = labelled.elapsed();
        assert_eq!(answer.code, code, "tier {tier}: {answer:?}");
        assert!(
            took < std::time::Duration::from_secs(1),
            "tier {tier}: the verdict followed the label after {took:?}"
        );
        if code == 403 {
            assert!(
                answer.message.contains("prod-unprivileged/privileged"),
                "{answer:?}"
            );
        }
    }
    let metrics = portier.metrics();
    assert!(
        metrics.contains("portier_namespace_labels_total{source=\"cache\"}"),
        "{metrics}"
    );
    portier.stop();
    portier.unregister().await;
}
