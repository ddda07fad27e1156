//! `check` on manifests: workloads judged as admission judges them, and bad input.

use super::*;

const SET: &str = "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: np}\nspec: {check: privileged}\n---\napiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: hn}\nspec: {check: host-namespaces, mode: warn}\n";

const MANIFESTS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    spec:
      hostNetwork: true
      containers:
        - name: app
          image: nginx
          securityContext: {privileged: true}
---
apiVersion: v1
kind: List
items:
  - {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ok"}, "spec": {"containers": [{"name": "a"}]}}
"#;

#[test]
fn judges_every_workload_like_admission() {
    let set = PolicySet::from_yaml("set.yaml", SET).unwrap();
    let mut report = Report::default();
    check_text(
        "m.yaml",
        MANIFESTS,
        &set,
        Mutate::No,
        Images::Offline,
        &mut report,
    )
    .unwrap();
    assert_eq!(report.judged, 2);
    assert_eq!(report.skipped, 1);
    assert!(report.denies());
    assert_eq!(report.rows.len(), 2);
    let row = &report.rows[0];
    assert_eq!(
        (row.kind.as_str(), row.namespace.as_str(), row.name.as_str()),
        ("Deployment", "shop", "web")
    );
    assert_eq!(
        row.path,
        "spec.template.spec.containers[0].securityContext.privileged"
    );
    assert_eq!(row.container.as_deref(), Some("app"));
    assert_eq!(report.rows[1].path, "spec.template.spec.hostNetwork");
    assert_eq!(report.rows[1].container, None);
    let table = render_table(&report);
    assert!(table.contains("Deployment/shop/web"), "{table}");
    assert!(
        table.contains("2 object(s) judged, 2 violation(s): 1 enforce, 1 warn"),
        "{table}"
    );
}

#[test]
fn admission_defaults_are_applied_first() {
    let mut pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "spec": {
            "hostNetwork": true,
            "volumes": [{"name": "none"}, {"name": "null", "secret": null}, {"name": "s", "secret": {}}],
            "containers": [{"name": "a", "ports": [{"containerPort": 80}, {"containerPort": 81, "hostPort": 9}]}],
            "initContainers": [{"name": "i", "ports": [{"containerPort": 82, "hostPort": 0}]}]}});
    apply_admission_defaults(WorkloadKind::Pod, &mut pod);
    let spec = &pod["spec"];
    assert_eq!(spec["volumes"][0]["emptyDir"], serde_json::json!({}));
    assert_eq!(spec["volumes"][1]["emptyDir"], serde_json::json!({}));
    assert!(spec["volumes"][2].get("emptyDir").is_none());
    assert_eq!(spec["containers"][0]["ports"][0]["hostPort"], 80);
    assert_eq!(spec["containers"][0]["ports"][1]["hostPort"], 9);
    assert_eq!(spec["initContainers"][0]["ports"][0]["hostPort"], 82);

    let mut deployment = serde_json::json!({"spec": {"template": {"spec": {"hostNetwork": true,
            "volumes": [{"name": "v"}], "containers": [{"name": "a", "ports": [{"containerPort": 80}]}]}}}});
    apply_admission_defaults(WorkloadKind::Deployment, &mut deployment);
    let spec = &deployment["spec"]["template"]["spec"];
    assert_eq!(spec["volumes"][0]["emptyDir"], serde_json::json!({}));
    assert!(spec["containers"][0]["ports"][0].get("hostPort").is_none());
}

#[test]
fn bad_documents_are_errors_naming_the_document() {
    let set = PolicySet::from_yaml("set.yaml", SET).unwrap();
    let mut report = Report::default();
    let e = check_text(
        "m.yaml",
        "kind: Pod\n",
        &set,
        Mutate::No,
        Images::Offline,
        &mut report,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "m.yaml document 1: has no apiVersion");
    let e = check_text(
        "m.yaml",
        "a: [",
        &set,
        Mutate::No,
        Images::Offline,
        &mut report,
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("m.yaml: not valid YAML or JSON"),
        "{e}"
    );
    let bad = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: {a: 1}}\n";
    let e = check_text(
        "m.yaml",
        bad,
        &set,
        Mutate::No,
        Images::Offline,
        &mut report,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("not a valid Pod: spec.containers"),
        "{e}"
    );
    let e = check_text(
        "m.yaml",
        "- 1\n- 2\n",
        &set,
        Mutate::No,
        Images::Offline,
        &mut report,
    )
    .unwrap_err();
    assert!(e.to_string().contains("is not a Kubernetes object"), "{e}");
}
