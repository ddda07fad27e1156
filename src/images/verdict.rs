//! What verification is asked and what it answers: a rule's requirement (whom to trust, how
//! to reach registries), the verdict for one image, and the trait evaluations read verdicts
//! through. Shared by the `signed-images` check (which only reads verdicts) and the verifier
//! (which reaches them).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::credentials::Credential;
use super::keyless::Keyless;
use super::keys::PublicKey;
use super::notation::NotationTrust;

/// What to do when a signature cannot be checked (registry down, timeout, rate limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRegistryError {
    /// Treat the image as unverified: the policy's mode applies.
    #[default]
    Deny,
    /// Admit it with a warning and an audit annotation, whatever the policy's mode.
    Allow,
}

pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(600);
pub const DEFAULT_NEGATIVE_CACHE_TTL: Duration = Duration::from_secs(30);
/// Below the server's default review deadline (2.5 s), so a slow registry still gets an answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// How signatures are fetched and remembered; shared by every rule of a policy.
#[derive(Debug)]
pub struct Settings {
    pub cache_ttl: Duration,
    pub negative_cache_ttl: Duration,
    pub timeout: Duration,
    pub on_registry_error: OnRegistryError,
    pub insecure_registries: Vec<String>,
    /// From `dockerConfig`.
    pub credentials: Vec<Credential>,
    /// Registry (as canonical references name it) → the host to ask instead, from
    /// `registryMirrors`.
    pub mirrors: Vec<(String, String)>,
    /// Identifies the registry access settings (protocols, credentials, mirrors): reviews under
    /// equal settings share one registry client and its tokens.
    pub access_id: u64,
}

/// Whom a rule trusts; the verifier dispatches on it.
#[derive(Debug)]
pub enum Trust {
    /// Public keys: legacy cosign signatures and Sigstore bundles they made.
    Keys(Vec<PublicKey>),
    /// Fulcio certificates of OIDC identities, logged in Rekor, from a trusted root.
    Keyless(Keyless),
    /// Notation signatures whose chain leads to a trust store, by trusted identities.
    Notation(NotationTrust),
}

/// What an image a rule judges must satisfy, and how its registry is reached: all the
/// verifier needs of a rule.
#[derive(Debug)]
pub struct Requirement {
    pub trust: Trust,
    pub settings: Arc<Settings>,
    /// Identifies the trust, the policy revision and the rule in the verdict cache: a changed
    /// key or policy never reuses an old verdict.
    pub cache_id: u64,
}

/// Why a signature check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The registry has no such image (tag or digest).
    ImageNotFound,
    /// No signature of the kind the rule trusts exists for the digest (`cosign signature`:
    /// no `sha256-<hex>.sig` tag and no Sigstore bundle referrer).
    NoSignature { looked_for: &'static str },
    /// Signatures exist, but none verifies with a trusted key. An ECDSA signature does not name
    /// its signer, so a signature by another key and a payload changed after signing look the
    /// same.
    NoTrustedSignature { signatures: usize },
    /// A trusted key signed a payload for another digest.
    DigestMismatch { signed: String },
    /// A trusted key signed this digest for another repository.
    ReferenceMismatch { signed: String, expected: String },
    /// The signature artifact is not in cosign's format.
    Malformed(String),
    /// A signature of `format` exists and does not verify under the rule's trust: the
    /// reason says which step failed (identity, chain, log, envelope, ...).
    Invalid {
        format: &'static str,
        reason: String,
    },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::ImageNotFound => f.write_str("does not exist in its registry"),
            Rejection::NoSignature { looked_for } => write!(f, "has no {looked_for}"),
            Rejection::NoTrustedSignature { signatures } => write!(
                f,
                "has {signatures} cosign signature(s) but none verifies with a trusted key: signed by another key, or the payload was changed after signing"
            ),
            Rejection::DigestMismatch { signed } => write!(
                f,
                "has a signature by a trusted key for another digest ({signed}): the signed payload does not name this image"
            ),
            Rejection::ReferenceMismatch { signed, expected } => write!(
                f,
                "has a signature by a trusted key for repository {signed}, not {expected}"
            ),
            Rejection::Malformed(why) => write!(f, "has a malformed signature artifact: {why}"),
            Rejection::Invalid { format, reason } => {
                write!(f, "has a {format} that does not verify: {reason}")
            }
        }
    }
}

/// What verification found for one image under one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageVerdict {
    /// A trusted key signed this digest for this repository.
    Verified { digest: String, key: String },
    /// The image is not signed as the rule requires.
    Rejected {
        digest: Option<String>,
        rejection: Rejection,
    },
    /// It could not be checked (registry unreachable or erroring, timeout, rate limit).
    Unavailable { reason: String },
}

impl ImageVerdict {
    /// The metric label of this verdict.
    pub fn result(&self) -> crate::metrics::VerificationResult {
        use crate::metrics::VerificationResult;
        match self {
            ImageVerdict::Verified { .. } => VerificationResult::Verified,
            ImageVerdict::Rejected { .. } => VerificationResult::Rejected,
            ImageVerdict::Unavailable { .. } => VerificationResult::Unavailable,
        }
    }
}

/// Where verdicts come from during an evaluation. `None` means not known yet: the caller
/// verifies the image (asynchronously) and evaluates again.
pub trait ImageVerdicts {
    /// The verdict for a canonical reference under the requirement of a rule.
    fn verdict(&self, rule: &Arc<Requirement>, reference: &str) -> Option<Arc<ImageVerdict>>;

    /// Whether the object judged has not passed `/mutate` (a manifest in `check`, an object
    /// listed by the audit): it is judged as admission would see it, with the tags that
    /// `mutateDigest` would pin counted as pinned. At `/validate` the object has passed it.
    fn before_mutation(&self) -> bool {
        false
    }

    /// The digest the container named `container` runs, when the pod reports it
    /// (`status.containerStatuses[].imageID`, read by the audit): what is verified then.
    fn running_digest(&self, _container: &str) -> Option<&str> {
        None
    }
}

/// For evaluations without registry access (`portier check`, the audit, benchmarks): nothing
/// is known, so this check reports nothing.
pub struct Unverified;

impl ImageVerdicts for Unverified {
    fn verdict(&self, _: &Arc<Requirement>, _: &str) -> Option<Arc<ImageVerdict>> {
        None
    }

    /// Offline without registry access: what needs no verdict is still judged as it would
    /// be before `/mutate`.
    fn before_mutation(&self) -> bool {
        true
    }
}
