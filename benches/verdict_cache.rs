//! The verdict cache under an audit of many distinct images: what one insert and one hit cost
//! with 1 000, 20 000 and 100 000 distinct keys. The larger two are more than the verifier's
//! bound, so those runs fill the cache and then evict on every insert. Flat per-entry figures
//! (criterion reports them per element) mean an audit's cache cost grows with its number of
//! images, not with the square of it. (100 000 was added with the new cache: the old one took
//! about 28 s for 20 000 inserts, so 100 000 would have taken over ten minutes each.)
//!
//! `cargo bench --bench verdict_cache` (with `PORTIER_BENCH_CLOCK=cpu` on a busy machine).

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use portier::images::cache::TtlMap;

/// The verifier's bound (`images::CACHE_CAPACITY`).
const CAPACITY: usize = 16_384;
const SIZES: [usize; 3] = [1_000, 20_000, 100_000];
const TTL: Duration = Duration::from_secs(600);

/// Distinct canonical references, as the verifier keys its resolutions.
fn images(n: usize) -> Vec<Arc<str>> {
    (0..n)
        .map(|i| Arc::from(format!("registry.example.com/team/app-{i}@sha256:{i:064x}")))
        .collect()
}

fn filled(keys: &[Arc<str>]) -> TtlMap<Arc<str>, Arc<str>> {
    let map = TtlMap::new(CAPACITY);
    for key in keys {
        map.insert(Arc::clone(key), Arc::clone(key), TTL);
    }
    map
}

fn insert(c: &mut Criterion<common::Clock>) {
    let keys = images(SIZES[2]);
    let mut group = c.benchmark_group("verdict-cache/insert");
    for n in SIZES {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &keys[..n], |b, keys| {
            b.iter_batched(
                || TtlMap::new(CAPACITY),
                |map| {
                    for key in keys {
                        map.insert(Arc::clone(key), Arc::clone(key), TTL);
                    }
                    // Returned, so dropping the map is not timed.
                    map
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn get(c: &mut Criterion<common::Clock>) {
    let keys = images(SIZES[2]);
    let mut group = c.benchmark_group("verdict-cache/get");
    for n in SIZES {
        let map = filled(&keys[..n]);
        let now = Instant::now();
        // Only what the cache kept: a full cache has evicted some of the 20 000.
        let resident: Vec<&str> = keys[..n]
            .iter()
            .map(|k| &**k)
            .filter(|k| map.get(*k, now).is_some())
            .collect();
        assert!(!resident.is_empty());
        group.throughput(Throughput::Elements(resident.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &resident, |b, resident| {
            b.iter(|| {
                for key in resident.iter() {
                    black_box(map.get(black_box(*key), now));
                }
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = insert, get
}
criterion_main!(benches);
