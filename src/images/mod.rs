//! Image signature verification for `signed-images`: cached verdicts read without locks on the
//! request path, registry work done once per image however many reviews ask at the same time.
//!
//! A review is evaluated with what the cache knows ([`RequestImages`] records what it did not
//! know); the server then verifies the unknown images ([`Verifier::verify_all`], bounded by
//! the review's deadline) and evaluates again with the results. The engine stays synchronous
//! and pure; only this module talks to registries.
//!
//! Images are named by their canonical reference ([`crate::image_ref`]) throughout, so every
//! spelling of one image shares its cache entries and its verification. Caches: reference →
//! `registry/repo@digest` (tags briefly, digests for the verdict TTL), and (rule, that) → verdict, with the rule's TTL for a verified image, the
//! negative TTL for a rejected one, and a few seconds for a registry error.

pub mod cache;
mod clients;
pub mod cosign;
pub mod registry;

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::image_ref;
use crate::metrics::{CacheResult, Metrics};
use crate::policy::signed_images::{ImageVerdict, ImageVerdicts, Rejection, Rule, Settings, Trust};
use cache::TtlMap;
use clients::Clients;
use registry::{Backoff, Found, RegistryClient, RegistryError};

/// How long a tag's digest is trusted before the registry is asked again.
pub const TAG_TTL: Duration = Duration::from_secs(30);
/// How long a registry failure is remembered, so an outage costs one wait per image, not one
/// per review.
pub const ERROR_TTL: Duration = Duration::from_secs(5);
/// Bounds of the caches (entries), so distinct images cannot grow memory without end.
const CACHE_CAPACITY: usize = 16_384;

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
    backoff: Mutex<HashMap<String, Backoff>>,
    metrics: Arc<Metrics>,
}

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
pub fn deadline_for(misses: &[(Arc<Rule>, Box<str>)]) -> tokio::time::Instant {
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
            backoff: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// The cached verdict for `image` under `rule`: no lock, no allocation, no network.
    pub fn cached(&self, rule: &Rule, image: &str) -> Option<Arc<ImageVerdict>> {
        let now = Instant::now();
        let found = match self.resolutions.get(image, now) {
            Some(Resolution::Failed(verdict)) => Some(verdict),
            Some(Resolution::Canonical(canonical)) => self
                .verdicts
                .get(&(rule.cache_id, hash_of(&canonical)), now)
                .filter(|c| c.canonical == canonical)
                .map(|c| c.verdict),
            None => None,
        };
        self.metrics.record_image_cache(if found.is_some() {
            CacheResult::Hit
        } else {
            CacheResult::Miss
        });
        found
    }

    /// Records `verdict` for `image` (resolved to `canonical`, `registry/repo@digest`) under
    /// `rule`, as a verification would: for benchmarks and tests of the cached path, which
    /// need no registry.
    pub fn remember(
        &self,
        rule: &Rule,
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
        rule: &Rule,
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
        misses: Vec<(Arc<Rule>, Box<str>)>,
        deadline: tokio::time::Instant,
    ) -> Vec<(u64, Box<str>, Arc<ImageVerdict>)> {
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
        rule: &Arc<Rule>,
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
            this.metrics.record_image_verification(&verdict);
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

    fn client(&self, rule: &Rule) -> Result<Arc<RegistryClient>, String> {
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
                let next = Backoff::after(backoff.get(registry).copied(), Instant::now());
                backoff.insert(registry.to_owned(), next);
            }
            _ => {
                backoff.remove(registry);
            }
        }
    }

    /// The whole verification of one image (a canonical reference) under one rule, caching
    /// what it learns.
    async fn verify(&self, rule: &Rule, image: &str) -> Arc<ImageVerdict> {
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
        let fetched = client.signatures(&reference, &digest).await;
        self.note_registry_result(&registry, &fetched);
        let verdict = match fetched {
            Ok(Ok(signatures)) => match &rule.trust {
                Trust::Keys(keys) => cosign::judge(&signatures, keys, &digest, repository),
            },
            Ok(Err(rejection)) => ImageVerdict::Rejected {
                digest: Some(digest),
                rejection,
            },
            Err(e) => ImageVerdict::Unavailable {
                reason: e.to_string(),
            },
        };
        let ttl = ttl_for(&verdict, &rule.settings);
        let verdict = Arc::new(verdict);
        self.remember_verdict(rule, canonical, Arc::clone(&verdict), ttl);
        verdict
    }
}

/// The verdicts one review reads: those verified for it (`verified`), then the cache. What
/// neither knows is recorded as a miss; on the final pass it is "unavailable" instead, so an
/// image that could not be verified is never silently admitted.
pub struct RequestImages<'a> {
    verifier: &'a Verifier,
    verified: &'a [(u64, Box<str>, Arc<ImageVerdict>)],
    final_pass: bool,
    misses: RefCell<Vec<(Arc<Rule>, Box<str>)>>,
    before_mutation: bool,
    /// (container name, digest it runs), from the pod's status.
    running: &'a [(String, String)],
}

impl<'a> RequestImages<'a> {
    /// The first pass: the cache only.
    pub fn first(verifier: &'a Verifier) -> Self {
        RequestImages {
            verifier,
            verified: &[],
            final_pass: false,
            misses: RefCell::new(Vec::new()),
            before_mutation: false,
            running: &[],
        }
    }

    /// The final pass, with the verdicts of the first pass's misses.
    pub fn with(
        verifier: &'a Verifier,
        verified: &'a [(u64, Box<str>, Arc<ImageVerdict>)],
    ) -> Self {
        RequestImages {
            verifier,
            verified,
            final_pass: true,
            misses: RefCell::new(Vec::new()),
            before_mutation: false,
            running: &[],
        }
    }

    /// Whether the object has not passed `/mutate` (see [`ImageVerdicts::before_mutation`]).
    pub fn before_mutation(mut self, before: bool) -> Self {
        self.before_mutation = before;
        self
    }

    /// With the digests the pod's containers run: (container name, digest).
    pub fn running(mut self, running: &'a [(String, String)]) -> Self {
        self.running = running;
        self
    }

    pub fn into_misses(self) -> Vec<(Arc<Rule>, Box<str>)> {
        self.misses.into_inner()
    }
}

impl ImageVerdicts for RequestImages<'_> {
    fn verdict(&self, rule: &Arc<Rule>, image: &str) -> Option<Arc<ImageVerdict>> {
        if let Some((_, _, verdict)) = self
            .verified
            .iter()
            .find(|(id, i, _)| *id == rule.cache_id && &**i == image)
        {
            return Some(Arc::clone(verdict));
        }
        if let Some(verdict) = self.verifier.cached(rule, image) {
            return Some(verdict);
        }
        if self.final_pass {
            return Some(Arc::new(ImageVerdict::Unavailable {
                reason: "no verdict was reached for this review".into(),
            }));
        }
        let mut misses = self.misses.borrow_mut();
        if !misses
            .iter()
            .any(|(r, i)| r.cache_id == rule.cache_id && &**i == image)
        {
            misses.push((Arc::clone(rule), image.into()));
        }
        None
    }

    fn before_mutation(&self) -> bool {
        self.before_mutation
    }

    fn running_digest(&self, container: &str) -> Option<&str> {
        self.running
            .iter()
            .find(|(name, _)| name == container)
            .map(|(_, digest)| digest.as_str())
    }
}
