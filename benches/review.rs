//! Bytes in, bytes out: decode an AdmissionReview, evaluate, encode the answer.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portier::admission::{self, Endpoint};
use portier::policy::PolicySet;

const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
const ALLOWED: &[u8] = include_bytes!("../tests/fixtures/review-deployment-8k.json");
const DENIED: &[u8] = include_bytes!("../tests/fixtures/review-privileged-pod.json");

fn review(c: &mut Criterion) {
    let set = PolicySet::from_dir(std::path::Path::new(POLICIES)).expect("shipped policies load");
    let mut group = c.benchmark_group("review");
    for (name, body, allowed) in [
        ("deployment-8k-allowed", ALLOWED, true),
        ("pod-1k-denied", DENIED, false),
    ] {
        let answer = admission::review(body, &set, Endpoint::Validate);
        let parsed: serde_json::Value =
            serde_json::from_slice(&answer.body).expect("answer is JSON");
        assert_eq!(parsed["response"]["allowed"], allowed, "{name}");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| black_box(admission::review(black_box(body), &set, Endpoint::Validate)))
        });
    }
    group.finish();
}

criterion_group!(benches, review);
criterion_main!(benches);
