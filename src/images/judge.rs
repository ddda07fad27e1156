//! One verification's registry reads and verdict, per trust model: what each model reads
//! (each source once: the legacy `.sig` tag, the referrers of its kind through the API or the
//! tag schema, the image manifest when a signature names its bytes or descriptor), and which
//! of several failures a denial reports ([`telling`]). The format checks themselves are the
//! format files' (`cosign.rs`, `bundle.rs`, `keyless.rs`, `notation.rs`).

use super::keyless::Keyless;
use super::notation::NotationTrust;
use super::referrers::{Artifact, Wanted};
use super::registry::{RegistryClient, RegistryError};
use super::{
    ImageVerdict, Rejection, Requirement, Trust, Verifier, bundle, cosign, keyless, keys, notation,
};

/// The image a verification reads signatures of.
pub(super) struct Subject<'a> {
    pub client: &'a RegistryClient,
    /// The host asked (its mirror, or the registry), for backoff.
    pub registry: &'a str,
    pub reference: &'a oci_client::Reference,
    pub digest: &'a str,
    /// The canonical repository, which legacy payloads must name.
    pub repository: &'a str,
}

impl Subject<'_> {
    fn rejected(&self, rejection: Rejection) -> ImageVerdict {
        ImageVerdict::Rejected {
            digest: Some(self.digest.to_owned()),
            rejection,
        }
    }

    fn verified(&self, key: String) -> ImageVerdict {
        ImageVerdict::Verified {
            digest: self.digest.to_owned(),
            key,
        }
    }
}

fn unavailable(e: RegistryError) -> ImageVerdict {
    ImageVerdict::Unavailable {
        reason: e.to_string(),
    }
}

impl Verifier {
    /// Fetches what `rule` trusts for the image and judges it.
    pub(super) async fn judge(&self, rule: &Requirement, image: &Subject<'_>) -> ImageVerdict {
        let verdict = match &rule.trust {
            Trust::Keys(keys) => self.judge_keys(keys, image).await,
            Trust::Keyless(keyless) => self.judge_keyless(keyless, image).await,
            Trust::Notation(trust) => self.judge_notation(trust, image).await,
        };
        verdict.unwrap_or_else(unavailable)
    }

    /// Keys: the legacy tag first (a verified legacy signature decides), then bundles.
    async fn judge_keys(
        &self,
        keys: &[keys::PublicKey],
        image: &Subject<'_>,
    ) -> Result<ImageVerdict, RegistryError> {
        let legacy = image.client.signatures(image.reference, image.digest).await;
        self.note_registry_result(image.registry, &legacy);
        let legacy = match legacy? {
            Ok(signatures) if signatures.is_empty() => None,
            Ok(signatures) => Some(cosign::judge(
                &signatures,
                keys,
                image.digest,
                image.repository,
            )),
            Err(rejection) => Some(image.rejected(rejection)),
        };
        if let Some(verified @ ImageVerdict::Verified { .. }) = legacy {
            return Ok(verified);
        }
        let artifacts = self.artifacts(image, Wanted::Bundles).await?;
        if artifacts.is_empty() {
            return Ok(legacy.unwrap_or_else(|| {
                image.rejected(Rejection::NoSignature {
                    looked_for: cosign::COSIGN_SIGNATURE,
                })
            }));
        }
        let (bundles, broken) = bundle_bytes(artifacts);
        let artifact = self.artifact_if_needed(image, &bundles).await?;
        let from_bundles =
            match bundle::judge_keys(&bundles, keys, image.digest, artifact.as_deref()) {
                Ok(key) => return Ok(image.verified(key)),
                Err(rejection) => broken.map_or(rejection.clone(), |b| telling(rejection, b)),
            };
        let rejection = match legacy {
            Some(ImageVerdict::Rejected { rejection, .. }) => telling(rejection, from_bundles),
            _ => from_bundles,
        };
        Ok(image.rejected(rejection))
    }

    /// Keyless: cosign < 3 kept keyless signatures in the legacy tag (the certificate and the
    /// Rekor bundle as layer annotations), cosign v3 writes bundles.
    async fn judge_keyless(
        &self,
        keyless: &Keyless,
        image: &Subject<'_>,
    ) -> Result<ImageVerdict, RegistryError> {
        let legacy = image.client.signatures(image.reference, image.digest).await;
        self.note_registry_result(image.registry, &legacy);
        let legacy = match legacy? {
            Ok(signatures) => {
                let mut first = None;
                for signature in &signatures {
                    match keyless::verify_legacy(signature, keyless, image.digest, image.repository)
                    {
                        Ok(identity) => return Ok(image.verified(identity)),
                        Err(e) => {
                            first.get_or_insert(Rejection::Invalid {
                                format: "keyless cosign signature",
                                reason: e.to_string(),
                            });
                        }
                    }
                }
                first
            }
            Err(rejection) => Some(rejection),
        };
        let artifacts = self.artifacts(image, Wanted::Bundles).await?;
        if artifacts.is_empty() {
            return Ok(image.rejected(legacy.unwrap_or(Rejection::NoSignature {
                looked_for: "Sigstore bundle or keyless cosign signature",
            })));
        }
        let (bundles, broken) = bundle_bytes(artifacts);
        let artifact = self.artifact_if_needed(image, &bundles).await?;
        Ok(
            match keyless::judge(&bundles, keyless, image.digest, artifact.as_deref()) {
                Ok(identity) => image.verified(identity),
                Err(rejection) => {
                    let rejection = broken.map_or(rejection.clone(), |b| telling(rejection, b));
                    image.rejected(legacy.map_or(rejection.clone(), |l| telling(rejection, l)))
                }
            },
        )
    }

    /// Notation: referrers of its artifact type, checked against the manifest's descriptor.
    async fn judge_notation(
        &self,
        trust: &NotationTrust,
        image: &Subject<'_>,
    ) -> Result<ImageVerdict, RegistryError> {
        let artifacts = self.artifacts(image, Wanted::Notation).await?;
        let mut envelopes = Vec::with_capacity(artifacts.len());
        let mut broken = None;
        for artifact in artifacts {
            match artifact {
                Ok(a) => envelopes.push(notation::Envelope {
                    referrer: a.digest,
                    media_type: a.media_type,
                    bytes: a.blob,
                }),
                Err(why) => {
                    broken.get_or_insert(Rejection::Malformed(why));
                }
            }
        }
        if envelopes.is_empty() {
            return Ok(image.rejected(broken.unwrap_or(Rejection::NoSignature {
                looked_for: "Notation signature",
            })));
        }
        // A signature names the manifest's digest, media type and size: the registry's own
        // description is what it is checked against, as notation does.
        let manifest = image
            .client
            .manifest_bytes(image.reference, image.digest)
            .await;
        self.note_registry_result(image.registry, &manifest);
        let Some(manifest) = manifest? else {
            return Ok(image.rejected(Rejection::ImageNotFound));
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let manifest = notation::Manifest::of(image.digest, &manifest);
        Ok(match notation::judge(&envelopes, trust, manifest, now) {
            Ok(signer) => image.verified(signer),
            Err(rejection) => {
                image.rejected(broken.map_or(rejection.clone(), |b| telling(rejection, b)))
            }
        })
    }

    /// The artifacts of `wanted`'s kind that refer to the image: each either fetched or the
    /// reason it could not be read.
    async fn artifacts(
        &self,
        image: &Subject<'_>,
        wanted: Wanted,
    ) -> Result<Vec<Result<Artifact, String>>, RegistryError> {
        self.check_backoff(image.registry)
            .map_err(|detail| RegistryError::Failed {
                registry: image.registry.to_owned(),
                detail,
            })?;
        let listed = image
            .client
            .referrers(image.reference, image.digest, wanted)
            .await;
        self.note_registry_result(image.registry, &listed);
        let mut out = Vec::new();
        for referrer in listed? {
            let fetched = image
                .client
                .artifact(image.reference, &referrer, wanted)
                .await;
            self.note_registry_result(image.registry, &fetched);
            out.push(fetched?);
        }
        Ok(out)
    }

    /// The image manifest, when one of `bundles` is a message signature (which signs it).
    async fn artifact_if_needed(
        &self,
        image: &Subject<'_>,
        bundles: &[bundle::Fetched],
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let needed = bundles.iter().any(|b| {
            bundle::parse(&b.bytes)
                .and_then(|b| b.signed())
                .is_ok_and(|s| s.needs_artifact())
        });
        if !needed {
            return Ok(None);
        }
        let fetched = image
            .client
            .manifest_bytes(image.reference, image.digest)
            .await;
        self.note_registry_result(image.registry, &fetched);
        fetched
    }
}

/// The bundles among fetched artifacts, and the first reason one could not be read.
fn bundle_bytes(
    artifacts: Vec<Result<Artifact, String>>,
) -> (Vec<bundle::Fetched>, Option<Rejection>) {
    let mut bundles = Vec::with_capacity(artifacts.len());
    let mut broken = None;
    for artifact in artifacts {
        match artifact {
            Ok(a) => bundles.push(bundle::Fetched {
                referrer: a.digest,
                bytes: a.blob,
            }),
            Err(why) => {
                broken.get_or_insert(Rejection::Malformed(why));
            }
        }
    }
    (bundles, broken)
}

/// Of two rejections, the one that tells the operator more: a trusted signature for the
/// wrong subject, then a signature that fails a named check, then an unreadable artifact,
/// then "none verifies", then "none found".
pub fn telling(a: Rejection, b: Rejection) -> Rejection {
    fn rank(r: &Rejection) -> u8 {
        match r {
            Rejection::DigestMismatch { .. } | Rejection::ReferenceMismatch { .. } => 5,
            Rejection::Invalid { .. } => 4,
            Rejection::Malformed(_) => 3,
            Rejection::NoTrustedSignature { .. } => 2,
            Rejection::NoSignature { .. } => 1,
            Rejection::ImageNotFound => 0,
        }
    }
    if rank(&b) > rank(&a) { b } else { a }
}
