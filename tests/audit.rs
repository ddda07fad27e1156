//! `portier audit` (the real binary) against a real kube-apiserver (`tests/k8s`): real lists and
//! `continue` tokens, real RBAC (each test audits as a user of its own, a client certificate,
//! with the chart's ClusterRole bound where the test says). Pagination and the requests made are
//! read back from the API server's audit log. The cluster each test audits is
//! `tests/k8s/audit_env.rs`.
//!
//! PolicyReports are in `tests/audit_reports.rs`; image signatures and the periodic audit of
//! `serve` in `tests/audit_images.rs`. What a real API server cannot be made to do on demand (a
//! namespace vanishing mid-scan, an expired `continue` token, a 500) is in
//! `tests/audit_standin.rs`.

mod common;
mod k8s;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::workloads::{PRIVILEGED, object_meta, pod};
use k8s::audit_env::{
    BIN, Call, Env, code, json_out, pair, rows, shop_rows, statuses, stderr, stdout,
};
use k8s::objects::create;
use k8s::rbac::{NAMESPACES_ROLE, grant, grant_partially};
use serde_json::Value;

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
