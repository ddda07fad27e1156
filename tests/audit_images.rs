//! `portier audit` verifying image signatures against a real registry (`tests/common/registry.rs`),
//! on a real kube-apiserver (`tests/k8s`); and the periodic audit of `portier serve
//! --audit-interval`, its gauges and its reports. The cluster each test audits is
//! `tests/k8s/audit_env.rs`.

mod common;
mod k8s;

use std::path::Path;

use common::metrics::scrape;
use common::workloads::{CLEAN, deployment, object_meta, pod, replica_set};
use k8s::audit_env::{Env, code, json_out, owned, row, rows, stderr, stdout, stored_report};
use k8s::objects::create;
use k8s::policy_reports::shipped_crds_installed;
use k8s::rbac::{CHART_ROLE, NAMESPACES_ROLE, REPORTS_ROLE, grant};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Image signatures

/// A `signed-images` policy (enforce) trusting `key` for `<host>/team/*`, over plain HTTP.
fn signed_images_policy(host: &str, key: &str) -> String {
    let key: String = key.lines().map(|l| format!("            {l}\n")).collect();
    format!(
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: require-signed}}\nspec:\n  check: signed-images\n  mode: enforce\n  params:\n    insecureRegistries: [\"{host}\"]\n    rules:\n      - images: [\"{host}/team/*\"]\n        keys:\n          - |\n{key}"
    )
}

fn with_image<T>(mut object: T, image: &str, spec: fn(&mut T) -> &mut PodSpec) -> T {
    spec(&mut object).containers[0].image = Some(image.to_owned());
    object
}

/// `shop`: Deployment `web` (a ReplicaSet, 2 pods) and pod `ok` run the signed image;
/// Deployment `batch` (a ReplicaSet, 1 pod) and pod `tool` the unsigned one.
async fn populate_images(admin: &Client, shop: &str, signed: &str, unsigned: &str) {
    fn template(d: &mut Deployment) -> &mut PodSpec {
        d.spec.as_mut().unwrap().template.spec.as_mut().unwrap()
    }
    fn rs_template(r: &mut ReplicaSet) -> &mut PodSpec {
        let template = r.spec.as_mut().unwrap().template.as_mut().unwrap();
        template.spec.as_mut().unwrap()
    }
    fn pod_spec(p: &mut Pod) -> &mut PodSpec {
        p.spec.as_mut().unwrap()
    }
    for (name, image, pods) in [("web", signed, 2), ("batch", unsigned, 1)] {
        let labels = [("app", name)];
        let made = create(
            admin,
            with_image(
                deployment(object_meta(name, shop, &labels), &labels, CLEAN),
                image,
                template,
            ),
        )
        .await;
        let rs = create(
            admin,
            with_image(
                replica_set(
                    owned(&format!("{name}-1"), shop, &labels, &made),
                    &labels,
                    CLEAN,
                ),
                image,
                rs_template,
            ),
        )
        .await;
        for i in 0..pods {
            create(
                admin,
                with_image(
                    pod(owned(&format!("{name}-1-{i}"), shop, &labels, &rs), CLEAN),
                    image,
                    pod_spec,
                ),
            )
            .await;
        }
    }
    for (name, image) in [("ok", signed), ("tool", unsigned)] {
        create(
            admin,
            with_image(
                pod(object_meta(name, shop, &[("app", name)]), CLEAN),
                image,
                pod_spec,
            ),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_verifies_image_signatures_unless_told_not_to() {
    use common::registry::{Registry, TestSigner};
    let registry = Registry::start().await;
    let signer = TestSigner::new();
    let host = registry.host();
    let signed_digest = registry.push_image("team/app", "v1", "signed").await;
    registry
        .sign_image("team/app", &signed_digest, &[&signer])
        .await;
    let unsigned_digest = registry.push_image("team/tool", "v1", "unsigned").await;
    let signed = format!("{host}/team/app:v1");
    let unsigned = format!("{host}/team/tool:v1");
    let env = Env::empty(&format!(
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: disallow-privileged}}\nspec: {{check: privileged}}\n---\n{}",
        signed_images_policy(&host, &signer.public_key_pem())
    ))
    .await;
    let shop = env.shop.as_str();
    populate_images(&env.admin, shop, &signed, &unsigned).await;
    grant(&env.admin, &env.user, Some(shop), REPORTS_ROLE).await;

    // Pages of 1: the signed image is verified once, then found in the cache.
    let out = env.audit(&["-n", shop, "--page-size", "1", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc = json_out(&out);
    let path = "spec.template.spec.containers[0].image";
    assert_eq!(
        rows(&doc),
        [
            row((
                shop,
                "Deployment/batch",
                1,
                "require-signed",
                "enforce",
                "signed-images",
                "app",
                path
            )),
            row((
                shop,
                "Pod/tool",
                1,
                "require-signed",
                "enforce",
                "signed-images",
                "app",
                "spec.containers[0].image"
            )),
        ]
    );
    for r in doc["violations"].as_array().unwrap() {
        let message = r["message"].as_str().unwrap();
        assert!(
            message.contains(&format!(
                "image {unsigned} ({unsigned_digest}) has no cosign signature"
            )),
            "{message}"
        );
        assert!(!message.contains(&signed_digest), "{message}");
    }
    let summary = &doc["summary"];
    assert_eq!(summary["image_signatures"], "verified");
    assert_eq!(summary["workloads"], 4, "2 Deployments, 2 standalone pods");
    assert_eq!(summary["covered_pods"], 3);
    assert_eq!(summary["standalone_pods"], 2);
    assert_eq!(summary["violating_workloads"], 2);
    {
        let _crds = shipped_crds_installed(&env.admin, shop).await;
        let out = env.audit(&["-n", shop, "--report", "policyreport"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert!(!stdout(&out).contains("not verified"), "{}", stdout(&out));
        let report = stored_report(&env, shop).await;
        assert_eq!(report["summary"]["fail"], 2);
        assert_eq!(
            report["summary"]["pass"], 6,
            "4 workloads x 2 policies, 2 failed; ok passes both after its final pass"
        );
    }

    // The periodic audit verifies with the verifier it is given (the webhook's, whose metrics
    // count its verifications). It scans every namespace: this user may list them, and read
    // only `shop`.
    grant(&env.admin, &env.user, None, NAMESPACES_ROLE).await;
    {
        use portier::audit::periodic::{PeriodicOptions, run_once};
        use std::sync::Arc;
        let metrics = Arc::new(portier::metrics::Metrics::new());
        let store =
            portier::reload::PolicyStore::open(&env.policies(), false, Arc::clone(&metrics))
                .unwrap();
        let connection = portier::audit::client(&portier::audit::Connect {
            kubeconfig: Some(env.kubeconfig.clone()),
            ..portier::audit::Connect::default()
        })
        .await
        .unwrap();
        let images = portier::images::Verifier::new(Arc::clone(&metrics));
        let options = PeriodicOptions {
            interval: std::time::Duration::from_secs(3600),
            page_size: 500,
            reports: None,
        };
        run_once(connection.client, &store, &metrics, &images, &options).await;
        let text = metrics.render();
        assert_eq!(
            gauge(&text, shop, "require-signed", "signed-images").as_deref(),
            Some("2"),
            "{text}"
        );
        for (result, n) in [("verified", 1), ("rejected", 1)] {
            let series = format!("portier_image_verifications_total{{result=\"{result}\"}} {n}\n");
            assert!(text.contains(&series), "{series}{text}");
        }
    }

    // Without verification (and without the registry, to show it is not asked), nothing is
    // reported, and that is said once.
    drop(registry);
    let out = env.audit(&["-n", shop, "--no-verify-images", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc = json_out(&out);
    assert_eq!(doc["violations"], Value::Array(vec![]));
    assert_eq!(doc["summary"]["image_signatures"], "not-verified");
    assert_eq!(doc["summary"]["workloads"], 4);
    let out = env.audit(&["-n", shop, "--no-verify-images"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let table = stdout(&out);
    let note = "Image signatures were not verified (--no-verify-images): require-signed judged image references and digests only, no signature.";
    assert_eq!(table.matches(note).count(), 1, "{table}");
    assert_eq!(table.matches("not verified").count(), 1, "{table}");

    // With verification on and the registry gone, the images cannot be verified: every one is
    // reported as unverifiable, as admission would deny it (onRegistryError: deny).
    let out = env.audit(&["-n", shop, "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc = json_out(&out);
    let names: Vec<String> = rows(&doc).into_iter().map(|r| r.1).collect();
    // In the API server's order: by name within each kind.
    assert_eq!(
        names,
        ["Deployment/batch", "Deployment/web", "Pod/ok", "Pod/tool"]
    );
    for r in doc["violations"].as_array().unwrap() {
        let message = r["message"].as_str().unwrap();
        assert!(message.contains("could not be verified"), "{message}");
    }
}

/// Issue 18's tag race, seen by the audit: `team/app:v1` was signed, admitted and pulled, then
/// re-pushed unsigned. The audit verifies what each pod reports it runs
/// (`status.containerStatuses[].imageID`), not what the tag names now. There is no kubelet:
/// the test writes the pods' status as one would, through the status subresource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_verifies_the_digest_a_pod_runs() {
    use common::registry::{Registry, TestSigner};
    let registry = Registry::start().await;
    let signer = TestSigner::new();
    let host = registry.host();
    let signed = registry.push_image("team/app", "v1", "release v1").await;
    registry.sign_image("team/app", &signed, &[&signer]).await;
    let unsigned = registry.push_image("team/app", "v1", "re-pushed v1").await;
    let tag = format!("{host}/team/app:v1");
    let env = Env::empty(&signed_images_policy(&host, &signer.public_key_pem())).await;
    let shop = env.shop.as_str();
    grant(&env.admin, &env.user, Some(shop), CHART_ROLE).await;
    fn template(d: &mut Deployment) -> &mut PodSpec {
        d.spec.as_mut().unwrap().template.spec.as_mut().unwrap()
    }
    fn rs_template(r: &mut ReplicaSet) -> &mut PodSpec {
        let template = r.spec.as_mut().unwrap().template.as_mut().unwrap();
        template.spec.as_mut().unwrap()
    }
    fn pod_spec(p: &mut Pod) -> &mut PodSpec {
        p.spec.as_mut().unwrap()
    }
    let pods = Api::<Pod>::namespaced(env.admin.clone(), shop);
    let running = |name: String, digest: &str| {
        let status = json!({"status": {"containerStatuses": [{
            "name": "app", "image": tag, "imageID": format!("{host}/team/app@{digest}"),
            "ready": true, "restartCount": 0
        }]}});
        let pods = pods.clone();
        async move {
            pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .unwrap();
        }
    };
    let labels = [("app", "legacy")];
    let legacy = create(
        &env.admin,
        with_image(
            deployment(object_meta("legacy", shop, &labels), &labels, CLEAN),
            &tag,
            template,
        ),
    )
    .await;
    let rs = create(
        &env.admin,
        with_image(
            replica_set(owned("legacy-1", shop, &labels, &legacy), &labels, CLEAN),
            &tag,
            rs_template,
        ),
    )
    .await;
    for (i, digest) in [&signed, &unsigned, &unsigned].into_iter().enumerate() {
        let name = format!("legacy-1-{i}");
        create(
            &env.admin,
            with_image(pod(owned(&name, shop, &labels, &rs), CLEAN), &tag, pod_spec),
        )
        .await;
        running(name, digest).await;
    }
    for (name, digest) in [("old", &signed), ("racer", &unsigned)] {
        create(
            &env.admin,
            with_image(pod(object_meta(name, shop, &[]), CLEAN), &tag, pod_spec),
        )
        .await;
        running(name.to_owned(), digest).await;
    }

    let out = env.audit(&["-n", shop, "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc = json_out(&out);
    let found: Vec<(String, u64)> = rows(&doc).into_iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(
        found,
        [
            // The template's tag names the re-pushed image now.
            ("Deployment/legacy".to_owned(), 3),
            // Two of its pods run the unsigned digest: one finding, counted twice.
            ("Pod/legacy-1-1".to_owned(), 2),
            ("Pod/racer".to_owned(), 1),
        ],
        "old runs the signed digest, whatever its tag names now: {doc}"
    );
    for r in doc["violations"].as_array().unwrap() {
        let message = r["message"].as_str().unwrap();
        assert!(message.contains(&unsigned), "{message}");
        assert!(message.contains("has no cosign signature"), "{message}");
        if r["kind"] == "Pod" {
            assert!(message.contains("the digest it runs"), "{message}");
        }
    }
    // Not one finding about a missing digest: the audit judges objects as /mutate would
    // leave them, and pods by what they run.
    assert!(!doc.to_string().contains("not pinned"), "{doc}");
}

/// `portier audit` verifies every signature format through the one implementation admission
/// uses: a cosign v3 bundle made with a key, a keyless bundle and a Notation envelope pass;
/// the unsigned image of each rule is reported with its format's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_verifies_every_signature_format() {
    use common::notation_signing::{EnvelopeSpec, JWS, NOTATION_ARTIFACT, NotationCa};
    use common::registry::{Registry, TestSigner};
    use common::signing::{BUNDLE_MEDIA_TYPE, BundleSpec, LeafSpec, Sigstore, key_bundle};
    const ISSUER: &str = "https://token.actions.githubusercontent.com";
    let registry = Registry::start().await;
    let host = registry.host();
    let (signer, sigstore, ca) = (TestSigner::new(), Sigstore::new(), NotationCa::new("Acme"));
    let trust = tempfile::tempdir().unwrap();
    let root = trust.path().join("trusted_root.json");
    sigstore.write_trusted_root(&root);
    let store = trust.path().join("acme-ca.pem");
    std::fs::write(&store, &ca.root_pem).unwrap();
    let attach = |repo: &'static str, digest: String, kind: &'static str, blob: Vec<u8>| {
        let registry = &registry;
        async move {
            let layer = if kind == NOTATION_ARTIFACT { JWS } else { kind };
            let descriptor = registry
                .push_referrer(repo, &digest, 500, kind, layer, &blob)
                .await;
            registry.tag_referrers(repo, &digest, &[descriptor]).await;
            format!("{}@{digest}", registry.repository(repo))
        }
    };
    let digest = registry.push_image("team/bundle", "v1", "bundle").await;
    let bundle = key_bundle(&signer, &registry.repository("team/bundle"), &digest);
    let bundle = attach("team/bundle", digest, BUNDLE_MEDIA_TYPE, bundle).await;
    let digest = registry.push_image("team/keyless", "v1", "keyless").await;
    let spec = BundleSpec {
        leaf: LeafSpec::new(
            "https://github.com/acme/shop/.github/workflows/release.yml@refs/tags/v1",
            ISSUER,
        ),
        statement_digest: None,
        tamper_entry: None,
    };
    let blob = sigstore.keyless_bundle(&registry.repository("team/keyless"), &digest, &spec);
    let keyless = attach("team/keyless", digest, BUNDLE_MEDIA_TYPE, blob).await;
    let (digest, manifest) = registry
        .push_image_manifest("team/notation", "v1", "notation")
        .await;
    let envelope = ca.envelope(&digest, manifest.len(), &EnvelopeSpec::default());
    let notation = attach("team/notation", digest, NOTATION_ARTIFACT, envelope).await;
    let mut unsigned = Vec::new();
    for repo in [
        "team/bundle-bare",
        "team/keyless-bare",
        "team/notation-bare",
    ] {
        let digest = registry.push_image(repo, "v1", repo).await;
        unsigned.push(format!("{}@{digest}", registry.repository(repo)));
    }
    let env = Env::empty(&format!(
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: require-signed}}\nspec:\n  check: signed-images\n  mode: enforce\n  params:\n    insecureRegistries: [\"{host}\"]\n    rules:\n      - images: [\"{host}/team/bundle*\"]\n        keys:\n          - |\n{}      - images: [\"{host}/team/keyless*\"]\n        keyless:\n          trustedRoot: {}\n          identities: [{{issuer: \"{ISSUER}\", subjectRegExp: \"^https://github\\\\.com/acme/\"}}]\n      - images: [\"{host}/team/notation*\"]\n        notation:\n          trustStore: [{}]\n          trustedIdentities: [\"x509.subject: C=US, O=Acme, CN=release\"]\n",
        signer
            .public_key_pem()
            .lines()
            .map(|l| format!("            {l}\n"))
            .collect::<String>(),
        root.display(),
        store.display()
    ))
    .await;
    let shop = env.shop.as_str();
    grant(&env.admin, &env.user, Some(shop), CHART_ROLE).await;
    let images = [&bundle, &keyless, &notation]
        .into_iter()
        .chain(&unsigned)
        .enumerate();
    for (i, image) in images {
        let name = format!("p{i}");
        let made = pod(object_meta(&name, shop, &[("app", &name)]), CLEAN);
        create(
            &env.admin,
            with_image(made, image, |p| p.spec.as_mut().unwrap()),
        )
        .await;
    }
    let out = env.audit(&["-n", shop, "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc = json_out(&out);
    let found: Vec<(String, String)> = doc["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["p3", "p4", "p5"], "{doc}");
    for ((_, message), (image, says)) in found.iter().zip([
        (&unsigned[0], "has no cosign signature"),
        (
            &unsigned[1],
            "has no Sigstore bundle or keyless cosign signature",
        ),
        (&unsigned[2], "has no Notation signature"),
    ]) {
        assert!(message.contains(image.as_str()), "{message}");
        assert!(message.contains(says), "{message}");
    }
    assert_eq!(doc["summary"]["image_signatures"], "verified");
}

// ---------------------------------------------------------------------------------------------
// The periodic audit of `portier serve --audit-interval`
fn gauge(metrics: &str, ns: &str, policy: &str, check: &str) -> Option<String> {
    let prefix = format!(
        "portier_audit_violations{{check=\"{check}\",namespace=\"{ns}\",policy=\"{policy}\"}} "
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_audit_exports_gauges_and_forgets_fixed_violations() {
    use portier::audit::periodic::{PeriodicOptions, run_once};
    use std::sync::Arc;
    let env = Env::new().await;
    let (shop, team) = (env.shop.as_str(), env.team.as_str());
    let metrics = Arc::new(portier::metrics::Metrics::new());
    let store =
        portier::reload::PolicyStore::open(&env.policies(), false, Arc::clone(&metrics)).unwrap();
    let connect = |kubeconfig: &Path| portier::audit::Connect {
        kubeconfig: Some(kubeconfig.to_owned()),
        ..portier::audit::Connect::default()
    };
    let images = portier::images::Verifier::new(Arc::clone(&metrics));
    let options = |reports| PeriodicOptions {
        interval: std::time::Duration::from_secs(3600),
        page_size: 2,
        reports,
    };

    // As the chart runs it: its ClusterRole bound cluster-wide, so every namespace of the API
    // server is read (other tests' too: only this test's are asserted). No reports, so
    // nothing is written into other tests' namespaces.
    let (reader, everything) = env.other_user("reader");
    grant(&env.admin, &reader, None, CHART_ROLE).await;
    let connection = portier::audit::client(&connect(&everything)).await.unwrap();
    run_once(connection.client, &store, &metrics, &images, &options(None)).await;
    let text = metrics.render();
    let g = |ns, policy, check| gauge(&text, ns, policy, check);
    assert_eq!(
        g(shop, "disallow-privileged", "privileged").as_deref(),
        Some("3"),
        "{text}"
    );
    assert_eq!(
        g(shop, "require-run-as-non-root", "run-as-non-root").as_deref(),
        Some("1")
    );
    assert_eq!(
        g(shop, "disallow-host-namespaces", "host-namespaces").as_deref(),
        Some("1")
    );
    assert_eq!(
        g(team, "require-run-as-non-root", "run-as-non-root").as_deref(),
        Some("1")
    );
    assert_eq!(
        g(team, "disallow-privileged", "privileged"),
        None,
        "only what was found"
    );
    assert!(
        text.contains(r#"portier_audit_runs_total{result="complete"} 1"#),
        "{text}"
    );

    // The debug pod is deleted: its two violations disappear from the gauges. This run's user
    // reads only this test's namespaces (the rest answer 403, so the run is partial) and
    // writes their reports.
    grant(&env.admin, &env.user, None, NAMESPACES_ROLE).await;
    Api::<Pod>::namespaced(env.admin.clone(), shop)
        .delete("debug", &Default::default())
        .await
        .unwrap();
    let connection = portier::audit::client(&connect(&env.kubeconfig))
        .await
        .unwrap();
    {
        let _crds = shipped_crds_installed(&env.admin, shop).await;
        run_once(
            connection.client,
            &store,
            &metrics,
            &images,
            &options(Some(1000)),
        )
        .await;
    }
    let text = metrics.render();
    assert_eq!(
        gauge(&text, shop, "disallow-privileged", "privileged").as_deref(),
        Some("2")
    );
    assert_eq!(
        gauge(&text, shop, "disallow-host-namespaces", "host-namespaces"),
        None,
        "{text}"
    );
    assert!(text.contains("portier_audit_workloads 7"), "{text}");
    assert!(
        text.contains(r#"portier_audit_runs_total{result="partial"} 1"#),
        "{text}"
    );
    for ns in [shop, team] {
        assert_eq!(
            stored_report(&env, ns).await["metadata"]["name"],
            format!("portier-{ns}"),
            "reports written too"
        );
    }

    // A run that cannot list anything leaves the last results and counts a failure.
    let (_, stranger) = env.other_user("stranger");
    let connection = portier::audit::client(&connect(&stranger)).await.unwrap();
    run_once(connection.client, &store, &metrics, &images, &options(None)).await;
    let after = metrics.render();
    assert!(
        after.contains(r#"portier_audit_runs_total{result="failed"} 1"#),
        "{after}"
    );
    assert_eq!(
        gauge(&after, shop, "disallow-privileged", "privileged").as_deref(),
        Some("2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_an_audit_interval_exports_the_gauges() {
    let env = Env::new().await;
    grant(&env.admin, &env.user, None, NAMESPACES_ROLE).await;
    let pki = common::TestPki::new();
    let cert = env.dir.path().join("tls.crt");
    let key = env.dir.path().join("tls.key");
    std::fs::write(&cert, &pki.cert_pem).unwrap();
    common::write_private(&key, &pki.key_pem);
    let policies = env.policies();
    let mut server = common::ServeProcess::start_with_env(
        &[
            "--policies",
            policies.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--audit-interval",
            "1h",
        ],
        &[("KUBECONFIG", env.kubeconfig.to_str().unwrap())],
    );
    let done = server
        .wait_for_line(|l| l.contains("periodic audit done"))
        .expect("the first audit runs at start");
    let done: Value = serde_json::from_str(&done).unwrap();
    // Every namespace is listed; this user reads only the test's two.
    assert_eq!(done["violations"], 6);
    assert_eq!(done["complete"], 2);
    let text = scrape(&server.metrics_addr);
    assert_eq!(
        gauge(&text, &env.shop, "disallow-privileged", "privileged").as_deref(),
        Some("3"),
        "{text}"
    );
    let calls = env.calls().await;
    assert!(!calls.is_empty());
    // Reads only (the audit's lists, the namespace cache's list and watch): no reports
    // unless asked.
    assert!(
        calls
            .iter()
            .all(|c| matches!(c.verb.as_str(), "list" | "watch" | "get")),
        "no reports unless asked: {calls:#?}"
    );
    let (code, _) = server.terminate();
    assert_eq!(code, Some(0));
}
