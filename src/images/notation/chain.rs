//! The certificate chain of a Notation signature, checked as the Notary Project signature
//! specification's certificate requirements say and as notation-core-go checks them
//! (`ValidateCodeSigningCertChain`): `x5c` is the complete, ordered chain from the signing
//! certificate to a self-signed root (or a single self-signed signing certificate), each
//! certificate signed by the next; the signing certificate is no CA, has a critical key usage
//! with digitalSignature and none of the encipherment or signing-of-certificates bits, and no
//! server, client, e-mail, time-stamping, OCSP or any-purpose extended usage; each CA
//! certificate has basicConstraints cA=true, a path length that allows the chain below it and
//! a critical key usage with keyCertSign; no SHA-1 signatures. Then, as notation-go's
//! authenticity check: the signature is trusted when a certificate of that chain is in the
//! trust store (byte for byte). Validity is checked apart ([`valid_at`]), at the time the
//! signing scheme says.

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::images::keyless::show_time;

/// sha1WithRSAEncryption (and its OIW alias) and ecdsa-with-SHA1: refused by the specification.
const SHA1_SIGNATURES: [&str; 3] = ["1.2.840.113549.1.1.5", "1.3.14.3.2.29", "1.2.840.10045.4.1"];

fn name(cert: &X509Certificate<'_>) -> String {
    cert.subject().to_string()
}

fn not_sha1(cert: &X509Certificate<'_>) -> Result<(), String> {
    let algorithm = cert.signature_algorithm.algorithm.to_id_string();
    if SHA1_SIGNATURES.contains(&algorithm.as_str()) {
        return Err(format!(
            "certificate {:?} is signed with SHA-1, which the specification refuses",
            name(cert)
        ));
    }
    Ok(())
}

fn signed_by(cert: &X509Certificate<'_>, by: &X509Certificate<'_>) -> Result<(), String> {
    not_sha1(cert)?;
    if cert.issuer().as_raw() != by.subject().as_raw() {
        return Err(format!(
            "certificate {:?} is not issued by the next one in x5c ({:?})",
            name(cert),
            name(by)
        ));
    }
    cert.verify_signature(Some(by.public_key())).map_err(|e| {
        format!(
            "the signature of certificate {:?} does not verify with {:?}'s key: {e}",
            name(cert),
            name(by)
        )
    })
}

fn self_signed(cert: &X509Certificate<'_>) -> bool {
    cert.issuer().as_raw() == cert.subject().as_raw() && cert.verify_signature(None).is_ok()
}

/// The signing certificate's requirements.
fn leaf_requirements(cert: &X509Certificate<'_>) -> Result<(), String> {
    let who = name(cert);
    if let Ok(Some(bc)) = cert.basic_constraints()
        && bc.value.ca
    {
        return Err(format!(
            "the signing certificate {who:?} is a CA certificate (basicConstraints cA=true)"
        ));
    }
    let ku = match cert.key_usage() {
        Ok(Some(ku)) if ku.critical => ku.value,
        Ok(Some(_)) => {
            return Err(format!(
                "the signing certificate {who:?}: its key usage must be marked critical"
            ));
        }
        _ => {
            return Err(format!(
                "the signing certificate {who:?} has no key usage (digitalSignature is required)"
            ));
        }
    };
    if !ku.digital_signature() {
        return Err(format!(
            "the signing certificate {who:?}: its key usage lacks digitalSignature"
        ));
    }
    let forbidden = [
        (ku.key_encipherment(), "keyEncipherment"),
        (ku.data_encipherment(), "dataEncipherment"),
        (ku.key_agreement(), "keyAgreement"),
        (ku.key_cert_sign(), "keyCertSign"),
        (ku.crl_sign(), "cRLSign"),
        (ku.encipher_only(), "encipherOnly"),
        (ku.decipher_only(), "decipherOnly"),
    ];
    if let Some((_, bit)) = forbidden.iter().find(|(set, _)| *set) {
        return Err(format!(
            "the signing certificate {who:?}: its key usage must not include {bit}"
        ));
    }
    match cert.extended_key_usage() {
        Ok(None) => {}
        Ok(Some(eku)) => {
            let eku = eku.value;
            let forbidden = [
                (eku.any, "anyExtendedKeyUsage"),
                (eku.server_auth, "serverAuth"),
                (eku.client_auth, "clientAuth"),
                (eku.email_protection, "emailProtection"),
                (eku.time_stamping, "timeStamping"),
                (eku.ocsp_signing, "OCSPSigning"),
            ];
            if let Some((_, usage)) = forbidden.iter().find(|(set, _)| *set) {
                return Err(format!(
                    "the signing certificate {who:?}: its extended key usage must not include {usage}"
                ));
            }
        }
        Err(e) => return Err(format!("the signing certificate {who:?}: {e}")),
    }
    Ok(())
}

/// A CA certificate's requirements, `below` certificates under it that are CAs themselves.
fn ca_requirements(cert: &X509Certificate<'_>, below: u32) -> Result<(), String> {
    let who = name(cert);
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => {
            if let Some(limit) = bc.value.path_len_constraint
                && limit < below
            {
                return Err(format!(
                    "CA certificate {who:?} allows {limit} CA certificates below it, the chain has {below}"
                ));
            }
        }
        _ => {
            return Err(format!(
                "certificate {who:?} issues another but is not a CA (basicConstraints cA=true)"
            ));
        }
    }
    match cert.key_usage() {
        Ok(Some(ku)) if ku.critical && ku.value.key_cert_sign() => Ok(()),
        _ => Err(format!(
            "CA certificate {who:?} needs a critical key usage with keyCertSign"
        )),
    }
}

/// Checks `x5c` (DER, the signing certificate first) as a Notation certificate chain, without
/// time; then that one of its certificates is in `trust_store`.
pub fn verify(x5c: &[Vec<u8>], trust_store: &[Vec<u8>]) -> Result<(), ChainError> {
    let mut certs = Vec::with_capacity(x5c.len());
    for der in x5c {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| ChainError::Invalid(format!("a certificate of x5c: {e}")))?;
        certs.push(cert);
    }
    let (leaf, issuers) = certs
        .split_first()
        .ok_or_else(|| ChainError::Invalid("x5c is empty".into()))?;
    leaf_requirements(leaf).map_err(ChainError::Invalid)?;
    match issuers.split_last() {
        None => {
            if !self_signed(leaf) {
                return Err(ChainError::Invalid(format!(
                    "x5c holds only {:?}, which is not self-signed: the chain must end with its root",
                    name(leaf)
                )));
            }
            not_sha1(leaf).map_err(ChainError::Invalid)?;
        }
        Some((root, _)) => {
            if !self_signed(root) {
                return Err(ChainError::Invalid(format!(
                    "x5c ends with {:?}, which is not a self-signed root: the envelope must carry the complete chain",
                    name(root)
                )));
            }
            for (i, pair) in certs.windows(2).enumerate() {
                if self_signed(&pair[0]) {
                    return Err(ChainError::Invalid(format!(
                        "x5c has a self-signed certificate {:?} before its end",
                        name(&pair[0])
                    )));
                }
                signed_by(&pair[0], &pair[1]).map_err(ChainError::Invalid)?;
                ca_requirements(&pair[1], i as u32).map_err(ChainError::Invalid)?;
            }
            not_sha1(root).map_err(ChainError::Invalid)?;
        }
    }
    if x5c.iter().any(|der| trust_store.contains(der)) {
        Ok(())
    } else {
        Err(ChainError::Untrusted)
    }
}

/// Why a chain is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainError {
    /// Against the specification's certificate requirements.
    Invalid(String),
    /// Well formed, but no certificate of it is in the trust store.
    Untrusted,
}

/// Checks every certificate of `x5c` is valid at `time` (Unix seconds): the first that is
/// not, as "certificate X is valid from A to B".
pub fn valid_at(x5c: &[Vec<u8>], time: i64) -> Result<(), String> {
    for der in x5c {
        let Ok((_, cert)) = X509Certificate::from_der(der) else {
            return Err("a certificate of x5c does not parse".into());
        };
        let not_before = cert.validity().not_before.timestamp();
        let not_after = cert.validity().not_after.timestamp();
        if time < not_before || time > not_after {
            return Err(format!(
                "certificate {:?} is valid from {} to {}",
                name(&cert),
                show_time(not_before),
                show_time(not_after)
            ));
        }
    }
    Ok(())
}
