//! Typed objects from JSON, created in the namespace their metadata names, and the API server's
//! refusals.

use k8s_openapi::NamespaceResourceScope;
use kube::Client;
use kube::api::{Api, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub fn object<K: DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value).unwrap()
}

pub async fn create<K>(client: &Client, object: K) -> K
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

pub fn uid<K: kube::Resource>(object: &K) -> String {
    object.meta().uid.clone().unwrap()
}

/// The API server's refusal: (HTTP code, message).
pub fn refusal<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message),
        other => panic!("expected the API server to refuse, got {other:?}"),
    }
}
