//! The one loop that drives a scan to its end, for `portier audit` and for
//! `serve --audit-interval`: namespace after namespace, the PolicyReports written when asked,
//! the totals kept; the caller only says what to show (a progress line and a table, or logs and
//! gauges) through [`ScanEvent`]s.

use super::output::ReportTally;
use super::report::ReportWriter;
use super::{AuditError, NamespaceResult, Scanner, Summary};
use crate::policy::PolicySet;

/// What a driven scan reports as it goes.
pub enum ScanEvent<'a> {
    /// The namespace at position `done` of `total` is next (`None`: the scan is over);
    /// `workloads` were judged so far.
    Next {
        done: usize,
        total: usize,
        workloads: u64,
        namespace: Option<&'a str>,
    },
    /// A namespace was scanned; `report` says what writing its PolicyReport came to, when that
    /// is worth saying.
    Scanned {
        ns: &'a NamespaceResult,
        report: Option<String>,
    },
    /// The scan stopped early (the API server stopped answering in the middle): what was
    /// judged before stands.
    Stopped(&'a AuditError),
}

/// How a driven scan ended.
pub struct Driven {
    pub summary: Summary,
    /// What writing PolicyReports did (nothing without a writer).
    pub reports: ReportTally,
    /// Whether any list call succeeded.
    pub listed_any: bool,
}

/// Why a driven scan has no result.
#[derive(Debug, thiserror::Error)]
pub enum DriveError<E> {
    /// The API server could not be used at all.
    #[error(transparent)]
    Audit(AuditError),
    /// What the caller does with an event failed (e.g. a closed stdout).
    #[error("{0}")]
    Caller(E),
}

/// Scans every namespace of `scanner`, writing each one's PolicyReport with `reports` when
/// given, and tells `on` what happened. An unusable API server is an error; one that stops
/// answering midway ends the scan with what was judged (`summary.stopped`).
pub async fn drive<E>(
    mut scanner: Scanner<'_>,
    set: &PolicySet,
    reports: Option<&ReportWriter>,
    mut on: impl FnMut(ScanEvent<'_>) -> Result<(), E>,
) -> Result<Driven, DriveError<E>> {
    let total = scanner.namespaces().len();
    let mut summary = Summary::new(set, total);
    summary.image_signatures = scanner.image_signatures();
    summary.notes = scanner.notes().to_vec();
    let mut tally = ReportTally::default();
    let mut listed_any = false;
    loop {
        let done = scanner.done();
        on(ScanEvent::Next {
            done,
            total,
            workloads: summary.workloads,
            namespace: scanner.namespaces().get(done).map(String::as_str),
        })
        .map_err(DriveError::Caller)?;
        let ns = match scanner.next_namespace().await {
            Ok(Some(ns)) => ns,
            Ok(None) => break,
            Err(e @ AuditError::Unreachable(_)) => return Err(DriveError::Audit(e)),
            Err(e) => {
                on(ScanEvent::Stopped(&e)).map_err(DriveError::Caller)?;
                summary.stop(e.to_string());
                break;
            }
        };
        listed_any |= ns.lists_ok > 0;
        let report = match reports {
            Some(writer) => tally.write(writer, &ns).await,
            None => None,
        };
        on(ScanEvent::Scanned { ns: &ns, report }).map_err(DriveError::Caller)?;
        summary.add(&ns);
    }
    Ok(Driven {
        summary,
        reports: tally,
        listed_any,
    })
}
