//! Heap allocations on the admission hot path, counted by portier's counting allocator
//! (installed here, in a test binary of its own). Counting is per thread, so tests running in
//! parallel do not disturb each other, and nothing here depends on time.
//!
//! The bounds are the budget: lower them as the hot path improves (BENCHMARKS.md lists the
//! measured counts).

#[path = "../benches/common/mod.rs"]
mod common;

use portier::admission::{self, Endpoint};
use portier::alloc_count::{self, CountingAlloc};
use portier::engine::{self, Request};
use portier::pod::decode_workload;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Upper bounds on allocations for one whole review (decode + evaluate + encode) of each
/// fixture against the default set, by fixture name.
const REVIEW_BUDGET: &[(&str, u64)] = &[
    ("pod-2k-allowed", 64),
    ("deployment-8k-allowed", 64),
    ("deployment-64k-update-allowed", 64),
    ("pod-1k-denied", 64),
];

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
    for &(set_name, dir) in common::POLICY_SETS {
        let set = common::policy_set(dir);
        for w in common::workloads() {
            let decoded = decode_workload(w.kind, &w.json).unwrap();
            let pod = decoded.spec.unwrap();
            let request = Request {
                kind: w.kind,
                namespace: w.namespace,
                user: Some("system:serviceaccount:ci:deployer"),
            };
            let (verdict, n) = alloc_count::count(|| engine::evaluate(&set, &request, &pod));
            assert!(verdict.is_clean(), "{set_name}/{}", w.name);
            assert_eq!(n, 0, "{set_name}/{}: evaluate allocated {n} times", w.name);
        }
    }
}

#[test]
fn a_whole_review_stays_within_its_allocation_budget() {
    let set = common::policy_set("policies");
    let mut report = Vec::new();
    for &(name, file, allowed) in common::REVIEWS {
        let body = common::read(file);
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
