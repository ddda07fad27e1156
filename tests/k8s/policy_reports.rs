//! The PolicyReport CRDs of `deploy/crds/` on the test API server: installed once per test
//! binary and shared by the tests that write reports, or replaced by a test that needs another
//! schema (holding [`CRDS`] for writing meanwhile).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use super::{eventually, repo_yaml};

/// Whether the shipped CRDs are installed and served. Tests that write reports hold it for
/// reading; the test that removes and replaces the CRD holds it for writing.
pub static CRDS: tokio::sync::RwLock<bool> = tokio::sync::RwLock::const_new(false);

pub fn policy_report_resource() -> ApiResource {
    ApiResource {
        group: "wgpolicyk8s.io".into(),
        version: "v1alpha2".into(),
        api_version: "wgpolicyk8s.io/v1alpha2".into(),
        kind: "PolicyReport".into(),
        plural: "policyreports".into(),
    }
}

pub fn reports(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &policy_report_resource())
}

/// The CRD documents of `deploy/crds/policyreports.yaml`.
pub fn shipped_crds() -> Vec<Value> {
    repo_yaml("deploy/crds/policyreports.yaml")
}

/// A report with a `source` in its results, as portier writes, applied as a dry run:
/// whether the PolicyReport CRD in force accepts it (`Ok`), or the API server's refusal.
pub async fn try_source(admin: &Client, ns: &str) -> Result<(), kube::Error> {
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
pub async fn install_crds(admin: &Client, crds: &[Value], ns: &str, with_source: bool) {
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
pub async fn shipped_crds_installed(
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
