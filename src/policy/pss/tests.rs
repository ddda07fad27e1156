//! Helpers for the controls' tests, and tests of the registry and the composed levels.

use super::{CONTROLS, LATEST_MINOR, Level, Version, controls_for};
use crate::pod::{WorkloadKind, decode_workload};
use crate::policy::{PolicySet, Sink, Violation, testing};

/// The three container lists, for putting one container into each in turn.
pub const LISTS: [&str; 3] = ["initContainers", "containers", "ephemeralContainers"];

/// A pod spec (JSON) holding `container` in each of the three lists in turn, with the list name.
pub fn each_list(container: &str) -> Vec<(&'static str, String)> {
    LISTS
        .iter()
        .map(|list| (*list, format!(r#"{{"{list}":[{container}]}}"#)))
        .collect()
}

fn policy(check: &str) -> PolicySet {
    testing::policy_set(&format!("check: {check}"))
}

fn judge(
    check: &str,
    pod_json: &str,
    render: impl Fn(&Violation<'_, '_>) -> String,
) -> Vec<String> {
    testing::run_object(&format!("check: {check}"), pod_json, render)
}

/// `<path>: <problem>` for each finding of `check` (a check id, optionally followed by lines
/// such as `params: {version: v1.24}`) on a pod spec given as JSON.
pub fn run(check: &str, pod_spec_json: &str) -> Vec<String> {
    run_pod(check, &format!(r#"{{"spec":{pod_spec_json}}}"#))
}

/// Like [`run`], on a whole Pod object (with metadata).
pub fn run_pod(check: &str, pod_json: &str) -> Vec<String> {
    judge(check, pod_json, |v| {
        format!("{}: {}", v.finding.path.render("spec"), v.finding.problem)
    })
}

/// The full messages the engine renders, for a pod spec given as JSON.
pub fn messages(check: &str, pod_spec_json: &str) -> Vec<String> {
    judge(check, &format!(r#"{{"spec":{pod_spec_json}}}"#), |v| {
        v.message("spec")
    })
}

/// The check with a version param.
pub fn at(check: &str, version: &str) -> String {
    format!("{check}\nparams: {{version: {version}}}")
}

fn upstream_ids(level: Level, version: &str) -> Vec<&'static str> {
    let minor = Version::parse(version).unwrap().minor();
    controls_for(level, minor)
        .iter()
        .map(|c| c.upstream_id)
        .collect()
}

#[test]
fn levels_at_latest_in_upstream_order() {
    let baseline = [
        "appArmorProfile",
        "capabilities_baseline",
        "hostNamespaces",
        "hostPathVolumes",
        "hostPorts",
        "hostProbesAndHostLifecycle",
        "privileged",
        "procMount",
        "seLinuxOptions",
        "seccompProfile_baseline",
        "sysctls",
        "windowsHostProcess",
    ];
    assert_eq!(upstream_ids(Level::Baseline, "latest"), baseline);
    assert_eq!(
        upstream_ids(Level::Restricted, "latest"),
        [
            "appArmorProfile",
            "hostNamespaces",
            "hostPorts",
            "hostProbesAndHostLifecycle",
            "privileged",
            "seLinuxOptions",
            "sysctls",
            "windowsHostProcess",
            "allowPrivilegeEscalation",
            "capabilities_restricted",
            "procMount_restricted",
            "restrictedVolumes",
            "runAsNonRoot",
            "runAsUser",
            "seccompProfile_restricted",
        ]
    );
    // The registry is in upstream's order: each level's ids sorted byte-wise.
    for level in [Level::Baseline, Level::Restricted] {
        let ids: Vec<&str> = CONTROLS
            .iter()
            .filter(|c| c.level == level)
            .map(|c| c.upstream_id)
            .collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted);
    }
    assert_eq!(
        upstream_ids(Level::Restricted, "v1.99"),
        upstream_ids(Level::Restricted, "latest")
    );
    assert_eq!(Version::parse("v1.99").unwrap().minor(), LATEST_MINOR);
}

#[test]
fn restricted_over_the_versions() {
    let at = |v| upstream_ids(Level::Restricted, v);
    assert_eq!(
        at("v1.0"),
        [
            "appArmorProfile",
            "capabilities_baseline",
            "hostNamespaces",
            "hostPorts",
            "privileged",
            "procMount",
            "seLinuxOptions",
            "seccompProfile_baseline",
            "sysctls",
            "windowsHostProcess",
            "restrictedVolumes",
            "runAsNonRoot",
        ]
    );
    assert!(at("v1.8").contains(&"allowPrivilegeEscalation"));
    assert!(!at("v1.7").contains(&"allowPrivilegeEscalation"));
    assert!(at("v1.18").contains(&"seccompProfile_baseline"));
    assert!(at("v1.19").contains(&"seccompProfile_restricted"));
    assert!(!at("v1.19").contains(&"seccompProfile_baseline"));
    assert!(at("v1.21").contains(&"capabilities_baseline"));
    assert!(!at("v1.22").contains(&"capabilities_baseline"));
    assert!(at("v1.22").contains(&"capabilities_restricted"));
    assert!(!at("v1.22").contains(&"runAsUser"));
    assert!(at("v1.23").contains(&"runAsUser"));
    assert!(!at("v1.33").contains(&"hostProbesAndHostLifecycle"));
    assert!(at("v1.34").contains(&"hostProbesAndHostLifecycle"));
    assert!(at("v1.34").contains(&"procMount"));
    assert!(!at("v1.35").contains(&"procMount"));
    assert!(at("v1.35").contains(&"procMount_restricted"));
    assert!(
        !upstream_ids(Level::Baseline, "latest").contains(&"procMount_restricted"),
        "restricted controls never run at baseline"
    );
}

#[test]
fn versions_parse_like_upstream() {
    assert_eq!(Version::parse("latest"), Ok(Version::Latest));
    assert_eq!(Version::parse("v1.0"), Ok(Version::V1(0)));
    assert_eq!(Version::parse("v1.29"), Ok(Version::V1(29)));
    assert_eq!(Version::V1(29).to_string(), "v1.29");
    for bad in [
        "",
        "Latest",
        "v1.029",
        "1.29",
        "v2.1",
        "v1.",
        "v1.-1",
        "v1.2.3",
        "v1.99999999999",
    ] {
        assert!(Version::parse(bad).is_err(), "{bad:?}");
    }
    let e = PolicySet::from_yaml(
        "p.yaml",
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: x}\nspec: {check: pod-security, params: {level: restricted, version: 1.29}}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("document 1: spec.params.version:"), "{e}");
    let e = PolicySet::from_yaml(
        "p.yaml",
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: x}\nspec: {check: pod-security, params: {level: restricted, version: v1.02}}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("spec.params.version: invalid version \"v1.02\""),
        "{e}"
    );
    let e = PolicySet::from_yaml(
        "p.yaml",
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: x}\nspec: {check: pod-security, params: {level: privileged}}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("spec.params.level: unknown variant `privileged`"),
        "{e}"
    );
    let e = PolicySet::from_yaml(
        "p.yaml",
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: x}\nspec: {check: pod-security}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("missing field `level`"), "{e}");
    let e = PolicySet::from_yaml(
        "p.yaml",
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: x}\nspec: {check: pss-run-as-non-root-user, params: {version: v1.22}}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("spec.params.version: pss-run-as-non-root-user (runAsUser) is defined from v1.23 on, not at v1.22"),
        "{e}"
    );
}

#[test]
fn every_control_is_a_check_id_once() {
    for c in CONTROLS {
        assert!(crate::policy::CHECK_IDS.contains(&c.id), "{}", c.id);
        assert_eq!(CONTROLS.iter().filter(|o| o.id == c.id).count(), 1);
        assert!(c.id.starts_with("pss-"));
        assert!(c.revisions.windows(2).all(|w| w[0] < w[1]));
        assert!(c.revisions.iter().all(|r| *r <= LATEST_MINOR));
    }
    // The five core checks, pod-security, one per control, and cel.
    assert_eq!(crate::policy::CHECK_IDS.len(), 5 + 1 + CONTROLS.len() + 1);
}

const RESTRICTED: &str = "pod-security\nparams: {level: restricted}";
const BASELINE: &str = "pod-security\nparams: {level: baseline}";

#[test]
fn restricted_reads_like_upstream_for_a_bare_pod() {
    // Upstream: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false
    // (container "nginx" must set securityContext.allowPrivilegeEscalation=false), unrestricted
    // capabilities (container "nginx" must set securityContext.capabilities.drop=["ALL"]),
    // runAsNonRoot != true (pod or container "nginx" must set securityContext.runAsNonRoot=true),
    // seccompProfile (pod or container "nginx" must set securityContext.seccompProfile.type to
    // "RuntimeDefault" or "Localhost")
    let pod = r#"{"containers":[{"name":"nginx","image":"nginx"}]}"#;
    assert_eq!(
        run(RESTRICTED, pod),
        vec![
            r#"spec.containers[0].securityContext.allowPrivilegeEscalation: allowPrivilegeEscalation != false (container "nginx" must set securityContext.allowPrivilegeEscalation=false)"#,
            r#"spec.containers[0].securityContext.capabilities.drop: unrestricted capabilities (container "nginx" must set securityContext.capabilities.drop=["ALL"])"#,
            r#"spec.containers[0].securityContext.runAsNonRoot: runAsNonRoot != true (pod or container "nginx" must set securityContext.runAsNonRoot=true)"#,
            r#"spec.containers[0].securityContext.seccompProfile.type: seccompProfile (pod or container "nginx" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#,
        ]
    );
    assert!(run(BASELINE, pod).is_empty());
    assert_eq!(
        messages(
            "pod-security\nparams: {level: restricted, version: v1.30}",
            pod
        )[0],
        "t/pod-security: container \"nginx\" spec.containers[0].securityContext.allowPrivilegeEscalation: \
         allowPrivilegeEscalation != false (container \"nginx\" must set securityContext.allowPrivilegeEscalation=false) \
         — set securityContext.allowPrivilegeEscalation: false"
    );
}

const COMPLIANT: &str = r#"{"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},
    "volumes":[{"name":"c","configMap":{"name":"x"}}],
    "containers":[{"name":"app","ports":[{"containerPort":8080}],
      "securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"],"add":["NET_BIND_SERVICE"]}}}]}"#;

#[test]
fn a_compliant_pod_passes_every_level_version_and_control() {
    for level in ["baseline", "restricted"] {
        for minor in 0..=LATEST_MINOR + 2 {
            let check = format!("pod-security\nparams: {{level: {level}, version: v1.{minor}}}");
            assert!(run(&check, COMPLIANT).is_empty(), "{level} v1.{minor}");
        }
    }
    for c in CONTROLS {
        assert!(run(c.id, COMPLIANT).is_empty(), "{}", c.id);
    }
}

#[test]
fn windows_pods_skip_the_linux_only_restricted_controls() {
    let pod = r#"{"os":{"name":"windows"},"containers":[{"name":"w","securityContext":{"capabilities":{"add":["SYS_ADMIN"]}}}]}"#;
    assert_eq!(
        run(RESTRICTED, pod),
        vec![
            r#"spec.containers[0].securityContext.runAsNonRoot: runAsNonRoot != true (pod or container "w" must set securityContext.runAsNonRoot=true)"#
        ],
        "no capabilities control at all: the restricted one is skipped and overrides the baseline one"
    );
    assert_eq!(
        run(BASELINE, pod),
        vec![
            r#"spec.containers[0].securityContext.capabilities.add: non-default capabilities (container "w" must not include "SYS_ADMIN" in securityContext.capabilities.add)"#
        ]
    );
    let v1_24 = run(
        "pod-security\nparams: {level: restricted, version: v1.24}",
        pod,
    );
    assert_eq!(v1_24.len(), 5, "{v1_24:#?}");
}

#[test]
fn older_restricted_versions_use_the_baseline_controls_they_had() {
    let pod = r#"{"securityContext":{"runAsNonRoot":true},"containers":[{"name":"c",
        "securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"add":["SYS_ADMIN"]}}}]}"#;
    assert_eq!(
        run(
            "pod-security\nparams: {level: restricted, version: v1.18}",
            pod
        ),
        vec![
            r#"spec.containers[0].securityContext.capabilities.add: non-default capabilities (container "c" must not include "SYS_ADMIN" in securityContext.capabilities.add)"#
        ],
        "no seccomp requirement before v1.19, baseline capabilities before v1.22"
    );
}

#[test]
fn the_image_selector_leaves_containers_out() {
    let check = "pod-security\nparams: {level: restricted}\nexclude: {images: [\"registry.k8s.io/pause:*\"]}";
    let pod = r#"{"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},
        "containers":[{"name":"p","image":"registry.k8s.io/pause:3.9"}]}"#;
    assert!(run(check, pod).is_empty());
    assert_eq!(run(RESTRICTED, pod).len(), 2);
}

#[test]
fn findings_name_the_path_below_a_controllers_template() {
    let set = policy(RESTRICTED);
    let json = r#"{"spec":{"template":{"metadata":{"annotations":{"container.apparmor.security.beta.kubernetes.io/c":"unconfined"}},
        "spec":{"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},
        "containers":[{"name":"c","securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}}}"#;
    let w = decode_workload(WorkloadKind::Deployment, json).unwrap();
    let mut out = Vec::new();
    let policy = &set.policies()[0];
    policy.check.evaluate(
        w.pod().unwrap(),
        &crate::engine::Request::new(WorkloadKind::Deployment, "default", None),
        &crate::policy::Unverified,
        &mut Sink::new(policy, 0, &mut out),
    );
    let paths: Vec<String> = out
        .iter()
        .map(|v| {
            v.finding
                .path
                .render(WorkloadKind::Deployment.pod_spec_path())
        })
        .collect();
    assert_eq!(
        paths,
        vec![
            "spec.template.metadata.annotations[container.apparmor.security.beta.kubernetes.io/c]"
        ]
    );
}
