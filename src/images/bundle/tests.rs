use super::*;

/// A genuine key-signed Sigstore bundle (v0.3, message signature, Rekor entry) over a
/// sigstore-conformance input, with its public key: sigstore/sigstore-rust,
/// crates/sigstore-verify/test_data/managed-key/ at commit 948c31788666 (see
/// src/images/testdata/README.md).
const MANAGED_BUNDLE: &str =
    include_str!("../testdata/sigstore-rust_managed-key_bundle.sigstore.json");
const MANAGED_KEY: &str = include_str!("../testdata/sigstore-rust_managed-key_key.pub");
const MANAGED_ARTIFACT: &[u8] =
    include_bytes!("../testdata/sigstore-rust_managed-key_artifact.txt");

fn sha256(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
    )
}

fn managed() -> (Vec<Fetched>, Vec<PublicKey>) {
    let key = PublicKey::from_pem(MANAGED_KEY, "key.pub".into()).unwrap();
    let fetched = Fetched {
        referrer: "sha256:referrer".into(),
        bytes: MANAGED_BUNDLE.as_bytes().to_vec(),
    };
    (vec![fetched], vec![key])
}

#[test]
fn a_genuine_key_signed_bundle_verifies_over_its_artifact() {
    let (bundles, keys) = managed();
    let digest = sha256(MANAGED_ARTIFACT);
    let bundle = parse(MANAGED_BUNDLE.as_bytes()).unwrap();
    let signed = bundle.signed().unwrap();
    assert!(signed.needs_artifact());
    signed.names(&digest).unwrap();
    assert_eq!(
        judge_keys(&bundles, &keys, &digest, Some(MANAGED_ARTIFACT)),
        Ok(keys[0].fingerprint.clone())
    );
}

#[test]
fn the_genuine_bundle_is_bound_to_its_digest_bytes_and_key() {
    let (bundles, keys) = managed();
    let digest = sha256(MANAGED_ARTIFACT);
    let other = format!("sha256:{}", "0".repeat(64));
    let err = judge_keys(&bundles, &keys, &other, Some(MANAGED_ARTIFACT)).unwrap_err();
    assert!(
        err.to_string()
            .contains("the message signature is for digest sha256:"),
        "{err}"
    );
    let mut changed = MANAGED_ARTIFACT.to_vec();
    changed[0] ^= 1;
    assert_eq!(
        judge_keys(&bundles, &keys, &digest, Some(&changed)),
        Err(Rejection::NoTrustedSignature { signatures: 1 })
    );
    let stranger = PublicKey::from_pem(
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEA9oFvTJJuu0cszKBsiuqfFYN3NLV\nmeleaASYW5l+nqDxoUg4f8177owlgVD89pZQ9jUxP8dbibmDJpvcjBo9RQ==\n-----END PUBLIC KEY-----\n",
        "stranger".into(),
    )
    .unwrap();
    assert_eq!(
        judge_keys(&bundles, &[stranger], &digest, Some(MANAGED_ARTIFACT)),
        Err(Rejection::NoTrustedSignature { signatures: 1 })
    );
    let err = judge_keys(&bundles, &keys, &digest, None).unwrap_err();
    assert!(err.to_string().contains("image manifest"), "{err}");
}

#[test]
fn garbage_and_foreign_documents_are_rejections_not_panics() {
    for bytes in [
        &b""[..],
        b"{}",
        b"null",
        br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{}}"#,
        br#"{"mediaType":"text/plain","verificationMaterial":{}}"#,
        br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{},"dsseEnvelope":{"payload":"!!","payloadType":"x","signatures":[]}}"#,
    ] {
        let (_, keys) = managed();
        let fetched = [Fetched {
            referrer: "r".into(),
            bytes: bytes.to_vec(),
        }];
        assert!(judge_keys(&fetched, &keys, "sha256:00", None).is_err());
    }
}

#[test]
fn a_dsse_statement_must_be_a_cosign_signature_naming_the_digest() {
    let statement = |predicate: &str, hex: &str| {
        let payload = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"r","digest":{{"sha256":"{hex}"}}}}],"predicateType":"{predicate}","predicate":{{}}}}"#
        );
        Signed::Dsse {
            pae: pae(IN_TOTO_PAYLOAD_TYPE, payload.as_bytes()),
            payload: payload.into_bytes(),
            payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
            signatures: vec![],
        }
    };
    let digest = format!("sha256:{}", "a".repeat(64));
    statement(COSIGN_SIGN_PREDICATE, &"a".repeat(64))
        .names(&digest)
        .unwrap();
    assert!(matches!(
        statement(COSIGN_SIGN_PREDICATE, &"b".repeat(64)).names(&digest),
        Err(BundleError::SubjectMismatch(_))
    ));
    assert!(matches!(
        statement("https://slsa.dev/provenance/v1", &"a".repeat(64)).names(&digest),
        Err(BundleError::Predicate(_))
    ));
    assert_eq!(
        pae("t", b"hi"),
        b"DSSEv1 1 t 2 hi".to_vec(),
        "DSSE's pre-authentication encoding"
    );
}
