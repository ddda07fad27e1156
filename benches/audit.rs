//! The audit's cost per listed pod, by how a list page is decoded: the raw path `portier audit`
//! takes (list items kept as raw JSON, each decoded by admission's borrowing decoder) against
//! the typed path (`kube::Api<Pod>::list` into k8s-openapi Pods, each serialized back to JSON
//! for the same decoder, as `portier check` does with YAML). A page is 500 pods of about 8 KB,
//! each the pod template of the 8 KB Deployment fixture with a pod's metadata and status.
//!
//! With CEL policies (`cel/...`): the same pod page with the shipped policies and a
//! ValidatingAdmissionPolicy on Pods (each pod also judged as a CREATE of it, through the seam
//! the scan uses), and a page of 500 Services judged by a ValidatingAdmissionPolicy on
//! Services alone.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use portier::audit::api::{ItemHead, RawList};
use portier::audit::cel_resources::workload_resource;
use portier::audit::{CelNamespace, judge_object};
use portier::cel::admission::Served;
use portier::engine::{self, Request};
use portier::namespaces::{Found, LabelSource};
use portier::pod::{PodView, WorkloadKind, decode_workload};
use portier::policy::PolicySet;
use portier::policy::Unverified;
use serde_json::json;

const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
const REVIEW: &str = include_str!("../tests/fixtures/review-deployment-8k.json");
const PAGE: usize = 500;

fn page() -> String {
    let review: serde_json::Value = serde_json::from_str(REVIEW).expect("fixture is JSON");
    let spec = review["request"]["object"]["spec"]["template"]["spec"].clone();
    let items: Vec<serde_json::Value> = (0..PAGE)
        .map(|i| {
            json!({
                "metadata": {
                    "name": format!("web-5d8f7c-{i:05}"),
                    "namespace": "shop",
                    "uid": format!("0f1e2d3c-4b5a-6978-8796-{i:012}"),
                    "resourceVersion": "123456",
                    "labels": {"app": "web", "pod-template-hash": "5d8f7c"},
                    "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-01T10:00:00Z"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "name": "web-5d8f7c", "uid": "rs-uid", "controller": true,
                        "blockOwnerDeletion": true}]
                },
                "spec": spec,
                "status": {"phase": "Running", "podIP": "10.244.1.23", "hostIP": "192.168.10.4",
                    "conditions": [{"type": "Ready", "status": "True"},
                                   {"type": "ContainersReady", "status": "True"}]}
            })
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "PodList",
           "metadata": {"resourceVersion": "123456", "continue": "next"}, "items": items})
    .to_string()
}

fn audit(c: &mut Criterion) {
    let set = PolicySet::from_dir(std::path::Path::new(POLICIES)).expect("shipped policies load");
    let body = page();
    let request = Request::new(WorkloadKind::Pod, "shop", None);
    let mut group = c.benchmark_group("audit");
    group.sample_size(20);
    group.throughput(criterion::Throughput::Elements(PAGE as u64));
    group.bench_function("page-500-pods/raw-json-items", |b| {
        b.iter(|| {
            black_box(judge_pod_page(&body, |_, pod| {
                engine::evaluate(&set, &request, pod).violations.len()
            }))
        })
    });
    group.bench_function("page-500-pods/typed-then-reserialized", |b| {
        b.iter(|| {
            let list: k8s_openapi::List<Pod> =
                serde_json::from_str(black_box(&body)).expect("a list");
            let mut violations = 0;
            for pod in &list.items {
                black_box(pod.metadata.owner_references.as_ref());
                let json = serde_json::to_string(pod).expect("serializes");
                let workload = decode_workload(WorkloadKind::Pod, &json).expect("a pod");
                let pod = workload.pod().expect("a spec");
                violations += engine::evaluate(&set, &request, pod).violations.len();
            }
            black_box(violations)
        })
    });
    group.finish();
}

/// Judges every pod of a list page as the scan does: its head, then admission's decoder, then
/// `judge` on the item's text and its pod; the violations found.
fn judge_pod_page(body: &str, judge: impl Fn(&str, PodView<'_, '_>) -> usize) -> usize {
    let list: RawList = serde_json::from_str(black_box(body)).expect("a list");
    let mut violations = 0;
    for item in list.items() {
        let head = ItemHead::parse(item.get()).expect("an object");
        black_box(head.controller_uid());
        let workload = decode_workload(WorkloadKind::Pod, item.get()).expect("a pod");
        violations += judge(item.get(), workload.pod().expect("a spec"));
    }
    violations
}

/// A ValidatingAdmissionPolicy on `resource` (core group) with its binding.
fn vap(name: &str, resource: &str, expression: &str) -> String {
    format!(
        "---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  matchConstraints:
    resourceRules: [{{apiGroups: [''], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [{resource}]}}]
  validations: [{{expression: \"{expression}\", message: rejected}}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec: {{policyName: {name}, validationActions: [Deny]}}
"
    )
}

/// The shipped policies, one text.
fn shipped() -> String {
    let mut files: Vec<_> = std::fs::read_dir(POLICIES)
        .expect("policies")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| format!("---\n{}", std::fs::read_to_string(f).expect("readable")))
        .collect()
}

fn services_page() -> String {
    let items: Vec<serde_json::Value> = (0..PAGE)
        .map(|i| {
            json!({
                "metadata": {"name": format!("svc-{i:05}"), "namespace": "shop",
                    "uid": format!("0f1e2d3c-4b5a-6978-8796-{i:012}"), "resourceVersion": "1",
                    "labels": {"app": "web"}},
                "spec": {"type": if i % 50 == 0 { "LoadBalancer" } else { "ClusterIP" },
                    "selector": {"app": "web"}, "clusterIP": "10.96.0.10",
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]},
                "status": {"loadBalancer": {}}
            })
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "ServiceList",
           "metadata": {"resourceVersion": "1", "continue": "next"}, "items": items})
    .to_string()
}

fn audit_cel(c: &mut Criterion) {
    let pods = vap(
        "team-label",
        "pods",
        "has(object.metadata.labels) && 'team' in object.metadata.labels",
    );
    let services = vap(
        "no-load-balancer",
        "services",
        "object.spec.type != 'LoadBalancer'",
    );
    let set = PolicySet::from_yaml("set.yaml", &format!("{}{pods}{services}", shipped()))
        .expect("policies load");
    let mut shop = Namespace::default();
    shop.metadata.name = Some("shop".to_owned());
    let shop = std::sync::Arc::new(shop);
    let namespace = CelNamespace::new("shop", Found::Known(&shop, LabelSource::Listed));
    let request = Request::new(WorkloadKind::Pod, "shop", None);
    let pod_resource = workload_resource(WorkloadKind::Pod);
    let body = page();
    let mut group = c.benchmark_group("audit");
    group.sample_size(20);
    group.throughput(criterion::Throughput::Elements(PAGE as u64));
    group.bench_function("cel/page-500-pods/shipped+vap-on-pods", |b| {
        b.iter(|| {
            black_box(judge_pod_page(&body, |json, pod| {
                let workload = Some((&request, pod));
                judge_object(&set, &pod_resource, json, &namespace, workload, &Unverified)
                    .expect("an object")
                    .violations
                    .len()
            }))
        })
    });
    let body = services_page();
    let service = Served {
        group: "",
        version: "v1",
        kind: "Service",
        resource: "services",
    };
    group.bench_function("cel/page-500-services/vap-on-services", |b| {
        b.iter(|| {
            let list: RawList = serde_json::from_str(black_box(&body)).expect("a list");
            let mut violations = 0;
            for item in list.items() {
                let head = ItemHead::parse(item.get()).expect("an object");
                black_box(head.name());
                let verdict =
                    judge_object(&set, &service, item.get(), &namespace, None, &Unverified)
                        .expect("an object");
                violations += verdict.violations.len();
            }
            black_box(violations)
        })
    });
    group.finish();
}

criterion_group!(benches, audit, audit_cel);
criterion_main!(benches);
