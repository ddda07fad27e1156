//! Keyless trust: Sigstore bundles signed with a short-lived Fulcio certificate bound to an
//! OIDC identity and logged in Rekor, verified as cosign and sigstore-go do, offline, from a
//! trusted root (`trusted_root.json`) alone:
//!
//! 1. the bundle signs the admitted digest (`bundle.rs`), and the certificate's key made the
//!    signature;
//! 2. a Rekor entry of the trusted root's logs records exactly this signature, certificate and
//!    content; its signed entry timestamp verifies (that is what authenticates the integrated
//!    time), and its inclusion proof leads to a checkpoint the log signed (`tlog.rs`);
//! 3. that integrated time lies inside the certificate's validity, and the certificate chains
//!    to a Fulcio CA of the trusted root valid then, with the code-signing usage;
//! 4. an SCT embedded in the certificate verifies with a CT log key of the trusted root;
//! 5. the certificate's SAN and OIDC issuer extension match one of the rule's identities.
//!
//! Each failure is its own [`KeylessError`]. Pure: no network.

mod sct;
mod trusted_root;

use std::path::PathBuf;

use base64::Engine as _;
use serde::Deserialize;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::bundle::{self, Bundle, BundleError, Fetched, Signed};
use super::keys::PublicKey;
use super::tlog::{self, Expected, TlogError};
use super::verdict::Rejection;
use sct::{der_utf8, verify_sct};
#[cfg(test)]
use sct::{parse_scts, tbs_without_scts};
use trusted_root::b64;
pub use trusted_root::{CertificateAuthority, TrustedRoot, TrustedRootError};

/// Fulcio's OIDC issuer extension (a DER UTF8String), and its deprecated raw-string form.
const OID_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
const OID_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
/// Fulcio's otherName SAN (a username identity).
const OID_OTHERNAME_SAN: &str = "1.3.6.1.4.1.57264.1.7";
/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), the OID's DER value.
pub const CODE_SIGNING_EKU: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// How a value of the certificate is matched.
#[derive(Debug)]
pub enum Matcher {
    Exact(String),
    /// Unanchored, as cosign's `--certificate-identity-regexp` and sigstore-go match.
    Regex(regex::Regex),
}

impl Matcher {
    fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(e) => e == value,
            Matcher::Regex(r) => r.is_match(value),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Matcher::Exact(e) => e.clone(),
            Matcher::Regex(r) => format!("/{}/", r.as_str()),
        }
    }
}

/// One identity a keyless rule trusts: an OIDC issuer and a subject (the certificate's SAN).
#[derive(Debug)]
pub struct Identity {
    pub issuer: Matcher,
    pub subject: Matcher,
}

/// A keyless rule's trust.
#[derive(Debug)]
pub struct Keyless {
    pub trusted_root: TrustedRoot,
    pub trusted_root_path: PathBuf,
    pub identities: Vec<Identity>,
}

/// Why a bundle does not verify under keyless trust.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeylessError {
    #[error("{0}")]
    Content(BundleError),
    #[error("the bundle carries no certificate (a key-signed bundle: trust it with keys)")]
    NoCertificate,
    #[error("its certificate does not parse: {0}")]
    Certificate(String),
    #[error("the signature does not verify with the certificate's key")]
    Signature,
    #[error("its transparency log entry does not verify: {0}")]
    Tlog(TlogError),
    #[error(
        "it was logged at {logged}, outside its certificate's validity ({not_before} to {not_after})"
    )]
    OutsideValidity {
        logged: String,
        not_before: String,
        not_after: String,
    },
    #[error(
        "its certificate does not chain to a Fulcio CA of the trusted root valid at signing time ({0})"
    )]
    Chain(String),
    #[error("its certificate carries no embedded SCT")]
    NoSct,
    #[error("its certificate's SCT does not verify with a CT log key of the trusted root: {0}")]
    Sct(String),
    #[error(
        "it was signed by {subject} (issuer {issuer}), which matches no identity of the rule ({expected})"
    )]
    Identity {
        subject: String,
        issuer: String,
        expected: String,
    },
}

/// `secs` (Unix seconds) as RFC 3339; as a number outside years 1970 to 9999, which a forged
/// time may be (formatting must not panic on it).
pub fn show_time(secs: i64) -> String {
    const YEAR_9999_END: i64 = 253_402_300_799;
    match u64::try_from(secs) {
        Ok(s) if secs <= YEAR_9999_END => humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(s),
        )
        .to_string(),
        _ => format!("{secs} (Unix time)"),
    }
}

/// The identity a Fulcio certificate names: SAN values and the OIDC issuer.
pub fn certificate_identity(cert: &X509Certificate<'_>) -> (Vec<String>, Option<String>) {
    let mut subjects = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::RFC822Name(email) => subjects.push((*email).to_owned()),
                GeneralName::URI(uri) => subjects.push((*uri).to_owned()),
                GeneralName::OtherName(oid, value) if oid.to_id_string() == OID_OTHERNAME_SAN => {
                    if let Some(text) = der_utf8(value) {
                        subjects.push(text);
                    }
                }
                _ => {}
            }
        }
    }
    let mut issuer = None;
    for ext in cert.extensions() {
        let oid = ext.oid.to_id_string();
        if oid == OID_ISSUER_V2 {
            issuer = der_utf8(ext.value);
            break;
        }
        if oid == OID_ISSUER_V1 && issuer.is_none() {
            issuer = std::str::from_utf8(ext.value).ok().map(str::to_owned);
        }
    }
    (subjects, issuer)
}

/// Verifies `leaf_der` chains to a CA of `root` valid at `time` with the code-signing
/// usage; returns the DER of the certificate that issued it.
fn verify_chain(leaf_der: &[u8], root: &TrustedRoot, time: i64) -> Result<Vec<u8>, KeylessError> {
    let mut why = String::from("no CA of the trusted root was valid then");
    for ca in root
        .cas
        .iter()
        .filter(|ca| ca.start <= time && ca.end.is_none_or(|end| time <= end))
    {
        match chain_to(leaf_der, &ca.chain, time, CODE_SIGNING_EKU) {
            Ok(issuer) => return Ok(issuer),
            Err(e) => why = e,
        }
    }
    Err(KeylessError::Chain(why))
}

/// Verifies `leaf_der` chains to the last certificate of `chain` (the others are
/// intermediates) at `time` with the extended key usage `eku`, with rustls-webpki; returns
/// the DER of the certificate that issued the leaf.
pub fn chain_to(
    leaf_der: &[u8],
    chain: &[Vec<u8>],
    time: i64,
    eku: &'static [u8],
) -> Result<Vec<u8>, String> {
    let Some((root, intermediates)) = chain.split_last() else {
        return Err("an empty chain".into());
    };
    chain_to_anchors(
        leaf_der,
        std::slice::from_ref(root),
        intermediates,
        time,
        eku,
    )
}

/// Verifies `leaf_der` chains through `intermediates` to one of `anchors` (trusted
/// certificates, DER) at `time` with the extended key usage `eku`; returns the DER of the
/// certificate that issued the leaf.
pub fn chain_to_anchors(
    leaf_der: &[u8],
    anchors: &[Vec<u8>],
    intermediates: &[Vec<u8>],
    time: i64,
    eku: &'static [u8],
) -> Result<Vec<u8>, String> {
    use rustls_pki_types::{CertificateDer, UnixTime};
    let anchor_ders: Vec<CertificateDer<'_>> = anchors
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let trust_anchors = anchor_ders
        .iter()
        .map(|der| webpki::anchor_from_trusted_cert(der).map_err(|e| format!("anchor: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let intermediates: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let leaf = CertificateDer::from(leaf_der);
    let leaf = webpki::EndEntityCert::try_from(&leaf).map_err(|e| e.to_string())?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(time).map_err(|_| "a time before 1970".to_string())?,
    ));
    let path = leaf
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &trust_anchors,
            &intermediates,
            time,
            webpki::KeyUsage::required(eku),
            None,
            None,
        )
        .map_err(|e| format!("{e:?}"))?;
    if let Some(issuer) = path.intermediate_certificates().next() {
        return Ok(issuer.der().to_vec());
    }
    // Issued by the anchor itself: find its certificate by subject.
    let anchor = path.anchor();
    anchors
        .iter()
        .zip(&anchor_ders)
        .find(|(_, der)| {
            webpki::anchor_from_trusted_cert(der).is_ok_and(|a| a.subject == anchor.subject)
        })
        .map(|(der, _)| der.clone())
        .ok_or_else(|| "the anchor is not among the trusted certificates".to_string())
}

/// The leaf certificate of a bundle (DER).
fn leaf_der(bundle: &Bundle) -> Result<Vec<u8>, KeylessError> {
    let material = &bundle.verification_material;
    let raw = match (&material.certificate, &material.x509_certificate_chain) {
        (Some(cert), _) => &cert.raw_bytes,
        (None, Some(chain)) => {
            &chain
                .certificates
                .first()
                .ok_or(KeylessError::NoCertificate)?
                .raw_bytes
        }
        (None, None) => return Err(KeylessError::NoCertificate),
    };
    b64(raw).ok_or_else(|| KeylessError::Certificate("not base64".into()))
}

fn digest_bytes(digest: &str) -> Option<[u8; 32]> {
    let hex = digest.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Verifies one bundle for `digest` under `keyless`; returns the identity that signed it.
/// `artifact` is the image manifest, for a message signature.
pub fn verify(
    bundle: &Bundle,
    keyless: &Keyless,
    digest: &str,
    artifact: Option<&[u8]>,
) -> Result<String, KeylessError> {
    let signed = bundle.signed().map_err(KeylessError::Content)?;
    signed.names(digest).map_err(KeylessError::Content)?;
    verify_signed(bundle, &signed, keyless, digest, artifact)
}

/// [`verify`] after the content check: the signature, the log entry, the certificate's
/// chain, SCT and identity. Apart so that it can be pinned to genuine bundles whose content
/// is not an image signature (attestations logged as `dsse` entries).
pub(crate) fn verify_signed(
    bundle: &Bundle,
    signed: &Signed,
    keyless: &Keyless,
    digest: &str,
    artifact: Option<&[u8]>,
) -> Result<String, KeylessError> {
    if signed.needs_artifact() && artifact.is_none() {
        return Err(KeylessError::Content(BundleError::NoArtifact));
    }
    let leaf_der = leaf_der(bundle)?;
    let (_, leaf) = X509Certificate::from_der(&leaf_der)
        .map_err(|e| KeylessError::Certificate(e.to_string()))?;
    let key = PublicKey::from_spki_der(leaf.public_key().raw, "the certificate".into())
        .map_err(|e| KeylessError::Certificate(e.to_string()))?;
    let Some(&(_, signature)) = signed
        .signatures(artifact)
        .iter()
        .find(|(message, signature)| key.verifies(message, signature))
    else {
        return Err(KeylessError::Signature);
    };
    let content_sha256 = match signed {
        Signed::Message { .. } => digest_bytes(digest).ok_or_else(|| {
            KeylessError::Content(BundleError::MessageDigestMismatch(digest.to_owned()))
        })?,
        Signed::Dsse { payload, .. } => {
            let mut out = [0u8; 32];
            out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, payload).as_ref());
            out
        }
    };
    let expected = Expected {
        signature,
        verifier_der: &leaf_der,
        content_sha256,
    };
    let entries = &bundle.verification_material.tlog_entries;
    let mut logged = Err(TlogError::NoEntry);
    for entry in entries {
        logged = tlog::verify_entry(entry, &keyless.trusted_root.tlogs, &expected);
        if logged.is_ok() {
            break;
        }
    }
    let time = logged.map_err(KeylessError::Tlog)?;
    verify_certificate(&leaf_der, &leaf, time, keyless)
}

/// The certificate's part of a keyless verification, at the log's authenticated `time`:
/// validity, chain to a Fulcio CA, SCT, identity. Returns the identity.
fn verify_certificate(
    leaf_der: &[u8],
    leaf: &X509Certificate<'_>,
    time: i64,
    keyless: &Keyless,
) -> Result<String, KeylessError> {
    let not_before = leaf.validity().not_before.timestamp();
    let not_after = leaf.validity().not_after.timestamp();
    if time < not_before || time > not_after {
        return Err(KeylessError::OutsideValidity {
            logged: show_time(time),
            not_before: show_time(not_before),
            not_after: show_time(not_after),
        });
    }
    let issuer_der = verify_chain(leaf_der, &keyless.trusted_root, time)?;
    let (_, issuer) =
        X509Certificate::from_der(&issuer_der).map_err(|e| KeylessError::Chain(e.to_string()))?;
    verify_sct(leaf, &issuer, &keyless.trusted_root.ctlogs)?;
    let (subjects, issuer) = certificate_identity(leaf);
    let issuer = issuer.unwrap_or_default();
    let matched = keyless
        .identities
        .iter()
        .find(|id| id.issuer.matches(&issuer) && subjects.iter().any(|s| id.subject.matches(s)));
    match matched {
        Some(_) => Ok(format!(
            "{} (issuer {issuer})",
            subjects.first().map(String::as_str).unwrap_or("")
        )),
        None => Err(KeylessError::Identity {
            subject: if subjects.is_empty() {
                "(no SAN)".into()
            } else {
                subjects.join(", ")
            },
            issuer: if issuer.is_empty() {
                "(none)".into()
            } else {
                issuer
            },
            expected: keyless
                .identities
                .iter()
                .map(|i| format!("{} from {}", i.subject.describe(), i.issuer.describe()))
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

/// The Rekor bundle cosign < 3 keeps in a legacy signature layer's `dev.sigstore.cosign/bundle`
/// annotation: the SET and what it signs.
#[derive(Debug, Deserialize)]
struct LegacyRekorBundle {
    #[serde(rename = "SignedEntryTimestamp")]
    signed_entry_timestamp: String,
    #[serde(rename = "Payload")]
    payload: LegacyRekorPayload,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyRekorPayload {
    body: String,
    integrated_time: i64,
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

/// Verifies a keyless signature in cosign's legacy `.sig` format (cosign < 3 without
/// bundles): the layer carries the certificate and the Rekor bundle (SET) as annotations; the
/// simple-signing payload must name `digest` and `repository`. Returns the identity.
pub fn verify_legacy(
    signature: &super::cosign::Signature,
    keyless: &Keyless,
    digest: &str,
    repository: &str,
) -> Result<String, KeylessError> {
    let certificate = signature
        .certificate
        .as_deref()
        .ok_or(KeylessError::NoCertificate)?;
    let leaf_der = x509_parser::pem::parse_x509_pem(certificate.as_bytes())
        .map(|(_, pem)| pem.contents)
        .map_err(|e| KeylessError::Certificate(e.to_string()))?;
    let (_, leaf) = X509Certificate::from_der(&leaf_der)
        .map_err(|e| KeylessError::Certificate(e.to_string()))?;
    let key = PublicKey::from_spki_der(leaf.public_key().raw, "the certificate".into())
        .map_err(|e| KeylessError::Certificate(e.to_string()))?;
    let sig = signature
        .signature_b64
        .as_deref()
        .and_then(|s| b64(&s.split_ascii_whitespace().collect::<String>()))
        .ok_or(KeylessError::Signature)?;
    if !key.verifies(&signature.payload, &sig) {
        return Err(KeylessError::Signature);
    }
    super::cosign::payload_names(&signature.payload, digest, repository).map_err(|rejection| {
        KeylessError::Content(BundleError::Statement(rejection.to_string()))
    })?;
    let rekor: LegacyRekorBundle = signature
        .rekor_bundle
        .as_deref()
        .ok_or(TlogError::NoEntry)
        .and_then(|text| serde_json::from_str(text).map_err(|_| TlogError::NoPromise))
        .map_err(KeylessError::Tlog)?;
    let log_id = (0..rekor.payload.log_id.len() / 2)
        .map(|i| {
            u8::from_str_radix(
                rekor.payload.log_id.get(2 * i..2 * i + 2).unwrap_or("zz"),
                16,
            )
        })
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| KeylessError::Tlog(TlogError::Base64("logID")))?;
    let body = b64(&rekor.payload.body).ok_or(KeylessError::Tlog(TlogError::Base64("body")))?;
    let kind: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| KeylessError::Tlog(TlogError::BodyMismatch("its body is not JSON".into())))?;
    let entry = bundle::TlogEntry {
        log_index: rekor.payload.log_index,
        log_id: bundle::LogId {
            key_id: base64::engine::general_purpose::STANDARD.encode(log_id),
        },
        kind_version: bundle::KindVersion {
            kind: kind["kind"].as_str().unwrap_or_default().to_owned(),
            version: kind["apiVersion"].as_str().unwrap_or_default().to_owned(),
        },
        integrated_time: Some(rekor.payload.integrated_time),
        inclusion_promise: Some(bundle::InclusionPromise {
            signed_entry_timestamp: rekor.signed_entry_timestamp,
        }),
        inclusion_proof: None,
        canonicalized_body: rekor.payload.body,
    };
    let mut content_sha256 = [0u8; 32];
    content_sha256
        .copy_from_slice(ring::digest::digest(&ring::digest::SHA256, &signature.payload).as_ref());
    let expected = Expected {
        signature: &sig,
        verifier_der: &leaf_der,
        content_sha256,
    };
    let time = tlog::verify_entry(&entry, &keyless.trusted_root.tlogs, &expected)
        .map_err(KeylessError::Tlog)?;
    verify_certificate(&leaf_der, &leaf, time, keyless)
}

/// Judges bundles under keyless trust: the first that verifies wins; else the first failure
/// (each bundle's failure says which check it failed).
pub fn judge(
    bundles: &[Fetched],
    keyless: &Keyless,
    digest: &str,
    artifact: Option<&[u8]>,
) -> Result<String, Rejection> {
    let mut first: Option<Rejection> = None;
    for fetched in bundles {
        let result = bundle::parse(&fetched.bytes)
            .map_err(KeylessError::Content)
            .and_then(|b| verify(&b, keyless, digest, artifact));
        match result {
            Ok(identity) => return Ok(identity),
            Err(e) => {
                let rejection = match e {
                    KeylessError::Content(BundleError::SubjectMismatch(signed)) => {
                        Rejection::Invalid {
                            format: "Sigstore bundle",
                            reason: format!(
                                "it signs another digest ({signed}): the bundle does not name this image"
                            ),
                        }
                    }
                    other => Rejection::Invalid {
                        format: "Sigstore bundle",
                        reason: other.to_string(),
                    },
                };
                first.get_or_insert(rejection);
            }
        }
    }
    Err(first.unwrap_or(Rejection::NoSignature {
        looked_for: "Sigstore bundle",
    }))
}

#[cfg(test)]
mod tests;
