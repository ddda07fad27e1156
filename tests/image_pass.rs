//! Issue 19: a review is decoded and evaluated once, however many of its images the verifier
//! had to verify first, and the verdict cache counts each image's lookup once. A test binary
//! of its own: it reads process-wide counters (the `test-seams` feature), which other tests
//! running in parallel would move.

mod common;

use common::registry::{Registry, TestSigner};
use common::{TestServer, pod};
use portier::engine::seams;
use serde_json::json;

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_review_with_two_uncached_images_is_decoded_and_evaluated_once() {
    let registry = Registry::start().await;
    let signer = TestSigner::new();
    let host = registry.host();
    for (repo, seed) in [("team/a", "a"), ("team/b", "b")] {
        let digest = registry.push_image(repo, "v1", seed).await;
        registry.sign_image(repo, &digest, &[&signer]).await;
    }
    let key: String = signer
        .public_key_pem()
        .lines()
        .map(|l| format!("            {l}\n"))
        .collect();
    let policy = format!(
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: signed}}\nspec:\n  check: signed-images\n  params:\n    requireDigest: false\n    insecureRegistries: [\"{host}\"]\n    rules:\n      - images: [\"{host}/team/*\"]\n        keys:\n          - |\n{key}"
    );
    let server = TestServer::start(&[("signed.yaml", &policy)]).await;
    let object = pod(
        "shop",
        vec![
            json!({"name": "a", "image": format!("{host}/team/a:v1")}),
            json!({"name": "b", "image": format!("{host}/team/b:v1")}),
        ],
    );

    let (decodes, evaluations) = (seams::decodes(), seams::evaluations());
    let answer = server.validate(object.clone()).await;
    assert_eq!(answer["allowed"], true, "{answer}");
    assert_eq!(seams::decodes() - decodes, 1, "decoded once");
    assert_eq!(seams::evaluations() - evaluations, 1, "evaluated once");
    let (_, text) = server.get("/metrics").await;
    let hit = r#"portier_image_verdict_cache_total{result="hit"}"#;
    let miss = r#"portier_image_verdict_cache_total{result="miss"}"#;
    assert_eq!(metric(&text, miss), 2.0, "each image missed once:\n{text}");
    assert_eq!(metric(&text, hit), 0.0, "{text}");
    assert_eq!(
        metric(
            &text,
            r#"portier_image_verifications_total{result="verified"}"#
        ),
        2.0
    );

    // From the cache: still one decode and one evaluation, each image a hit, counted once.
    let (decodes, evaluations) = (seams::decodes(), seams::evaluations());
    let answer = server.validate(object).await;
    assert_eq!(answer["allowed"], true, "{answer}");
    assert_eq!(seams::decodes() - decodes, 1);
    assert_eq!(seams::evaluations() - evaluations, 1);
    let (_, text) = server.get("/metrics").await;
    assert_eq!(metric(&text, hit), 2.0, "{text}");
    assert_eq!(metric(&text, miss), 2.0, "{text}");
    server.stop().await;
}
