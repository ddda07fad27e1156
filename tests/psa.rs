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

const PRESET: &str = "apiVersion: portier.dev/v1
kind: Policy
metadata: {name: pod-security}
spec:
  check: pod-security
  params: {level: namespace}
";

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
            out.push(doc);
        }
    }
    out
}

fn collection(doc: &Value, ns: &str) -> String {
    let resource = match doc["kind"].as_str().unwrap() {
        "Pod" => "pods",
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

async fn dry_run(client: &Client, doc: &Value, ns: &str) -> Answer {
    let request = http::Request::post(collection(doc, ns))
        .header("content-type", "application/json")
        .body(kube::client::Body::from(serde_json::to_vec(doc).unwrap()))
        .unwrap();
    let response = client.send(request).await.unwrap();
    let code = response.status().as_u16();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
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
    let policies = [("psa.yaml".to_owned(), PRESET.to_owned())];
    let kubeconfig = cluster.kubeconfig.to_str().unwrap().to_owned();
    let mut portier = Portier::start_with("psa", &policies, &["--kubeconfig", &kubeconfig]).await;
    let client = portier.client.clone();
    let samples = samples();
    let mut compared = 0;
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
        }
        let psa = audit_annotations(cluster, &real, "pod-security.kubernetes.io");
        let got = audit_annotations(cluster, &ours, "validate.portier.dev");
        assert_eq!(got, psa, "audit annotations, row {row} {labels:?}");
    }
    assert!(compared > 100, "{compared}");
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
