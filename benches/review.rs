//! Bytes in, bytes out: decode an AdmissionReview, evaluate, encode the answer, for the
//! fixtures of `common::REVIEWS` (~2 KB, ~8 KB, ~64 KB allowed, and a small denied pod).
//!
//! TODO(mutate): a `mutate` group (the same reviews on `Endpoint::Mutate`, with patches
//! produced) once mutating checks exist; today /mutate allows without decoding the object.

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
    targets = review, per_request_overhead
}
criterion_main!(benches);
