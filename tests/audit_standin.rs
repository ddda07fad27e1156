//! `portier audit` against the stand-in API server (`tests/apiserver`), for what the real API
//! server of `tests/audit.rs` cannot be made to do on demand. Each test says why it is here.

mod apiserver;
mod common;

use std::process::{Command, Output};

use apiserver::{Cluster, StandIn, meta, owned_meta};
use common::workloads::{CLEAN, Flaws, PRIVILEGED, ROOT, deployment, pod, replica_set};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodSpec;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portier");

use common::workloads::AUDIT_POLICIES as POLICIES;

/// `shop`: a privileged Deployment `web` with a ReplicaSet and 3 pods, and 6 standalone pods:
/// `debug` (privileged, host network), `tool` (root) and 4 clean ones. `team-b`: a pod running
/// as root.
fn cluster() -> Cluster {
    let mut c = Cluster::new();
    let shop = c.ns("shop");
    let web = [("app", "web")];
    shop.deployments
        .push(deployment(meta("web", "shop", &web), &web, PRIVILEGED));
    shop.replicasets.push(replica_set(
        owned_meta::<Deployment>("web-1", "shop", &web, "web"),
        &web,
        PRIVILEGED,
    ));
    for p in ["web-1-a", "web-1-b", "web-1-c"] {
        shop.pods.push(pod(
            owned_meta::<ReplicaSet>(p, "shop", &web, "web-1"),
            PRIVILEGED,
        ));
    }
    let debug = Flaws {
        host_network: true,
        ..PRIVILEGED
    };
    shop.pods
        .push(pod(meta("debug", "shop", &[("app", "debug")]), debug));
    shop.pods
        .push(pod(meta("tool", "shop", &[("app", "tool")]), ROOT));
    for i in 0..4 {
        shop.pods
            .push(pod(meta(&format!("p-{i}"), "shop", &[("app", "p")]), CLEAN));
    }
    c.ns("team-b")
        .pods
        .push(pod(meta("tool", "team-b", &[("app", "tool")]), ROOT));
    c
}

struct Env {
    dir: tempfile::TempDir,
    server: StandIn,
}

impl Env {
    fn new(cluster: Cluster) -> Env {
        Env::with_policies(cluster, POLICIES)
    }

    fn with_policies(cluster: Cluster, policies: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        std::fs::write(dir.path().join("policies/set.yaml"), policies).unwrap();
        let server = StandIn::start(cluster);
        server.kubeconfig(dir.path(), "shop");
        Env { dir, server }
    }

    fn audit(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("audit")
            .arg("--policies")
            .arg(self.dir.path().join("policies"))
            .arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            stderr(o)
        )
    })
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// (namespace, status) of each namespace of a JSON report.
fn statuses(doc: &Value) -> Vec<(String, String)> {
    doc["summary"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["namespace"].as_str().unwrap().to_owned(),
                n["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Here because a real API server deletes a namespace only through the namespace controller
/// (not part of the test server, where a deleted namespace stays Terminating and lists fine),
/// and never between two list calls of one scan on demand.
#[test]
fn a_namespace_that_vanishes_mid_scan_is_reported_and_the_scan_goes_on() {
    let mut c = cluster();
    // `gone` answers its first list (deployments), then it is deleted.
    let gone = c.ns("gone");
    gone.vanish_after = Some(1);
    gone.pods.push(pod(meta("p", "gone", &[]), PRIVILEGED));
    let env = Env::new(c);
    let out = env.audit(&["-A", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("namespace gone: cronjobs: the namespace disappeared during the scan (404 Not Found: namespaces \"gone\" not found)"),
        "{err}"
    );
    let doc = json(&out);
    assert_eq!(
        statuses(&doc),
        [
            ("gone".to_owned(), "vanished".to_owned()),
            ("shop".to_owned(), "complete".to_owned()),
            ("team-b".to_owned(), "complete".to_owned()),
        ]
    );
    assert_eq!(doc["summary"]["complete"], false);
    assert_eq!(doc["summary"]["namespaces_complete"], 2);
    let violations = doc["violations"].as_array().unwrap();
    assert!(violations.iter().all(|v| v["namespace"] != "gone"));
    assert!(violations.iter().any(|v| v["namespace"] == "team-b"));
    // After the 404 nothing more is asked in `gone`.
    let gone_calls = env
        .server
        .requests()
        .iter()
        .filter(|r| r.path.contains("/namespaces/gone/"))
        .count();
    assert_eq!(gone_calls, 2);
}

/// Here because a real API server expires a `continue` token only after etcd compacts past
/// it (minutes, at the API server's own pace), never between two pages on demand.
#[test]
fn an_expired_continue_token_restarts_that_list_once_without_duplicates() {
    let unbroken = Env::new(cluster());
    let want = json(&unbroken.audit(&["-n", "shop", "--page-size", "3", "-o", "json"]));
    assert_eq!(want["summary"]["covered_pods"], 3);
    assert_eq!(want["summary"]["standalone_pods"], 6);
    assert_eq!(want["violations"].as_array().unwrap().len(), 4);

    let mut c = cluster();
    c.ns("shop").expire_once.insert("pods".into());
    let env = Env::new(c);
    let out = env.audit(&["-n", "shop", "--page-size", "3", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("410 Gone")
            && stderr(&out).contains("listing pods in shop again from the start"),
        "{}",
        stderr(&out)
    );
    // The same findings and counts as a run whose token did not expire: the first attempt's
    // pages were dropped, not counted twice.
    let doc = json(&out);
    assert_eq!(doc["violations"], want["violations"]);
    assert_eq!(doc["summary"], want["summary"]);
    assert_eq!(doc["summary"]["complete"], true);
    let pods: Vec<_> = env
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/namespaces/shop/pods")
        .collect();
    let statuses: Vec<u16> = pods.iter().map(|r| r.status).collect();
    // 9 pods in pages of 3: page 1, 410 on page 2, then pages 1..3 again.
    assert_eq!(statuses, [200, 410, 200, 200, 200]);
    assert_eq!(pods[2].param("continue"), None);
}

/// Here because a real API server answers 500 only when something in it breaks (etcd timing
/// out, a panic), which a test cannot bring about for one list.
#[test]
fn a_500_from_one_list_leaves_that_namespace_partial_and_the_rest_judged() {
    let mut c = cluster();
    c.ns("shop").internal_error.insert("cronjobs".into());
    let env = Env::new(c);
    let out = env.audit(&["-n", "shop", "-n", "team-b", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "namespace shop: cronjobs: HTTP 500: Internal error occurred: etcdserver: request timed out"
        ),
        "{}",
        stderr(&out)
    );
    let doc = json(&out);
    assert_eq!(
        statuses(&doc),
        [
            ("shop".to_owned(), "partial".to_owned()),
            ("team-b".to_owned(), "complete".to_owned()),
        ]
    );
    assert_eq!(doc["summary"]["complete"], false);
    // Every other kind of `shop` was still listed and judged.
    assert_eq!(doc["summary"]["controllers"], 1);
    assert_eq!(doc["summary"]["covered_pods"], 3);
    assert_eq!(doc["summary"]["standalone_pods"], 7);
    let shop: Vec<&Value> = doc["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["namespace"] == "shop")
        .collect();
    assert_eq!(shop.len(), 4, "{shop:#?}");
    let listed: Vec<u16> = env
        .server
        .requests()
        .iter()
        .filter(|r| r.path.contains("/namespaces/shop/"))
        .map(|r| r.status)
        .collect();
    assert_eq!(listed, [200, 500, 200, 200, 200, 200, 200, 200]);
}

/// Here because the real API server of these tests would need minutes and gigabytes of etcd
/// to hold 100 000 pods; the stand-in makes each page on the fly.
///
/// Scale run, not part of `cargo test` (it takes about a minute on 2 cores):
/// `cargo test --release --test audit_standin -- --ignored scale --nocapture`.
/// 100 namespaces x 1 000 pods (800 under 20 Deployments, 200 standalone) of about 6 KB of
/// JSON each, as real pods with status and last-applied annotations are, listed in pages of
/// 500 from the stand-in, which makes each page on the fly; prints the throughput and the audit
/// process's peak RSS. The stand-in shares the machine with the audit.
#[test]
#[ignore]
fn scale_100k_pods() {
    scale("scale", POLICIES, |_| None);
}

/// The scale run with a `signed-images` policy judging every image: 21 signed images in a real
/// registry (one per Deployment, one for the standalone pods), verified on the first pages and
/// read from the verifier's cache after that, so this measures the first pass's cost:
/// `cargo test --release --test audit_standin -- --ignored scale --nocapture`.
#[test]
#[ignore]
fn scale_100k_pods_signed_images() {
    use common::registry::{Registry, TestSigner};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let registry = runtime.block_on(Registry::start());
    let signer = TestSigner::new();
    let host = registry.host();
    runtime.block_on(async {
        for repo in (0..20)
            .map(|d| format!("team/app-{d}"))
            .chain(["team/solo".into()])
        {
            let digest = registry.push_image(&repo, "v1", &repo).await;
            registry.sign_image(&repo, &digest, &[&signer]).await;
        }
    });
    let policies = format!(
        "{POLICIES}---\n{}",
        signed_images_policy(&host, &signer.public_key_pem())
    );
    scale("scale (signed-images)", &policies, move |deployment| {
        Some(match deployment {
            Some(d) => format!("{host}/team/app-{d}:v1"),
            None => format!("{host}/team/solo:v1"),
        })
    });
}

/// 100 namespaces x 1 000 pods (see [`scale_100k_pods`]); `image(Some(d))` is the image of
/// Deployment `d` and its pods, `image(None)` that of the standalone pods (`None`: the
/// default image).
fn scale(
    label: &str,
    policies: &str,
    image: impl Fn(Option<usize>) -> Option<String> + Send + Sync + 'static,
) {
    use std::sync::Arc;
    let image = Arc::new(image);
    const NAMESPACES: usize = 100;
    const PODS: usize = 1000;
    const DEPLOYMENTS: usize = 20;
    const PER_DEPLOYMENT: usize = 40;
    let mut c = Cluster::new();
    for n in 0..NAMESPACES {
        let ns_name = format!("ns-{n:03}");
        let ns = c.ns(&ns_name);
        for d in 0..DEPLOYMENTS {
            let name = format!("app-{d}");
            let labels = [("app", name.as_str())];
            let flaws = if d.is_multiple_of(2) {
                PRIVILEGED
            } else {
                CLEAN
            };
            let mut d_object = deployment(meta(&name, &ns_name, &labels), &labels, flaws);
            if let Some(image) = image(Some(d)) {
                d_object = with_image(d_object, &image, |d| {
                    d.spec.as_mut().unwrap().template.spec.as_mut().unwrap()
                });
            }
            ns.deployments.push(d_object);
            for rs in [format!("{name}-new"), format!("{name}-old")] {
                ns.replicasets.push(replica_set(
                    owned_meta::<Deployment>(&rs, &ns_name, &labels, &name),
                    &labels,
                    flaws,
                ));
            }
        }
        let namespace = ns_name.clone();
        let image = Arc::clone(&image);
        ns.generated_pods = Some((
            PODS,
            Arc::new(move |i| {
                let deployment = (i < DEPLOYMENTS * PER_DEPLOYMENT).then_some(i / PER_DEPLOYMENT);
                let mut p = weighty({
                    let name = format!("pod-{i}");
                    if i < DEPLOYMENTS * PER_DEPLOYMENT {
                        let d = i / PER_DEPLOYMENT;
                        let app = format!("app-{d}");
                        let flaws = if d.is_multiple_of(2) {
                            PRIVILEGED
                        } else {
                            CLEAN
                        };
                        pod(
                            owned_meta::<ReplicaSet>(
                                &name,
                                &namespace,
                                &[("app", &app)],
                                &format!("{app}-new"),
                            ),
                            flaws,
                        )
                    } else {
                        let flaws = if i.is_multiple_of(10) { ROOT } else { CLEAN };
                        pod(meta(&name, &namespace, &[("app", "solo")]), flaws)
                    }
                });
                if let Some(image) = image(deployment) {
                    p.spec.as_mut().unwrap().containers[0].image = Some(image);
                }
                p
            }),
        ));
    }
    let env = Env::with_policies(c, policies);
    let sample = serde_json::to_vec(
        &(env.server.with_cluster(|c| {
            let (_, make) = c.ns("ns-000").generated_pods.clone().unwrap();
            make(0)
        })),
    )
    .unwrap()
    .len();
    let out_path = env.dir.path().join("out.json");
    let started = std::time::Instant::now();
    let mut child = Command::new(BIN)
        .arg("audit")
        .arg("--policies")
        .arg(env.dir.path().join("policies"))
        .arg("--kubeconfig")
        .arg(env.dir.path().join("kubeconfig"))
        .args(["-A", "-o", "json"])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_path)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    let summary = &doc["summary"];
    let pods =
        summary["covered_pods"].as_u64().unwrap() + summary["standalone_pods"].as_u64().unwrap();
    assert_eq!(pods, (NAMESPACES * PODS) as u64);
    assert_eq!(summary["controllers"], NAMESPACES * DEPLOYMENTS);
    let objects = pods + (NAMESPACES * DEPLOYMENTS * 3) as u64;
    let requests = env.server.requests().len();
    println!(
        "{label}: {objects} objects ({pods} pods of {sample} bytes) in {NAMESPACES} namespaces, {requests} list calls, {:.2} s: {:.0} objects/s, {:.0} workloads judged/s; {} violations; peak RSS {:.1} MiB",
        elapsed.as_secs_f64(),
        objects as f64 / elapsed.as_secs_f64(),
        summary["workloads"].as_f64().unwrap() / elapsed.as_secs_f64(),
        summary["violations"],
        peak_kib as f64 / 1024.0
    );
}

/// Gives a generated pod the bulk of a real one: a last-applied-configuration annotation,
/// environment, volume mounts, probes' worth of fields, and a status with conditions.
fn weighty(mut p: k8s_openapi::api::core::v1::Pod) -> k8s_openapi::api::core::v1::Pod {
    use k8s_openapi::api::core::v1::{
        ContainerStatus, EnvVar, PodCondition, PodStatus, VolumeMount,
    };
    p.metadata.annotations = Some(
        [(
            "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
            "x".repeat(2500),
        )]
        .into(),
    );
    if let Some(spec) = p.spec.as_mut() {
        for c in &mut spec.containers {
            c.env = Some(
                (0..20)
                    .map(|i| EnvVar {
                        name: format!("SETTING_NUMBER_{i}"),
                        value: Some(format!("value-of-setting-{i}-for-this-service")),
                        ..EnvVar::default()
                    })
                    .collect(),
            );
            c.volume_mounts = Some(
                (0..4)
                    .map(|i| VolumeMount {
                        name: format!("volume-{i}"),
                        mount_path: format!("/var/lib/service/volume-{i}"),
                        ..VolumeMount::default()
                    })
                    .collect(),
            );
        }
    }
    p.status = Some(PodStatus {
        phase: Some("Running".to_owned()),
        pod_ip: Some("10.244.1.23".to_owned()),
        host_ip: Some("192.168.10.4".to_owned()),
        conditions: Some(
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
            ]
            .iter()
            .map(|t| PodCondition {
                type_: (*t).to_owned(),
                status: "True".to_owned(),
                ..PodCondition::default()
            })
            .collect(),
        ),
        container_statuses: Some(vec![ContainerStatus {
            name: "app".to_owned(),
            image: "registry.example.com/app:1".to_owned(),
            image_id: format!("registry.example.com/app@sha256:{}", "0".repeat(64)),
            container_id: Some(format!("containerd://{}", "f".repeat(64))),
            ready: true,
            restart_count: 0,
            started: Some(true),
            ..ContainerStatus::default()
        }]),
        ..PodStatus::default()
    });
    p
}

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
