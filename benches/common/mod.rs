//! Inputs shared by the benches and the allocation test (`tests/allocations.rs` includes this
//! file): the shipped fixtures and the policy sets to judge them against.
#![allow(dead_code)] // each bench uses a part

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::Criterion;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};

use portier::pod::WorkloadKind;
use portier::policy::PolicySet;
use serde_json::{Value, json};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The policy sets the benches judge against: (name, directory or file below the crate root).
/// To bench another set, add one line.
pub const POLICY_SETS: &[(&str, &str)] = &[
    ("default", "policies"),
    ("pod-security-restricted", "policies/pss-restricted.yaml"),
];

pub fn policy_set(dir_or_file: &str) -> PolicySet {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir_or_file);
    if path.is_dir() {
        return PolicySet::from_dir(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    PolicySet::from_yaml(dir_or_file, &text).unwrap_or_else(|e| panic!("{e}"))
}

/// The AdmissionReviews of `tests/fixtures/` the review bench sends: (name, file, allowed).
/// `make-reviews.py` writes the 2k and 64k ones.
pub const REVIEWS: &[(&str, &str, bool)] = &[
    ("pod-2k-allowed", "review-pod-2k.json", true),
    ("deployment-8k-allowed", "review-deployment-8k.json", true),
    (
        "deployment-64k-update-allowed",
        "review-deployment-64k.json",
        true,
    ),
    ("pod-1k-denied", "review-privileged-pod.json", false),
];

pub fn read(file: &str) -> Vec<u8> {
    let path = Path::new(FIXTURES).join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A workload to evaluate: its kind and its JSON text (the review's `request.object`).
pub struct Workload {
    pub name: &'static str,
    pub kind: WorkloadKind,
    pub namespace: &'static str,
    pub json: String,
}

fn object_of(file: &str) -> Value {
    let review: Value = serde_json::from_slice(&read(file)).expect("fixture is JSON");
    review["request"]["object"].clone()
}

/// The pods the evaluate bench judges: a 1-container pod, a Deployment with 2 containers and an
/// init container, and a 20-container pod (19 containers + 1 init container). All compliant
/// with the default set, so they take the allowed path.
pub fn workloads() -> Vec<Workload> {
    let deployment = object_of("review-deployment-8k.json");
    let template = &deployment["spec"]["template"]["spec"];
    let app = template["containers"][0].clone();
    let mut big = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "batch-runner", "namespace": "shop"},
        "spec": template.clone(),
    });
    big["spec"]["containers"] = (0..19)
        .map(|i| {
            let mut c = app.clone();
            c["name"] = json!(format!("worker-{i}"));
            c
        })
        .collect();
    vec![
        Workload {
            name: "pod-1-container",
            kind: WorkloadKind::Pod,
            namespace: "shop",
            json: object_of("review-pod-2k.json").to_string(),
        },
        Workload {
            name: "deployment-3-containers-with-init",
            kind: WorkloadKind::Deployment,
            namespace: "shop",
            json: deployment.to_string(),
        },
        Workload {
            name: "pod-20-containers",
            kind: WorkloadKind::Pod,
            namespace: "shop",
            json: big.to_string(),
        },
    ]
}

/// The clock the benches read: the wall clock (criterion's default), or with
/// `PORTIER_BENCH_CLOCK=cpu` the benchmarking thread's CPU time, which other processes
/// competing for the cores do not inflate (a shared or busy machine). The two agree on an idle
/// machine.
pub struct Clock {
    cpu: bool,
}

pub fn criterion() -> Criterion<Clock> {
    let cpu = std::env::var("PORTIER_BENCH_CLOCK").is_ok_and(|v| v == "cpu");
    if cpu && portier::bench::thread_cpu_time().is_none() {
        panic!("PORTIER_BENCH_CLOCK=cpu: this platform has no thread CPU clock");
    }
    Criterion::default().with_measurement(Clock { cpu })
}

static WALL: WallTime = WallTime;

impl Measurement for Clock {
    type Intermediate = (Instant, Option<Duration>);
    type Value = Duration;

    fn start(&self) -> Self::Intermediate {
        let cpu = if self.cpu {
            portier::bench::thread_cpu_time()
        } else {
            None
        };
        (Instant::now(), cpu)
    }

    fn end(&self, (wall, cpu): Self::Intermediate) -> Self::Value {
        match (cpu, portier::bench::thread_cpu_time()) {
            (Some(start), Some(end)) if self.cpu => end.saturating_sub(start),
            _ => wall.elapsed(),
        }
    }

    fn add(&self, v1: &Duration, v2: &Duration) -> Duration {
        *v1 + *v2
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

/// A `signed-images` policy (defaults: `mutateDigest` and `requireDigest` on) and a verifier
/// whose cache holds a verified verdict for every image of `workloads`, which come back as
/// `/validate` sees them after `/mutate`: each image pinned, in canonical form, to its digest.
pub fn signed_images_cached(
    workloads: Vec<Workload>,
) -> (
    PolicySet,
    std::sync::Arc<portier::images::Verifier>,
    Vec<Workload>,
) {
    signed_images_cached_under(&keys_trust(), workloads)
}

/// The trust of a `keys` rule (a new ECDSA P-256 key), as YAML lines of the rule.
pub fn keys_trust() -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let pem: String = key
        .public_key_pem()
        .lines()
        .map(|l| format!("            {l}\n"))
        .collect();
    format!("        keys:\n          - |\n{pem}")
}

/// The trust of a `keyless` rule over the public-good Sigstore trusted root (a genuine one,
/// src/images/testdata).
pub fn keyless_trust() -> String {
    format!(
        "        keyless:\n          trustedRoot: {}/src/images/testdata/sigstore-rust_trusted_roots_public-good.json\n          identities: [{{issuer: \"https://token.actions.githubusercontent.com\", subjectRegExp: \"^https://github.com/acme/\"}}]\n",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The trust of a `notation` rule over a genuine Notation signer certificate (src/images/testdata).
pub fn notation_trust() -> String {
    format!(
        "        notation:\n          trustStore: [{}/src/images/testdata/notation-go_jws_signature_signer.pem]\n          trustedIdentities: [\"x509.subject: C=US, ST=WA, O=Notary\"]\n",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// [`signed_images_cached`] with a rule trusting `trust` (YAML lines of the rule after
/// `images`, indented by eight spaces): keys, keyless or notation.
pub fn signed_images_cached_under(
    trust: &str,
    workloads: Vec<Workload>,
) -> (
    PolicySet,
    std::sync::Arc<portier::images::Verifier>,
    Vec<Workload>,
) {
    use portier::images::ImageVerdict;
    use portier::policy::Check;
    let yaml = format!(
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: signed}}\nspec:\n  check: signed-images\n  params:\n    rules:\n      - images: [\"*\"]\n{trust}"
    );
    let set = PolicySet::from_yaml("signed.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
    let verifier =
        portier::images::Verifier::new(std::sync::Arc::new(portier::metrics::Metrics::new()));
    let Check::SignedImages(params) = &set.policies()[0].check else {
        panic!("not signed-images");
    };
    let digest = format!("sha256:{}", "ab".repeat(32));
    let pinned = workloads
        .into_iter()
        .map(|mut w| {
            let mut value: Value = serde_json::from_str(&w.json).expect("workload is JSON");
            let spec = match w.kind {
                WorkloadKind::Pod => &mut value["spec"],
                _ => &mut value["spec"]["template"]["spec"],
            };
            for list in ["initContainers", "containers", "ephemeralContainers"] {
                for c in spec[list].as_array_mut().into_iter().flatten() {
                    let image = c["image"].as_str().unwrap_or("");
                    let reference = portier::image_ref::parse(image).expect("fixture image");
                    let pinned = reference.pinned(&digest);
                    verifier.remember(
                        &params.rules[0].requirement,
                        &pinned,
                        &format!("{}@{digest}", reference.name()),
                        ImageVerdict::Verified {
                            digest: digest.clone(),
                            key: "sha256:bench".into(),
                        },
                        std::time::Duration::from_secs(3600),
                    );
                    c["image"] = Value::String(pinned);
                }
            }
            w.json = value.to_string();
            w
        })
        .collect();
    (set, verifier, pinned)
}
