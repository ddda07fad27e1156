//! The Pod Security Standards end to end: `portier check` over the sample pods of
//! `tests/fixtures/pss/pods` against the policies of `tests/fixtures/pss/policies` (baseline and
//! restricted, latest and pinned versions), compared with `tests/fixtures/pss/expected.json`:
//! for each file, the `path: problem` of every violation, by policy. (That judging a compliant
//! pod with every control allocates nothing is checked in `tests/allocations.rs`.)

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use portier::policy::PolicySet;

const BIN: &str = env!("CARGO_BIN_EXE_portier");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pss");
const SHIPPED_POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");

type Expected = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn check(file: &Path) -> Output {
    Command::new(BIN)
        .args([
            "check",
            "--policies",
            &format!("{FIXTURES}/policies"),
            "-o",
            "json",
            "-f",
        ])
        .arg(file)
        .output()
        .unwrap()
}

fn rows(out: &Output) -> Vec<serde_json::Value> {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}{}", String::from_utf8_lossy(&out.stderr)))
}

fn expected() -> Expected {
    let text = std::fs::read_to_string(format!("{FIXTURES}/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn each_sample_pod_gets_the_expected_verdicts() {
    let expected = expected();
    let pods = Path::new(FIXTURES).join("pods");
    let mut files: Vec<String> = std::fs::read_dir(&pods)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        expected.keys().cloned().collect::<Vec<_>>(),
        "every sample has expectations and every expectation a sample"
    );
    for (file, by_policy) in &expected {
        let out = check(&pods.join(file));
        let mut got: BTreeMap<String, Vec<String>> = by_policy
            .keys()
            .map(|policy| (policy.clone(), Vec::new()))
            .collect();
        for row in rows(&out) {
            assert_eq!(row["check"], "pod-security", "{file}: {row}");
            assert_eq!(row["mode"], "enforce", "{file}: {row}");
            let message = row["message"].as_str().unwrap();
            let (problem, fix) = message.split_once(" — ").unwrap();
            assert!(!fix.is_empty(), "{file}: every finding says how to fix it");
            got.entry(row["policy"].as_str().unwrap().to_owned())
                .or_default()
                .push(format!("{}: {problem}", row["path"].as_str().unwrap()));
        }
        assert_eq!(&got, by_policy, "{file}");
        let denied = by_policy.values().any(|v| !v.is_empty());
        assert_eq!(
            out.status.code(),
            Some(if denied { 1 } else { 0 }),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_directory_of_samples_at_once() {
    let out = check(&Path::new(FIXTURES).join("pods"));
    assert_eq!(out.status.code(), Some(1));
    let total: usize = expected()
        .values()
        .flat_map(|by_policy| by_policy.values())
        .map(Vec::len)
        .sum();
    assert_eq!(rows(&out).len(), total);
}

#[test]
fn the_shipped_pss_policies_deny_a_privileged_pod_in_upstreams_words() {
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"shop"},
        "spec":{"containers":[{"name":"app","image":"nginx","securityContext":{"privileged":true}}]}}"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pod.json");
    std::fs::write(&file, pod).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--policies", SHIPPED_POLICIES, "-o", "json", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let rows = rows(&out);
    for policy in ["pss-baseline", "pss-restricted"] {
        let row = rows
            .iter()
            .find(|r| {
                r["policy"] == policy
                    && r["path"] == "spec.containers[0].securityContext.privileged"
            })
            .unwrap_or_else(|| panic!("{policy}: {rows:#?}"));
        assert_eq!(row["container"], "app");
        assert!(
            row["message"].as_str().unwrap().starts_with(
                "privileged (container \"app\" must not set securityContext.privileged=true) — "
            ),
            "{row}"
        );
    }
}

#[test]
fn admission_reads_apparmor_annotations_of_a_deployments_template() {
    use portier::admission::{Endpoint, review};
    let set = PolicySet::from_dir(&Path::new(FIXTURES).join("policies")).unwrap();
    let body = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u1",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "shop",
                    "annotations": {"container.apparmor.security.beta.kubernetes.io/app": "runtime/default"}},
                "spec": {"template": {
                    "metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}},
                    "spec": {"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [{"name": "app", "image": "nginx", "securityContext": {
                            "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}}}
            }
        }
    });
    let answer = review(body.to_string().as_bytes(), &set, Endpoint::Validate);
    let out: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(out["response"]["allowed"], false, "{out}");
    let message = out["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "baseline-latest/pod-security: pod spec.template.metadata.annotations[container.apparmor.security.beta.kubernetes.io/app]: \
             forbidden AppArmor profile (annotation must not set AppArmor profile type to \
             \"container.apparmor.security.beta.kubernetes.io/app=\"unconfined\"\") — "
        ),
        "{message}"
    );
}
