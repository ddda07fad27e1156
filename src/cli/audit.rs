//! `portier audit`: the dry run over what already runs in a cluster.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::ValueEnum;

use super::{EXIT_USAGE, EXIT_VIOLATION, ReportKind};
use portier::audit::drive::{DriveError, Driven, ScanEvent, drive};
use portier::audit::output::{Format, Printer, Progress, scope_name};
use portier::audit::report::ReportWriter;
use portier::audit::{self, AuditError, ScanOptions, Scanner, Scope};
use portier::images::Verifier;
use portier::metrics::Metrics;
use portier::policy::PolicySet;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Directory of policy files.
    #[arg(long)]
    pub policies: PathBuf,
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then the in-cluster service
    /// account).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use instead of the current one.
    #[arg(long)]
    pub context: Option<String>,
    /// Namespace to scan (repeatable); default: the context's namespace.
    #[arg(short = 'n', long = "namespace", conflicts_with = "all_namespaces")]
    pub namespaces: Vec<String>,
    /// Scan every namespace (needs list on namespaces).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector passed to every list call (e.g. app=web,tier!=cache).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = AuditOutput::Table)]
    pub output: AuditOutput,
    /// Exit 1 when anything violates a policy (whatever its mode).
    #[arg(long)]
    pub fail_on_violation: bool,
    /// Objects per list call (the API's limit parameter).
    #[arg(long, default_value_t = audit::DEFAULT_PAGE_SIZE, value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: u32,
    /// Also write the results into the cluster: policyreport writes one
    /// wgpolicyk8s.io/v1alpha2 PolicyReport per namespace (not with --selector, which would
    /// drop the findings it does not select).
    #[arg(long, value_enum, conflicts_with = "selector")]
    pub report: Option<ReportKind>,
    /// At most this many results per PolicyReport; the rest are counted in its summary.
    #[arg(long, default_value_t = audit::report::DEFAULT_MAX_RESULTS as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub report_max_results: u32,
    /// How long one API call may take.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Do not verify image signatures (no registry access): signed-images policies then
    /// report nothing, and the summary says so.
    #[arg(long)]
    pub no_verify_images: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AuditOutput {
    Table,
    Json,
    Yaml,
}

pub fn run(args: AuditArgs) -> Result<ExitCode> {
    let set = PolicySet::from_dir(&args.policies)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(audit_cluster(args, &set))
}

async fn audit_cluster(args: AuditArgs, set: &PolicySet) -> Result<ExitCode> {
    use std::io::IsTerminal;
    let audit::Connection { client, server } = audit::client(&audit::Connect {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        timeout: Some(args.request_timeout),
    })
    .await?;
    let scope = if args.all_namespaces {
        Scope::All
    } else if args.namespaces.is_empty() {
        Scope::Namespaces(vec![client.default_namespace().to_owned()])
    } else {
        Scope::Namespaces(args.namespaces.clone())
    };
    let options = ScanOptions {
        scope,
        selector: args.selector.clone(),
        page_size: args.page_size,
        images: (!args.no_verify_images).then(|| Verifier::new(Arc::new(Metrics::new()))),
    };
    let scanner = match Scanner::start(client.clone(), set, &options).await {
        Ok(scanner) => scanner,
        Err(AuditError::Unreachable(failure)) => {
            anyhow::bail!("{} (API server {server})", audit::unusable(&failure))
        }
        Err(e) => return Err(e.into()),
    };
    let total = scanner.namespaces().len();
    let writer = args
        .report
        .map(|_| ReportWriter::new(client, args.report_max_results as usize));
    let format = match args.output {
        AuditOutput::Table => Format::Table,
        AuditOutput::Json => Format::Json,
        AuditOutput::Yaml => Format::Yaml,
    };
    let mut printer = Printer::new(format, std::io::BufWriter::new(std::io::stdout().lock()));
    let stderr = std::io::stderr();
    let mut progress = Progress::new(stderr.lock(), stderr.is_terminal());
    let driven = drive(scanner, set, writer.as_ref(), |event| match event {
        ScanEvent::Next {
            done,
            total,
            workloads,
            namespace,
        } => {
            progress.update(done, total, workloads, namespace);
            Ok(())
        }
        ScanEvent::Stopped(e) => {
            progress.note(&format!("portier: {e}; printing what was judged before"));
            Ok(())
        }
        ScanEvent::Scanned { ns, report } => {
            for note in &ns.notes {
                let scope = scope_name(&ns.namespace);
                progress.note(&format!("portier: namespace {scope}: {note}"));
            }
            for p in &ns.problems {
                progress.note(&format!(
                    "portier: namespace {}: {}: {}",
                    scope_name(&p.namespace),
                    p.resource,
                    p.message
                ));
            }
            if let Some(note) = report {
                progress.note(&note);
            }
            // The rows may go to the same terminal as the progress line.
            progress.clear();
            printer.namespace(ns)
        }
    })
    .await;
    progress.clear();
    let Driven {
        summary,
        reports,
        listed_any,
    } = match driven {
        Ok(driven) => driven,
        Err(DriveError::Audit(AuditError::Unreachable(failure))) => {
            anyhow::bail!("{} (API server {server})", audit::unusable(&failure));
        }
        Err(e) => return Err(e.into()),
    };
    printer.finish(&summary)?;
    if writer.is_some() {
        eprintln!("{}", reports.line());
    }
    if total > 0 && !listed_any {
        eprintln!(
            "portier: nothing could be listed in {total} namespace(s): see the problems above"
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    if writer.is_some() && reports.written == 0 && reports.failed > 0 {
        eprintln!("portier: no PolicyReport could be written");
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    Ok(if args.fail_on_violation && summary.violations > 0 {
        ExitCode::from(EXIT_VIOLATION)
    } else {
        ExitCode::SUCCESS
    })
}
