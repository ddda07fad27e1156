//! The registry side of verification, over the OCI distribution API (`oci-client`): resolve a
//! tag to a digest, fetch a digest's cosign signatures. Every round trip is timed into the
//! registry latency histogram, and failures are classified so the verifier can tell "not
//! there" (a verdict) from "could not ask" (`onRegistryError`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::cosign::{self, Signature, SignatureManifest};
use super::credentials::Credential;
use super::referrers::{self, Artifact, ArtifactManifest, Referrer, Wanted};
use super::verdict::{Rejection, Settings};
use crate::image_ref::ImageRef;
use crate::metrics::{Metrics, RegistryOp};

/// The oci-client reference of a canonical reference: by digest when it has one (what a
/// runtime pulls then, tag or not), through the mirror `settings` name for its registry.
pub fn oci_reference(reference: &ImageRef<'_>, settings: &Settings) -> Reference {
    let registry = reference.domain().to_owned();
    let repository = reference.path().to_owned();
    let mut oci = match (reference.digest(), reference.tag()) {
        (Some(digest), _) => Reference::with_digest(registry, repository, digest.to_owned()),
        (None, tag) => {
            Reference::with_tag(registry, repository, tag.unwrap_or("latest").to_owned())
        }
    };
    if let Some((_, mirror)) = settings
        .mirrors
        .iter()
        .find(|(registry, _)| registry == reference.domain())
    {
        oci.set_mirror_registry(mirror.clone());
    }
    oci
}

/// The host a reference is fetched from: its mirror, or its own registry as canonical
/// references name it (credentials and backoff are per host).
pub fn host(reference: &Reference) -> &str {
    if reference.namespace().is_some() {
        reference.resolve_registry()
    } else {
        reference.registry()
    }
}

/// Why the registry could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    #[error("registry {registry} is unreachable: {detail}")]
    Unreachable { registry: String, detail: String },
    #[error("registry {registry} answered 429 Too Many Requests")]
    RateLimited { registry: String },
    #[error("registry {registry} refused access (give credentials with dockerConfig): {detail}")]
    Unauthorized { registry: String, detail: String },
    #[error("registry {registry}: {detail}")]
    Failed { registry: String, detail: String },
}

impl RegistryError {
    pub fn registry(&self) -> &str {
        match self {
            RegistryError::Unreachable { registry, .. }
            | RegistryError::RateLimited { registry }
            | RegistryError::Unauthorized { registry, .. }
            | RegistryError::Failed { registry, .. } => registry,
        }
    }
}

/// What a lookup found, when the registry answered.
pub enum Found<T> {
    Yes(T),
    /// The registry says there is no such manifest (or repository).
    NotFound,
}

/// A client for one set of access settings (plain-HTTP registries, credentials). It keeps
/// connections and bearer tokens between verifications.
pub struct RegistryClient {
    client: Client,
    credentials: Vec<Credential>,
    metrics: Arc<Metrics>,
}

/// oci-client builds its HTTP client with the process-wide rustls provider; portier only
/// ships ring's.
pub fn install_crypto_provider() {
    // An error means a provider is installed already, which is all this needs.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl RegistryClient {
    pub fn new(settings: &Settings, metrics: Arc<Metrics>) -> Result<RegistryClient, String> {
        install_crypto_provider();
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(settings.insecure_registries.clone()),
            connect_timeout: Some(settings.timeout),
            read_timeout: Some(settings.timeout),
            user_agent: concat!("portier/", env!("CARGO_PKG_VERSION")),
            // A tag's digest is the digest cosign signs, index or not: never resolve platforms.
            platform_resolver: None,
            ..ClientConfig::default()
        };
        let client =
            Client::try_from(config).map_err(|e| format!("cannot make a registry client: {e}"))?;
        Ok(RegistryClient {
            client,
            credentials: settings.credentials.clone(),
            metrics,
        })
    }

    fn auth(&self, reference: &Reference) -> RegistryAuth {
        let registry = host(reference);
        self.credentials
            .iter()
            .find(|c| c.host == registry)
            .map(|c| RegistryAuth::Basic(c.user.clone(), c.password.clone()))
            .unwrap_or(RegistryAuth::Anonymous)
    }

    async fn timed<T, F>(&self, op: RegistryOp, call: F) -> Result<T, OciDistributionError>
    where
        F: std::future::Future<Output = Result<T, OciDistributionError>>,
    {
        let started = Instant::now();
        let result = call.await;
        self.metrics
            .record_registry_request(op, started.elapsed().as_secs_f64());
        result
    }

    /// The blob of one manifest layer in `at`'s repository. `size` comes from the manifest and
    /// was bounded by its reader before it sizes the buffer; pull_blob checks the bytes against
    /// `digest`.
    async fn pull_layer(
        &self,
        at: &Reference,
        media_type: &str,
        digest: &str,
        size: u64,
    ) -> Result<Found<Vec<u8>>, RegistryError> {
        let mut blob = Vec::with_capacity(size as usize);
        let descriptor = oci_client::manifest::OciDescriptor {
            media_type: media_type.to_owned(),
            digest: digest.to_owned(),
            size: size as i64,
            ..Default::default()
        };
        let pulled = self
            .timed(
                RegistryOp::Blob,
                self.client.pull_blob(at, &descriptor, &mut blob),
            )
            .await;
        Ok(match found(at, pulled)? {
            Found::Yes(()) => Found::Yes(blob),
            Found::NotFound => Found::NotFound,
        })
    }

    /// The digest `reference`'s tag points at.
    pub async fn resolve(&self, reference: &Reference) -> Result<Found<String>, RegistryError> {
        let auth = self.auth(reference);
        let result = self
            .timed(
                RegistryOp::Resolve,
                self.client.fetch_manifest_digest(reference, &auth),
            )
            .await;
        found(reference, result)
    }

    /// The cosign signatures of `digest` in `repository`'s repository: empty when there are
    /// none, `Err(Ok(rejection))` when the artifact is not cosign's.
    pub async fn signatures(
        &self,
        repository: &Reference,
        digest: &str,
    ) -> Result<Result<Vec<Signature>, Rejection>, RegistryError> {
        let Some(tag) = cosign::signature_tag(digest) else {
            return Ok(Err(Rejection::Malformed(format!(
                "{digest} is not a sha256 digest, which cosign signatures are stored by"
            ))));
        };
        let signature_ref = sibling(repository, Ok(tag));
        let auth = self.auth(repository);
        let manifest = self
            .timed(
                RegistryOp::SignatureManifest,
                self.client.pull_manifest_raw(
                    &signature_ref,
                    &auth,
                    &[OCI_IMAGE_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE],
                ),
            )
            .await;
        let (body, _) = match found(&signature_ref, manifest)? {
            Found::Yes(manifest) => manifest,
            Found::NotFound => return Ok(Ok(Vec::new())),
        };
        let manifest: SignatureManifest = match serde_json::from_slice(&body) {
            Ok(m) => m,
            Err(e) => {
                return Ok(Err(Rejection::Malformed(format!(
                    "the signature manifest is not an OCI image manifest: {e}"
                ))));
            }
        };
        let layers = match manifest.signature_layers() {
            Ok(layers) => layers,
            Err(rejection) => return Ok(Err(rejection)),
        };
        let mut signatures = Vec::with_capacity(layers.len());
        for layer in layers {
            let pulled = self
                .pull_layer(&signature_ref, &layer.media_type, &layer.digest, layer.size)
                .await?;
            let payload = match pulled {
                Found::Yes(payload) => payload,
                Found::NotFound => {
                    return Ok(Err(Rejection::Malformed(format!(
                        "the signature payload {} is missing from the registry",
                        layer.digest
                    ))));
                }
            };
            if payload.len() as u64 > cosign::MAX_PAYLOAD_BYTES {
                return Ok(Err(Rejection::Malformed(format!(
                    "a signature payload is {} bytes (at most {})",
                    payload.len(),
                    cosign::MAX_PAYLOAD_BYTES
                ))));
            }
            signatures.push(Signature {
                payload,
                signature_b64: layer.annotations.get(cosign::SIGNATURE_ANNOTATION).cloned(),
                certificate: layer
                    .annotations
                    .get(cosign::CERTIFICATE_ANNOTATION)
                    .cloned(),
                rekor_bundle: layer
                    .annotations
                    .get(cosign::REKOR_BUNDLE_ANNOTATION)
                    .cloned(),
            });
        }
        Ok(Ok(signatures))
    }
}

/// `reference`'s repository at `tag_or_digest`, reached the way `reference` is (its mirror).
fn sibling(reference: &Reference, at: Result<String, String>) -> Reference {
    let registry = reference.registry().to_owned();
    let repository = reference.repository().to_owned();
    let mut sibling = match at {
        Ok(tag) => Reference::with_tag(registry, repository, tag),
        Err(digest) => Reference::with_digest(registry, repository, digest),
    };
    if reference.namespace().is_some() {
        sibling.set_mirror_registry(reference.resolve_registry().to_owned());
    }
    sibling
}

fn sha256_hex_of(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

impl RegistryClient {
    /// The referrers of `digest` that `wanted` reads: the referrers API, filtered by
    /// artifact type, or where the registry has no such API (it answers 404) the referrers
    /// tag schema. Empty when there are none.
    pub async fn referrers(
        &self,
        repository: &Reference,
        digest: &str,
        wanted: Wanted,
    ) -> Result<Vec<Referrer>, RegistryError> {
        let subject = sibling(repository, Err(digest.to_owned()));
        let auth = self.auth(repository);
        // The API call uses the token the client holds for the registry.
        self.client
            .store_auth_if_needed(subject.resolve_registry(), &auth)
            .await;
        let listed = self
            .timed(
                RegistryOp::Referrers,
                self.client
                    .pull_referrers(&subject, Some(wanted.artifact_type())),
            )
            .await;
        let index = match found(&subject, listed)? {
            Found::Yes(index) => index,
            Found::NotFound => return Ok(Vec::new()),
        };
        let selected = referrers::select(
            index
                .manifests
                .iter()
                .map(|e| (e.digest.as_str(), e.artifact_type.as_deref())),
            wanted,
        );
        if !selected.is_empty() {
            return Ok(selected);
        }
        // oci-client reads any registry error on the referrers tag (401, 429, 5xx) as "no
        // referrers". An answer of "none" is a verdict (unsigned, cached), an error is not
        // (onRegistryError): so "none" is confirmed by asking for the tag once more, with
        // errors sorted as everywhere else.
        self.confirm_no_referrers(repository, digest, wanted).await
    }

    /// The referrers tag schema's index for `digest`, asked directly: its entries `wanted`
    /// reads, none when the tag does not exist, or the registry's error.
    async fn confirm_no_referrers(
        &self,
        repository: &Reference,
        digest: &str,
        wanted: Wanted,
    ) -> Result<Vec<Referrer>, RegistryError> {
        let Some(tag) = referrers::fallback_tag(digest) else {
            return Ok(Vec::new());
        };
        let at = sibling(repository, Ok(tag));
        let auth = self.auth(repository);
        let pulled = self
            .timed(
                RegistryOp::Referrers,
                self.client
                    .pull_manifest_raw(&at, &auth, &[OCI_IMAGE_INDEX_MEDIA_TYPE]),
            )
            .await;
        let body = match found(&at, pulled)? {
            Found::Yes((body, _)) => body,
            Found::NotFound => return Ok(Vec::new()),
        };
        #[derive(serde::Deserialize)]
        struct Index {
            #[serde(default)]
            manifests: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Entry {
            digest: String,
            #[serde(default)]
            artifact_type: Option<String>,
        }
        let index: Index = serde_json::from_slice(&body).unwrap_or(Index {
            manifests: Vec::new(),
        });
        Ok(referrers::select(
            index
                .manifests
                .iter()
                .map(|e| (e.digest.as_str(), e.artifact_type.as_deref())),
            wanted,
        ))
    }

    /// A referrer's manifest and the layer holding `wanted`'s envelope: `Ok(Err(why))` when
    /// the artifact is not one (a verdict on the artifact, not a registry failure).
    pub async fn artifact(
        &self,
        repository: &Reference,
        referrer: &Referrer,
        wanted: Wanted,
    ) -> Result<Result<Artifact, String>, RegistryError> {
        let at = sibling(repository, Err(referrer.digest.clone()));
        let auth = self.auth(repository);
        let pulled = self
            .timed(
                RegistryOp::SignatureManifest,
                self.client
                    .pull_manifest_raw(&at, &auth, &[OCI_IMAGE_MEDIA_TYPE]),
            )
            .await;
        let body = match found(&at, pulled)? {
            Found::Yes((body, _)) => body,
            Found::NotFound => {
                return Ok(Err(format!(
                    "the referrer {} is listed but missing from the registry",
                    referrer.digest
                )));
            }
        };
        if referrer.digest.starts_with("sha256:") && sha256_hex_of(&body) != referrer.digest {
            return Ok(Err(format!(
                "the registry served another manifest for {}",
                referrer.digest
            )));
        }
        let manifest: ArtifactManifest = match serde_json::from_slice(&body) {
            Ok(m) => m,
            Err(e) => {
                return Ok(Err(format!(
                    "the {} manifest is not JSON: {e}",
                    wanted.name()
                )));
            }
        };
        let layer = match manifest.envelope_layer(wanted) {
            Ok(layer) => layer.clone(),
            Err(why) => return Ok(Err(why)),
        };
        let pulled = self
            .pull_layer(&at, &layer.media_type, &layer.digest, layer.size)
            .await?;
        let blob = match pulled {
            Found::Yes(blob) => blob,
            Found::NotFound => {
                return Ok(Err(format!(
                    "the {} blob {} is missing from the registry",
                    wanted.name(),
                    layer.digest
                )));
            }
        };
        if blob.len() as u64 > referrers::MAX_ARTIFACT_BYTES {
            return Ok(Err(format!(
                "the {} is {} bytes (at most {})",
                wanted.name(),
                blob.len(),
                referrers::MAX_ARTIFACT_BYTES
            )));
        }
        Ok(Ok(Artifact {
            digest: referrer.digest.clone(),
            manifest,
            media_type: layer.media_type,
            blob,
        }))
    }

    /// The bytes of the manifest `digest` names (what a message signature signs), checked
    /// against the digest. `None` when the registry does not have it.
    pub async fn manifest_bytes(
        &self,
        repository: &Reference,
        digest: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let at = sibling(repository, Err(digest.to_owned()));
        let auth = self.auth(repository);
        let pulled = self
            .timed(
                RegistryOp::ImageManifest,
                self.client.pull_manifest_raw(
                    &at,
                    &auth,
                    &[
                        OCI_IMAGE_MEDIA_TYPE,
                        OCI_IMAGE_INDEX_MEDIA_TYPE,
                        IMAGE_MANIFEST_MEDIA_TYPE,
                        IMAGE_MANIFEST_LIST_MEDIA_TYPE,
                    ],
                ),
            )
            .await;
        match found(&at, pulled)? {
            Found::Yes((body, _)) if sha256_hex_of(&body) == digest => Ok(Some(body.to_vec())),
            Found::Yes(_) | Found::NotFound => Ok(None),
        }
    }
}

/// Sorts an oci-client result into found, not found, or a registry error.
fn found<T>(
    reference: &Reference,
    result: Result<T, OciDistributionError>,
) -> Result<Found<T>, RegistryError> {
    let registry = host(reference).to_owned();
    let error = match result {
        Ok(value) => return Ok(Found::Yes(value)),
        Err(e) => e,
    };
    Err(match error {
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                return Ok(Found::NotFound);
            }
            if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Toomanyrequests))
            {
                RegistryError::RateLimited { registry }
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                RegistryError::Unauthorized {
                    registry,
                    detail: envelope_text(&envelope),
                }
            } else {
                RegistryError::Failed {
                    registry,
                    detail: envelope_text(&envelope),
                }
            }
        }
        OciDistributionError::ImageManifestNotFoundError(_) => return Ok(Found::NotFound),
        OciDistributionError::ServerError { code: 404, .. } => return Ok(Found::NotFound),
        OciDistributionError::ServerError { code: 429, .. } => {
            RegistryError::RateLimited { registry }
        }
        OciDistributionError::ServerError { code, message, .. } => RegistryError::Failed {
            registry,
            detail: format!("HTTP {code}: {}", first_line(&message)),
        },
        OciDistributionError::UnauthorizedError { .. } => RegistryError::Unauthorized {
            registry,
            detail: "401 Unauthorized".into(),
        },
        OciDistributionError::AuthenticationFailure(why) => RegistryError::Unauthorized {
            registry,
            detail: first_line(&why).to_owned(),
        },
        OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
            RegistryError::Unreachable {
                registry,
                detail: if e.is_timeout() {
                    "timed out".to_owned()
                } else {
                    "connection failed".to_owned()
                },
            }
        }
        other => RegistryError::Failed {
            registry,
            detail: first_line(&other.to_string()).to_owned(),
        },
    })
}

fn envelope_text(envelope: &oci_client::errors::OciEnvelope) -> String {
    envelope
        .errors
        .iter()
        .map(|e| format!("{:?}: {}", e.code, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("");
    match line.char_indices().nth(200) {
        Some((cut, _)) => &line[..cut],
        None => line,
    }
}

/// Backoff after a 429: doubles from one second up to a minute while the registry keeps
/// refusing, and resets when it answers again.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub until: Instant,
    pub step: Duration,
}

pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Backoff {
    pub fn after(previous: Option<Backoff>, now: Instant) -> Backoff {
        let step = previous
            .map(|b| (b.step * 2).min(MAX_BACKOFF))
            .unwrap_or(FIRST_BACKOFF);
        Backoff {
            until: now + step,
            step,
        }
    }
}

/// The registries that answered 429, by host, and until when each is left alone. Bounded: a
/// rule whose glob covers many hosts would otherwise let whoever may create pods grow it
/// with every host name that answers 429.
#[derive(Debug, Default)]
pub struct Backoffs(std::collections::HashMap<String, Backoff>);

/// How many registries may be backing off at once; past it, the entries whose wait ended
/// longest ago go first.
pub const MAX_BACKING_OFF: usize = 1024;

impl Backoffs {
    pub fn get(&self, registry: &str) -> Option<&Backoff> {
        self.0.get(registry)
    }

    /// `registry` answered 429 at `now`: its wait doubles.
    pub fn rate_limited(&mut self, registry: &str, now: Instant) {
        let next = Backoff::after(self.0.get(registry).copied(), now);
        if self.0.len() >= MAX_BACKING_OFF && !self.0.contains_key(registry) {
            // A wait that ended a whole maximum step ago no longer doubles anything useful.
            self.0.retain(|_, b| b.until + MAX_BACKOFF > now);
            while self.0.len() >= MAX_BACKING_OFF {
                let Some(soonest) = self
                    .0
                    .iter()
                    .min_by_key(|(_, b)| b.until)
                    .map(|(host, _)| host.clone())
                else {
                    break;
                };
                self.0.remove(&soonest);
            }
        }
        self.0.insert(registry.to_owned(), next);
    }

    /// `registry` answered: it starts afresh.
    pub fn answered(&mut self, registry: &str) {
        self.0.remove(registry);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backing_off_registries_are_bounded_and_the_longest_done_go_first() {
        let start = Instant::now();
        let mut backoffs = Backoffs::default();
        for i in 0..MAX_BACKING_OFF {
            backoffs.rate_limited(&format!("r{i}.example"), start);
        }
        backoffs.rate_limited("r0.example", start); // a known host doubles, nothing dropped
        assert_eq!(backoffs.len(), MAX_BACKING_OFF);
        assert_eq!(backoffs.get("r0.example").unwrap().step, FIRST_BACKOFF * 2);
        // Later, every wait but r0's is over: a new host makes room by dropping the ended ones.
        let later = start + MAX_BACKOFF * 2;
        backoffs.rate_limited("r0.example", later);
        backoffs.rate_limited("new.example", later);
        assert_eq!(backoffs.len(), 2);
        assert!(backoffs.get("r0.example").is_some() && backoffs.get("new.example").is_some());
        // Still full of live waits: the one ending soonest goes.
        let mut full = Backoffs::default();
        for i in 0..MAX_BACKING_OFF {
            full.rate_limited(
                &format!("r{i}.example"),
                start + Duration::from_millis(i as u64),
            );
        }
        full.rate_limited("one-more.example", start + Duration::from_secs(2));
        assert_eq!(full.len(), MAX_BACKING_OFF);
        assert!(full.get("r0.example").is_none() && full.get("one-more.example").is_some());
        full.answered("one-more.example");
        assert!(full.get("one-more.example").is_none());
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let now = Instant::now();
        let mut b = Backoff::after(None, now);
        assert_eq!(b.step, FIRST_BACKOFF);
        for _ in 0..10 {
            b = Backoff::after(Some(b), now);
        }
        assert_eq!(b.step, MAX_BACKOFF);
    }
}
