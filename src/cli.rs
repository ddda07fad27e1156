//! Command-line parsing and the commands: `serve`, `check`, `audit`, `bench`, `dev-cert`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use portier::audit::output::{Format, Printer, Progress};
use portier::audit::report::{ReportError, ReportWriter};
use portier::audit::{self, AuditError, ScanOptions, Scanner, Scope, Summary};
use portier::images::Verifier;
use portier::metrics::Metrics;
use portier::offline;
use portier::policy::PolicySet;
use portier::reload::PolicyStore;
use portier::server::{ServeOptions, Server};
use portier::tls;

/// `check` found something an enforce policy denies; `audit --fail-on-violation` found a
/// violation.
pub const EXIT_VIOLATION: u8 = 1;
/// A usage, input or start-up error; an audit that could list nothing.
pub const EXIT_USAGE: u8 = 2;

/// How often the policy directory is re-read when no file event arrived.
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
    Serve {
        /// Directory of policy files (*.yaml, *.yml); watched and hot-reloaded.
        #[arg(long, env = "PORTIER_POLICIES")]
        policies: PathBuf,
        /// PEM certificate chain for the HTTPS listener.
        #[arg(long, env = "PORTIER_TLS_CERT")]
        tls_cert: PathBuf,
        /// PEM private key for the HTTPS listener.
        #[arg(long, env = "PORTIER_TLS_KEY")]
        tls_key: PathBuf,
        /// Address of the webhook listener (HTTPS: /validate, /mutate).
        #[arg(long, default_value = "0.0.0.0:8443", env = "PORTIER_ADDR")]
        addr: SocketAddr,
        /// Address of the operations listener (plain HTTP: /metrics, /healthz, /readyz).
        #[arg(long, default_value = "0.0.0.0:9090", env = "PORTIER_METRICS_ADDR")]
        metrics_addr: SocketAddr,
        /// Require client certificates signed by this CA (PEM) on the webhook listener.
        #[arg(long, env = "PORTIER_CLIENT_CA")]
        client_ca: Option<PathBuf>,
        /// With --client-ca: accept only client certificates whose subject CN matches one of
        /// these globs (repeatable).
        #[arg(long = "client-cn-allow", requires = "client_ca")]
        client_cn_allow: Vec<String>,
        /// Start even when the policy directory holds no policy (every request is then allowed).
        #[arg(long)]
        allow_empty: bool,
        /// Accept a TLS private key file that every user can read.
        #[arg(long)]
        allow_world_readable_key: bool,
        /// Reviews answered at once; more get HTTP 503.
        #[arg(long, default_value_t = 1024)]
        max_in_flight: usize,
        /// A review not answered by then gets HTTP 503 (keep it below the webhook's
        /// timeoutSeconds).
        #[arg(long, default_value = "2500ms", value_parser = humantime::parse_duration)]
        request_timeout: Duration,
        /// On SIGTERM, report not ready this long before closing the listeners.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        shutdown_delay: Duration,
        /// Threads that serve requests (default: the CPUs this process may use, which honours
        /// a container's CPU limit).
        #[arg(long, env = "PORTIER_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
        worker_threads: Option<u16>,
        /// Audit every namespace this often in the background (e.g. 10m) and export
        /// portier_audit_violations{namespace,policy,check}; off when unset. Uses the in-cluster
        /// service account (or $KUBECONFIG).
        #[arg(long, value_parser = humantime::parse_duration, env = "PORTIER_AUDIT_INTERVAL")]
        audit_interval: Option<Duration>,
        /// With --audit-interval: also write the results as PolicyReports.
        #[arg(
            long,
            value_enum,
            requires = "audit_interval",
            env = "PORTIER_AUDIT_REPORT"
        )]
        audit_report: Option<ReportKind>,
    },
    /// Judge manifests offline, exactly as admission would (exit 1 if an enforce policy denies).
    Check {
        /// Directory of policy files.
        #[arg(long)]
        policies: PathBuf,
        /// Manifest file (multi-document YAML, JSON, a List), a directory of them, or - for stdin.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
        /// Apply /mutate's patches first and print the patched objects (YAML) on stdout; the
        /// report (on stderr) and the exit code then judge the patched objects.
        #[arg(long)]
        mutate: bool,
        /// Verify image signatures for signed-images policies against the registries, as
        /// admission does (off by default: without it those policies report nothing).
        #[arg(long)]
        verify_images: bool,
    },
    /// Measure how fast a policy set judges your own objects (AdmissionReviews or workloads).
    ///
    /// Prints one line per object, FILE<TAB>decode+evaluate+encode ns/review<TAB>evaluate-only
    /// ns/review<TAB>heap allocations/review, on stdout, and a summary on stderr. Times are the
    /// benchmarking thread's CPU time, so other busy processes do not inflate them.
    Bench {
        /// Directory of policy files.
        #[arg(long)]
        policies: PathBuf,
        /// Timed calls per object and measurement (after a warm-up of a tenth as many).
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
        iterations: u64,
        /// AdmissionReview JSON files, or workload manifests (YAML or JSON) to wrap in reviews.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Dry-run the policies over what already runs in a cluster, every policy judged as enforce
    /// (exit 0; 1 with --fail-on-violation and a violation; 2 when nothing could be listed).
    Audit(AuditArgs),
    /// Write a development CA and a serving certificate signed by it (ca.crt, tls.crt, tls.key).
    DevCert {
        /// Directory to write into (created if missing).
        #[arg(long, default_value = "target/dev-certs")]
        out_dir: PathBuf,
        /// DNS names or IP addresses the certificate is valid for.
        #[arg(long = "host", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])]
        hosts: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
struct AuditArgs {
    /// Directory of policy files.
    #[arg(long)]
    policies: PathBuf,
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then the in-cluster service
    /// account).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use instead of the current one.
    #[arg(long)]
    context: Option<String>,
    /// Namespace to scan (repeatable); default: the context's namespace.
    #[arg(short = 'n', long = "namespace", conflicts_with = "all_namespaces")]
    namespaces: Vec<String>,
    /// Scan every namespace (needs list on namespaces).
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Label selector passed to every list call (e.g. app=web,tier!=cache).
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = AuditOutput::Table)]
    output: AuditOutput,
    /// Exit 1 when anything violates a policy (whatever its mode).
    #[arg(long)]
    fail_on_violation: bool,
    /// Objects per list call (the API's limit parameter).
    #[arg(long, default_value_t = audit::DEFAULT_PAGE_SIZE, value_parser = clap::value_parser!(u32).range(1..))]
    page_size: u32,
    /// Also write the results into the cluster: policyreport writes one
    /// wgpolicyk8s.io/v1alpha2 PolicyReport per namespace (not with --selector, which would
    /// drop the findings it does not select).
    #[arg(long, value_enum, conflicts_with = "selector")]
    report: Option<ReportKind>,
    /// At most this many results per PolicyReport; the rest are counted in its summary.
    #[arg(long, default_value_t = audit::report::DEFAULT_MAX_RESULTS as u32, value_parser = clap::value_parser!(u32).range(1..))]
    report_max_results: u32,
    /// How long one API call may take.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// Do not verify image signatures (no registry access): signed-images policies then
    /// report nothing, and the summary says so.
    #[arg(long)]
    no_verify_images: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AuditOutput {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportKind {
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
        Command::Serve {
            policies,
            tls_cert,
            tls_key,
            addr,
            metrics_addr,
            client_ca,
            client_cn_allow,
            allow_empty,
            allow_world_readable_key,
            max_in_flight,
            request_timeout,
            shutdown_delay,
            worker_threads,
            audit_interval,
            audit_report,
        } => {
            // One worker per usable CPU: a webhook's work is CPU-bound (TLS, JSON), so more
            // threads than cores only add switching.
            let workers = match worker_threads {
                Some(n) => usize::from(n),
                None => std::thread::available_parallelism().map_or(1, |n| n.get()),
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let serve_args = ServeArgs {
                policies,
                key_pair: tls::KeyPairFiles {
                    cert: tls_cert,
                    key: tls_key,
                    allow_world_readable_key,
                },
                client_auth: client_ca.map(|ca| tls::ClientAuth {
                    ca,
                    allowed_subjects: client_cn_allow,
                }),
                allow_empty,
                audit: audit_interval.map(|interval| audit::periodic::PeriodicOptions {
                    interval,
                    page_size: audit::DEFAULT_PAGE_SIZE,
                    reports: audit_report.map(|_| audit::report::DEFAULT_MAX_RESULTS),
                }),
                options: ServeOptions {
                    addr,
                    metrics_addr: Some(metrics_addr),
                    max_in_flight,
                    request_timeout,
                    shutdown_delay,
                    ..ServeOptions::default()
                },
            };
            runtime.block_on(serve(serve_args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            policies,
            files,
            output,
            mutate,
            verify_images,
        } => check(&policies, &files, output, mutate, verify_images),
        Command::Bench {
            policies,
            iterations,
            files,
        } => {
            bench(&policies, iterations, &files)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(args) => run_audit(args),
        Command::DevCert { out_dir, hosts } => {
            dev_cert(&out_dir, &hosts)?;
            Ok(ExitCode::SUCCESS)
        }
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

struct ServeArgs {
    policies: PathBuf,
    key_pair: tls::KeyPairFiles,
    client_auth: Option<tls::ClientAuth>,
    allow_empty: bool,
    audit: Option<audit::periodic::PeriodicOptions>,
    options: ServeOptions,
}

async fn serve(args: ServeArgs) -> Result<()> {
    let mut signals = ShutdownSignals::register()?;
    let metrics = Arc::new(Metrics::new());
    let store = Arc::new(
        PolicyStore::open(&args.policies, args.allow_empty, Arc::clone(&metrics))
            .context("cannot load the policy set; refusing to start without valid policies")?,
    );
    let (key_pair, not_after) = args.key_pair.load()?;
    metrics.set_tls_expiry(not_after);
    let resolver = tls::CertResolver::new(key_pair);
    let server_tls = tls::ServerTls::new(Arc::clone(&resolver), args.client_auth)?;
    let _policy_watch = store
        .watch(POLL_INTERVAL)
        .with_context(|| format!("cannot watch {}", args.policies.display()))?;
    let _key_pair_watch = tls::watch_key_pair(
        args.key_pair.clone(),
        resolver,
        Arc::clone(&metrics),
        POLL_INTERVAL,
    )
    .context("cannot watch the TLS key pair")?;
    let _client_ca_watch =
        tls::watch_client_ca(Arc::clone(&server_tls), Arc::clone(&metrics), POLL_INTERVAL)
            .context("cannot watch the client CA")?;
    let addr = args.options.addr;
    // One verifier for the webhook and the periodic audit: one cache, one registry backoff.
    let images = Verifier::new(Arc::clone(&metrics));
    let server = Server::start(
        args.options,
        Arc::clone(&server_tls),
        Arc::clone(&store),
        Arc::clone(&metrics),
        Arc::clone(&images),
    )
    .await
    .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(
        addr = %server.local_addr(),
        metrics_addr = %server.metrics_addr().map(|a| a.to_string()).unwrap_or_default(),
        mutual_tls = server_tls.mutual(),
        policies = store.snapshot().set.len(),
        dir = %args.policies.display(),
        "portier is serving HTTPS"
    );
    let periodic_audit = args.audit.map(|options| {
        tracing::info!(
            interval = %humantime::format_duration(options.interval),
            reports = options.reports.is_some(),
            "periodic audit on"
        );
        audit::periodic::spawn(Arc::clone(&store), Arc::clone(&metrics), images, options)
    });
    signals.received().await;
    if let Some(task) = periodic_audit {
        task.abort();
    }
    tracing::info!("shutting down: no longer ready, finishing in-flight requests");
    server.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM and SIGINT, registered before the server announces itself: a signal that arrives
/// right after start-up must begin a graceful shutdown, not kill the process.
struct ShutdownSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn register() -> Result<ShutdownSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(ShutdownSignals {
                terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
                interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignals {})
    }

    async fn received(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn check(
    policies: &Path,
    files: &[PathBuf],
    output: Output,
    mutate: bool,
    verify_images: bool,
) -> Result<ExitCode> {
    let set = PolicySet::from_dir(policies)?;
    let mode = if mutate {
        offline::Mutate::Yes
    } else {
        offline::Mutate::No
    };
    let signed_images = set.signed_images_policies();
    let online = if verify_images && !signed_images.is_empty() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        Some((runtime, Verifier::new(Arc::new(Metrics::new()))))
    } else {
        None
    };
    let images = match &online {
        Some((runtime, verifier)) => offline::Images::Verify { verifier, runtime },
        None => offline::Images::Offline,
    };
    if !verify_images && !signed_images.is_empty() {
        eprintln!(
            "portier: note: image signatures were not verified, so {} judged image references and digests only; pass --verify-images to verify them against the registries",
            signed_images.join(", ")
        );
    }
    let report = offline::check_paths(files, &set, &mut std::io::stdin().lock(), mode, images)?;
    let rendered = match output {
        Output::Table => offline::render_table(&report),
        Output::Json => format!("{}\n", serde_json::to_string_pretty(&report.rows)?),
    };
    if mutate {
        for object in &report.mutated {
            print!("---\n{}", serde_saphyr::to_string(object)?);
        }
        eprint!("{rendered}");
        eprintln!("{} object(s) patched by /mutate", report.patched);
    } else {
        print!("{rendered}");
    }
    Ok(if report.denies() {
        ExitCode::from(EXIT_VIOLATION)
    } else {
        ExitCode::SUCCESS
    })
}

fn run_audit(args: AuditArgs) -> Result<ExitCode> {
    let set = PolicySet::from_dir(&args.policies)?;
    if set.has_cel() {
        // Said, not silently skipped: the audit lists workloads and judges their pods only.
        eprintln!(
            "note: CEL policies and ValidatingAdmissionPolicies are not judged by audit yet; judge manifests with `portier check`"
        );
    }
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
    let mut scanner = match Scanner::start(client.clone(), set, &options).await {
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
    let mut summary = Summary::new(set, total);
    summary.image_signatures = scanner.image_signatures();
    let mut listed_any = false;
    let mut reports = ReportTally::default();
    loop {
        let done = scanner.done();
        progress.update(
            done,
            total,
            summary.workloads,
            scanner.namespaces().get(done).map(String::as_str),
        );
        let ns = match scanner.next_namespace().await {
            Ok(Some(ns)) => ns,
            Ok(None) => break,
            Err(AuditError::Unreachable(failure)) => {
                progress.clear();
                anyhow::bail!("{} (API server {server})", audit::unusable(&failure));
            }
            Err(e) => {
                progress.note(&format!("portier: {e}; printing what was judged before"));
                summary.stop(e.to_string());
                break;
            }
        };
        listed_any |= ns.lists_ok > 0;
        for note in &ns.notes {
            progress.note(&format!("portier: namespace {}: {note}", ns.namespace));
        }
        for p in &ns.problems {
            progress.note(&format!(
                "portier: namespace {}: {}: {}",
                p.namespace, p.resource, p.message
            ));
        }
        if let Some(writer) = &writer
            && let Some(note) = reports.write(writer, &ns).await
        {
            progress.note(&note);
        }
        // The rows may go to the same terminal as the progress line.
        progress.clear();
        printer.namespace(&ns)?;
        summary.add(&ns);
    }
    progress.clear();
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

/// What `--report` did over a scan.
#[derive(Default)]
struct ReportTally {
    written: usize,
    failed: usize,
    kept: usize,
    cut: usize,
    /// Set after a failure no other namespace can escape (CRD missing, API gone).
    off: Option<String>,
}

impl ReportTally {
    /// Writes the report of `ns`; a message for the user when something is worth saying.
    async fn write(
        &mut self,
        writer: &ReportWriter,
        ns: &audit::NamespaceResult,
    ) -> Option<String> {
        if self.off.is_some() {
            if ns.status == audit::Status::Complete {
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
            Err(e @ ReportError::Incomplete(_)) => {
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

    fn line(&self) -> String {
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

fn bench(policies: &Path, iterations: u64, files: &[PathBuf]) -> Result<()> {
    use std::io::Write;
    let set = PolicySet::from_dir(policies)?;
    let mut inputs = Vec::new();
    for file in files {
        inputs.extend(portier::bench::read_inputs(file)?);
    }
    let mut results = Vec::new();
    let mut stdout = std::io::stdout().lock();
    for input in &inputs {
        let m = portier::bench::measure(input, &set, iterations);
        writeln!(stdout, "{}", m.tsv())?;
        stdout.flush()?;
        results.push(m);
    }
    eprint!(
        "{}",
        portier::bench::summary(&results, set.len(), iterations)
    );
    Ok(())
}

fn dev_cert(out_dir: &Path, hosts: &[String]) -> Result<()> {
    let cert = tls::generate_dev_cert(hosts)?;
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    write_file(&out_dir.join("ca.crt"), &cert.ca_pem, 0o644)?;
    write_file(&out_dir.join("tls.crt"), &cert.cert_pem, 0o644)?;
    write_file(&out_dir.join("tls.key"), &cert.key_pem, 0o600)?;
    println!(
        "wrote {dir}/ca.crt, {dir}/tls.crt and {dir}/tls.key (valid for {hosts})",
        dir = out_dir.display(),
        hosts = hosts.join(", ")
    );
    Ok(())
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
