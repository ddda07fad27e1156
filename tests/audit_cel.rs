//! `portier audit` judging CEL policies and ValidatingAdmissionPolicies against a real
//! kube-apiserver (`tests/k8s`): the kinds they select found through discovery and listed like
//! workloads (Services, ConfigMaps, ClusterRoles), pods owned by a Deployment still judged by
//! a policy on Pods, `namespaceSelector` and `namespaceObject` read from the Namespaces the
//! audit read and from nothing else, a 403 on one resource reported while the rest is judged,
//! and the PolicyReport and ClusterPolicyReport written.

mod common;
mod k8s;

use k8s::audit_env::{Env, code, json_out, owned, stderr, stored_report};
use k8s::objects::{create, object};
use k8s::policy_reports::{policy_report_resource, shipped_crds_installed};
use k8s::rbac::{grant, wait_allowed};
use k8s::{cluster, deployed};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use common::workloads::{CLEAN, deployment, object_meta, pod, replica_set};

/// The label that marks this test binary's ClusterRoles (a cluster-scoped kind is audited
/// across the whole shared API server).
const MARK: &str = "portier-audit-cel";

fn vap(name: &str, resources: &str, extra: &str, validation: &str) -> String {
    format!(
        "apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  matchConstraints:
    resourceRules: [{resources}]
    {extra}
  validations: [{validation}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}-binding}}
spec: {{policyName: {name}, validationActions: [Deny]}}
---
"
    )
}

/// VAPs on Services, Deployments (two, one by namespace labels), Pods, ConfigMaps (reading
/// `namespaceObject`) and ClusterRoles, and portier `check: cel` policies on ConfigMaps and
/// on a kind the API server does not serve.
fn policies() -> String {
    let core = |r: &str| {
        format!(
            "{{apiGroups: [''], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [{r}]}}"
        )
    };
    let apps =
        "{apiGroups: [apps], apiVersions: [v1], operations: ['*'], resources: [deployments]}";
    [
        vap(
            "no-load-balancer",
            &core("services"),
            "",
            "{expression: \"object.spec.type != 'LoadBalancer'\", message: 'no LoadBalancer services'}",
        ),
        vap(
            "few-replicas",
            apps,
            "",
            "{expression: 'object.spec.replicas <= 5', message: 'at most 5 replicas'}",
        ),
        vap(
            "prod-replicas",
            apps,
            "namespaceSelector: {matchLabels: {tier: prod}}",
            "{expression: 'object.spec.replicas >= 2', message: 'prod runs at least 2 replicas'}",
        ),
        vap(
            "team-label",
            &core("pods"),
            "",
            "{expression: \"has(object.metadata.labels) && 'team' in object.metadata.labels\", message: 'pods carry a team label'}",
        ),
        vap(
            "namespace-owner",
            &core("configmaps"),
            "",
            "{expression: \"has(namespaceObject.metadata.labels) && 'owner' in namespaceObject.metadata.labels\", messageExpression: \"'namespace ' + namespaceObject.metadata.name + ' has no owner label'\"}",
        ),
        vap(
            "no-wildcard-verbs",
            "{apiGroups: [rbac.authorization.k8s.io], apiVersions: ['*'], operations: ['*'], resources: ['*']}",
            &format!("objectSelector: {{matchLabels: {{{MARK}: 'true'}}}}"),
            "{expression: \"!has(object.rules) || object.rules.all(r, !('*' in r.verbs))\", message: 'no wildcard verbs'}",
        ),
        "apiVersion: portier.dev/v1
kind: Policy
metadata: {name: no-passwords}
spec:
  check: cel
  mode: warn
  match: {kinds: [ConfigMap]}
  params:
    validations:
      - expression: \"!has(object.data) || !('password' in object.data)\"
        message: no passwords in ConfigMaps
---
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: gizmos}
spec:
  check: cel
  match: {kinds: [Gizmo]}
  params: {validations: [{expression: 'false'}]}
"
        .to_owned(),
    ]
    .concat()
}

/// The chart's ClusterRole rules (but those on namespaces unless `read_namespaces`: bound in a
/// namespace, they let the user get that namespace) plus `extra`, as a ClusterRole of this
/// test, bound to `user` in `namespaces` (or cluster-wide for none).
async fn grant_rules(
    env: &Env,
    user: &str,
    name: &str,
    namespaces: &[&str],
    read_namespaces: bool,
    extra: Value,
) {
    let mut rules: Vec<Value> = deployed("ClusterRole", "portier")["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|rule| read_namespaces || !rule["resources"].to_string().contains("namespaces"))
        .cloned()
        .collect();
    rules.extend(extra.as_array().unwrap().iter().cloned());
    let role: ClusterRole = object(json!({"metadata": {"name": name}, "rules": rules}));
    Api::<ClusterRole>::all(env.admin.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    match namespaces {
        [] => grant(&env.admin, user, None, name).await,
        namespaces => {
            for ns in namespaces {
                grant(&env.admin, user, Some(ns), name).await;
            }
        }
    }
}

async fn label_namespace(admin: &Client, ns: &str, labels: Value) {
    Api::<Namespace>::all(admin.clone())
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": labels}})),
        )
        .await
        .unwrap();
}

/// `shop` (labelled `tier: prod`, `owner: alice`): a LoadBalancer and a ClusterIP Service, a
/// Deployment of 1 replica with a ReplicaSet and two pods (one without a team label), a
/// ConfigMap holding a password. `team` (no labels): a Deployment of 10 replicas, a ConfigMap.
async fn populate(env: &Env) {
    let (admin, shop, team) = (&env.admin, env.shop.as_str(), env.team.as_str());
    label_namespace(admin, shop, json!({"tier": "prod", "owner": "alice"})).await;
    for (name, kind) in [("lb", "LoadBalancer"), ("internal", "ClusterIP")] {
        let service: Service = object(json!({
            "metadata": {"name": name, "namespace": shop},
            "spec": {"type": kind, "ports": [{"port": 80}]}
        }));
        create(admin, service).await;
    }
    let web = [("app", "web")];
    let web_deployment: Deployment = create(
        admin,
        deployment(object_meta("web", shop, &web), &web, CLEAN),
    )
    .await;
    let rs: ReplicaSet = create(
        admin,
        replica_set(owned("web-1", shop, &web, &web_deployment), &web, CLEAN),
    )
    .await;
    create(admin, pod(owned("web-1-a", shop, &web, &rs), CLEAN)).await;
    let labelled = [("app", "web"), ("team", "a")];
    create(admin, pod(owned("web-1-b", shop, &labelled, &rs), CLEAN)).await;
    let secret: ConfigMap = object(json!({
        "metadata": {"name": "creds", "namespace": shop}, "data": {"password": "hunter2"}
    }));
    create(admin, secret).await;
    let big = [("app", "big")];
    let mut big_deployment = deployment(object_meta("big", team, &big), &big, CLEAN);
    big_deployment.spec.as_mut().unwrap().replicas = Some(10);
    create(admin, big_deployment).await;
    let settings: ConfigMap = object(json!({
        "metadata": {"name": "settings", "namespace": team}, "data": {"level": "debug"}
    }));
    create(admin, settings).await;
}

/// (kind/name, policy, message) of the rows in `ns`, sorted.
fn findings(doc: &Value, ns: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = doc["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["namespace"] == ns)
        .map(|r| {
            (
                format!(
                    "{}/{}",
                    r["kind"].as_str().unwrap(),
                    r["name"].as_str().unwrap()
                ),
                r["policy"].as_str().unwrap().to_owned(),
                r["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn finding(kind_name: &str, policy: &str, message: &str) -> (String, String, String) {
    (kind_name.to_owned(), policy.to_owned(), message.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_judges_cel_policies_on_the_kinds_they_select() {
    let env = Env::empty(&policies()).await;
    let (shop, team) = (env.shop.as_str(), env.team.as_str());
    populate(&env).await;
    let _crds = shipped_crds_installed(&env.admin, shop).await;
    let user = env.user.clone();
    grant_rules(
        &env,
        &user,
        &format!("{user}-cel"),
        &[shop, team],
        true,
        json!([
            {"apiGroups": [""], "resources": ["services", "configmaps"], "verbs": ["list"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["list"]},
            {"apiGroups": ["wgpolicyk8s.io"], "resources": ["policyreports"], "verbs": ["create", "patch"]}
        ]),
    )
    .await;
    // `get` on the two namespaces, for the policies that read them.
    let reader: ClusterRole = object(json!({"metadata": {"name": format!("{user}-ns")},
        "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}]}));
    Api::<ClusterRole>::all(env.admin.clone())
        .create(&PostParams::default(), &reader)
        .await
        .unwrap();
    grant_cluster(&env.admin, &user, &format!("{user}-ns")).await;
    wait_allowed(&env.admin, &user, None, "get", "", "namespaces").await;
    wait_allowed(&env.admin, &user, Some(team), "list", "", "configmaps").await;

    let out = env.audit(&[
        "-n",
        shop,
        "-n",
        team,
        "-o",
        "json",
        "--report",
        "policyreport",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc = json_out(&out);
    assert_eq!(
        findings(&doc, shop),
        [
            finding(
                "ConfigMap/creds",
                "no-passwords",
                "no passwords in ConfigMaps"
            ),
            finding(
                "Deployment/web",
                "prod-replicas-binding",
                "prod runs at least 2 replicas"
            ),
            // The pod owned (through its ReplicaSet) by Deployment web is judged itself.
            finding(
                "Pod/web-1-a",
                "team-label-binding",
                "pods carry a team label"
            ),
            finding(
                "Service/lb",
                "no-load-balancer-binding",
                "no LoadBalancer services"
            ),
        ],
        "{doc:#}"
    );
    assert_eq!(
        findings(&doc, team),
        [
            finding(
                "ConfigMap/settings",
                "namespace-owner-binding",
                &format!("namespace {team} has no owner label")
            ),
            finding(
                "Deployment/big",
                "few-replicas-binding",
                "at most 5 replicas"
            ),
        ],
        "{doc:#}"
    );
    let summary = &doc["summary"];
    assert_eq!(summary["complete"], true, "{summary:#}");
    // Services lb and internal, ConfigMaps creds and settings, and in each namespace the
    // RoleBinding that grants this audit (no-wildcard-verbs selects every rbac kind).
    assert_eq!(summary["objects"], 6, "{summary:#}");
    assert_eq!(
        summary["notes"],
        json!([
            "policy gizmos: kind Gizmo (spec.match.kinds) is not served by the API server (discovery does not know it); nothing of that kind was audited",
            "cluster-scoped resources CEL policies select were not audited (only with --all-namespaces): clusterrolebindings.rbac.authorization.k8s.io, clusterroles.rbac.authorization.k8s.io"
        ])
    );

    // The Service's finding is in shop's PolicyReport, as a workload's would be.
    let report = stored_report(&env, shop).await;
    let service = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resources"][0]["kind"] == "Service")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(service["policy"], "no-load-balancer-binding");
    assert_eq!(service["message"], "no LoadBalancer services");
    assert_eq!(
        service["resources"][0],
        json!({"apiVersion": "v1", "kind": "Service", "name": "lb", "namespace": shop,
               "uid": service["resources"][0]["uid"]})
    );
    assert_eq!(report["summary"]["fail"], 4);
}

async fn grant_cluster(admin: &Client, user: &str, role: &str) {
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    let binding: ClusterRoleBinding = object(json!({
        "metadata": {"name": format!("{role}-binding")},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}],
        "roleRef": {"kind": "ClusterRole", "apiGroup": "rbac.authorization.k8s.io", "name": role}
    }));
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_resource_and_an_unreadable_namespace_are_said_and_the_rest_judged() {
    let env = Env::empty(&policies()).await;
    let shop = env.shop.as_str();
    populate(&env).await;
    // ConfigMaps but not Services, and no `get` on namespaces.
    let (user, kubeconfig) = env.other_user("no-services");
    grant_rules(
        &env,
        &user,
        &format!("{user}-cel"),
        &[shop],
        false,
        json!([
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["list"]}
        ]),
    )
    .await;
    wait_allowed(&env.admin, &user, Some(shop), "list", "", "configmaps").await;

    let out = env.audit_with(&kubeconfig, &["-n", shop, "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc = json_out(&out);
    let namespace = &doc["summary"]["namespaces"][0];
    assert_eq!(namespace["status"], "partial", "{doc:#}");
    let problems = namespace["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0]["resource"], "services");
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("403 Forbidden: services is forbidden"),
        "{problems:#?}"
    );
    // The labels of shop are not known, although it has tier: prod: the policy that needs
    // them cannot decide and says why; the one reading namespaceObject likewise.
    let why = format!(
        "the audit could not read the namespace: 403 Forbidden: namespaces \"{shop}\" is forbidden"
    );
    let got = findings(&doc, shop);
    let message_of = |object: &str, policy: &str| {
        got.iter()
            .find(|(o, p, _)| o == object && p == policy)
            .map(|(_, _, message)| message.as_str())
            .unwrap_or_else(|| panic!("no {policy} on {object}: {got:#?}\n{}", stderr(&out)))
    };
    let web = message_of("Deployment/web", "prod-replicas-binding");
    assert!(
        web.contains(&format!(
            "cannot decide spec.matchConstraints.namespaceSelector (tier=prod): the labels of namespace \"{shop}\" are not known ({why}"
        )),
        "{web}"
    );
    let creds = message_of("ConfigMap/creds", "namespace-owner-binding");
    assert!(
        creds.contains(&format!(
            "cannot evaluate namespaceObject: namespace \"{shop}\" is not known ({why}"
        )),
        "{creds}"
    );
    // The rest is judged: the pod without a team label, the ConfigMap's password; no
    // Service (not listed).
    assert_eq!(
        message_of("Pod/web-1-a", "team-label-binding"),
        "pods carry a team label"
    );
    assert_eq!(
        message_of("ConfigMap/creds", "no-passwords"),
        "no passwords in ConfigMaps"
    );
    assert!(
        !got.iter().any(|(o, _, _)| o.starts_with("Service/")),
        "{got:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_namespaces_audits_cluster_scoped_kinds_into_a_cluster_policy_report() {
    let env = Env::empty(&policies()).await;
    let _crds = shipped_crds_installed(&env.admin, &env.shop).await;
    let name = cluster().unique("wild");
    let role: ClusterRole = object(json!({
        "metadata": {"name": name, "labels": {MARK: "true"}},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}]
    }));
    Api::<ClusterRole>::all(env.admin.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let user = env.user.clone();
    grant_rules(
        &env,
        &user,
        &format!("{user}-cel"),
        &[],
        true,
        json!([
            {"apiGroups": [""], "resources": ["services", "configmaps"], "verbs": ["list"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings", "clusterroles", "clusterrolebindings"], "verbs": ["list"]},
            {"apiGroups": ["wgpolicyk8s.io"], "resources": ["policyreports", "clusterpolicyreports"], "verbs": ["create", "patch"]}
        ]),
    )
    .await;
    wait_allowed(
        &env.admin,
        &user,
        None,
        "list",
        "rbac.authorization.k8s.io",
        "clusterroles",
    )
    .await;

    let out = env.audit(&["-A", "-o", "json", "--report", "policyreport"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc = json_out(&out);
    assert_eq!(
        findings(&doc, ""),
        [finding(
            &format!("ClusterRole/{name}"),
            "no-wildcard-verbs-binding",
            "no wildcard verbs"
        )],
        "{doc:#}"
    );
    let cluster_scope = doc["summary"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["namespace"] == "")
        .unwrap_or_else(|| panic!("{doc:#}"));
    assert_eq!(cluster_scope["status"], "complete", "{cluster_scope:#}");

    let reports: Api<DynamicObject> = Api::all_with(env.admin.clone(), &cluster_report());
    let report = serde_json::to_value(reports.get("portier-cluster").await.unwrap()).unwrap();
    assert_eq!(report["kind"], "ClusterPolicyReport");
    let results = report["results"].as_array().unwrap();
    let ours: Vec<&Value> = results
        .iter()
        .filter(|r| r["resources"][0]["name"] == name.as_str())
        .collect();
    assert_eq!(ours.len(), 1, "{report:#}");
    assert_eq!(ours[0]["policy"], "no-wildcard-verbs-binding");
    assert_eq!(
        ours[0]["resources"][0]["apiVersion"],
        "rbac.authorization.k8s.io/v1"
    );
    assert!(ours[0]["resources"][0].get("namespace").is_none());
}

fn cluster_report() -> ApiResource {
    ApiResource {
        kind: "ClusterPolicyReport".into(),
        plural: "clusterpolicyreports".into(),
        ..policy_report_resource()
    }
}
