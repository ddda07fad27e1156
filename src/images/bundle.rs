//! Sigstore bundles (`application/vnd.dev.sigstore.bundle.v0.3+json`, and v0.1/v0.2), as
//! cosign v3 attaches them to an image as OCI referrers: parsing, what a bundle signs, and
//! the judgement of bundles against a rule's keys. Keyless trust (certificates, logs) is
//! `keyless.rs`'s, over the same parsed bundle. Pure: no network.
//!
//! A bundle signs one of two things:
//! - a DSSE envelope (what `cosign sign` v3 writes): an in-toto statement whose `subject`
//!   names the image digest and whose `predicateType` is cosign's signature predicate, signed
//!   over DSSE's pre-authentication encoding;
//! - a message signature: a signature over the artifact's bytes (here the image manifest,
//!   whose SHA-256 is the image digest), with the artifact's digest beside it.

use base64::Engine as _;
use serde::{Deserialize, Deserializer};

use super::keys::PublicKey;
use super::verdict::Rejection;

/// `predicateType` of the in-toto statement `cosign sign` (v3) signs for an image.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
const IN_TOTO_STATEMENT_TYPES: [&str; 2] = [
    "https://in-toto.io/Statement/v1",
    "https://in-toto.io/Statement/v0.1",
];

/// Why a bundle cannot be read, or does not sign what it must.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("not a Sigstore bundle: {0}")]
    NotABundle(String),
    #[error("unsupported bundle media type {0:?}")]
    MediaType(String),
    #[error("the bundle holds neither a message signature nor a DSSE envelope")]
    NoContent,
    #[error("the bundle's {field} is not base64")]
    Base64 { field: &'static str },
    #[error("the DSSE payload type is {0:?}, not an in-toto statement")]
    PayloadType(String),
    #[error("the DSSE payload is not an in-toto statement: {0}")]
    Statement(String),
    #[error(
        "the signed statement is an attestation of type {0:?}, not an image signature ({COSIGN_SIGN_PREDICATE})"
    )]
    Predicate(String),
    #[error("the signed statement names other digests ({0}), not this image")]
    SubjectMismatch(String),
    #[error("the message signature is for digest {0}, not this image")]
    MessageDigestMismatch(String),
    #[error("the message digest uses {0}; only SHA2_256 names an image digest")]
    MessageDigestAlgorithm(String),
    #[error("the registry did not serve the image manifest the message signature signs")]
    NoArtifact,
}

fn b64(field: &'static str, text: &str) -> Result<Vec<u8>, BundleError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| BundleError::Base64 { field })
}

/// protobuf's JSON mapping writes 64-bit integers as strings; some writers use numbers.
pub fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        N(i64),
        S(String),
    }
    match Int::deserialize(d)? {
        Int::N(n) => Ok(n),
        Int::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

fn opt_int64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    int64(d).map(Some)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub media_type: String,
    pub verification_material: VerificationMaterial,
    #[serde(default)]
    pub message_signature: Option<MessageSignature>,
    #[serde(default)]
    pub dsse_envelope: Option<DsseEnvelope>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    #[serde(default)]
    pub certificate: Option<RawBytes>,
    #[serde(default)]
    pub x509_certificate_chain: Option<CertificateChain>,
    #[serde(default)]
    pub public_key: Option<serde_json::Value>,
    #[serde(default)]
    pub tlog_entries: Vec<TlogEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawBytes {
    pub raw_bytes: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CertificateChain {
    #[serde(default)]
    pub certificates: Vec<RawBytes>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageSignature {
    #[serde(default)]
    pub message_digest: Option<MessageDigest>,
    pub signature: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MessageDigest {
    pub algorithm: String,
    pub digest: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DsseEnvelope {
    pub payload: String,
    pub payload_type: String,
    #[serde(default)]
    pub signatures: Vec<DsseSignature>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DsseSignature {
    pub sig: String,
}

/// A transparency log entry as a bundle carries it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlogEntry {
    #[serde(deserialize_with = "int64")]
    pub log_index: i64,
    pub log_id: LogId,
    pub kind_version: KindVersion,
    #[serde(default, deserialize_with = "opt_int64")]
    pub integrated_time: Option<i64>,
    #[serde(default)]
    pub inclusion_promise: Option<InclusionPromise>,
    #[serde(default)]
    pub inclusion_proof: Option<InclusionProof>,
    pub canonicalized_body: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogId {
    pub key_id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KindVersion {
    pub kind: String,
    pub version: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InclusionPromise {
    pub signed_entry_timestamp: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InclusionProof {
    #[serde(deserialize_with = "int64")]
    pub log_index: i64,
    pub root_hash: String,
    #[serde(deserialize_with = "int64")]
    pub tree_size: i64,
    #[serde(default)]
    pub hashes: Vec<String>,
    #[serde(default)]
    pub checkpoint: Option<Checkpoint>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Checkpoint {
    pub envelope: String,
}

/// What a bundle signs, decoded.
#[derive(Debug, Clone)]
pub enum Signed {
    Message {
        /// The SHA-256 the bundle says it signed, when it says.
        digest: Option<Vec<u8>>,
        signature: Vec<u8>,
    },
    Dsse {
        /// DSSE's pre-authentication encoding of the payload: the bytes signed.
        pae: Vec<u8>,
        payload: Vec<u8>,
        payload_type: String,
        signatures: Vec<Vec<u8>>,
    },
}

/// The parts of an in-toto statement this reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(rename = "_type")]
    statement_type: String,
    #[serde(default)]
    subject: Vec<Subject>,
    #[serde(default)]
    predicate_type: String,
}

#[derive(Debug, Deserialize)]
struct Subject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// DSSE v1's pre-authentication encoding: `DSSEv1 <len(type)> <type> <len(body)> <body>`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(
        format!(
            "DSSEv1 {} {} {} ",
            payload_type.len(),
            payload_type,
            payload.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(payload);
    out
}

/// Reads a bundle (JSON), v0.1 to v0.3.
pub fn parse(bytes: &[u8]) -> Result<Bundle, BundleError> {
    let bundle: Bundle =
        serde_json::from_slice(bytes).map_err(|e| BundleError::NotABundle(e.to_string()))?;
    let known = [
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        "application/vnd.dev.sigstore.bundle.v0.3+json",
    ];
    if !known.contains(&bundle.media_type.as_str()) {
        return Err(BundleError::MediaType(bundle.media_type));
    }
    Ok(bundle)
}

impl Bundle {
    /// What the bundle signs.
    pub fn signed(&self) -> Result<Signed, BundleError> {
        match (&self.message_signature, &self.dsse_envelope) {
            (Some(message), None) => {
                let digest = match &message.message_digest {
                    Some(d) if d.algorithm == "SHA2_256" => {
                        Some(b64("messageSignature.messageDigest.digest", &d.digest)?)
                    }
                    Some(d) => {
                        return Err(BundleError::MessageDigestAlgorithm(d.algorithm.clone()));
                    }
                    None => None,
                };
                Ok(Signed::Message {
                    digest,
                    signature: b64("messageSignature.signature", &message.signature)?,
                })
            }
            (None, Some(envelope)) => {
                let payload = b64("dsseEnvelope.payload", &envelope.payload)?;
                let signatures = envelope
                    .signatures
                    .iter()
                    .map(|s| b64("dsseEnvelope.signatures[].sig", &s.sig))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Signed::Dsse {
                    pae: pae(&envelope.payload_type, &payload),
                    payload,
                    payload_type: envelope.payload_type.clone(),
                    signatures,
                })
            }
            _ => Err(BundleError::NoContent),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Signed {
    /// Whether a message signature needs the signed artifact's bytes (the image manifest).
    pub fn needs_artifact(&self) -> bool {
        matches!(self, Signed::Message { .. })
    }

    /// Checks that what is signed names the image `digest` (`sha256:<hex>`): the statement's
    /// subject and predicate, or the message digest.
    pub fn names(&self, digest: &str) -> Result<(), BundleError> {
        let hex_digest = digest.strip_prefix("sha256:").unwrap_or(digest);
        match self {
            Signed::Message {
                digest: Some(d), ..
            } => {
                if hex(d) == hex_digest {
                    Ok(())
                } else {
                    Err(BundleError::MessageDigestMismatch(format!(
                        "sha256:{}",
                        hex(d)
                    )))
                }
            }
            // Without a stated digest the signature itself binds the bytes: checked when it
            // is verified over the manifest the registry serves for this digest.
            Signed::Message { digest: None, .. } => Ok(()),
            Signed::Dsse {
                payload,
                payload_type,
                ..
            } => {
                if payload_type != IN_TOTO_PAYLOAD_TYPE {
                    return Err(BundleError::PayloadType(payload_type.clone()));
                }
                let statement: Statement = serde_json::from_slice(payload)
                    .map_err(|e| BundleError::Statement(e.to_string()))?;
                if !IN_TOTO_STATEMENT_TYPES.contains(&statement.statement_type.as_str()) {
                    return Err(BundleError::Statement(format!(
                        "_type is {:?}",
                        statement.statement_type
                    )));
                }
                if statement.predicate_type != COSIGN_SIGN_PREDICATE {
                    return Err(BundleError::Predicate(statement.predicate_type));
                }
                let named: Vec<&str> = statement
                    .subject
                    .iter()
                    .filter_map(|s| s.digest.get("sha256").map(String::as_str))
                    .collect();
                if named.iter().any(|n| n.eq_ignore_ascii_case(hex_digest)) {
                    Ok(())
                } else if named.is_empty() {
                    Err(BundleError::Statement(
                        "its subject names no sha256 digest".into(),
                    ))
                } else {
                    Err(BundleError::SubjectMismatch(
                        named
                            .iter()
                            .map(|n| format!("sha256:{n}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ))
                }
            }
        }
    }

    /// The signature bytes to check with a key, and the message they sign (`artifact` is the
    /// image manifest, for a message signature).
    pub fn signatures<'a>(&'a self, artifact: Option<&'a [u8]>) -> Vec<(&'a [u8], &'a [u8])> {
        match self {
            Signed::Message { signature, .. } => match artifact {
                Some(artifact) => vec![(artifact, signature.as_slice())],
                None => Vec::new(),
            },
            Signed::Dsse {
                pae, signatures, ..
            } => signatures
                .iter()
                .map(|s| (pae.as_slice(), s.as_slice()))
                .collect(),
        }
    }

    /// Whether `key` made one of the signatures.
    pub fn verified_by(&self, key: &PublicKey, artifact: Option<&[u8]>) -> bool {
        self.signatures(artifact)
            .iter()
            .any(|(message, signature)| key.verifies(message, signature))
    }
}

/// One bundle fetched for an image: the referrer it came from and its bytes.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub referrer: String,
    pub bytes: Vec<u8>,
}

/// Judges bundles against `keys`: the first whose signature a key made and whose content
/// names `digest` verifies the image. `artifact` is the image manifest when one of them is a
/// message signature. `Ok(fingerprint)` or the most telling rejection.
pub fn judge_keys(
    bundles: &[Fetched],
    keys: &[PublicKey],
    digest: &str,
    artifact: Option<&[u8]>,
) -> Result<String, Rejection> {
    let mut telling: Option<Rejection> = None;
    for fetched in bundles {
        let signed = match parse(&fetched.bytes).and_then(|b| b.signed()) {
            Ok(s) => s,
            Err(e) => {
                telling.get_or_insert(Rejection::Invalid {
                    format: "Sigstore bundle",
                    reason: format!("{} ({})", e, fetched.referrer),
                });
                continue;
            }
        };
        if signed.needs_artifact() && artifact.is_none() {
            telling.get_or_insert(Rejection::Invalid {
                format: "Sigstore bundle",
                reason: BundleError::NoArtifact.to_string(),
            });
            continue;
        }
        // A message signature signs the manifest bytes: one for another digest cannot verify
        // over this image's, so its stated digest is what tells the operator why.
        if let Signed::Message {
            digest: Some(_), ..
        } = &signed
            && let Err(e) = signed.names(digest)
        {
            telling = Some(Rejection::Invalid {
                format: "Sigstore bundle",
                reason: e.to_string(),
            });
            continue;
        }
        let Some(key) = keys.iter().find(|k| signed.verified_by(k, artifact)) else {
            continue;
        };
        match signed.names(digest) {
            Ok(()) => return Ok(key.fingerprint.clone()),
            Err(e) => {
                telling = Some(match e {
                    BundleError::SubjectMismatch(signed)
                    | BundleError::MessageDigestMismatch(signed) => {
                        Rejection::DigestMismatch { signed }
                    }
                    other => Rejection::Invalid {
                        format: "Sigstore bundle",
                        reason: other.to_string(),
                    },
                });
            }
        }
    }
    Err(telling.unwrap_or(Rejection::NoTrustedSignature {
        signatures: bundles.len(),
    }))
}

#[cfg(test)]
mod tests;
