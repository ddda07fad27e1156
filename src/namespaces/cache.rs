//! `serve`'s Namespace cache: a watch keeps a map of every Namespace current, and requests read
//! it through an `ArcSwap` (as they read the policy set, see `reload`): one atomic load and a
//! hash lookup, no lock, no allocation, never a wait.
//!
//! A namespace the map does not hold yet (created a moment ago, the watch not there yet) is read
//! once from the API, and remembered, by the request that needs it; concurrent requests for the
//! same namespace share that one read. Without any API access (no kubeconfig, no service
//! account) there is no cache: labels are unknown and policies that need them fail closed with
//! the reason given here.
//!
//! Writers (the watch, reads on a miss) copy the map and swap the copy in: namespaces change
//! rarely and the map holds `Arc`s, so a copy is cheap beside the requests it never blocks.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

use super::{LabelSource, NamespaceLabels};
use crate::labels::{Labels, NoLabels};
use crate::metrics::Metrics;

/// The namespaces known at one moment, by name.
#[derive(Debug, Default)]
pub struct Namespaces {
    map: HashMap<String, Arc<Namespace>>,
}

impl Namespaces {
    pub fn get(&self, name: &str) -> Option<&Arc<Namespace>> {
        self.map.get(name)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The labels of a Namespace object (none when it has none).
pub fn labels_of(namespace: &Namespace) -> &dyn Labels {
    match &namespace.metadata.labels {
        Some(labels) => labels,
        None => &NoLabels,
    }
}

/// One read of a namespace on a miss, shared by the requests waiting for it.
type Read = OnceCell<Result<Arc<Namespace>, String>>;

/// The cache, or the reason there is none.
pub struct NamespaceCache {
    current: ArcSwap<Namespaces>,
    client: Option<kube::Client>,
    /// Why the API cannot be used, when it cannot (said in every message that needs labels).
    no_api: Option<String>,
    metrics: Arc<Metrics>,
    /// Serialises writers (watch events, reads on a miss); requests never take it.
    writing: Mutex<()>,
    /// Reads on a miss in flight, by namespace, so concurrent misses share one GET.
    reading: Mutex<HashMap<String, Arc<Read>>>,
    /// Whether the watch has listed every namespace once.
    synced: AtomicBool,
}

/// What a request found out about its namespace: hold it while the request is judged, and
/// borrow [`Lookup::labels`] from it. A cache hit holds the snapshot it was found in (no copy,
/// no allocation).
pub enum Lookup<'a> {
    Cached(arc_swap::Guard<Arc<Namespaces>>, &'a str),
    Read(Arc<Namespace>),
    Unknown(Cow<'a, str>),
}

impl Lookup<'_> {
    /// The labels to judge with, and where they came from.
    pub fn labels(&self) -> NamespaceLabels<'_> {
        match self {
            Lookup::Cached(snapshot, name) => match snapshot.get(name) {
                Some(namespace) => NamespaceLabels::Known(labels_of(namespace), LabelSource::Cache),
                None => NamespaceLabels::Unknown("the namespace left the cache"),
            },
            Lookup::Read(namespace) => {
                NamespaceLabels::Known(labels_of(namespace), LabelSource::Api)
            }
            Lookup::Unknown(why) => NamespaceLabels::Unknown(why),
        }
    }

    /// The Namespace object, when one was found.
    pub fn namespace(&self) -> Option<&Namespace> {
        match self {
            Lookup::Cached(snapshot, name) => snapshot.get(name).map(|n| &**n),
            Lookup::Read(namespace) => Some(namespace),
            Lookup::Unknown(_) => None,
        }
    }
}

impl NamespaceCache {
    /// A cache fed from the API through `client` (start the watch with [`NamespaceCache::watch`]).
    pub fn new(client: kube::Client, metrics: Arc<Metrics>) -> Arc<NamespaceCache> {
        Arc::new(NamespaceCache::build(Some(client), None, metrics))
    }

    /// No API access: every lookup is unknown, for `why`.
    pub fn without_api(why: String, metrics: Arc<Metrics>) -> Arc<NamespaceCache> {
        Arc::new(NamespaceCache::build(None, Some(why), metrics))
    }

    fn build(client: Option<kube::Client>, no_api: Option<String>, metrics: Arc<Metrics>) -> Self {
        NamespaceCache {
            current: ArcSwap::from_pointee(Namespaces::default()),
            client,
            no_api,
            metrics,
            writing: Mutex::new(()),
            reading: Mutex::new(HashMap::new()),
            synced: AtomicBool::new(false),
        }
    }

    /// Why there is no API access, if there is none.
    pub fn no_api(&self) -> Option<&str> {
        self.no_api.as_deref()
    }

    /// The namespaces known now. Lock-free; hold the guard for one request only.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Namespaces>> {
        self.current.load()
    }

    /// Whether the watch has listed every namespace once.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Finds `name`: in the cache, else read from the API (until `deadline`) and remembered.
    pub async fn lookup<'a>(&'a self, name: &'a str, deadline: tokio::time::Instant) -> Lookup<'a> {
        let snapshot = self.snapshot();
        if snapshot.get(name).is_some() {
            return Lookup::Cached(snapshot, name);
        }
        drop(snapshot);
        if let Some(why) = &self.no_api {
            return Lookup::Unknown(Cow::Borrowed(why));
        }
        if name.is_empty() {
            return Lookup::Unknown(Cow::Borrowed("the request names no namespace"));
        }
        match tokio::time::timeout_at(deadline, self.read(name)).await {
            Ok(Ok(namespace)) => Lookup::Read(namespace),
            Ok(Err(why)) => Lookup::Unknown(Cow::Owned(why)),
            Err(_) => Lookup::Unknown(Cow::Owned(format!(
                "namespace {name:?} is not in the cache yet and reading it from the API took too long"
            ))),
        }
    }

    /// Reads one namespace from the API and remembers it; concurrent calls for one name share
    /// the read.
    async fn read(&self, name: &str) -> Result<Arc<Namespace>, String> {
        let Some(client) = &self.client else {
            return Err(self.no_api.clone().unwrap_or_default());
        };
        let cell = {
            let mut reading = self.reading.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(reading.entry(name.to_owned()).or_default())
        };
        let result = cell
            .get_or_init(|| async {
                let api: Api<Namespace> = Api::all(client.clone());
                match api.get(name).await {
                    Ok(namespace) => Ok(self.remember(namespace)),
                    Err(kube::Error::Api(status)) if status.code == 404 => {
                        Err(format!("namespace {name:?} does not exist"))
                    }
                    Err(e) => Err(format!(
                        "namespace {name:?} is not in the cache yet and cannot be read from the API: {}",
                        crate::audit::api::error_chain(&e)
                    )),
                }
            })
            .await
            .clone();
        let mut reading = self.reading.lock().unwrap_or_else(|p| p.into_inner());
        if reading.get(name).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            reading.remove(name);
        }
        result
    }

    /// Adds or replaces one namespace.
    fn remember(&self, namespace: Namespace) -> Arc<Namespace> {
        let namespace = Arc::new(slim(namespace));
        let Some(name) = namespace.metadata.name.clone() else {
            return namespace;
        };
        self.write(|map| {
            map.insert(name, Arc::clone(&namespace));
        });
        namespace
    }

    fn forget(&self, name: &str) {
        self.write(|map| {
            map.remove(name);
        });
    }

    fn write(&self, change: impl FnOnce(&mut HashMap<String, Arc<Namespace>>)) {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let mut map = self.current.load().map.clone();
        change(&mut map);
        self.store(map);
    }

    fn store(&self, map: HashMap<String, Arc<Namespace>>) {
        self.metrics.record_namespace_cache(map.len());
        self.current.store(Arc::new(Namespaces { map }));
    }

    /// Watches Namespaces until the returned task is aborted; a failed watch is retried with
    /// kube's backoff, the cache keeping what it knows meanwhile.
    pub fn watch(self: &Arc<Self>) -> Option<JoinHandle<()>> {
        let client = self.client.clone()?;
        let cache = Arc::clone(self);
        Some(tokio::spawn(async move { cache.run_watch(client).await }))
    }

    async fn run_watch(&self, client: kube::Client) {
        let api: Api<Namespace> = Api::all(client);
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        // A relist (at start and after the watch lost its place) builds a new map, swapped in
        // whole when it is complete: a namespace deleted meanwhile does not linger.
        let mut relist: Option<HashMap<String, Arc<Namespace>>> = None;
        let mut failures = 0u32;
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Init) => relist = Some(HashMap::new()),
                Ok(Event::InitApply(namespace)) => {
                    if let (Some(map), Some(name)) = (&mut relist, namespace.metadata.name.clone())
                    {
                        map.insert(name, Arc::new(slim(namespace)));
                    }
                }
                Ok(Event::InitDone) => {
                    if let Some(map) = relist.take() {
                        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
                        tracing::info!(namespaces = map.len(), "namespace cache synced");
                        self.store(map);
                    }
                    self.synced.store(true, Ordering::Release);
                }
                Ok(Event::Apply(namespace)) => {
                    self.remember(namespace);
                }
                Ok(Event::Delete(namespace)) => {
                    if let Some(name) = &namespace.metadata.name {
                        self.forget(name);
                    }
                }
                Err(e) => {
                    failures += 1;
                    // Said once, then every 30th time: the backoff retries for as long as it takes.
                    if failures == 1 || failures.is_multiple_of(30) {
                        tracing::warn!(
                            error = %crate::audit::api::error_chain(&e),
                            failures,
                            "the namespace watch failed; retrying (namespaces not cached are read from the API)"
                        );
                    }
                    continue;
                }
            }
            failures = 0;
            self.metrics.record_namespace_event();
        }
    }

    /// Waits (bounded) until the watch has listed every namespace once; for tests and start-up.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let until = tokio::time::Instant::now() + timeout;
        while !self.synced() {
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}

/// Drops what no policy reads and only costs memory: managed fields.
fn slim(mut namespace: Namespace) -> Namespace {
    namespace.metadata.managed_fields = None;
    namespace
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name,
                "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>(),
                "managedFields": [{"manager": "kubectl"}]
            }
        }))
        .unwrap()
    }

    fn far() -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn without_api_every_lookup_is_unknown_for_the_reason_given() {
        let cache = NamespaceCache::without_api("no kubeconfig".into(), Arc::new(Metrics::new()));
        assert!(cache.watch().is_none());
        let lookup = cache.lookup("shop", far()).await;
        assert!(matches!(
            lookup.labels(),
            NamespaceLabels::Unknown("no kubeconfig")
        ));
        assert!(lookup.namespace().is_none());
    }

    #[tokio::test]
    async fn remembered_namespaces_are_read_from_the_snapshot_until_forgotten() {
        let metrics = Arc::new(Metrics::new());
        let cache = NamespaceCache::without_api("none".into(), Arc::clone(&metrics));
        cache.remember(namespace("shop", &[("tier", "prod")]));
        cache.remember(namespace("bare", &[]));
        assert_eq!(cache.snapshot().len(), 2);
        assert!(
            metrics
                .render()
                .contains("portier_namespace_cache_namespaces 2")
        );
        let lookup = cache.lookup("shop", far()).await;
        let NamespaceLabels::Known(labels, LabelSource::Cache) = lookup.labels() else {
            panic!("cached");
        };
        assert_eq!(labels.label("tier").as_deref(), Some("prod"));
        assert!(
            lookup
                .namespace()
                .unwrap()
                .metadata
                .managed_fields
                .is_none(),
            "managed fields are not kept"
        );
        cache.remember(namespace("shop", &[("tier", "dev")]));
        let lookup = cache.lookup("shop", far()).await;
        assert_eq!(
            lookup.labels().labels().unwrap().label("tier").as_deref(),
            Some("dev")
        );
        cache.forget("shop");
        assert!(matches!(
            cache.lookup("shop", far()).await.labels(),
            NamespaceLabels::Unknown("none")
        ));
    }
}
