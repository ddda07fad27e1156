//! Image signature verification for `signed-images`: cached verdicts read without contended locks on the
//! request path, registry work done once per image however many reviews ask at the same time.
//!
//! Callers (see `crate::image_pass`) ask [`Verifier::cached`] for what a review needs, verify
//! what the cache lacks with [`Verifier::verify_all`] (bounded by the review's deadline, at
//! most [`VERIFY_CONCURRENCY`] verifications at a time across every caller), then evaluate
//! once, reading verdicts with [`Verifier::peek`]. The engine stays synchronous and pure; only
//! this module talks to registries, reads keys and credentials.
//!
//! Images are named by their canonical reference ([`crate::image_ref`]) throughout, so every
//! spelling of one image shares its cache entries and its verification. Caches: reference →
//! `registry/repo@digest` (tags briefly, digests for the verdict TTL), and (requirement, that)
//! → verdict, with the rule's TTL for a verified image, the negative TTL for a rejected one,
//! and a few seconds for a registry error.

pub mod bundle;
pub mod cache;
mod clients;
pub mod cosign;
pub mod credentials;
mod judge;
pub mod keyless;
pub mod keys;
pub mod notation;
pub mod referrers;
pub mod registry;
#[cfg(test)]
mod robustness;
pub mod tlog;
pub mod verdict;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};

use crate::image_ref;
use crate::metrics::{CacheResult, Metrics};
use cache::TtlMap;
use clients::Clients;
pub use judge::telling;
use registry::{Backoffs, Found, RegistryClient, RegistryError};
pub use verdict::{
    ImageVerdict, ImageVerdicts, OnRegistryError, Rejection, Requirement, Settings, Trust,
    Unverified,
};

/// How long a tag's digest is trusted before the registry is asked again.
pub const TAG_TTL: Duration = Duration::from_secs(30);
/// How long a registry failure is remembered, so an outage costs one wait per image, not one
/// per review.
pub const ERROR_TTL: Duration = Duration::from_secs(5);
/// Bounds of the caches (entries), so distinct images cannot grow memory without end.
const CACHE_CAPACITY: usize = 16_384;
/// Verifications running at once, whoever asked (reviews, the audit): enough to hide registry
/// round trips, few enough that a flood of new images does not earn a registry's 429 (which
/// would make every caller back off).
pub const VERIFY_CONCURRENCY: usize = 16;

/// What an image reference resolved to.
#[derive(Debug, Clone)]
enum Resolution {
    /// `registry/repository@sha256:...`
    Canonical(Arc<str>),
    /// The reference could not be resolved: this is the verdict for every rule.
    Failed(Arc<ImageVerdict>),
}

#[derive(Debug, Clone)]
struct CachedVerdict {
    canonical: Arc<str>,
    verdict: Arc<ImageVerdict>,
}

type FlightKey = (u64, Box<str>);

pub struct Verifier {
    resolutions: TtlMap<Arc<str>, Resolution>,
    /// Keyed by (rule cache id, hash of the canonical reference); the entry keeps the
    /// reference to rule out a hash collision.
    verdicts: TtlMap<(u64, u64), CachedVerdict>,
    flights: Mutex<HashMap<FlightKey, watch::Receiver<Option<Arc<ImageVerdict>>>>>,
    clients: Clients<RegistryClient, Settings>,
    backoff: Mutex<Backoffs>,
    /// One permit per verification running (see [`VERIFY_CONCURRENCY`]).
    running: Semaphore,
    metrics: Arc<Metrics>,
}

/// A (requirement, canonical reference) pair to verify.
pub type Miss = (Arc<Requirement>, Box<str>);

/// The verdict reached for a [`Miss`]: (requirement cache id, reference, verdict).
pub type Verified = (u64, Box<str>, Arc<ImageVerdict>);

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("resolutions", &self.resolutions.len())
            .field("verdicts", &self.verdicts.len())
            .finish_non_exhaustive()
    }
}

/// What [`deadline_for`] adds to the longest verification timeout: time for the verification
/// tasks to be scheduled and report.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(1);

/// When to stop waiting for `misses` where no review deadline bounds the wait (`portier
/// audit`, `portier check --verify-images`): each verification is bounded by its rule's
/// `timeout` already, so this is the longest of those plus [`DEADLINE_MARGIN`].
pub fn deadline_for(misses: &[Miss]) -> tokio::time::Instant {
    let longest = misses
        .iter()
        .map(|(rule, _)| rule.settings.timeout)
        .max()
        .unwrap_or_default();
    tokio::time::Instant::now() + longest + DEADLINE_MARGIN
}

/// How long a verdict is remembered under `settings`: a verified image for the cache TTL, a
/// rejection for the negative TTL, a registry error for a few seconds.
fn ttl_for(verdict: &ImageVerdict, settings: &Settings) -> Duration {
    match verdict {
        ImageVerdict::Verified { .. } => settings.cache_ttl,
        ImageVerdict::Rejected { .. } => settings.negative_cache_ttl,
        ImageVerdict::Unavailable { .. } => ERROR_TTL.min(settings.negative_cache_ttl),
    }
}

fn hash_of(text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

impl Verifier {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Verifier> {
        Arc::new(Verifier {
            resolutions: TtlMap::new(CACHE_CAPACITY),
            verdicts: TtlMap::new(CACHE_CAPACITY),
            flights: Mutex::new(HashMap::new()),
            clients: Clients::new(),
            backoff: Mutex::new(Backoffs::default()),
            running: Semaphore::new(VERIFY_CONCURRENCY),
            metrics,
        })
    }

    /// The cached verdict for `image` (canonical) under `rule`, counted as a cache hit or
    /// miss: a shard's read lock at most, no allocation, no network. Ask once per review and image.
    pub fn cached(&self, rule: &Requirement, image: &str) -> Option<Arc<ImageVerdict>> {
        let found = self.peek(rule, image);
        self.metrics.record_image_cache(if found.is_some() {
            CacheResult::Hit
        } else {
            CacheResult::Miss
        });
        found
    }

    /// [`Verifier::cached`] without counting: for reading again what was looked up already.
    pub fn peek(&self, rule: &Requirement, image: &str) -> Option<Arc<ImageVerdict>> {
        let now = Instant::now();
        match self.resolutions.get(image, now) {
            Some(Resolution::Failed(verdict)) => Some(verdict),
            Some(Resolution::Canonical(canonical)) => self
                .verdicts
                .get(&(rule.cache_id, hash_of(&canonical)), now)
                .filter(|c| c.canonical == canonical)
                .map(|c| c.verdict),
            None => None,
        }
    }

    /// Records `verdict` for `image` (resolved to `canonical`, `registry/repo@digest`) under
    /// `rule`, as a verification would: for benchmarks and tests of the cached path, which
    /// need no registry. Not part of the API: only with the `test-seams` feature.
    #[cfg(any(test, feature = "test-seams"))]
    pub fn remember(
        &self,
        rule: &Requirement,
        image: &str,
        canonical: &str,
        verdict: ImageVerdict,
        ttl: Duration,
    ) {
        let canonical: Arc<str> = Arc::from(canonical);
        self.resolutions.insert(
            Arc::from(image),
            Resolution::Canonical(Arc::clone(&canonical)),
            ttl,
        );
        self.remember_verdict(rule, canonical, Arc::new(verdict), ttl);
    }

    fn remember_verdict(
        &self,
        rule: &Requirement,
        canonical: Arc<str>,
        verdict: Arc<ImageVerdict>,
        ttl: Duration,
    ) {
        let key = (rule.cache_id, hash_of(&canonical));
        self.verdicts
            .insert(key, CachedVerdict { canonical, verdict }, ttl);
    }

    /// Remembers that `image` could not be resolved: `verdict` holds for every rule until it
    /// expires (so an unknown or unreachable image costs one registry attempt per TTL).
    fn remember_failure(
        &self,
        image: &str,
        verdict: ImageVerdict,
        settings: &Settings,
    ) -> Arc<ImageVerdict> {
        let ttl = ttl_for(&verdict, settings);
        let verdict = Arc::new(verdict);
        self.resolutions.insert(
            Arc::from(image),
            Resolution::Failed(Arc::clone(&verdict)),
            ttl,
        );
        verdict
    }

    /// Verifies each (rule, image) not in the cache, concurrently, waiting until `deadline` at
    /// most. Returns a verdict for every one: what a verification still running at the
    /// deadline gets is "unavailable" (it goes on in the background and fills the cache).
    pub async fn verify_all(
        self: &Arc<Self>,
        misses: Vec<Miss>,
        deadline: tokio::time::Instant,
    ) -> Vec<Verified> {
        let started: Vec<_> = misses
            .into_iter()
            .map(|(rule, image)| {
                let receiver = self.start(&rule, &image);
                (rule, image, receiver)
            })
            .collect();
        let mut out = Vec::with_capacity(started.len());
        for (rule, image, mut receiver) in started {
            let waited =
                tokio::time::timeout_at(deadline, receiver.wait_for(Option::is_some)).await;
            let verdict = match waited {
                Ok(Ok(done)) => done.clone(),
                _ => None,
            }
            .unwrap_or_else(|| {
                Arc::new(ImageVerdict::Unavailable {
                    reason: "verification did not finish before the review's deadline".into(),
                })
            });
            out.push((rule.cache_id, image, verdict));
        }
        out
    }

    /// Joins the verification of (rule, image) in flight, or starts one. It runs in its own
    /// task so a review that gives up waiting does not cancel it for the others.
    fn start(
        self: &Arc<Self>,
        rule: &Arc<Requirement>,
        image: &str,
    ) -> watch::Receiver<Option<Arc<ImageVerdict>>> {
        let key: FlightKey = (rule.cache_id, image.into());
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        // A flight whose task is gone without an answer (it cannot, short of a panic) is
        // replaced rather than joined, or the image would stay unverifiable.
        if let Some(receiver) = flights.get(&key)
            && receiver.has_changed().is_ok()
        {
            return receiver.clone();
        }
        let (sender, receiver) = watch::channel(None);
        flights.insert(key.clone(), receiver.clone());
        drop(flights);
        let this = Arc::clone(self);
        let rule = Arc::clone(rule);
        tokio::spawn(async move {
            // Waiting for a turn is not the registry's time: the timeout starts after it. The
            // semaphore is never closed, so acquiring only waits.
            let _turn = this.running.acquire().await;
            let timeout = rule.settings.timeout;
            let verdict = match tokio::time::timeout(timeout, this.verify(&rule, &key.1)).await {
                Ok(verdict) => verdict,
                Err(_) => this.remember_failure(
                    &key.1,
                    ImageVerdict::Unavailable {
                        reason: format!(
                            "the registry did not answer within {}",
                            humantime::format_duration(timeout)
                        ),
                    },
                    &rule.settings,
                ),
            };
            this.metrics.record_image_verification(verdict.result());
            // The cache holds the verdict before the flight ends: a review arriving now finds
            // one or the other.
            this.flights
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            let _ = sender.send(Some(verdict));
        });
        receiver
    }

    fn client(&self, rule: &Requirement) -> Result<Arc<RegistryClient>, String> {
        self.clients
            .get_or_build(rule.settings.access_id, &rule.settings, || {
                RegistryClient::new(&rule.settings, Arc::clone(&self.metrics))
            })
    }

    /// Fails fast while `registry` is backing off after a 429.
    fn check_backoff(&self, registry: &str) -> Result<(), String> {
        let backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        match backoff.get(registry) {
            Some(b) if b.until > Instant::now() => Err(format!(
                "registry {registry} answered 429 Too Many Requests; not asking again for {}",
                humantime::format_duration(Duration::from_secs(
                    b.until.saturating_duration_since(Instant::now()).as_secs() + 1
                ))
            )),
            _ => Ok(()),
        }
    }

    fn note_registry_result<T>(&self, registry: &str, result: &Result<T, RegistryError>) {
        let mut backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Err(RegistryError::RateLimited { .. }) => {
                backoff.rate_limited(registry, Instant::now())
            }
            _ => backoff.answered(registry),
        }
    }

    /// The whole verification of one image (a canonical reference) under one rule, caching
    /// what it learns.
    async fn verify(&self, rule: &Requirement, image: &str) -> Arc<ImageVerdict> {
        let unavailable = |reason: String| Arc::new(ImageVerdict::Unavailable { reason });
        let parsed = match image_ref::parse(image) {
            Ok(r) if !r.domain().is_empty() => r,
            Ok(_) => {
                let rejection = Rejection::Malformed(
                    "the reference names no registry host that could be asked".into(),
                );
                let verdict = ImageVerdict::Rejected {
                    digest: None,
                    rejection,
                };
                return self.remember_failure(image, verdict, &rule.settings);
            }
            Err(e) => {
                let rejection = Rejection::Malformed(format!("not an image reference: {e}"));
                let verdict = ImageVerdict::Rejected {
                    digest: None,
                    rejection,
                };
                return self.remember_failure(image, verdict, &rule.settings);
            }
        };
        let reference = registry::oci_reference(&parsed, &rule.settings);
        let client = match self.client(rule) {
            Ok(c) => c,
            Err(why) => return unavailable(why),
        };
        let registry = registry::host(&reference).to_owned();
        let repository = parsed.name();
        let canonical: Arc<str> = match self.resolutions.get(image, Instant::now()) {
            Some(Resolution::Failed(verdict)) => return verdict,
            Some(Resolution::Canonical(c)) => c,
            None => {
                let digest = match parsed.digest() {
                    Some(d) => d.to_owned(),
                    None => {
                        if let Err(why) = self.check_backoff(&registry) {
                            return unavailable(why);
                        }
                        let resolved = client.resolve(&reference).await;
                        self.note_registry_result(&registry, &resolved);
                        match resolved {
                            Ok(Found::Yes(digest)) => digest,
                            Ok(Found::NotFound) => {
                                let verdict = ImageVerdict::Rejected {
                                    digest: None,
                                    rejection: Rejection::ImageNotFound,
                                };
                                return self.remember_failure(image, verdict, &rule.settings);
                            }
                            Err(e) => {
                                let verdict = ImageVerdict::Unavailable {
                                    reason: e.to_string(),
                                };
                                return self.remember_failure(image, verdict, &rule.settings);
                            }
                        }
                    }
                };
                let canonical: Arc<str> = Arc::from(format!("{repository}@{digest}"));
                // A digest never moves; a tag may, so it is asked again soon.
                let ttl = if parsed.digest().is_some() {
                    rule.settings.cache_ttl
                } else {
                    TAG_TTL.min(rule.settings.cache_ttl)
                };
                self.resolutions.insert(
                    Arc::from(image),
                    Resolution::Canonical(Arc::clone(&canonical)),
                    ttl,
                );
                canonical
            }
        };
        let key = (rule.cache_id, hash_of(&canonical));
        if let Some(cached) = self
            .verdicts
            .get(&key, Instant::now())
            .filter(|c| c.canonical == canonical)
        {
            return cached.verdict;
        }
        let digest = canonical
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or_default()
            .to_owned();
        if let Err(why) = self.check_backoff(&registry) {
            return unavailable(why);
        }
        let verdict = self
            .judge(
                rule,
                &judge::Subject {
                    client: &client,
                    registry: &registry,
                    reference: &reference,
                    digest: &digest,
                    repository,
                },
            )
            .await;
        let ttl = ttl_for(&verdict, &rule.settings);
        let verdict = Arc::new(verdict);
        self.remember_verdict(rule, canonical, Arc::clone(&verdict), ttl);
        verdict
    }
}
