//! Notation verification pinned to genuine envelopes written by Notation (notaryproject/
//! notation-go testdata at commit a48f22835cb5, see src/images/testdata/README.md): a JWS,
//! notary.x509, PS256, signed by a self-signed code-signing certificate, over the OCI
//! manifest stored beside it; one whose certificate expired ten minutes after signing (with a
//! timestamp countersignature); and a COSE envelope.

use super::*;
use base64::Engine as _;

const ENVELOPE: &[u8] = include_bytes!("../testdata/notation-go_jws_signature.sig");
const SIGNER_PEM: &str = include_str!("../testdata/notation-go_jws_signature_signer.pem");
const MANIFEST: &[u8] = include_bytes!("../testdata/notation-go_manifest_19dbd2e4.json");
const DIGEST: &str = "sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0";
const SUBJECT: &str = "x509.subject: C=US, ST=WA, L=Seattle, O=Notary, CN=alpine";
/// 2026-12-01T00:00:00Z.
const NOW: i64 = 1_795_996_800;

const EXPIRED: &[u8] = include_bytes!("../testdata/notation-go_jws_expired_with_timestamp.sig");
const COSE: &[u8] = include_bytes!("../testdata/notation-go_cose_signature.sig");

fn trust(pem: &str, identity: &str) -> NotationTrust {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, pem).unwrap();
    NotationTrust::new(
        &[path],
        &[],
        vec![TrustedIdentity::parse(identity).unwrap()],
    )
    .unwrap()
}

/// The same certificates as a trust store of type signingAuthority only.
fn authority_trust(pem: &str) -> NotationTrust {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sa.pem");
    std::fs::write(&path, pem).unwrap();
    NotationTrust::new(&[], &[path], vec![TrustedIdentity::Any]).unwrap()
}

fn manifest() -> Manifest<'static> {
    Manifest::of(DIGEST, MANIFEST)
}

fn pem_of(der: &[u8]) -> String {
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

fn with_protected(edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> Vec<u8> {
    let mut jws: serde_json::Value = serde_json::from_slice(ENVELOPE).unwrap();
    let protected = super::jws::b64url("protected", jws["protected"].as_str().unwrap()).unwrap();
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
        manifest(),
        NOW,
    )
    .unwrap();
    assert_eq!(signer, "C=US, ST=WA, L=Seattle, O=Notary, CN=alpine");
    verify(
        JWS_ENVELOPE,
        ENVELOPE,
        &trust(SIGNER_PEM, "*"),
        manifest(),
        NOW,
    )
    .unwrap();
    // The specification's minimal identity (C, ST, O): a partial list of the subject.
    verify(
        JWS_ENVELOPE,
        ENVELOPE,
        &trust(SIGNER_PEM, "x509.subject: C=US, S=WA, O=Notary"),
        manifest(),
        NOW,
    )
    .unwrap();
}

#[test]
fn the_genuine_envelope_is_denied_for_another_manifest_root_store_or_identity() {
    let other = format!("sha256:{}", "0".repeat(64));
    let mut elsewhere = manifest();
    elsewhere.digest = &other;
    assert_eq!(
        verify(
            JWS_ENVELOPE,
            ENVELOPE,
            &trust(SIGNER_PEM, SUBJECT),
            elsewhere,
            NOW
        ),
        Err(NotationError::Digest(DIGEST.into()))
    );
    let mut resized = manifest();
    resized.size -= 1;
    let err = verify(
        JWS_ENVELOPE,
        ENVELOPE,
        &trust(SIGNER_PEM, "*"),
        resized,
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, NotationError::Descriptor(..)), "{err}");
    let mut retyped = manifest();
    retyped.media_type = Some("application/vnd.oci.image.index.v1+json");
    let err = verify(
        JWS_ENVELOPE,
        ENVELOPE,
        &trust(SIGNER_PEM, "*"),
        retyped,
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, NotationError::Descriptor(..)), "{err}");
    let stranger = pem_of(
        &crate::images::keyless::TrustedRoot::from_json(
            include_bytes!("../testdata/sigstore-rust_trusted_roots_public-good.json"),
            "r",
        )
        .unwrap()
        .cas[0]
            .chain[0],
    );
    let err = verify(
        JWS_ENVELOPE,
        ENVELOPE,
        &trust(&stranger, "*"),
        manifest(),
        NOW,
    )
    .unwrap_err();
    assert_eq!(err, NotationError::Untrusted("trustStore (type ca)"));
    assert!(
        err.to_string().contains("does not lead to the trust store"),
        "{err}"
    );
    // A notary.x509 signature is judged by the trust store of type ca only.
    assert_eq!(
        verify(
            JWS_ENVELOPE,
            ENVELOPE,
            &authority_trust(SIGNER_PEM),
            manifest(),
            NOW
        ),
        Err(NotationError::Untrusted("trustStore (type ca)"))
    );
    let err = verify(
        JWS_ENVELOPE,
        ENVELOPE,
        &trust(
            SIGNER_PEM,
            "x509.subject: C=US, ST=WA, O=Notary, CN=release",
        ),
        manifest(),
        NOW,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("signed by C=US, ST=WA, L=Seattle, O=Notary, CN=alpine"),
        "{err}"
    );
}

/// A genuine COSE envelope (notation-go testdata) over the same manifest: read with coset,
/// judged by the same steps as a JWS one.
#[test]
fn a_genuine_cose_envelope_verifies_and_is_bound_like_a_jws_one() {
    let signed = super::cose::parse(COSE).unwrap();
    assert_eq!(signed.alg.as_deref(), Some("PS256"));
    assert_eq!(signed.scheme.as_deref(), Some("notary.x509"));
    assert_eq!(signed.signing_time, Some(1_678_769_122));
    let signer = pem_of(&signed.x5c[0]);
    assert_eq!(
        verify(
            COSE_ENVELOPE,
            COSE,
            &trust(&signer, SUBJECT),
            manifest(),
            NOW
        )
        .as_deref(),
        Ok("C=US, ST=WA, L=Seattle, O=Notary, CN=alpine")
    );
    let mut elsewhere = manifest();
    let other = format!("sha256:{}", "0".repeat(64));
    elsewhere.digest = &other;
    assert_eq!(
        verify(COSE_ENVELOPE, COSE, &trust(&signer, "*"), elsewhere, NOW),
        Err(NotationError::Digest(DIGEST.into()))
    );
    assert_eq!(
        verify(
            COSE_ENVELOPE,
            COSE,
            &authority_trust(&signer),
            manifest(),
            NOW
        ),
        Err(NotationError::Untrusted("trustStore (type ca)"))
    );
    // One byte of the payload changed: the Sig_structure no longer verifies.
    let at = COSE
        .windows(6)
        .position(|w| w == b"sha256")
        .expect("the payload is in the envelope");
    let mut tampered = COSE.to_vec();
    tampered[at + 7] ^= 1;
    assert_eq!(
        verify(
            COSE_ENVELOPE,
            &tampered,
            &trust(&signer, "*"),
            manifest(),
            NOW
        ),
        Err(NotationError::Signature)
    );
    // A JWS read as COSE, or COSE as JWS, is refused as an envelope.
    for (media_type, bytes) in [(COSE_ENVELOPE, ENVELOPE), (JWS_ENVELOPE, COSE)] {
        let err = verify(media_type, bytes, &trust(&signer, "*"), manifest(), NOW).unwrap_err();
        assert!(matches!(err, NotationError::Envelope(_)), "{err}");
    }
}

/// A genuine envelope whose self-signed certificate was valid for ten minutes: it carries a
/// timestamp countersignature, which (no `tsa` trust store being configured, as in
/// notation-go) is not read, so the chain must be valid at verification.
#[test]
fn a_genuine_envelope_with_an_expired_certificate_is_denied_now() {
    let jws: serde_json::Value = serde_json::from_slice(EXPIRED).unwrap();
    let der = base64::engine::general_purpose::STANDARD
        .decode(jws["header"]["x5c"][0].as_str().unwrap())
        .unwrap();
    let trust = trust(
        &pem_of(&der),
        "x509.subject: C=US, ST=WA, O=Notary, CN=testTSA",
    );
    let signed = Manifest {
        digest: "sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda",
        media_type: Some("application/vnd.docker.distribution.manifest.v2+json"),
        size: 528,
    };
    let err = verify(JWS_ENVELOPE, EXPIRED, &trust, signed, NOW).unwrap_err();
    assert!(matches!(err, NotationError::NotValidNow(_)), "{err}");
    assert!(err.to_string().contains("2024-06-18T07:30:31Z"), "{err}");
    // A minute after it was signed (2024-06-18T07:21:38Z), it verified.
    let then = parse_rfc3339("2024-06-18T07:22:38Z").unwrap();
    assert_eq!(
        verify(JWS_ENVELOPE, EXPIRED, &trust, signed, then).as_deref(),
        Ok("C=US, ST=WA, L=Seattle, O=Notary, CN=testTSA")
    );
}

#[test]
fn critical_headers_are_honoured_as_the_specification_says() {
    let trust = trust(SIGNER_PEM, "*");
    let verdict = |edit: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>)| {
        verify(JWS_ENVELOPE, &with_protected(edit), &trust, manifest(), NOW)
    };
    let critical = |verdict: Result<String, NotationError>, says: &str| match verdict {
        Err(NotationError::Critical(why)) => assert!(why.contains(says), "{why}"),
        other => panic!("{says}: {other:?}"),
    };
    assert_eq!(
        verdict(&|h| {
            h["crit"] = serde_json::json!([SIGNING_SCHEME, "io.example.policy"]);
            h.insert("io.example.policy".into(), "strict".into());
        }),
        Err(NotationError::UnknownCritical("io.example.policy".into()))
    );
    assert_eq!(
        verdict(&|h| {
            h["crit"] = serde_json::json!([SIGNING_SCHEME, VERIFICATION_PLUGIN]);
            h.insert(VERIFICATION_PLUGIN.into(), "com.example.nv2plugin".into());
        }),
        Err(NotationError::Plugin("com.example.nv2plugin".into()))
    );
    critical(
        verdict(&|h| {
            h.insert(EXPIRY.into(), "2030-01-01T00:00:00Z".into());
        }),
        "io.cncf.notary.expiry must be marked critical",
    );
    critical(
        verdict(&|h| {
            h.remove("crit");
        }),
        "io.cncf.notary.signingScheme must be marked critical",
    );
    critical(
        verdict(&|h| {
            h["crit"] = serde_json::json!([SIGNING_SCHEME, VERIFICATION_PLUGIN_MIN_VERSION]);
        }),
        "is listed but not present",
    );
    critical(
        verdict(&|h| {
            h["crit"] = serde_json::json!([SIGNING_SCHEME, AUTHENTIC_SIGNING_TIME]);
            h.insert(AUTHENTIC_SIGNING_TIME.into(), "2023-03-14T08:10:02Z".into());
        }),
        "io.cncf.notary.authenticSigningTime must not be present under notary.x509",
    );
    critical(
        verdict(&|h| {
            h.remove(SIGNING_TIME);
        }),
        "io.cncf.notary.signingTime is required under notary.x509",
    );
    critical(
        verdict(&|h| {
            h[SIGNING_SCHEME] = SIGNING_AUTHORITY.into();
        }),
        "io.cncf.notary.signingTime must not be present under notary.x509.signingAuthority",
    );
    let err = verdict(&|h| {
        h[SIGNING_SCHEME] = "notary.default".into();
    })
    .unwrap_err();
    assert!(matches!(err, NotationError::Envelope(_)), "{err}");
    let err = verdict(&|h| {
        h["crit"] = serde_json::json!([SIGNING_SCHEME, EXPIRY]);
        h.insert(EXPIRY.into(), "2023-03-14T08:10:02Z".into());
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("not after its signing time"),
        "{err}"
    );
    assert_eq!(
        verdict(&|h| {
            h[SIGNING_TIME] = "2023-03-14T16:10:03+08:00".into();
        }),
        Err(NotationError::Signature)
    );
    for garbage in [
        &b""[..],
        b"{}",
        b"[]",
        br#"{"payload":"!","protected":"!","signature":"!"}"#,
    ] {
        assert!(verify(JWS_ENVELOPE, garbage, &trust, manifest(), NOW).is_err());
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

mod made;
