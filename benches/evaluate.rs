//! The engine alone: decoded pods judged against each policy set of `common::POLICY_SETS`.
//! Every pod is compliant, so this is the allowed path (no allocation, see
//! `tests/allocations.rs`).

mod common;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use portier::engine::{self, Request};
use portier::image_pass::ReviewImages;
use portier::pod::decode_workload;

fn evaluate(c: &mut Criterion<common::Clock>) {
    let workloads = common::workloads();
    for &(set_name, dir) in common::POLICY_SETS {
        let set = common::policy_set(dir);
        let mut group = c.benchmark_group(format!("evaluate/{set_name}"));
        for w in &workloads {
            let decoded = decode_workload(w.kind, &w.json).expect("fixture decodes");
            let pod = decoded.pod().expect("fixture has a pod spec");
            let request = Request::new(
                w.kind,
                w.namespace,
                Some("system:serviceaccount:ci:deployer"),
            );
            let verdict = engine::evaluate(&set, &request, pod);
            assert!(verdict.is_clean(), "{}: {:?}", w.name, verdict.violations);
            group.bench_function(w.name, |b| {
                b.iter(|| black_box(engine::evaluate(black_box(&set), &request, black_box(pod))))
            });
        }
        group.finish();
    }
}

/// `signed-images` on the cached path: every image's verdict is in the verifier's cache, so
/// judging reads two lock-free maps per image and makes no network call.
fn signed_images_cached(c: &mut Criterion<common::Clock>) {
    let (set, verifier, workloads) = common::signed_images_cached(common::workloads());
    let mut group = c.benchmark_group("evaluate/signed-images-cached");
    for w in &workloads {
        let decoded = decode_workload(w.kind, &w.json).expect("fixture decodes");
        let pod = decoded.pod().expect("fixture has a pod spec");
        let request = Request::new(w.kind, w.namespace, None);
        let mut images = ReviewImages::new(&verifier);
        assert!(
            images.misses(&set, &request, pod).is_empty(),
            "{}: cache misses",
            w.name
        );
        let verdict = engine::evaluate_with(&set, &request, pod, &images);
        assert!(verdict.is_clean(), "{}: {:?}", w.name, verdict.violations);
        group.bench_function(w.name, |b| {
            b.iter(|| {
                // The image pass of a review: plan (cache lookups), then evaluate once.
                let mut images = ReviewImages::new(&verifier);
                black_box(images.misses(black_box(&set), &request, black_box(pod)));
                black_box(engine::evaluate_with(
                    black_box(&set),
                    &request,
                    black_box(pod),
                    &images,
                ))
                .violations
                .len()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = evaluate, signed_images_cached
}
criterion_main!(benches);
