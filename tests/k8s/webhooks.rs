//! `portier serve` behind the test API server: registered with the webhook configurations the
//! Helm chart renders (`deploy/portier.yaml`), pointed at its own address and narrowed to one
//! test's namespaces, live once the API server has called it.

use std::path::PathBuf;

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, PostParams};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::objects::object;
use super::{Cluster, cluster, deployed, eventually, test_label};
use crate::common::metrics::{requests, scrape};
use crate::common::{ServeProcess, TestPki, write_private};

/// A running `portier serve` whose webhooks the API server calls for one namespace.
pub struct Portier {
    pub cluster: &'static Cluster,
    pub client: Client,
    pub ns: String,
    process: Option<ServeProcess>,
    dir: tempfile::TempDir,
    /// https://127.0.0.1:PORT
    pub url: String,
}

/// The policy files of the chart's ConfigMap (the default set of `deploy/portier.yaml`).
pub fn chart_policies() -> Vec<(String, String)> {
    let config_map = deployed("ConfigMap", "portier-policies");
    config_map["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, text)| (name.clone(), text.as_str().unwrap().to_owned()))
        .collect()
}

impl Portier {
    /// A new namespace `prefix-N`, a portier serving `policies` and both webhook
    /// configurations, live once the API server has called /mutate and /validate.
    pub async fn start(prefix: &str, policies: &[(String, String)]) -> Portier {
        Portier::start_with(prefix, policies, &[]).await
    }

    /// [`Portier::start`] with the chart's default policy set, reading namespaces through the
    /// API as the chart's portier does through its service account (the PSA-compatible preset
    /// reads namespace labels).
    pub async fn start_as_chart(prefix: &str) -> Portier {
        let kubeconfig = cluster().kubeconfig.to_str().unwrap().to_owned();
        Portier::start_with(prefix, &chart_policies(), &["--kubeconfig", &kubeconfig]).await
    }

    /// [`Portier::start`] with more arguments for `portier serve`.
    pub async fn start_with(prefix: &str, policies: &[(String, String)], args: &[&str]) -> Portier {
        let cluster = cluster();
        let client = cluster.client().await;
        let ns = cluster.namespace(&client, prefix).await;
        let dir = tempfile::tempdir().unwrap();
        let policy_dir = dir.path().join("policies");
        std::fs::create_dir(&policy_dir).unwrap();
        for (name, text) in policies {
            std::fs::write(policy_dir.join(name), text).unwrap();
        }
        let pki = TestPki::new();
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        std::fs::write(&cert, &pki.cert_pem).unwrap();
        write_private(&key, &pki.key_pem);
        let mut all_args = vec![
            "--policies",
            policy_dir.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ];
        all_args.extend_from_slice(args);
        let process = ServeProcess::start(&all_args);
        let url = format!("https://{}", process.addr);
        let portier = Portier {
            cluster,
            client,
            ns,
            process: Some(process),
            dir,
            url,
        };
        portier.register(&pki.ca_pem).await;
        portier.wait_live().await;
        portier
    }

    pub fn policy_dir(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    pub fn config_name(&self) -> String {
        format!("portier-{}", self.ns)
    }

    /// The chart's configuration of `kind`, pointed at this portier and narrowed to this
    /// test's namespaces.
    fn configuration<K: DeserializeOwned>(&self, kind: &str, ca_pem: &str) -> K {
        let mut doc = deployed(kind, "portier");
        doc["metadata"] = json!({"name": self.config_name()});
        let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
        for hook in doc["webhooks"].as_array_mut().unwrap() {
            let path = hook["clientConfig"]["service"]["path"]
                .as_str()
                .unwrap()
                .to_owned();
            hook["clientConfig"] =
                json!({"url": format!("{}{path}", self.url), "caBundle": ca_bundle});
            hook["namespaceSelector"]["matchExpressions"]
                .as_array_mut()
                .unwrap()
                .push(json!({"key": test_label(&self.ns), "operator": "Exists"}));
        }
        serde_json::from_value(doc).unwrap()
    }

    async fn register(&self, ca_pem: &str) {
        let pp = PostParams::default();
        let mutating: MutatingWebhookConfiguration =
            self.configuration("MutatingWebhookConfiguration", ca_pem);
        Api::<MutatingWebhookConfiguration>::all(self.client.clone())
            .create(&pp, &mutating)
            .await
            .unwrap();
        let validating: ValidatingWebhookConfiguration =
            self.configuration("ValidatingWebhookConfiguration", ca_pem);
        Api::<ValidatingWebhookConfiguration>::all(self.client.clone())
            .create(&pp, &validating)
            .await
            .unwrap();
    }

    /// Waits until the API server calls both webhooks: it reads new configurations through
    /// an informer, so they apply a moment after they are created. The probes are dry runs,
    /// which webhooks with `sideEffects: None` see like any request.
    async fn wait_live(&self) {
        let pods = self.pods();
        let dry = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        let probe: Pod = object(json!({
            "metadata": {"name": "probe"},
            "spec": {"containers": [{"name": "c", "image": "registry.example.com/probe:1"}]}
        }));
        eventually(
            "the API server to call portier's /mutate and /validate",
            || {
                let pods = pods.clone();
                let probe = probe.clone();
                let dry = dry.clone();
                async move {
                    let _ = pods.create(&dry, &probe).await;
                    let metrics = self.metrics();
                    (requests(&metrics, "mutate") > 0 && requests(&metrics, "validate") > 0)
                        .then_some(())
                }
            },
        )
        .await;
    }

    pub fn metrics(&self) -> String {
        scrape(&self.process.as_ref().unwrap().metrics_addr)
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Stops portier (SIGTERM); its webhook configurations stay registered.
    pub fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            let (code, log) = process.terminate();
            assert_eq!(code, Some(0), "{}", log.join("\n"));
        }
    }

    /// Removes the webhook configurations (a failed test leaves them: they select only its
    /// own namespaces).
    pub async fn unregister(&self) {
        let dp = kube::api::DeleteParams::default();
        Api::<MutatingWebhookConfiguration>::all(self.client.clone())
            .delete(&self.config_name(), &dp)
            .await
            .unwrap();
        Api::<ValidatingWebhookConfiguration>::all(self.client.clone())
            .delete(&self.config_name(), &dp)
            .await
            .unwrap();
    }
}
