//! Notation rules the genuine envelopes do not exercise (the signingAuthority scheme, expiry,
//! chains with a CA, the certificate requirements), on envelopes made here with rcgen and
//! ring as notation writes them: a JWS JSON serialization, ES256, `x5c` from the signing
//! certificate to the root.

use super::*;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

const IMAGE: &[u8] =
    br#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2,"layers":[]}"#;

fn image() -> (String, Manifest<'static>) {
    let digest = format!(
        "sha256:{}",
        crate::images::tlog::hex(ring::digest::digest(&ring::digest::SHA256, IMAGE).as_ref())
    );
    let leaked: &'static str = Box::leak(digest.clone().into_boxed_str());
    (digest, Manifest::of(leaked, IMAGE))
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::StateOrProvinceName, "WA");
    dn.push(DnType::OrganizationName, "Acme");
    dn.push(DnType::CommonName, cn);
    dn
}

/// A root CA (pem, der, issuer).
fn root() -> (String, Vec<u8>, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = dn("Acme Root");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), cert.der().to_vec(), Issuer::new(params, key))
}

struct Leaf {
    key: KeyPair,
    der: Vec<u8>,
}

fn leaf(issuer: &Issuer<'static, KeyPair>, edit: impl FnOnce(&mut CertificateParams)) -> Leaf {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = dn("release");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    edit(&mut params);
    let der = params.signed_by(&key, issuer).unwrap().der().to_vec();
    Leaf { key, der }
}

/// An ES256 JWS over `digest` with the protected header `protected` (crit written from
/// `crit`), `x5c` as given.
fn envelope(
    signer: &KeyPair,
    x5c: &[&[u8]],
    protected: serde_json::Value,
    crit: &[&str],
    manifest: Manifest<'_>,
) -> Vec<u8> {
    let mut protected = protected;
    protected["alg"] = "ES256".into();
    protected["cty"] = PAYLOAD_CONTENT_TYPE.into();
    protected["crit"] = serde_json::json!(crit);
    let payload = serde_json::json!({"targetArtifact": {
        "mediaType": manifest.media_type.unwrap_or_default(),
        "digest": manifest.digest,
        "size": manifest.size,
    }});
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    let (protected, payload) = (b64(&protected), b64(&payload));
    let rng = ring::rand::SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &signer.serialize_der(),
        &rng,
    )
    .unwrap();
    let signature = key
        .sign(&rng, format!("{protected}.{payload}").as_bytes())
        .unwrap();
    serde_json::to_vec(&serde_json::json!({
        "payload": payload,
        "protected": protected,
        "header": {"x5c": x5c
            .iter()
            .map(|der| base64::engine::general_purpose::STANDARD.encode(der))
            .collect::<Vec<_>>()},
        "signature": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature),
    }))
    .unwrap()
}

fn x509_header() -> serde_json::Value {
    serde_json::json!({
        SIGNING_SCHEME: X509,
        SIGNING_TIME: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn signing_authority_signatures_verify_at_their_authentic_time_against_their_store() {
    let (root_pem, root_der, issuer) = root();
    let signer = leaf(&issuer, |p| {
        p.not_before = rcgen::date_time_ymd(2024, 1, 1);
        p.not_after = rcgen::date_time_ymd(2024, 12, 31);
    });
    let (_, manifest) = image();
    let signed_at = |time: &str| {
        envelope(
            &signer.key,
            &[&signer.der, &root_der],
            serde_json::json!({SIGNING_SCHEME: SIGNING_AUTHORITY, AUTHENTIC_SIGNING_TIME: time}),
            &[SIGNING_SCHEME, AUTHENTIC_SIGNING_TIME],
            manifest,
        )
    };
    // Signed while the certificate was valid: it verifies now, after the certificate expired.
    let good = signed_at("2024-06-01T12:00:00Z");
    let verified = verify(
        JWS_ENVELOPE,
        &good,
        &authority_trust(&root_pem),
        manifest,
        now(),
    );
    assert_eq!(verified.as_deref(), Ok("C=US, ST=WA, O=Acme, CN=release"));
    // Under its own scheme's store only.
    assert_eq!(
        verify(JWS_ENVELOPE, &good, &trust(&root_pem, "*"), manifest, now()),
        Err(NotationError::Untrusted(
            "signingAuthorityStore (type signingAuthority)"
        ))
    );
    let late = signed_at("2025-06-01T12:00:00Z");
    let err = verify(
        JWS_ENVELOPE,
        &late,
        &authority_trust(&root_pem),
        manifest,
        now(),
    );
    assert!(
        matches!(&err, Err(NotationError::NotValidAtSigning(at, _)) if at == "2025-06-01T12:00:00Z"),
        "{err:?}"
    );
    // The authentic signing time must be critical.
    let uncritical = envelope(
        &signer.key,
        &[&signer.der, &root_der],
        serde_json::json!({SIGNING_SCHEME: SIGNING_AUTHORITY, AUTHENTIC_SIGNING_TIME: "2024-06-01T12:00:00Z"}),
        &[SIGNING_SCHEME],
        manifest,
    );
    let err = verify(
        JWS_ENVELOPE,
        &uncritical,
        &authority_trust(&root_pem),
        manifest,
        now(),
    );
    assert!(
        matches!(&err, Err(NotationError::Critical(why)) if why.contains("authenticSigningTime must be marked critical")),
        "{err:?}"
    );
}

#[test]
fn the_expiry_ends_a_signature_and_must_follow_its_signing_time() {
    let (root_pem, root_der, issuer) = root();
    let signer = leaf(&issuer, |_| {});
    let (_, manifest) = image();
    let trust = trust(&root_pem, "x509.subject: C=US, ST=WA, O=Acme");
    let expiring = |expiry: &str| {
        let mut header = x509_header();
        header[EXPIRY] = expiry.into();
        envelope(
            &signer.key,
            &[&signer.der, &root_der],
            header,
            &[SIGNING_SCHEME, EXPIRY],
            manifest,
        )
    };
    let at = now();
    let future = expiring("2099-01-01T00:00:00Z");
    assert!(verify(JWS_ENVELOPE, &future, &trust, manifest, at).is_ok());
    // At the expiry itself it has expired (notation-go: !now.Before(expiry)).
    let expiry = parse_rfc3339("2099-01-01T00:00:00Z").unwrap();
    assert_eq!(
        verify(JWS_ENVELOPE, &future, &trust, manifest, expiry),
        Err(NotationError::Expired("2099-01-01T00:00:00Z".into()))
    );
    let past = expiring("2021-01-01T00:00:00Z");
    let err = verify(JWS_ENVELOPE, &past, &trust, manifest, at).unwrap_err();
    assert!(
        err.to_string().contains("not after its signing time"),
        "{err}"
    );
}

#[test]
fn the_chain_must_be_complete_and_meet_the_certificate_requirements() {
    let (root_pem, root_der, issuer) = root();
    let (_, manifest) = image();
    let trust = trust(&root_pem, "*");
    let judge = |signer: &Leaf, x5c: &[&[u8]]| {
        let bytes = envelope(&signer.key, x5c, x509_header(), &[SIGNING_SCHEME], manifest);
        verify(JWS_ENVELOPE, &bytes, &trust, manifest, now())
    };
    let good = leaf(&issuer, |_| {});
    assert!(judge(&good, &[&good.der, &root_der]).is_ok());
    let chain_error = |verdict: Result<String, NotationError>, says: &str| match verdict {
        Err(NotationError::Chain(why)) => assert!(why.contains(says), "{says}: {why}"),
        other => panic!("{says}: {other:?}"),
    };
    // Without its root the chain is incomplete, though the root is trusted.
    chain_error(judge(&good, &[&good.der]), "not self-signed");
    let server = leaf(&issuer, |p| {
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::CodeSigning,
            ExtendedKeyUsagePurpose::ServerAuth,
        ];
    });
    chain_error(judge(&server, &[&server.der, &root_der]), "serverAuth");
    let encipher = leaf(&issuer, |p| {
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
    });
    chain_error(
        judge(&encipher, &[&encipher.der, &root_der]),
        "keyEncipherment",
    );
    let no_signing = leaf(&issuer, |p| {
        p.key_usages = vec![KeyUsagePurpose::ContentCommitment];
    });
    chain_error(
        judge(&no_signing, &[&no_signing.der, &root_der]),
        "lacks digitalSignature",
    );
    // No extended key usage at all is allowed (it is optional in the specification).
    let plain = leaf(&issuer, |p| p.extended_key_usages.clear());
    assert!(judge(&plain, &[&plain.der, &root_der]).is_ok());
    // Through an intermediate CA; trusting the intermediate alone suffices too, as in
    // notation-go (a certificate of the chain is in the store).
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = dn("Acme Intermediate");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let intermediate = params.signed_by(&key, &issuer).unwrap();
    let intermediate_issuer = Issuer::new(params, key);
    let deep = leaf(&intermediate_issuer, |_| {});
    assert!(judge(&deep, &[&deep.der, intermediate.der(), &root_der]).is_ok());
    let intermediate_only = super::trust(&intermediate.pem(), "*");
    let bytes = envelope(
        &deep.key,
        &[&deep.der, intermediate.der(), &root_der],
        x509_header(),
        &[SIGNING_SCHEME],
        manifest,
    );
    assert!(verify(JWS_ENVELOPE, &bytes, &intermediate_only, manifest, now()).is_ok());
    // Out of order, or with a stranger in it, the chain is refused.
    chain_error(
        judge(&deep, &[&deep.der, &root_der, intermediate.der()]),
        "not a self-signed root",
    );
    chain_error(
        judge(&deep, &[&deep.der, &good.der, &root_der]),
        "not issued by",
    );
}

/// A COSE_Sign1 envelope as notation writes one: ES256 over the Sig_structure, Notary Project
/// headers as text labels with epoch-date times, `x5chain` unprotected.
fn cose_envelope(
    signer: &KeyPair,
    x5c: &[&[u8]],
    headers: &[(&str, coset::cbor::value::Value)],
    crit: &[&str],
    manifest: Manifest<'_>,
) -> Vec<u8> {
    use coset::cbor::value::Value;
    use coset::{
        CoseSign1Builder, HeaderBuilder, RegisteredLabelWithPrivate, TaggedCborSerializable,
    };
    let mut protected = HeaderBuilder::new()
        .algorithm(coset::iana::Algorithm::ES256)
        .content_type(PAYLOAD_CONTENT_TYPE.into());
    for name in crit {
        protected = protected.add_critical_label(RegisteredLabelWithPrivate::Text((*name).into()));
    }
    for (name, value) in headers {
        protected = protected.text_value((*name).into(), value.clone());
    }
    let chain = Value::Array(x5c.iter().map(|der| Value::Bytes(der.to_vec())).collect());
    let unprotected = HeaderBuilder::new().value(33, chain).build();
    let payload = serde_json::to_vec(&serde_json::json!({"targetArtifact": {
        "mediaType": manifest.media_type.unwrap_or_default(),
        "digest": manifest.digest,
        "size": manifest.size,
    }}))
    .unwrap();
    let rng = ring::rand::SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &signer.serialize_der(),
        &rng,
    )
    .unwrap();
    CoseSign1Builder::new()
        .protected(protected.build())
        .unprotected(unprotected)
        .payload(payload)
        .create_signature(b"", |data| key.sign(&rng, data).unwrap().as_ref().to_vec())
        .build()
        .to_tagged_vec()
        .unwrap()
}

fn epoch(seconds: i64) -> coset::cbor::value::Value {
    coset::cbor::value::Value::Tag(
        1,
        Box::new(coset::cbor::value::Value::Integer(seconds.into())),
    )
}

#[test]
fn cose_envelopes_follow_the_same_rules() {
    use coset::cbor::value::Value;
    let (root_pem, root_der, issuer) = root();
    let signer = leaf(&issuer, |_| {});
    let (_, manifest) = image();
    let chain: [&[u8]; 2] = [&signer.der, &root_der];
    let x509 = |extra: &[(&str, Value)], crit: &[&str]| {
        let mut headers = vec![
            (SIGNING_SCHEME, Value::Text(X509.into())),
            (SIGNING_TIME, epoch(now() - 60)),
        ];
        headers.extend(extra.iter().cloned());
        cose_envelope(&signer.key, &chain, &headers, crit, manifest)
    };
    let trust = trust(&root_pem, "x509.subject: C=US, ST=WA, O=Acme, CN=release");
    let good = x509(&[], &[SIGNING_SCHEME]);
    assert_eq!(
        verify(COSE_ENVELOPE, &good, &trust, manifest, now()).as_deref(),
        Ok("C=US, ST=WA, O=Acme, CN=release")
    );
    let unknown = x509(
        &[("io.example.policy", Value::Text("strict".into()))],
        &[SIGNING_SCHEME, "io.example.policy"],
    );
    assert_eq!(
        verify(COSE_ENVELOPE, &unknown, &trust, manifest, now()),
        Err(NotationError::UnknownCritical("io.example.policy".into()))
    );
    let expired = x509(&[(EXPIRY, epoch(now() - 30))], &[SIGNING_SCHEME, EXPIRY]);
    assert!(matches!(
        verify(COSE_ENVELOPE, &expired, &trust, manifest, now()),
        Err(NotationError::Expired(_))
    ));
    // Times are CBOR epoch dates (tag 1), not bare numbers.
    let bare = cose_envelope(
        &signer.key,
        &chain,
        &[
            (SIGNING_SCHEME, Value::Text(X509.into())),
            (SIGNING_TIME, Value::Integer(now().into())),
        ],
        &[SIGNING_SCHEME],
        manifest,
    );
    let err = verify(COSE_ENVELOPE, &bare, &trust, manifest, now()).unwrap_err();
    assert!(matches!(err, NotationError::Envelope(_)), "{err}");
    // The signingAuthority scheme, against its own store.
    let authority = cose_envelope(
        &signer.key,
        &chain,
        &[
            (SIGNING_SCHEME, Value::Text(SIGNING_AUTHORITY.into())),
            (AUTHENTIC_SIGNING_TIME, epoch(now() - 60)),
        ],
        &[SIGNING_SCHEME, AUTHENTIC_SIGNING_TIME],
        manifest,
    );
    assert!(
        verify(
            COSE_ENVELOPE,
            &authority,
            &authority_trust(&root_pem),
            manifest,
            now()
        )
        .is_ok()
    );
    assert_eq!(
        verify(COSE_ENVELOPE, &authority, &trust, manifest, now()),
        Err(NotationError::Untrusted(
            "signingAuthorityStore (type signingAuthority)"
        ))
    );
}
