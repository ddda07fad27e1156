//! The upstream wording agrees with the per-offender controls: the same pods are forbidden at
//! every version, and a single offender reads the same in both; plus upstream's own examples
//! for several offenders at once (`check_*_test.go` of `k8s.io/pod-security-admission`).

use super::evaluate;
use crate::pod::{PodSpec, PodView, WorkloadKind, decode_workload};
use crate::policy::pss::CONTROLS;
use crate::policy::testing;

const MINORS: [u32; 10] = [0, 8, 19, 22, 25, 27, 31, 34, 35, 37];

/// Pods given as YAML in the fixtures, and handmade ones, as JSON Pods.
fn samples() -> Vec<String> {
    let mut out = Vec::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pss/pods");
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for doc in serde_saphyr::from_multiple::<serde_json::Value>(&text).unwrap() {
            // Controllers: judge their pod template as a Pod.
            let mut pod = doc.clone();
            for path in [
                &["spec", "jobTemplate", "spec", "template"][..],
                &["spec", "template"][..],
            ] {
                if let Some(t) = path.iter().try_fold(&doc, |v, k| v.get(k)) {
                    pod = t.clone();
                    break;
                }
            }
            out.push(pod.to_string());
        }
    }
    for spec in [
        r#"{"containers":[{"name":"a","securityContext":{"privileged":true}},{"name":"b","securityContext":{"privileged":true}}]}"#,
        r#"{"hostUsers":false,"containers":[{"name":"a","securityContext":{"procMount":"Unmasked","runAsUser":0}}]}"#,
        r#"{"os":{"name":"windows"},"containers":[{"name":"a","securityContext":{"capabilities":{"add":["NET_RAW"]}}}]}"#,
        r#"{"securityContext":{"runAsNonRoot":false,"runAsUser":0,"seLinuxOptions":{"type":"x","user":"u"}},"containers":[{"name":"a","securityContext":{"runAsNonRoot":true,"seLinuxOptions":{"role":"r"}}},{"name":"b"}]}"#,
        r#"{"containers":[{"name":"a","ports":[{"containerPort":80,"hostPort":8080},{"hostPort":10000}]},{"name":"b","ports":[{"hostPort":8080}]}]}"#,
        r#"{"volumes":[{"name":"h","hostPath":{"path":"/"}},{"name":"n","nfs":{"server":"s","path":"/"}},{"name":"c","configMap":{"name":"x"}}],"containers":[{"name":"a"}]}"#,
        r#"{"securityContext":{"seccompProfile":{"type":"Unconfined"}},"containers":[{"name":"a","securityContext":{"seccompProfile":{"type":"Unconfined"}}},{"name":"b","securityContext":{"seccompProfile":{"type":"Other"}}}]}"#,
    ] {
        out.push(format!(r#"{{"spec":{spec}}}"#));
    }
    out
}

fn pod_of<T>(json: &str, f: impl FnOnce(PodView<'_, '_>) -> T) -> T {
    let workload = decode_workload(WorkloadKind::Pod, json).unwrap();
    let empty = PodSpec::default();
    f(workload.pod().unwrap_or(PodView::of_spec(&empty)))
}

#[test]
fn forbids_exactly_what_the_controls_forbid_and_words_one_offender_alike() {
    let samples = samples();
    assert!(samples.len() > 20);
    let mut compared = 0;
    for json in &samples {
        for control in CONTROLS {
            for minor in MINORS.into_iter().filter(|m| control.defined_at(*m)) {
                let spec = format!("check: {}\nparams: {{version: v1.{minor}}}", control.id);
                let findings = testing::run_object(&spec, json, |v| v.finding.problem.to_string());
                let upstream = pod_of(json, |pod| evaluate(control, minor, pod));
                assert_eq!(
                    findings.is_empty(),
                    upstream.is_none(),
                    "{} v1.{minor} on {json}: {findings:?} vs {upstream:?}",
                    control.upstream_id
                );
                if let ([one], Some((reason, detail))) = (&findings[..], &upstream) {
                    assert_eq!(one, &format!("{reason} ({detail})"), "{json}");
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 50, "{compared}");
}

fn words(upstream_id: &str, minor: u32, spec: &str) -> String {
    let control = CONTROLS
        .iter()
        .find(|c| c.upstream_id == upstream_id)
        .unwrap();
    let (reason, detail) = pod_of(&format!(r#"{{"spec":{spec}}}"#), |pod| {
        evaluate(control, minor, pod)
    })
    .unwrap();
    format!("{reason} ({detail})")
}

#[test]
fn several_offenders_read_as_upstream_words_them() {
    // check_privileged_test.go, check_hostPorts_test.go, check_restrictedVolumes_test.go,
    // check_runAsNonRoot_test.go, check_seLinuxOptions_test.go, check_capabilities_restricted_test.go.
    assert_eq!(
        words(
            "privileged",
            37,
            r#"{"containers":[{"name":"a"},{"name":"b","securityContext":{"privileged":true}},{"name":"c","securityContext":{"privileged":true}}]}"#
        ),
        r#"privileged (containers "b", "c" must not set securityContext.privileged=true)"#
    );
    assert_eq!(
        words(
            "hostPorts",
            37,
            r#"{"containers":[{"name":"a","ports":[{"hostPort":8080}]},{"name":"b","ports":[{"hostPort":80},{"hostPort":10000}]}]}"#
        ),
        "hostPort (containers \"a\", \"b\" use hostPorts 10000, 80, 8080)"
    );
    assert_eq!(
        words(
            "restrictedVolumes",
            37,
            r#"{"volumes":[{"name":"a","hostPath":{}},{"name":"b","nfs":{}},{"name":"c"}]}"#
        ),
        r#"restricted volume types (volumes "a", "b", "c" use restricted volume types "hostPath", "nfs", "unknown")"#
    );
    assert_eq!(
        words(
            "runAsNonRoot",
            37,
            r#"{"containers":[{"name":"a"},{"name":"b","securityContext":{}},{"name":"d","securityContext":{"runAsNonRoot":true}}]}"#
        ),
        r#"runAsNonRoot != true (pod or containers "a", "b" must set securityContext.runAsNonRoot=true)"#
    );
    assert_eq!(
        words(
            "seLinuxOptions",
            37,
            r#"{"containers":[{"name":"d","securityContext":{"seLinuxOptions":{"type":"bar"}}},{"name":"e","securityContext":{"seLinuxOptions":{"user":"x"}}},{"name":"f","securityContext":{"seLinuxOptions":{"role":"y"}}}]}"#
        ),
        r#"seLinuxOptions (containers "d", "e", "f" set forbidden securityContext.seLinuxOptions: type "bar"; user may not be set; role may not be set)"#
    );
    assert_eq!(
        words(
            "capabilities_restricted",
            37,
            r#"{"containers":[{"name":"a","securityContext":{"capabilities":{"add":["BAR","NET_BIND_SERVICE"]}}},{"name":"b","securityContext":{"capabilities":{"drop":["ALL"],"add":["FOO"]}}}]}"#
        ),
        r#"unrestricted capabilities (container "a" must set securityContext.capabilities.drop=["ALL"]; containers "a", "b" must not include "BAR", "FOO" in securityContext.capabilities.add)"#
    );
}
