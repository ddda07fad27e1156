//! Notation: JWS and COSE envelopes from the harness's CA, verified against a trust store of type ca
//! or signingAuthority; each failure its own denial.

use super::*;

/// An image `team/<repo>` signed by `ca` as `spec` says, attached through the referrers tag
/// schema; returns its digest.
async fn signed(registry: &Registry, ca: &NotationCa, repo: &str, spec: EnvelopeSpec) -> String {
    let (digest, manifest) = registry
        .push_image_manifest(&format!("team/{repo}"), "v1", repo)
        .await;
    let envelope = ca.envelope(&digest, manifest.len(), &spec);
    let descriptor = registry
        .push_referrer(
            &format!("team/{repo}"),
            &digest,
            manifest.len(),
            NOTATION_ARTIFACT,
            spec.media_type(),
            &envelope,
        )
        .await;
    registry
        .tag_referrers(&format!("team/{repo}"), &digest, &[descriptor])
        .await;
    digest
}

#[tokio::test]
async fn notation_signatures_verify_against_the_trust_store_and_each_failure_says_why() {
    let registry = Registry::start().await;
    let host = registry.host();
    let ca = NotationCa::new("Acme Release CA");
    let other_ca = NotationCa::new("Somebody else");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme-ca.pem");
    std::fs::write(&store, &ca.root_pem).unwrap();

    let good = signed(&registry, &ca, "good", EnvelopeSpec::default()).await;
    let expiring = signed(
        &registry,
        &ca,
        "future",
        EnvelopeSpec {
            expiry: Some("2099-01-01T00:00:00Z".into()),
            ..EnvelopeSpec::default()
        },
    )
    .await;
    let cose = signed(
        &registry,
        &ca,
        "cose",
        EnvelopeSpec {
            cose: true,
            ..EnvelopeSpec::default()
        },
    )
    .await;
    let cose_other = signed(
        &registry,
        &ca,
        "coseother",
        EnvelopeSpec {
            cose: true,
            digest_signed: Some(format!("sha256:{}", "7".repeat(64))),
            ..EnvelopeSpec::default()
        },
    )
    .await;
    let other = signed(
        &registry,
        &ca,
        "other",
        EnvelopeSpec {
            digest_signed: Some(format!("sha256:{}", "7".repeat(64))),
            ..EnvelopeSpec::default()
        },
    )
    .await;
    let untrusted = signed(&registry, &other_ca, "untrusted", EnvelopeSpec::default()).await;
    let expired = signed(
        &registry,
        &ca,
        "expired",
        EnvelopeSpec {
            signing_time: Some("2020-12-01T00:00:00Z"),
            expiry: Some("2021-01-01T00:00:00Z".into()),
            ..EnvelopeSpec::default()
        },
    )
    .await;
    let critical = signed(
        &registry,
        &ca,
        "critical",
        EnvelopeSpec {
            extra_critical: Some("io.example.requireApproval"),
            ..EnvelopeSpec::default()
        },
    )
    .await;
    let stranger = signed(
        &registry,
        &ca,
        "stranger",
        EnvelopeSpec {
            subject: vec![
                (rcgen::DnType::CountryName, "US"),
                (rcgen::DnType::OrganizationName, "Acme"),
                (rcgen::DnType::CommonName, "intern"),
            ],
            ..EnvelopeSpec::default()
        },
    )
    .await;
    let old_chain = signed(
        &registry,
        &ca,
        "oldchain",
        EnvelopeSpec {
            leaf_validity: Some(((2021, 1, 1), (2021, 6, 1))),
            ..EnvelopeSpec::default()
        },
    )
    .await;
    let unsigned = registry.push_image("team/unsigned", "v1", "unsigned").await;

    let server = TestServer::start(&[(
        "signed.yaml",
        &policy(
            &host,
            &notation_trust(&store, "x509.subject: C=US, O=Acme, CN=release"),
        ),
    )])
    .await;
    assert_eq!(
        judge(&server, &host, "good", &good).await,
        (true, String::new())
    );
    assert_eq!(
        judge(&server, &host, "future", &expiring).await,
        (true, String::new())
    );
    assert_eq!(
        judge(&server, &host, "cose", &cose).await,
        (true, String::new())
    );
    let cases = [
        ("other", &other, "signs sha256:7777"),
        ("coseother", &cose_other, "signs sha256:7777"),
        ("untrusted", &untrusted, "does not lead to the trust store"),
        (
            "expired",
            &expired,
            "the envelope expired at 2021-01-01T00:00:00Z",
        ),
        (
            "critical",
            &critical,
            "marks header \"io.example.requireApproval\" critical",
        ),
        (
            "stranger",
            &stranger,
            "signed by C=US, O=Acme, CN=intern, which matches no trusted identity",
        ),
        (
            "oldchain",
            &old_chain,
            "its certificate chain is not valid now",
        ),
        ("unsigned", &unsigned, "has no Notation signature"),
    ];
    for (repo, digest, reason) in cases {
        let (allowed, why) = judge(&server, &host, repo, digest).await;
        assert!(!allowed, "{repo}: admitted");
        assert!(why.contains(reason), "{repo}: {why}");
        assert!(why.contains("notation sign"), "{repo}: {why}");
    }
    server.stop().await;
}

/// A signing service's signature (`notary.x509.signingAuthority`) is trusted through the rule's
/// `signingAuthorityStore` only, and outlives its certificate: its authentic signing time is
/// what the chain must have been valid at.
#[tokio::test]
async fn signing_authority_signatures_are_trusted_through_their_own_store() {
    let registry = Registry::start().await;
    let host = registry.host();
    let service = NotationCa::new("Acme Signing Service");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("signer-root.pem");
    std::fs::write(&store, &service.root_pem).unwrap();
    let by_service = |signing_time: &'static str| EnvelopeSpec {
        signing_authority: true,
        leaf_validity: Some(((2021, 1, 1), (2021, 6, 1))),
        signing_time: Some(signing_time),
        ..EnvelopeSpec::default()
    };
    let good = signed(
        &registry,
        &service,
        "sa-good",
        by_service("2021-03-01T12:00:00Z"),
    )
    .await;
    let late = signed(
        &registry,
        &service,
        "sa-late",
        by_service("2021-07-01T12:00:00Z"),
    )
    .await;
    let ca_only = signed(
        &registry,
        &service,
        "ca-only",
        by_service("2021-03-01T12:00:00Z"),
    )
    .await;
    let store = store.display();
    let server = TestServer::start(&[(
        "signed.yaml",
        &format!(
            "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: signed}}\nspec:\n  check: signed-images\n  mode: enforce\n  params:\n    requireDigest: false\n    insecureRegistries: [\"{host}\"]\n    rules:\n      - images: [\"{host}/team/sa-*\"]\n        notation:\n          signingAuthorityStore: [{store}]\n          trustedIdentities: [\"x509.subject: C=US, O=Acme, CN=release\"]\n      - images: [\"{host}/team/ca-*\"]\n        notation:\n          trustStore: [{store}]\n          trustedIdentities: [\"*\"]\n"
        ),
    )])
    .await;
    assert_eq!(
        judge(&server, &host, "sa-good", &good).await,
        (true, String::new())
    );
    let (allowed, why) = judge(&server, &host, "sa-late", &late).await;
    assert!(!allowed, "{why}");
    assert!(
        why.contains("was not valid at its authentic signing time 2021-07-01T12:00:00Z"),
        "{why}"
    );
    let (allowed, why) = judge(&server, &host, "ca-only", &ca_only).await;
    assert!(!allowed, "{why}");
    assert!(
        why.contains("no certificate of it is in the rule's signingAuthorityStore"),
        "{why}"
    );
    server.stop().await;
}
