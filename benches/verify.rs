//! Cold verification of each signature format against a real registry on loopback (Debian's
//! docker-registry; the referrers API through the test proxy), and the in-process cost of
//! each format's checks. Not criterion: a verification is registry I/O, so this reports the
//! distribution of N cold verifications (each image verified once, the registry client warm).
//!
//! `cargo bench --bench verify` (needs docker-registry, as the tests do). Figures in
//! BENCHMARKS.md.

#![allow(dead_code)]

#[path = "../tests/common/notation_signing.rs"]
mod notation_signing;
#[path = "../tests/common/referrers_api.rs"]
mod referrers_api;
#[path = "../tests/common/registry.rs"]
mod registry;
#[path = "../tests/common/signing.rs"]
mod signing;

use std::sync::Arc;
use std::time::{Duration, Instant};

use notation_signing::{EnvelopeSpec, JWS, NOTATION_ARTIFACT, NotationCa};
use portier::images::{
    ImageVerdict, Requirement, Trust, Verifier, bundle, cosign, keyless, notation,
};
use portier::metrics::Metrics;
use portier::policy::{Check, PolicySet};
use registry::{Registry, TestSigner};
use signing::{BUNDLE_MEDIA_TYPE, BundleSpec, LeafSpec, Sigstore, key_bundle};

/// Images per format under `cargo bench`; `cargo test --all-targets` runs this binary too,
/// without `--bench`, as a smoke test with a few.
fn n() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        30
    } else {
        2
    }
}
const ISSUER: &str = "https://token.actions.githubusercontent.com";
const WORKFLOW: &str =
    "https://github.com/acme/shop/.github/workflows/release.yml@refs/tags/v1.2.0";

fn requirements(yaml: &str) -> Vec<Arc<Requirement>> {
    let set = PolicySet::from_yaml("bench.yaml", yaml).expect("policy compiles");
    match &set.policies()[0].check {
        Check::SignedImages(params) => params
            .rules
            .iter()
            .map(|r| Arc::clone(&r.requirement))
            .collect(),
        _ => panic!("a signed-images policy"),
    }
}

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<44} n={:<3} min {:>6.2} ms  median {:>6.2} ms  p90 {:>6.2} ms  max {:>6.2} ms",
        times.len(),
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() * 9 / 10]),
        ms(times[times.len() - 1]),
    );
}

async fn cold(
    verifier: &Arc<Verifier>,
    rule: &Arc<Requirement>,
    images: &[String],
) -> Vec<Duration> {
    let mut times = Vec::with_capacity(images.len());
    for image in images {
        let started = Instant::now();
        let verdicts = verifier
            .verify_all(
                vec![(Arc::clone(rule), image.as_str().into())],
                tokio::time::Instant::now() + Duration::from_secs(10),
            )
            .await;
        times.push(started.elapsed());
        assert!(
            matches!(*verdicts[0].2, ImageVerdict::Verified { .. }),
            "{image}: {:?}",
            verdicts[0].2
        );
    }
    times
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let registry = Registry::start().await;
    let api = referrers_api::ReferrersApi::start().await;
    let host = registry.host();
    let signer = TestSigner::new();
    let sigstore = Sigstore::new();
    let ca = NotationCa::new("Acme Release CA");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("trusted_root.json");
    sigstore.write_trusted_root(&root);
    let store = dir.path().join("ca.pem");
    std::fs::write(&store, &ca.root_pem).unwrap();

    // N + 1 images per format (the first warms the client), attached as each tool does.
    let mut legacy = Vec::new();
    let mut bundles = Vec::new();
    let mut keyless = Vec::new();
    let mut notation = Vec::new();
    let mut via_api = Vec::new();
    let through = Registry::at(api.host());
    for i in 0..=n() {
        let d = registry
            .push_image("team/legacy", "v1", &format!("l{i}"))
            .await;
        registry.sign_image("team/legacy", &d, &[&signer]).await;
        legacy.push(format!("{host}/team/legacy@{d}"));

        let d = registry
            .push_image("team/bundle", "v1", &format!("b{i}"))
            .await;
        let blob = key_bundle(&signer, &registry.repository("team/bundle"), &d);
        let r = registry
            .push_referrer(
                "team/bundle",
                &d,
                500,
                BUNDLE_MEDIA_TYPE,
                BUNDLE_MEDIA_TYPE,
                &blob,
            )
            .await;
        registry.tag_referrers("team/bundle", &d, &[r]).await;
        bundles.push(format!("{host}/team/bundle@{d}"));

        let d = registry
            .push_image("team/keyless", "v1", &format!("k{i}"))
            .await;
        let spec = BundleSpec {
            leaf: LeafSpec::new(WORKFLOW, ISSUER),
            statement_digest: None,
            tamper_entry: None,
        };
        let blob = sigstore.keyless_bundle(&registry.repository("team/keyless"), &d, &spec);
        let r = registry
            .push_referrer(
                "team/keyless",
                &d,
                500,
                BUNDLE_MEDIA_TYPE,
                BUNDLE_MEDIA_TYPE,
                &blob,
            )
            .await;
        registry.tag_referrers("team/keyless", &d, &[r]).await;
        keyless.push(format!("{host}/team/keyless@{d}"));

        let (d, manifest) = registry
            .push_image_manifest("team/notation", "v1", &format!("n{i}"))
            .await;
        let envelope = ca.envelope(&d, manifest.len(), &EnvelopeSpec::default());
        let r = registry
            .push_referrer(
                "team/notation",
                &d,
                manifest.len(),
                NOTATION_ARTIFACT,
                JWS,
                &envelope,
            )
            .await;
        registry.tag_referrers("team/notation", &d, &[r]).await;
        notation.push(format!("{host}/team/notation@{d}"));

        let d = through
            .push_image("team/keyless", "v1", &format!("a{i}"))
            .await;
        let blob = sigstore.keyless_bundle(&format!("{}/team/keyless", api.host()), &d, &spec);
        through
            .push_referrer(
                "team/keyless",
                &d,
                500,
                BUNDLE_MEDIA_TYPE,
                BUNDLE_MEDIA_TYPE,
                &blob,
            )
            .await;
        via_api.push(format!("{}/team/keyless@{d}", api.host()));
    }
    let key: String = signer
        .public_key_pem()
        .lines()
        .map(|l| format!("\n            {l}"))
        .collect();
    let yaml = format!(
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: b}}\nspec:\n  check: signed-images\n  params:\n    insecureRegistries: [\"{host}\", \"{api}\"]\n    rules:\n      - images: [\"*/team/legacy*\", \"*/team/bundle*\"]\n        keys:\n          - |{key}\n      - images: [\"*/team/keyless*\"]\n        keyless:\n          trustedRoot: {root}\n          identities: [{{issuer: \"{ISSUER}\", subjectRegExp: \"^https://github.com/acme/\"}}]\n      - images: [\"*/team/notation*\"]\n        notation:\n          trustStore: [{store}]\n          trustedIdentities: [\"*\"]\n",
        api = api.host(),
        root = root.display(),
        store = store.display(),
    );
    let rules = requirements(&yaml);
    let verifier = Verifier::new(Arc::new(Metrics::new()));
    println!("cold verification against docker-registry on loopback, registry client warm:");
    for (name, rule, images) in [
        ("cosign legacy .sig tag (keys)", &rules[0], &legacy),
        (
            "cosign v3 bundle, referrers tag schema (keys)",
            &rules[0],
            &bundles,
        ),
        ("keyless bundle, referrers tag schema", &rules[1], &keyless),
        ("keyless bundle, referrers API (proxy)", &rules[1], &via_api),
        ("Notation JWS, referrers tag schema", &rules[2], &notation),
    ] {
        // The first image warms the client (connection, and for the API the proxy).
        cold(&verifier, rule, &images[..1]).await;
        report(name, cold(&verifier, rule, &images[1..]).await);
    }
    drop(api);
    drop(registry);

    // The checks alone, in process (parsing, signatures, chain, SCT, log proofs): what a
    // verification costs beside the registry round trips.
    println!(
        "in process, per verification (mean of {} runs):",
        in_process()
    );
    let digest = format!("sha256:{}", "ab".repeat(32));
    let repo = "registry.test/team/app";
    let measure = |name: &str, check: &dyn Fn() -> bool| {
        assert!(check(), "{name} verifies");
        let started = Instant::now();
        for _ in 0..in_process() {
            std::hint::black_box(check());
        }
        println!(
            "{name:<44} {:>7.1} µs",
            started.elapsed().as_secs_f64() * 1e6 / in_process() as f64
        );
    };
    let Trust::Keys(keys) = &rules[0].trust else {
        panic!("keys")
    };
    let legacy_sig = [cosign::Signature {
        certificate: None,
        rekor_bundle: None,
        payload: registry::simple_signing_payload(repo, &digest),
        signature_b64: Some(signer.sign(&registry::simple_signing_payload(repo, &digest))),
    }];
    measure("cosign legacy signature (keys)", &|| {
        matches!(
            cosign::judge(&legacy_sig, keys, &digest, repo),
            ImageVerdict::Verified { .. }
        )
    });
    let key_bundle = [bundle::Fetched {
        referrer: "r".into(),
        bytes: key_bundle(&signer, repo, &digest),
    }];
    measure("cosign v3 bundle (keys)", &|| {
        bundle::judge_keys(&key_bundle, keys, &digest, None).is_ok()
    });
    let Trust::Keyless(trust) = &rules[1].trust else {
        panic!("keyless")
    };
    let spec = BundleSpec {
        leaf: LeafSpec::new(WORKFLOW, ISSUER),
        statement_digest: None,
        tamper_entry: None,
    };
    let keyless_bundle = sigstore.keyless_bundle(repo, &digest, &spec);
    measure(
        "keyless bundle (chain, SCT, SET, proof, checkpoint)",
        &|| {
            bundle::parse(&keyless_bundle)
                .is_ok_and(|b| keyless::verify(&b, trust, &digest, None).is_ok())
        },
    );
    let Trust::Notation(trust) = &rules[2].trust else {
        panic!("notation")
    };
    let envelope = ca.envelope(&digest, 500, &EnvelopeSpec::default());
    let now = signing::now();
    let manifest = notation::Manifest {
        digest: &digest,
        media_type: Some("application/vnd.oci.image.manifest.v1+json"),
        size: 500,
    };
    measure("Notation JWS (chain to the trust store)", &|| {
        notation::verify(JWS, &envelope, trust, manifest, now).is_ok()
    });
}

fn in_process() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        200
    } else {
        3
    }
}
