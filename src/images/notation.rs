//! Notation (Notary Project) signatures: JWS envelopes attached to the image as OCI referrers
//! of artifact type `application/vnd.cncf.notary.signature`, verified against a trust store
//! and trusted identities as the Notary Project specification's trust policy says (signature
//! envelope, trust store and trust policy specifications, v1.1):
//!
//! - integrity: the JWS signature verifies with the signing certificate (`x5c[0]`) under the
//!   `alg` the protected header names, which must match the certificate's key;
//! - critical headers: `crit` must list `io.cncf.notary.signingScheme` (and the expiry and
//!   authentic signing time when present); a critical header this verifier does not
//!   understand (a verification plugin's) fails the signature;
//! - the signed descriptor (`targetArtifact`) is the admitted digest;
//! - authenticity: `x5c` chains to a certificate of the trust store, with the code-signing
//!   usage; the signing time lies inside the signing certificate's validity; under
//!   `notary.x509` (no timestamp countersignature read here) the chain must also be valid
//!   now, under `notary.x509.signingAuthority` at the authentic signing time;
//! - the signing certificate's subject matches a trusted identity (`x509.subject: ...` or `*`);
//! - the envelope's `io.cncf.notary.expiry` has not passed.
//!
//! COSE envelopes are refused with a clear reason rather than half-verified. Pure: no network.

use std::path::PathBuf;

use base64::Engine as _;
use ring::signature as alg;
use serde::Deserialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::keyless::{CODE_SIGNING_EKU, chain_to_anchors, show_time};
use super::keys::{KeyKind, PublicKey};
use super::referrers::{COSE_ENVELOPE, JWS_ENVELOPE};
use super::verdict::Rejection;

const PAYLOAD_CONTENT_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
const SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
const AUTHENTIC_SIGNING_TIME: &str = "io.cncf.notary.authenticSigningTime";
const EXPIRY: &str = "io.cncf.notary.expiry";
/// The critical headers this verifier honours.
const UNDERSTOOD: [&str; 3] = [SIGNING_SCHEME, EXPIRY, AUTHENTIC_SIGNING_TIME];

/// A trusted identity of a Notation rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedIdentity {
    /// `*`: any signer the trust store vouches for.
    Any,
    /// `x509.subject: C=US, O=Acme, CN=release`: every attribute given must be in the signing
    /// certificate's subject with that value.
    Subject(Vec<(String, String)>),
}

impl TrustedIdentity {
    /// Reads `*` or `x509.subject: <DN>`.
    pub fn parse(text: &str) -> Result<TrustedIdentity, String> {
        if text.trim() == "*" {
            return Ok(TrustedIdentity::Any);
        }
        let dn = text
            .trim()
            .strip_prefix("x509.subject:")
            .ok_or("must be \"*\" or \"x509.subject: <distinguished name>\"")?;
        let attributes = parse_dn(dn)?;
        if attributes.is_empty() {
            return Err("the distinguished name is empty".into());
        }
        Ok(TrustedIdentity::Subject(attributes))
    }

    fn matches(&self, subject: &[(String, String)]) -> bool {
        match self {
            TrustedIdentity::Any => true,
            TrustedIdentity::Subject(wanted) => wanted.iter().all(|w| subject.contains(w)),
        }
    }
}

/// `C=US, ST=WA, O=Acme, CN=release` as (attribute, value) pairs; `\,` escapes a comma.
fn parse_dn(dn: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut parts = Vec::new();
    let mut escaped = false;
    for c in dn.chars() {
        match (escaped, c) {
            (false, '\\') => escaped = true,
            (false, ',') => parts.push(std::mem::take(&mut current)),
            (_, c) => {
                escaped = false;
                current.push(c);
            }
        }
    }
    parts.push(current);
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not ATTRIBUTE=value"))?;
        out.push((key.trim().to_ascii_uppercase(), value.trim().to_owned()));
    }
    Ok(out)
}

/// The subject of a certificate as (attribute, value) pairs, attributes by Notation's names.
fn subject_of(cert: &X509Certificate<'_>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        for attr in rdn.iter() {
            let name = match attr.attr_type().to_id_string().as_str() {
                "2.5.4.6" => "C",
                "2.5.4.8" => "ST",
                "2.5.4.7" => "L",
                "2.5.4.10" => "O",
                "2.5.4.11" => "OU",
                "2.5.4.3" => "CN",
                "1.2.840.113549.1.9.1" => "E",
                _ => continue,
            };
            if let Ok(value) = attr.as_str() {
                out.push((name.to_owned(), value.to_owned()));
            }
        }
    }
    out
}

fn show_subject(subject: &[(String, String)]) -> String {
    subject
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A Notation rule's trust.
#[derive(Debug)]
pub struct NotationTrust {
    /// Trusted certificates (DER), from the trust store's PEM files.
    pub trust_store: Vec<Vec<u8>>,
    pub trust_store_paths: Vec<PathBuf>,
    pub identities: Vec<TrustedIdentity>,
    /// SHA-256 over the trust store, so a changed store never reuses a verdict.
    pub fingerprint: String,
}

impl NotationTrust {
    /// Reads the trust store's PEM files (each may hold several certificates).
    pub fn new(paths: Vec<PathBuf>, identities: Vec<TrustedIdentity>) -> Result<Self, String> {
        let mut trust_store = Vec::new();
        let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
        for path in &paths {
            let text =
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            hash.update(&text);
            let mut found = 0;
            for pem in x509_parser::pem::Pem::iter_from_buffer(&text) {
                let pem = pem.map_err(|e| format!("{}: not PEM: {e}", path.display()))?;
                if pem.label != "CERTIFICATE" {
                    continue;
                }
                X509Certificate::from_der(&pem.contents)
                    .map_err(|e| format!("{}: not a certificate: {e}", path.display()))?;
                trust_store.push(pem.contents);
                found += 1;
            }
            if found == 0 {
                return Err(format!("{} holds no PEM certificate", path.display()));
            }
        }
        Ok(NotationTrust {
            trust_store,
            trust_store_paths: paths,
            identities,
            fingerprint: super::tlog::hex(hash.finish().as_ref()),
        })
    }
}

/// Why a Notation signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotationError {
    #[error("the envelope is not a Notation JWS envelope: {0}")]
    Envelope(String),
    #[error(
        "it is a COSE envelope, which portier does not verify (sign with notation sign --signature-format jws)"
    )]
    Cose,
    #[error(
        "it marks header {0:?} critical, which this verifier does not understand (the Notary Project specification requires refusing it)"
    )]
    UnknownCritical(String),
    #[error("its critical headers are wrong: {0}")]
    Critical(String),
    #[error("its signature algorithm {0} is not supported or does not match the certificate's key")]
    Algorithm(String),
    #[error("its signature does not verify with its signing certificate")]
    Signature,
    #[error("it signs {0}, not this image")]
    Digest(String),
    #[error("its certificate chain does not lead to the trust store with code-signing usage: {0}")]
    Untrusted(String),
    #[error(
        "its signing time {signing_time} is outside its certificate's validity ({not_before} to {not_after})"
    )]
    SigningTime {
        signing_time: String,
        not_before: String,
        not_after: String,
    },
    #[error("the envelope expired at {0}")]
    Expired(String),
    #[error("it was signed by {0}, which matches no trusted identity of the rule")]
    Identity(String),
}

#[derive(Debug, Deserialize)]
struct Jws {
    payload: String,
    protected: String,
    #[serde(default)]
    header: UnprotectedHeader,
    signature: String,
}

#[derive(Debug, Default, Deserialize)]
struct UnprotectedHeader {
    #[serde(default)]
    x5c: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    target_artifact: Target,
}

#[derive(Debug, Deserialize)]
struct Target {
    digest: String,
}

fn b64url(field: &str, text: &str) -> Result<Vec<u8>, NotationError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| NotationError::Envelope(format!("{field} is not base64url")))
}

/// Seconds since the epoch of an RFC 3339 time with any offset (`2024-06-18T17:08:35+08:00`).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = text.get(from..from + len)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    if b.get(at) == Some(&b'.') {
        at += 1;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
    }
    let offset = match b.get(at)? {
        b'Z' | b'z' if at + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if at + 6 == b.len() && b[at + 3] == b':' => {
            let minutes = num(at + 1, 2)? * 60 + num(at + 4, 2)?;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset * 60)
}

/// The ring algorithm of a JWS `alg`, which must be the one the Notary Project specification
/// pairs with the signing key: PS256/384/512 for RSA 2048/3072/4096, ES256/384 for P-256/384.
fn algorithm_for(
    name: &str,
    key: &PublicKey,
) -> Result<&'static dyn ring::signature::VerificationAlgorithm, NotationError> {
    let algorithm: &'static dyn ring::signature::VerificationAlgorithm =
        match (name, key.kind, key.rsa_bits()) {
            ("PS256", KeyKind::Rsa, Some(2048)) => &alg::RSA_PSS_2048_8192_SHA256,
            ("PS384", KeyKind::Rsa, Some(3072)) => &alg::RSA_PSS_2048_8192_SHA384,
            ("PS512", KeyKind::Rsa, Some(4096)) => &alg::RSA_PSS_2048_8192_SHA512,
            ("ES256", KeyKind::P256, _) => &alg::ECDSA_P256_SHA256_FIXED,
            ("ES384", KeyKind::P384, _) => &alg::ECDSA_P384_SHA384_FIXED,
            _ => return Err(NotationError::Algorithm(name.to_owned())),
        };
    Ok(algorithm)
}

/// Verifies one envelope for `digest` under `trust` at `now` (Unix seconds); returns the
/// signer's subject.
pub fn verify(
    media_type: &str,
    envelope: &[u8],
    trust: &NotationTrust,
    digest: &str,
    now: i64,
) -> Result<String, NotationError> {
    if media_type == COSE_ENVELOPE {
        return Err(NotationError::Cose);
    }
    if media_type != JWS_ENVELOPE {
        return Err(NotationError::Envelope(format!(
            "media type {media_type:?}"
        )));
    }
    let jws: Jws =
        serde_json::from_slice(envelope).map_err(|e| NotationError::Envelope(e.to_string()))?;
    let protected_bytes = b64url("protected", &jws.protected)?;
    let protected: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&protected_bytes)
            .map_err(|e| NotationError::Envelope(format!("protected header: {e}")))?;
    let header = |name: &str| protected.get(name).and_then(serde_json::Value::as_str);
    // Critical headers first: a verifier that does not understand one must stop there.
    let crit: Vec<&str> = match protected.get("crit") {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| NotationError::Critical("crit holds a non-string".into()))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(NotationError::Critical("crit is not a list".into())),
        None => Vec::new(),
    };
    if let Some(unknown) = crit.iter().find(|c| !UNDERSTOOD.contains(c)) {
        return Err(NotationError::UnknownCritical((*unknown).to_owned()));
    }
    if let Some(absent) = crit.iter().find(|c| !protected.contains_key(**c)) {
        return Err(NotationError::Critical(format!(
            "{absent} is listed but not present"
        )));
    }
    for required in [SIGNING_SCHEME, EXPIRY, AUTHENTIC_SIGNING_TIME] {
        if (required == SIGNING_SCHEME || protected.contains_key(required))
            && !crit.contains(&required)
        {
            return Err(NotationError::Critical(format!(
                "{required} must be marked critical"
            )));
        }
    }
    if header("cty") != Some(PAYLOAD_CONTENT_TYPE) {
        return Err(NotationError::Envelope(format!(
            "content type {:?}, not {PAYLOAD_CONTENT_TYPE}",
            header("cty")
        )));
    }
    let certificates = jws
        .header
        .x5c
        .iter()
        .map(|c| base64::engine::general_purpose::STANDARD.decode(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            NotationError::Envelope("x5c holds a certificate that is not base64".into())
        })?;
    let leaf_der = certificates
        .first()
        .ok_or_else(|| NotationError::Envelope("x5c is empty".into()))?;
    let (_, leaf) = X509Certificate::from_der(leaf_der)
        .map_err(|e| NotationError::Envelope(format!("the signing certificate: {e}")))?;
    // The specification's signing-certificate requirements: not a CA, digitalSignature usage.
    let digital_signature =
        matches!(leaf.key_usage(), Ok(Some(ku)) if ku.value.digital_signature());
    if leaf.is_ca() || !digital_signature {
        return Err(NotationError::Untrusted(
            "the signing certificate must be a non-CA certificate with the digitalSignature key usage".into(),
        ));
    }
    let key = PublicKey::from_spki_der(leaf.public_key().raw, "the signing certificate".into())
        .map_err(|e| NotationError::Algorithm(e.to_string()))?;
    let algorithm = algorithm_for(header("alg").unwrap_or("(none)"), &key)?;
    let signing_input = format!("{}.{}", jws.protected, jws.payload);
    let signature = b64url("signature", &jws.signature)?;
    if !key.verifies_with(algorithm, signing_input.as_bytes(), &signature) {
        return Err(NotationError::Signature);
    }
    let payload: Payload = serde_json::from_slice(&b64url("payload", &jws.payload)?)
        .map_err(|e| NotationError::Envelope(format!("payload: {e}")))?;
    if payload.target_artifact.digest != digest {
        return Err(NotationError::Digest(payload.target_artifact.digest));
    }
    let (signing_time, chain_time) = match header(SIGNING_SCHEME) {
        Some("notary.x509") => {
            let t = header(SIGNING_TIME)
                .and_then(parse_rfc3339)
                .ok_or_else(|| {
                    NotationError::Envelope(format!("{SIGNING_TIME} is missing or not RFC 3339"))
                })?;
            // Without a timestamp countersignature the signing time is the signer's word:
            // the chain must be valid now, as the specification's authentic timestamp says.
            (t, now)
        }
        Some("notary.x509.signingAuthority") => {
            let t = header(AUTHENTIC_SIGNING_TIME)
                .and_then(parse_rfc3339)
                .ok_or_else(|| {
                    NotationError::Envelope(format!(
                        "{AUTHENTIC_SIGNING_TIME} is missing or not RFC 3339"
                    ))
                })?;
            (t, t)
        }
        other => {
            return Err(NotationError::Envelope(format!("signing scheme {other:?}")));
        }
    };
    let not_before = leaf.validity().not_before.timestamp();
    let not_after = leaf.validity().not_after.timestamp();
    if signing_time < not_before || signing_time > not_after {
        return Err(NotationError::SigningTime {
            signing_time: show_time(signing_time),
            not_before: show_time(not_before),
            not_after: show_time(not_after),
        });
    }
    chain_to_anchors(
        leaf_der,
        &trust.trust_store,
        &certificates[1..],
        chain_time,
        CODE_SIGNING_EKU,
    )
    .map_err(NotationError::Untrusted)?;
    let subject = subject_of(&leaf);
    if !trust.identities.iter().any(|i| i.matches(&subject)) {
        return Err(NotationError::Identity(show_subject(&subject)));
    }
    if let Some(expiry) = header(EXPIRY) {
        let expiry = parse_rfc3339(expiry)
            .ok_or_else(|| NotationError::Envelope(format!("{EXPIRY} is not RFC 3339")))?;
        if expiry < now {
            return Err(NotationError::Expired(show_time(expiry)));
        }
    }
    Ok(show_subject(&subject))
}

/// One Notation envelope fetched: the referrer, its layer media type and bytes.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub referrer: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// Judges envelopes: the first that verifies wins, else the first failure.
pub fn judge(
    envelopes: &[Envelope],
    trust: &NotationTrust,
    digest: &str,
    now: i64,
) -> Result<String, Rejection> {
    let mut first = None;
    for envelope in envelopes {
        match verify(&envelope.media_type, &envelope.bytes, trust, digest, now) {
            Ok(signer) => return Ok(signer),
            Err(e) => {
                first.get_or_insert(Rejection::Invalid {
                    format: "Notation signature",
                    reason: e.to_string(),
                });
            }
        }
    }
    Err(first.unwrap_or(Rejection::NoSignature {
        looked_for: "Notation signature",
    }))
}

#[cfg(test)]
mod tests;
