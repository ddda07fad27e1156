//! Notation verification pinned to a genuine envelope written by Notation (notaryproject/
//! notation-go testdata at commit a48f22835cb5, see src/images/testdata/README.md): a JWS,
//! notary.x509, PS256, signed by a self-signed code-signing certificate, over the OCI
//! manifest stored beside it.

use super::*;

const ENVELOPE: &[u8] = include_bytes!("../testdata/notation-go_jws_signature.sig");
const SIGNER_PEM: &str = include_str!("../testdata/notation-go_jws_signature_signer.pem");
const MANIFEST: &[u8] = include_bytes!("../testdata/notation-go_manifest_19dbd2e4.json");
const DIGEST: &str = "sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0";
const SUBJECT: &str = "x509.subject: C=US, ST=WA, L=Seattle, O=Notary, CN=alpine";
/// 2026-12-01T00:00:00Z.
const NOW: i64 = 1_795_996_800;

fn trust(pem: &str, identity: &str) -> NotationTrust {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, pem).unwrap();
    NotationTrust::new(vec![path], vec![TrustedIdentity::parse(identity).unwrap()]).unwrap()
}

fn with_protected(edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> Vec<u8> {
    let mut jws: serde_json::Value = serde_json::from_slice(ENVELOPE).unwrap();
    let protected = b64url("protected", jws["protected"].as_str().unwrap()).unwrap();
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&protected).unwrap();
    edit(&mut header);
    jws["protected"] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&header).unwrap())
        .into();
    serde_json::to_vec(&jws).unwrap()
}

#[test]
fn a_genuine_notation_envelope_verifies_for_the_manifest_it_signs() {
    let digest = format!(
        "sha256:{}",
        crate::images::tlog::hex(ring::digest::digest(&ring::digest::SHA256, MANIFEST).as_ref())
    );
    assert_eq!(digest, DIGEST);
    let signer = verify(
        JWS_ENVELOPE,
        ENVELOPE,
        &trust(SIGNER_PEM, SUBJECT),
        DIGEST,
        NOW,
    )
    .unwrap();
    assert_eq!(signer, "C=US, ST=WA, L=Seattle, O=Notary, CN=alpine");
    verify(JWS_ENVELOPE, ENVELOPE, &trust(SIGNER_PEM, "*"), DIGEST, NOW).unwrap();
    // A subset of the subject's attributes is an identity too.
    verify(
        JWS_ENVELOPE,
        ENVELOPE,
        &trust(SIGNER_PEM, "x509.subject: O=Notary, CN=alpine"),
        DIGEST,
        NOW,
    )
    .unwrap();
}

#[test]
fn the_genuine_envelope_is_denied_for_another_digest_root_or_identity() {
    let other = format!("sha256:{}", "0".repeat(64));
    assert_eq!(
        verify(
            JWS_ENVELOPE,
            ENVELOPE,
            &trust(SIGNER_PEM, SUBJECT),
            &other,
            NOW
        ),
        Err(NotationError::Digest(DIGEST.into()))
    );
    let stranger = "-----BEGIN CERTIFICATE-----\n".to_owned()
        + &base64::engine::general_purpose::STANDARD.encode(
            crate::images::keyless::TrustedRoot::from_json(
                include_bytes!("../testdata/sigstore-rust_trusted_roots_public-good.json"),
                "r",
            )
            .unwrap()
            .cas[0]
                .chain[0]
                .clone(),
        )
        + "\n-----END CERTIFICATE-----\n";
    let err = verify(JWS_ENVELOPE, ENVELOPE, &trust(&stranger, "*"), DIGEST, NOW).unwrap_err();
    assert!(matches!(err, NotationError::Untrusted(_)), "{err}");
    let err = verify(
        JWS_ENVELOPE,
        ENVELOPE,
        &trust(SIGNER_PEM, "x509.subject: C=US, O=Acme, CN=release"),
        DIGEST,
        NOW,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("signed by C=US, ST=WA, L=Seattle, O=Notary, CN=alpine"),
        "{err}"
    );
    assert_eq!(
        verify(
            COSE_ENVELOPE,
            ENVELOPE,
            &trust(SIGNER_PEM, "*"),
            DIGEST,
            NOW
        ),
        Err(NotationError::Cose)
    );
}

#[test]
fn critical_headers_are_honoured_and_edits_break_the_signature() {
    let trust = trust(SIGNER_PEM, "*");
    let unknown = with_protected(|h| {
        h["crit"] = serde_json::json!(["io.cncf.notary.signingScheme", "io.example.policy"]);
        h.insert("io.example.policy".into(), "strict".into());
    });
    assert_eq!(
        verify(JWS_ENVELOPE, &unknown, &trust, DIGEST, NOW),
        Err(NotationError::UnknownCritical("io.example.policy".into()))
    );
    let uncritical_expiry = with_protected(|h| {
        h.insert(EXPIRY.into(), "2030-01-01T00:00:00Z".into());
    });
    assert!(matches!(
        verify(JWS_ENVELOPE, &uncritical_expiry, &trust, DIGEST, NOW),
        Err(NotationError::Critical(_))
    ));
    let edited = with_protected(|h| {
        h[SIGNING_TIME] = "2023-03-14T16:10:03+08:00".into();
    });
    assert_eq!(
        verify(JWS_ENVELOPE, &edited, &trust, DIGEST, NOW),
        Err(NotationError::Signature)
    );
    for garbage in [
        &b""[..],
        b"{}",
        b"[]",
        br#"{"payload":"!","protected":"!","signature":"!"}"#,
    ] {
        assert!(verify(JWS_ENVELOPE, garbage, &trust, DIGEST, NOW).is_err());
    }
}

#[test]
fn rfc3339_times_with_offsets() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_rfc3339("2023-03-14T16:10:02+08:00"),
        Some(1_678_781_402)
    );
    assert_eq!(
        parse_rfc3339("2023-03-14T08:10:02.123Z"),
        Some(1_678_781_402)
    );
    assert_eq!(
        parse_rfc3339("2023-03-14T08:10:02-00:30"),
        Some(1_678_783_202)
    );
    assert_eq!(parse_rfc3339("2023-03-14 08:10:02Z"), None);
    assert_eq!(parse_rfc3339("2023-13-14T08:10:02Z"), None);
    assert_eq!(parse_rfc3339("tomorrow"), None);
}

#[test]
fn trusted_identities_parse_as_the_specification_writes_them() {
    assert_eq!(TrustedIdentity::parse("*"), Ok(TrustedIdentity::Any));
    assert_eq!(
        TrustedIdentity::parse("x509.subject: C=US, O=Acme\\, Inc., CN=release"),
        Ok(TrustedIdentity::Subject(vec![
            ("C".into(), "US".into()),
            ("O".into(), "Acme, Inc.".into()),
            ("CN".into(), "release".into()),
        ]))
    );
    assert!(TrustedIdentity::parse("CN=release").is_err());
    assert!(TrustedIdentity::parse("x509.subject: ").is_err());
}
