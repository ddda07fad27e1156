//! Which resources the audit lists for CEL policies, on a discovery like a real API server's.

use super::*;

fn resource(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Resource {
    Resource {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        resource: plural.into(),
        namespaced,
    }
}

/// A small cluster's discovery: preferred versions first.
fn discovered() -> Vec<Resource> {
    vec![
        resource("", "v1", "Pod", "pods", true),
        resource("", "v1", "Service", "services", true),
        resource("", "v1", "ConfigMap", "configmaps", true),
        resource("", "v1", "Secret", "secrets", true),
        resource("", "v1", "Namespace", "namespaces", false),
        resource("apps", "v1", "Deployment", "deployments", true),
        resource("apps", "v1", "ReplicaSet", "replicasets", true),
        resource(
            "apps",
            "v1",
            "ControllerRevision",
            "controllerrevisions",
            true,
        ),
        resource("batch", "v1", "Job", "jobs", true),
        resource("networking.k8s.io", "v1", "Ingress", "ingresses", true),
        resource(
            "networking.k8s.io",
            "v1",
            "IngressClass",
            "ingressclasses",
            false,
        ),
        resource("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
        resource(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
        ),
        resource("example.com", "v2", "Widget", "widgets", true),
        resource("example.com", "v1", "Widget", "widgets", true),
    ]
}

fn vap(name: &str, constraints: &str, binding: &str) -> String {
    format!(
        "apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  matchConstraints: {constraints}
  validations: [{{expression: 'true'}}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}-binding}}
spec:
  policyName: {name}
  validationActions: [Deny]
  {binding}
"
    )
}

fn selected(yaml: &str) -> CelResources {
    let set = PolicySet::from_yaml("set.yaml", yaml).unwrap();
    select(&set, &discovered())
}

fn names(resources: &[Arc<Resource>]) -> Vec<String> {
    resources
        .iter()
        .map(|r| format!("{}/{}", r.api_version(), r.resource))
        .collect()
}

#[test]
fn explicit_rules_list_their_resources_and_workloads_stay_with_the_workload_scan() {
    let got = selected(&vap(
        "svc",
        "{resourceRules: [{apiGroups: [''], apiVersions: [v1], operations: [CREATE], resources: [services]}, {apiGroups: [apps], apiVersions: [v1], operations: ['*'], resources: [deployments]}]}",
        "",
    ));
    assert_eq!(names(&got.namespaced), ["v1/services"]);
    assert!(got.cluster.is_empty());
    assert_eq!(got.workload_kinds, [WorkloadKind::Deployment]);
    assert!(got.unknown.is_empty(), "{:?}", got.unknown);
}

#[test]
fn wildcards_select_every_listable_resource_of_their_groups() {
    let got = selected(&vap(
        "rbac",
        "{resourceRules: [{apiGroups: [rbac.authorization.k8s.io], apiVersions: ['*'], operations: ['*'], resources: ['*']}]}",
        "",
    ));
    assert_eq!(
        names(&got.namespaced),
        ["rbac.authorization.k8s.io/v1/roles"]
    );
    assert_eq!(
        names(&got.cluster),
        ["rbac.authorization.k8s.io/v1/clusterroles"]
    );
    // `*/*` is everything; the workloads are left to the workload scan, each kind once, in the
    // preferred version.
    let everything = selected(&vap(
        "all",
        "{resourceRules: [{apiGroups: ['*'], apiVersions: ['*'], operations: ['*'], resources: ['*/*']}]}",
        "",
    ));
    assert_eq!(
        names(&everything.namespaced),
        [
            "v1/services",
            "v1/configmaps",
            "v1/secrets",
            "apps/v1/controllerrevisions",
            "networking.k8s.io/v1/ingresses",
            "rbac.authorization.k8s.io/v1/roles",
            "example.com/v2/widgets",
        ]
    );
    assert_eq!(everything.workload_kinds.len(), 8);
}

#[test]
fn exclusions_scope_and_operations_narrow_what_is_listed() {
    let got = selected(&vap(
        "most",
        "{resourceRules: [{apiGroups: [''], apiVersions: [v1], operations: [CREATE], resources: ['*'], scope: Namespaced}], excludeResourceRules: [{apiGroups: [''], apiVersions: [v1], operations: ['*'], resources: [secrets]}, {apiGroups: [''], apiVersions: [v1], operations: ['*'], resources: [configmaps], resourceNames: [kube-root-ca.crt]}]}",
        "",
    ));
    // Namespaced only (no namespaces), secrets excluded, configmaps kept (only one name is
    // excluded: that object is left out when judged).
    assert_eq!(names(&got.namespaced), ["v1/services", "v1/configmaps"]);
    assert!(got.cluster.is_empty());
    assert_eq!(
        got.workload_kinds,
        [WorkloadKind::ReplicationController, WorkloadKind::Pod]
    );
    // Judged as a CREATE: a policy only on DELETE is called for nothing the audit judges.
    let deletes = selected(&vap(
        "del",
        "{resourceRules: [{apiGroups: [''], apiVersions: [v1], operations: [DELETE], resources: [services]}]}",
        "",
    ));
    assert!(deletes.namespaced.is_empty());
}

#[test]
fn the_binding_narrows_the_policy_and_equivalent_resources_count() {
    let got = selected(&vap(
        "net",
        "{resourceRules: [{apiGroups: ['*'], apiVersions: ['*'], operations: ['*'], resources: ['*']}]}",
        "matchResources: {resourceRules: [{apiGroups: [networking.k8s.io], apiVersions: ['*'], operations: ['*'], resources: ['*']}]}",
    ));
    assert_eq!(names(&got.namespaced), ["networking.k8s.io/v1/ingresses"]);
    assert_eq!(names(&got.cluster), ["networking.k8s.io/v1/ingressclasses"]);
    assert!(got.workload_kinds.is_empty());
    // extensions/v1beta1 ingresses are networking.k8s.io/v1 ones under Equivalent, not Exact.
    let old = "{resourceRules: [{apiGroups: [extensions], apiVersions: [v1beta1], operations: ['*'], resources: [ingresses]}]";
    let equivalent = selected(&vap("old", &format!("{old}}}"), ""));
    assert_eq!(
        names(&equivalent.namespaced),
        ["networking.k8s.io/v1/ingresses"]
    );
    assert!(equivalent.unknown.is_empty(), "{:?}", equivalent.unknown);
    let exact = selected(&vap("old", &format!("{old}, matchPolicy: Exact}}"), ""));
    assert!(exact.namespaced.is_empty());
    // Exact on another version of a served group: listed in that version.
    let v1 = selected(&vap(
        "w",
        "{resourceRules: [{apiGroups: [example.com], apiVersions: [v1], operations: ['*'], resources: [widgets]}], matchPolicy: Exact}",
        "",
    ));
    assert_eq!(names(&v1.namespaced), ["example.com/v1/widgets"]);
}

#[test]
fn portier_policies_list_their_kinds_and_unknown_kinds_are_said() {
    let got = selected(
        "apiVersion: portier.dev/v1
kind: Policy
metadata: {name: cm}
spec:
  check: cel
  match: {kinds: [ConfigMap, 'Cluster*', Gizmo, Pod]}
  exclude: {kinds: [ClusterRoleBinding]}
  params: {validations: [{expression: 'true'}]}
",
    );
    assert_eq!(names(&got.namespaced), ["v1/configmaps"]);
    assert_eq!(
        names(&got.cluster),
        ["rbac.authorization.k8s.io/v1/clusterroles"]
    );
    assert_eq!(got.workload_kinds, [WorkloadKind::Pod]);
    assert_eq!(
        got.unknown,
        [
            "policy cm: kind Gizmo (spec.match.kinds) is not served by the API server (discovery does not know it); nothing of that kind was audited"
        ]
    );
    let unknown = selected(&vap(
        "gone",
        "{resourceRules: [{apiGroups: [example.org], apiVersions: [v1], operations: ['*'], resources: [gadgets, gadgets/status]}]}",
        "",
    ));
    assert_eq!(
        unknown.unknown,
        [
            "ValidatingAdmissionPolicy gone (binding gone-binding): resource gadgets.example.org is not served by the API server (discovery does not know it); nothing of it was audited"
        ]
    );
}

#[test]
fn sets_without_cel_policies_list_nothing_more() {
    let got = selected(
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: p}\nspec: {check: privileged}\n",
    );
    assert!(got.namespaced.is_empty() && got.cluster.is_empty());
    assert!(got.workload_kinds.is_empty() && got.unknown.is_empty());
}

#[test]
fn paths_and_names_follow_the_groups() {
    let svc = resource("", "v1", "Service", "services", true);
    assert_eq!(
        svc.collection_path(Some("shop")),
        "/api/v1/namespaces/shop/services"
    );
    let role = resource(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
    );
    assert_eq!(
        role.collection_path(None),
        "/apis/rbac.authorization.k8s.io/v1/clusterroles"
    );
    assert_eq!(role.name(), "clusterroles.rbac.authorization.k8s.io");
    assert_eq!(svc.name(), "services");
}
