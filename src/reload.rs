//! The policy set in force, and its hot reload.
//!
//! Requests read the current [`Snapshot`] through an `ArcSwap`: no lock, one atomic load. A
//! reload reads the whole directory, compiles and validates every policy, and only then swaps
//! the new snapshot in; a set that fails to load is logged and counted and never stored.
//!
//! The directory is watched (see [`crate::watch`]), which also sees a mounted ConfigMap's
//! update: the kubelet writes a new timestamped directory and renames the `..data` symlink
//! over the old one. Unchanged content (same fingerprint) is not reloaded.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus::IntCounter;

use crate::metrics::Metrics;
use crate::policy::{LoadError, PolicySet, Sources};
pub use crate::watch::Watcher;
use crate::watch::watch_dirs;

/// A loaded policy set and the metric handles that go with it.
pub struct Snapshot {
    pub set: PolicySet,
    /// One per policy, in set order: `portier_policy_decisions_total{policy,mode}`.
    pub decision_counters: Vec<IntCounter>,
    /// One per policy, in set order: `portier_policy_mutations_total{policy}`.
    pub mutation_counters: Vec<IntCounter>,
}

impl Snapshot {
    fn new(set: PolicySet, metrics: &Metrics) -> Snapshot {
        Snapshot {
            decision_counters: metrics.decision_counters(&set),
            mutation_counters: metrics.mutation_counters(&set),
            set,
        }
    }
}

/// What a reload did.
#[derive(Debug)]
pub enum Reloaded {
    /// The files are as they were.
    Unchanged,
    /// A new set with this many policies is in force.
    Swapped(usize),
}

pub struct PolicyStore {
    dir: PathBuf,
    allow_empty: bool,
    current: ArcSwap<Snapshot>,
    metrics: Arc<Metrics>,
    /// Serialises reloads (watcher and poll may fire together) and remembers the fingerprint
    /// of the last content that failed, so a broken file is reported once, not on every poll.
    /// Never taken by requests.
    reloading: Mutex<Option<u64>>,
}

impl PolicyStore {
    /// Loads `dir`; fails when it holds no valid set (an empty one counts as invalid unless
    /// `allow_empty`), so a webhook never comes up without its policies.
    pub fn open(
        dir: &Path,
        allow_empty: bool,
        metrics: Arc<Metrics>,
    ) -> Result<PolicyStore, LoadError> {
        let set = load(dir, allow_empty)?;
        metrics.record_reload(true, set.len());
        let snapshot = Snapshot::new(set, &metrics);
        Ok(PolicyStore {
            dir: dir.to_owned(),
            allow_empty,
            current: ArcSwap::from_pointee(snapshot),
            metrics,
            reloading: Mutex::new(None),
        })
    }

    /// The set in force. Lock-free; hold the guard only for the length of one request.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The set in force, held as long as the caller likes (a periodic audit holds it for a
    /// whole scan; requests use [`PolicyStore::snapshot`]).
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Re-reads the directory and swaps in the new set if it changed and is valid.
    pub fn reload(&self) -> Result<Reloaded, LoadError> {
        let mut last_failed = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let result = self.try_reload(&mut last_failed);
        match &result {
            Ok(Reloaded::Unchanged) => {}
            Ok(Reloaded::Swapped(n)) => {
                self.metrics.record_reload(true, *n);
                tracing::info!(policies = n, dir = %self.dir.display(), "policy set reloaded");
            }
            Err(e) => {
                self.metrics.record_reload(false, 0);
                tracing::error!(error = %e, dir = %self.dir.display(), "policy reload failed; the previous set stays in force");
            }
        }
        result
    }

    fn try_reload(&self, last_failed: &mut Option<u64>) -> Result<Reloaded, LoadError> {
        let sources = Sources::read_dir(&self.dir)?;
        // The policy files, and the files they read (keys, trusted roots, trust stores): a
        // rotated Secret is a change like an edited policy.
        let current = self.current.load();
        let external = current.set.external_files();
        let mut attempt = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&sources.fingerprint(), &mut attempt);
        for (path, _) in &external {
            std::hash::Hash::hash(&crate::policy::signed_images::file_hash(path), &mut attempt);
        }
        let attempt = std::hash::Hasher::finish(&attempt);
        let same_sources = sources.fingerprint() == current.set.fingerprint();
        if (same_sources && !current.set.external_files_changed()) || *last_failed == Some(attempt)
        {
            return Ok(Reloaded::Unchanged);
        }
        drop(current);
        let set = compile(&self.dir, &sources, self.allow_empty).inspect_err(|_| {
            *last_failed = Some(attempt);
        })?;
        *last_failed = None;
        let n = set.len();
        self.current
            .store(Arc::new(Snapshot::new(set, &self.metrics)));
        Ok(Reloaded::Swapped(n))
    }

    /// Watches the directory and reloads on change until the returned [`Watcher`] is dropped.
    /// `poll` is the backup interval for changes the file system does not report.
    pub fn watch(self: &Arc<Self>, poll: Duration) -> Result<Watcher, notify::Error> {
        let store = Arc::clone(self);
        // The directories of the files the policies read too (a mounted Secret swaps its
        // `..data` link there); ones added by later edits are caught by the poll.
        let mut dirs = vec![self.dir.clone()];
        for (path, _) in self.current.load().set.external_files() {
            if let Some(parent) = path.parent()
                && parent.is_dir()
                && !dirs.iter().any(|d| d == parent)
            {
                dirs.push(parent.to_owned());
            }
        }
        watch_dirs(&dirs, poll, move || {
            // The outcome is logged and counted by `reload`.
            let _ = store.reload();
        })
    }
}

fn load(dir: &Path, allow_empty: bool) -> Result<PolicySet, LoadError> {
    compile(dir, &Sources::read_dir(dir)?, allow_empty)
}

fn compile(dir: &Path, sources: &Sources, allow_empty: bool) -> Result<PolicySet, LoadError> {
    let set = sources.compile()?;
    if set.is_empty() && !allow_empty {
        return Err(LoadError::Empty {
            dir: dir.to_owned(),
        });
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVILEGED: &str = "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: np}\nspec: {check: privileged}\n";

    #[test]
    fn a_bad_set_never_replaces_a_good_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.yaml"), PRIVILEGED).unwrap();
        let metrics = Arc::new(Metrics::new());
        let store = PolicyStore::open(dir.path(), false, Arc::clone(&metrics)).unwrap();
        assert!(matches!(store.reload(), Ok(Reloaded::Unchanged)));

        std::fs::write(dir.path().join("p.yaml"), "spec: [broken").unwrap();
        assert!(store.reload().is_err());
        assert_eq!(store.snapshot().set.policies()[0].name, "np");
        // The same broken content is reported once, not again on every poll.
        assert!(matches!(store.reload(), Ok(Reloaded::Unchanged)));

        std::fs::remove_file(dir.path().join("p.yaml")).unwrap();
        assert!(matches!(store.reload(), Err(LoadError::Empty { .. })));
        assert_eq!(store.snapshot().set.len(), 1);

        let two = format!("{PRIVILEGED}---\n{}", PRIVILEGED.replace("np", "np2"));
        std::fs::write(dir.path().join("p.yaml"), two).unwrap();
        assert!(matches!(store.reload(), Ok(Reloaded::Swapped(2))));
        assert_eq!(store.snapshot().decision_counters.len(), 2);
        let text = metrics.render();
        assert!(
            text.contains(r#"portier_policy_reloads_total{result="failed"} 2"#),
            "{text}"
        );
        assert!(text.contains("portier_policies_loaded 2"), "{text}");
    }

    #[test]
    fn a_rotated_key_file_reloads_the_set_and_a_broken_one_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let keys = tempfile::tempdir().unwrap();
        let key_path = keys.path().join("cosign.pub");
        let pem = || {
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                .unwrap()
                .public_key_pem()
        };
        std::fs::write(&key_path, pem()).unwrap();
        let policy = format!(
            "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: s}}\nspec:\n  check: signed-images\n  params:\n    rules: [{{images: ['*'], keyFiles: [{}]}}]\n",
            key_path.display()
        );
        std::fs::write(dir.path().join("p.yaml"), policy).unwrap();
        let metrics = Arc::new(Metrics::new());
        let store = PolicyStore::open(dir.path(), false, metrics).unwrap();
        let cache_id = |store: &PolicyStore| match &store.snapshot().set.policies()[0].check {
            crate::policy::Check::SignedImages(p) => p.rules[0].requirement.cache_id,
            _ => unreachable!("a signed-images policy"),
        };
        let before = cache_id(&store);
        assert!(matches!(store.reload(), Ok(Reloaded::Unchanged)));
        // The Secret is rotated: the policy file is the same, the key is not.
        std::fs::write(&key_path, pem()).unwrap();
        assert!(matches!(store.reload(), Ok(Reloaded::Swapped(1))));
        assert_ne!(
            cache_id(&store),
            before,
            "no verdict under the old key is reused"
        );
        let rotated = cache_id(&store);
        // A broken key file is refused once and the rotated key stays in force.
        std::fs::write(&key_path, "not a key").unwrap();
        assert!(store.reload().is_err());
        assert!(matches!(store.reload(), Ok(Reloaded::Unchanged)));
        assert_eq!(cache_id(&store), rotated);
    }

    #[test]
    fn opening_an_invalid_or_empty_directory_fails() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        assert!(PolicyStore::open(dir.path(), false, Arc::clone(&metrics)).is_err());
        assert!(PolicyStore::open(dir.path(), true, Arc::clone(&metrics)).is_ok());
        assert!(PolicyStore::open(&dir.path().join("missing"), true, metrics).is_err());
    }
}
