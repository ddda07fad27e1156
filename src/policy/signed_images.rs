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
                    PublicKey::from_pem(pem, origin).map_err(|e| {
                        ParamError::new(format!("{field}.keys[{i}]"), e.to_string())
                    })?,
                );
            }
            for (i, path) in rule.key_files.iter().enumerate() {
                keys.push(PublicKey::from_file(path).map_err(|e| {
                    ParamError::new(format!("{field}.keyFiles[{i}]"), e.to_string())
                })?);
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
                requirement: Arc::new(Requirement {
                    trust: Trust::Keys(keys),
                    settings: Arc::clone(&settings),
                    cache_id: id.finish(),
                }),
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
mod tests {
    use super::*;
    use crate::images::Rejection;

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
        fn verdict(&self, _: &Arc<Requirement>, reference: &str) -> Option<Arc<ImageVerdict>> {
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
