//! `signed-images` with the formats real pipelines produce today, end to end: a real portier
//! over HTTPS, a real registry (Debian's docker-registry, which has no referrers API, so
//! referrers are found through the referrers tag schema; and the same registry behind a
//! proxy that speaks the referrers API), artifacts made by the harness's own signers
//! (tests/common/signing.rs): cosign v3 bundles with a key or keyless (test Fulcio, Rekor, CT
//! log and `trusted_root.json`), and Notation JWS envelopes (a test CA).

#[path = "../common/mod.rs"]
mod common;
mod keyless;
mod notation;

use common::TestServer;
use common::notation_signing::{EnvelopeSpec, JWS, NOTATION_ARTIFACT, NotationCa};
use common::referrers_api::ReferrersApi;
use common::registry::{Registry, TestSigner, http_client};
use common::signing::{
    BUNDLE_MEDIA_TYPE, BundleSpec, LeafSpec, Sigstore, key_bundle, key_message_bundle,
};
use keyless::{keyless_image, spec};
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
