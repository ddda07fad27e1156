//! The cluster each `portier audit` test audits, and reading what the audit said: two populated
//! namespaces and an auditing user of the test's own ([`Env`]), the binary run as that user,
//! the requests it made (from the API server's audit log), and its output parsed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Client;
use serde_json::Value;

use super::objects::{create, uid};
use super::policy_reports::reports;
use super::rbac::{REPORTS_ROLE, cluster_roles, grant};
use super::{Cluster, cluster};
use crate::common::workloads::{
    CLEAN, Flaws, PRIVILEGED, ROOT, controller_ref, cron_job, deployment, job, object_meta, pod,
    replica_set, stateful_set,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_portier");

pub use crate::common::workloads::AUDIT_POLICIES as POLICIES;
/// `object_meta` with a controller reference to `owner`.
pub fn owned<K: kube::Resource<DynamicType = ()> + k8s_openapi::Resource>(
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
pub async fn populate(admin: &Client, shop: &str, team: &str) -> String {
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

pub struct Env {
    pub k8s: &'static Cluster,
    pub admin: Client,
    pub dir: tempfile::TempDir,
    pub shop: String,
    pub team: String,
    /// The audit's user, a client certificate; `kubeconfig` is its, context namespace `shop`.
    pub user: String,
    pub kubeconfig: PathBuf,
    /// The uid of Deployment `web` in `shop`.
    pub web_uid: String,
}

impl Env {
    /// `shop-N` and `team-b-N`, populated, and a user with the chart's ClusterRole (and
    /// PolicyReports) bound in both.
    pub async fn new() -> Env {
        let env = Env::empty(POLICIES).await;
        let web_uid = populate(&env.admin, &env.shop, &env.team).await;
        for ns in [&env.shop, &env.team] {
            grant(&env.admin, &env.user, Some(ns), REPORTS_ROLE).await;
        }
        Env { web_uid, ..env }
    }

    /// The two namespaces and the user, with no objects and no grants.
    pub async fn empty(policies: &str) -> Env {
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

    pub fn policies(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    pub fn audit(&self, args: &[&str]) -> Output {
        self.audit_with(&self.kubeconfig, args)
    }

    pub fn audit_with(&self, kubeconfig: &Path, args: &[&str]) -> Output {
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
    pub fn other_user(&self, name: &str) -> (String, PathBuf) {
        let user = self.k8s.unique(name);
        let path = self.dir.path().join(format!("{user}.kubeconfig"));
        let path = self
            .k8s
            .user_kubeconfig(&path, &user, None, Some(&self.shop));
        (user, path)
    }

    /// What the audit's user asked the API server, from its audit log, in order.
    pub async fn calls(&self) -> Vec<Call> {
        calls_of(
            &self.k8s.audit_events_settled(&self.admin, &self.shop).await,
            &self.user,
        )
    }
}

/// One request of the audit log.
#[derive(Debug)]
pub struct Call {
    pub verb: String,
    pub resource: String,
    pub namespace: String,
    pub query: Vec<(String, String)>,
    pub code: u64,
}

impl Call {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub fn calls_of(events: &[Value], user: &str) -> Vec<Call> {
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

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn json_out(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", stdout(o), stderr(o)))
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A violation row: (namespace, kind/name, pods, policy, mode, check, container, path).
pub type Cells = (String, String, u64, String, String, String, String, String);

pub fn rows(doc: &Value) -> Vec<Cells> {
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

pub fn row(r: (&str, &str, u64, &str, &str, &str, &str, &str)) -> Cells {
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

pub fn shop_rows(shop: &str) -> Vec<Cells> {
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
pub fn statuses(doc: &Value, wanted: &[&str]) -> Vec<(String, String)> {
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

pub fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

/// The report portier wrote in `ns`, read back through the API (with its managed fields).
pub async fn stored_report(env: &Env, ns: &str) -> Value {
    let all = reports(&env.admin, ns)
        .list(&Default::default())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1, "one report per namespace");
    serde_json::to_value(&all.items[0]).unwrap()
}
