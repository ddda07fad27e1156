//! `signed-images` with the formats real pipelines produce today, end to end: a real portier
//! over HTTPS, a real registry (Debian's docker-registry, which has no referrers API, so
//! referrers are found through the referrers tag schema; and the same registry behind a
//! proxy that speaks the referrers API), artifacts made by the harness's own signers
//! (tests/common/signing.rs): cosign v3 bundles with a key or keyless (test Fulcio, Rekor, CT
//! log and `trusted_root.json`), and Notation JWS envelopes (a test CA).

mod common;

use common::TestServer;
use common::referrers_api::ReferrersApi;
use common::registry::{Registry, TestSigner, http_client};
use common::signing::{
    BUNDLE_MEDIA_TYPE, BundleSpec, EnvelopeSpec, JWS, LeafSpec, NOTATION_ARTIFACT, NotationCa,
    Sigstore, key_bundle, key_message_bundle,
};
use serde_json::{Value, json};

const ISSUER: &str = "https://token.actions.githubusercontent.com";
const WORKFLOW: &str =
    "https://github.com/acme/shop/.github/workflows/release.yml@refs/tags/v1.2.0";

/// A `signed-images` policy over `<host>/team/*` whose rule trusts `trust` (YAML lines of the
/// rule after `images`, indented by eight spaces).
fn policy(host: &str, trust: &str) -> String {
    format!(
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: signed}}\nspec:\n  check: signed-images\n  mode: enforce\n  params:\n    requireDigest: false\n    insecureRegistries: [\"{host}\"]\n    rules:\n      - images: [\"{host}/team/*\"]\n{trust}"
    )
}

fn keys_trust(signer: &TestSigner) -> String {
    let mut out = String::from("        keys:\n          - |\n");
    for line in signer.public_key_pem().lines() {
        out.push_str(&format!("            {line}\n"));
    }
    out
}

fn keyless_trust(root: &std::path::Path, identities: &str) -> String {
    format!(
        "        keyless:\n          trustedRoot: {}\n          identities:\n{identities}",
        root.display()
    )
}

fn workflow_identity() -> String {
    format!(
        "            - issuer: {ISSUER}\n              subjectRegExp: '^https://github\\.com/acme/.+/\\.github/workflows/release\\.yml@refs/tags/v.+$'\n"
    )
}

fn notation_trust(ca: &std::path::Path, identity: &str) -> String {
    format!(
        "        notation:\n          trustStore: [{}]\n          trustedIdentities: [\"{identity}\"]\n",
        ca.display()
    )
}

fn pod(images: &[&str]) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    common::pod("shop", containers)
}

fn message(response: &Value) -> String {
    response["status"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

async fn metric(server: &TestServer, series: &str) -> f64 {
    let (_, text) = server.get("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

async fn registry_calls(server: &TestServer, op: &str) -> f64 {
    metric(
        server,
        &format!(r#"portier_registry_request_duration_seconds_count{{operation="{op}"}}"#),
    )
    .await
}

/// Pushes `blob` as a referrer of `digest` and lists it in the referrers tag schema's index
/// (what cosign v3 and notation do on a registry without the referrers API).
async fn attach(
    registry: &Registry,
    repo: &str,
    digest: &str,
    artifact_type: &str,
    layer_type: &str,
    blob: &[u8],
) {
    let descriptor = registry
        .push_referrer(repo, digest, 500, artifact_type, layer_type, blob)
        .await;
    registry.tag_referrers(repo, digest, &[descriptor]).await;
}

/// Asks `server` about `<host>/team/<repo>@<digest>`: (allowed, message).
async fn judge(server: &TestServer, host: &str, repo: &str, digest: &str) -> (bool, String) {
    let image = format!("{host}/team/{repo}@{digest}");
    let response = server.validate(pod(&[&image])).await;
    (response["allowed"] == true, message(&response))
}

#[tokio::test]
async fn cosign_v3_key_bundles_are_found_through_the_referrers_tag_schema() {
    let registry = Registry::start().await;
    let host = registry.host();
    let signer = TestSigner::new();
    let stranger = TestSigner::new();
    // DSSE bundle (cosign v3 `sign --key`).
    let dsse = registry.push_image("team/dsse", "v1", "dsse").await;
    let repo = registry.repository("team/dsse");
    attach(
        &registry,
        "team/dsse",
        &dsse,
        BUNDLE_MEDIA_TYPE,
        BUNDLE_MEDIA_TYPE,
        &key_bundle(&signer, &repo, &dsse),
    )
    .await;
    // Message-signature bundle over the manifest bytes.
    let (message_digest, manifest) = registry
        .push_image_manifest("team/message", "v1", "message")
        .await;
    attach(
        &registry,
        "team/message",
        &message_digest,
        BUNDLE_MEDIA_TYPE,
        BUNDLE_MEDIA_TYPE,
        &key_message_bundle(&signer, &manifest),
    )
    .await;
    // Signed by another key.
    let foreign = registry.push_image("team/foreign", "v1", "foreign").await;
    let repo = registry.repository("team/foreign");
    attach(
        &registry,
        "team/foreign",
        &foreign,
        BUNDLE_MEDIA_TYPE,
        BUNDLE_MEDIA_TYPE,
        &key_bundle(&stranger, &repo, &foreign),
    )
    .await;
    // A trusted bundle of another image, attached to this one.
    let copied = registry.push_image("team/copied", "v1", "copied").await;
    let elsewhere = registry.push_image("team/copied", "v0", "copied v0").await;
    let repo = registry.repository("team/copied");
    attach(
        &registry,
        "team/copied",
        &copied,
        BUNDLE_MEDIA_TYPE,
        BUNDLE_MEDIA_TYPE,
        &key_bundle(&signer, &repo, &elsewhere),
    )
    .await;
    let unsigned = registry.push_image("team/unsigned", "v1", "unsigned").await;

    let server = TestServer::start(&[("signed.yaml", &policy(&host, &keys_trust(&signer)))]).await;
    assert_eq!(
        judge(&server, &host, "dsse", &dsse).await,
        (true, String::new())
    );
    assert_eq!(registry_calls(&server, "referrers").await, 1.0);
    assert_eq!(
        judge(&server, &host, "message", &message_digest).await,
        (true, String::new())
    );
    assert_eq!(
        registry_calls(&server, "image_manifest").await,
        1.0,
        "a message signature reads the manifest it signs"
    );
    let (allowed, why) = judge(&server, &host, "foreign", &foreign).await;
    assert!(
        !allowed && why.contains("none verifies with a trusted key"),
        "{why}"
    );
    let (allowed, why) = judge(&server, &host, "copied", &copied).await;
    assert!(
        !allowed && why.contains(&format!("for another digest ({elsewhere})")),
        "{why}"
    );
    let (allowed, why) = judge(&server, &host, "unsigned", &unsigned).await;
    assert!(!allowed && why.contains("has no cosign signature"), "{why}");
    server.stop().await;
}

#[tokio::test]
async fn a_registry_with_both_formats_is_read_once_per_verification() {
    let registry = Registry::start().await;
    let host = registry.host();
    let signer = TestSigner::new();
    let stranger = TestSigner::new();
    let digest = registry.push_image("team/app", "v1", "both").await;
    // The legacy tag holds a stranger's signature; the bundle is the trusted key's.
    registry.sign_image("team/app", &digest, &[&stranger]).await;
    let repo = registry.repository("team/app");
    attach(
        &registry,
        "team/app",
        &digest,
        BUNDLE_MEDIA_TYPE,
        BUNDLE_MEDIA_TYPE,
        &key_bundle(&signer, &repo, &digest),
    )
    .await;
    let server = TestServer::start(&[("signed.yaml", &policy(&host, &keys_trust(&signer)))]).await;
    assert_eq!(
        judge(&server, &host, "app", &digest).await,
        (true, String::new())
    );
    // The legacy tag once, the referrers once, the bundle's manifest once; two blobs.
    assert_eq!(registry_calls(&server, "signature_manifest").await, 2.0);
    assert_eq!(registry_calls(&server, "referrers").await, 1.0);
    assert_eq!(registry_calls(&server, "blob").await, 2.0);
    server.stop().await;
}

#[tokio::test]
async fn the_referrers_api_is_asked_where_the_registry_speaks_it() {
    let api = ReferrersApi::start().await;
    let registry = &api.registry;
    let host = api.host().to_owned();
    let sigstore = Sigstore::new();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("trusted_root.json");
    sigstore.write_trusted_root(&root);
    let digest = registry.push_image("team/app", "v1", "api").await;
    let bundle = sigstore.keyless_bundle(
        &format!("{host}/team/app"),
        &digest,
        &BundleSpec {
            leaf: LeafSpec::new(WORKFLOW, ISSUER),
            statement_digest: None,
            tamper_entry: None,
        },
    );
    // Pushed through the proxy (which indexes it as a registry with the API does); no
    // referrers tag is written.
    let through = Registry::at(&host);
    through
        .push_referrer(
            "team/app",
            &digest,
            500,
            BUNDLE_MEDIA_TYPE,
            BUNDLE_MEDIA_TYPE,
            &bundle,
        )
        .await;
    let tag = format!(
        "{}/v2/team/app/manifests/{}",
        registry.base_url(),
        digest.replace(':', "-")
    );
    assert_eq!(http_client().get(tag).send().await.unwrap().status(), 404);

    let server = TestServer::start(&[(
        "signed.yaml",
        &policy(&host, &keyless_trust(&root, &workflow_identity())),
    )])
    .await;
    let (allowed, why) = judge(&server, &host, "app", &digest).await;
    assert!(allowed, "{why}");
    assert_eq!(api.listed(), 1, "the referrers API answered");
    // Nothing refers to an unsigned image: an empty list, not a 404.
    let unsigned = registry.push_image("team/bare", "v1", "bare").await;
    let (allowed, why) = judge(&server, &host, "bare", &unsigned).await;
    assert!(!allowed && why.contains("has no Sigstore bundle"), "{why}");
    assert_eq!(api.listed(), 2);
    server.stop().await;
}

/// A keyless bundle for `team/<repo>` made by `sigstore` as `spec` says, attached through the
/// referrers tag schema; returns the image digest.
async fn keyless_image(
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

fn spec(leaf: LeafSpec) -> BundleSpec {
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

#[tokio::test]
async fn notation_signatures_verify_against_the_trust_store_and_each_failure_says_why() {
    let registry = Registry::start().await;
    let host = registry.host();
    let ca = NotationCa::new("Acme Release CA");
    let other_ca = NotationCa::new("Somebody else");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("acme-ca.pem");
    std::fs::write(&store, &ca.root_pem).unwrap();

    async fn signed(
        registry: &Registry,
        ca: &NotationCa,
        repo: &str,
        spec: EnvelopeSpec,
    ) -> String {
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
                JWS,
                &envelope,
            )
            .await;
        registry
            .tag_referrers(&format!("team/{repo}"), &digest, &[descriptor])
            .await;
        digest
    }
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
    let cases = [
        ("other", &other, "signs sha256:7777"),
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
        ("oldchain", &old_chain, "does not lead to the trust store"),
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

#[tokio::test]
async fn a_verified_legacy_signature_decides_without_asking_for_referrers() {
    let registry = Registry::start().await;
    let host = registry.host();
    let signer = TestSigner::new();
    let legacy = registry.push_image("team/legacy", "v1", "legacy").await;
    registry
        .sign_image("team/legacy", &legacy, &[&signer])
        .await;
    let server = TestServer::start(&[("signed.yaml", &policy(&host, &keys_trust(&signer)))]).await;
    assert_eq!(
        judge(&server, &host, "legacy", &legacy).await,
        (true, String::new())
    );
    assert_eq!(
        registry_calls(&server, "referrers").await,
        0.0,
        "a verified legacy signature decides"
    );
    server.stop().await;
}

/// A rotated key Secret is read again without a restart: the mounted file changes (the
/// kubelet swaps a `..data` link; here the file is replaced), the set is compiled again with
/// the new key, and no verdict reached under the old key is reused.
#[tokio::test]
async fn a_rotated_key_file_is_read_again_without_a_restart() {
    let registry = Registry::start().await;
    let host = registry.host();
    let old = TestSigner::new();
    let new = TestSigner::new();
    let digest = registry.push_image("team/app", "v2", "rotated").await;
    let repo = registry.repository("team/app");
    attach(
        &registry,
        "team/app",
        &digest,
        BUNDLE_MEDIA_TYPE,
        BUNDLE_MEDIA_TYPE,
        &key_bundle(&new, &repo, &digest),
    )
    .await;
    let secret = tempfile::tempdir().unwrap();
    let key_file = secret.path().join("cosign.pub");
    std::fs::write(&key_file, old.public_key_pem()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("signed.yaml"),
        policy(
            &host,
            &format!("        keyFiles: [{}]\n", key_file.display()),
        ),
    )
    .unwrap();
    // A long backup poll: the change must be seen through file events.
    let server = TestServer::start_in(dir, std::time::Duration::from_secs(60)).await;
    let (allowed, why) = judge(&server, &host, "app", &digest).await;
    assert!(
        !allowed && why.contains("none verifies with a trusted key"),
        "{why}"
    );

    let replacement = secret.path().join("cosign.pub.new");
    std::fs::write(&replacement, new.public_key_pem()).unwrap();
    std::fs::rename(&replacement, &key_file).unwrap();
    let started = std::time::Instant::now();
    loop {
        if judge(&server, &host, "app", &digest).await.0 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the rotated key was not read within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.stop().await;
}

/// `portier check --verify-images` verifies every format through the same image pass as the
/// webhook (and `portier audit`): one run, one keyless-signed, one Notation-signed and one
/// unsigned image; only the unsigned one is reported.
#[tokio::test]
async fn check_verify_images_judges_every_format_as_admission_does() {
    let registry = Registry::start().await;
    let host = registry.host();
    let sigstore = Sigstore::new();
    let ca = NotationCa::new("Acme Release CA");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("trusted_root.json");
    sigstore.write_trusted_root(&root);
    let store = dir.path().join("acme-ca.pem");
    std::fs::write(&store, &ca.root_pem).unwrap();
    let keyless = keyless_image(
        &registry,
        &sigstore,
        "keyless",
        spec(LeafSpec::new(WORKFLOW, ISSUER)),
    )
    .await;
    let (notation, manifest) = registry
        .push_image_manifest("team/notation", "v1", "n")
        .await;
    let envelope = ca.envelope(&notation, manifest.len(), &EnvelopeSpec::default());
    attach(
        &registry,
        "team/notation",
        &notation,
        NOTATION_ARTIFACT,
        JWS,
        &envelope,
    )
    .await;
    let unsigned = registry
        .push_image("team/notation-unsigned", "v1", "u")
        .await;

    let policies = tempfile::tempdir().unwrap();
    std::fs::write(
        policies.path().join("signed.yaml"),
        format!(
            "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: signed}}\nspec:\n  check: signed-images\n  params:\n    insecureRegistries: [\"{host}\"]\n    rules:\n      - images: [\"{host}/team/keyless*\"]\n{}      - images: [\"{host}/team/notation*\"]\n{}",
            keyless_trust(&root, &workflow_identity()),
            notation_trust(&store, "*")
        ),
    )
    .unwrap();
    let pods: String = [
        ("a", format!("{host}/team/keyless@{keyless}")),
        ("b", format!("{host}/team/notation@{notation}")),
        ("c", format!("{host}/team/notation-unsigned@{unsigned}")),
    ]
    .iter()
    .map(|(name, image)| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec: {{containers: [{{name: c, image: \"{image}\"}}]}}\n---\n")
    })
    .collect();
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portier"))
            .args(["check", "--policies"])
            .arg(policies.path())
            .args(["--verify-images", "-o", "json", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(pods.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_str(&stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["name"], "c");
    let message = rows[0]["message"].as_str().unwrap();
    assert!(message.contains("has no Notation signature"), "{message}");
}

/// A registry without the referrers API that rate-limits the referrers tag: that is a registry
/// error (onRegistryError decides), not "no signature". (A stand-in server: the real registry
/// cannot be made to answer 429.)
#[tokio::test]
async fn a_rate_limited_referrers_tag_is_a_registry_error_not_an_unsigned_image() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let router = axum::Router::new().fallback(
        |request: axum::http::Request<axum::body::Body>| async move {
            let path = request.uri().path().to_owned();
            let (status, body) = if path == "/v2/" {
                (200, "{}".to_owned())
            } else if path.contains("/manifests/sha256-") {
                (
                    429,
                    r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#.to_owned(),
                )
            } else {
                (
                    404,
                    r#"{"errors":[{"code":"NOT_FOUND","message":"no"}]}"#.to_owned(),
                )
            };
            axum::http::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body))
                .unwrap()
        },
    );
    let serve = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let sigstore = Sigstore::new();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("trusted_root.json");
    sigstore.write_trusted_root(&root);
    let server = TestServer::start(&[(
        "signed.yaml",
        &policy(&host, &keyless_trust(&root, &workflow_identity())),
    )])
    .await;
    let digest = format!("sha256:{}", "5".repeat(64));
    let (allowed, why) = judge(&server, &host, "app", &digest).await;
    assert!(!allowed, "{why}");
    assert!(
        why.contains("could not be verified") && why.contains("429"),
        "{why}"
    );
    server.stop().await;
    serve.abort();
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
