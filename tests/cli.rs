//! The `portier` binary: `check` exit codes and output, `serve` refusing to start without
//! valid policies, `dev-cert` output that `serve` accepts.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_portier");
const SHIPPED_POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");

fn portier(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        // portier may exit (on a bad flag or policy) before it reads stdin: a broken pipe here
        // is the process's answer, checked through its exit code.
        if let Err(e) = input.write_all(text.as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const COMPLIANT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      securityContext:
        runAsNonRoot: true
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: web
          image: registry.example.com/web:1
          securityContext:
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
          resources:
            requests: {cpu: 100m, memory: 64Mi}
            limits: {memory: 128Mi}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
"#;

#[test]
fn check_passes_a_compliant_manifest_against_the_shipped_policies() {
    let out = portier(
        &["check", "--policies", SHIPPED_POLICIES, "-f", "-"],
        Some(COMPLIANT),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("1 object(s) judged, 0 violation(s)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn check_exits_1_on_an_enforce_violation_with_json_rows() {
    let bad = COMPLIANT.replace(
        "      securityContext:\n        runAsNonRoot: true",
        "      hostNetwork: true\n      securityContext:\n        runAsNonRoot: true",
    );
    assert_ne!(bad, COMPLIANT);
    let out = portier(
        &[
            "check",
            "--policies",
            SHIPPED_POLICIES,
            "-f",
            "-",
            "-o",
            "json",
        ],
        Some(&bad),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let row = &rows.as_array().unwrap()[0];
    assert_eq!(row["kind"], "Deployment");
    assert_eq!(row["namespace"], "shop");
    assert_eq!(row["name"], "web");
    assert_eq!(row["policy"], "disallow-host-namespaces");
    assert_eq!(row["check"], "host-namespaces");
    assert_eq!(row["mode"], "enforce");
    assert_eq!(row["container"], serde_json::Value::Null);
    assert_eq!(row["path"], "spec.template.spec.hostNetwork");
    assert!(
        row["message"].as_str().unwrap().contains("set it to false"),
        "{row}"
    );
    // The Pod Security Standards say so too, in upstream's words.
    let pss = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["policy"] == "pss-baseline")
        .unwrap();
    assert_eq!(pss["check"], "pod-security");
    assert_eq!(pss["path"], "spec.template.spec.hostNetwork");
    assert!(
        pss["message"]
            .as_str()
            .unwrap()
            .starts_with("host namespaces (hostNetwork=true) — "),
        "{pss}"
    );
}

#[test]
fn check_exits_2_on_bad_input_or_bad_policies() {
    let out = portier(
        &["check", "--policies", SHIPPED_POLICIES, "-f", "-"],
        Some("a: [1"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not valid YAML or JSON"),
        "{}",
        stderr(&out)
    );

    let missing = portier(
        &[
            "check",
            "--policies",
            SHIPPED_POLICIES,
            "-f",
            "/no/such/file.yaml",
        ],
        None,
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("/no/such/file.yaml"),
        "{}",
        stderr(&missing)
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: x}\nspec: {check: teleport}\n",
    )
    .unwrap();
    let policies = dir.path().to_str().unwrap();
    let out = portier(
        &["check", "--policies", policies, "-f", "-"],
        Some(COMPLIANT),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("bad.yaml document 1: spec.check: unknown check `teleport`"),
        "{err}"
    );

    let usage = portier(&["check", "--policies", SHIPPED_POLICIES], None);
    assert_eq!(usage.status.code(), Some(2), "missing -f is a usage error");
}

#[test]
fn check_reads_a_directory_of_manifests() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), COMPLIANT).unwrap();
    std::fs::write(
        dir.path().join("b.json"),
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","securityContext":{"privileged":true}}]}}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let out = portier(
        &[
            "check",
            "--policies",
            SHIPPED_POLICIES,
            "-f",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let table = stdout(&out);
    assert!(table.contains("Pod/default/p"), "{table}");
    assert!(table.contains("2 object(s) judged"), "{table}");
}

#[test]
fn serve_refuses_to_start_without_valid_policies() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let out = portier(&["dev-cert", "--out-dir", certs.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("broken.yaml"), "spec: [").unwrap();
    let serve = |policies: &Path| {
        portier(
            &[
                "serve",
                "--policies",
                policies.to_str().unwrap(),
                "--tls-cert",
                certs.join("tls.crt").to_str().unwrap(),
                "--tls-key",
                certs.join("tls.key").to_str().unwrap(),
                "--addr",
                "127.0.0.1:0",
            ],
            None,
        )
    };
    let out = serve(&policies);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains("refusing to start without valid policies"),
        "{err}"
    );
    assert!(err.contains("broken.yaml"), "{err}");

    std::fs::remove_file(policies.join("broken.yaml")).unwrap();
    let out = serve(&policies);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("no policies found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_verifies_image_signatures_only_when_asked() {
    use common::registry::{Registry, TestSigner};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let registry = runtime.block_on(Registry::start());
    let signer = TestSigner::new();
    let host = registry.host();
    let (signed_digest, unsigned_digest) = runtime.block_on(async {
        let signed = registry.push_image("team/app", "v1", "signed").await;
        registry.sign_image("team/app", &signed, &[&signer]).await;
        let unsigned = registry.push_image("team/tool", "v1", "unsigned").await;
        (signed, unsigned)
    });
    let dir = tempfile::tempdir().unwrap();
    let key: String = signer
        .public_key_pem()
        .lines()
        .map(|l| format!("            {l}\n"))
        .collect();
    std::fs::write(
        dir.path().join("signed.yaml"),
        format!(
            "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: require-signed}}\nspec:\n  check: signed-images\n  params:\n    mutateDigest: true\n    insecureRegistries: [\"{host}\"]\n    rules:\n      - images: [\"{host}/team/*\"]\n        keys:\n          - |\n{key}"
        ),
    )
    .unwrap();
    let policies = dir.path().to_str().unwrap();
    let signed = format!("{host}/team/app:v1");
    let unsigned = format!("{host}/team/tool:v1");
    let manifests = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: app}}\nspec: {{containers: [{{name: c, image: \"{signed}\"}}]}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: tool}}\nspec: {{containers: [{{name: c, image: \"{unsigned}\"}}]}}\n"
    );

    let out = portier(
        &[
            "check",
            "--policies",
            policies,
            "--verify-images",
            "-o",
            "json",
            "-f",
            "-",
        ],
        Some(&manifests),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "nothing to note when verifying");
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "only the unsigned image: {rows:#?}");
    assert_eq!(rows[0]["name"], "tool");
    assert_eq!(rows[0]["check"], "signed-images");
    assert_eq!(rows[0]["path"], "spec.containers[0].image");
    let message = rows[0]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "image {unsigned} ({unsigned_digest}) has no cosign signature"
        )),
        "{message}"
    );

    // With --mutate, the verified tag is pinned to its digest, as /mutate pins it.
    let out = portier(
        &[
            "check",
            "--policies",
            policies,
            "--verify-images",
            "--mutate",
            "-f",
            "-",
        ],
        Some(&manifests),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let objects: Vec<serde_json::Value> = serde_saphyr::from_multiple(&stdout(&out)).unwrap();
    assert_eq!(
        objects[0]["spec"]["containers"][0]["image"],
        format!("{signed}@{signed_digest}").as_str()
    );
    assert_eq!(
        objects[1]["spec"]["containers"][0]["image"],
        unsigned.as_str()
    );

    // Offline by default: nothing is verified (the registry is gone to show it is not asked),
    // nothing reported, and one note says so.
    drop(registry);
    let out = portier(
        &["check", "--policies", policies, "-o", "json", "-f", "-"],
        Some(&manifests),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "[]");
    assert_eq!(
        stderr(&out),
        "portier: note: image signatures were not verified, so require-signed judged image references and digests only; pass --verify-images to verify them against the registries\n"
    );
    // What needs no registry is judged offline too: a text that is no image reference.
    let bad = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: bad}}\nspec: {{containers: [{{name: c, image: \"{host}/team/App:v1\"}}]}}\n"
    );
    let out = portier(
        &["check", "--policies", policies, "-o", "json", "-f", "-"],
        Some(&bad),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let message = rows[0]["message"].as_str().unwrap_or("");
    assert!(message.contains("is not a valid image reference"), "{rows}");
    assert!(message.contains("must be lowercase"), "{rows}");
}

#[test]
fn check_mutate_prints_the_patched_objects_and_judges_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: non-root}\nspec: {check: run-as-non-root, mutate: true}\n---\n\
         apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: no-priv}\nspec: {check: privileged}\n",
    )
    .unwrap();
    let policies = dir.path().to_str().unwrap();
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - {name: app, image: nginx}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
    let out = portier(
        &["check", "--policies", policies, "--mutate", "-f", "-"],
        Some(manifest),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "the patched pod passes: {}",
        stderr(&out)
    );
    let printed = stdout(&out);
    let objects: Vec<serde_json::Value> = serde_saphyr::from_multiple(&printed).unwrap();
    assert_eq!(
        objects.len(),
        2,
        "every object is printed, patched or not:\n{printed}"
    );
    assert_eq!(objects[0]["spec"]["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        objects[0]["metadata"]["annotations"]["portier.dev/mutated-by"],
        "non-root"
    );
    assert_eq!(objects[1]["kind"], "ConfigMap");
    assert!(
        stderr(&out).contains("1 object(s) patched by /mutate"),
        "{}",
        stderr(&out)
    );

    // What a patch cannot fix still fails the check.
    let privileged = manifest.replace(
        "{name: app, image: nginx}",
        "{name: app, image: nginx, securityContext: {privileged: true}}",
    );
    let out = portier(
        &["check", "--policies", policies, "--mutate", "-f", "-"],
        Some(&privileged),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn bench_prints_one_tab_separated_line_per_file_and_counts_allocations() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let allowed = format!("{fixtures}/review-pod-2k.json");
    let denied = format!("{fixtures}/review-privileged-pod.json");
    let out = portier(
        &[
            "bench",
            "--policies",
            SHIPPED_POLICIES,
            "--iterations",
            "20",
            &allowed,
            &denied,
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for (line, file) in lines.iter().zip([&allowed, &denied]) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 4, "{line}");
        assert_eq!(cols[0], file.as_str());
        assert!(cols[1].parse::<f64>().unwrap() > 0.0, "{line}");
        assert!(cols[2].parse::<f64>().is_ok(), "{line}");
        // Test builds turn on the alloc-count feature (the self dev-dependency in Cargo.toml),
        // so this binary counts: a review allocates a little.
        assert!(cols[3].parse::<u64>().unwrap() > 0, "{line}");
    }
    let summary = stderr(&out);
    // The count is the shipped set's business; the privileged pod is denied.
    assert!(
        summary.contains("review-privileged-pod.json: Pod shop/web")
            && summary.contains("denied with "),
        "{summary}"
    );
    assert!(
        summary.contains("Pod shop/web-5d8f9c7b6-xk2lp"),
        "{summary}"
    );
}

#[test]
fn check_reads_namespace_labels_from_namespace_objects_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("psa.yaml"),
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: psa}\nspec:\n  check: pod-security\n  params: {level: namespace}\n",
    )
    .unwrap();
    let pod = |ns: &str, name: &str, privileged: bool| {
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  containers: [{{name: c, image: nginx, securityContext: {{privileged: {privileged}}}}}]\n"
        )
    };
    // The pods come before their Namespace, in another file: every input is read first.
    let pods = [
        pod("shop", "plain", false),
        pod("dev", "plain", false),
        pod("dev", "root", true),
        pod("elsewhere", "plain", false),
    ]
    .concat();
    std::fs::write(dir.path().join("a-pods.yaml"), pods).unwrap();
    std::fs::write(
        dir.path().join("b-namespace.yaml"),
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: shop\n    labels: {pod-security.kubernetes.io/enforce: restricted}\n",
    )
    .unwrap();
    let run = |flags: &[&str]| {
        let mut args = vec![
            "check",
            "--policies",
            policies.to_str().unwrap(),
            "-f",
            dir.path().to_str().unwrap(),
            "-o",
            "json",
        ];
        args.extend_from_slice(flags);
        let out = portier(&args, None);
        let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap_or_default();
        let denied: Vec<String> = rows
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["mode"] == "enforce")
            .map(|r| {
                format!(
                    "{}/{}",
                    r["namespace"].as_str().unwrap(),
                    r["name"].as_str().unwrap()
                )
            })
            .collect();
        (out, denied)
    };
    let (out, denied) = run(&[
        "--namespace-labels",
        "dev=pod-security.kubernetes.io/enforce=baseline,team=a",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // shop is restricted (its Namespace object), dev baseline (the flag), elsewhere unknown:
    // the pod there fails closed, and a note says why.
    assert_eq!(
        denied,
        ["shop/plain", "dev/root", "elsewhere/plain"],
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains(
            "pods \\\"plain\\\" is forbidden: violates PodSecurity \\\"restricted:latest\\\""
        ),
        "{}",
        stdout(&out)
    );
    let err = stderr(&out);
    let notes: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("portier: note:"))
        .collect();
    assert_eq!(notes.len(), 1, "{}", stderr(&out));
    assert!(
        notes[0]
            .contains("Pod elsewhere/plain: the labels of namespace \"elsewhere\" are not known"),
        "{}",
        notes[0]
    );
    assert!(
        notes[0].contains("--namespace-labels elsewhere=key=value"),
        "{}",
        notes[0]
    );
    // A flag replaces what the input says of a namespace; NS= is a namespace with no labels.
    let (out, denied) = run(&[
        "--namespace-labels",
        "shop=",
        "--namespace-labels",
        "dev=",
        "--namespace-labels",
        "elsewhere=",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(denied.is_empty());
    assert!(!stderr(&out).contains("note:"), "{}", stderr(&out));
    // A flag that cannot be read is a usage error.
    for bad in ["shop", "=a=b", "shop=tier"] {
        let (out, _) = run(&["--namespace-labels", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(
            stderr(&out).contains("--namespace-labels"),
            "{}",
            stderr(&out)
        );
    }
}
