//! cosign's signature format (key-based, "attached" to the image in its repository) and the
//! judgement of fetched signatures against a rule's keys. Pure: no network.
//!
//! For an image digest `sha256:<hex>` cosign pushes an OCI manifest tagged `sha256-<hex>.sig`
//! whose layers are simple-signing payloads (`application/vnd.dev.cosign.simplesigning.v1+json`),
//! each with its base64 signature in the annotation `dev.cosignproject.cosign/signature`. The
//! payload names the signed digest (`critical.image.docker-manifest-digest`) and repository
//! (`critical.identity.docker-reference`).

use base64::Engine as _;
use serde::Deserialize;

use super::keys::PublicKey;
use super::verdict::{ImageVerdict, Rejection};

pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// More layers than this is not a signature artifact anyone made by hand or by cosign.
pub const MAX_SIGNATURES: usize = 64;
/// A simple-signing payload is a few hundred bytes; optional annotations make it larger.
pub const MAX_PAYLOAD_BYTES: u64 = 256 * 1024;

/// What a keys rule looks for, in messages.
pub const COSIGN_SIGNATURE: &str = "cosign signature";

/// The tag cosign stores the signatures of `digest` under.
pub fn signature_tag(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    Some(format!("sha256-{hex}.sig"))
}

/// The parts of a signature manifest this reads.
#[derive(Debug, Deserialize)]
pub struct SignatureManifest {
    #[serde(default)]
    pub layers: Vec<Layer>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

impl SignatureManifest {
    /// The layers that carry signatures, or why the manifest is not cosign's.
    pub fn signature_layers(&self) -> Result<Vec<&Layer>, Rejection> {
        let layers: Vec<&Layer> = self
            .layers
            .iter()
            .filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
            .collect();
        if layers.is_empty() {
            return Err(Rejection::Malformed(format!(
                "the signature manifest has no {SIMPLE_SIGNING_MEDIA_TYPE} layer"
            )));
        }
        if layers.len() > MAX_SIGNATURES {
            return Err(Rejection::Malformed(format!(
                "the signature manifest has {} layers (at most {MAX_SIGNATURES} are read)",
                layers.len()
            )));
        }
        if let Some(big) = layers.iter().find(|l| l.size > MAX_PAYLOAD_BYTES) {
            return Err(Rejection::Malformed(format!(
                "a signature payload is {} bytes (at most {MAX_PAYLOAD_BYTES})",
                big.size
            )));
        }
        Ok(layers)
    }
}

/// One signature as fetched: the payload blob and the annotation's signature.
#[derive(Debug, Clone)]
pub struct Signature {
    pub payload: Vec<u8>,
    /// The base64 annotation, `None` when the layer has none.
    pub signature_b64: Option<String>,
    /// A keyless signature's Fulcio certificate (PEM, annotation `dev.sigstore.cosign/certificate`).
    pub certificate: Option<String>,
    /// A keyless signature's Rekor bundle (JSON, annotation `dev.sigstore.cosign/bundle`).
    pub rekor_bundle: Option<String>,
}

pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const REKOR_BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";

/// Checks that a simple-signing payload names `digest` and `repository`.
pub fn payload_names(payload: &[u8], digest: &str, repository: &str) -> Result<(), Rejection> {
    let payload: Payload = serde_json::from_slice(payload).map_err(|e| {
        Rejection::Malformed(format!("the payload is not a simple-signing document: {e}"))
    })?;
    let critical = payload.critical;
    if critical.image.docker_manifest_digest != digest {
        return Err(Rejection::DigestMismatch {
            signed: critical.image.docker_manifest_digest,
        });
    }
    if !same_repository(&critical.identity.docker_reference, repository) {
        return Err(Rejection::ReferenceMismatch {
            signed: critical.identity.docker_reference,
            expected: repository.to_owned(),
        });
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Debug, Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
}

#[derive(Debug, Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Debug, Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// Whether the payload's `docker-reference` names `repository` (canonical `domain/path`).
/// cosign writes go-containerregistry's spelling (`index.docker.io/library/nginx`), so it is
/// compared in canonical form; a reference that does not parse names nothing.
fn same_repository(signed: &str, repository: &str) -> bool {
    crate::image_ref::parse(signed).is_ok_and(|r| r.name() == repository)
}

/// Judges the signatures of `digest` in `repository` (canonical `domain/path`) against `keys`. Each
/// signature is decoded once and tried with every key; the first valid one for this digest
/// and repository wins.
pub fn judge(
    signatures: &[Signature],
    keys: &[PublicKey],
    digest: &str,
    repository: &str,
) -> ImageVerdict {
    let rejected = |rejection| ImageVerdict::Rejected {
        digest: Some(digest.to_owned()),
        rejection,
    };
    if signatures.is_empty() {
        return rejected(Rejection::NoSignature {
            looked_for: COSIGN_SIGNATURE,
        });
    }
    // The most telling failure so far: a trusted signature for the wrong subject says more
    // than signatures nobody trusted.
    let mut mismatch: Option<Rejection> = None;
    let mut unreadable = 0;
    for signature in signatures {
        let Some(decoded) = signature.signature_b64.as_deref().and_then(|s| {
            // cosign has written the base64 wrapped over lines.
            let compact: String = s.split_ascii_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .ok()
        }) else {
            unreadable += 1;
            continue;
        };
        let Some(key) = keys
            .iter()
            .find(|k| k.verifies(&signature.payload, &decoded))
        else {
            continue;
        };
        let payload: Payload = match serde_json::from_slice(&signature.payload) {
            Ok(p) => p,
            Err(e) => {
                mismatch.get_or_insert(Rejection::Malformed(format!(
                    "a payload signed by a trusted key is not a simple-signing document: {e}"
                )));
                continue;
            }
        };
        let critical = payload.critical;
        if critical.image.docker_manifest_digest != digest {
            mismatch = Some(Rejection::DigestMismatch {
                signed: critical.image.docker_manifest_digest,
            });
            continue;
        }
        if !same_repository(&critical.identity.docker_reference, repository) {
            mismatch = Some(Rejection::ReferenceMismatch {
                signed: critical.identity.docker_reference,
                expected: repository.to_owned(),
            });
            continue;
        }
        return ImageVerdict::Verified {
            digest: digest.to_owned(),
            key: key.fingerprint.clone(),
        };
    }
    if let Some(mismatch) = mismatch {
        return rejected(mismatch);
    }
    if unreadable == signatures.len() {
        return rejected(Rejection::Malformed(format!(
            "no layer carries a base64 {SIGNATURE_ANNOTATION} annotation"
        )));
    }
    rejected(Rejection::NoTrustedSignature {
        signatures: signatures.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // A genuine cosign artifact (cosign v3.0.4, `cosign sign --key`, classic attached format),
    // as published in the tobby-fetch project's format-compatibility test: it pins this
    // verifier to what cosign really writes, independently of the test harness's signer.
    const GENUINE_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEA9oFvTJJuu0cszKBsiuqfFYN3NLV
meleaASYW5l+nqDxoUg4f8177owlgVD89pZQ9jUxP8dbibmDJpvcjBo9RQ==
-----END PUBLIC KEY-----
";
    const GENUINE_DIGEST: &str =
        "sha256:f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268";
    const GENUINE_PAYLOAD: &str = r#"{"critical":{"identity":{"docker-reference":"localhost:15381/tobby/fixture"},"image":{"docker-manifest-digest":"sha256:f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268"},"type":"cosign container image signature"},"optional":null}"#;
    const GENUINE_SIGNATURE: &str = "MEUCIEB+pz4s+9yxG+Om/bukeAfwloKFEISUhxLvIYlP02P8AiEAz1oNkilC+cprxcrEHqN0vxM+zvP34ikHFzi8e7Sevls=";
    const GENUINE_MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":233,"digest":"sha256:2122b6ad0794d3fdae43a4b477cf1d95d4a38d3c5f10631e199676039b876e37"},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":245,"digest":"sha256:3a29d26a2fc848d25ccf9c2288194ca90599e70ef69087644f186e5e7331f28b","annotations":{"dev.cosignproject.cosign/signature":"MEUCIEB+pz4s+9yxG+Om/bukeAfwloKFEISUhxLvIYlP02P8AiEAz1oNkilC+cprxcrEHqN0vxM+zvP34ikHFzi8e7Sevls="}}]}"#;

    fn genuine() -> (Vec<PublicKey>, Vec<Signature>) {
        let key = PublicKey::from_pem(GENUINE_KEY, "cosign.pub".into()).unwrap();
        let manifest: SignatureManifest = serde_json::from_str(GENUINE_MANIFEST).unwrap();
        let layers = manifest.signature_layers().unwrap();
        assert_eq!(layers.len(), 1);
        let sig = Signature {
            payload: GENUINE_PAYLOAD.as_bytes().to_vec(),
            certificate: None,
            rekor_bundle: None,
            signature_b64: layers[0].annotations.get(SIGNATURE_ANNOTATION).cloned(),
        };
        assert_eq!(sig.signature_b64.as_deref(), Some(GENUINE_SIGNATURE));
        (vec![key], vec![sig])
    }

    #[test]
    fn verifies_a_genuine_cosign_signature() {
        let (keys, sigs) = genuine();
        assert_eq!(
            keys[0].fingerprint,
            "sha256:dc2bcfdb0402cd0845f59232655c3ab2a53d55849d4665579efe45c6cc753478"
        );
        let verdict = judge(
            &sigs,
            &keys,
            GENUINE_DIGEST,
            "localhost:15381/tobby/fixture",
        );
        assert!(
            matches!(verdict, ImageVerdict::Verified { .. }),
            "{verdict:?}"
        );
    }

    #[test]
    fn the_genuine_signature_is_bound_to_its_digest_repository_and_bytes() {
        let (keys, sigs) = genuine();
        let other_digest = format!("sha256:{}", "0".repeat(64));
        assert!(matches!(
            judge(&sigs, &keys, &other_digest, "localhost:15381/tobby/fixture"),
            ImageVerdict::Rejected { rejection: Rejection::DigestMismatch { ref signed }, .. } if signed == GENUINE_DIGEST
        ));
        assert!(matches!(
            judge(&sigs, &keys, GENUINE_DIGEST, "localhost:15381/other"),
            ImageVerdict::Rejected {
                rejection: Rejection::ReferenceMismatch { .. },
                ..
            }
        ));
        let mut tampered = sigs.clone();
        tampered[0].payload = GENUINE_PAYLOAD
            .replace("tobby/fixture", "tobby/fixturf")
            .into();
        assert_eq!(
            judge(
                &tampered,
                &keys,
                GENUINE_DIGEST,
                "localhost:15381/tobby/fixture"
            ),
            ImageVerdict::Rejected {
                digest: Some(GENUINE_DIGEST.into()),
                rejection: Rejection::NoTrustedSignature { signatures: 1 }
            }
        );
    }

    #[test]
    fn no_signatures_and_unreadable_annotations_are_named() {
        let (keys, mut sigs) = genuine();
        assert!(matches!(
            judge(&[], &keys, GENUINE_DIGEST, "r/x"),
            ImageVerdict::Rejected {
                rejection: Rejection::NoSignature { .. },
                ..
            }
        ));
        sigs[0].signature_b64 = Some("not base64!".into());
        assert!(matches!(
            judge(&sigs, &keys, GENUINE_DIGEST, "r/x"),
            ImageVerdict::Rejected {
                rejection: Rejection::Malformed(_),
                ..
            }
        ));
    }

    #[test]
    fn docker_hub_names_are_one_repository() {
        assert!(same_repository(
            "index.docker.io/library/nginx",
            "docker.io/library/nginx"
        ));
        assert!(same_repository(
            "index.docker.io/nginx",
            "docker.io/library/nginx"
        ));
        assert!(same_repository("nginx", "docker.io/library/nginx"));
        assert!(!same_repository(
            "docker.io/library/nginx",
            "quay.io/library/nginx"
        ));
        assert!(!same_repository(
            "Not A Reference",
            "docker.io/library/nginx"
        ));
    }

    #[test]
    fn signature_tags_follow_cosign() {
        assert_eq!(
            signature_tag("sha256:abc").as_deref(),
            Some("sha256-abc.sig")
        );
        assert_eq!(signature_tag("sha512:abc"), None);
    }
}
