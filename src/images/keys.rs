//! Public keys that cosign signatures are checked against: read from PEM (inline or a file),
//! verified with ring (already the process's TLS crypto provider). Also the keys of
//! certificates (Fulcio, Notation) and of transparency and CT logs, which come as
//! SubjectPublicKeyInfo too.

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
        "{origin}: unsupported key algorithm {algorithm}; supported: ECDSA P-256 (cosign's default), ECDSA P-384, Ed25519, RSA 2048-4096"
    )]
    Algorithm { origin: String, algorithm: String },
    #[error("{origin}: RSA key of {bits} bits; supported: 2048 to 4096")]
    RsaSize { origin: String, bits: usize },
}

/// The type of a key, for formats that name the signature algorithm (Notation's `alg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    P256,
    P384,
    Ed25519,
    Rsa,
}

/// A public key cosign signatures are checked against.
pub struct PublicKey {
    /// The algorithms a signature by this key may use, tried in order: one for ECDSA P-256
    /// and Ed25519; for P-384 SHA-384 (what Sigstore bundles and Notation use) and SHA-256
    /// (what `cosign sign --key` has always hashed with); for RSA PKCS#1 v1.5 and PSS.
    algorithms: &'static [&'static dyn VerificationAlgorithm],
    pub kind: KeyKind,
    /// The key as ring reads it (an EC point, an Ed25519 key, a PKCS#1 RSAPublicKey).
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

    /// Reads a DER SubjectPublicKeyInfo (a certificate's key, a log's key in a trusted root).
    pub fn from_spki_der(der: &[u8], origin: String) -> Result<PublicKey, KeyError> {
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
        // cosign hashes with SHA-256 for every key type it verifies (sigstore LoadVerifier);
        // sigstore-go and Notation hash P-384 with SHA-384 and use RSA-PSS too.
        const P256: &[&dyn VerificationAlgorithm] = &[&signature::ECDSA_P256_SHA256_ASN1];
        const P384: &[&dyn VerificationAlgorithm] = &[
            &signature::ECDSA_P384_SHA384_ASN1,
            &signature::ECDSA_P384_SHA256_ASN1,
        ];
        const ED25519: &[&dyn VerificationAlgorithm] = &[&signature::ED25519];
        const RSA: &[&dyn VerificationAlgorithm] = &[
            &signature::RSA_PKCS1_2048_8192_SHA256,
            &signature::RSA_PSS_2048_8192_SHA256,
        ];
        let (kind, algorithms): (KeyKind, &'static [&'static dyn VerificationAlgorithm]) =
            match (algorithm_oid.as_str(), curve.as_deref()) {
                ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => (KeyKind::P256, P256),
                ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => (KeyKind::P384, P384),
                ("1.3.101.112", _) => (KeyKind::Ed25519, ED25519),
                ("1.2.840.113549.1.1.1", _) => {
                    let bits = rsa_modulus_bits(&spki.subject_public_key.data);
                    if !(2048..=4096).contains(&bits) {
                        return Err(KeyError::RsaSize { origin, bits });
                    }
                    (KeyKind::Rsa, RSA)
                }
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
            algorithms,
            kind,
            key: spki.subject_public_key.data.to_vec(),
            fingerprint: format!("sha256:{}", hex(digest.as_ref())),
            origin,
        })
    }

    /// Whether `signature` (ASN.1 DER for ECDSA, as cosign stores it) signs `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.algorithms.iter().any(|algorithm| {
            UnparsedPublicKey::new(*algorithm, &self.key)
                .verify(message, signature)
                .is_ok()
        })
    }

    /// The size of an RSA key's modulus in bits; `None` for other key types.
    pub fn rsa_bits(&self) -> Option<usize> {
        (self.kind == KeyKind::Rsa).then(|| rsa_modulus_bits(&self.key))
    }

    /// Whether `signature` signs `message` with exactly `algorithm`, which the caller picked
    /// for this key's [`KeyKind`] (Notation's `alg` header names one).
    pub fn verifies_with(
        &self,
        algorithm: &'static dyn VerificationAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        UnparsedPublicKey::new(algorithm, &self.key)
            .verify(message, signature)
            .is_ok()
    }
}

/// The size in bits of an RSA key's modulus, from its PKCS#1 RSAPublicKey; 0 when it does not
/// parse (refused as too small).
fn rsa_modulus_bits(pkcs1: &[u8]) -> usize {
    use x509_parser::der_parser::ber::BerObjectContent;
    let Ok((_, seq)) = x509_parser::der_parser::parse_der(pkcs1) else {
        return 0;
    };
    let Ok(items) = seq.as_sequence() else {
        return 0;
    };
    let Some(BerObjectContent::Integer(modulus)) = items.first().map(|i| &i.content) else {
        return 0;
    };
    let trimmed: &[u8] = {
        let start = modulus
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(modulus.len());
        &modulus[start..]
    };
    match trimmed.first() {
        Some(first) => (trimmed.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    // Made with `openssl genrsa 2048`, `openssl dgst -sha256 -sign` (PKCS#1 v1.5) and
    // `-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32` (PSS), as cosign and Notation
    // RSA keys sign.
    const RSA_2048: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwVlBj292P1j5iy4HJcFx
5L07Bt2uA+s2iZiuQ81cGtC2xTDq13JEyF40lMNllfZ8sBRHQCjmL/JIAdaIveaY
SC8hzo4BO9dvpotR2+AaXuyCz8fIuvYpWdsMegmwuePLMtQbjtjetQNBuw2dEGBq
dNejlO0+2UC+BusXusetPNfCaUWDPkRKdDHIEetm3Jusyrc2bvjTuJsSRFYqbcRt
qv+oZ9vAr7Ng4YatUjoNMx1vhK5uuGtvX4OFAXtuuS/MrRjtAnjWs1S8wf3bDTvo
EwpVBxjtL0Dgk6cwgA2a1UZCAuSZlydeg68bsP/q4Xj3obpXDXL7XMaRI2RBpA3U
4QIDAQAB
-----END PUBLIC KEY-----
";
    const RSA_1024: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC+56TTOenQMLCeVs5gnjsMlY1D
FqCL6noTsajXnz++ToJPCAMexPeye2qBgsXtxmqtJImsBQj+vJKlAKvWnEaI/hUJ
UKibvIzxdfItCFQn4KbB9LYltCngOOCx5ADKaopsjYqbGcz8bcyWENMcLO/IK8jT
XBr+kSa2Oqoqc2CYFwIDAQAB
-----END PUBLIC KEY-----
";
    const MESSAGE: &[u8] = b"portier rsa test";
    const PKCS1: &str = "RUGaj+IXXIxc+zltRUjKLkf+sEwIHwbNGnZENdKzNCatTcBkDfJlWQcqiPrfqH3vLz/DMC2EsFs9aVcy9DC4iPiocb6B/4F8YaQhtKr2GUVqTmcxBG5GYt/O6d+kGUG8S9CCoWaoVsLsOWV9T1wDA5ho749HYlgAt++lGjUsdzOIIGb0qSb/8xvQlzymayRfen/6IwElz+JDBllknNOK1eQ3YzQYtyognnGDgWf0yOAMhtKb/Rsq3CUbub0P4AUe9D1hdyHa+w/jhJpqEG0wtkqKrsziAz+ubB7e77Vi1lK/jrbXCrw0IWd58ohHqIdtDy4BgFexJXEQACLkiwRJng==";
    const PSS: &str = "vWhezKBfq2YwhwLvyYPVPvE+RzIqVyEr7CQ16Lz7Lm1DcL55kif1Rtbdroye8pkRcgdGqBX3FhTu2G3zgCLoahA/Lrdjm773+bZSaPQ/QPiObtDbfMOAXARKqi1r0+afvLA8YbYL9ZUGrbcX/IQlW0bz+COhmYuJAJuhL+yGnvbX5heTOjTw2Y8B08Q7bvA9w0A75u2KYct40Y1nUOr/f1km4f8E+w6GpUfr8ngjOAiQJkrrqV4tY+9lOOwNQ1jK7dR8NwgS1OhPYgGQsnCBMabAjgPD+tmfRrhHiybRVT+doK0WRkCP+XU24pthgnwwvAZH4J88RQZjfbTLzbT4DQ==";

    #[test]
    fn rsa_keys_verify_pkcs1_and_pss_signatures() {
        let key = PublicKey::from_pem(RSA_2048, "rsa.pub".into()).unwrap();
        assert_eq!(key.kind, KeyKind::Rsa);
        let decode = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).unwrap();
        assert!(key.verifies(MESSAGE, &decode(PKCS1)));
        assert!(key.verifies(MESSAGE, &decode(PSS)));
        assert!(!key.verifies(b"another message", &decode(PKCS1)));
        assert_eq!(rsa_modulus_bits(&key.key), 2048);
    }

    // The same, with `openssl genrsa 4096`: the largest size accepted.
    const RSA_4096: &str = "-----BEGIN PUBLIC KEY-----
MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAuBwtRedZ30PthzMgu0SS
4GS0NQO2sxBL/k4RIiMI5Ml+e0nG6JelYPei9mPAUvwtf/0riAs5Wg9kpS2oMe8w
1+qTfY00IgPzZ9UwIha8yK1iKGp0hyyy7ViF65tGrmXd1b/+nXWqqD/U84nMk09a
tDMLfJzkHua+jUKC97307f9rw6lTUZxdWB5lpG+Zpt1/5h/JtzO3TENQqOEiqJq5
sIa5XdpR+z57XoDCETAyarEQgUSeVIUnqfK/la6XQZLZ+vz/t/5KZa3+16ZfBtm2
bTAAPBJjX5+rcosemK3brEK0voTw4CoP7zdaZ1I7I+J+tbRu2MI9womrgb/UvSkj
f88PI1eZkb7dvyAdp2nZvotkrnkw/BvyNaqpBJE4NnNjO1aZfFDjCMgK0SxqpSZP
geZfqrrHHw8kCWOiYCJANFcwcShBE9OKgZFRwIJvXfTzLuK4dRUTWlau8h/YfG6K
LXfBOdBRkHX8NHPgxaFyuQ2Br9C/1hLVuWQ1rPyZMGZ9Ya6MFXVg/eR5AItOX+Fq
nZGdGX9/8v2+oIIz3sc2zUwqq5IByhGMAZ7ndC+rhaiSFlkQ1IF+TSdHdeU10+6/
jc/PhFn7Axj/EmLLAI4ggI7ZmYEZCEgl3ROZkcfvspDr7TXIG+gkMdrBmB/S4S6A
Xx2OJkoihnLA3/L/dmNXYvsCAwEAAQ==
-----END PUBLIC KEY-----
";
    const PKCS1_4096: &str = "SengdAFx2smPHiidAfPI43UHPFQU+a9DpqjsoppIzShXo7iuXpAgYUG6ZI6/wgu+5kkZDSEFLGRuIhbUMdlphAM5gMnWU5n/AcLRWo20aX8NYEhFk590ZwhW/c4If23hpUARmaIFiz0tEayO8hDDO4g5Y1ttPBHQqyyMPeoK4b3JeQKTMCrunTN6PEN+YncIEQAIJ5RlHOicd1Cp8RlYeILlzv1+7R41FbJD27ZuObFmdwnwxAjfCFN71ezRK9hhYVer/Zt4nicmjMQoc7m/GvSaZnH2+VjWejp8YBFihnyH2SZnHRhaX536ZRAXkd+Lhv6MIuXWHjdbFfO1gw5ZhfHyrYCCkNHlThHL6iFBgiuLblH2gHwO7boMGA53iKSxgmFRfHTURoLuHDXvnzenovSKVOkMzJgFS/bKrot5mtoOg/+k3Y+aqSSSz+Ry7d9lVIomQRozAs5VaZJoFPnZPcFIGJrToaXCvhWx9GyOIURYNyDON7AftHMYzl/buRo3CB5B3o5QwowSeo9euqXOj+gwLGJBJ/kIuChnVousT/zSOerhs8MSVc3sWWJFl0QNYWEkefbr7FapN+kODwYt99TisX3fJeQYHnpodsQ2znJPo/x9ijpQ9yiYQctlHDlua8PqA9DgDUFGKfRK75PMCxD7lw9+z/tqSxjLwAby0ns=";
    const PSS_4096: &str = "oZg4qc9wrkDGlhcihrirj5HKKInYS7QTudNBofoXvnHXTlIOp4xbb6iYs6Iw4zRTOgqYJM4gT6Ax21VArD4WbJmui6o/wIf/W93foFsfKB+ZHz2R6BcsNCKWK4+8OmLsYRyDX8MSexPrEjhgpm3aV1S3KQfFJTCsKm/7KQUmvTLz9EDPiPJZOGpzZjX4hlL3aNQyFJLJPcNa1FztXhMojFwLUMYPNQnTOanQaYtEmHRKH+7Ajq2gbUAI8ZZqZOBS9vme4ktB0YfG49klw7KTkHu4fPHLsEiylTBzJclAK4jI7h9Wvny36Fjio64Y1w4LNQMBbV30wcYrttN9JHFbgLwMKzJbfYhwulkX1gT6D/E+kvFaGACEi0Sljx5u54EIIThjdbak/SthO3GEneBCMPVmKwxwJMoDjBC/F6ugKf0jAD4oecGbN03fW4gH8y4nR6ZCH9lL4fJDoPQoqZ5v8aPOZf0NJvt78fwj8vh2Gu+IklRgBOEf9PI/IHlg0S+2abS8uqYn7QDPLMUEFR6fGCZEW6ow1TbtuZCrPtuuU88Zd4+2v6tpXCLXcG4Z4uxBPFrThY2tBsOPoHSgG2NTYHNSZ0xjAExoO3oWmyU4rv4tBSex9MsACQDUKtD6SaM3MdAcSCa+Q+Zmsjv1kxR06R46C0x3UKkaRMdYMZcIPeQ=";

    #[test]
    fn rsa_4096_keys_verify_pkcs1_and_pss_signatures() {
        let key = PublicKey::from_pem(RSA_4096, "rsa4096.pub".into()).unwrap();
        assert_eq!(key.rsa_bits(), Some(4096));
        let decode = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).unwrap();
        assert!(key.verifies(MESSAGE, &decode(PKCS1_4096)));
        assert!(key.verifies(MESSAGE, &decode(PSS_4096)));
        assert!(
            !key.verifies(MESSAGE, &decode(PKCS1)),
            "another key's signature"
        );
    }

    /// The SubjectPublicKeyInfo PEM of a key made by rcgen.
    fn pem_of(key: &rcgen::KeyPair) -> String {
        key.public_key_pem()
    }

    #[test]
    fn p384_and_ed25519_keys_verify_their_signatures() {
        use ring::signature::{
            ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
        };
        let rng = ring::rand::SystemRandom::new();
        // P-384, hashed with SHA-384 (sigstore-go, Notation) or SHA-256 (cosign).
        let generated = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let key = PublicKey::from_pem(&pem_of(&generated), "p384.pub".into()).unwrap();
        assert_eq!(key.kind, KeyKind::P384);
        let signer = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P384_SHA384_ASN1_SIGNING,
            &generated.serialize_der(),
            &rng,
        )
        .unwrap();
        let signature = signer.sign(&rng, MESSAGE).unwrap();
        assert!(key.verifies(MESSAGE, signature.as_ref()));
        assert!(!key.verifies(b"another message", signature.as_ref()));
        // Ed25519.
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let signer = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let generated = rcgen::KeyPair::try_from(pkcs8.as_ref()).unwrap();
        let key = PublicKey::from_pem(&pem_of(&generated), "ed25519.pub".into()).unwrap();
        assert_eq!(key.kind, KeyKind::Ed25519);
        assert_eq!(key.key, signer.public_key().as_ref());
        let signature = signer.sign(MESSAGE);
        assert!(key.verifies(MESSAGE, signature.as_ref()));
        assert!(!key.verifies(b"another message", signature.as_ref()));
    }

    #[test]
    fn rsa_keys_below_2048_bits_are_refused() {
        let err = PublicKey::from_pem(RSA_1024, "weak.pub".into()).unwrap_err();
        assert_eq!(
            err,
            KeyError::RsaSize {
                origin: "weak.pub".into(),
                bits: 1024
            }
        );
        assert_eq!(rsa_modulus_bits(b"garbage"), 0);
    }
}
