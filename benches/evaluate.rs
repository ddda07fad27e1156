//! The engine alone: a decoded pod judged against the shipped default policy set.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use portier::engine::{self, Request};
use portier::pod::{WorkloadKind, decode_workload};
use portier::policy::PolicySet;

const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
const REVIEW: &str = include_str!("../tests/fixtures/review-deployment-8k.json");

fn evaluate(c: &mut Criterion) {
    let set = PolicySet::from_dir(std::path::Path::new(POLICIES)).expect("shipped policies load");
    let review: serde_json::Value = serde_json::from_str(REVIEW).expect("fixture is JSON");
    let object = review["request"]["object"].to_string();
    let workload = decode_workload(WorkloadKind::Deployment, &object).expect("fixture decodes");
    let pod = workload.pod().expect("fixture has a pod template");
    let request = Request {
        kind: WorkloadKind::Deployment,
        namespace: "shop",
        user: Some("system:serviceaccount:ci:deployer"),
    };
    assert!(engine::evaluate(&set, &request, pod).is_clean());
    c.bench_function("evaluate/default-set/3-containers-allowed", |b| {
        b.iter(|| black_box(engine::evaluate(black_box(&set), &request, black_box(pod))))
    });
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
