//! One image pass per judged object, the same for `serve`, `check` and `audit`.
//!
//! What a pod's `signed-images` policies will ask depends only on the set, the selectors and
//! the pod, so it is planned first ([`ReviewImages::misses`], which also counts the cache's
//! hits and misses, once), what the cache lacks is verified ([`Verifier::verify_all`]; at most
//! a bounded number at a time, inside the verifier), and then the object is evaluated once
//! with [`ReviewImages`] as its verdicts: what was verified for it, then the cache. The engine
//! stays synchronous; only the verification in between awaits.

use std::borrow::Cow;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::engine::{self, Request};
use crate::images::{ImageVerdict, ImageVerdicts, Miss, Requirement, Verified, Verifier};
use crate::pod::PodView;
use crate::policy::{Check, PolicySet, signed_images};

/// The image verdicts one object is judged with.
pub struct ReviewImages<'a> {
    verifier: &'a Arc<Verifier>,
    /// Verdicts reached for this object's misses (or for a page of objects it is part of).
    verified: Cow<'a, [Verified]>,
    before_mutation: bool,
    /// (container name, digest it runs), from the pod's status.
    running: &'a [(String, String)],
    /// What planning found in the cache, so the evaluation does not look it up again.
    found: SmallVec<[Hit; 8]>,
}

/// A verdict planning found in the cache, keyed by the requirement and by *where* the
/// reference's text is: the canonical text of a pod's image is borrowed from the pod, so the
/// evaluation that follows asks with the very same slice. A reference built anew (another
/// spelling made canonical, a running digest) has another address and is looked up again.
struct Hit {
    cache_id: u64,
    text: (usize, usize),
    verdict: Arc<ImageVerdict>,
}

fn address(text: &str) -> (usize, usize) {
    (text.as_ptr() as usize, text.len())
}

impl<'a> ReviewImages<'a> {
    /// Verdicts from `verifier`'s cache, for an object as `/validate` receives it.
    pub fn new(verifier: &'a Arc<Verifier>) -> Self {
        ReviewImages {
            verifier,
            verified: Cow::Borrowed(&[]),
            before_mutation: false,
            running: &[],
            found: SmallVec::new(),
        }
    }

    /// For an object that has not passed `/mutate` (see [`ImageVerdicts::before_mutation`]).
    pub fn before_mutation(mut self, before: bool) -> Self {
        self.before_mutation = before;
        self
    }

    /// With the digests the pod's containers run: (container name, digest).
    pub fn running(mut self, running: &'a [(String, String)]) -> Self {
        self.running = running;
        self
    }

    /// With the verdicts reached for this object's misses.
    pub fn with_verified(mut self, verified: Vec<Verified>) -> Self {
        self.verified = Cow::Owned(verified);
        self
    }

    /// With verdicts reached for several objects at once (a page the audit listed).
    pub fn sharing(mut self, verified: &'a [Verified]) -> Self {
        self.verified = Cow::Borrowed(verified);
        self
    }

    /// What `set`'s `signed-images` policies will ask about `pod` that the cache does not
    /// hold, each pair once; what it does hold is kept for the evaluation of the same `pod`.
    /// Allocates nothing when everything is cached. The pod is borrowed for as long as these
    /// verdicts live, so no other text can take the addresses the hits are keyed by.
    pub fn misses(
        &mut self,
        set: &PolicySet,
        request: &Request<'_>,
        pod: PodView<'a, '_>,
    ) -> Vec<Miss> {
        let mut misses: Vec<Miss> = Vec::new();
        let mut found: SmallVec<[Hit; 8]> = SmallVec::new();
        wanted(set, request, pod, self, &mut |requirement, reference| {
            let text = address(reference);
            let seen = found
                .iter()
                .any(|h| h.cache_id == requirement.cache_id && h.text == text)
                || misses
                    .iter()
                    .any(|(r, i)| r.cache_id == requirement.cache_id && &**i == reference);
            if seen {
                return;
            }
            match self.verifier.cached(requirement, reference) {
                // Kept inline only: a pod with more images looks the rest up again rather
                // than allocate on the cached path.
                Some(verdict) if found.len() < found.inline_size() => found.push(Hit {
                    cache_id: requirement.cache_id,
                    text,
                    verdict,
                }),
                Some(_) => {}
                None => misses.push((Arc::clone(requirement), reference.into())),
            }
        });
        self.found = found;
        misses
    }

    /// Plans, verifies what the cache lacks (until `deadline`, else each rule's own timeout
    /// and a margin), and returns the verdicts to evaluate `pod` with.
    pub async fn verify(
        mut self,
        set: &PolicySet,
        request: &Request<'_>,
        pod: PodView<'a, '_>,
        deadline: Option<tokio::time::Instant>,
    ) -> ReviewImages<'a> {
        let misses = self.misses(set, request, pod);
        if misses.is_empty() {
            return self;
        }
        let deadline = deadline.unwrap_or_else(|| crate::images::deadline_for(&misses));
        let verified = self.verifier.verify_all(misses, deadline).await;
        self.with_verified(verified)
    }
}

impl ImageVerdicts for ReviewImages<'_> {
    /// What was verified for this object, else the cache; what neither knows was planned and
    /// not reached in time: "unavailable", never silently passed.
    fn verdict(&self, rule: &Arc<Requirement>, reference: &str) -> Option<Arc<ImageVerdict>> {
        let text = address(reference);
        if let Some(hit) = self
            .found
            .iter()
            .find(|h| h.cache_id == rule.cache_id && h.text == text)
        {
            return Some(Arc::clone(&hit.verdict));
        }
        if let Some((_, _, verdict)) = self
            .verified
            .iter()
            .find(|(id, i, _)| *id == rule.cache_id && &**i == reference)
        {
            return Some(Arc::clone(verdict));
        }
        Some(self.verifier.peek(rule, reference).unwrap_or_else(|| {
            Arc::new(ImageVerdict::Unavailable {
                reason: "no verdict was reached for this review".into(),
            })
        }))
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

/// Calls `each` with every (requirement, canonical reference) the `signed-images` policies
/// selecting `request` read a verdict for on `pod` (`images` tells which digests it runs).
pub fn wanted<'p>(
    set: &'p PolicySet,
    request: &Request<'_>,
    pod: PodView<'_, '_>,
    images: &dyn ImageVerdicts,
    each: &mut dyn FnMut(&'p Arc<Requirement>, &str),
) {
    for (_, policy) in engine::selecting(set, request) {
        if let Check::SignedImages(params) = &policy.check {
            signed_images::wanted(params, &policy.selector, pod.spec, images, each);
        }
    }
}
