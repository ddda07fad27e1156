//! `signed-images`: admit only images whose cosign signatures verify against trusted keys.
//!
//! ```yaml
//! spec:
//!   check: signed-images
//!   params:
//!     rules:
//!       - images: ["registry.example.com/team/*"]   # globs over the full image reference
//!         keys: ["-----BEGIN PUBLIC KEY-----\n..."] # PEM, inline
//!         keyFiles: [/etc/portier/keys/team.pub]    # or PEM files, read at load
//!     mutateDigest: true        # /mutate pins verified tags to their digest (default)
//!     requireDigest: true       # /validate denies a judged image without a digest (default:
//!                               # mutateDigest), so a tag re-pushed after admission never runs
//!     unmatchedImages: allow    # or deny: an image no rule judges is denied
//!     registryMirrors: {docker.io: mirror.example.com}  # where to reach a registry
//!     cacheTTL: 10m             # how long a verified digest stays verified
//!     negativeCacheTTL: 30s     # how long a rejection is remembered
//!     timeout: 2s               # per verification, registry round trips included
//!     onRegistryError: deny     # or allow (= warning + audit annotation)
//!     insecureRegistries: []    # registries spoken to over plain HTTP
//!     dockerConfig: /path/config.json  # registry credentials (the `auths` of a docker config)
//! ```
//!
//! Globs match the canonical reference ([`crate::image_ref`]): `nginx`, `docker.io/nginx` and
//! `index.docker.io/library/nginx:latest` are all `docker.io/library/nginx:latest`. Every rule
//! whose globs match an image must be satisfied; an image no rule matches is not judged here
//! unless `unmatchedImages: deny`. A text that is not an image reference is denied whatever
//! the rules say: no registry could be asked about it, and a runtime could read it otherwise.
//!
//! This file is pure: it reads verdicts through [`ImageVerdicts`]. Fetching and verifying
//! signatures is `crate::images`' work, which fills the cache these verdicts come from.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use serde::Deserialize;
use serde_json::Value;

use super::edit::{self, ALL_CONTAINERS, Object};
use super::selector::{self, Globs};
use super::{Finding, ParamError, Selector, Sink};
use crate::image_ref::{self, ImageRef};
use crate::pod::PodSpec;

pub const ID: &str = "signed-images";

/// The YAML form of the params.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ParamsDoc {
    rules: Vec<RuleDoc>,
    #[serde(default)]
    mutate_digest: Option<bool>,
    #[serde(default)]
    require_digest: Option<bool>,
    #[serde(default)]
    unmatched_images: UnmatchedImages,
    #[serde(default)]
    registry_mirrors: std::collections::BTreeMap<String, String>,
    #[serde(default, rename = "cacheTTL")]
    cache_ttl: Option<String>,
    #[serde(default, rename = "negativeCacheTTL")]
    negative_cache_ttl: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    on_registry_error: OnRegistryError,
    #[serde(default)]
    insecure_registries: Vec<String>,
    #[serde(default)]
    docker_config: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleDoc {
    images: Vec<String>,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    key_files: Vec<PathBuf>,
    /// Fulcio/Rekor identities: refused with a clear message until keyless verification exists.
    #[serde(default)]
    keyless: Option<Value>,
}

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

/// What to do with an image that no rule judges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnmatchedImages {
    /// It is not this policy's business.
    #[default]
    Allow,
    /// Deny it: the rules are an allow-list of what may run.
    Deny,
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
    /// Registry host → (user, password), from `dockerConfig`.
    pub credentials: Vec<(String, String, String)>,
    /// Registry (as canonical references name it) → the host to ask instead, from
    /// `registryMirrors`.
    pub mirrors: Vec<(String, String)>,
    /// Identifies the registry access settings (protocols, credentials): reviews under equal
    /// settings share one registry client and its tokens.
    pub access_id: u64,
}

/// One rule: which images, and whom to trust for them.
#[derive(Debug)]
pub struct Rule {
    /// Position in `params.rules`, for messages.
    pub index: usize,
    images: Globs,
    pub trust: Trust,
    pub settings: Arc<Settings>,
    /// Identifies the key set and the policy revision in the verdict cache: a changed key or
    /// policy never reuses an old verdict.
    pub cache_id: u64,
}

/// Whom a rule trusts.
///
/// Keyless verification (a Fulcio certificate chain, a Rekor inclusion proof, an OIDC
/// issuer and subject) would be a second variant here; the verifier already dispatches on it.
#[derive(Debug)]
pub enum Trust {
    Keys(Vec<PublicKey>),
}

/// A public key cosign signatures are checked against.
pub struct PublicKey {
    algorithm: &'static dyn VerificationAlgorithm,
    /// The key as ring reads it (an EC point, or an Ed25519 key).
    key: Vec<u8>,
    /// `sha256:<hex>` of the SubjectPublicKeyInfo, as `cosign public-key` users compare keys.
    pub fingerprint: String,
    /// Where it came from: `keys[0]` or a file path.
    pub origin: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("fingerprint", &self.fingerprint)
            .field("origin", &self.origin)
            .finish()
    }
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as `cosign generate-key-pair` writes it.
    pub fn from_pem(pem: &str, origin: String) -> Result<PublicKey, String> {
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.trim().as_bytes())
            .map_err(|e| format!("{origin}: not a PEM block: {e}"))?;
        if block.label != "PUBLIC KEY" {
            return Err(format!(
                "{origin}: expected a \"PUBLIC KEY\" PEM block (cosign.pub), found {:?}",
                block.label
            ));
        }
        PublicKey::from_spki_der(&block.contents, origin)
    }

    fn from_spki_der(der: &[u8], origin: String) -> Result<PublicKey, String> {
        use x509_parser::prelude::FromDer;
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der)
            .map_err(|e| format!("{origin}: not a SubjectPublicKeyInfo: {e}"))?;
        let algorithm_oid = spki.algorithm.algorithm.to_id_string();
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|oid| oid.to_id_string());
        // cosign hashes with SHA-256 for every key type it verifies (sigstore LoadVerifier).
        let algorithm: &'static dyn VerificationAlgorithm = match (
            algorithm_oid.as_str(),
            curve.as_deref(),
        ) {
            ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => {
                &signature::ECDSA_P256_SHA256_ASN1
            }
            ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => &signature::ECDSA_P384_SHA256_ASN1,
            ("1.3.101.112", _) => &signature::ED25519,
            ("1.2.840.10045.2.1", other) => {
                return Err(format!(
                    "{origin}: unsupported elliptic curve {}; use P-256 (cosign's default) or P-384",
                    other.unwrap_or("(none)")
                ));
            }
            (other, _) => {
                return Err(format!(
                    "{origin}: unsupported key algorithm {other}; supported: ECDSA P-256 (cosign's default), ECDSA P-384, Ed25519"
                ));
            }
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        Ok(PublicKey {
            algorithm,
            key: spki.subject_public_key.data.to_vec(),
            fingerprint: format!("sha256:{}", hex(digest.as_ref())),
            origin,
        })
    }

    /// Whether `signature` (ASN.1 DER for ECDSA, as cosign stores it) signs `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(self.algorithm, &self.key)
            .verify(message, signature)
            .is_ok()
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The compiled params.
#[derive(Debug)]
pub struct Params {
    /// Each rule shares the policy's [`Settings`].
    pub rules: Vec<Arc<Rule>>,
    /// `/mutate` pins verified tags to their digest.
    pub mutate_digest: bool,
    /// `/validate` denies a judged reference without a digest.
    pub require_digest: bool,
    pub unmatched_images: UnmatchedImages,
}

fn duration(field: &str, text: Option<&str>, default: Duration) -> Result<Duration, ParamError> {
    let Some(text) = text else {
        return Ok(default);
    };
    humantime::parse_duration(text).map_err(|e| {
        ParamError::new(
            format!("spec.params.{field}"),
            format!("{text:?} is not a duration (e.g. 30s, 10m): {e}"),
        )
    })
}

/// The `auths` of a docker `config.json`: registry → base64 `user:password`.
#[derive(Debug, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, DockerAuth>,
}

#[derive(Debug, Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// (registry host, user, password) per entry of a docker config.
fn read_docker_config(path: &std::path::Path) -> Result<Vec<(String, String, String)>, String> {
    use base64::Engine as _;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let config: DockerConfig = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a docker config.json: {e}", path.display()))?;
    let mut out = Vec::new();
    for (server, entry) in config.auths {
        // Keys may be URLs (`https://index.docker.io/v1/`): keep the host.
        let host = server
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("")
            .to_owned();
        let host = if host == "index.docker.io" {
            "docker.io".to_owned()
        } else {
            host
        };
        let (user, password) = match (&entry.auth, entry.username, entry.password) {
            (Some(auth), _, _) => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        format!(
                            "{}: auths[{server:?}].auth is not base64 of user:password",
                            path.display()
                        )
                    })?;
                let (u, p) = decoded.split_once(':').ok_or_else(|| {
                    format!(
                        "{}: auths[{server:?}].auth is not base64 of user:password",
                        path.display()
                    )
                })?;
                (u.to_owned(), p.to_owned())
            }
            (None, Some(u), Some(p)) => (u, p),
            _ => continue,
        };
        out.push((host, user, password));
    }
    Ok(out)
}

impl Params {
    pub fn compile(doc: ParamsDoc, policy_revision: u64) -> Result<Params, ParamError> {
        let cache_ttl = duration("cacheTTL", doc.cache_ttl.as_deref(), DEFAULT_CACHE_TTL)?;
        let negative_cache_ttl = duration(
            "negativeCacheTTL",
            doc.negative_cache_ttl.as_deref(),
            DEFAULT_NEGATIVE_CACHE_TTL,
        )?;
        let timeout = duration("timeout", doc.timeout.as_deref(), DEFAULT_TIMEOUT)?;
        if timeout.is_zero() {
            return Err(ParamError::new(
                "spec.params.timeout",
                "must be more than 0 (it bounds each verification)",
            ));
        }
        let credentials = match &doc.docker_config {
            Some(path) => read_docker_config(path)
                .map_err(|m| ParamError::new("spec.params.dockerConfig", m))?,
            None => Vec::new(),
        };
        let mut mirrors = Vec::with_capacity(doc.registry_mirrors.len());
        for (registry, mirror) in doc.registry_mirrors {
            let field = format!("spec.params.registryMirrors[{registry:?}]");
            if !image_ref::is_registry_host(&registry) || registry == "index.docker.io" {
                return Err(ParamError::new(
                    field,
                    "the key must be a registry as canonical references name it (docker.io, ghcr.io, registry.example.com:5000)",
                ));
            }
            if !image_ref::is_registry_host(&mirror) {
                return Err(ParamError::new(
                    field,
                    format!("{mirror:?} is not a registry host[:port]"),
                ));
            }
            mirrors.push((registry, mirror));
        }
        let mut access = std::collections::hash_map::DefaultHasher::new();
        doc.insecure_registries.hash(&mut access);
        credentials.hash(&mut access);
        mirrors.hash(&mut access);
        let settings = Arc::new(Settings {
            cache_ttl,
            negative_cache_ttl: negative_cache_ttl.min(cache_ttl),
            timeout,
            on_registry_error: doc.on_registry_error,
            insecure_registries: doc.insecure_registries,
            credentials,
            mirrors,
            access_id: access.finish(),
        });
        if doc.rules.is_empty() {
            return Err(ParamError::new(
                "spec.params.rules",
                "needs at least one rule (images and the keys that must have signed them)",
            ));
        }
        let mut rules = Vec::with_capacity(doc.rules.len());
        for (index, rule) in doc.rules.into_iter().enumerate() {
            let field = format!("spec.params.rules[{index}]");
            if rule.images.is_empty() {
                return Err(ParamError::new(
                    format!("{field}.images"),
                    "needs at least one glob (e.g. registry.example.com/team/*)",
                ));
            }
            if rule.keyless.is_some() {
                return Err(ParamError::new(
                    format!("{field}.keyless"),
                    "keyless (Fulcio/Rekor) verification is not supported yet; give keys or keyFiles",
                ));
            }
            let images = selector::image_globs(&format!("{field}.images"), Some(&rule.images))
                .map_err(|e| {
                    ParamError::new(e.field, format!("glob {:?}: {}", e.pattern, e.reason))
                })?;
            let mut keys = Vec::new();
            for (i, pem) in rule.keys.iter().enumerate() {
                let origin = format!("keys[{i}]");
                keys.push(
                    PublicKey::from_pem(pem, origin)
                        .map_err(|m| ParamError::new(format!("{field}.keys[{i}]"), m))?,
                );
            }
            for (i, path) in rule.key_files.iter().enumerate() {
                let at = format!("{field}.keyFiles[{i}]");
                let pem = std::fs::read_to_string(path).map_err(|e| {
                    ParamError::new(at.clone(), format!("cannot read {}: {e}", path.display()))
                })?;
                keys.push(
                    PublicKey::from_pem(&pem, path.display().to_string())
                        .map_err(|m| ParamError::new(at, m))?,
                );
            }
            if keys.is_empty() {
                return Err(ParamError::new(
                    field,
                    "needs keys (PEM) or keyFiles: the public keys whose signatures are trusted",
                ));
            }
            let mut id = std::collections::hash_map::DefaultHasher::new();
            policy_revision.hash(&mut id);
            index.hash(&mut id);
            for key in &keys {
                key.fingerprint.hash(&mut id);
            }
            rules.push(Arc::new(Rule {
                index,
                images,
                trust: Trust::Keys(keys),
                settings: Arc::clone(&settings),
                cache_id: id.finish(),
            }));
        }
        // Pinning closes the race between admission and the kubelet's pull (a tag re-pushed in
        // between); requiring a digest makes /validate hold the line when /mutate did not run.
        let mutate_digest = doc.mutate_digest.unwrap_or(true);
        Ok(Params {
            rules,
            mutate_digest,
            require_digest: doc.require_digest.unwrap_or(mutate_digest),
            unmatched_images: doc.unmatched_images,
        })
    }
}

/// Why a signature check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The registry has no such image (tag or digest).
    ImageNotFound,
    /// No `sha256-<hex>.sig` artifact exists for the digest.
    NoSignature,
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
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::ImageNotFound => f.write_str("does not exist in its registry"),
            Rejection::NoSignature => f.write_str("has no cosign signature"),
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

/// Where verdicts come from during an evaluation. `None` means not known yet: the caller
/// verifies the image (asynchronously) and evaluates again.
pub trait ImageVerdicts {
    /// The verdict for a canonical reference under `rule`.
    fn verdict(&self, rule: &Arc<Rule>, reference: &str) -> Option<Arc<ImageVerdict>>;

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
    fn verdict(&self, _: &Arc<Rule>, _: &str) -> Option<Arc<ImageVerdict>> {
        None
    }

    /// Offline without registry access: what needs no verdict is still judged as it would
    /// be before `/mutate`.
    fn before_mutation(&self) -> bool {
        true
    }
}

impl Rule {
    /// Whether this rule judges `reference` (canonical).
    pub fn matches(&self, reference: &str) -> bool {
        self.images.admits(reference)
    }
}

const FIX_SIGN: &str = "sign the image's digest with a trusted key (cosign sign --key ...), or use an image signed by one";

/// Reports every in-scope image a rule rejects or could not verify, every text that is not an
/// image reference, a judged tag left unpinned under `requireDigest`, and with
/// `unmatchedImages: deny` every image no rule judges.
pub fn evaluate<'v>(
    params: &Params,
    pod: &'v PodSpec<'_>,
    images: &dyn ImageVerdicts,
    sink: &mut Sink<'_, '_, 'v>,
) {
    for at in pod.all_containers() {
        let image = at.container.image();
        // The API server refuses a pod without an image; a template may leave it to be filled.
        if image.is_empty() {
            continue;
        }
        let parsed = image_ref::parse(image);
        if !sink.judges_reference(parsed.as_ref().ok()) {
            continue;
        }
        let reference = match parsed {
            Ok(reference) => reference,
            Err(why) => {
                sink.report(Finding::for_container(
                    &at,
                    "image",
                    format!(
                        "{image:?} is not a valid image reference ({why}): no registry can be asked whether it is signed"
                    ),
                    "write the image as registry/repository:tag or registry/repository@sha256:<digest>",
                ));
                continue;
            }
        };
        let running = images
            .running_digest(&at.container.name)
            .map(|digest| reference.pinned(digest));
        let judged = match &running {
            Some(pinned) => image_ref::parse(pinned).ok(),
            None => None,
        };
        let judged = judged.as_ref().unwrap_or(&reference);
        let mut matched = false;
        // Whether the image would be admitted but for a missing digest: a rejection or a
        // registry error already decides (and cannot be pinned anyway).
        let mut otherwise_admitted = true;
        for rule in params
            .rules
            .iter()
            .filter(|r| r.matches(reference.as_str()))
        {
            matched = true;
            let Some(verdict) = images.verdict(rule, judged.as_str()) else {
                continue;
            };
            otherwise_admitted &= matches!(*verdict, ImageVerdict::Verified { .. });
            report_verdict(&verdict, rule, judged, running.is_some(), &at, sink);
        }
        if !matched {
            if params.unmatched_images == UnmatchedImages::Deny {
                sink.report(Finding::for_container(
                    &at,
                    "image",
                    format!(
                        "image {reference} is judged by no rule of this policy, and unmatchedImages is deny"
                    ),
                    "use an image that a rule's globs cover, or add a rule (with its keys) for this one",
                ));
            }
            continue;
        }
        let pinned_by_mutation = images.before_mutation() && params.mutate_digest;
        if params.require_digest
            && otherwise_admitted
            && judged.digest().is_none()
            && !pinned_by_mutation
        {
            sink.report(Finding::for_container(
                &at,
                "image",
                format!(
                    "image {reference} is not pinned to a digest, and requireDigest is on: the tag could point at another image by the time it is pulled"
                ),
                "write the image as name:tag@sha256:<digest> (crane digest, or let portier's /mutate pin it with mutateDigest)",
            ));
        }
    }
}

fn report_verdict<'v>(
    verdict: &ImageVerdict,
    rule: &Rule,
    reference: &ImageRef<'_>,
    running: bool,
    at: &crate::pod::ContainerRef<'v, '_>,
    sink: &mut Sink<'_, '_, 'v>,
) {
    let runs = if running {
        " (the digest it runs, from status.containerStatuses[].imageID)"
    } else {
        ""
    };
    match verdict {
        ImageVerdict::Verified { .. } => {}
        ImageVerdict::Rejected { digest, rejection } => {
            let at_digest = match digest {
                Some(d) if reference.digest() != Some(d.as_str()) => format!(" ({d})"),
                _ => String::new(),
            };
            sink.report(Finding::for_container(
                at,
                "image",
                format!(
                    "image {reference}{at_digest}{runs} {rejection} (rule {})",
                    rule.index
                ),
                FIX_SIGN,
            ));
        }
        ImageVerdict::Unavailable { reason } => {
            let finding = Finding::for_container(
                at,
                "image",
                format!(
                    "the signature of image {reference}{runs} could not be verified: {reason} (rule {})",
                    rule.index
                ),
                "make the registry reachable from portier (insecureRegistries, registryMirrors, dockerConfig), or retry",
            );
            match rule.settings.on_registry_error {
                OnRegistryError::Deny => sink.report(finding),
                OnRegistryError::Allow => sink.report_lenient(finding),
            }
        }
    }
}

/// `/mutate` with `mutateDigest`: rewrites each verified tag reference to its canonical form
/// pinned to the verified digest (`docker.io/library/nginx:1.27@sha256:...`), so the kubelet
/// runs exactly what was verified. Images with a digest already, out of the policy's scope,
/// or not verified by every matching rule are left alone.
pub fn pin_digests(
    params: &Params,
    selector: &Selector,
    spec: &mut Object,
    images: &dyn ImageVerdicts,
) -> bool {
    if !params.mutate_digest {
        return false;
    }
    let mut changed = false;
    for container in edit::containers_mut(spec, ALL_CONTAINERS) {
        let Some(image) = container.get("image").and_then(Value::as_str) else {
            continue;
        };
        let Ok(reference) = image_ref::parse(image) else {
            continue;
        };
        if reference.digest().is_some() || !selector.judges_reference(Some(&reference)) {
            continue;
        }
        let mut pinned: Option<String> = None;
        let mut all_verified = true;
        for rule in params
            .rules
            .iter()
            .filter(|r| r.matches(reference.as_str()))
        {
            match images.verdict(rule, reference.as_str()).as_deref() {
                Some(ImageVerdict::Verified { digest, .. })
                    if pinned.as_deref().is_none_or(|p| p == digest) =>
                {
                    pinned = Some(digest.clone());
                }
                _ => all_verified = false,
            }
        }
        if let (true, Some(digest)) = (all_verified, pinned) {
            let pinned_image = reference.pinned(&digest);
            container.insert("image".to_owned(), Value::String(pinned_image));
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_credentials_from_a_docker_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        // "robot:s3cr:et" (a password may hold ':'), a URL key, and an entry without auth.
        std::fs::write(
            &path,
            r#"{"auths": {
                "registry.example.com": {"auth": "cm9ib3Q6czNjcjpldA=="},
                "https://index.docker.io/v1/": {"username": "me", "password": "pw"},
                "ghcr.io": {"identitytoken": "ignored"}
            }}"#,
        )
        .unwrap();
        let mut got = read_docker_config(&path).unwrap();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("docker.io".into(), "me".into(), "pw".into()),
                (
                    "registry.example.com".into(),
                    "robot".into(),
                    "s3cr:et".into()
                ),
            ]
        );
        std::fs::write(&path, r#"{"auths": {"r": {"auth": "bm9jb2xvbg=="}}}"#).unwrap();
        let err = read_docker_config(&path).unwrap_err();
        assert!(err.contains("not base64 of user:password"), "{err}");
        let err = read_docker_config(&dir.path().join("missing.json")).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
    }

    use crate::policy::Check;

    #[test]
    fn params_name_the_field_they_refuse() {
        let compile = |yaml: &str| {
            let doc: ParamsDoc = serde_saphyr::from_str(yaml).unwrap();
            Params::compile(doc, 0).map(|_| ()).unwrap_err()
        };
        let e = compile("rules: []");
        assert_eq!(e.field, "spec.params.rules");
        let e = compile("rules: [{images: ['*']}]");
        assert!(e.message.contains("needs keys"), "{}", e.message);
        let e = compile("rules: [{images: ['*'], keys: ['not a key']}]");
        assert_eq!(e.field, "spec.params.rules[0].keys[0]");
        let e = compile("rules: [{images: ['*'], keyless: {issuer: x}}]");
        assert!(e.message.contains("not supported yet"), "{}", e.message);
        let e = compile("rules: [{images: ['*'], keyFiles: [/nonexistent/cosign.pub]}]");
        assert!(e.message.contains("cannot read"), "{}", e.message);
        let e = compile("timeout: soon\nrules: [{images: ['*'], keys: [x]}]");
        assert_eq!(e.field, "spec.params.timeout");
    }

    /// Verdicts from a table, for the check alone: (canonical reference, verdict).
    struct Table {
        verdicts: Vec<(String, ImageVerdict)>,
        before_mutation: bool,
        running: Vec<(String, String)>,
    }

    impl ImageVerdicts for Table {
        fn verdict(&self, _: &Arc<Rule>, reference: &str) -> Option<Arc<ImageVerdict>> {
            self.verdicts
                .iter()
                .find(|(r, _)| r == reference)
                .map(|(_, v)| Arc::new(v.clone()))
        }
        fn before_mutation(&self) -> bool {
            self.before_mutation
        }
        fn running_digest(&self, container: &str) -> Option<&str> {
            self.running
                .iter()
                .find(|(c, _)| c == container)
                .map(|(_, d)| d.as_str())
        }
    }

    const KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEA9oFvTJJuu0cszKBsiuqfFYN3NLV
meleaASYW5l+nqDxoUg4f8177owlgVD89pZQ9jUxP8dbibmDJpvcjBo9RQ==
-----END PUBLIC KEY-----";

    fn set(params: &str) -> crate::policy::PolicySet {
        let key: String = KEY.lines().map(|l| format!("\n        {l}")).collect();
        crate::policy::testing::policy_set(&format!(
            "check: signed-images\nparams:\n  rules:\n    - images: [\"docker.io/library/*\"]\n      keys:\n      - |{key}\n{params}"
        ))
    }

    fn verified(digest: &str) -> ImageVerdict {
        ImageVerdict::Verified {
            digest: digest.to_owned(),
            key: "k".into(),
        }
    }

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    /// The messages the check gives for a pod with these images.
    fn judge(set: &crate::policy::PolicySet, images: &[&str], table: &Table) -> Vec<String> {
        let containers: Vec<serde_json::Value> = images
            .iter()
            .enumerate()
            .map(|(i, image)| serde_json::json!({"name": format!("c{i}"), "image": image}))
            .collect();
        let json = serde_json::json!({"spec": {"containers": containers}}).to_string();
        let workload = crate::pod::decode_workload(crate::pod::WorkloadKind::Pod, &json).unwrap();
        let pod = workload.pod().unwrap();
        let mut out = Vec::new();
        for (index, policy) in set.policies().iter().enumerate() {
            policy
                .check
                .evaluate(pod, table, &mut Sink::new(policy, index, &mut out));
        }
        out.iter()
            .map(|v| format!("{} {}", v.mode.as_str(), v.message("spec")))
            .collect()
    }

    fn table(verdicts: &[(&str, ImageVerdict)]) -> Table {
        Table {
            verdicts: verdicts
                .iter()
                .map(|(r, v)| ((*r).to_owned(), v.clone()))
                .collect(),
            before_mutation: false,
            running: Vec::new(),
        }
    }

    #[test]
    fn every_spelling_is_judged_under_its_canonical_name() {
        let set = set("  requireDigest: false");
        let t = table(&[
            ("docker.io/library/nginx:1.27", verified(D1)),
            (
                "docker.io/library/evil:1",
                ImageVerdict::Rejected {
                    digest: Some(D2.into()),
                    rejection: Rejection::NoSignature,
                },
            ),
        ]);
        for spelling in [
            "nginx:1.27",
            "docker.io/nginx:1.27",
            "index.docker.io/library/nginx:1.27",
            "index.docker.io/nginx:1.27",
        ] {
            assert!(judge(&set, &[spelling], &t).is_empty(), "{spelling}");
        }
        for spelling in ["evil:1", "docker.io/evil:1", "index.docker.io/evil:1"] {
            let got = judge(&set, &[spelling], &t);
            assert_eq!(got.len(), 1, "{spelling}: {got:?}");
            assert!(
                got[0].contains("image docker.io/library/evil:1 (sha256:2222"),
                "{got:?}"
            );
        }
        // A rule's globs are canonical: a host it does not name is another image.
        assert!(judge(&set, &["registry-1.docker.io/library/evil:1"], &t).is_empty());
    }

    #[test]
    fn a_text_that_is_no_reference_is_denied_whatever_the_rules() {
        let set = set("  requireDigest: false");
        let t = table(&[]);
        for bad in [
            "NGINX:1.27",
            "nginx:1.27 ",
            "nginx@sha256:abc",
            "docker.io/library/x:",
        ] {
            let got = judge(&set, &[bad], &t);
            assert_eq!(got.len(), 1, "{bad}: {got:?}");
            assert!(got[0].starts_with("enforce "), "{got:?}");
            assert!(got[0].contains("is not a valid image reference"), "{got:?}");
        }
    }

    #[test]
    fn unmatched_images_deny_turns_the_rules_into_an_allow_list() {
        let t = table(&[("docker.io/library/nginx:1.27", verified(D1))]);
        let open = set("  requireDigest: false");
        assert!(judge(&open, &["quay.io/x/y:1"], &t).is_empty());
        let closed = set("  requireDigest: false\n  unmatchedImages: deny");
        let got = judge(&closed, &["quay.io/x/y:1", "nginx:1.27"], &t);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].contains("quay.io/x/y:1 is judged by no rule"),
            "{got:?}"
        );
    }

    #[test]
    fn require_digest_follows_mutate_digest_and_the_pass() {
        let pinned = format!("docker.io/library/nginx:1.27@{D1}");
        let t = table(&[
            ("docker.io/library/nginx:1.27", verified(D1)),
            (pinned.as_str(), verified(D1)),
        ]);
        // Defaults: mutateDigest and requireDigest on. At /validate a tag is refused...
        let defaults = set("");
        let got = judge(&defaults, &["nginx:1.27"], &t);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("is not pinned to a digest"), "{got:?}");
        // ...a pinned reference is not...
        assert!(judge(&defaults, &[&pinned], &t).is_empty());
        // ...and offline, where /mutate has not run yet, the tag counts as pinned.
        let offline = Table {
            before_mutation: true,
            ..table(&[("docker.io/library/nginx:1.27", verified(D1))])
        };
        assert!(judge(&defaults, &["nginx:1.27"], &offline).is_empty());
        // Without mutation, nothing would pin it: offline says so too.
        let no_mutation = set("  mutateDigest: false\n  requireDigest: true");
        assert_eq!(judge(&no_mutation, &["nginx:1.27"], &offline).len(), 1);
        let neither = set("  mutateDigest: false");
        assert!(judge(&neither, &["nginx:1.27"], &t).is_empty());
        // A rejection speaks for itself; the missing digest is not piled on it.
        let rejected = table(&[(
            "docker.io/library/nginx:1.27",
            ImageVerdict::Rejected {
                digest: Some(D1.into()),
                rejection: Rejection::NoSignature,
            },
        )]);
        let got = judge(&defaults, &["nginx:1.27"], &rejected);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("has no cosign signature"), "{got:?}");
    }

    #[test]
    fn a_running_digest_is_what_is_verified() {
        let set = set("");
        let t = Table {
            before_mutation: true,
            running: vec![("c0".into(), D2.into())],
            ..table(&[
                ("docker.io/library/nginx:1.27", verified(D1)),
                (
                    &format!("docker.io/library/nginx:1.27@{D2}"),
                    ImageVerdict::Rejected {
                        digest: Some(D2.into()),
                        rejection: Rejection::NoSignature,
                    },
                ),
            ])
        };
        let got = judge(&set, &["nginx:1.27"], &t);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("the digest it runs"), "{got:?}");
        assert!(got[0].contains(D2), "{got:?}");
    }

    #[test]
    fn pins_in_canonical_form_and_refuses_bad_mirrors() {
        let set = set("");
        let policy = &set.policies()[0];
        let Check::SignedImages(params) = &policy.check else {
            panic!()
        };
        let t = table(&[("docker.io/library/nginx:1.27", verified(D1))]);
        let mut spec: Object = serde_json::from_str(
            r#"{"containers":[{"name":"a","image":"index.docker.io/nginx:1.27"},{"name":"b","image":"Bad Image"}]}"#,
        )
        .unwrap();
        assert!(pin_digests(params, &policy.selector, &mut spec, &t));
        assert_eq!(
            spec["containers"][0]["image"],
            format!("docker.io/library/nginx:1.27@{D1}")
        );
        assert_eq!(spec["containers"][1]["image"], "Bad Image");

        let compile = |yaml: &str| {
            let doc: ParamsDoc = serde_saphyr::from_str(yaml).unwrap();
            Params::compile(doc, 0).map(|_| ()).unwrap_err()
        };
        let e = compile(
            "registryMirrors: {index.docker.io: m.example.com}\nrules: [{images: ['*'], keys: [x]}]",
        );
        assert!(
            e.field.starts_with("spec.params.registryMirrors"),
            "{}",
            e.field
        );
        let e = compile(
            "registryMirrors: {docker.io: 'http://m'}\nrules: [{images: ['*'], keys: [x]}]",
        );
        assert!(e.message.contains("not a registry host"), "{}", e.message);
        let e = compile("rules: [{images: ['library/nginx:*'], keys: [x]}]");
        assert_eq!(e.field, "spec.params.rules[0].images", "{}", e.message);
    }
}
