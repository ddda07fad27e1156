//! The registry harness itself: a real docker-registry takes our images and cosign-style
//! signature artifacts, serves them back byte for byte, and the signatures verify the way a
//! cosign verifier checks them (SPKI PEM key, ECDSA P-256 SHA-256 over the payload, DER).

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::registry::{
    OCI_MANIFEST, Registry, SIGNATURE_ANNOTATION, SIMPLE_SIGNING, TestSigner, http_client,
    sha256_digest, signature_tag, simple_signing_payload,
};
use serde_json::Value;
use x509_parser::prelude::FromDer;

/// GET a manifest: (status, Docker-Content-Digest, body).
async fn get_manifest(registry: &Registry, repo: &str, reference: &str) -> (u16, String, Vec<u8>) {
    let r = registry
        .client()
        .get(format!(
            "{}/v2/{repo}/manifests/{reference}",
            registry.base_url()
        ))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let digest = r
        .headers()
        .get("docker-content-digest")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, digest, r.bytes().await.unwrap().to_vec())
}

async fn get_blob(registry: &Registry, repo: &str, digest: &str) -> Vec<u8> {
    let r = registry
        .client()
        .get(format!("{}/v2/{repo}/blobs/{digest}", registry.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "blob {digest}");
    r.bytes().await.unwrap().to_vec()
}

/// What a verifier does with cosign.pub and a layer: SPKI PEM → EC point → ring verify.
fn verify(public_key_pem: &str, payload: &[u8], signature_b64: &str) -> bool {
    let (rest, pem) = x509_parser::pem::parse_x509_pem(public_key_pem.as_bytes()).unwrap();
    assert!(rest.is_empty());
    assert_eq!(pem.label, "PUBLIC KEY");
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&pem.contents).unwrap();
    assert_eq!(
        spki.algorithm.algorithm,
        x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
    );
    let point = spki.subject_public_key.data.as_ref();
    let signature = STANDARD.decode(signature_b64).unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point)
        .verify(payload, &signature)
        .is_ok()
}

#[test]
fn simple_signing_payload_matches_cosign_byte_for_byte() {
    // Genuine `cosign sign --key` (v3.0.4) output for this image.
    let cosign = r#"{"critical":{"identity":{"docker-reference":"localhost:15381/tobby/fixture"},"image":{"docker-manifest-digest":"sha256:f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268"},"type":"cosign container image signature"},"optional":null}"#;
    let ours = simple_signing_payload(
        "localhost:15381/tobby/fixture",
        "sha256:f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268",
    );
    assert_eq!(String::from_utf8(ours).unwrap(), cosign);
}

#[test]
fn signer_writes_a_cosign_pub_style_key_and_der_signatures() {
    let signer = TestSigner::new();
    let pem = signer.public_key_pem();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
    assert!(
        pem.trim_end().ends_with("-----END PUBLIC KEY-----"),
        "{pem}"
    );
    let signature = signer.sign(b"payload");
    let der = STANDARD.decode(&signature).unwrap();
    assert_eq!(der[0], 0x30, "an ASN.1 SEQUENCE, not a raw r||s pair");
    assert!(verify(&pem, b"payload", &signature));
    assert!(!verify(&pem, b"other payload", &signature));
    assert!(!verify(
        &TestSigner::new().public_key_pem(),
        b"payload",
        &signature
    ));
}

#[tokio::test]
async fn images_and_signatures_round_trip_through_a_real_registry() {
    let registry = Registry::start().await;
    let repo = "shop/app";
    let digest = registry.push_image(repo, "1.0", "app 1.0").await;
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    let other = registry.push_image(repo, "2.0", "app 2.0").await;
    assert_ne!(digest, other, "each seed makes its own image");

    let (status, answered, body) = get_manifest(&registry, repo, "1.0").await;
    assert_eq!(status, 200);
    assert_eq!(answered, digest);
    assert_eq!(sha256_digest(&body), digest);
    let manifest: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(manifest["mediaType"], OCI_MANIFEST);
    let (status, answered, _) = get_manifest(&registry, repo, &digest).await;
    assert_eq!((status, answered.as_str()), (200, digest.as_str()));
    // distribution 2.8 hides OCI manifests from clients that do not accept them.
    let r = registry
        .client()
        .get(format!(
            "{}/v2/{repo}/manifests/{digest}",
            registry.base_url()
        ))
        .header(
            "accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Signed twice (cosign appends a layer for the second signature).
    let alice = TestSigner::new();
    let bob = TestSigner::new();
    let payload = simple_signing_payload(&registry.repository(repo), &digest);
    let layers = vec![alice.layer(payload.clone()), bob.layer(payload.clone())];
    let sig_digest = registry.push_signatures(repo, &digest, &layers).await;

    let tag = signature_tag(&digest);
    assert_eq!(tag, format!("sha256-{}.sig", &digest[7..]));
    let (status, answered, body) = get_manifest(&registry, repo, &tag).await;
    assert_eq!((status, answered.as_str()), (200, sig_digest.as_str()));
    let sig: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sig["schemaVersion"], 2);
    assert_eq!(sig["mediaType"], OCI_MANIFEST);
    assert_eq!(
        sig["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let config = get_blob(&registry, repo, sig["config"]["digest"].as_str().unwrap()).await;
    let config: Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"][0].as_str().unwrap(),
        sha256_digest(&payload)
    );

    let sig_layers = sig["layers"].as_array().unwrap();
    assert_eq!(sig_layers.len(), 2);
    for (layer, signer) in sig_layers.iter().zip([&alice, &bob]) {
        assert_eq!(layer["mediaType"], SIMPLE_SIGNING);
        assert_eq!(layer["size"], payload.len());
        let blob = get_blob(&registry, repo, layer["digest"].as_str().unwrap()).await;
        assert_eq!(blob, payload, "the payload blob round-trips");
        let annotation = layer["annotations"][SIGNATURE_ANNOTATION].as_str().unwrap();
        assert!(verify(&signer.public_key_pem(), &blob, annotation));
        // The payload names the image it signs.
        let claims: Value = serde_json::from_slice(&blob).unwrap();
        assert_eq!(
            claims["critical"]["image"]["docker-manifest-digest"],
            digest.as_str()
        );
        assert_eq!(
            claims["critical"]["identity"]["docker-reference"],
            format!("{}/{repo}", registry.host())
        );
    }
    assert!(!verify(
        &alice.public_key_pem(),
        &payload,
        sig_layers[1]["annotations"][SIGNATURE_ANNOTATION]
            .as_str()
            .unwrap()
    ));

    // Re-signing replaces the tag's artifact; deleting it leaves the image unsigned.
    let resigned = registry.sign_image(repo, &digest, &[&alice]).await;
    assert_ne!(resigned, sig_digest);
    let (_, answered, _) = get_manifest(&registry, repo, &tag).await;
    assert_eq!(answered, resigned);
    registry.delete_manifest(repo, &resigned).await;
    let (status, _, _) = get_manifest(&registry, repo, &tag).await;
    assert_eq!(status, 404);
    // The other image never had signatures.
    let (status, _, _) = get_manifest(&registry, repo, &signature_tag(&other)).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn stop_makes_the_registry_unreachable() {
    let mut registry = Registry::start().await;
    let url = format!("{}/v2/", registry.base_url());
    let r = registry.client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    registry.stop();
    // The harness's pooled connection is dead too; a new connection is refused.
    assert!(registry.client().get(&url).send().await.is_err());
    let err = http_client().get(&url).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut refused = false;
    while let Some(e) = source {
        refused |= e.downcast_ref::<std::io::Error>().map(|e| e.kind())
            == Some(std::io::ErrorKind::ConnectionRefused);
        source = e.source();
    }
    assert!(refused, "{err:?}");
    registry.stop(); // idempotent
}

#[tokio::test]
async fn registries_run_side_by_side() {
    let (a, b) = tokio::join!(Registry::start(), Registry::start());
    assert_ne!(a.host(), b.host());
    let da = a.push_image("x", "t", "same").await;
    let db = b.push_image("x", "t", "same").await;
    assert_eq!(da, db, "images are deterministic in their seed");
}
