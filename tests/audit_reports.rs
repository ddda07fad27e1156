//! `portier audit --report policyreport` against a real kube-apiserver (`tests/k8s`):
//! PolicyReports written by server-side apply into the CRDs of `deploy/crds/` and read back
//! through the API, reports left alone where the scan was incomplete, clear failures without the
//! CRD or with an older schema, and what the installed CRD refuses. The cluster each test audits
//! is `tests/k8s/audit_env.rs`.

mod common;
mod k8s;

use k8s::audit_env::{Call, Env, POLICIES, code, populate, stderr, stdout, stored_report};
use k8s::policy_reports::{
    CRDS, install_crds, reports, shipped_crds, shipped_crds_installed, try_source,
};
use k8s::rbac::{CHART_ROLE, REPORTS_ROLE, grant, grant_partially};
use k8s::{cluster, eventually};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// PolicyReports

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
