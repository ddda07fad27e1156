//! RBAC on the test API server: the chart's ClusterRole (from `deploy/portier.yaml`) and
//! variants of it, bound to a test's users, and waiting until the authorizer applies a grant.

use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::objects::object;
use super::{deployed, eventually};

/// The chart's ClusterRole (`deploy/portier.yaml`: pods and controllers get/list/watch,
/// namespaces list).
pub const CHART_ROLE: &str = "portier-test-chart";
/// The chart's ClusterRole with PolicyReports, as it renders with `audit.policyReports`.
pub const REPORTS_ROLE: &str = "portier-test-reports";
/// Listing namespaces only, for `-A` and the periodic audit.
pub const NAMESPACES_ROLE: &str = "portier-test-namespaces";

pub async fn ensure_ok<T>(result: Result<T, kube::Error>) {
    match result {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("{e}"),
    }
}

pub async fn cluster_roles(admin: &Client) {
    static MADE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    MADE.get_or_init(|| async {
        let chart = deployed("ClusterRole", "portier");
        let rules = chart["rules"].as_array().unwrap().clone();
        let mut with_reports = rules.clone();
        with_reports.push(json!({"apiGroups": ["wgpolicyk8s.io"], "resources": ["policyreports"], "verbs": ["create", "patch"]}));
        let roles = Api::<ClusterRole>::all(admin.clone());
        for (name, rules) in [
            (CHART_ROLE, Value::from(rules)),
            (REPORTS_ROLE, Value::from(with_reports)),
            (
                NAMESPACES_ROLE,
                json!([{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]}]),
            ),
        ] {
            let role: ClusterRole =
                object(json!({"metadata": {"name": name}, "rules": rules}));
            ensure_ok(roles.create(&PostParams::default(), &role).await).await;
        }
    })
    .await;
}

/// Waits until the API server's authorizer lets `user` do `verb` on `group/resource` (in `ns`):
/// RBAC reads roles and bindings through informers, so a new grant applies a moment later.
pub async fn wait_allowed(
    admin: &Client,
    user: &str,
    ns: Option<&str>,
    verb: &str,
    group: &str,
    resource: &str,
) {
    let reviews = Api::<SubjectAccessReview>::all(admin.clone());
    let review: SubjectAccessReview = object(json!({
        "spec": {"user": user, "resourceAttributes": {
            "namespace": ns.unwrap_or(""), "verb": verb, "group": group, "resource": resource
        }}
    }));
    eventually(&format!("{user} may {verb} {resource} in {ns:?}"), || {
        let reviews = reviews.clone();
        let review = review.clone();
        async move {
            let answer = reviews
                .create(&PostParams::default(), &review)
                .await
                .unwrap();
            answer.status.is_some_and(|s| s.allowed).then_some(())
        }
    })
    .await;
}

/// Binds the ClusterRole `role` to `user` in `ns` (a RoleBinding), or cluster-wide (`None`),
/// and waits until it applies.
pub async fn grant(admin: &Client, user: &str, ns: Option<&str>, role: &str) {
    let subject = json!([{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}]);
    let role_ref =
        json!({"kind": "ClusterRole", "apiGroup": "rbac.authorization.k8s.io", "name": role});
    let name = format!("{user}-{role}");
    match ns {
        Some(ns) => {
            let binding: RoleBinding = object(json!({
                "metadata": {"name": name}, "subjects": subject, "roleRef": role_ref
            }));
            Api::<RoleBinding>::namespaced(admin.clone(), ns)
                .create(&PostParams::default(), &binding)
                .await
                .unwrap();
        }
        None => {
            let binding: ClusterRoleBinding = object(json!({
                "metadata": {"name": name}, "subjects": subject, "roleRef": role_ref
            }));
            Api::<ClusterRoleBinding>::all(admin.clone())
                .create(&PostParams::default(), &binding)
                .await
                .unwrap();
        }
    }
    match role {
        NAMESPACES_ROLE => wait_allowed(admin, user, None, "list", "", "namespaces").await,
        REPORTS_ROLE => {
            wait_allowed(admin, user, ns, "list", "", "pods").await;
            wait_allowed(admin, user, ns, "patch", "wgpolicyk8s.io", "policyreports").await;
        }
        _ => wait_allowed(admin, user, ns, "list", "", "pods").await,
    }
}

/// Grants `user` the chart's rules in `ns` except for the batch kinds not in `batch` (a Role).
pub async fn grant_partially(admin: &Client, user: &str, ns: &str, batch: &[&str]) {
    let chart = deployed("ClusterRole", "portier");
    let mut rules: Vec<Value> = chart["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["apiGroups"] != json!(["batch"]))
        .cloned()
        .collect();
    rules.push(
        json!({"apiGroups": ["batch"], "resources": batch, "verbs": ["get", "list", "watch"]}),
    );
    let role: Role = object(json!({"metadata": {"name": "partial"}, "rules": rules}));
    Api::<Role>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = object(json!({
        "metadata": {"name": format!("{user}-partial")},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}],
        "roleRef": {"kind": "Role", "apiGroup": "rbac.authorization.k8s.io", "name": "partial"}
    }));
    Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    wait_allowed(admin, user, Some(ns), "list", "apps", "deployments").await;
}
