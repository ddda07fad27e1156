//! Forged and garbage artifacts are rejections, never panics: arbitrary bytes, and genuine
//! artifacts with a byte changed or cut short, through every format's parser and verifier.

use proptest::prelude::*;

use super::bundle::{self, Fetched};
use super::keyless::{Identity, Keyless, Matcher, TrustedRoot};
use super::keys::PublicKey;
use super::notation::{self, NotationTrust, TrustedIdentity};
use super::referrers::{COSE_ENVELOPE, JWS_ENVELOPE};
use super::tlog;

const PUBLIC_GOOD: &[u8] = include_bytes!("testdata/sigstore-rust_trusted_roots_public-good.json");
const KEYLESS_BUNDLE: &[u8] =
    include_bytes!("testdata/sigstore-rust_bundles_cosign-v3-blob.sigstore.json");
const KEY_BUNDLE: &[u8] = include_bytes!("testdata/sigstore-rust_managed-key_bundle.sigstore.json");
const KEY: &str = include_str!("testdata/sigstore-rust_managed-key_key.pub");
const ARTIFACT: &[u8] = include_bytes!("testdata/sigstore-rust_managed-key_artifact.txt");
const ENVELOPE: &[u8] = include_bytes!("testdata/notation-go_jws_signature.sig");
const SIGNER: &str = include_str!("testdata/notation-go_jws_signature_signer.pem");
const DIGEST: &str = "sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0";

fn keyless() -> Keyless {
    Keyless {
        trusted_root: TrustedRoot::from_json(PUBLIC_GOOD, "public-good").unwrap(),
        trusted_root_path: "public-good".into(),
        identities: vec![Identity {
            issuer: Matcher::Regex(regex::Regex::new(".").unwrap()),
            subject: Matcher::Regex(regex::Regex::new(".").unwrap()),
        }],
    }
}

fn notation_trust() -> NotationTrust {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, SIGNER).unwrap();
    NotationTrust::new(&[path], &[], vec![TrustedIdentity::Any]).unwrap()
}

/// Runs `bytes` through every verifier; none may panic.
fn everything(bytes: &[u8], keyless: &Keyless, notation_trust: &NotationTrust) {
    let key = PublicKey::from_pem(KEY, "key".into()).unwrap();
    let fetched = [Fetched {
        referrer: "r".into(),
        bytes: bytes.to_vec(),
    }];
    let _ = bundle::judge_keys(&fetched, std::slice::from_ref(&key), DIGEST, Some(ARTIFACT));
    let _ = super::keyless::judge(&fetched, keyless, DIGEST, Some(ARTIFACT));
    for media_type in [JWS_ENVELOPE, COSE_ENVELOPE] {
        let _ = notation::verify(
            media_type,
            bytes,
            notation_trust,
            notation::Manifest {
                digest: DIGEST,
                media_type: None,
                size: 0,
            },
            1_800_000_000,
        );
    }
    let _ = TrustedRoot::from_json(bytes, "fuzz");
    let _ = PublicKey::from_spki_der(bytes, "fuzz".into());
}

fn mutate(original: &[u8], at: usize, value: u8, cut: bool) -> Vec<u8> {
    let mut bytes = original.to_vec();
    let at = at % bytes.len();
    if cut {
        bytes.truncate(at);
    } else {
        bytes[at] = value;
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_rejected_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        everything(&bytes, &keyless(), &notation_trust());
    }

    #[test]
    fn changed_or_truncated_genuine_artifacts_never_panic(
        which in 0usize..3,
        at in any::<usize>(),
        value in any::<u8>(),
        cut in any::<bool>(),
    ) {
        let original = [KEYLESS_BUNDLE, KEY_BUNDLE, ENVELOPE][which];
        everything(&mutate(original, at, value, cut), &keyless(), &notation_trust());
    }

    #[test]
    fn inclusion_proofs_of_any_shape_are_answered(
        index in any::<u64>(),
        size in any::<u64>(),
        hashes in proptest::collection::vec(any::<[u8; 32]>(), 0..70),
    ) {
        let _ = tlog::root_from_inclusion_proof(index, size, [0; 32], &hashes);
        let _ = tlog::root_from_inclusion_proof(index % 1000, size % 1000, [0; 32], &hashes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any text after `x509.subject:` is read or refused with a reason, and what is read
    /// reads the same when written back with every value escaped.
    #[test]
    fn any_distinguished_name_is_read_or_refused_without_panicking(dn in "[ -~\\\\,;+=#éß]{0,40}") {
        if let Ok(TrustedIdentity::Subject(pairs)) = TrustedIdentity::parse(&format!("x509.subject:{dn}")) {
            let escaped: Vec<String> = pairs
                .iter()
                .map(|(k, v)| {
                    let value: String = v.bytes().map(|b| format!("\\{b:02X}")).collect();
                    format!("{k}={value}")
                })
                .collect();
            let again = TrustedIdentity::parse(&format!("x509.subject: {}", escaped.join(", ")));
            prop_assert_eq!(again, Ok(TrustedIdentity::Subject(pairs)));
        }
    }
}
