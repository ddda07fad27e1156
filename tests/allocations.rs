//! Heap allocations on the admission hot path, counted by portier's counting allocator
//! (installed here, in a test binary of its own). Counting is per thread, so tests running in
//! parallel do not disturb each other, and nothing here depends on time.
//!
//! The bounds are the budget: lower them as the hot path improves (BENCHMARKS.md lists the
//! measured counts).

mod common;
#[path = "../benches/common/mod.rs"]
mod fixtures;

use portier::admission::{self, Endpoint};
use portier::alloc_count::{self, CountingAlloc};
use portier::engine::{self, Request};
use portier::image_pass::ReviewImages;
use portier::pod::{WorkloadKind, decode_workload};
use portier::policy::PolicySet;
use std::path::Path;

const PSS_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pss");
const SHIPPED_POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Upper bounds on allocations for one whole review (decode + evaluate + encode) of each
/// fixture against the default set (which holds pss-baseline and pss-restricted), by fixture
/// name. What remains on the allow path: one per `Vec` of the pod view (container lists,
/// ports, capabilities), serde_json's scratch buffer and the answer's bytes. A denial also
/// renders every violation (6 for the privileged pod: its message, the decision-log record with
/// the request's identity, the deny text): about 10 allocations per violation, measured 62.
/// Lower these as the hot path improves.
const REVIEW_BUDGET: &[(&str, u64)] = &[
    ("pod-2k-allowed", 8),
    ("deployment-8k-allowed", 16),
    ("deployment-64k-update-allowed", 24),
    ("pod-1k-denied", 72),
];

/// Upper bound on the server's allocations per 8 KB review on a keep-alive HTTPS connection
/// (TLS, HTTP, routing, metrics, review). Measured: 31 on HTTP/1.1 and on HTTP/2.
const SERVER_BUDGET: u64 = 48;

#[test]
fn the_counter_counts_only_inside_count() {
    assert!(alloc_count::installed());
    let (v, n) = alloc_count::count(|| vec![1u8; 32]);
    assert_eq!((v.len(), n), (32, 1));
    let (_, n) = alloc_count::count(|| ());
    assert_eq!(n, 0);
}

#[test]
fn evaluating_an_allowed_decoded_pod_does_not_allocate() {
    for &(set_name, dir) in fixtures::POLICY_SETS {
        let set = fixtures::policy_set(dir);
        for w in fixtures::workloads() {
            let decoded = decode_workload(w.kind, &w.json).unwrap();
            let pod = decoded.pod().unwrap();
            let request = Request::new(
                w.kind,
                w.namespace,
                Some("system:serviceaccount:ci:deployer"),
            );
            let (verdict, n) = alloc_count::count(|| engine::evaluate(&set, &request, pod));
            assert!(verdict.is_clean(), "{set_name}/{}", w.name);
            assert_eq!(n, 0, "{set_name}/{}: evaluate allocated {n} times", w.name);
        }
    }
}

/// Whatever the trust model (keys, keyless identities, a Notation trust store), a cached
/// verdict is read the same way: two lookups, no allocation.
#[test]
fn judging_images_whose_signature_verdicts_are_cached_does_not_allocate() {
    for (model, trust) in [
        ("keys", fixtures::keys_trust()),
        ("keyless", fixtures::keyless_trust()),
        ("notation", fixtures::notation_trust()),
    ] {
        let (set, verifier, workloads) =
            fixtures::signed_images_cached_under(&trust, fixtures::workloads());
        cached_path_does_not_allocate(model, &set, &verifier, &workloads);
    }
}

fn cached_path_does_not_allocate(
    model: &str,
    set: &PolicySet,
    verifier: &std::sync::Arc<portier::images::Verifier>,
    workloads: &[fixtures::Workload],
) {
    for w in workloads {
        let decoded = decode_workload(w.kind, &w.json).unwrap();
        let pod = decoded.pod().unwrap();
        let request = Request::new(w.kind, w.namespace, None);
        // The whole image pass of a review whose verdicts are cached: planning (the cache
        // lookups), then the one evaluation.
        let (misses, n) = alloc_count::count(|| {
            let mut images = ReviewImages::new(verifier);
            let misses = images.misses(set, &request, pod);
            let verdict = engine::evaluate_with(set, &request, pod, &images);
            assert!(
                verdict.is_clean(),
                "{model}/{}: {:?}",
                w.name,
                verdict.violations
            );
            misses.len()
        });
        assert_eq!(misses, 0, "{model}/{}: every verdict is cached", w.name);
        assert_eq!(
            n, 0,
            "{model}/{}: the cached path allocated {n} times",
            w.name
        );
    }
}

/// A cache that did its eviction bookkeeping on reads would allocate once it is full, which
/// an audit of more distinct images than the verifier's bound (16 384) makes it.
#[test]
fn a_hit_in_a_full_verdict_cache_does_not_allocate() {
    use portier::images::cache::TtlMap;
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let map = TtlMap::new(16_384);
    let keys: Vec<Arc<str>> = (0..20_000)
        .map(|i| Arc::from(format!("registry.example.com/team/app-{i}@sha256:{i:064x}")))
        .collect();
    for key in &keys {
        map.insert(Arc::clone(key), Arc::clone(key), Duration::from_secs(600));
    }
    let now = Instant::now();
    let (hits, n) = alloc_count::count(|| {
        (0..4)
            .map(|_| {
                keys.iter()
                    .filter(|k| map.get(&***k, now).is_some())
                    .count()
            })
            .sum::<usize>()
    });
    assert!(hits > 4 * 8_192, "{hits} hits");
    assert_eq!(n, 0, "{hits} hits allocated {n} times");
}

#[test]
fn a_whole_review_stays_within_its_allocation_budget() {
    let set = fixtures::policy_set("policies");
    let mut report = Vec::new();
    for &(name, file, allowed) in fixtures::REVIEWS {
        let body = fixtures::read(file);
        // The first call may grow lazily initialised state; count a later one.
        let _ = admission::review(&body, &set, Endpoint::Validate);
        let (answer, n) = alloc_count::count(|| admission::review(&body, &set, Endpoint::Validate));
        let parsed: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(parsed["response"]["allowed"], allowed, "{name}");
        let budget = REVIEW_BUDGET
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, b)| b)
            .unwrap_or_else(|| panic!("no allocation budget for {name}"));
        report.push(format!("{name}: {n} allocations (budget {budget})"));
        assert!(n <= budget, "{name}: {n} allocations, budget {budget}");
    }
    // Shown with --nocapture; BENCHMARKS.md quotes these.
    println!("{}", report.join("\n"));
}

/// Allocations per review on the server side of a keep-alive HTTPS connection (TLS, HTTP,
/// routing, metrics and the review itself), for the 8 KB fixture. The server runs on this
/// thread (a current-thread runtime), the client on another, so only the server is counted.
fn server_allocations_per_request(http2: bool) -> u64 {
    const REQUESTS: u64 = 200;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let policies: Vec<(String, String)> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&path).unwrap())
            })
            .collect();
    let files: Vec<(&str, &str)> = policies
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let server = runtime.block_on(common::TestServer::start(&files));
    let client = server.pki.client(http2);
    let url = format!("{}/validate", server.base);
    let body = fixtures::read("review-deployment-8k.json");
    let (warm_tx, warm_rx) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let sender = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let post = || async {
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
            };
            // Warm up: the connection, the TLS session, buffers, the metrics.
            for _ in 0..20 {
                post().await;
            }
            warm_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            for _ in 0..REQUESTS {
                post().await;
            }
            done_tx.send(()).unwrap();
        });
    });
    runtime.block_on(warm_rx).unwrap();
    let (_, n) = alloc_count::count(|| {
        go_tx.send(()).unwrap();
        runtime.block_on(done_rx).unwrap();
    });
    sender.join().unwrap();
    runtime.block_on(server.stop());
    n / REQUESTS
}

#[test]
fn an_https_review_allocates_a_bounded_amount_in_the_server() {
    let budget = SERVER_BUDGET;
    for (name, http2) in [("HTTP/1.1", false), ("HTTP/2", true)] {
        let n = server_allocations_per_request(http2);
        println!("server, {name}, 8 KB review: {n} allocations per request (budget {budget})");
        assert!(
            n <= budget,
            "{name}: {n} allocations per request, budget {budget}"
        );
    }
}

#[test]
fn judging_a_compliant_pod_with_every_pss_control_allocates_nothing() {
    let review: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/review-deployment-8k.json")).unwrap();
    let deployment = review["request"]["object"].to_string();
    let compliant =
        std::fs::read_to_string(format!("{PSS_FIXTURES}/pods/restricted-compliant.yaml")).unwrap();
    let compliant: serde_json::Value = serde_saphyr::from_str(&compliant).unwrap();
    let pod_json = compliant.to_string();

    let shipped = PolicySet::from_dir(Path::new(SHIPPED_POLICIES)).unwrap();
    let fixtures = PolicySet::from_dir(&Path::new(PSS_FIXTURES).join("policies")).unwrap();
    let every_control: String = portier::policy::pss::CONTROLS
        .iter()
        .map(|c| {
            format!(
                "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: {0}}}\nspec: {{check: {0}}}\n---\n",
                c.id
            )
        })
        .collect();
    let controls = PolicySet::from_yaml("controls.yaml", &every_control).unwrap();

    // The default set (which holds pss-baseline and pss-restricted) on the benchmark's
    // Deployment; every level, version and single control on both workloads.
    for (kind, json, sets) in [
        (
            WorkloadKind::Deployment,
            deployment.as_str(),
            vec![&shipped, &fixtures, &controls],
        ),
        (
            WorkloadKind::Pod,
            pod_json.as_str(),
            vec![&fixtures, &controls],
        ),
    ] {
        let workload = decode_workload(kind, json).unwrap();
        let pod = workload.pod().unwrap();
        let request = Request::new(kind, "shop", None);
        for set in sets {
            let (verdict, n) = alloc_count::count(|| engine::evaluate(set, &request, pod));
            assert!(verdict.is_clean(), "{kind}: {:?}", verdict.violations);
            assert_eq!(n, 0, "{kind}: evaluating {} policies allocated", set.len());
        }
    }
}
