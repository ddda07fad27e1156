//! `portier audit` (the real binary, and the periodic audit of `serve`) against a real
//! kube-apiserver (`tests/k8s`): real lists and `continue` tokens, real RBAC (each test audits as
//! a user of its own, a client certificate, with the chart's ClusterRole bound where the test
//! says), and PolicyReports written by server-side apply into the CRDs of `deploy/crds/`.
//! Pagination and the requests made are read back from the API server's audit log.
//!
//! What a real API server cannot be made to do on demand (a namespace vanishing mid-scan, an
//! expired `continue` token, a 500) is in `tests/audit_standin.rs`.

mod common;
mod k8s;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::workloads::{
    CLEAN, Flaws, PRIVILEGED, ROOT, controller_ref, cron_job, deployment, job, object_meta, pod,
    replica_set, stateful_set,
};
use k8s::{Cluster, cluster, eventually};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portier");

const POLICIES: &str = "\
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: disallow-privileged}
spec: {check: privileged, mode: enforce}
---
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: require-run-as-non-root}
spec: {check: run-as-non-root, mode: warn}
---
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: disallow-host-namespaces}
spec: {check: host-namespaces, mode: audit, exclude: {namespaces: [legacy]}}
";

// ---------------------------------------------------------------------------------------------
// RBAC

/// The chart's ClusterRole (`deploy/portier.yaml`: pods and controllers get/list/watch,
/// namespaces list).
const CHART_ROLE: &str = "portier-test-chart";
/// The chart's ClusterRole with PolicyReports, as it renders with `audit.policyReports`.
const REPORTS_ROLE: &str = "portier-test-reports";
/// Listing namespaces only, for `-A` and the periodic audit.
const NAMESPACES_ROLE: &str = "portier-test-namespaces";

async fn ensure_ok<T>(result: Result<T, kube::Error>) {
    match result {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("{e}"),
    }
}

async fn cluster_roles(admin: &Client) {
    static MADE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    MADE.get_or_init(|| async {
        let chart = k8s::deployed("ClusterRole", "portier");
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
async fn wait_allowed(
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
async fn grant(admin: &Client, user: &str, ns: Option<&str>, role: &str) {
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
async fn grant_partially(admin: &Client, user: &str, ns: &str, batch: &[&str]) {
    let chart = k8s::deployed("ClusterRole", "portier");
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

// ---------------------------------------------------------------------------------------------
// PolicyReport CRDs

/// Whether the shipped CRDs are installed and served. Tests that write reports hold it for
/// reading; the test that removes and replaces the CRD holds it for writing.
static CRDS: tokio::sync::RwLock<bool> = tokio::sync::RwLock::const_new(false);

fn policy_report_resource() -> ApiResource {
    ApiResource {
        group: "wgpolicyk8s.io".into(),
        version: "v1alpha2".into(),
        api_version: "wgpolicyk8s.io/v1alpha2".into(),
        kind: "PolicyReport".into(),
        plural: "policyreports".into(),
    }
}

fn reports(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &policy_report_resource())
}

/// The CRD documents of `deploy/crds/policyreports.yaml`.
fn shipped_crds() -> Vec<Value> {
    k8s::repo_yaml("deploy/crds/policyreports.yaml")
}

/// A report with a `source` in its results, as portier writes, applied as a dry run:
/// whether the PolicyReport CRD in force accepts it (`Ok`), or the API server's refusal.
async fn try_source(admin: &Client, ns: &str) -> Result<(), kube::Error> {
    let probe = json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
        "metadata": {"name": "probe"},
        "results": [{"source": "portier", "policy": "p", "result": "pass"}]
    });
    let pp = PatchParams {
        dry_run: true,
        force: true,
        field_manager: Some("portier-tests".into()),
        field_validation: Some(kube::api::ValidationDirective::Strict),
    };
    reports(admin, ns)
        .patch("probe", &pp, &Patch::Apply(&probe))
        .await
        .map(|_| ())
}

/// Applies these CRDs and waits until they are established and their schema is the one in
/// force: reports with `source` accepted when `with_source`, refused otherwise.
async fn install_crds(admin: &Client, crds: &[Value], ns: &str, with_source: bool) {
    let api = Api::<CustomResourceDefinition>::all(admin.clone());
    for crd in crds {
        let name = crd["metadata"]["name"].as_str().unwrap();
        api.patch(
            name,
            &PatchParams::apply("portier-tests").force(),
            &Patch::Apply(crd),
        )
        .await
        .unwrap();
        eventually(&format!("CRD {name} to be established"), || {
            let api = api.clone();
            async move {
                let crd = api.get(name).await.unwrap();
                crd.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            }
        })
        .await;
    }
    eventually("the PolicyReport schema to be in force", || async move {
        (try_source(admin, ns).await.is_ok() == with_source).then_some(())
    })
    .await;
}

/// Holds the shipped CRDs installed for the caller's reports.
async fn shipped_crds_installed(
    admin: &Client,
    ns: &str,
) -> tokio::sync::RwLockReadGuard<'static, bool> {
    {
        let installed = CRDS.read().await;
        if *installed {
            return installed;
        }
    }
    let mut installed = CRDS.write().await;
    if !*installed {
        install_crds(admin, &shipped_crds(), ns, true).await;
        *installed = true;
    }
    installed.downgrade()
}

// ---------------------------------------------------------------------------------------------
// The cluster each test audits

fn object<K: DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value).unwrap()
}

async fn create<K>(client: &Client, object: K) -> K
where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let ns = object.meta().namespace.clone().unwrap();
    Api::<K>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("{ns}/{:?}: {e}", object.meta().name))
}

fn uid<K: kube::Resource>(object: &K) -> String {
    object.meta().uid.clone().unwrap()
}

/// `object_meta` with a controller reference to `owner`.
fn owned<K: kube::Resource<DynamicType = ()> + k8s_openapi::Resource>(
    name: &str,
    ns: &str,
    labels: &[(&str, &str)],
    owner: &K,
) -> ObjectMeta {
    let owner_name = owner.meta().name.clone().unwrap();
    ObjectMeta {
        owner_references: Some(vec![controller_ref::<K>(&owner_name, &uid(owner))]),
        ..object_meta(name, ns, labels)
    }
}

/// `shop`: a privileged Deployment with a current and an old ReplicaSet and 3 pods; a CronJob
/// running as root with a Job and a pod; a compliant StatefulSet with 2 pods; a ReplicaSet
/// nobody owns, privileged, with 1 pod; a privileged pod on the host network; a pod whose
/// controller is not a kind portier lists. `team`: a compliant Deployment with 2 pods and a
/// pod running as root. There is no controller-manager: every ReplicaSet, Job and pod is made
/// here, with the owner references a controller would set. Returns the uid of Deployment `web`.
async fn populate(admin: &Client, shop: &str, team: &str) -> String {
    let web = [("app", "web")];
    let web_deployment = create(
        admin,
        deployment(object_meta("web", shop, &web), &web, PRIVILEGED),
    )
    .await;
    let mut current = None;
    for rs in ["web-5d8f", "web-old"] {
        let made = create(
            admin,
            replica_set(owned(rs, shop, &web, &web_deployment), &web, PRIVILEGED),
        )
        .await;
        current.get_or_insert(made);
    }
    let current = current.unwrap();
    for p in ["web-5d8f-a", "web-5d8f-b", "web-5d8f-c"] {
        create(admin, pod(owned(p, shop, &web, &current), PRIVILEGED)).await;
    }
    let nightly = [("app", "nightly")];
    let cron = create(
        admin,
        cron_job(object_meta("nightly", shop, &nightly), &nightly, ROOT),
    )
    .await;
    let run = create(
        admin,
        job(
            owned("nightly-29000", shop, &nightly, &cron),
            &nightly,
            ROOT,
        ),
    )
    .await;
    create(
        admin,
        pod(owned("nightly-29000-x", shop, &nightly, &run), ROOT),
    )
    .await;
    let db = [("app", "db")];
    let set = create(
        admin,
        stateful_set(object_meta("db", shop, &db), &db, CLEAN),
    )
    .await;
    for p in ["db-0", "db-1"] {
        create(admin, pod(owned(p, shop, &db, &set), CLEAN)).await;
    }
    let lonely = [("app", "lonely")];
    let lonely_rs = create(
        admin,
        replica_set(object_meta("lonely", shop, &lonely), &lonely, PRIVILEGED),
    )
    .await;
    create(
        admin,
        pod(owned("lonely-q", shop, &lonely, &lonely_rs), PRIVILEGED),
    )
    .await;
    let debug = Flaws {
        host_network: true,
        ..PRIVILEGED
    };
    create(
        admin,
        pod(object_meta("debug", shop, &[("app", "debug")]), debug),
    )
    .await;
    let mut canary = object_meta("canary-1", shop, &[("app", "canary")]);
    canary.owner_references = Some(vec![OwnerReference {
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Rollout".into(),
        name: "canary".into(),
        uid: "8d3c1e52-52b5-4a6c-9d1e-6f0f0e0c0a11".into(),
        controller: Some(true),
        block_owner_deletion: None,
    }]);
    create(admin, pod(canary, CLEAN)).await;

    let api = [("app", "api")];
    let api_deployment = create(
        admin,
        deployment(object_meta("api", team, &api), &api, CLEAN),
    )
    .await;
    let api_rs = create(
        admin,
        replica_set(owned("api-77", team, &api, &api_deployment), &api, CLEAN),
    )
    .await;
    for p in ["api-77-a", "api-77-b"] {
        create(admin, pod(owned(p, team, &api, &api_rs), CLEAN)).await;
    }
    create(
        admin,
        pod(object_meta("tool", team, &[("app", "tool")]), ROOT),
    )
    .await;
    uid(&web_deployment)
}

struct Env {
    k8s: &'static Cluster,
    admin: Client,
    dir: tempfile::TempDir,
    shop: String,
    team: String,
    /// The audit's user, a client certificate; `kubeconfig` is its, context namespace `shop`.
    user: String,
    kubeconfig: PathBuf,
    /// The uid of Deployment `web` in `shop`.
    web_uid: String,
}

impl Env {
    /// `shop-N` and `team-b-N`, populated, and a user with the chart's ClusterRole (and
    /// PolicyReports) bound in both.
    async fn new() -> Env {
        let env = Env::empty(POLICIES).await;
        let web_uid = populate(&env.admin, &env.shop, &env.team).await;
        for ns in [&env.shop, &env.team] {
            grant(&env.admin, &env.user, Some(ns), REPORTS_ROLE).await;
        }
        Env { web_uid, ..env }
    }

    /// The two namespaces and the user, with no objects and no grants.
    async fn empty(policies: &str) -> Env {
        let k8s = cluster();
        let admin = k8s.client().await;
        cluster_roles(&admin).await;
        let shop = k8s.namespace(&admin, "shop").await;
        let team = k8s.namespace(&admin, "team-b").await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        std::fs::write(dir.path().join("policies/set.yaml"), policies).unwrap();
        let user = k8s.unique("auditor");
        let kubeconfig =
            k8s.user_kubeconfig(&dir.path().join("kubeconfig"), &user, None, Some(&shop));
        Env {
            k8s,
            admin,
            dir,
            shop,
            team,
            user,
            kubeconfig,
            web_uid: String::new(),
        }
    }

    fn policies(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    fn audit(&self, args: &[&str]) -> Output {
        self.audit_with(&self.kubeconfig, args)
    }

    fn audit_with(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("audit")
            .arg("--policies")
            .arg(self.policies())
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    }

    /// A kubeconfig for another user of this test (no grants), context namespace `shop`.
    fn other_user(&self, name: &str) -> (String, PathBuf) {
        let user = self.k8s.unique(name);
        let path = self.dir.path().join(format!("{user}.kubeconfig"));
        let path = self
            .k8s
            .user_kubeconfig(&path, &user, None, Some(&self.shop));
        (user, path)
    }

    /// What the audit's user asked the API server, from its audit log, in order.
    async fn calls(&self) -> Vec<Call> {
        calls_of(
            &self.k8s.audit_events_settled(&self.admin, &self.shop).await,
            &self.user,
        )
    }
}

/// One request of the audit log.
#[derive(Debug)]
struct Call {
    verb: String,
    resource: String,
    namespace: String,
    query: Vec<(String, String)>,
    code: u64,
}

impl Call {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn calls_of(events: &[Value], user: &str) -> Vec<Call> {
    events
        .iter()
        .filter(|e| e["stage"] == "ResponseComplete" && e["user"]["username"] == user)
        .map(|e| {
            let uri = e["requestURI"].as_str().unwrap_or("");
            let query = uri
                .split_once('?')
                .map(|(_, q)| {
                    form_urlencoded::parse(q.as_bytes())
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect()
                })
                .unwrap_or_default();
            Call {
                verb: e["verb"].as_str().unwrap_or("").to_owned(),
                resource: e["objectRef"]["resource"].as_str().unwrap_or("").to_owned(),
                namespace: e["objectRef"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                query,
                code: e["responseStatus"]["code"].as_u64().unwrap_or(0),
            }
        })
        .collect()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_out(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", stdout(o), stderr(o)))
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A violation row: (namespace, kind/name, pods, policy, mode, check, container, path).
type Cells = (String, String, u64, String, String, String, String, String);

fn rows(doc: &Value) -> Vec<Cells> {
    doc["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["namespace"].as_str().unwrap().to_owned(),
                format!(
                    "{}/{}",
                    r["kind"].as_str().unwrap(),
                    r["name"].as_str().unwrap()
                ),
                r["pods"].as_u64().unwrap(),
                r["policy"].as_str().unwrap().to_owned(),
                r["mode"].as_str().unwrap().to_owned(),
                r["check"].as_str().unwrap().to_owned(),
                r["container"].as_str().unwrap_or("-").to_owned(),
                r["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn row(r: (&str, &str, u64, &str, &str, &str, &str, &str)) -> Cells {
    (
        r.0.into(),
        r.1.into(),
        r.2,
        r.3.into(),
        r.4.into(),
        r.5.into(),
        r.6.into(),
        r.7.into(),
    )
}

fn shop_rows(shop: &str) -> Vec<Cells> {
    let privileged = "securityContext.privileged";
    vec![
        row((
            shop,
            "Deployment/web",
            3,
            "disallow-privileged",
            "enforce",
            "privileged",
            "app",
            &format!("spec.template.spec.containers[0].{privileged}"),
        )),
        row((
            shop,
            "CronJob/nightly",
            1,
            "require-run-as-non-root",
            "warn",
            "run-as-non-root",
            "app",
            "spec.jobTemplate.spec.template.spec.containers[0].securityContext.runAsNonRoot",
        )),
        row((
            shop,
            "ReplicaSet/lonely",
            1,
            "disallow-privileged",
            "enforce",
            "privileged",
            "app",
            &format!("spec.template.spec.containers[0].{privileged}"),
        )),
        row((
            shop,
            "Pod/debug",
            1,
            "disallow-privileged",
            "enforce",
            "privileged",
            "app",
            &format!("spec.containers[0].{privileged}"),
        )),
        row((
            shop,
            "Pod/debug",
            1,
            "disallow-host-namespaces",
            "audit",
            "host-namespaces",
            "-",
            "spec.hostNetwork",
        )),
    ]
}

/// (namespace, status) of the namespaces of `wanted` in a JSON report, in its order.
fn statuses(doc: &Value, wanted: &[&str]) -> Vec<(String, String)> {
    doc["summary"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| wanted.iter().any(|w| n["namespace"] == *w))
        .map(|n| {
            (
                n["namespace"].as_str().unwrap().to_owned(),
                n["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Listing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_paginates_dedupes_controller_pods_and_reports_real_modes() {
    let env = Env::new().await;
    let shop = env.shop.as_str();
    let out = env.audit(&["-n", shop, "--page-size", "2", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc = json_out(&out);
    assert_eq!(rows(&doc), shop_rows(shop));
    let first = &doc["violations"][0];
    assert_eq!(
        first["message"],
        "is true: a privileged container has full access to the host — remove securityContext.privileged or set it to false"
    );

    let summary = &doc["summary"];
    assert_eq!(summary["namespaces_total"], 1);
    assert_eq!(summary["namespaces_complete"], 1);
    assert_eq!(summary["controllers"], 4, "web, nightly, db, lonely");
    assert_eq!(
        summary["covered_pods"], 7,
        "3 web, 1 nightly, 2 db, 1 lonely"
    );
    assert_eq!(summary["standalone_pods"], 2, "debug and canary-1");
    assert_eq!(summary["workloads"], 6);
    assert_eq!(summary["violations"], 5);
    assert_eq!(summary["violating_workloads"], 4);
    assert_eq!(summary["complete"], true);
    let policies = summary["policies"].as_array().unwrap();
    let by_name = |n: &str| policies.iter().find(|p| p["policy"] == n).unwrap().clone();
    let privileged = by_name("disallow-privileged");
    assert_eq!(
        (
            &privileged["mode"],
            &privileged["check"],
            &privileged["violations"],
            &privileged["workloads"],
            &privileged["pods"]
        ),
        (
            &Value::from("enforce"),
            &Value::from("privileged"),
            &Value::from(3),
            &Value::from(3),
            &Value::from(5)
        )
    );
    assert_eq!(by_name("require-run-as-non-root")["mode"], "warn");
    assert_eq!(by_name("disallow-host-namespaces")["violations"], 1);
    let ns = &summary["namespaces"][0];
    assert_eq!(
        (
            &ns["namespace"],
            &ns["status"],
            &ns["workloads"],
            &ns["pods"],
            &ns["violations"]
        ),
        (
            &Value::from(shop),
            &Value::from("complete"),
            &Value::from(6),
            &Value::from(9),
            &Value::from(5)
        )
    );

    // Pagination really happened, as the API server logged it: 9 pods in pages of 2, each
    // page asked with limit=2 and the previous page's continue token; controllers listed
    // before pods; nothing but lists.
    let calls = env.calls().await;
    assert!(calls.iter().all(|c| c.verb == "list"), "{calls:#?}");
    let pods: Vec<&Call> = calls.iter().filter(|c| c.resource == "pods").collect();
    assert_eq!(pods.len(), 5, "{pods:#?}");
    assert!(pods.iter().all(|c| c.param("limit") == Some("2")));
    assert!(pods.iter().all(|c| c.code == 200 && c.namespace == shop));
    assert_eq!(pods[0].param("continue"), None);
    assert!(pods[1..].iter().all(|c| c.param("continue").is_some()));
    let replica_sets = calls.iter().filter(|c| c.resource == "replicasets").count();
    assert_eq!(replica_sets, 2, "3 ReplicaSets in pages of 2");
    let order: Vec<&str> = calls
        .iter()
        .filter(|c| c.param("continue").is_none())
        .map(|c| c.resource.as_str())
        .collect();
    assert_eq!(
        order,
        [
            "deployments",
            "cronjobs",
            "statefulsets",
            "daemonsets",
            "replicationcontrollers",
            "replicasets",
            "jobs",
            "pods"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_on_violation_exits_1_and_a_clean_scope_exits_0() {
    let env = Env::new().await;
    let out = env.audit(&["-n", &env.shop, "--fail-on-violation"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    // A selector that only picks compliant objects: nothing to report, exit 0 even so.
    let out = env.audit(&[
        "-n",
        &env.shop,
        "-l",
        "app=db",
        "--fail-on-violation",
        "-o",
        "json",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc = json_out(&out);
    assert_eq!(doc["violations"], Value::Array(vec![]));
    assert_eq!(doc["summary"]["controllers"], 1);
    assert_eq!(doc["summary"]["covered_pods"], 2);
    let calls = env.calls().await;
    let selected: Vec<&Call> = calls
        .iter()
        .filter(|c| c.param("labelSelector").is_some())
        .collect();
    assert_eq!(selected.len(), 8, "every list call carries the selector");
    assert!(
        selected
            .iter()
            .all(|c| c.param("labelSelector") == Some("app=db"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_context_namespace_is_the_default_and_the_table_has_every_column() {
    let env = Env::new().await;
    let shop = env.shop.as_str();
    let out = env.audit(&[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAMESPACE",
            "RESOURCE",
            "PODS",
            "POLICY",
            "MODE",
            "CHECK",
            "CONTAINER",
            "PATH",
            "MESSAGE"
        ]
    );
    let cells = |line: &str| -> Vec<String> {
        line.split_whitespace().take(8).map(str::to_owned).collect()
    };
    let table: Vec<Vec<String>> = lines[1..6].iter().map(|l| cells(l)).collect();
    let want: Vec<Vec<String>> = shop_rows(shop)
        .into_iter()
        .map(|r| vec![r.0, r.1, r.2.to_string(), r.3, r.4, r.5, r.6, r.7])
        .collect();
    assert_eq!(table, want);
    assert!(
        lines[1].ends_with(
            "is true: a privileged container has full access to the host — remove securityContext.privileged or set it to false"
        ),
        "{text}"
    );
    assert!(text.contains("POLICY "), "{text}");
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [
                    "disallow-privileged",
                    "enforce",
                    "privileged",
                    "3",
                    "3",
                    "5"
                ]),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == [shop, "complete", "6", "9", "5"]),
        "{text}"
    );
    assert!(
        text.ends_with(
            "1/1 namespace(s) scanned completely; 6 workload(s) judged (4 controller(s) covering 7 pod(s), 2 standalone pod(s)); 5 violation(s) in 4 workload(s), every policy judged as enforce\n"
        ),
        "{text}"
    );
    let calls = env.calls().await;
    assert_eq!(calls.len(), 8);
    assert!(calls.iter().all(|c| c.namespace == shop), "{calls:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yaml_output_is_the_json_document() {
    let env = Env::new().await;
    let (shop, team) = (env.shop.as_str(), env.team.as_str());
    let as_json = json_out(&env.audit(&["-n", shop, "-n", team, "-o", "json"]));
    let out = env.audit(&["-n", shop, "-n", team, "-o", "yaml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let as_yaml: Value =
        serde_saphyr::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}\n{}", stdout(&out)));
    assert_eq!(as_yaml, as_json);
    assert_eq!(as_json["violations"].as_array().unwrap().len(), 6);
    assert_eq!(as_json["violations"][5]["name"], "tool");
    assert_eq!(as_json["violations"][5]["namespace"], team);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_namespaces_go_on_past_namespaces_rbac_forbids() {
    let env = Env::new().await;
    let (shop, team) = (env.shop.as_str(), env.team.as_str());
    let user = env.user.as_str();
    grant(&env.admin, user, None, NAMESPACES_ROLE).await;
    // `secret`: no grant at all. `partial`: everything but cronjobs.
    let secret = env.k8s.namespace(&env.admin, "secret").await;
    create(
        &env.admin,
        pod(object_meta("hidden", &secret, &[]), PRIVILEGED),
    )
    .await;
    let partial = env.k8s.namespace(&env.admin, "partial").await;
    create(
        &env.admin,
        pod(object_meta("solo", &partial, &[]), PRIVILEGED),
    )
    .await;
    grant_partially(&env.admin, user, &partial, &["jobs"]).await;

    // -A: every namespace of the API server, including other tests' and kube-system, which
    // this user may not read either.
    let out = env.audit(&["-A", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "namespace {secret}: *: no kind may be listed here; the first answer: 403 Forbidden: deployments.apps is forbidden: User \"{user}\" cannot list resource \"deployments\" in API group \"apps\" in the namespace \"{secret}\"\n"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "namespace {partial}: cronjobs: 403 Forbidden: cronjobs.batch is forbidden: User \"{user}\" cannot list resource \"cronjobs\" in API group \"batch\" in the namespace \"{partial}\""
        )),
        "{err}"
    );
    assert!(
        err.contains("namespace kube-system: *: no kind may be listed here"),
        "{err}"
    );
    let doc = json_out(&out);
    assert_eq!(
        statuses(&doc, &[&partial, &secret, shop, team]),
        [
            pair(&partial, "partial"),
            pair(&secret, "forbidden"),
            pair(shop, "complete"),
            pair(team, "complete"),
        ]
    );
    assert_eq!(doc["summary"]["complete"], false);
    assert_eq!(doc["summary"]["namespaces_complete"], 2);
    let names: Vec<String> = rows(&doc)
        .into_iter()
        .map(|r| format!("{}/{}", r.0, r.1))
        .collect();
    assert!(names.contains(&format!("{partial}/Pod/solo")), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with(&format!("{secret}/"))));
    let secret_summary = doc["summary"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["namespace"] == secret.as_str())
        .unwrap();
    assert_eq!(secret_summary["problems"].as_array().unwrap().len(), 1);
}

/// A kubeconfig for `server` with a bearer token.
fn token_kubeconfig(path: &Path, server: &str, ca_pem: Option<&str>, token: &str) -> PathBuf {
    use base64::Engine;
    let ca = ca_pem
        .map(|pem| {
            format!(
                "\n    certificate-authority-data: {}",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        })
        .unwrap_or_default();
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}{ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n    namespace: shop\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    path.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_failures_exit_2_with_a_clear_message() {
    let env = Env::new().await;
    let (shop, team) = (env.shop.as_str(), env.team.as_str());

    // Nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = token_kubeconfig(
        &env.dir.path().join("dead"),
        &format!("http://127.0.0.1:{port}"),
        None,
        "t",
    );
    let out = env.audit_with(&dead, &["-n", "shop"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(
            "portier: cannot reach the Kubernetes API: no answer from the API server: "
        ) && stderr(&out).ends_with(&format!("(API server http://127.0.0.1:{port}/)\n")),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());

    // Listing namespaces is not granted (only the namespaces' contents are): -A cannot work.
    let out = env.audit(&["-A"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("cannot list namespaces for --all-namespaces: 403 Forbidden: namespaces is forbidden: User \"{}\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope; name the namespaces with -n instead", env.user)),
        "{}",
        stderr(&out)
    );
    // A user with no grant: every namespace asked for is forbidden, nothing was listed.
    let (_, stranger) = env.other_user("stranger");
    let out = env.audit_with(&stranger, &["-n", shop, "-n", team]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("portier: nothing could be listed in 2 namespace(s)"),
        "{}",
        stderr(&out)
    );
    // The summary still says why.
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.split_whitespace().take(2).collect::<Vec<_>>() == [team, "forbidden"]),
        "{}",
        stdout(&out)
    );
    // Credentials the API server does not know.
    let wrong = token_kubeconfig(
        &env.dir.path().join("wrong"),
        &env.k8s.server,
        Some(env.k8s.ca_pem()),
        "wrong",
    );
    let out = env.audit_with(&wrong, &["-n", shop]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("401 Unauthorized: Unauthorized"),
        "{}",
        stderr(&out)
    );
    // A selector the API server cannot parse is bad in every namespace: the first 400 ends
    // the scan.
    let out = env.audit(&["-n", shop, "-n", team, "-l", "=web"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "portier: the Kubernetes API refused the audit: HTTP 400: found '=', expected: !, identifier, or 'end of string' (API server {}/)\n",
            env.k8s.server
        )
    );
    let calls = env.calls().await;
    let listed: Vec<&Call> = calls
        .iter()
        .filter(|c| c.param("labelSelector") == Some("=web"))
        .collect();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0].code, 400);
    // A bad flag and a bad policy directory are usage errors.
    let out = env.audit(&["-A", "-n", shop]);
    assert_eq!(code(&out), 2);
    let out = env.audit(&["--page-size", "0"]);
    assert_eq!(code(&out), 2);
    let out = Command::new(BIN)
        .args(["audit", "--policies", "/nonexistent", "--kubeconfig"])
        .arg(&env.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("cannot read policy directory"),
        "{}",
        stderr(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// PolicyReports

/// The report portier wrote in `ns`, read back through the API (with its managed fields).
async fn stored_report(env: &Env, ns: &str) -> Value {
    let all = reports(&env.admin, ns)
        .list(&Default::default())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1, "one report per namespace");
    serde_json::to_value(&all.items[0]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_policyreport_applies_one_valid_report_per_namespace() {
    let env = Env::new().await;
    let (shop, team) = (env.shop.as_str(), env.team.as_str());
    let _crds = shipped_crds_installed(&env.admin, shop).await;
    let out = env.audit(&["-n", shop, "-n", team, "--report", "policyreport"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("portier: 2 PolicyReport(s) written, 0 not written, 0 left as they were"),
        "{}",
        stderr(&out)
    );
    // Server-side apply, strict, as the API server logged it: both created.
    let calls = env.calls().await;
    let applies: Vec<&Call> = calls.iter().filter(|c| c.verb == "patch").collect();
    assert_eq!(applies.len(), 2, "{applies:#?}");
    for (c, ns) in applies.iter().zip([shop, team]) {
        assert_eq!(
            (c.resource.as_str(), c.namespace.as_str()),
            ("policyreports", ns)
        );
        assert_eq!(c.param("fieldManager"), Some("portier"));
        assert_eq!(c.param("force"), Some("true"));
        assert_eq!(c.param("fieldValidation"), Some("Strict"));
        assert_eq!(c.code, 201, "created");
    }

    let report = stored_report(&env, shop).await;
    assert_eq!(report["apiVersion"], "wgpolicyk8s.io/v1alpha2");
    assert_eq!(report["kind"], "PolicyReport");
    let metadata = &report["metadata"];
    assert_eq!(metadata["name"], format!("portier-{shop}"));
    assert_eq!(
        metadata["labels"],
        json!({"app.kubernetes.io/managed-by": "portier"})
    );
    assert_eq!(
        metadata["annotations"],
        json!({"portier.dev/results-total": "5"})
    );
    let managers: Vec<(&Value, &Value)> = metadata["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (&m["manager"], &m["operation"]))
        .collect();
    assert_eq!(managers, [(&Value::from("portier"), &Value::from("Apply"))]);
    // 6 workloads x 3 policies = 18 judgements: 5 failed (one per violation here), 13 passed.
    assert_eq!(
        report["summary"],
        json!({"pass": 13, "fail": 5, "warn": 0, "error": 0, "skip": 0})
    );
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    let first = &results[0];
    let seconds = first["timestamp"]["seconds"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - 600..=now).contains(&seconds), "{seconds}");
    assert_eq!(
        first,
        &json!({
            "source": "portier",
            "policy": "disallow-privileged",
            "rule": "privileged",
            "result": "fail",
            "severity": "high",
            "category": "Pod Security",
            "message": "is true: a privileged container has full access to the host — remove securityContext.privileged or set it to false",
            "scored": true,
            "timestamp": first["timestamp"],
            "resources": [{
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "web",
                "namespace": shop,
                "uid": env.web_uid
            }],
            "properties": {
                "container": "app",
                "path": "spec.template.spec.containers[0].securityContext.privileged",
                "mode": "enforce",
                "pods": "3"
            }
        })
    );
    let brief: Vec<(String, String, String, String, String)> = results
        .iter()
        .map(|r| {
            (
                format!(
                    "{}/{}",
                    r["resources"][0]["kind"].as_str().unwrap(),
                    r["resources"][0]["name"].as_str().unwrap()
                ),
                r["policy"].as_str().unwrap().to_owned(),
                r["severity"].as_str().unwrap().to_owned(),
                r["properties"]["mode"].as_str().unwrap().to_owned(),
                r["properties"]
                    .get("container")
                    .and_then(Value::as_str)
                    .unwrap_or("-")
                    .to_owned(),
            )
        })
        .collect();
    let t = |a: &str, b: &str, c: &str, d: &str, e: &str| {
        (
            a.to_owned(),
            b.to_owned(),
            c.to_owned(),
            d.to_owned(),
            e.to_owned(),
        )
    };
    assert_eq!(
        brief,
        [
            t(
                "Deployment/web",
                "disallow-privileged",
                "high",
                "enforce",
                "app"
            ),
            t(
                "CronJob/nightly",
                "require-run-as-non-root",
                "medium",
                "warn",
                "app"
            ),
            t(
                "ReplicaSet/lonely",
                "disallow-privileged",
                "high",
                "enforce",
                "app"
            ),
            t("Pod/debug", "disallow-privileged", "high", "enforce", "app"),
            t("Pod/debug", "disallow-host-namespaces", "low", "audit", "-"),
        ]
    );
    assert_eq!(results[1]["resources"][0]["apiVersion"], "batch/v1");
    assert_eq!(results[4]["resources"][0]["apiVersion"], "v1");
    assert_eq!(results[4]["properties"]["path"], "spec.hostNetwork");
    let team_report = stored_report(&env, team).await;
    assert_eq!(team_report["summary"]["fail"], 1);
    assert_eq!(
        team_report["summary"]["pass"], 5,
        "api passes 3, tool passes 2"
    );

    // Again, after the Deployment and its ReplicaSets were fixed: the same object is updated
    // (200), the finding is gone, and there is still one report.
    let uid = report["metadata"]["uid"].clone();
    let unprivileged = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "securityContext": null}
    ]}}}});
    let pp = PatchParams::default();
    Api::<Deployment>::namespaced(env.admin.clone(), shop)
        .patch("web", &pp, &Patch::Strategic(&unprivileged))
        .await
        .unwrap();
    for rs in ["web-5d8f", "web-old"] {
        Api::<ReplicaSet>::namespaced(env.admin.clone(), shop)
            .patch(rs, &pp, &Patch::Strategic(&unprivileged))
            .await
            .unwrap();
    }
    let out = env.audit(&["-n", shop, "--report", "policyreport"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let calls = env.calls().await;
    let applies: Vec<&Call> = calls.iter().filter(|c| c.verb == "patch").collect();
    assert_eq!(applies.len(), 3);
    assert_eq!(applies[2].code, 200, "updated");
    let stored = stored_report(&env, shop).await;
    assert_eq!(stored["metadata"]["uid"], uid);
    assert_eq!(stored["metadata"]["generation"], 2);
    assert_eq!(stored["summary"]["fail"], 4);
    assert_eq!(stored["summary"]["pass"], 14);
    assert!(
        stored["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["resources"][0]["name"] != "web")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_capped_and_say_what_was_cut() {
    let env = Env::new().await;
    let shop = env.shop.as_str();
    let _crds = shipped_crds_installed(&env.admin, shop).await;
    let out = env.audit(&[
        "-n",
        shop,
        "--report",
        "policyreport",
        "--report-max-results",
        "2",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("portier: PolicyReport {shop}/portier-{shop}: 2 result(s) written, 3 more cut (--report-max-results); the summary counts them all")),
        "{}",
        stderr(&out)
    );
    let report = stored_report(&env, shop).await;
    assert_eq!(report["results"].as_array().unwrap().len(), 2);
    assert_eq!(report["summary"]["fail"], 5);
    assert_eq!(
        report["metadata"]["annotations"]["portier.dev/results-total"],
        "5"
    );
    assert_eq!(
        report["metadata"]["annotations"]["portier.dev/results-cut"],
        "3"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_not_written_for_incomplete_namespaces_and_failures_are_clear() {
    let env = Env::empty(POLICIES).await;
    let (shop, team) = (env.shop.as_str(), env.team.as_str());
    let user = env.user.as_str();
    populate(&env.admin, shop, team).await;
    // shop: reports allowed. team: the chart's default role, no reports. secret: nothing.
    // partial: everything but jobs.
    grant(&env.admin, user, Some(shop), REPORTS_ROLE).await;
    grant(&env.admin, user, Some(team), CHART_ROLE).await;
    let secret = env.k8s.namespace(&env.admin, "secret").await;
    let partial = env.k8s.namespace(&env.admin, "partial").await;
    grant_partially(&env.admin, user, &partial, &["cronjobs"]).await;
    let _crds = shipped_crds_installed(&env.admin, shop).await;
    let out = env.audit(&[
        "-n",
        shop,
        "-n",
        team,
        "-n",
        &secret,
        "-n",
        &partial,
        "--report",
        "policyreport",
        "-o",
        "json",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("portier: namespace {partial}: the namespace's scan is partial, so its report was left as it was")), "{err}");
    assert!(err.contains(&format!("portier: namespace {secret}: the namespace's scan is forbidden, so its report was left as it was")), "{err}");
    assert!(
        err.contains(&format!("portier: PolicyReport for namespace {team} not written: 403 Forbidden: policyreports.wgpolicyk8s.io \"portier-{team}\" is forbidden: User \"{user}\" cannot patch resource \"policyreports\" in API group \"wgpolicyk8s.io\" in the namespace \"{team}\"")),
        "{err}"
    );
    assert!(err.contains("portier: 1 PolicyReport(s) written, 1 not written, 2 left as they were (incomplete scan)"), "{err}");
    stored_report(&env, shop).await;
    for ns in [team, &secret, &partial] {
        let none = reports(&env.admin, ns)
            .list(&Default::default())
            .await
            .unwrap();
        assert!(none.items.is_empty(), "{ns}");
    }

    // A selector would make a report that drops what it does not select.
    let out = env.audit(&["-n", shop, "-l", "app=web", "--report", "policyreport"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_crd_or_with_an_older_schema_reports_fail_once_and_clearly() {
    let env = Env::new().await;
    let (shop, team) = (env.shop.as_str(), env.team.as_str());
    // The CRD is cluster-wide: no other test writes reports until it is restored.
    let mut installed = CRDS.write().await;
    *installed = false;
    let crds = Api::<CustomResourceDefinition>::all(env.admin.clone());
    let name = "policyreports.wgpolicyk8s.io";
    match crds.delete(name, &Default::default()).await {
        Ok(_) | Err(kube::Error::Api(_)) => {}
        Err(e) => panic!("{e}"),
    }
    // The API server's own finalizer removes the stored reports, then the CRD.
    eventually("the PolicyReport CRD to be gone", || {
        let crds = crds.clone();
        async move { crds.get_opt(name).await.unwrap().is_none().then_some(()) }
    })
    .await;
    let admin = &env.admin;
    eventually("PolicyReports to be no longer served", || async move {
        matches!(try_source(admin, shop).await, Err(kube::Error::Api(s)) if s.code == 404)
            .then_some(())
    })
    .await;
    let out = env.audit(&["-n", shop, "-n", team, "--report", "policyreport"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("portier: PolicyReport for namespace {shop} not written: the wgpolicyk8s.io/v1alpha2 PolicyReport CRD is not installed (404 page not found); install it with `kubectl apply -f deploy/crds/policyreports.yaml`")),
        "{err}"
    );
    assert!(
        !err.contains(&format!("namespace {team} not written")),
        "said once: {err}"
    );
    assert!(
        err.contains("portier: no PolicyReport could be written"),
        "{err}"
    );
    assert!(
        stdout(&out).contains("Deployment/web"),
        "the audit itself is printed"
    );

    // The Policy WG's original v1alpha2 schema, which some clusters still run: no `source`.
    let mut old = shipped_crds();
    for crd in &mut old {
        let results = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["results"]
            ["items"]["properties"];
        results.as_object_mut().unwrap().remove("source");
    }
    install_crds(&env.admin, &old, shop, false).await;
    let out = env.audit(&["-n", shop, "-n", team, "--report", "policyreport"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("portier: PolicyReport for namespace {shop} not written: the API server rejected the report (HTTP 500: failed to create typed patch object ({shop}/portier-{shop}; wgpolicyk8s.io/v1alpha2, Kind=PolicyReport): "))
            && err.contains(".results[0].source: field not declared in schema"),
        "{err}"
    );
    assert!(
        err.contains("compare it with deploy/crds/policyreports.yaml"),
        "{err}"
    );
    assert!(
        !err.contains(&format!("namespace {team} not written")),
        "said once: {err}"
    );

    install_crds(&env.admin, &shipped_crds(), shop, true).await;
    *installed = true;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installed_crd_refuses_what_portier_must_never_write() {
    // The shipped CRDs: the v1alpha2 schema with `source`, the same for both scopes.
    let crds = shipped_crds();
    let schema = |kind: &str| {
        crds.iter()
            .find(|d| d["spec"]["names"]["kind"] == kind)
            .unwrap()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            .clone()
    };
    let namespaced = schema("PolicyReport");
    assert_eq!(
        namespaced["properties"],
        schema("ClusterPolicyReport")["properties"]
    );
    let mut fields: Vec<&String> = namespaced["properties"]["results"]["items"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "category",
            "message",
            "policy",
            "properties",
            "resourceSelector",
            "resources",
            "result",
            "rule",
            "scored",
            "severity",
            "source",
            "timestamp"
        ]
    );

    // Installed, the API server holds server-side apply to that schema: what portier's writer
    // must never produce is refused, so the reports the other tests read back passed it.
    let k8s = cluster();
    let admin = k8s.client().await;
    let ns = k8s.namespace(&admin, "crd").await;
    let _crds = shipped_crds_installed(&admin, &ns).await;
    let strict = PatchParams {
        field_manager: Some("portier-tests".into()),
        field_validation: Some(kube::api::ValidationDirective::Strict),
        ..PatchParams::default()
    };
    let unknown = json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
        "metadata": {"name": "unknown"},
        "results": [{"policy": "p", "result": "pass", "extra": 1}]
    });
    let refused = reports(&admin, &ns)
        .patch("unknown", &strict, &Patch::Apply(&unknown))
        .await;
    let Err(kube::Error::Api(status)) = refused else {
        panic!("{refused:?}")
    };
    // Server-side apply refuses a field the schema does not declare while it builds the typed
    // patch, before validation, and says so with a 500.
    assert_eq!(status.code, 500, "{status:?}");
    assert!(
        status
            .message
            .starts_with("failed to create typed patch object (")
            && status
                .message
                .ends_with(".results[0].extra: field not declared in schema"),
        "{}",
        status.message
    );
    // Wrong types fail the same way.
    let mistyped = json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
        "metadata": {"name": "mistyped"},
        "summary": {"fail": "1"},
        "results": [{"policy": "p", "result": "pass", "properties": {"n": 1}}]
    });
    let refused = reports(&admin, &ns)
        .patch("mistyped", &strict, &Patch::Apply(&mistyped))
        .await;
    let Err(kube::Error::Api(status)) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(status.code, 500, "{status:?}");
    for problem in [
        ".results[0].properties.n: expected string",
        ".summary.fail: expected numeric (int or float), got string",
    ] {
        assert!(
            status.message.contains(problem),
            "{problem}\n{}",
            status.message
        );
    }
    // Well-typed values outside the schema's enums, or missing required fields, are refused by
    // validation: 422, every problem named.
    let invalid = json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
        "metadata": {"name": "invalid"},
        "results": [{"policy": "p", "result": "broken", "severity": "urgent",
                     "timestamp": {"seconds": 1}}]
    });
    let refused = reports(&admin, &ns)
        .patch("invalid", &strict, &Patch::Apply(&invalid))
        .await;
    let Err(kube::Error::Api(status)) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(status.code, 422, "{status:?}");
    for problem in [
        "results[0].result: Unsupported value: \"broken\": supported values: \"pass\", \"fail\", \"warn\", \"error\", \"skip\"",
        "results[0].severity: Unsupported value: \"urgent\": supported values: \"critical\", \"high\", \"low\", \"medium\", \"info\"",
        "results[0].timestamp.nanos: Required value",
    ] {
        assert!(
            status.message.contains(problem),
            "{problem}\n{}",
            status.message
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Image signatures

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

/// `shop`: Deployment `web` (a ReplicaSet, 2 pods) and pod `ok` run the signed image;
/// Deployment `batch` (a ReplicaSet, 1 pod) and pod `tool` the unsigned one.
async fn populate_images(admin: &Client, shop: &str, signed: &str, unsigned: &str) {
    fn template(d: &mut Deployment) -> &mut PodSpec {
        d.spec.as_mut().unwrap().template.spec.as_mut().unwrap()
    }
    fn rs_template(r: &mut ReplicaSet) -> &mut PodSpec {
        let template = r.spec.as_mut().unwrap().template.as_mut().unwrap();
        template.spec.as_mut().unwrap()
    }
    fn pod_spec(p: &mut Pod) -> &mut PodSpec {
        p.spec.as_mut().unwrap()
    }
    for (name, image, pods) in [("web", signed, 2), ("batch", unsigned, 1)] {
        let labels = [("app", name)];
        let made = create(
            admin,
            with_image(
                deployment(object_meta(name, shop, &labels), &labels, CLEAN),
                image,
                template,
            ),
        )
        .await;
        let rs = create(
            admin,
            with_image(
                replica_set(
                    owned(&format!("{name}-1"), shop, &labels, &made),
                    &labels,
                    CLEAN,
                ),
                image,
                rs_template,
            ),
        )
        .await;
        for i in 0..pods {
            create(
                admin,
                with_image(
                    pod(owned(&format!("{name}-1-{i}"), shop, &labels, &rs), CLEAN),
                    image,
                    pod_spec,
                ),
            )
            .await;
        }
    }
    for (name, image) in [("ok", signed), ("tool", unsigned)] {
        create(
            admin,
            with_image(
                pod(object_meta(name, shop, &[("app", name)]), CLEAN),
                image,
                pod_spec,
            ),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_verifies_image_signatures_unless_told_not_to() {
    use common::registry::{Registry, TestSigner};
    let registry = Registry::start().await;
    let signer = TestSigner::new();
    let host = registry.host();
    let signed_digest = registry.push_image("team/app", "v1", "signed").await;
    registry
        .sign_image("team/app", &signed_digest, &[&signer])
        .await;
    let unsigned_digest = registry.push_image("team/tool", "v1", "unsigned").await;
    let signed = format!("{host}/team/app:v1");
    let unsigned = format!("{host}/team/tool:v1");
    let env = Env::empty(&format!(
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: disallow-privileged}}\nspec: {{check: privileged}}\n---\n{}",
        signed_images_policy(&host, &signer.public_key_pem())
    ))
    .await;
    let shop = env.shop.as_str();
    populate_images(&env.admin, shop, &signed, &unsigned).await;
    grant(&env.admin, &env.user, Some(shop), REPORTS_ROLE).await;

    // Pages of 1: the signed image is verified once, then found in the cache.
    let out = env.audit(&["-n", shop, "--page-size", "1", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc = json_out(&out);
    let path = "spec.template.spec.containers[0].image";
    assert_eq!(
        rows(&doc),
        [
            row((
                shop,
                "Deployment/batch",
                1,
                "require-signed",
                "enforce",
                "signed-images",
                "app",
                path
            )),
            row((
                shop,
                "Pod/tool",
                1,
                "require-signed",
                "enforce",
                "signed-images",
                "app",
                "spec.containers[0].image"
            )),
        ]
    );
    for r in doc["violations"].as_array().unwrap() {
        let message = r["message"].as_str().unwrap();
        assert!(
            message.contains(&format!(
                "image {unsigned} ({unsigned_digest}) has no cosign signature"
            )),
            "{message}"
        );
        assert!(!message.contains(&signed_digest), "{message}");
    }
    let summary = &doc["summary"];
    assert_eq!(summary["image_signatures"], "verified");
    assert_eq!(summary["workloads"], 4, "2 Deployments, 2 standalone pods");
    assert_eq!(summary["covered_pods"], 3);
    assert_eq!(summary["standalone_pods"], 2);
    assert_eq!(summary["violating_workloads"], 2);
    {
        let _crds = shipped_crds_installed(&env.admin, shop).await;
        let out = env.audit(&["-n", shop, "--report", "policyreport"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert!(!stdout(&out).contains("not verified"), "{}", stdout(&out));
        let report = stored_report(&env, shop).await;
        assert_eq!(report["summary"]["fail"], 2);
        assert_eq!(
            report["summary"]["pass"], 6,
            "4 workloads x 2 policies, 2 failed; ok passes both after its final pass"
        );
    }

    // The periodic audit verifies with the verifier it is given (the webhook's, whose metrics
    // count its verifications). It scans every namespace: this user may list them, and read
    // only `shop`.
    grant(&env.admin, &env.user, None, NAMESPACES_ROLE).await;
    {
        use portier::audit::periodic::{PeriodicOptions, run_once};
        use std::sync::Arc;
        let metrics = Arc::new(portier::metrics::Metrics::new());
        let store =
            portier::reload::PolicyStore::open(&env.policies(), false, Arc::clone(&metrics))
                .unwrap();
        let connection = portier::audit::client(&portier::audit::Connect {
            kubeconfig: Some(env.kubeconfig.clone()),
            ..portier::audit::Connect::default()
        })
        .await
        .unwrap();
        let images = portier::images::Verifier::new(Arc::clone(&metrics));
        let options = PeriodicOptions {
            interval: std::time::Duration::from_secs(3600),
            page_size: 500,
            reports: None,
        };
        run_once(connection.client, &store, &metrics, &images, &options).await;
        let text = metrics.render();
        assert_eq!(
            gauge(&text, shop, "require-signed", "signed-images").as_deref(),
            Some("2"),
            "{text}"
        );
        for (result, n) in [("verified", 1), ("rejected", 1)] {
            let series = format!("portier_image_verifications_total{{result=\"{result}\"}} {n}\n");
            assert!(text.contains(&series), "{series}{text}");
        }
    }

    // Without verification (and without the registry, to show it is not asked), nothing is
    // reported, and that is said once.
    drop(registry);
    let out = env.audit(&["-n", shop, "--no-verify-images", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc = json_out(&out);
    assert_eq!(doc["violations"], Value::Array(vec![]));
    assert_eq!(doc["summary"]["image_signatures"], "not-verified");
    assert_eq!(doc["summary"]["workloads"], 4);
    let out = env.audit(&["-n", shop, "--no-verify-images"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let table = stdout(&out);
    let note = "Image signatures were not verified (--no-verify-images): require-signed judged image references and digests only, no signature.";
    assert_eq!(table.matches(note).count(), 1, "{table}");
    assert_eq!(table.matches("not verified").count(), 1, "{table}");

    // With verification on and the registry gone, the images cannot be verified: every one is
    // reported as unverifiable, as admission would deny it (onRegistryError: deny).
    let out = env.audit(&["-n", shop, "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc = json_out(&out);
    let names: Vec<String> = rows(&doc).into_iter().map(|r| r.1).collect();
    // In the API server's order: by name within each kind.
    assert_eq!(
        names,
        ["Deployment/batch", "Deployment/web", "Pod/ok", "Pod/tool"]
    );
    for r in doc["violations"].as_array().unwrap() {
        let message = r["message"].as_str().unwrap();
        assert!(message.contains("could not be verified"), "{message}");
    }
}

/// Issue 18's tag race, seen by the audit: `team/app:v1` was signed, admitted and pulled, then
/// re-pushed unsigned. The audit verifies what each pod reports it runs
/// (`status.containerStatuses[].imageID`), not what the tag names now. There is no kubelet:
/// the test writes the pods' status as one would, through the status subresource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_verifies_the_digest_a_pod_runs() {
    use common::registry::{Registry, TestSigner};
    let registry = Registry::start().await;
    let signer = TestSigner::new();
    let host = registry.host();
    let signed = registry.push_image("team/app", "v1", "release v1").await;
    registry.sign_image("team/app", &signed, &[&signer]).await;
    let unsigned = registry.push_image("team/app", "v1", "re-pushed v1").await;
    let tag = format!("{host}/team/app:v1");
    let env = Env::empty(&signed_images_policy(&host, &signer.public_key_pem())).await;
    let shop = env.shop.as_str();
    grant(&env.admin, &env.user, Some(shop), CHART_ROLE).await;
    fn template(d: &mut Deployment) -> &mut PodSpec {
        d.spec.as_mut().unwrap().template.spec.as_mut().unwrap()
    }
    fn rs_template(r: &mut ReplicaSet) -> &mut PodSpec {
        let template = r.spec.as_mut().unwrap().template.as_mut().unwrap();
        template.spec.as_mut().unwrap()
    }
    fn pod_spec(p: &mut Pod) -> &mut PodSpec {
        p.spec.as_mut().unwrap()
    }
    let pods = Api::<Pod>::namespaced(env.admin.clone(), shop);
    let running = |name: String, digest: &str| {
        let status = json!({"status": {"containerStatuses": [{
            "name": "app", "image": tag, "imageID": format!("{host}/team/app@{digest}"),
            "ready": true, "restartCount": 0
        }]}});
        let pods = pods.clone();
        async move {
            pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .unwrap();
        }
    };
    let labels = [("app", "legacy")];
    let legacy = create(
        &env.admin,
        with_image(
            deployment(object_meta("legacy", shop, &labels), &labels, CLEAN),
            &tag,
            template,
        ),
    )
    .await;
    let rs = create(
        &env.admin,
        with_image(
            replica_set(owned("legacy-1", shop, &labels, &legacy), &labels, CLEAN),
            &tag,
            rs_template,
        ),
    )
    .await;
    for (i, digest) in [&signed, &unsigned, &unsigned].into_iter().enumerate() {
        let name = format!("legacy-1-{i}");
        create(
            &env.admin,
            with_image(pod(owned(&name, shop, &labels, &rs), CLEAN), &tag, pod_spec),
        )
        .await;
        running(name, digest).await;
    }
    for (name, digest) in [("old", &signed), ("racer", &unsigned)] {
        create(
            &env.admin,
            with_image(pod(object_meta(name, shop, &[]), CLEAN), &tag, pod_spec),
        )
        .await;
        running(name.to_owned(), digest).await;
    }

    let out = env.audit(&["-n", shop, "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc = json_out(&out);
    let found: Vec<(String, u64)> = rows(&doc).into_iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(
        found,
        [
            // The template's tag names the re-pushed image now.
            ("Deployment/legacy".to_owned(), 3),
            // Two of its pods run the unsigned digest: one finding, counted twice.
            ("Pod/legacy-1-1".to_owned(), 2),
            ("Pod/racer".to_owned(), 1),
        ],
        "old runs the signed digest, whatever its tag names now: {doc}"
    );
    for r in doc["violations"].as_array().unwrap() {
        let message = r["message"].as_str().unwrap();
        assert!(message.contains(&unsigned), "{message}");
        assert!(message.contains("has no cosign signature"), "{message}");
        if r["kind"] == "Pod" {
            assert!(message.contains("the digest it runs"), "{message}");
        }
    }
    // Not one finding about a missing digest: the audit judges objects as /mutate would
    // leave them, and pods by what they run.
    assert!(!doc.to_string().contains("not pinned"), "{doc}");
}

// ---------------------------------------------------------------------------------------------
// The periodic audit of `portier serve --audit-interval`

/// `GET /metrics` over plain HTTP/1.0.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

fn gauge(metrics: &str, ns: &str, policy: &str, check: &str) -> Option<String> {
    let prefix = format!(
        "portier_audit_violations{{check=\"{check}\",namespace=\"{ns}\",policy=\"{policy}\"}} "
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_audit_exports_gauges_and_forgets_fixed_violations() {
    use portier::audit::periodic::{PeriodicOptions, run_once};
    use std::sync::Arc;
    let env = Env::new().await;
    let (shop, team) = (env.shop.as_str(), env.team.as_str());
    let metrics = Arc::new(portier::metrics::Metrics::new());
    let store =
        portier::reload::PolicyStore::open(&env.policies(), false, Arc::clone(&metrics)).unwrap();
    let connect = |kubeconfig: &Path| portier::audit::Connect {
        kubeconfig: Some(kubeconfig.to_owned()),
        ..portier::audit::Connect::default()
    };
    let images = portier::images::Verifier::new(Arc::clone(&metrics));
    let options = |reports| PeriodicOptions {
        interval: std::time::Duration::from_secs(3600),
        page_size: 2,
        reports,
    };

    // As the chart runs it: its ClusterRole bound cluster-wide, so every namespace of the API
    // server is read (other tests' too: only this test's are asserted). No reports, so
    // nothing is written into other tests' namespaces.
    let (reader, everything) = env.other_user("reader");
    grant(&env.admin, &reader, None, CHART_ROLE).await;
    let connection = portier::audit::client(&connect(&everything)).await.unwrap();
    run_once(connection.client, &store, &metrics, &images, &options(None)).await;
    let text = metrics.render();
    let g = |ns, policy, check| gauge(&text, ns, policy, check);
    assert_eq!(
        g(shop, "disallow-privileged", "privileged").as_deref(),
        Some("3"),
        "{text}"
    );
    assert_eq!(
        g(shop, "require-run-as-non-root", "run-as-non-root").as_deref(),
        Some("1")
    );
    assert_eq!(
        g(shop, "disallow-host-namespaces", "host-namespaces").as_deref(),
        Some("1")
    );
    assert_eq!(
        g(team, "require-run-as-non-root", "run-as-non-root").as_deref(),
        Some("1")
    );
    assert_eq!(
        g(team, "disallow-privileged", "privileged"),
        None,
        "only what was found"
    );
    assert!(
        text.contains(r#"portier_audit_runs_total{result="complete"} 1"#),
        "{text}"
    );

    // The debug pod is deleted: its two violations disappear from the gauges. This run's user
    // reads only this test's namespaces (the rest answer 403, so the run is partial) and
    // writes their reports.
    grant(&env.admin, &env.user, None, NAMESPACES_ROLE).await;
    Api::<Pod>::namespaced(env.admin.clone(), shop)
        .delete("debug", &Default::default())
        .await
        .unwrap();
    let connection = portier::audit::client(&connect(&env.kubeconfig))
        .await
        .unwrap();
    {
        let _crds = shipped_crds_installed(&env.admin, shop).await;
        run_once(
            connection.client,
            &store,
            &metrics,
            &images,
            &options(Some(1000)),
        )
        .await;
    }
    let text = metrics.render();
    assert_eq!(
        gauge(&text, shop, "disallow-privileged", "privileged").as_deref(),
        Some("2")
    );
    assert_eq!(
        gauge(&text, shop, "disallow-host-namespaces", "host-namespaces"),
        None,
        "{text}"
    );
    assert!(text.contains("portier_audit_workloads 7"), "{text}");
    assert!(
        text.contains(r#"portier_audit_runs_total{result="partial"} 1"#),
        "{text}"
    );
    for ns in [shop, team] {
        assert_eq!(
            stored_report(&env, ns).await["metadata"]["name"],
            format!("portier-{ns}"),
            "reports written too"
        );
    }

    // A run that cannot list anything leaves the last results and counts a failure.
    let (_, stranger) = env.other_user("stranger");
    let connection = portier::audit::client(&connect(&stranger)).await.unwrap();
    run_once(connection.client, &store, &metrics, &images, &options(None)).await;
    let after = metrics.render();
    assert!(
        after.contains(r#"portier_audit_runs_total{result="failed"} 1"#),
        "{after}"
    );
    assert_eq!(
        gauge(&after, shop, "disallow-privileged", "privileged").as_deref(),
        Some("2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_an_audit_interval_exports_the_gauges() {
    let env = Env::new().await;
    grant(&env.admin, &env.user, None, NAMESPACES_ROLE).await;
    let pki = common::TestPki::new();
    let cert = env.dir.path().join("tls.crt");
    let key = env.dir.path().join("tls.key");
    std::fs::write(&cert, &pki.cert_pem).unwrap();
    common::write_private(&key, &pki.key_pem);
    let policies = env.policies();
    let mut server = common::ServeProcess::start_with_env(
        &[
            "--policies",
            policies.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--audit-interval",
            "1h",
        ],
        &[("KUBECONFIG", env.kubeconfig.to_str().unwrap())],
    );
    let done = server
        .wait_for_line(|l| l.contains("periodic audit done"))
        .expect("the first audit runs at start");
    let done: Value = serde_json::from_str(&done).unwrap();
    // Every namespace is listed; this user reads only the test's two.
    assert_eq!(done["violations"], 6);
    assert_eq!(done["complete"], 2);
    let text = scrape(&server.metrics_addr);
    assert_eq!(
        gauge(&text, &env.shop, "disallow-privileged", "privileged").as_deref(),
        Some("3"),
        "{text}"
    );
    let calls = env.calls().await;
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|c| c.verb == "list"),
        "no reports unless asked: {calls:#?}"
    );
    let (code, _) = server.terminate();
    assert_eq!(code, Some(0));
}
