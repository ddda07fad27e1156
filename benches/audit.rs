//! The audit's cost per listed pod, by how a list page is decoded: the raw path `portier audit`
//! takes (list items kept as raw JSON, each decoded by admission's borrowing decoder) against
//! the typed path (`kube::Api<Pod>::list` into k8s-openapi Pods, each serialized back to JSON
//! for the same decoder, as `portier check` does with YAML). A page is 500 pods of about 8 KB,
//! each the pod template of the 8 KB Deployment fixture with a pod's metadata and status.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::Pod;
use portier::audit::api::{ItemHead, RawList};
use portier::engine::{self, Request};
use portier::pod::{WorkloadKind, decode_workload};
use portier::policy::PolicySet;
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
            let list: RawList = serde_json::from_str(black_box(&body)).expect("a list");
            let mut violations = 0;
            for item in list.items() {
                let head = ItemHead::parse(item.get()).expect("an object");
                black_box(head.controller_uid());
                let workload = decode_workload(WorkloadKind::Pod, item.get()).expect("a pod");
                let pod = workload.pod().expect("a spec");
                violations += engine::evaluate(&set, &request, pod).violations.len();
            }
            black_box(violations)
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

criterion_group!(benches, audit);
criterion_main!(benches);
