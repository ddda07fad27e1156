//! `signed-images`: admit only images whose digest is signed the way a rule trusts: by its keys
//! (cosign's legacy `.sig` signatures and cosign v3 Sigstore bundles), keylessly by its OIDC
//! identities (Sigstore bundles against a trusted root), or with Notation by a certificate of
//! its trust store. One trust model per rule.
//!
//! ```yaml
//! spec:
//!   check: signed-images
//!   params:
//!     rules:
//!       - images: ["registry.example.com/team/*"]   # globs over the full image reference
//!         keys: ["-----BEGIN PUBLIC KEY-----\n..."] # PEM, inline
//!         keyFiles: [/etc/portier/keys/team.pub]    # or PEM files, read again on change
//!       - images: ["ghcr.io/acme/*"]
//!         keyless:
//!           trustedRoot: /etc/portier/sigstore/trusted_root.json
//!           identities: [{issuer: "https://token.actions.githubusercontent.com",
//!                         subjectRegExp: "^https://github.com/acme/"}]
//!       - images: ["acme.azurecr.io/*"]
//!         notation:
//!           trustStore: [/etc/portier/notation/ca.pem]   # type ca: notary.x509
//!           signingAuthorityStore: []                    # notary.x509.signingAuthority
//!           trustedIdentities: ["x509.subject: C=US, O=Acme, CN=release"]   # or "*"
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
//! Evaluation is pure: it reads verdicts through [`ImageVerdicts`]. Reading keys and
//! credentials, fetching and verifying signatures is `crate::images`' work.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::edit::{self, ALL_CONTAINERS, Object};
use super::selector::{self, Globs};
use super::{Finding, ParamError, Selector, Sink};
use crate::image_ref::{self, ImageRef};
use crate::images::credentials::read_docker_config;
use crate::images::keys::PublicKey;
use crate::images::verdict::{
    DEFAULT_CACHE_TTL, DEFAULT_NEGATIVE_CACHE_TTL, DEFAULT_TIMEOUT, OnRegistryError,
};
use crate::images::{ImageVerdict, ImageVerdicts, Requirement, Settings, Trust};
use crate::pod::PodSpec;

mod trust;

use trust::{KeylessDoc, NotationDoc, compile_keyless, compile_notation};

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
    /// Fulcio/Rekor identities, from a trusted root.
    #[serde(default)]
    keyless: Option<KeylessDoc>,
    /// Notation signatures: a trust store and trusted identities.
    #[serde(default)]
    notation: Option<NotationDoc>,
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

/// One rule: which images, and what they must satisfy.
#[derive(Debug)]
pub struct Rule {
    /// Position in `params.rules`, for messages.
    pub index: usize,
    images: Globs,
    /// Whom to trust and how to reach registries: what the verifier is asked.
    pub requirement: Arc<Requirement>,
}

/// The compiled params.
#[derive(Debug)]
pub struct Params {
    /// The files these params read (key files, trusted roots, trust stores, the docker
    /// config) with a hash of their content as read: a reload compiles again when one
    /// changes (a rotated Secret), as when a policy file does.
    pub files: Vec<(PathBuf, u64)>,
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

/// A hash of `path`'s content (0 when it cannot be read: that is a change too).
pub fn file_hash(path: &std::path::Path) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    match std::fs::read(path) {
        Ok(bytes) => bytes.hash(&mut hasher),
        Err(_) => return 0,
    }
    hasher.finish()
}

impl Params {
    pub fn compile(doc: ParamsDoc, policy_revision: u64) -> Result<Params, ParamError> {
        // Hashed before they are parsed: a file replaced in between is seen as changed at the
        // next reload, never the other way round.
        let mut files: Vec<(PathBuf, u64)> = Vec::new();
        let mut note = |path: &PathBuf| {
            if !files.iter().any(|(p, _)| p == path) {
                files.push((path.clone(), file_hash(path)));
            }
        };
        if let Some(path) = &doc.docker_config {
            note(path);
        }
        for rule in &doc.rules {
            rule.key_files.iter().for_each(&mut note);
            if let Some(keyless) = &rule.keyless {
                note(&keyless.trusted_root);
            }
            if let Some(notation) = &rule.notation {
                notation.trust_store.iter().for_each(&mut note);
                notation.signing_authority_store.iter().for_each(&mut note);
            }
        }
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
                .map_err(|e| ParamError::new("spec.params.dockerConfig", e.to_string()))?,
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
            let images = selector::image_globs(&format!("{field}.images"), Some(&rule.images))
                .map_err(|e| {
                    ParamError::new(e.field, format!("glob {:?}: {}", e.pattern, e.reason))
                })?;
            let has_keys = !rule.keys.is_empty() || !rule.key_files.is_empty();
            let mut id = std::collections::hash_map::DefaultHasher::new();
            policy_revision.hash(&mut id);
            index.hash(&mut id);
            let models = usize::from(has_keys)
                + usize::from(rule.keyless.is_some())
                + usize::from(rule.notation.is_some());
            if models > 1 {
                return Err(ParamError::new(
                    field,
                    "give one trust model per rule: keys/keyFiles, keyless or notation, not several (write two rules to require both)",
                ));
            }
            if let Some(doc) = rule.notation {
                let trust = compile_notation(&format!("{field}.notation"), doc)?;
                "notation".hash(&mut id);
                trust.fingerprint.hash(&mut id);
                for identity in &trust.identities {
                    format!("{identity:?}").hash(&mut id);
                }
                rules.push(Arc::new(Rule {
                    index,
                    images,
                    requirement: Arc::new(Requirement {
                        trust: Trust::Notation(trust),
                        settings: Arc::clone(&settings),
                        cache_id: id.finish(),
                    }),
                }));
                continue;
            }
            let trust = match (has_keys, rule.keyless) {
                // Keys together with keyless were refused above.
                (_, Some(doc)) => {
                    let keyless = compile_keyless(&format!("{field}.keyless"), doc)?;
                    "keyless".hash(&mut id);
                    keyless.trusted_root.fingerprint.hash(&mut id);
                    for identity in &keyless.identities {
                        identity.issuer.describe().hash(&mut id);
                        identity.subject.describe().hash(&mut id);
                    }
                    Trust::Keyless(keyless)
                }
                (_, None) => {
                    let mut keys = Vec::new();
                    for (i, pem) in rule.keys.iter().enumerate() {
                        let origin = format!("keys[{i}]");
                        keys.push(PublicKey::from_pem(pem, origin).map_err(|e| {
                            ParamError::new(format!("{field}.keys[{i}]"), e.to_string())
                        })?);
                    }
                    for (i, path) in rule.key_files.iter().enumerate() {
                        keys.push(PublicKey::from_file(path).map_err(|e| {
                            ParamError::new(format!("{field}.keyFiles[{i}]"), e.to_string())
                        })?);
                    }
                    if keys.is_empty() {
                        return Err(ParamError::new(
                            field,
                            "needs a trust: keys (PEM) or keyFiles, or keyless (trustedRoot and identities)",
                        ));
                    }
                    for key in &keys {
                        key.fingerprint.hash(&mut id);
                    }
                    Trust::Keys(keys)
                }
            };
            rules.push(Arc::new(Rule {
                index,
                images,
                requirement: Arc::new(Requirement {
                    trust,
                    settings: Arc::clone(&settings),
                    cache_id: id.finish(),
                }),
            }));
        }
        // Pinning closes the race between admission and the kubelet's pull (a tag re-pushed in
        // between); requiring a digest makes /validate hold the line when /mutate did not run.
        let mutate_digest = doc.mutate_digest.unwrap_or(true);
        Ok(Params {
            files,
            rules,
            mutate_digest,
            require_digest: doc.require_digest.unwrap_or(mutate_digest),
            unmatched_images: doc.unmatched_images,
        })
    }
}

impl Rule {
    /// Whether this rule judges `reference` (canonical).
    pub fn matches(&self, reference: &str) -> bool {
        self.images.admits(reference)
    }
}

/// How to fix a rejection, by the trust the rule places.
fn fix_sign(trust: &Trust) -> &'static str {
    match trust {
        Trust::Keys(_) => {
            "sign the image's digest with a trusted key (cosign sign --key ...), or use an image signed by one"
        }
        Trust::Keyless(_) => {
            "sign the image's digest keylessly as a trusted identity (cosign sign in the release job), or use an image signed so"
        }
        Trust::Notation(_) => {
            "sign the image's digest with a certificate of the trust store (notation sign), or use an image signed so"
        }
    }
}

/// Reports every in-scope image a rule rejects or could not verify, every text that is not an
/// image reference, a judged tag left unpinned under `requireDigest`, and with
/// `unmatchedImages: deny` every image no rule judges.
pub fn evaluate<'v>(
    params: &Params,
    pod: &'v PodSpec<'_>,
    images: &dyn ImageVerdicts,
    sink: &mut Sink<'_, '_, 'v>,
) {
    let selector = sink.selector();
    for (at, subject) in subjects(pod, selector, images) {
        let (reference, running) = match subject {
            Subject::Invalid(why) => {
                sink.report(Finding::for_container(
                    &at,
                    "image",
                    format!(
                        "{:?} is not a valid image reference ({why}): no registry can be asked whether it is signed",
                        at.container.image()
                    ),
                    "write the image as registry/repository:tag or registry/repository@sha256:<digest>",
                ));
                continue;
            }
            Subject::Reference { reference, running } => (reference, running),
        };
        let judged = running.as_ref().unwrap_or(&reference);
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
            let Some(verdict) = images.verdict(&rule.requirement, judged.as_str()) else {
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

/// A container's image as a `signed-images` policy sees it.
enum Subject<'s> {
    /// Not an image reference.
    Invalid(image_ref::RefError),
    Reference {
        /// Canonical; borrowed from the pod when the pod spells it canonically.
        reference: ImageRef<'s>,
        /// The reference pinned to the digest the container runs, when its pod reports one:
        /// what is verified then.
        running: Option<ImageRef<'static>>,
    },
}

/// The containers of `pod` whose image the policy judges (`selector`'s image globs), with
/// their image as it judges them. Empty images are left out: the API server refuses a pod
/// without one, and a template may leave it to be filled in.
fn subjects<'s, 'v, 'i>(
    pod: &'s PodSpec<'v>,
    selector: &'i Selector,
    images: &'i dyn ImageVerdicts,
) -> impl Iterator<Item = (crate::pod::ContainerRef<'s, 'v>, Subject<'s>)> {
    pod.all_containers().filter_map(move |at| {
        let image = at.container.image();
        if image.is_empty() {
            return None;
        }
        let parsed = image_ref::parse(image);
        if !selector.judges_reference(parsed.as_ref().ok()) {
            return None;
        }
        let subject = match parsed {
            Err(why) => Subject::Invalid(why),
            Ok(reference) => {
                let running = images
                    .running_digest(&at.container.name)
                    .and_then(|digest| {
                        image_ref::parse(&reference.pinned(digest))
                            .ok()
                            .map(ImageRef::into_owned)
                    });
                Subject::Reference { reference, running }
            }
        };
        Some((at, subject))
    })
}

/// Calls `each` with every (requirement, canonical reference) whose verdict [`evaluate`] reads
/// for `pod`: what must be verified before the policy can judge it.
pub fn wanted<'p>(
    params: &'p Params,
    selector: &Selector,
    pod: &PodSpec<'_>,
    images: &dyn ImageVerdicts,
    each: &mut dyn FnMut(&'p Arc<Requirement>, &str),
) {
    for (_, subject) in subjects(pod, selector, images) {
        let Subject::Reference { reference, running } = subject else {
            continue;
        };
        let judged = running.as_ref().unwrap_or(&reference);
        for rule in params
            .rules
            .iter()
            .filter(|r| r.matches(reference.as_str()))
        {
            each(&rule.requirement, judged.as_str());
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
                fix_sign(&rule.requirement.trust),
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
            match rule.requirement.settings.on_registry_error {
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
            match images
                .verdict(&rule.requirement, reference.as_str())
                .as_deref()
            {
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
mod tests;
