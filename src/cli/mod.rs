//! The command line: one argument struct and one file per command (`serve`, `check`,
//! `audit`, and the developer tools `bench` and `dev-cert`).

mod audit;
mod check;
mod dev;
mod serve;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

/// `check` found something an enforce policy denies; `audit --fail-on-violation` found a
/// violation.
pub const EXIT_VIOLATION: u8 = 1;
/// A usage, input or start-up error; an audit that could list nothing.
pub const EXIT_USAGE: u8 = 2;

/// How often watched files (policies, key pair, client CA) are re-read when no file event
/// arrived.
const POLL_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Parser)]
#[command(
    name = "portier",
    version,
    about = "A Kubernetes admission webhook that judges pods against hot-reloaded policies"
)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "PORTIER_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the validating and mutating webhook over HTTPS.
    Serve(serve::ServeArgs),
    /// Judge manifests offline, exactly as admission would (exit 1 if an enforce policy denies).
    Check(check::CheckArgs),
    /// Measure how fast a policy set judges your own objects (AdmissionReviews or workloads).
    ///
    /// Prints one line per object, FILE<TAB>decode+evaluate+encode ns/review<TAB>evaluate-only
    /// ns/review<TAB>heap allocations/review, on stdout, and a summary on stderr. Times are the
    /// benchmarking thread's CPU time, so other busy processes do not inflate them.
    Bench(dev::BenchArgs),
    /// Dry-run the policies over what already runs in a cluster, every policy judged as enforce
    /// (exit 0; 1 with --fail-on-violation and a violation; 2 when nothing could be listed).
    Audit(audit::AuditArgs),
    /// Write a development CA and a serving certificate signed by it (ca.crt, tls.crt, tls.key).
    DevCert(dev::DevCertArgs),
}

/// `--report` / `--audit-report`: what the audit writes into the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportKind {
    /// wgpolicyk8s.io/v1alpha2 PolicyReport, one per namespace.
    Policyreport,
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    // The audit reports the API client's failures itself, with what they mean.
    let default_filter = match cli.command {
        Command::Audit(_) => "warn,kube_client=off",
        _ => "info",
    };
    init_logging(cli.log_format, default_filter);
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Check(args) => check::run(args),
        Command::Bench(args) => dev::bench(args),
        Command::Audit(args) => audit::run(args),
        Command::DevCert(args) => dev::dev_cert(args),
    }
}

fn init_logging(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
