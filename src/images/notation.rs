//! Notation (Notary Project) signatures: JWS or COSE envelopes attached to the image as OCI referrers
//! of artifact type `application/vnd.cncf.notary.signature`, verified against a trust store
//! and trusted identities as the Notary Project specifications (signature specification, JWS
//! envelope, trust store and trust policy) and notation-go's verifier (strict level) say, in
//! their order:
//!
//! 1. integrity: the envelope parses; its protected headers are the signing scheme's
//!    (`notary.x509` carries `io.cncf.notary.signingTime` and no authentic signing time,
//!    `notary.x509.signingAuthority` the critical `io.cncf.notary.authenticSigningTime` and no
//!    signing time); `crit` lists the signing scheme, the expiry and the authentic signing
//!    time when present, and no header this verifier does not understand (a verification
//!    plugin's included: portier runs no plugins); the JWS signature verifies with the
//!    signing certificate (`x5c[0]`) under the `alg` the specification pairs with its key; the
//!    signed descriptor (`targetArtifact`) is the admitted manifest: digest, media type, size;
//! 2. authenticity: `x5c` meets the certificate requirements (`notation/chain.rs`) and one of
//!    its certificates is in the rule's trust store of the scheme's type (`trustStore`, type
//!    `ca`, for `notary.x509`; `signingAuthorityStore` for `notary.x509.signingAuthority`);
//!    the signing certificate's subject matches a trusted identity (`notation/identity.rs`);
//! 3. expiry: `io.cncf.notary.expiry`, when present, has not passed;
//! 4. authentic timestamp: under `notary.x509` (no timestamp countersignature is read: no
//!    `tsa` store is configured) every certificate of the chain is valid now, and the signing
//!    time the signer states lies inside the signing certificate's validity; under
//!    `notary.x509.signingAuthority` every certificate is valid at the authentic signing time.
//!
//! JWS envelopes are read by `notation/jws.rs`, COSE ones (COSE_Sign1, with `coset`) by
//! `notation/cose.rs`; both are judged by the same steps. Revocation (OCSP, CRL) is not
//! checked: that needs the network beyond the registry. Pure: no network.

mod chain;
mod cose;
mod identity;
mod jws;

use std::path::PathBuf;

use ring::signature as alg;
use serde::Deserialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::keyless::show_time;
use super::keys::{KeyKind, PublicKey};
use super::referrers::{COSE_ENVELOPE, JWS_ENVELOPE};
use super::verdict::Rejection;
use chain::ChainError;
pub use identity::{Subject, TrustedIdentity};

const PAYLOAD_CONTENT_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
const SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
const AUTHENTIC_SIGNING_TIME: &str = "io.cncf.notary.authenticSigningTime";
const EXPIRY: &str = "io.cncf.notary.expiry";
const VERIFICATION_PLUGIN: &str = "io.cncf.notary.verificationPlugin";
const VERIFICATION_PLUGIN_MIN_VERSION: &str = "io.cncf.notary.verificationPluginMinVersion";
const X509: &str = "notary.x509";
const SIGNING_AUTHORITY: &str = "notary.x509.signingAuthority";
/// The critical headers this verifier honours.
const UNDERSTOOD: [&str; 3] = [SIGNING_SCHEME, EXPIRY, AUTHENTIC_SIGNING_TIME];

/// A Notation rule's trust.
#[derive(Debug)]
pub struct NotationTrust {
    /// Trust store of type `ca` (DER): for `notary.x509` signatures.
    pub ca: Vec<Vec<u8>>,
    /// Trust store of type `signingAuthority` (DER): for `notary.x509.signingAuthority`.
    pub signing_authority: Vec<Vec<u8>>,
    pub identities: Vec<TrustedIdentity>,
    /// SHA-256 over both stores, so a changed store never reuses a verdict.
    pub fingerprint: String,
}

/// The certificates (DER) of PEM files, each of which may hold several.
fn read_store(paths: &[PathBuf], hash: &mut ring::digest::Context) -> Result<Vec<Vec<u8>>, String> {
    let mut store = Vec::new();
    for path in paths {
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
            store.push(pem.contents);
            found += 1;
        }
        if found == 0 {
            return Err(format!("{} holds no PEM certificate", path.display()));
        }
    }
    Ok(store)
}

impl NotationTrust {
    /// Reads the trust stores' PEM files: `ca` (type `ca`) and `signing_authority` (type
    /// `signingAuthority`).
    pub fn new(
        ca: &[PathBuf],
        signing_authority: &[PathBuf],
        identities: Vec<TrustedIdentity>,
    ) -> Result<Self, String> {
        let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
        let ca = read_store(ca, &mut hash)?;
        hash.update(b"\0signingAuthority\0");
        let signing_authority = read_store(signing_authority, &mut hash)?;
        Ok(NotationTrust {
            ca,
            signing_authority,
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
        "it marks header {0:?} critical, which this verifier does not understand (the Notary Project specification requires refusing it)"
    )]
    UnknownCritical(String),
    #[error("it requires the verification plugin {0:?}, which portier cannot run")]
    Plugin(String),
    #[error("its critical headers are wrong: {0}")]
    Critical(String),
    #[error("its signature algorithm {0} is not supported or does not match the certificate's key")]
    Algorithm(String),
    #[error("its signature does not verify with its signing certificate")]
    Signature,
    #[error("it signs {0}, not this image")]
    Digest(String),
    #[error("it signs {0}, which is not how the registry describes this image ({1})")]
    Descriptor(String, String),
    #[error("its certificate chain does not meet the Notary Project requirements: {0}")]
    Chain(String),
    #[error(
        "its certificate chain does not lead to the trust store: no certificate of it is in the rule's {0}"
    )]
    Untrusted(&'static str),
    #[error(
        "its signing time {signing_time} is outside its certificate's validity ({not_before} to {not_after})"
    )]
    SigningTime {
        signing_time: String,
        not_before: String,
        not_after: String,
    },
    #[error(
        "its certificate chain is not valid now ({0}): without a timestamp countersignature every certificate must be (notary.x509)"
    )]
    NotValidNow(String),
    #[error("its certificate chain was not valid at its authentic signing time {0} ({1})")]
    NotValidAtSigning(String, String),
    #[error("the envelope expired at {0}")]
    Expired(String),
    #[error("it was signed by {0}, which matches no trusted identity of the rule")]
    Identity(String),
    #[error("it was signed by {0}, which matches no trusted identity of the rule: {1}")]
    Unmatchable(String, String),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    target_artifact: Target,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    media_type: String,
    digest: String,
    size: u64,
}

/// The manifest a signature must sign, as the registry describes it.
#[derive(Debug, Clone, Copy)]
pub struct Manifest<'a> {
    pub digest: &'a str,
    /// Its `mediaType` field, when it has one.
    pub media_type: Option<&'a str>,
    pub size: u64,
}

impl<'a> Manifest<'a> {
    /// The description of `bytes`, which the registry served for `digest` (checked).
    pub fn of(digest: &'a str, bytes: &'a [u8]) -> Manifest<'a> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct MediaType<'a> {
            #[serde(borrow, default)]
            media_type: Option<&'a str>,
        }
        let media_type = serde_json::from_slice::<MediaType<'a>>(bytes)
            .ok()
            .and_then(|m| m.media_type);
        Manifest {
            digest,
            media_type,
            size: bytes.len() as u64,
        }
    }
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

/// What a Notation envelope (JWS or COSE) says and signs, read by `jws.rs` or `cose.rs`.
#[derive(Debug)]
pub(crate) struct Signed {
    /// `io.cncf.notary.signingScheme`.
    pub scheme: Option<String>,
    /// The protected headers present (text names; COSE integer labels as `label N`).
    pub present: Vec<String>,
    pub crit: Vec<String>,
    /// `io.cncf.notary.verificationPlugin`.
    pub plugin: Option<String>,
    pub content_type: Option<String>,
    /// The algorithm by its JWS name (`PS256`, `ES256`, ...).
    pub alg: Option<String>,
    pub signing_time: Option<i64>,
    pub authentic_signing_time: Option<i64>,
    pub expiry: Option<i64>,
    /// The certificate chain (DER), the signing certificate first.
    pub x5c: Vec<Vec<u8>>,
    pub payload: Vec<u8>,
    /// What the signature covers.
    pub signed_bytes: Vec<u8>,
    pub signature: Vec<u8>,
}

/// The critical-header rules, for `scheme`: which headers may and must be there.
fn check_critical(signed: &Signed, scheme: &str) -> Result<(), NotationError> {
    let crit: Vec<&str> = signed.crit.iter().map(String::as_str).collect();
    let present = |name: &str| signed.present.iter().any(|p| p == name);
    if let Some(absent) = crit.iter().find(|c| !present(c)) {
        return Err(NotationError::Critical(format!(
            "{absent} is listed but not present"
        )));
    }
    if crit.contains(&VERIFICATION_PLUGIN) || crit.contains(&VERIFICATION_PLUGIN_MIN_VERSION) {
        return Err(NotationError::Plugin(
            signed.plugin.clone().unwrap_or_default(),
        ));
    }
    if let Some(unknown) = crit.iter().find(|c| !UNDERSTOOD.contains(c)) {
        return Err(NotationError::UnknownCritical((*unknown).to_owned()));
    }
    // What a scheme forbids, then what it requires.
    let (forbidden, required_time) = if scheme == X509 {
        (AUTHENTIC_SIGNING_TIME, SIGNING_TIME)
    } else {
        (SIGNING_TIME, AUTHENTIC_SIGNING_TIME)
    };
    if present(forbidden) {
        return Err(NotationError::Critical(format!(
            "{forbidden} must not be present under {scheme}"
        )));
    }
    if !present(required_time) {
        return Err(NotationError::Critical(format!(
            "{required_time} is required under {scheme}"
        )));
    }
    let mut must = vec![SIGNING_SCHEME];
    if present(EXPIRY) {
        must.push(EXPIRY);
    }
    if scheme == SIGNING_AUTHORITY {
        must.push(AUTHENTIC_SIGNING_TIME);
    }
    if let Some(missing) = must.iter().find(|m| !crit.contains(m)) {
        return Err(NotationError::Critical(format!(
            "{missing} must be marked critical"
        )));
    }
    Ok(())
}

/// Verifies one envelope for `manifest` under `trust` at `now` (Unix seconds); returns the
/// signer's subject.
pub fn verify(
    media_type: &str,
    envelope: &[u8],
    trust: &NotationTrust,
    manifest: Manifest<'_>,
    now: i64,
) -> Result<String, NotationError> {
    let signed = match media_type {
        JWS_ENVELOPE => jws::parse(envelope)?,
        COSE_ENVELOPE => cose::parse(envelope)?,
        other => {
            return Err(NotationError::Envelope(format!("media type {other:?}")));
        }
    };
    verify_signed(&signed, trust, manifest, now)
}

/// [`verify`] of an envelope read.
fn verify_signed(
    signed: &Signed,
    trust: &NotationTrust,
    manifest: Manifest<'_>,
    now: i64,
) -> Result<String, NotationError> {
    // 1. Integrity.
    let scheme = match signed.scheme.as_deref() {
        Some(scheme @ (X509 | SIGNING_AUTHORITY)) => scheme,
        other => {
            return Err(NotationError::Envelope(format!(
                "signing scheme {other:?} (notary.x509 or notary.x509.signingAuthority)"
            )));
        }
    };
    // Critical headers before anything else: a verifier that does not understand one must
    // stop there.
    check_critical(signed, scheme)?;
    if signed.content_type.as_deref() != Some(PAYLOAD_CONTENT_TYPE) {
        return Err(NotationError::Envelope(format!(
            "content type {:?}, not {PAYLOAD_CONTENT_TYPE}",
            signed.content_type
        )));
    }
    let (signing_time, authentic_signing_time, expiry) = (
        signed.signing_time,
        signed.authentic_signing_time,
        signed.expiry,
    );
    let stated_time = signing_time.or(authentic_signing_time).unwrap_or_default();
    if let Some(expiry) = expiry
        && expiry <= stated_time
    {
        return Err(NotationError::Envelope(format!(
            "{EXPIRY} is not after its signing time"
        )));
    }
    let certificates = &signed.x5c;
    let leaf_der = certificates
        .first()
        .ok_or_else(|| NotationError::Envelope("the certificate chain is empty".into()))?;
    let (_, leaf) = X509Certificate::from_der(leaf_der)
        .map_err(|e| NotationError::Envelope(format!("the signing certificate: {e}")))?;
    let key = PublicKey::from_spki_der(leaf.public_key().raw, "the signing certificate".into())
        .map_err(|e| NotationError::Algorithm(e.to_string()))?;
    let algorithm = algorithm_for(signed.alg.as_deref().unwrap_or("(none)"), &key)?;
    if !key.verifies_with(algorithm, &signed.signed_bytes, &signed.signature) {
        return Err(NotationError::Signature);
    }
    let payload: Payload = serde_json::from_slice(&signed.payload)
        .map_err(|e| NotationError::Envelope(format!("payload: {e}")))?;
    let target = payload.target_artifact;
    if target.digest != manifest.digest {
        return Err(NotationError::Digest(target.digest));
    }
    let media_type_differs = manifest.media_type.is_some_and(|m| m != target.media_type);
    if target.size != manifest.size || media_type_differs {
        return Err(NotationError::Descriptor(
            format!("{} of {} bytes", target.media_type, target.size),
            format!(
                "{} of {} bytes",
                manifest.media_type.unwrap_or("a manifest"),
                manifest.size
            ),
        ));
    }
    // 2. Authenticity.
    let (store, store_name) = if scheme == X509 {
        (&trust.ca, "trustStore (type ca)")
    } else {
        (
            &trust.signing_authority,
            "signingAuthorityStore (type signingAuthority)",
        )
    };
    chain::verify(certificates, store).map_err(|e| match e {
        ChainError::Invalid(why) => NotationError::Chain(why),
        ChainError::Untrusted => NotationError::Untrusted(store_name),
    })?;
    let subject = Subject::of(&leaf);
    if !trust.identities.iter().any(|i| i.matches(&subject)) {
        return Err(match &subject.unmatchable {
            Some(why) => NotationError::Unmatchable(subject.show(), why.clone()),
            None => NotationError::Identity(subject.show()),
        });
    }
    // 3. Expiry.
    if let Some(expiry) = expiry
        && now >= expiry
    {
        return Err(NotationError::Expired(show_time(expiry)));
    }
    // 4. Authentic timestamp.
    match (signing_time, authentic_signing_time) {
        (Some(signing_time), _) => {
            let not_before = leaf.validity().not_before.timestamp();
            let not_after = leaf.validity().not_after.timestamp();
            if signing_time < not_before || signing_time > not_after {
                return Err(NotationError::SigningTime {
                    signing_time: show_time(signing_time),
                    not_before: show_time(not_before),
                    not_after: show_time(not_after),
                });
            }
            chain::valid_at(certificates, now).map_err(NotationError::NotValidNow)?;
        }
        (None, Some(authentic)) => {
            chain::valid_at(certificates, authentic)
                .map_err(|why| NotationError::NotValidAtSigning(show_time(authentic), why))?;
        }
        // check_critical requires the scheme's time.
        (None, None) => {
            return Err(NotationError::Critical("no signing time".into()));
        }
    }
    Ok(subject.show())
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
    manifest: Manifest<'_>,
    now: i64,
) -> Result<String, Rejection> {
    let mut first = None;
    for envelope in envelopes {
        match verify(&envelope.media_type, &envelope.bytes, trust, manifest, now) {
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
