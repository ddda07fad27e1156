//! `portier audit` against a stand-in API server (`tests/apiserver`): the real binary, the real
//! kube client (through a kubeconfig), real list responses built from k8s-openapi types.

mod apiserver;
mod common;

use std::path::Path;
use std::process::{Command, Output};

use apiserver::{
    CLEAN, Cluster, Flaws, StandIn, cron_job, deployment, job, meta, owned_meta, per_path, pod,
    replica_set, stateful_set,
};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::PodSpec;
use serde_json::Value;

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

const PRIVILEGED: Flaws = Flaws {
    privileged: true,
    root: false,
    host_network: false,
};
const ROOT: Flaws = Flaws {
    privileged: false,
    root: true,
    host_network: false,
};

/// `shop`: a privileged Deployment with a current and an old ReplicaSet and 3 pods; a CronJob
/// running as root with a Job and a pod; a compliant StatefulSet with 2 pods; a ReplicaSet
/// nobody owns, privileged, with 1 pod; a privileged pod on the host network; a pod whose
/// controller is not a kind portier lists. `team-b`: a compliant Deployment with 2 pods and a
/// pod running as root.
fn cluster() -> Cluster {
    let mut c = Cluster::new();
    let shop = c.ns("shop");
    let web = [("app", "web")];
    shop.deployments
        .push(deployment("web", "shop", &web, PRIVILEGED));
    for rs in ["web-5d8f", "web-old"] {
        shop.replicasets.push(replica_set(
            owned_meta::<Deployment>(rs, "shop", &web, "web"),
            &web,
            PRIVILEGED,
        ));
    }
    for p in ["web-5d8f-a", "web-5d8f-b", "web-5d8f-c"] {
        shop.pods.push(pod(
            owned_meta::<ReplicaSet>(p, "shop", &web, "web-5d8f"),
            PRIVILEGED,
        ));
    }
    let nightly = [("app", "nightly")];
    shop.cronjobs
        .push(cron_job("nightly", "shop", &nightly, ROOT));
    shop.jobs.push(job(
        owned_meta::<CronJob>("nightly-29000", "shop", &nightly, "nightly"),
        &nightly,
        ROOT,
    ));
    shop.pods.push(pod(
        owned_meta::<Job>("nightly-29000-x", "shop", &nightly, "nightly-29000"),
        ROOT,
    ));
    let db = [("app", "db")];
    shop.statefulsets
        .push(stateful_set("db", "shop", &db, CLEAN));
    for p in ["db-0", "db-1"] {
        shop.pods
            .push(pod(owned_meta::<StatefulSet>(p, "shop", &db, "db"), CLEAN));
    }
    let lonely = [("app", "lonely")];
    shop.replicasets.push(replica_set(
        meta("lonely", "shop", &lonely),
        &lonely,
        PRIVILEGED,
    ));
    shop.pods.push(pod(
        owned_meta::<ReplicaSet>("lonely-q", "shop", &lonely, "lonely"),
        PRIVILEGED,
    ));
    shop.pods.push(pod(
        meta("debug", "shop", &[("app", "debug")]),
        Flaws {
            privileged: true,
            root: false,
            host_network: true,
        },
    ));
    let mut rollout_pod = pod(meta("canary-1", "shop", &[("app", "canary")]), CLEAN);
    rollout_pod.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "argoproj.io/v1alpha1".into(),
            kind: "Rollout".into(),
            name: "canary".into(),
            uid: "uid-rollout".into(),
            controller: Some(true),
            block_owner_deletion: None,
        },
    ]);
    shop.pods.push(rollout_pod);

    let team = c.ns("team-b");
    let api = [("app", "api")];
    team.deployments
        .push(deployment("api", "team-b", &api, CLEAN));
    team.replicasets.push(replica_set(
        owned_meta::<Deployment>("api-77", "team-b", &api, "api"),
        &api,
        CLEAN,
    ));
    for p in ["api-77-a", "api-77-b"] {
        team.pods.push(pod(
            owned_meta::<ReplicaSet>(p, "team-b", &api, "api-77"),
            CLEAN,
        ));
    }
    team.pods
        .push(pod(meta("tool", "team-b", &[("app", "tool")]), ROOT));
    c
}

struct Env {
    dir: tempfile::TempDir,
    server: StandIn,
}

impl Env {
    fn new(cluster: Cluster) -> Env {
        Env::with_policies(cluster, POLICIES)
    }

    fn with_policies(cluster: Cluster, policies: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        std::fs::write(dir.path().join("policies/set.yaml"), policies).unwrap();
        let server = StandIn::start(cluster);
        server.kubeconfig(dir.path(), "shop");
        Env { dir, server }
    }

    fn audit(&self, args: &[&str]) -> Output {
        let policies = self.dir.path().join("policies");
        let kubeconfig = self.dir.path().join("kubeconfig");
        Command::new(BIN)
            .arg("audit")
            .arg("--policies")
            .arg(&policies)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
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

fn shop_rows() -> Vec<Cells> {
    let privileged = "securityContext.privileged";
    vec![
        row((
            "shop",
            "Deployment/web",
            3,
            "disallow-privileged",
            "enforce",
            "privileged",
            "app",
            &format!("spec.template.spec.containers[0].{privileged}"),
        )),
        row((
            "shop",
            "CronJob/nightly",
            1,
            "require-run-as-non-root",
            "warn",
            "run-as-non-root",
            "app",
            "spec.jobTemplate.spec.template.spec.containers[0].securityContext.runAsNonRoot",
        )),
        row((
            "shop",
            "ReplicaSet/lonely",
            1,
            "disallow-privileged",
            "enforce",
            "privileged",
            "app",
            &format!("spec.template.spec.containers[0].{privileged}"),
        )),
        row((
            "shop",
            "Pod/debug",
            1,
            "disallow-privileged",
            "enforce",
            "privileged",
            "app",
            &format!("spec.containers[0].{privileged}"),
        )),
        row((
            "shop",
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

#[test]
fn audit_paginates_dedupes_controller_pods_and_reports_real_modes() {
    let env = Env::new(cluster());
    let out = env.audit(&["-n", "shop", "--page-size", "2", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(rows(&doc), shop_rows());
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
            &Value::from("shop"),
            &Value::from("complete"),
            &Value::from(6),
            &Value::from(9),
            &Value::from(5)
        )
    );

    // Pagination really happened: 10 pods in pages of 2, each page asked with limit=2 and the
    // previous page's continue token; controllers listed before pods.
    let requests = env.server.requests();
    let pods: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/api/v1/namespaces/shop/pods")
        .collect();
    assert_eq!(pods.len(), 5, "{pods:#?}");
    assert!(pods.iter().all(|r| r.param("limit") == Some("2")));
    assert_eq!(pods[0].param("continue"), None);
    assert!(pods[1..].iter().all(|r| r.param("continue").is_some()));
    let rs = per_path(&requests)["/apis/apps/v1/namespaces/shop/replicasets"];
    assert_eq!(rs, 2, "3 ReplicaSets in pages of 2");
    let order: Vec<&str> = requests
        .iter()
        .filter(|r| r.param("continue").is_none())
        .map(|r| r.path.rsplit('/').next().unwrap())
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
    assert!(requests.iter().all(|r| r.method == "GET"));
}

#[test]
fn fail_on_violation_exits_1_and_a_clean_scope_exits_0() {
    let env = Env::new(cluster());
    let out = env.audit(&["-n", "shop", "--fail-on-violation"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    // A selector that only picks compliant objects: nothing to report, exit 0 even so.
    let out = env.audit(&[
        "-n",
        "shop",
        "-l",
        "app=db",
        "--fail-on-violation",
        "-o",
        "json",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["violations"], Value::Array(vec![]));
    assert_eq!(doc["summary"]["controllers"], 1);
    assert_eq!(doc["summary"]["covered_pods"], 2);
    let requests = env.server.requests();
    let listed: Vec<_> = requests
        .iter()
        .filter(|r| r.param("labelSelector").is_some())
        .collect();
    assert_eq!(listed.len(), 8, "every list call carries the selector");
    assert!(
        listed
            .iter()
            .all(|r| r.param("labelSelector") == Some("app=db"))
    );
}

#[test]
fn the_context_namespace_is_the_default_and_the_table_has_every_column() {
    let env = Env::new(cluster());
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
    let want: Vec<Vec<String>> = shop_rows()
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
        text.lines().any(
            |l| l.split_whitespace().collect::<Vec<_>>() == ["shop", "complete", "6", "9", "5"]
        ),
        "{text}"
    );
    assert!(
        text.ends_with(
            "1/1 namespace(s) scanned completely; 6 workload(s) judged (4 controller(s) covering 7 pod(s), 2 standalone pod(s)); 5 violation(s) in 4 workload(s), every policy judged as enforce\n"
        ),
        "{text}"
    );
    assert!(
        env.server
            .requests()
            .iter()
            .all(|r| r.path.starts_with("/api/v1/namespaces/shop/")
                || r.path.starts_with("/apis/apps/v1/namespaces/shop/")
                || r.path.starts_with("/apis/batch/v1/namespaces/shop/"))
    );
}

#[test]
fn yaml_output_is_the_json_document() {
    let env = Env::new(cluster());
    let as_json = json(&env.audit(&["-n", "shop", "-n", "team-b", "-o", "json"]));
    let out = env.audit(&["-n", "shop", "-n", "team-b", "-o", "yaml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let as_yaml: Value =
        serde_saphyr::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}\n{}", stdout(&out)));
    assert_eq!(as_yaml, as_json);
    assert_eq!(as_json["violations"].as_array().unwrap().len(), 6);
    assert_eq!(as_json["violations"][5]["name"], "tool");
    assert_eq!(as_json["violations"][5]["namespace"], "team-b");
}

#[test]
fn all_namespaces_go_on_after_403_and_a_vanished_namespace() {
    let mut c = cluster();
    c.ns("secret").forbidden.insert("*".into());
    c.ns("secret")
        .pods
        .push(pod(meta("hidden", "secret", &[]), PRIVILEGED));
    // `gone` answers its first list (deployments), then it is deleted.
    let gone = c.ns("gone");
    gone.vanish_after = Some(1);
    gone.pods.push(pod(meta("p", "gone", &[]), PRIVILEGED));
    // `partial` may not list cronjobs: the rest is still judged.
    let partial = c.ns("partial");
    partial.forbidden.insert("cronjobs".into());
    partial
        .pods
        .push(pod(meta("solo", "partial", &[]), PRIVILEGED));
    let env = Env::new(c);
    let out = env.audit(&["-A", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "namespace secret: *: no kind may be listed here; the first answer: 403 Forbidden: deployments.apps is forbidden: User \"system:serviceaccount:portier:portier\" cannot list resource \"deployments\" in API group \"apps\" in the namespace \"secret\"\n"
        ),
        "{err}"
    );
    assert!(
        err.contains("namespace gone: cronjobs: the namespace disappeared during the scan (404 Not Found: namespaces \"gone\" not found)"),
        "{err}"
    );
    assert!(
        err.contains("namespace partial: cronjobs: 403 Forbidden"),
        "{err}"
    );
    let doc = json(&out);
    let statuses: Vec<(String, String)> = doc["summary"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["namespace"].as_str().unwrap().to_owned(),
                n["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("gone".to_owned(), "vanished".to_owned()),
            ("partial".to_owned(), "partial".to_owned()),
            ("secret".to_owned(), "forbidden".to_owned()),
            ("shop".to_owned(), "complete".to_owned()),
            ("team-b".to_owned(), "complete".to_owned()),
        ]
    );
    assert_eq!(doc["summary"]["complete"], false);
    assert_eq!(doc["summary"]["namespaces_complete"], 2);
    let names: Vec<String> = rows(&doc)
        .into_iter()
        .map(|r| format!("{}/{}", r.0, r.1))
        .collect();
    assert!(names.contains(&"partial/Pod/solo".to_owned()), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("secret/") || n.starts_with("gone/"))
    );
    let secret = &doc["summary"]["namespaces"][2];
    assert_eq!(secret["problems"].as_array().unwrap().len(), 1);
    // After the 404 nothing more is asked in `gone`.
    let gone_calls = env
        .server
        .requests()
        .iter()
        .filter(|r| r.path.contains("/namespaces/gone/"))
        .count();
    assert_eq!(gone_calls, 2);
}

#[test]
fn an_expired_continue_token_restarts_that_list_once_without_duplicates() {
    let mut c = cluster();
    c.ns("shop").expire_once.insert("pods".into());
    let env = Env::new(c);
    let out = env.audit(&["-n", "shop", "--page-size", "3", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("410 Gone")
            && stderr(&out).contains("listing pods in shop again from the start"),
        "{}",
        stderr(&out)
    );
    let doc = json(&out);
    assert_eq!(rows(&doc), shop_rows());
    assert_eq!(doc["summary"]["covered_pods"], 7);
    assert_eq!(doc["summary"]["standalone_pods"], 2);
    assert_eq!(doc["summary"]["complete"], true);
    let pods: Vec<_> = env
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/namespaces/shop/pods")
        .collect();
    let statuses: Vec<u16> = pods.iter().map(|r| r.status).collect();
    // 9 pods in pages of 3: page 1, 410 on page 2, then pages 1..3 again.
    assert_eq!(statuses, [200, 410, 200, 200, 200]);
    assert_eq!(pods[2].param("continue"), None);
}

#[test]
fn total_failures_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/set.yaml"), POLICIES).unwrap();
    let policies = dir.path().join("policies");
    let run = |kubeconfig: &Path, args: &[&str]| {
        Command::new(BIN)
            .arg("audit")
            .arg("--policies")
            .arg(&policies)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .output()
            .unwrap()
    };

    // Nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = dir.path().join("dead");
    std::fs::write(
        &dead,
        apiserver::kubeconfig_text(&format!("http://127.0.0.1:{port}"), "t", "shop"),
    )
    .unwrap();
    let out = run(&dead, &["-n", "shop"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(
            "portier: cannot reach the Kubernetes API: no answer from the API server: "
        ) && stderr(&out).ends_with(&format!("(API server http://127.0.0.1:{port}/)\n")),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());

    // Listing namespaces is forbidden: -A cannot work.
    let mut c = cluster();
    c.forbid_namespace_list = true;
    let server = StandIn::start(c);
    let kubeconfig = server.kubeconfig(dir.path(), "shop");
    let out = run(&kubeconfig, &["-A"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot list namespaces for --all-namespaces: 403 Forbidden: namespaces is forbidden: User \"system:serviceaccount:portier:portier\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope; name the namespaces with -n instead"),
        "{}",
        stderr(&out)
    );
    // Every namespace asked for is forbidden: nothing was listed.
    server.with_cluster(|c| {
        c.ns("shop").forbidden.insert("*".into());
        c.ns("team-b").forbidden.insert("*".into());
    });
    let out = run(&kubeconfig, &["-n", "shop", "-n", "team-b"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("portier: nothing could be listed in 2 namespace(s)"),
        "{}",
        stderr(&out)
    );
    // The summary still says why.
    assert!(
        stdout(&out).contains("team-b     forbidden"),
        "{}",
        stdout(&out)
    );
    // Wrong credentials.
    std::fs::write(
        dir.path().join("badtoken"),
        apiserver::kubeconfig_text(&server.url(), "wrong", "shop"),
    )
    .unwrap();
    let out = run(&dir.path().join("badtoken"), &["-n", "shop"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("401 Unauthorized"),
        "{}",
        stderr(&out)
    );
    // A bad flag and a bad policy directory are usage errors.
    let out = run(&kubeconfig, &["-A", "-n", "shop"]);
    assert_eq!(code(&out), 2);
    let out = run(&kubeconfig, &["--page-size", "0"]);
    assert_eq!(code(&out), 2);
    let out = Command::new(BIN)
        .args(["audit", "--policies", "/nonexistent", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("cannot read policy directory"),
        "{}",
        stderr(&out)
    );
}

fn patches(env: &Env) -> Vec<apiserver::Recorded> {
    env.server
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect()
}

#[test]
fn report_policyreport_applies_one_valid_report_per_namespace() {
    let env = Env::new(cluster());
    let schema = apiserver::policy_report_schema();
    let out = env.audit(&["-n", "shop", "-n", "team-b", "--report", "policyreport"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("portier: 2 PolicyReport(s) written, 0 not written, 0 left as they were"),
        "{}",
        stderr(&out)
    );
    let written = patches(&env);
    assert_eq!(written.len(), 2);
    for (r, ns) in written.iter().zip(["shop", "team-b"]) {
        assert_eq!(
            r.path,
            format!("/apis/wgpolicyk8s.io/v1alpha2/namespaces/{ns}/policyreports/portier-{ns}")
        );
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(r.param("fieldManager"), Some("portier"));
        assert_eq!(r.param("force"), Some("true"));
        assert_eq!(r.param("fieldValidation"), Some("Strict"));
        assert_eq!(r.status, 201, "created");
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            apiserver::validate(&schema, &body, ""),
            Vec::<String>::new()
        );
    }
    let shop: Value = serde_json::from_str(&written[0].body).unwrap();
    assert_eq!(shop["apiVersion"], "wgpolicyk8s.io/v1alpha2");
    assert_eq!(shop["kind"], "PolicyReport");
    assert_eq!(
        shop["metadata"],
        serde_json::json!({
            "name": "portier-shop",
            "namespace": "shop",
            "labels": {"app.kubernetes.io/managed-by": "portier"},
            "annotations": {"portier.dev/results-total": "5"}
        })
    );
    // 6 workloads x 3 policies = 18 judgements: 5 failed (one per violation here), 13 passed.
    assert_eq!(
        shop["summary"],
        serde_json::json!({"pass": 13, "fail": 5, "warn": 0, "error": 0, "skip": 0})
    );
    let results = shop["results"].as_array().unwrap();
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
        &serde_json::json!({
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
                "namespace": "shop",
                "uid": "uid-shop-web"
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
    let team: Value = serde_json::from_str(&written[1].body).unwrap();
    assert_eq!(team["summary"]["fail"], 1);
    assert_eq!(team["summary"]["pass"], 5, "api passes 3, tool passes 2");

    // Again, after the Deployment was fixed: the same object is updated (200), the finding is gone.
    let uid = env.server.policy_reports()[&("shop".to_owned(), "portier-shop".to_owned())]["metadata"]["uid"].clone();
    env.server.with_cluster(|c| {
        let shop = c.ns("shop");
        shop.deployments[0] = deployment("web", "shop", &[("app", "web")], CLEAN);
        for rs in &mut shop.replicasets[..2] {
            rs.spec.as_mut().unwrap().template =
                Some(k8s_openapi::api::core::v1::PodTemplateSpec {
                    metadata: None,
                    spec: Some(apiserver::pod_spec(CLEAN)),
                });
        }
    });
    env.server.clear_requests();
    let out = env.audit(&["-n", "shop", "--report", "policyreport"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let again = patches(&env);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].status, 200, "updated");
    let stored = &env.server.policy_reports()[&("shop".to_owned(), "portier-shop".to_owned())];
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

#[test]
fn reports_are_capped_and_say_what_was_cut() {
    let env = Env::new(cluster());
    let out = env.audit(&[
        "-n",
        "shop",
        "--report",
        "policyreport",
        "--report-max-results",
        "2",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("portier: PolicyReport shop/portier-shop: 2 result(s) written, 3 more cut (--report-max-results); the summary counts them all"),
        "{}",
        stderr(&out)
    );
    let report: Value = serde_json::from_str(&patches(&env)[0].body).unwrap();
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
    assert_eq!(
        apiserver::validate(&apiserver::policy_report_schema(), &report, ""),
        Vec::<String>::new()
    );
}

#[test]
fn reports_are_not_written_for_incomplete_namespaces_and_failures_are_clear() {
    let mut c = cluster();
    c.ns("secret").forbidden.insert("*".into());
    c.ns("partial").forbidden.insert("jobs".into());
    c.ns("team-b").forbidden.insert("policyreports".into());
    let env = Env::new(c);
    let out = env.audit(&["-A", "--report", "policyreport", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("portier: namespace partial: the namespace's scan is partial, so its report was left as it was"), "{err}");
    assert!(err.contains("portier: namespace secret: the namespace's scan is forbidden, so its report was left as it was"), "{err}");
    assert!(
        err.contains("portier: PolicyReport for namespace team-b not written: 403 Forbidden: policyreports.wgpolicyk8s.io is forbidden: User \"system:serviceaccount:portier:portier\" cannot patch resource \"policyreports\" in API group \"wgpolicyk8s.io\" in the namespace \"team-b\""),
        "{err}"
    );
    assert!(err.contains("portier: 1 PolicyReport(s) written, 1 not written, 2 left as they were (incomplete scan)"), "{err}");
    let written: Vec<String> = patches(&env)
        .iter()
        .filter(|r| r.status == 201)
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        written,
        ["/apis/wgpolicyk8s.io/v1alpha2/namespaces/shop/policyreports/portier-shop"]
    );

    // Without the CRD no report can be written: said once, clearly, and exit 2.
    env.server.with_cluster(|c| c.policy_report_crd = false);
    let out = env.audit(&["-n", "shop", "-n", "team-b", "--report", "policyreport"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("portier: PolicyReport for namespace shop not written: the wgpolicyk8s.io/v1alpha2 PolicyReport CRD is not installed (the server could not find the requested resource); install it with `kubectl apply -f deploy/crds/policyreports.yaml`"),
        "{err}"
    );
    assert!(
        !err.contains("namespace team-b not written"),
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

    // An older CRD without `source`: strict validation refuses the field; said once.
    env.server.with_cluster(|c| {
        c.policy_report_crd = true;
        c.old_policy_report_schema = true;
    });
    let out = env.audit(&["-n", "shop", "-n", "team-b", "--report", "policyreport"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("portier: PolicyReport for namespace shop not written: the API server rejected the report (HTTP 400: PolicyReport in version \"v1alpha2\" cannot be handled as a PolicyReport: strict decoding error: unknown field \"results[0].source\""),
        "{err}"
    );
    assert!(
        err.contains("compare it with deploy/crds/policyreports.yaml"),
        "{err}"
    );
    assert!(
        !err.contains("namespace team-b not written"),
        "said once: {err}"
    );

    // A selector would make a report that drops what it does not select.
    let out = env.audit(&["-n", "shop", "-l", "app=web", "--report", "policyreport"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_shipped_crds_are_the_v1alpha2_schema_and_the_validator_bites() {
    let schema = apiserver::policy_report_schema();
    let cluster_schema = apiserver::crd_schema("ClusterPolicyReport");
    assert_eq!(schema["properties"], cluster_schema["properties"]);
    let results = &schema["properties"]["results"]["items"]["properties"];
    let mut fields: Vec<&String> = results.as_object().unwrap().keys().collect();
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
    let bad = serde_json::json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {"name": "x"},
        "summary": {"fail": "1"},
        "results": [{"policy": "p", "result": "broken", "severity": "urgent", "extra": 1,
                     "timestamp": {"seconds": 1}, "properties": {"n": 1}}]
    });
    let mut problems = apiserver::validate(&schema, &bad, "");
    problems.sort();
    assert_eq!(
        problems,
        [
            ".results[0].properties.n: Invalid value: must be of type string",
            ".results[0].result: Unsupported value: \"broken\": supported values: \"pass\", \"fail\", \"warn\", \"error\", \"skip\"",
            ".results[0].severity: Unsupported value: \"urgent\": supported values: \"critical\", \"high\", \"low\", \"medium\", \"info\"",
            ".results[0].timestamp.nanos: Required value",
            ".summary.fail: Invalid value: must be of type integer",
            "unknown field \"results[0].extra\"",
        ]
    );
}

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

/// `shop`: Deployment `web` (a ReplicaSet, 2 pods) and pod `ok` run the signed image; Deployment
/// `batch` (a ReplicaSet, 1 pod) and pod `tool` the unsigned one.
fn image_cluster(signed: &str, unsigned: &str) -> Cluster {
    fn template(d: &mut Deployment) -> &mut PodSpec {
        d.spec.as_mut().unwrap().template.spec.as_mut().unwrap()
    }
    fn rs_template(r: &mut ReplicaSet) -> &mut PodSpec {
        let template = r.spec.as_mut().unwrap().template.as_mut().unwrap();
        template.spec.as_mut().unwrap()
    }
    fn pod_spec(p: &mut k8s_openapi::api::core::v1::Pod) -> &mut PodSpec {
        p.spec.as_mut().unwrap()
    }
    let mut c = Cluster::new();
    let shop = c.ns("shop");
    for (name, image, pods) in [("web", signed, 2), ("batch", unsigned, 1)] {
        let labels = [("app", name)];
        shop.deployments.push(with_image(
            deployment(name, "shop", &labels, CLEAN),
            image,
            template,
        ));
        let rs = format!("{name}-1");
        shop.replicasets.push(with_image(
            replica_set(
                owned_meta::<Deployment>(&rs, "shop", &labels, name),
                &labels,
                CLEAN,
            ),
            image,
            rs_template,
        ));
        for i in 0..pods {
            shop.pods.push(with_image(
                pod(
                    owned_meta::<ReplicaSet>(&format!("{rs}-{i}"), "shop", &labels, &rs),
                    CLEAN,
                ),
                image,
                pod_spec,
            ));
        }
    }
    for (name, image) in [("ok", signed), ("tool", unsigned)] {
        shop.pods.push(with_image(
            pod(meta(name, "shop", &[("app", name)]), CLEAN),
            image,
            pod_spec,
        ));
    }
    c
}

#[test]
fn the_audit_verifies_image_signatures_unless_told_not_to() {
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
    let signed = format!("{host}/team/app:v1");
    let unsigned = format!("{host}/team/tool:v1");
    let env = Env::with_policies(
        image_cluster(&signed, &unsigned),
        &format!(
            "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: disallow-privileged}}\nspec: {{check: privileged}}\n---\n{}",
            signed_images_policy(&host, &signer.public_key_pem())
        ),
    );

    // Pages of 1: the signed image is verified once, then found in the cache.
    let out = env.audit(&["-n", "shop", "--page-size", "1", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc = json(&out);
    let path = "spec.template.spec.containers[0].image";
    assert_eq!(
        rows(&doc),
        [
            row((
                "shop",
                "Deployment/batch",
                1,
                "require-signed",
                "enforce",
                "signed-images",
                "app",
                path
            )),
            row((
                "shop",
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
    let out = env.audit(&["-n", "shop", "--report", "policyreport"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!stdout(&out).contains("not verified"), "{}", stdout(&out));
    let report = &env.server.policy_reports()[&("shop".to_owned(), "portier-shop".to_owned())];
    assert_eq!(report["summary"]["fail"], 2);
    assert_eq!(
        report["summary"]["pass"], 6,
        "4 workloads x 2 policies, 2 failed; ok passes both after its final pass"
    );

    // The periodic audit verifies with the verifier it is given (the webhook's, whose metrics
    // count its verifications).
    runtime.block_on(async {
        use portier::audit::periodic::{PeriodicOptions, run_once};
        use std::sync::Arc;
        let metrics = Arc::new(portier::metrics::Metrics::new());
        let store = portier::reload::PolicyStore::open(
            &env.dir.path().join("policies"),
            false,
            Arc::clone(&metrics),
        )
        .unwrap();
        let connection = portier::audit::client(&portier::audit::Connect {
            kubeconfig: Some(env.dir.path().join("kubeconfig")),
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
            gauge(&text, "shop", "require-signed", "signed-images").as_deref(),
            Some("2"),
            "{text}"
        );
        for (result, n) in [("verified", 1), ("rejected", 1)] {
            let series = format!("portier_image_verifications_total{{result=\"{result}\"}} {n}\n");
            assert!(text.contains(&series), "{series}{text}");
        }
    });

    // Without verification (and without the registry, to show it is not asked), nothing is
    // reported, and that is said once.
    drop(registry);
    let out = env.audit(&["-n", "shop", "--no-verify-images", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["violations"], Value::Array(vec![]));
    assert_eq!(doc["summary"]["image_signatures"], "not-verified");
    assert_eq!(doc["summary"]["workloads"], 4);
    let out = env.audit(&["-n", "shop", "--no-verify-images"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let table = stdout(&out);
    let note = "Image signatures were not verified (--no-verify-images): require-signed judged image references and digests only, no signature.";
    assert_eq!(table.matches(note).count(), 1, "{table}");
    assert_eq!(table.matches("not verified").count(), 1, "{table}");

    // With verification on and the registry gone, the images cannot be verified: every one is
    // reported as unverifiable, as admission would deny it (onRegistryError: deny).
    let out = env.audit(&["-n", "shop", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc = json(&out);
    let names: Vec<String> = rows(&doc).into_iter().map(|r| r.1).collect();
    assert_eq!(
        names,
        ["Deployment/web", "Deployment/batch", "Pod/ok", "Pod/tool"]
    );
    for r in doc["violations"].as_array().unwrap() {
        let message = r["message"].as_str().unwrap();
        assert!(message.contains("could not be verified"), "{message}");
    }
}

/// Issue 18's tag race, seen by the audit: `team/app:v1` was signed, admitted and pulled, then
/// re-pushed unsigned. The audit verifies what each pod reports it runs
/// (`status.containerStatuses[].imageID`), not what the tag names now.
#[test]
fn the_audit_verifies_the_digest_a_pod_runs() {
    use common::registry::{Registry, TestSigner};
    use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let registry = runtime.block_on(Registry::start());
    let signer = TestSigner::new();
    let host = registry.host();
    let (signed, unsigned) = runtime.block_on(async {
        let signed = registry.push_image("team/app", "v1", "release v1").await;
        registry.sign_image("team/app", &signed, &[&signer]).await;
        let unsigned = registry.push_image("team/app", "v1", "re-pushed v1").await;
        (signed, unsigned)
    });
    let tag = format!("{host}/team/app:v1");
    let running = |mut pod: Pod, digest: &str| {
        pod.spec.as_mut().unwrap().containers[0].image = Some(tag.clone());
        pod.status = Some(PodStatus {
            container_statuses: Some(vec![ContainerStatus {
                name: "app".into(),
                image: tag.clone(),
                image_id: format!("{host}/team/app@{digest}"),
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        });
        pod
    };
    let mut c = Cluster::new();
    let shop = c.ns("shop");
    let labels = [("app", "legacy")];
    let mut legacy = deployment("legacy", "shop", &labels, CLEAN);
    legacy
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some(tag.clone());
    shop.deployments.push(legacy);
    let mut rs = replica_set(
        owned_meta::<Deployment>("legacy-1", "shop", &labels, "legacy"),
        &labels,
        CLEAN,
    );
    let rs_spec = rs.spec.as_mut().unwrap().template.as_mut().unwrap();
    rs_spec.spec.as_mut().unwrap().containers[0].image = Some(tag.clone());
    shop.replicasets.push(rs);
    for (i, digest) in [&signed, &unsigned, &unsigned].into_iter().enumerate() {
        let meta = owned_meta::<ReplicaSet>(&format!("legacy-1-{i}"), "shop", &labels, "legacy-1");
        shop.pods.push(running(pod(meta, CLEAN), digest));
    }
    shop.pods
        .push(running(pod(meta("old", "shop", &[]), CLEAN), &signed));
    shop.pods
        .push(running(pod(meta("racer", "shop", &[]), CLEAN), &unsigned));
    let env = Env::with_policies(c, &signed_images_policy(&host, &signer.public_key_pem()));

    let out = env.audit(&["-n", "shop", "-o", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc = json(&out);
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
    let env = Env::new(cluster());
    let metrics = Arc::new(portier::metrics::Metrics::new());
    let store = portier::reload::PolicyStore::open(
        &env.dir.path().join("policies"),
        false,
        Arc::clone(&metrics),
    )
    .unwrap();
    let connection = portier::audit::client(&portier::audit::Connect {
        kubeconfig: Some(env.dir.path().join("kubeconfig")),
        ..portier::audit::Connect::default()
    })
    .await
    .unwrap();
    let options = PeriodicOptions {
        interval: std::time::Duration::from_secs(3600),
        page_size: 2,
        reports: Some(1000),
    };
    let images = portier::images::Verifier::new(Arc::clone(&metrics));
    run_once(
        connection.client.clone(),
        &store,
        &metrics,
        &images,
        &options,
    )
    .await;
    let text = metrics.render();
    let g = |ns, policy, check| gauge(&text, ns, policy, check);
    assert_eq!(
        g("shop", "disallow-privileged", "privileged").as_deref(),
        Some("3"),
        "{text}"
    );
    assert_eq!(
        g("shop", "require-run-as-non-root", "run-as-non-root").as_deref(),
        Some("1")
    );
    assert_eq!(
        g("shop", "disallow-host-namespaces", "host-namespaces").as_deref(),
        Some("1")
    );
    assert_eq!(
        g("team-b", "require-run-as-non-root", "run-as-non-root").as_deref(),
        Some("1")
    );
    assert_eq!(
        g("team-b", "disallow-privileged", "privileged"),
        None,
        "only what was found"
    );
    assert!(text.contains("portier_audit_workloads 8"), "{text}");
    assert!(
        text.contains(r#"portier_audit_runs_total{result="complete"} 1"#),
        "{text}"
    );
    assert_eq!(env.server.policy_reports().len(), 2, "reports written too");

    // The debug pod is deleted: its two violations disappear from the gauges.
    env.server.with_cluster(|c| {
        c.ns("shop")
            .pods
            .retain(|p| p.metadata.name.as_deref() != Some("debug"))
    });
    run_once(
        connection.client.clone(),
        &store,
        &metrics,
        &images,
        &options,
    )
    .await;
    let text = metrics.render();
    assert_eq!(
        gauge(&text, "shop", "disallow-privileged", "privileged").as_deref(),
        Some("2")
    );
    assert_eq!(
        gauge(&text, "shop", "disallow-host-namespaces", "host-namespaces"),
        None,
        "{text}"
    );

    // A run that cannot list anything leaves the last results and counts a failure.
    env.server.with_cluster(|c| c.forbid_namespace_list = true);
    run_once(connection.client, &store, &metrics, &images, &options).await;
    let after = metrics.render();
    assert!(
        after.contains(r#"portier_audit_runs_total{result="failed"} 1"#),
        "{after}"
    );
    assert_eq!(
        gauge(&after, "shop", "disallow-privileged", "privileged").as_deref(),
        Some("2")
    );
}

#[test]
fn serve_with_an_audit_interval_exports_the_gauges() {
    let env = Env::new(cluster());
    let pki = common::TestPki::new();
    let cert = env.dir.path().join("tls.crt");
    let key = env.dir.path().join("tls.key");
    std::fs::write(&cert, &pki.cert_pem).unwrap();
    common::write_private(&key, &pki.key_pem);
    let kubeconfig = env.dir.path().join("kubeconfig");
    let policies = env.dir.path().join("policies");
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
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    let done = server
        .wait_for_line(|l| l.contains("periodic audit done"))
        .expect("the first audit runs at start");
    let done: Value = serde_json::from_str(&done).unwrap();
    assert_eq!(done["violations"], 6);
    assert_eq!(done["namespaces"], 2);
    let text = scrape(&server.metrics_addr);
    assert_eq!(
        gauge(&text, "shop", "disallow-privileged", "privileged").as_deref(),
        Some("3"),
        "{text}"
    );
    assert!(
        env.server.requests().iter().all(|r| r.method == "GET"),
        "no reports unless asked"
    );
    let (code, _) = server.terminate();
    assert_eq!(code, Some(0));
}

/// Scale run, not part of `cargo test` (it takes about a minute on 2 cores):
/// `cargo test --release --test audit -- --ignored scale --nocapture`.
/// 100 namespaces x 1 000 pods (800 under 20 Deployments, 200 standalone) of about 6 KB of
/// JSON each, as real pods with status and last-applied annotations are, listed in pages of
/// 500 from the stand-in, which makes each page on the fly; prints the throughput and the audit
/// process's peak RSS. The stand-in shares the machine with the audit.
#[test]
#[ignore]
fn scale_100k_pods() {
    scale("scale", POLICIES, |_| None);
}

/// The scale run with a `signed-images` policy judging every image: 21 signed images in a real
/// registry (one per Deployment, one for the standalone pods), verified on the first pages and
/// read from the verifier's cache after that, so this measures the first pass's cost:
/// `cargo test --release --test audit -- --ignored scale --nocapture`.
#[test]
#[ignore]
fn scale_100k_pods_signed_images() {
    use common::registry::{Registry, TestSigner};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let registry = runtime.block_on(Registry::start());
    let signer = TestSigner::new();
    let host = registry.host();
    runtime.block_on(async {
        for repo in (0..20)
            .map(|d| format!("team/app-{d}"))
            .chain(["team/solo".into()])
        {
            let digest = registry.push_image(&repo, "v1", &repo).await;
            registry.sign_image(&repo, &digest, &[&signer]).await;
        }
    });
    let policies = format!(
        "{POLICIES}---\n{}",
        signed_images_policy(&host, &signer.public_key_pem())
    );
    scale("scale (signed-images)", &policies, move |deployment| {
        Some(match deployment {
            Some(d) => format!("{host}/team/app-{d}:v1"),
            None => format!("{host}/team/solo:v1"),
        })
    });
}

/// 100 namespaces x 1 000 pods (see [`scale_100k_pods`]); `image(Some(d))` is the image of
/// Deployment `d` and its pods, `image(None)` that of the standalone pods (`None`: the
/// default image).
fn scale(
    label: &str,
    policies: &str,
    image: impl Fn(Option<usize>) -> Option<String> + Send + Sync + 'static,
) {
    use std::sync::Arc;
    let image = Arc::new(image);
    const NAMESPACES: usize = 100;
    const PODS: usize = 1000;
    const DEPLOYMENTS: usize = 20;
    const PER_DEPLOYMENT: usize = 40;
    let mut c = Cluster::new();
    for n in 0..NAMESPACES {
        let ns_name = format!("ns-{n:03}");
        let ns = c.ns(&ns_name);
        for d in 0..DEPLOYMENTS {
            let name = format!("app-{d}");
            let labels = [("app", name.as_str())];
            let flaws = if d.is_multiple_of(2) {
                PRIVILEGED
            } else {
                CLEAN
            };
            let mut d_object = deployment(&name, &ns_name, &labels, flaws);
            if let Some(image) = image(Some(d)) {
                d_object = with_image(d_object, &image, |d| {
                    d.spec.as_mut().unwrap().template.spec.as_mut().unwrap()
                });
            }
            ns.deployments.push(d_object);
            for rs in [format!("{name}-new"), format!("{name}-old")] {
                ns.replicasets.push(replica_set(
                    owned_meta::<Deployment>(&rs, &ns_name, &labels, &name),
                    &labels,
                    flaws,
                ));
            }
        }
        let namespace = ns_name.clone();
        let image = Arc::clone(&image);
        ns.generated_pods = Some((
            PODS,
            Arc::new(move |i| {
                let deployment = (i < DEPLOYMENTS * PER_DEPLOYMENT).then_some(i / PER_DEPLOYMENT);
                let mut p = weighty({
                    let name = format!("pod-{i}");
                    if i < DEPLOYMENTS * PER_DEPLOYMENT {
                        let d = i / PER_DEPLOYMENT;
                        let app = format!("app-{d}");
                        let flaws = if d.is_multiple_of(2) {
                            PRIVILEGED
                        } else {
                            CLEAN
                        };
                        pod(
                            owned_meta::<ReplicaSet>(
                                &name,
                                &namespace,
                                &[("app", &app)],
                                &format!("{app}-new"),
                            ),
                            flaws,
                        )
                    } else {
                        let flaws = if i.is_multiple_of(10) { ROOT } else { CLEAN };
                        pod(meta(&name, &namespace, &[("app", "solo")]), flaws)
                    }
                });
                if let Some(image) = image(deployment) {
                    p.spec.as_mut().unwrap().containers[0].image = Some(image);
                }
                p
            }),
        ));
    }
    let env = Env::with_policies(c, policies);
    let sample = serde_json::to_vec(
        &(env.server.with_cluster(|c| {
            let (_, make) = c.ns("ns-000").generated_pods.clone().unwrap();
            make(0)
        })),
    )
    .unwrap()
    .len();
    let out_path = env.dir.path().join("out.json");
    let started = std::time::Instant::now();
    let mut child = Command::new(BIN)
        .arg("audit")
        .arg("--policies")
        .arg(env.dir.path().join("policies"))
        .arg("--kubeconfig")
        .arg(env.dir.path().join("kubeconfig"))
        .args(["-A", "-o", "json"])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_path)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    let summary = &doc["summary"];
    let pods =
        summary["covered_pods"].as_u64().unwrap() + summary["standalone_pods"].as_u64().unwrap();
    assert_eq!(pods, (NAMESPACES * PODS) as u64);
    assert_eq!(summary["controllers"], NAMESPACES * DEPLOYMENTS);
    let objects = pods + (NAMESPACES * DEPLOYMENTS * 3) as u64;
    let requests = env.server.requests().len();
    println!(
        "{label}: {objects} objects ({pods} pods of {sample} bytes) in {NAMESPACES} namespaces, {requests} list calls, {:.2} s: {:.0} objects/s, {:.0} workloads judged/s; {} violations; peak RSS {:.1} MiB",
        elapsed.as_secs_f64(),
        objects as f64 / elapsed.as_secs_f64(),
        summary["workloads"].as_f64().unwrap() / elapsed.as_secs_f64(),
        summary["violations"],
        peak_kib as f64 / 1024.0
    );
}

/// Gives a generated pod the bulk of a real one: a last-applied-configuration annotation,
/// environment, volume mounts, probes' worth of fields, and a status with conditions.
fn weighty(mut p: k8s_openapi::api::core::v1::Pod) -> k8s_openapi::api::core::v1::Pod {
    use k8s_openapi::api::core::v1::{
        ContainerStatus, EnvVar, PodCondition, PodStatus, VolumeMount,
    };
    p.metadata.annotations = Some(
        [(
            "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
            "x".repeat(2500),
        )]
        .into(),
    );
    if let Some(spec) = p.spec.as_mut() {
        for c in &mut spec.containers {
            c.env = Some(
                (0..20)
                    .map(|i| EnvVar {
                        name: format!("SETTING_NUMBER_{i}"),
                        value: Some(format!("value-of-setting-{i}-for-this-service")),
                        ..EnvVar::default()
                    })
                    .collect(),
            );
            c.volume_mounts = Some(
                (0..4)
                    .map(|i| VolumeMount {
                        name: format!("volume-{i}"),
                        mount_path: format!("/var/lib/service/volume-{i}"),
                        ..VolumeMount::default()
                    })
                    .collect(),
            );
        }
    }
    p.status = Some(PodStatus {
        phase: Some("Running".to_owned()),
        pod_ip: Some("10.244.1.23".to_owned()),
        host_ip: Some("192.168.10.4".to_owned()),
        conditions: Some(
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
            ]
            .iter()
            .map(|t| PodCondition {
                type_: (*t).to_owned(),
                status: "True".to_owned(),
                ..PodCondition::default()
            })
            .collect(),
        ),
        container_statuses: Some(vec![ContainerStatus {
            name: "app".to_owned(),
            image: "registry.example.com/app:1".to_owned(),
            image_id: format!("registry.example.com/app@sha256:{}", "0".repeat(64)),
            container_id: Some(format!("containerd://{}", "f".repeat(64))),
            ready: true,
            restart_count: 0,
            started: Some(true),
            ..ContainerStatus::default()
        }]),
        ..PodStatus::default()
    });
    p
}
