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

/// Polls a future that is ready at once (a namespace the cache holds).
fn ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = std::task::Waker::noop();
    match future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker))
    {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("a cached namespace was waited for"),
    }
}

/// `serve`'s namespace cache (1 000 namespaces) read for one request, and `pod-security` with
/// `level: namespace` judging each compliant bench pod at its namespace's labels
/// (`enforce: restricted`, warn and audit too), the lookup included.
fn namespaces(c: &mut Criterion<common::Clock>) {
    use portier::namespaces::NamespaceCache;
    let cache = NamespaceCache::without_api(
        "no API server in this bench".into(),
        std::sync::Arc::new(portier::metrics::Metrics::new()),
    );
    for i in 0..1000 {
        let mut namespace = k8s_openapi::api::core::v1::Namespace::default();
        namespace.metadata.name = Some(if i == 0 {
            "shop".into()
        } else {
            format!("team-{i}")
        });
        namespace.metadata.labels = Some(
            [
                ("pod-security.kubernetes.io/enforce", "restricted"),
                ("pod-security.kubernetes.io/warn", "restricted"),
                ("pod-security.kubernetes.io/audit", "restricted"),
                ("kubernetes.io/metadata.name", "shop"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        );
        cache.remember(namespace);
    }
    let far = tokio::time::Instant::now() + std::time::Duration::from_secs(3600);
    let mut group = c.benchmark_group("namespaces");
    group.bench_function("cache-lookup", |b| {
        b.iter(|| {
            black_box(
                ready(cache.lookup(black_box("shop"), far))
                    .labels()
                    .source(),
            )
        })
    });
    let set = portier::policy::PolicySet::from_yaml(
        "psa.yaml",
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: psa}\nspec:\n  check: pod-security\n  params: {level: namespace}\n",
    )
    .expect("policy");
    for w in common::workloads() {
        let decoded = decode_workload(w.kind, &w.json).expect("fixture decodes");
        let pod = decoded.pod().expect("fixture has a pod spec");
        let request = Request::new(w.kind, "shop", None).with_operation(Some("CREATE"), None);
        let judge = || {
            let lookup = ready(cache.lookup("shop", far));
            let verdict =
                engine::evaluate(&set, &request.with_namespace_labels(lookup.labels()), pod);
            (verdict.is_clean(), verdict.judged)
        };
        assert_eq!(judge(), (true, 1), "{}", w.name);
        group.bench_function(format!("level-namespace/{}", w.name), |b| {
            b.iter(|| black_box(judge()))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = evaluate, signed_images_cached, namespaces
}
criterion_main!(benches);
