//! Keyless verification pinned to genuine public artifacts: a cosign v3 bundle signed with a
//! real Fulcio certificate, logged in the public Rekor, and the public-good trusted root
//! (sigstore/sigstore-rust, crates/sigstore-verify/test_data at commit 948c31788666; see
//! src/images/testdata/README.md). The harness-made end-to-end cases are in
//! tests/signed_images_formats.rs.

use super::*;

const PUBLIC_GOOD: &str = include_str!("../testdata/sigstore-rust_trusted_roots_public-good.json");
const BLOB_BUNDLE: &str =
    include_str!("../testdata/sigstore-rust_bundles_cosign-v3-blob.sigstore.json");
const BLOB: &[u8] = include_bytes!("../testdata/sigstore-rust_bundles_cosign-v3-blob.txt");
const DSSE_BUNDLE: &str = include_str!("../testdata/sigstore-rust_bundles_dsse.sigstore.json");
/// A real GitHub Actions keyless DSSE bundle (September 2025) logged in the public Rekor as a
/// `dsse` 0.0.1 entry: what cosign v3 writes for an image, but for a conda package's
/// attestation.
const CONDA_BUNDLE: &str =
    include_str!("../testdata/sigstore-rust_bundles_conda-attestation.sigstore.json");

const SIGNER: &str = "w.vollprecht@gmail.com";
const ISSUER: &str = "https://github.com/login/oauth";

fn keyless(issuer: &str, subject: Matcher) -> Keyless {
    Keyless {
        trusted_root: TrustedRoot::from_json(PUBLIC_GOOD.as_bytes(), "public-good.json").unwrap(),
        trusted_root_path: "public-good.json".into(),
        identities: vec![Identity {
            issuer: Matcher::Exact(issuer.into()),
            subject,
        }],
    }
}

fn blob_digest() -> String {
    format!(
        "sha256:{}",
        tlog::hex(ring::digest::digest(&ring::digest::SHA256, BLOB).as_ref())
    )
}

fn verify_blob(bundle_json: &str, keyless: &Keyless) -> Result<String, KeylessError> {
    let bundle = bundle::parse(bundle_json.as_bytes()).map_err(KeylessError::Content)?;
    verify(&bundle, keyless, &blob_digest(), Some(BLOB))
}

#[test]
fn the_public_good_trusted_root_reads() {
    let root = TrustedRoot::from_json(PUBLIC_GOOD.as_bytes(), "public-good.json").unwrap();
    assert_eq!(root.cas.len(), 2);
    assert_eq!(root.tlogs.len(), 1);
    assert_eq!(root.ctlogs.len(), 2);
    assert_eq!(root.ctlogs[0].end, Some(1667260799));
}

#[test]
fn a_genuine_cosign_v3_keyless_bundle_verifies() {
    let identity =
        verify_blob(BLOB_BUNDLE, &keyless(ISSUER, Matcher::Exact(SIGNER.into()))).unwrap();
    assert_eq!(identity, format!("{SIGNER} (issuer {ISSUER})"));
    let regex = Matcher::Regex(regex::Regex::new(r"^w\.vollprecht@").unwrap());
    verify_blob(BLOB_BUNDLE, &keyless(ISSUER, regex)).unwrap();
}

#[test]
fn another_identity_or_issuer_is_named_in_the_denial() {
    let err = verify_blob(
        BLOB_BUNDLE,
        &keyless(ISSUER, Matcher::Exact("release@acme.example".into())),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("signed by {SIGNER} (issuer {ISSUER})")),
        "{text}"
    );
    assert!(text.contains("release@acme.example"), "{text}");
    let err = verify_blob(
        BLOB_BUNDLE,
        &keyless("https://accounts.google.com", Matcher::Exact(SIGNER.into())),
    )
    .unwrap_err();
    assert!(matches!(err, KeylessError::Identity { .. }), "{err}");
}

#[test]
fn tampering_with_the_log_entry_fails_at_the_step_it_breaks() {
    let trust = keyless(ISSUER, Matcher::Exact(SIGNER.into()));
    let mut doc: serde_json::Value = serde_json::from_str(BLOB_BUNDLE).unwrap();
    let entry = "/verificationMaterial/tlogEntries/0";
    // The checkpoint's root hash changed: its signature no longer verifies.
    let mut checkpoint = doc.clone();
    let envelope = checkpoint
        .pointer_mut(&format!("{entry}/inclusionProof/checkpoint/envelope"))
        .unwrap();
    let text = envelope
        .as_str()
        .unwrap()
        .replace("616408488\n", "616408489\n");
    *envelope = text.into();
    let err = verify_blob(&checkpoint.to_string(), &trust).unwrap_err();
    assert!(
        matches!(err, KeylessError::Tlog(TlogError::BadCheckpoint(_))),
        "{err}"
    );
    // A hash of the inclusion proof changed.
    let mut proof = doc.clone();
    *proof
        .pointer_mut(&format!("{entry}/inclusionProof/hashes/0"))
        .unwrap() = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    let err = verify_blob(&proof.to_string(), &trust).unwrap_err();
    assert!(
        matches!(err, KeylessError::Tlog(TlogError::BadProof(_))),
        "{err}"
    );
    // The integrated time moved: the SET no longer verifies.
    let mut time = doc.clone();
    *time
        .pointer_mut(&format!("{entry}/integratedTime"))
        .unwrap() = "1764787004".into();
    let err = verify_blob(&time.to_string(), &trust).unwrap_err();
    assert_eq!(err, KeylessError::Tlog(TlogError::BadPromise));
    // No entry at all.
    *doc.pointer_mut("/verificationMaterial/tlogEntries")
        .unwrap() = serde_json::json!([]);
    let err = verify_blob(&doc.to_string(), &trust).unwrap_err();
    assert_eq!(err, KeylessError::Tlog(TlogError::NoEntry));
}

#[test]
fn a_root_without_the_ca_or_the_ct_log_refuses_the_chain_or_the_sct() {
    let mut trust = keyless(ISSUER, Matcher::Exact(SIGNER.into()));
    let ctlogs = std::mem::take(&mut trust.trusted_root.ctlogs);
    let err = verify_blob(BLOB_BUNDLE, &trust).unwrap_err();
    assert!(matches!(err, KeylessError::Sct(_)), "{err}");
    trust.trusted_root.ctlogs = ctlogs;
    trust.trusted_root.cas.remove(1);
    let err = verify_blob(BLOB_BUNDLE, &trust).unwrap_err();
    assert!(matches!(err, KeylessError::Chain(_)), "{err}");
}

#[test]
fn the_genuine_bundle_does_not_verify_for_another_digest_or_bytes() {
    let trust = keyless(ISSUER, Matcher::Exact(SIGNER.into()));
    let bundle = bundle::parse(BLOB_BUNDLE.as_bytes()).unwrap();
    let other = format!("sha256:{}", "0".repeat(64));
    let err = verify(&bundle, &trust, &other, Some(BLOB)).unwrap_err();
    assert!(
        matches!(
            err,
            KeylessError::Content(BundleError::MessageDigestMismatch(_))
        ),
        "{err}"
    );
    let err = verify(&bundle, &trust, &blob_digest(), Some(b"other bytes")).unwrap_err();
    assert_eq!(err, KeylessError::Signature);
}

#[test]
fn a_genuine_provenance_attestation_is_not_an_image_signature() {
    // A real SLSA provenance bundle (v0.1, DSSE): an attestation, not a `cosign sign`.
    let trust = keyless(ISSUER, Matcher::Regex(regex::Regex::new(".").unwrap()));
    let bundle = bundle::parse(DSSE_BUNDLE.as_bytes()).unwrap();
    let err = verify(&bundle, &trust, &blob_digest(), None).unwrap_err();
    assert!(
        matches!(err, KeylessError::Content(BundleError::Predicate(_))),
        "{err}"
    );
}

#[test]
fn der_rewriting_drops_only_the_sct_extension() {
    let bundle = bundle::parse(BLOB_BUNDLE.as_bytes()).unwrap();
    let der = leaf_der(&bundle).unwrap();
    let (_, leaf) = X509Certificate::from_der(&der).unwrap();
    let tbs = leaf.tbs_certificate.as_ref();
    let stripped = tbs_without_scts(tbs).unwrap();
    assert!(stripped.len() < tbs.len());
    let (_, again) = x509_parser::certificate::TbsCertificate::from_der(&stripped).unwrap();
    assert_eq!(again.extensions().len(), leaf.extensions().len() - 1);
    assert!(tbs_without_scts(&[0x30, 0x85, 0, 0, 0, 0, 0]).is_none());
    assert!(parse_scts(&[0, 5, 0]).is_none());
}

#[test]
fn a_genuine_dsse_entry_of_the_public_rekor_verifies_from_a_github_actions_identity() {
    let trust = Keyless {
        trusted_root: TrustedRoot::from_json(PUBLIC_GOOD.as_bytes(), "public-good.json").unwrap(),
        trusted_root_path: "public-good.json".into(),
        identities: vec![Identity {
            issuer: Matcher::Exact("https://token.actions.githubusercontent.com".into()),
            subject: Matcher::Regex(
                regex::Regex::new(
                    r"^https://github\.com/prefix-dev/sigstore-example/\.github/workflows/.+@refs/heads/main$",
                )
                .unwrap(),
            ),
        }],
    };
    let bundle = bundle::parse(CONDA_BUNDLE.as_bytes()).unwrap();
    let signed = bundle.signed().unwrap();
    // The signature, the dsse entry (body, SET, proof, checkpoint), the chain, the SCT and
    // the identity all verify...
    let identity = verify_signed(&bundle, &signed, &trust, "sha256:unused", None).unwrap();
    assert!(
        identity.starts_with("https://github.com/prefix-dev/sigstore-example/"),
        "{identity}"
    );
    // ...but it is an attestation of a conda package, not a signature of an image.
    let err = verify(&bundle, &trust, &blob_digest(), None).unwrap_err();
    assert!(
        matches!(err, KeylessError::Content(BundleError::Predicate(_))),
        "{err}"
    );
    // Its logged body is bound to its signature: another payload is another entry.
    let mut doc: serde_json::Value = serde_json::from_str(CONDA_BUNDLE).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(doc["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let mut changed = payload.clone();
    changed.push(b' ');
    doc["dsseEnvelope"]["payload"] = base64::engine::general_purpose::STANDARD
        .encode(changed)
        .into();
    let tampered = bundle::parse(doc.to_string().as_bytes()).unwrap();
    let signed = tampered.signed().unwrap();
    assert_eq!(
        verify_signed(&tampered, &signed, &trust, "sha256:unused", None),
        Err(KeylessError::Signature)
    );
}
