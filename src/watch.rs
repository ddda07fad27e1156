//! Watching files for change: inotify events (through `notify`) plus a slow poll as backup.
//!
//! Used for the policy directory and the TLS key pair. Both are often Kubernetes volumes,
//! whose updates are a rename of the `..data` symlink inside the mounted directory, so the
//! directories are watched (not the files) and the callback re-reads whatever it needs and
//! decides itself whether anything changed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Events arrive in bursts (a ConfigMap update is several renames): wait this long after the
/// first one before calling back.
const SETTLE: Duration = Duration::from_millis(100);

/// Keeps the watch alive; dropping it stops the watch.
pub struct Watcher {
    _watcher: notify::RecommendedWatcher,
    task: JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Calls `on_change` (on a blocking thread) after file events in any of `dirs`, and every
/// `poll` in case events are lost. Must be called inside a tokio runtime.
pub fn watch_dirs(
    dirs: &[PathBuf],
    poll: Duration,
    on_change: impl Fn() + Send + Sync + 'static,
) -> Result<Watcher, notify::Error> {
    let changed = Arc::new(Notify::new());
    let signal = Arc::clone(&changed);
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(e) if e.kind.is_access() => {}
            Ok(_) => signal.notify_one(),
            Err(e) => tracing::warn!(error = %e, "file watch error"),
        })?;
    let mut seen = Vec::new();
    for dir in dirs {
        if !seen.contains(dir) {
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
            seen.push(dir.clone());
        }
    }
    let on_change = Arc::new(on_change);
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                () = changed.notified() => tokio::time::sleep(SETTLE).await,
                () = tokio::time::sleep(poll) => {}
            }
            let on_change = Arc::clone(&on_change);
            // Reading and parsing files is blocking work: keep it off the request threads.
            let _ = tokio::task::spawn_blocking(move || on_change()).await;
        }
    });
    Ok(Watcher {
        _watcher: watcher,
        task,
    })
}
