//! Bytes in, bytes out: decode an AdmissionReview, evaluate, encode the answer, for the
//! fixtures of `common::REVIEWS` (~2 KB, ~8 KB, ~64 KB allowed, and a small denied pod), and
//! the same reviews on `/mutate` with every container's securityContext and resources removed,
//! so that a mutating policy set produces a JSON patch for each.

mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portier::admission::{self, Endpoint, Outcome};
use portier::metrics::Metrics;
use portier::reload::PolicyStore;

fn review(c: &mut Criterion<common::Clock>) {
    for &(set_name, dir) in common::POLICY_SETS {
        let set = common::policy_set(dir);
        let mut group = c.benchmark_group(format!("review/{set_name}"));
        for &(name, file, allowed) in common::REVIEWS {
            let body = common::read(file);
            let answer = admission::review(&body, &set, Endpoint::Validate);
            let parsed: serde_json::Value =
                serde_json::from_slice(&answer.body).expect("answer is JSON");
            assert_eq!(parsed["response"]["allowed"], allowed, "{name}: {parsed}");
            group.throughput(Throughput::Bytes(body.len() as u64));
            group.bench_function(name, |b| {
                b.iter(|| {
                    black_box(admission::review(
                        black_box(&body),
                        &set,
                        Endpoint::Validate,
                    ))
                })
            });
        }
        group.finish();
    }
}

/// The policies `/mutate` is benched with: everything portier can fill in.
const MUTATING: &str = r#"
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: restricted}
spec: {check: pod-security, mutate: true, params: {level: restricted}}
---
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: resources}
spec:
  check: resource-limits
  mutate: true
  params: {defaults: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 500m, memory: 256Mi}}}
"#;

/// A review whose pod lacks every default: no pod or container securityContext, no resources.
fn stripped(body: &[u8]) -> Vec<u8> {
    let mut review: serde_json::Value = serde_json::from_slice(body).expect("fixture is JSON");
    let object = &mut review["request"]["object"];
    let spec_pointer = if object["kind"] == "Pod" {
        "/spec"
    } else {
        "/spec/template/spec"
    };
    if let Some(spec) = object
        .pointer_mut(spec_pointer)
        .and_then(|s| s.as_object_mut())
    {
        spec.remove("securityContext");
        for list in ["initContainers", "containers"] {
            for c in spec
                .get_mut(list)
                .and_then(|l| l.as_array_mut())
                .into_iter()
                .flatten()
            {
                if let Some(c) = c.as_object_mut() {
                    c.remove("securityContext");
                    c.remove("resources");
                }
            }
        }
    }
    serde_json::to_vec(&review).expect("serializes")
}

fn mutate(c: &mut Criterion<common::Clock>) {
    let set = portier::policy::PolicySet::from_yaml("mutating.yaml", MUTATING).expect("loads");
    let mut group = c.benchmark_group("mutate");
    for &(name, file, allowed) in common::REVIEWS {
        if !allowed {
            continue;
        }
        let body = stripped(&common::read(file));
        let answer = admission::review(&body, &set, Endpoint::Mutate);
        let parsed: serde_json::Value =
            serde_json::from_slice(&answer.body).expect("answer is JSON");
        assert_eq!(
            parsed["response"]["patchType"], "JSONPatch",
            "{name}: {parsed}"
        );
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| black_box(admission::review(black_box(&body), &set, Endpoint::Mutate)))
        });
    }
    group.finish();
}

/// What the server adds around a review on every request: the policy snapshot (an ArcSwap
/// load) and the metrics (pre-resolved counter and histogram handles, no label lookup).
fn per_request_overhead(c: &mut Criterion<common::Clock>) {
    use std::sync::Arc;
    let metrics = Arc::new(Metrics::new());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let store = PolicyStore::open(&dir, false, Arc::clone(&metrics)).expect("policies load");
    let mut group = c.benchmark_group("per-request");
    group.bench_function("policy-snapshot", |b| {
        b.iter(|| black_box(store.snapshot().set.len()))
    });
    group.bench_function("metrics-record-request", |b| {
        b.iter(|| metrics.record_request(Endpoint::Validate, Outcome::Allowed, black_box(0.0001)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = review, mutate, per_request_overhead
}
criterion_main!(benches);
