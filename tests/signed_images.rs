//! `signed-images` end to end: a real portier over HTTPS, a real registry (Debian's
//! docker-registry on 127.0.0.1) holding images and cosign signatures made by the test.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::registry::{Registry, TestSigner, simple_signing_payload};
use common::review_op;
use common::{TestServer, pod, review_bytes};
use serde_json::{Value, json};

/// A `signed-images` policy trusting `keys` for `<registry>/team/*`, the registry spoken to
/// over plain HTTP. `extra` adds params (indented by four spaces). Most tests send tags
/// straight to `/validate`, as a cluster without portier's mutating webhook would, so
/// `requireDigest` is off unless `extra` sets it (its default has tests of its own).
fn policy(name: &str, host: &str, keys: &[String], extra: &str) -> String {
    let extra = if extra.contains("requireDigest") {
        extra.to_owned()
    } else {
        format!("    requireDigest: false\n{extra}")
    };
    let mut keys_yaml = String::new();
    for key in keys {
        keys_yaml.push_str("          - |\n");
        for line in key.lines() {
            keys_yaml.push_str(&format!("            {line}\n"));
        }
    }
    format!(
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: {name}}}\nspec:\n  check: signed-images\n  mode: enforce\n  params:\n    insecureRegistries: [\"{host}\"]\n    rules:\n      - images: [\"{host}/team/*\"]\n        keys:\n{keys_yaml}{extra}"
    )
}

/// A registry holding `team/app:v1` signed by a new key, and a server whose policy trusts
/// that key (`extra` adds params). Returns them with the signer and the image's digest.
async fn signed_app(seed: &str, extra: &str) -> (Registry, TestSigner, String, TestServer) {
    let registry = Registry::start().await;
    let signer = TestSigner::new();
    let digest = registry.push_image("team/app", "v1", seed).await;
    registry.sign_image("team/app", &digest, &[&signer]).await;
    let server = TestServer::start(&[(
        "signed.yaml",
        &policy(
            "signed",
            &registry.host(),
            &[signer.public_key_pem()],
            extra,
        ),
    )])
    .await;
    (registry, signer, digest, server)
}

fn image_pod(images: &[&str]) -> Value {
    let containers = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    pod("shop", containers)
}

/// The value of a metric line (`name{labels}`), 0 when absent.
async fn metric(server: &TestServer, series: &str) -> f64 {
    let (status, text) = server.get("/metrics").await;
    assert_eq!(status, 200);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// `portier_image_verifications_total{result}`.
async fn verifications(server: &TestServer, result: &str) -> f64 {
    metric(
        server,
        &format!(r#"portier_image_verifications_total{{result="{result}"}}"#),
    )
    .await
}

/// Registry round trips of one operation (the latency histogram's count).
async fn registry_calls(server: &TestServer, op: &str) -> f64 {
    metric(
        server,
        &format!(r#"portier_registry_request_duration_seconds_count{{operation="{op}"}}"#),
    )
    .await
}

fn message(response: &Value) -> String {
    response["status"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn a_signed_image_is_admitted_and_its_second_review_is_served_from_cache() {
    let (registry, _signer, _digest, server) = signed_app("app v1", "").await;
    let host = registry.host();

    let image = format!("{host}/team/app:v1");
    let started = std::time::Instant::now();
    let first = server.validate(image_pod(&[&image])).await;
    let cold = started.elapsed();
    assert_eq!(first["allowed"], true, "{first}");
    assert_eq!(verifications(&server, "verified").await, 1.0);
    let hits_before = metric(
        &server,
        r#"portier_image_verdict_cache_total{result="hit"}"#,
    )
    .await;

    let started = std::time::Instant::now();
    let second = server.validate(image_pod(&[&image])).await;
    // Shown with --nocapture (a figure, not an assertion).
    println!(
        "review with a verification: {cold:?}; from the cache: {:?}",
        started.elapsed()
    );
    assert_eq!(second["allowed"], true, "{second}");
    assert_eq!(
        verifications(&server, "verified").await,
        1.0,
        "the second review must not verify again"
    );
    assert_eq!(
        metric(
            &server,
            r#"portier_image_verdict_cache_total{result="hit"}"#
        )
        .await,
        hits_before + 1.0
    );
    // One round trip of each kind, all timed.
    for op in ["resolve", "signature_manifest", "blob"] {
        assert_eq!(registry_calls(&server, op).await, 1.0, "{op}");
    }
    server.stop().await;
}

#[tokio::test]
async fn unsigned_foreign_tampered_and_mismatched_images_are_denied_with_the_reason() {
    let registry = Registry::start().await;
    let trusted = TestSigner::new();
    let stranger = TestSigner::new();
    let host = registry.host();

    let unsigned = registry.push_image("team/unsigned", "v1", "unsigned").await;
    let foreign = registry.push_image("team/foreign", "v1", "foreign").await;
    registry
        .sign_image("team/foreign", &foreign, &[&stranger])
        .await;
    // Tampered: signed by the trusted key, then the payload edited to name the image
    // (the signature no longer matches the bytes).
    let tampered = registry.push_image("team/tampered", "v1", "tampered").await;
    let other = format!("sha256:{}", "1".repeat(64));
    let honest = simple_signing_payload(&registry.repository("team/tampered"), &other);
    let mut layer = trusted.layer(honest);
    layer.payload = simple_signing_payload(&registry.repository("team/tampered"), &tampered);
    registry
        .push_signatures("team/tampered", &tampered, &[layer])
        .await;
    // Digest mismatch: a valid trusted signature of another image, copied to this one.
    let mismatched = registry.push_image("team/copied", "v1", "copied").await;
    let elsewhere = registry.push_image("team/copied", "v0", "copied v0").await;
    let layer = trusted.layer(simple_signing_payload(
        &registry.repository("team/copied"),
        &elsewhere,
    ));
    registry
        .push_signatures("team/copied", &mismatched, &[layer])
        .await;

    let server = TestServer::start(&[(
        "signed.yaml",
        &policy("signed", &host, &[trusted.public_key_pem()], ""),
    )])
    .await;
    let cases = [
        (
            "team/unsigned:v1",
            unsigned.as_str(),
            "has no cosign signature",
        ),
        (
            "team/foreign:v1",
            foreign.as_str(),
            "none verifies with a trusted key: signed by another key",
        ),
        (
            "team/tampered:v1",
            tampered.as_str(),
            "the payload was changed after signing",
        ),
        ("team/copied:v1", mismatched.as_str(), "for another digest"),
    ];
    for (image, digest, reason) in cases {
        let image = format!("{host}/{image}");
        let response = server.validate(image_pod(&[&image])).await;
        assert_eq!(response["allowed"], false, "{image}: {response}");
        let message = message(&response);
        assert!(message.contains(reason), "{image}: {message}");
        assert!(
            message.contains(digest),
            "{image} names its digest: {message}"
        );
        assert!(
            message.contains("spec.containers[0].image"),
            "{image} names the field: {message}"
        );
        assert!(message.contains("cosign sign --key"), "{message}");
    }
    assert_eq!(verifications(&server, "rejected").await, 4.0);
    // Rejections are cached too (negative caching): asking again costs no verification.
    let again = server
        .validate(image_pod(&[&format!("{host}/team/unsigned:v1")]))
        .await;
    assert_eq!(again["allowed"], false);
    assert_eq!(verifications(&server, "rejected").await, 4.0);
    server.stop().await;
}

#[tokio::test]
async fn a_digest_pinned_image_skips_the_tag_lookup_and_other_images_are_not_judged() {
    let (registry, _signer, digest, server) = signed_app("pinned", "").await;
    let host = registry.host();
    let pinned = format!("{host}/team/app@{digest}");
    let response = server
        .validate(image_pod(&[&pinned, "nginx:1.27", "quay.io/other/app:v1"]))
        .await;
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(registry_calls(&server, "resolve").await, 0.0);
    assert_eq!(
        verifications(&server, "verified").await,
        1.0,
        "only the image a rule matches is verified"
    );
    server.stop().await;
}

#[tokio::test]
async fn n_keys_and_m_signatures_fetch_each_artifact_once() {
    let registry = Registry::start().await;
    let keys: Vec<TestSigner> = (0..3).map(|_| TestSigner::new()).collect();
    let strangers: Vec<TestSigner> = (0..2).map(|_| TestSigner::new()).collect();
    let digest = registry.push_image("team/app", "v1", "many").await;
    // Three signatures: two by strangers, the last by the third trusted key.
    registry
        .sign_image(
            "team/app",
            &digest,
            &[&strangers[0], &strangers[1], &keys[2]],
        )
        .await;
    let host = registry.host();
    let pems: Vec<String> = keys.iter().map(TestSigner::public_key_pem).collect();
    let server = TestServer::start(&[("signed.yaml", &policy("signed", &host, &pems, ""))]).await;
    let response = server
        .validate(image_pod(&[&format!("{host}/team/app:v1")]))
        .await;
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(registry_calls(&server, "signature_manifest").await, 1.0);
    // One fetch per signature, not one per (key, signature).
    assert_eq!(registry_calls(&server, "blob").await, 3.0);
    server.stop().await;
}

#[tokio::test]
async fn concurrent_reviews_of_one_image_share_one_verification() {
    let (registry, _signer, _digest, server) = signed_app("shared", "").await;
    let host = registry.host();
    let image = format!("{host}/team/app:v1");
    let body = review_bytes(&image_pod(&[&image]));
    let reviews: Vec<_> = (0..16)
        .map(|_| {
            let client = server.client.clone();
            let url = format!("{}/validate", server.base);
            let body = body.clone();
            tokio::spawn(async move {
                let r = client.post(url).body(body).send().await.unwrap();
                r.json::<Value>().await.unwrap()
            })
        })
        .collect();
    for review in reviews {
        let answer = review.await.unwrap();
        assert_eq!(answer["response"]["allowed"], true, "{answer}");
    }
    assert_eq!(verifications(&server, "verified").await, 1.0);
    assert_eq!(registry_calls(&server, "signature_manifest").await, 1.0);
    server.stop().await;
}

#[tokio::test]
async fn a_stopped_registry_falls_to_on_registry_error() {
    let mut registry = Registry::start().await;
    let signer = TestSigner::new();
    let host = registry.host();
    let digest = registry.push_image("team/app", "v1", "outage").await;
    registry.sign_image("team/app", &digest, &[&signer]).await;
    let never_seen = registry.push_image("team/app", "v2", "not yet").await;
    registry
        .sign_image("team/app", &never_seen, &[&signer])
        .await;
    let deny = TestServer::start(&[(
        "signed.yaml",
        &policy("signed", &host, &[signer.public_key_pem()], ""),
    )])
    .await;
    let allow = TestServer::start(&[(
        "signed.yaml",
        &policy(
            "signed",
            &host,
            &[signer.public_key_pem()],
            "    onRegistryError: allow\n",
        ),
    )])
    .await;
    // Verified while the registry is up: the cached verdict outlives the outage.
    let image = format!("{host}/team/app:v1");
    assert_eq!(deny.validate(image_pod(&[&image])).await["allowed"], true);
    registry.stop();

    let cached = deny.validate(image_pod(&[&image])).await;
    assert_eq!(cached["allowed"], true, "{cached}");

    // The same digest by another name is the same verdict; another digest needs the registry.
    let same = deny
        .validate(image_pod(&[&format!("{host}/team/app@{digest}")]))
        .await;
    assert_eq!(same["allowed"], true, "{same}");
    let unseen = format!("{host}/team/app@{never_seen}");
    let denied = deny.validate(image_pod(&[&unseen])).await;
    assert_eq!(denied["allowed"], false, "{denied}");
    let message = message(&denied);
    assert!(message.contains("could not be verified"), "{message}");
    assert!(message.contains("unreachable"), "{message}");

    let allowed = allow.validate(image_pod(&[&unseen])).await;
    assert_eq!(allowed["allowed"], true, "{allowed}");
    let warning = allowed["warnings"][0].as_str().unwrap_or("");
    assert!(warning.starts_with("signed/signed-images"), "{allowed}");
    let annotation = allowed["auditAnnotations"]["signed"].as_str().unwrap_or("");
    assert!(annotation.contains("unreachable"), "{allowed}");
    assert_eq!(verifications(&allow, "unavailable").await, 1.0);
    deny.stop().await;
    allow.stop().await;
}

#[tokio::test]
async fn a_registry_that_never_answers_is_cut_off_at_the_timeout() {
    // Accepts connections and never answers: what a hung registry looks like.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let signer = TestSigner::new();
    let server = TestServer::start(&[(
        "signed.yaml",
        &policy(
            "signed",
            &host,
            &[signer.public_key_pem()],
            "    timeout: 300ms\n",
        ),
    )])
    .await;
    let started = std::time::Instant::now();
    let response = server
        .validate(image_pod(&[&format!("{host}/team/app:v1")]))
        .await;
    assert_eq!(response["allowed"], false, "{response}");
    assert!(message(&response).contains("300ms"), "{response}");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "answered before the review deadline"
    );
    server.stop().await;
    hold.abort();
}

#[tokio::test]
async fn mutate_digest_pins_a_verified_tag_to_its_digest() {
    let (registry, _signer, digest, server) =
        signed_app("pin me", "    mutateDigest: true\n").await;
    let unsigned = registry.push_image("team/unsigned", "v1", "not me").await;
    let host = registry.host();
    let image = format!("{host}/team/app:v1");
    let other = format!("{host}/team/unsigned:v1");
    let object = image_pod(&[&image, &other, "nginx:1.27"]);
    let (status, answer) = server.post("/mutate", review_bytes(&object)).await;
    assert_eq!(status, 200, "{answer}");
    let response = &answer["response"];
    assert_eq!(response["allowed"], true, "{answer}");
    assert_eq!(response["patchType"], "JSONPatch", "{answer}");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().unwrap())
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    let containers = &patched["spec"]["containers"];
    assert_eq!(containers[0]["image"], format!("{image}@{digest}"));
    assert_eq!(
        containers[1]["image"],
        other.as_str(),
        "unverified: left alone"
    );
    assert_eq!(containers[2]["image"], "nginx:1.27", "no rule: left alone");
    assert_eq!(
        patched["metadata"]["annotations"]["portier.dev/mutated-by"],
        "signed"
    );
    // The pinned pod validates from the cache (the digest's verdict) and mutates no further.
    let again = server.validate(patched.clone()).await;
    assert_eq!(again["allowed"], false, "the unsigned image still denies");
    assert!(message(&again).contains(&unsigned), "{again}");
    let (_, second) = server.post("/mutate", review_bytes(&patched)).await;
    assert!(second["response"]["patch"].is_null(), "{second}");
    server.stop().await;
}

/// `keys` as the YAML list items of a rule, indented for [`policy`]'s layout.
fn keys_yaml(keys: &[String]) -> String {
    let mut out = String::new();
    for key in keys {
        out.push_str("          - |\n");
        for line in key.lines() {
            out.push_str(&format!("            {line}\n"));
        }
    }
    out
}

/// Docker Hub, reached through a mirror: the test registry stands in for it (`registryMirrors`),
/// so every spelling of a Docker Hub name goes to loopback, never to the network.
async fn docker_hub(extra: &str) -> (Registry, TestSigner, TestServer) {
    let registry = Registry::start().await;
    let host = registry.host();
    let signer = TestSigner::new();
    let signed = registry
        .push_image("library/signed", "1.0", "hub signed")
        .await;
    // cosign names Docker Hub as go-containerregistry does: index.docker.io.
    let layer = signer.layer(simple_signing_payload(
        "index.docker.io/library/signed",
        &signed,
    ));
    registry
        .push_signatures("library/signed", &signed, &[layer])
        .await;
    registry
        .push_image("library/unsigned", "1.0", "hub unsigned")
        .await;
    let policy = format!(
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: hub}}\nspec:\n  check: signed-images\n  params:\n    insecureRegistries: [\"{host}\"]\n    registryMirrors: {{docker.io: \"{host}\"}}\n{extra}    rules:\n      - images: [\"docker.io/library/*\"]\n        keys:\n{}",
        keys_yaml(&[signer.public_key_pem()])
    );
    let server = TestServer::start(&[("hub.yaml", &policy)]).await;
    (registry, signer, server)
}

/// Issue 18: every spelling the runtime pulls as one Docker Hub image gets one verdict, and
/// shares one verification.
#[tokio::test]
async fn every_docker_hub_spelling_gets_the_same_verdict() {
    let (_registry, _signer, server) = docker_hub("    requireDigest: false\n").await;
    let spellings = |name: &str| {
        [
            format!("{name}:1.0"),
            format!("library/{name}:1.0"),
            format!("docker.io/library/{name}:1.0"),
            format!("docker.io/{name}:1.0"),
            format!("index.docker.io/library/{name}:1.0"),
            format!("index.docker.io/{name}:1.0"),
        ]
    };
    for image in spellings("signed") {
        let response = server.validate(image_pod(&[&image])).await;
        assert_eq!(response["allowed"], true, "{image}: {response}");
    }
    for image in spellings("unsigned") {
        let response = server.validate(image_pod(&[&image])).await;
        assert_eq!(response["allowed"], false, "{image}: {response}");
        let message = message(&response);
        assert!(
            message.contains("image docker.io/library/unsigned:1.0 (sha256:"),
            "{image}: the canonical name: {message}"
        );
        assert!(message.contains("has no cosign signature"), "{message}");
    }
    // One verification per image, whatever the spelling: the cache is keyed canonically.
    assert_eq!(verifications(&server, "verified").await, 1.0);
    assert_eq!(verifications(&server, "rejected").await, 1.0);
    assert_eq!(registry_calls(&server, "resolve").await, 2.0);
    server.stop().await;
}

/// A text that is no image reference is denied by a signed-images policy whatever its rules
/// match; `unmatchedImages: deny` denies what no rule judges.
#[tokio::test]
async fn unparsable_and_unmatched_images_fail_closed() {
    let (_registry, _signer, server) =
        docker_hub("    requireDigest: false\n    unmatchedImages: deny\n").await;
    for bad in [
        "docker.io/library/Signed:1.0",
        "signed:1.0 ",
        "signed@sha256:abc",
        "quay.io/x/y:1",
        "registry-1.docker.io/library/signed:1.0",
    ] {
        let response = server.validate(image_pod(&[bad])).await;
        assert_eq!(response["allowed"], false, "{bad:?}: {response}");
        let message = message(&response);
        assert!(
            message.contains("is not a valid image reference")
                || message.contains("is judged by no rule"),
            "{bad:?}: {message}"
        );
        assert!(message.contains("spec.containers[0].image"), "{message}");
    }
    let fine = server.validate(image_pod(&["signed:1.0"])).await;
    assert_eq!(fine["allowed"], true, "{fine}");
    server.stop().await;
}

/// Issue 18's tag race: a tag verified at admission and re-pushed before the pull must not
/// run the new image. `/mutate` pins the verified digest (the default), `/validate` refuses a
/// tag it did not pin (`requireDigest`, default: on with `mutateDigest`).
#[tokio::test]
async fn the_tag_race_is_closed_by_pinning_and_requiring_digests() {
    let registry = Registry::start().await;
    let signer = TestSigner::new();
    let host = registry.host();
    let signed = registry.push_image("team/app", "v1", "release v1").await;
    registry.sign_image("team/app", &signed, &[&signer]).await;
    // Defaults: mutateDigest and requireDigest on.
    let server = TestServer::start(&[(
        "signed.yaml",
        &policy(
            "signed",
            &host,
            &[signer.public_key_pem()],
            "    requireDigest: true\n",
        ),
    )])
    .await;
    let tag = format!("{host}/team/app:v1");
    let object = image_pod(&[&tag]);
    let (status, answer) = server.post("/mutate", review_bytes(&object)).await;
    assert_eq!(status, 200, "{answer}");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(answer["response"]["patch"].as_str().expect("a patch"))
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
    let mut pinned_pod = object.clone();
    json_patch::patch(&mut pinned_pod, &patch).unwrap();
    let pinned = pinned_pod["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(pinned, format!("{tag}@{signed}"));

    // The tag is re-pushed with an unsigned image.
    let unsigned = registry.push_image("team/app", "v1", "evil v1").await;
    assert_ne!(unsigned, signed);

    // The pinned pod still names the signed digest and is admitted (as an UPDATE too).
    let admitted = server.validate(pinned_pod.clone()).await;
    assert_eq!(admitted["allowed"], true, "{admitted}");
    let (_, update) = server
        .post(
            "/validate",
            serde_json::to_vec(&review_op(&pinned_pod, "UPDATE")).unwrap(),
        )
        .await;
    assert_eq!(update["response"]["allowed"], true, "{update}");
    // A tag-only reference is refused, whatever it resolves to now.
    let refused = server.validate(image_pod(&[&tag])).await;
    assert_eq!(refused["allowed"], false, "{refused}");
    assert!(
        message(&refused).contains("is not pinned to a digest"),
        "{refused}"
    );
    // The re-pushed digest pinned explicitly is refused for what it is.
    let evil = server
        .validate(image_pod(&[&format!("{tag}@{unsigned}")]))
        .await;
    assert_eq!(evil["allowed"], false, "{evil}");
    assert!(message(&evil).contains("has no cosign signature"), "{evil}");
    server.stop().await;
}
