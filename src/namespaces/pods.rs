//! The pods of one namespace, listed from the API (paginated) for a Namespace write that
//! tightens its Pod Security `enforce` level: what upstream's `PodLister` gives
//! `EvaluatePodsInNamespace`.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use super::NamespaceCache;
use crate::policy::pss::namespace_write::ExistingPod;

/// Pods asked for per page: pages stay small, and a namespace of a few thousand pods takes
/// a handful of calls.
const PAGE: u32 = 500;

impl NamespaceCache {
    /// Every pod of `namespace`, until `until`.
    pub async fn list_pods(
        &self,
        namespace: &str,
        until: tokio::time::Instant,
    ) -> Result<Vec<ExistingPod>, String> {
        let Some(client) = &self.client else {
            return Err(self.no_api.clone().unwrap_or_default());
        };
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let listing = async {
            let mut pods = Vec::new();
            let mut params = ListParams::default().limit(PAGE);
            loop {
                let page = api
                    .list(&params)
                    .await
                    .map_err(|e| crate::audit::api::error_chain(&e))?;
                let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
                pods.extend(page.items.into_iter().map(existing));
                match next {
                    Some(token) => params = params.continue_token(&token),
                    None => return Ok(pods),
                }
            }
        };
        match tokio::time::timeout_at(until, listing).await {
            Ok(result) => result,
            Err(_) => Err(format!("listing the pods of {namespace:?} took too long")),
        }
    }
}

fn existing(pod: Pod) -> ExistingPod {
    let controller_uid = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.clone());
    ExistingPod {
        name: pod.metadata.name.clone().unwrap_or_default(),
        controller_uid,
        runtime_class: pod.spec.as_ref().and_then(|s| s.runtime_class_name.clone()),
        // A Pod the API server gave serializes; an empty text is judged as unreadable.
        json: serde_json::to_string(&pod).unwrap_or_default(),
    }
}
