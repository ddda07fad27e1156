//! A Notation signer made by the test, after Notation's wire format (Notary Project JWS
//! envelope), never through portier's own code: [`NotationCa`], a root CA issuing a
//! code-signing leaf per envelope; `x5c` is [leaf, root], as `notation sign` writes it.

use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use serde_json::{Value, json};

use super::signing::{EcKey, Validity};

pub const NOTATION_ARTIFACT: &str = "application/vnd.cncf.notary.signature";
pub const JWS: &str = "application/jose+json";
pub const COSE: &str = "application/cose";

/// A Notation CA: a root and a code-signing leaf.
pub struct NotationCa {
    pub root_pem: String,
    pub root_der: Vec<u8>,
    root: Issuer<'static, KeyPair>,
}

/// How a Notation envelope should be made, and how it may be wrong.
pub struct EnvelopeSpec {
    pub subject: Vec<(DnType, &'static str)>,
    pub digest_signed: Option<String>,
    pub expiry: Option<String>,
    pub extra_critical: Option<&'static str>,
    pub leaf_validity: Option<Validity>,
    /// The signing time stated (RFC 3339); by default now, or the leaf's first day.
    pub signing_time: Option<&'static str>,
    /// Signed under notary.x509.signingAuthority (the signing time is then authentic).
    pub signing_authority: bool,
    /// A COSE envelope (`notation sign --signature-format cose`) rather than JWS.
    pub cose: bool,
}

impl EnvelopeSpec {
    /// The media type of the envelope's layer.
    pub fn media_type(&self) -> &'static str {
        if self.cose { COSE } else { JWS }
    }
}

impl Default for EnvelopeSpec {
    fn default() -> Self {
        EnvelopeSpec {
            subject: vec![
                (DnType::CountryName, "US"),
                (DnType::OrganizationName, "Acme"),
                (DnType::CommonName, "release"),
            ],
            digest_signed: None,
            expiry: None,
            extra_critical: None,
            leaf_validity: None,
            signing_time: None,
            signing_authority: false,
            cose: false,
        }
    }
}

impl NotationCa {
    pub fn new(name: &str) -> NotationCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CountryName, "US");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Acme");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2099, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        NotationCa {
            root_pem: cert.pem(),
            root_der: cert.der().to_vec(),
            root: Issuer::new(params, key),
        }
    }

    /// A Notation JWS envelope (notary.x509, ES256) for `digest` of a manifest of `size`
    /// bytes, signed by a new leaf of this CA; `x5c` is [leaf, root].
    pub fn envelope(&self, digest: &str, size: usize, spec: &EnvelopeSpec) -> Vec<u8> {
        let key = EcKey::new();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        for (attribute, value) in &spec.subject {
            params.distinguished_name.push(attribute.clone(), *value);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        let (from, to) = spec.leaf_validity.unwrap_or(((2020, 1, 1), (2099, 1, 1)));
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
        let leaf = params.signed_by(&key.rcgen(), &self.root).unwrap();
        let signing_time = if let Some(time) = spec.signing_time {
            time.to_owned()
        } else if spec.leaf_validity.is_some() {
            format!("{:04}-{:02}-{:02}T12:00:00Z", from.0, from.1, from.2)
        } else {
            humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
        };
        let mut crit = vec!["io.cncf.notary.signingScheme"];
        let mut protected = json!({
            "alg": "ES256",
            "cty": "application/vnd.cncf.notary.payload.v1+json",
        });
        if spec.signing_authority {
            // A signing service's signature: the time it vouches for, critical.
            protected["io.cncf.notary.signingScheme"] = "notary.x509.signingAuthority".into();
            protected["io.cncf.notary.authenticSigningTime"] = signing_time.into();
            crit.push("io.cncf.notary.authenticSigningTime");
        } else {
            protected["io.cncf.notary.signingScheme"] = "notary.x509".into();
            protected["io.cncf.notary.signingTime"] = signing_time.into();
        }
        if let Some(expiry) = &spec.expiry {
            crit.push("io.cncf.notary.expiry");
            protected["io.cncf.notary.expiry"] = expiry.clone().into();
        }
        if let Some(extra) = spec.extra_critical {
            crit.push(extra);
            protected[extra] = "required".into();
        }
        protected["crit"] = json!(crit);
        let payload = json!({"targetArtifact": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": spec.digest_signed.as_deref().unwrap_or(digest),
            "size": size
        }});
        if spec.cose {
            return cose(&protected, &payload, &[leaf.der(), &self.root_der], &key);
        }
        let protected = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&protected).unwrap());
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
        let signature = key.sign_fixed(format!("{protected}.{payload}").as_bytes());
        serde_json::to_vec(&json!({
            "payload": payload,
            "protected": protected,
            "header": {
                "x5c": [STANDARD.encode(leaf.der()), STANDARD.encode(&self.root_der)],
                "io.cncf.notary.signingAgent": "portier-test/1.0"
            },
            "signature": URL_SAFE_NO_PAD.encode(signature)
        }))
        .unwrap()
    }
}

/// The COSE_Sign1 form of the JWS headers `protected` (ES256): the Notary Project's headers as
/// text labels, its times as CBOR epoch dates (tag 1), `x5chain` (label 33) unprotected.
fn cose(protected: &Value, payload: &Value, x5c: &[&[u8]], key: &EcKey) -> Vec<u8> {
    use coset::cbor::value::Value as Cbor;
    use coset::{
        CoseSign1Builder, HeaderBuilder, RegisteredLabelWithPrivate, TaggedCborSerializable, iana,
    };
    let mut header = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .content_type(protected["cty"].as_str().unwrap().to_owned());
    for name in protected["crit"].as_array().unwrap() {
        let name = name.as_str().unwrap().to_owned();
        header = header.add_critical_label(RegisteredLabelWithPrivate::Text(name));
    }
    for (name, value) in protected.as_object().unwrap() {
        if ["alg", "cty", "crit"].contains(&name.as_str()) {
            continue;
        }
        let text = value.as_str().unwrap();
        let value = if name.ends_with("Time") || name.ends_with("expiry") {
            let at = humantime::parse_rfc3339(text).unwrap();
            let seconds = at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            Cbor::Tag(1, Box::new(Cbor::Integer(seconds.into())))
        } else {
            Cbor::Text(text.to_owned())
        };
        header = header.text_value(name.clone(), value);
    }
    let chain = Cbor::Array(x5c.iter().map(|der| Cbor::Bytes(der.to_vec())).collect());
    CoseSign1Builder::new()
        .protected(header.build())
        .unprotected(HeaderBuilder::new().value(33, chain).build())
        .payload(serde_json::to_vec(payload).unwrap())
        .create_signature(b"", |data| key.sign_fixed(data))
        .build()
        .to_tagged_vec()
        .unwrap()
}
