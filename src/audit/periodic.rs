//! `portier serve --audit-interval`: the same scan, in the cluster, on a timer, exported as the
//! gauges `portier_audit_violations{namespace,policy,check}`.
//!
//! Each run judges every namespace with the policy set in force at its start (hot reloads
//! apply from the next run). Image signatures are verified with the webhook's own verifier, so
//! the audit and admission share one cache (and one registry backoff). The gauges are replaced as a whole after each run, so a fixed
//! violation disappears. A failed run is logged and counted and leaves the gauges as they were;
//! it never stops the webhook.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::task::JoinHandle;

use super::drive::{DriveError, ScanEvent, drive};
use super::report::ReportWriter;
use super::{AuditError, NamespaceResult, ScanOptions, Scanner, Scope, Summary};
use crate::images::Verifier;
use crate::metrics::{AuditRun, Metrics};
use crate::policy::PolicySet;
use crate::reload::PolicyStore;

#[derive(Debug, Clone)]
pub struct PeriodicOptions {
    pub interval: Duration,
    pub page_size: u32,
    /// Also write PolicyReports, with at most this many results each.
    pub reports: Option<usize>,
}

pub use crate::metrics::AuditCounts as Counts;

/// Adds one namespace's violations to `counts`.
pub fn count(ns: &NamespaceResult, counts: &mut Counts) {
    for (_, row) in ns.rows() {
        *counts
            .entry((ns.namespace.clone(), row.policy.clone(), row.check.clone()))
            .or_default() += 1;
    }
}

/// Runs one scan of every namespace, verifying image signatures with `images`, writes reports
/// if asked, and returns the counts.
pub async fn scan_once(
    client: Client,
    set: &PolicySet,
    page_size: u32,
    images: &Arc<Verifier>,
    reports: Option<&ReportWriter>,
) -> Result<(Summary, Counts), AuditError> {
    let options = ScanOptions {
        scope: Scope::All,
        selector: None,
        page_size,
        images: Some(Arc::clone(images)),
    };
    let scanner = Scanner::start(client, set, &options).await?;
    let mut counts = Counts::new();
    let driven = drive(scanner, set, reports, |event| {
        match event {
            ScanEvent::Next { .. } => {}
            ScanEvent::Stopped(e) => tracing::warn!("periodic audit: {e}"),
            ScanEvent::Scanned { ns, report } => {
                for note in &ns.notes {
                    tracing::info!(namespace = %ns.namespace, "periodic audit: {note}");
                }
                for p in &ns.problems {
                    tracing::warn!(namespace = %p.namespace, resource = %p.resource, "periodic audit: {}", p.message);
                }
                if let Some(note) = report {
                    tracing::warn!(namespace = %ns.namespace, "periodic audit: {note}");
                }
                count(ns, &mut counts);
            }
        }
        Ok::<(), std::convert::Infallible>(())
    })
    .await;
    match driven {
        Ok(driven) => Ok((driven.summary, counts)),
        Err(DriveError::Audit(e)) => Err(e),
        Err(DriveError::Caller(never)) => match never {},
    }
}

/// Starts the periodic audit in the background: the first run right away, then one every
/// `options.interval`. `images` is the webhook's verifier.
pub fn spawn(
    store: Arc<PolicyStore>,
    metrics: Arc<Metrics>,
    images: Arc<Verifier>,
    options: PeriodicOptions,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(options.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut client: Option<Client> = None;
        loop {
            ticker.tick().await;
            if client.is_none() {
                // The same configuration rules as `portier audit` without flags: $KUBECONFIG
                // or ~/.kube/config, then the in-cluster service account.
                match super::client(&super::Connect::default()).await {
                    Ok(connection) => client = Some(connection.client),
                    Err(e) => {
                        tracing::warn!("periodic audit: no Kubernetes client: {e}");
                        metrics.record_audit_run(AuditRun::Failed, None);
                        continue;
                    }
                }
            }
            let Some(c) = client.clone() else { continue };
            run_once(c, &store, &metrics, &images, &options).await;
        }
    })
}

/// One periodic run: scan, export, log.
pub async fn run_once(
    client: Client,
    store: &PolicyStore,
    metrics: &Metrics,
    images: &Arc<Verifier>,
    options: &PeriodicOptions,
) {
    let snapshot = store.current();
    let writer = options
        .reports
        .map(|max| ReportWriter::new(client.clone(), max));
    let started = std::time::Instant::now();
    match scan_once(
        client,
        &snapshot.set,
        options.page_size,
        images,
        writer.as_ref(),
    )
    .await
    {
        Ok((summary, counts)) => {
            let run = if summary.complete {
                AuditRun::Complete
            } else {
                AuditRun::Partial
            };
            metrics.record_audit_run(run, Some((&counts, summary.workloads)));
            tracing::info!(
                namespaces = summary.namespaces_total,
                complete = summary.namespaces_complete,
                workloads = summary.workloads,
                violations = summary.violations,
                seconds = started.elapsed().as_secs_f64(),
                "periodic audit done"
            );
        }
        Err(e) => {
            metrics.record_audit_run(AuditRun::Failed, None);
            tracing::warn!("periodic audit failed: {e}");
        }
    }
}
