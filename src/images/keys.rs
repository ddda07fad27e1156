//! Public keys that cosign signatures are checked against: read from PEM (inline or a file),
//! verified with ring (already the process's TLS crypto provider).

use std::fmt;
use std::path::Path;

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

/// Why a key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{origin}: not a PEM block: {reason}")]
    NotPem { origin: String, reason: String },
    #[error("{origin}: expected a \"PUBLIC KEY\" PEM block (cosign.pub), found {label:?}")]
    WrongLabel { origin: String, label: String },
    #[error("{origin}: not a SubjectPublicKeyInfo: {reason}")]
    NotSpki { origin: String, reason: String },
    #[error("{origin}: unsupported elliptic curve {curve}; use P-256 (cosign's default) or P-384")]
    Curve { origin: String, curve: String },
    #[error(
        "{origin}: unsupported key algorithm {algorithm}; supported: ECDSA P-256 (cosign's default), ECDSA P-384, Ed25519"
    )]
    Algorithm { origin: String, algorithm: String },
}

/// A public key cosign signatures are checked against.
pub struct PublicKey {
    algorithm: &'static dyn VerificationAlgorithm,
    /// The key as ring reads it (an EC point, or an Ed25519 key).
    key: Vec<u8>,
    /// `sha256:<hex>` of the SubjectPublicKeyInfo, as `cosign public-key` users compare keys.
    pub fingerprint: String,
    /// Where it came from: `keys[0]` or a file path.
    pub origin: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("fingerprint", &self.fingerprint)
            .field("origin", &self.origin)
            .finish()
    }
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as `cosign generate-key-pair` writes it.
    pub fn from_pem(pem: &str, origin: String) -> Result<PublicKey, KeyError> {
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.trim().as_bytes()).map_err(|e| {
            KeyError::NotPem {
                origin: origin.clone(),
                reason: e.to_string(),
            }
        })?;
        if block.label != "PUBLIC KEY" {
            return Err(KeyError::WrongLabel {
                origin,
                label: block.label,
            });
        }
        PublicKey::from_spki_der(&block.contents, origin)
    }

    /// Reads a PEM key file (a mounted Secret's `cosign.pub`).
    pub fn from_file(path: &Path) -> Result<PublicKey, KeyError> {
        let origin = path.display().to_string();
        let pem = std::fs::read_to_string(path).map_err(|e| KeyError::Read {
            path: origin.clone(),
            reason: e.to_string(),
        })?;
        PublicKey::from_pem(&pem, origin)
    }

    fn from_spki_der(der: &[u8], origin: String) -> Result<PublicKey, KeyError> {
        use x509_parser::prelude::FromDer;
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der).map_err(|e| {
            KeyError::NotSpki {
                origin: origin.clone(),
                reason: e.to_string(),
            }
        })?;
        let algorithm_oid = spki.algorithm.algorithm.to_id_string();
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|oid| oid.to_id_string());
        // cosign hashes with SHA-256 for every key type it verifies (sigstore LoadVerifier).
        let algorithm: &'static dyn VerificationAlgorithm =
            match (algorithm_oid.as_str(), curve.as_deref()) {
                ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => {
                    &signature::ECDSA_P256_SHA256_ASN1
                }
                ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => &signature::ECDSA_P384_SHA256_ASN1,
                ("1.3.101.112", _) => &signature::ED25519,
                ("1.2.840.10045.2.1", other) => {
                    return Err(KeyError::Curve {
                        origin,
                        curve: other.unwrap_or("(none)").to_owned(),
                    });
                }
                (other, _) => {
                    return Err(KeyError::Algorithm {
                        origin,
                        algorithm: other.to_owned(),
                    });
                }
            };
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        Ok(PublicKey {
            algorithm,
            key: spki.subject_public_key.data.to_vec(),
            fingerprint: format!("sha256:{}", hex(digest.as_ref())),
            origin,
        })
    }

    /// Whether `signature` (ASN.1 DER for ECDSA, as cosign stores it) signs `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(self.algorithm, &self.key)
            .verify(message, signature)
            .is_ok()
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
