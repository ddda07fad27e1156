//! Printing an audit as it goes: one block of rows per namespace as soon as the namespace is
//! done (nothing is kept for the end but the summary), then the summary.
//!
//! - `table`: per namespace, one aligned row per violation; then a summary per policy, per
//!   namespace, the problems, and a closing line.
//! - `json`: one object, `{"violations": [...], "summary": {...}}`, written incrementally.
//! - `yaml`: the same document as YAML.

use std::io::{self, Write};

use serde::Serialize;

use super::{ImageSignatures, NamespaceResult, Summary, WorkloadResult};
use crate::row::Row;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// One violation as `-o json` / `-o yaml` print it: the fields of `portier check`'s rows, plus
/// the number of pods the workload stands for.
#[derive(Debug, Serialize)]
pub struct OutRow<'a> {
    #[serde(flatten)]
    pub row: &'a Row,
    pub pods: u32,
}

/// Writes an audit to `out` in `format`, namespace by namespace.
pub struct Printer<W: Write> {
    format: Format,
    out: W,
    rows: u64,
}

impl<W: Write> Printer<W> {
    pub fn new(format: Format, out: W) -> Self {
        Printer {
            format,
            out,
            rows: 0,
        }
    }

    /// Prints the violations of one namespace.
    pub fn namespace(&mut self, ns: &NamespaceResult) -> io::Result<()> {
        match self.format {
            Format::Table => self.table_block(ns)?,
            Format::Json => {
                for (judged, row) in ns.rows() {
                    self.out.write_all(if self.rows == 0 {
                        b"{\"violations\":[\n"
                    } else {
                        b",\n"
                    })?;
                    serde_json::to_writer(&mut self.out, &out_row(judged, row))?;
                    self.rows += 1;
                }
            }
            Format::Yaml => {
                let rows: Vec<OutRow> = ns.rows().map(|(j, r)| out_row(j, r)).collect();
                if !rows.is_empty() {
                    if self.rows == 0 {
                        self.out.write_all(b"violations:\n")?;
                    }
                    self.out.write_all(to_yaml(&rows)?.as_bytes())?;
                    self.rows += rows.len() as u64;
                }
            }
        }
        self.out.flush()
    }

    fn table_block(&mut self, ns: &NamespaceResult) -> io::Result<()> {
        let rows: Vec<[String; 9]> = ns
            .rows()
            .map(|(judged, r)| {
                [
                    scope_name(&r.namespace).to_owned(),
                    format!("{}/{}", r.kind, r.name),
                    judged.pods.to_string(),
                    r.policy.clone(),
                    r.mode.clone(),
                    r.check.clone(),
                    r.container.clone().unwrap_or_else(|| "-".into()),
                    r.path.clone(),
                    r.message.clone(),
                ]
            })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        if self.rows > 0 {
            self.out.write_all(b"\n")?;
        }
        self.rows += rows.len() as u64;
        let header = [
            "NAMESPACE",
            "RESOURCE",
            "PODS",
            "POLICY",
            "MODE",
            "CHECK",
            "CONTAINER",
            "PATH",
            "MESSAGE",
        ];
        self.out
            .write_all(crate::table::render(&header, &rows).as_bytes())
    }

    /// Prints the summary and ends the document.
    pub fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        match self.format {
            Format::Table => {
                let text = render_summary(summary);
                if self.rows > 0 {
                    self.out.write_all(b"\n")?;
                }
                self.out.write_all(text.as_bytes())?;
            }
            Format::Json => {
                self.out.write_all(if self.rows == 0 {
                    b"{\"violations\":[],\n"
                } else {
                    b"\n],\n"
                })?;
                self.out.write_all(b"\"summary\":")?;
                serde_json::to_writer_pretty(&mut self.out, summary)?;
                self.out.write_all(b"}\n")?;
            }
            Format::Yaml => {
                if self.rows == 0 {
                    self.out.write_all(b"violations: []\n")?;
                }
                #[derive(Serialize)]
                struct Tail<'a> {
                    summary: &'a Summary,
                }
                self.out.write_all(to_yaml(&Tail { summary })?.as_bytes())?;
            }
        }
        self.out.flush()
    }
}

fn out_row<'a>(judged: &WorkloadResult, row: &'a Row) -> OutRow<'a> {
    OutRow {
        row,
        pods: judged.pods,
    }
}

fn to_yaml<T: Serialize>(value: &T) -> io::Result<String> {
    serde_saphyr::to_string(value).map_err(|e| io::Error::other(e.to_string()))
}

/// The summary tables and the closing line of `-o table`.
pub fn render_summary(summary: &Summary) -> String {
    let mut out = String::new();
    let policies: Vec<[String; 6]> = summary
        .policies
        .iter()
        .map(|p| {
            [
                p.policy.clone(),
                p.mode.clone(),
                p.check.clone(),
                p.violations.to_string(),
                p.workloads.to_string(),
                p.pods.to_string(),
            ]
        })
        .collect();
    out.push_str(&crate::table::render(
        &["POLICY", "MODE", "CHECK", "VIOLATIONS", "WORKLOADS", "PODS"],
        &policies,
    ));
    let namespaces: Vec<[String; 5]> = summary
        .namespaces
        .iter()
        .map(|n| {
            [
                scope_name(&n.namespace).to_owned(),
                n.status.as_str().to_owned(),
                n.workloads.to_string(),
                n.pods.to_string(),
                n.violations.to_string(),
            ]
        })
        .collect();
    if !namespaces.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&crate::table::render(
            &["NAMESPACE", "STATUS", "WORKLOADS", "PODS", "VIOLATIONS"],
            &namespaces,
        ));
    }
    let problems: Vec<_> = summary.problems().collect();
    if !problems.is_empty() {
        out.push_str("\nProblems (the scan went on):\n");
        for p in problems {
            out.push_str(&format!(
                "  {}: {}: {}\n",
                scope_name(&p.namespace),
                p.resource,
                p.message
            ));
        }
    }
    if !summary.notes.is_empty() {
        out.push_str("\nNotes:\n");
        for note in &summary.notes {
            out.push_str(&format!("  {note}\n"));
        }
    }
    if let Some(why) = &summary.stopped {
        out.push_str(&format!("\nThe scan stopped early: {why}\n"));
    }
    if let Some(note) = image_signatures_note(summary) {
        out.push_str(&format!("\n{note}\n"));
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&closing_line(summary));
    out
}

/// What to say once when the `signed-images` policies were not checked.
pub fn image_signatures_note(summary: &Summary) -> Option<String> {
    if summary.image_signatures != Some(ImageSignatures::NotVerified) {
        return None;
    }
    let names: Vec<&str> = summary
        .policies
        .iter()
        .filter(|p| p.check == crate::policy::signed_images::ID)
        .map(|p| p.policy.as_str())
        .collect();
    Some(format!(
        "Image signatures were not verified (--no-verify-images): {} judged image references and digests only, no signature.",
        names.join(", ")
    ))
}

/// How a table names a namespace: the cluster-scoped objects' is `""`.
pub fn scope_name(namespace: &str) -> &str {
    match namespace {
        "" => "(cluster)",
        namespace => namespace,
    }
}

/// `4/5 namespace(s) scanned completely: ...`.
pub fn closing_line(summary: &Summary) -> String {
    // Said only when CEL policies selected objects of other kinds.
    let objects = match summary.objects {
        0 => String::new(),
        n => format!(", {n} other object(s) for CEL policies"),
    };
    format!(
        "{}/{} namespace(s) scanned completely; {} workload(s) judged ({} controller(s) covering {} pod(s), {} standalone pod(s){objects}); {} violation(s) in {} workload(s), every policy judged as enforce\n",
        summary.namespaces_complete,
        summary.namespaces_total,
        summary.workloads,
        summary.controllers,
        summary.covered_pods,
        summary.standalone_pods,
        summary.violations,
        summary.violating_workloads,
    )
}

/// A one-line progress indicator (`namespaces done / total`) that redraws itself in place, for
/// a terminal; silent when `enabled` is false (stderr is not a TTY).
pub struct Progress<W: Write> {
    out: W,
    enabled: bool,
    drawn: bool,
}

impl<W: Write> Progress<W> {
    pub fn new(out: W, enabled: bool) -> Self {
        Progress {
            out,
            enabled,
            drawn: false,
        }
    }

    /// Redraws the line: `done` of `total` namespaces, `current` being scanned next.
    pub fn update(&mut self, done: usize, total: usize, workloads: u64, current: Option<&str>) {
        if !self.enabled {
            return;
        }
        let next = current
            .map(|c| format!(", scanning {c}"))
            .unwrap_or_default();
        let _ = write!(
            self.out,
            "\r\x1b[2Kaudit: {done}/{total} namespace(s) done, {workloads} workload(s) judged{next}"
        );
        let _ = self.out.flush();
        self.drawn = true;
    }

    /// Prints a message on its own line (the progress line is redrawn on the next update).
    pub fn note(&mut self, message: &str) {
        self.clear();
        let _ = writeln!(self.out, "{message}");
    }

    /// Erases the progress line.
    pub fn clear(&mut self) {
        if self.drawn {
            let _ = write!(self.out, "\r\x1b[2K");
            let _ = self.out.flush();
            self.drawn = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_draws_in_place_only_when_enabled() {
        let mut buf = Vec::new();
        {
            let mut p = Progress::new(&mut buf, true);
            p.update(1, 3, 10, Some("shop"));
            p.note("warning: x");
            p.update(3, 3, 12, None);
            p.clear();
        }
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(
            text,
            "\r\x1b[2Kaudit: 1/3 namespace(s) done, 10 workload(s) judged, scanning shop\r\x1b[2Kwarning: x\n\
             \r\x1b[2Kaudit: 3/3 namespace(s) done, 12 workload(s) judged\r\x1b[2K"
        );
        let mut quiet = Vec::new();
        {
            let mut p = Progress::new(&mut quiet, false);
            p.update(1, 3, 10, None);
            p.clear();
        }
        assert!(quiet.is_empty());
    }
}

/// What `--report` did over a scan.
#[derive(Default)]
pub struct ReportTally {
    pub written: usize,
    pub failed: usize,
    pub kept: usize,
    pub cut: usize,
    /// Set after a failure no other namespace can escape (CRD missing, API gone).
    off: Option<String>,
}

impl ReportTally {
    /// Writes the report of `ns`; a message for the user when something is worth saying.
    pub async fn write(
        &mut self,
        writer: &super::report::ReportWriter,
        ns: &super::NamespaceResult,
    ) -> Option<String> {
        if self.off.is_some() {
            if ns.status == super::Status::Complete {
                self.failed += 1;
            }
            return None;
        }
        match writer.write(ns).await {
            Ok(written) => {
                self.written += 1;
                self.cut += written.cut;
                (written.cut > 0).then(|| {
                    format!(
                        "portier: PolicyReport {}/{}: {} result(s) written, {} more cut (--report-max-results); the summary counts them all",
                        ns.namespace, written.name, written.results, written.cut
                    )
                })
            }
            Err(e @ super::report::ReportError::Incomplete(_)) => {
                self.kept += 1;
                Some(format!("portier: namespace {}: {e}", ns.namespace))
            }
            Err(e) => {
                self.failed += 1;
                let message = format!(
                    "portier: PolicyReport for namespace {} not written: {e}",
                    ns.namespace
                );
                if e.is_fatal() {
                    self.off = Some(e.to_string());
                }
                Some(message)
            }
        }
    }

    /// The one line `--report` prints at the end.
    pub fn line(&self) -> String {
        format!(
            "portier: {} PolicyReport(s) written, {} not written, {} left as they were (incomplete scan){}",
            self.written,
            self.failed,
            self.kept,
            if self.cut > 0 {
                format!(", {} result(s) cut", self.cut)
            } else {
                String::new()
            }
        )
    }
}
