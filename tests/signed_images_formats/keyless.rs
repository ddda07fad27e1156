//! Keyless: cosign v3 bundles and cosign < 3 legacy signatures with a Fulcio certificate,
//! verified from the harness's trusted root; each failure its own denial.

use super::*;

/// A keyless bundle for `team/<repo>` made by `sigstore` as `spec` says, attached through the
/// referrers tag schema; returns the image digest.
pub async fn keyless_image(
    registry: &Registry,
    sigstore: &Sigstore,
    repo: &str,
    spec: BundleSpec,
) -> String {
    let digest = registry
        .push_image(&format!("team/{repo}"), "v1", repo)
        .await;
    let bundle = sigstore.keyless_bundle(
        &registry.repository(&format!("team/{repo}")),
        &digest,
        &spec,
    );
    attach(
        registry,
        &format!("team/{repo}"),
        &digest,
        BUNDLE_MEDIA_TYPE,
        BUNDLE_MEDIA_TYPE,
        &bundle,
    )
    .await;
    digest
}

pub fn spec(leaf: LeafSpec) -> BundleSpec {
    BundleSpec {
        leaf,
        statement_digest: None,
        tamper_entry: None,
    }
}

#[tokio::test]
async fn keyless_bundles_verify_from_the_trusted_root_and_each_failure_says_why() {
    let registry = Registry::start().await;
    let host = registry.host();
    let sigstore = Sigstore::new();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("trusted_root.json");
    sigstore.write_trusted_root(&root);

    let good = keyless_image(
        &registry,
        &sigstore,
        "good",
        spec(LeafSpec::new(WORKFLOW, ISSUER)),
    )
    .await;
    let email = keyless_image(
        &registry,
        &sigstore,
        "email",
        spec(LeafSpec::new(
            "release@acme.example",
            "https://accounts.google.com",
        )),
    )
    .await;
    let intruder = keyless_image(
        &registry,
        &sigstore,
        "intruder",
        spec(LeafSpec::new(
            "https://github.com/evil/fork/.github/workflows/release.yml@refs/tags/v1",
            ISSUER,
        )),
    )
    .await;
    let issuer = keyless_image(
        &registry,
        &sigstore,
        "issuer",
        spec(LeafSpec::new(WORKFLOW, "https://issuer.evil.example")),
    )
    .await;
    let mut expired = LeafSpec::new(WORKFLOW, ISSUER);
    expired.validity = Some(((2020, 1, 1), (2020, 1, 2)));
    let expired = keyless_image(&registry, &sigstore, "expired", spec(expired)).await;
    let mut forged = LeafSpec::new(WORKFLOW, ISSUER);
    forged.forged_sct = true;
    let forged = keyless_image(&registry, &sigstore, "forged", spec(forged)).await;
    let tampered_entry = keyless_image(
        &registry,
        &sigstore,
        "entry",
        BundleSpec {
            leaf: LeafSpec::new(WORKFLOW, ISSUER),
            statement_digest: None,
            tamper_entry: Some(|entry| {
                let body = entry["canonicalizedBody"].as_str().unwrap().to_owned();
                let mut bytes =
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body)
                        .unwrap();
                let text = String::from_utf8(bytes.clone())
                    .unwrap()
                    .replace("\"sha256\"", "\"sha512\"");
                bytes = text.into_bytes();
                entry["canonicalizedBody"] =
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
                        .into();
            }),
        },
    )
    .await;
    let tampered_checkpoint = keyless_image(
        &registry,
        &sigstore,
        "checkpoint",
        BundleSpec {
            leaf: LeafSpec::new(WORKFLOW, ISSUER),
            statement_digest: None,
            tamper_entry: Some(|entry| {
                let proof = &mut entry["inclusionProof"];
                let envelope = proof["checkpoint"]["envelope"].as_str().unwrap().to_owned();
                let mut lines: Vec<&str> = envelope.split('\n').collect();
                let size = format!("{}", lines[1].parse::<u64>().unwrap() + 1);
                lines[1] = &size;
                proof["checkpoint"]["envelope"] = lines.join("\n").into();
            }),
        },
    )
    .await;
    let other_digest = keyless_image(
        &registry,
        &sigstore,
        "other",
        BundleSpec {
            leaf: LeafSpec::new(WORKFLOW, ISSUER),
            statement_digest: Some(format!("sha256:{}", "7".repeat(64))),
            tamper_entry: None,
        },
    )
    .await;
    let elsewhere = Sigstore::new();
    let untrusted = keyless_image(
        &registry,
        &elsewhere,
        "untrusted",
        spec(LeafSpec::new(WORKFLOW, ISSUER)),
    )
    .await;
    let unsigned = registry.push_image("team/unsigned", "v1", "unsigned").await;

    let identities = format!(
        "{}            - issuer: https://accounts.google.com\n              subject: release@acme.example\n",
        workflow_identity()
    );
    let server = TestServer::start(&[(
        "signed.yaml",
        &policy(&host, &keyless_trust(&root, &identities)),
    )])
    .await;
    assert_eq!(
        judge(&server, &host, "good", &good).await,
        (true, String::new())
    );
    assert_eq!(
        judge(&server, &host, "email", &email).await,
        (true, String::new())
    );
    let cases = [
        (
            "intruder",
            &intruder,
            "signed by https://github.com/evil/fork/.github/workflows/release.yml@refs/tags/v1 (issuer https://token.actions.githubusercontent.com), which matches no identity",
        ),
        (
            "issuer",
            &issuer,
            "(issuer https://issuer.evil.example), which matches no identity",
        ),
        ("expired", &expired, "outside its certificate's validity"),
        ("forged", &forged, "SCT does not verify"),
        (
            "entry",
            &tampered_entry,
            "transparency log entry does not verify",
        ),
        (
            "checkpoint",
            &tampered_checkpoint,
            "checkpoint does not verify",
        ),
        (
            "other",
            &other_digest,
            "it signs another digest (sha256:7777",
        ),
        (
            "untrusted",
            &untrusted,
            "which the trusted root does not list",
        ),
        ("unsigned", &unsigned, "has no Sigstore bundle"),
    ];
    for (repo, digest, reason) in cases {
        let (allowed, why) = judge(&server, &host, repo, digest).await;
        assert!(!allowed, "{repo}: admitted");
        assert!(why.contains(reason), "{repo}: {why}");
        assert!(
            why.contains(digest.as_str()),
            "{repo} names its digest: {why}"
        );
    }
    server.stop().await;
}

/// Keyless signatures made before cosign v3 sit in the legacy `.sig` tag with the certificate
/// and the Rekor bundle as annotations: a keyless rule verifies them the same way.
#[tokio::test]
async fn legacy_keyless_signatures_of_cosign_before_v3_verify_too() {
    let registry = Registry::start().await;
    let host = registry.host();
    let sigstore = Sigstore::new();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("trusted_root.json");
    sigstore.write_trusted_root(&root);
    let good = registry.push_image("team/old", "v1", "old").await;
    let layer = sigstore.legacy_keyless_layer(
        &registry.repository("team/old"),
        &good,
        &LeafSpec::new(WORKFLOW, ISSUER),
    );
    registry
        .push_annotated_signatures("team/old", &good, &[layer])
        .await;
    let intruder = registry
        .push_image("team/oldintruder", "v1", "oldintruder")
        .await;
    let layer = sigstore.legacy_keyless_layer(
        &registry.repository("team/oldintruder"),
        &intruder,
        &LeafSpec::new(
            "https://github.com/evil/fork/.github/workflows/release.yml@refs/tags/v1",
            ISSUER,
        ),
    );
    registry
        .push_annotated_signatures("team/oldintruder", &intruder, &[layer])
        .await;
    let server = TestServer::start(&[(
        "signed.yaml",
        &policy(&host, &keyless_trust(&root, &workflow_identity())),
    )])
    .await;
    let (allowed, why) = judge(&server, &host, "old", &good).await;
    assert!(allowed, "{why}");
    let (allowed, why) = judge(&server, &host, "oldintruder", &intruder).await;
    assert!(!allowed, "{why}");
    assert!(why.contains("keyless cosign signature that does not verify: it was signed by https://github.com/evil/fork"), "{why}");
    server.stop().await;
}
