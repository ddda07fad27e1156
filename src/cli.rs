//! Command-line parsing and the commands: `serve`, `check`, `bench`, `dev-cert`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use portier::metrics::Metrics;
use portier::offline;
use portier::policy::PolicySet;
use portier::reload::PolicyStore;
use portier::server::{ServeOptions, Server};
use portier::tls;

/// `check` found something an enforce policy denies.
pub const EXIT_VIOLATION: u8 = 1;
/// A usage, input or start-up error.
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
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:8443", env = "PORTIER_ADDR")]
        addr: SocketAddr,
        /// Start even when the policy directory holds no policy (every request is then allowed).
        #[arg(long)]
        allow_empty: bool,
        /// Threads that serve requests (default: the CPUs this process may use, which honours
        /// a container's CPU limit).
        #[arg(long, env = "PORTIER_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
        worker_threads: Option<u16>,
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

pub fn run(cli: Cli) -> Result<ExitCode> {
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve {
            policies,
            tls_cert,
            tls_key,
            addr,
            allow_empty,
            worker_threads,
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
            runtime.block_on(serve(&policies, &tls_cert, &tls_key, addr, allow_empty))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            policies,
            files,
            output,
        } => check(&policies, &files, output),
        Command::Bench {
            policies,
            iterations,
            files,
        } => {
            bench(&policies, iterations, &files)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::DevCert { out_dir, hosts } => {
            dev_cert(&out_dir, &hosts)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(
    policies: &Path,
    cert: &Path,
    key: &Path,
    addr: SocketAddr,
    allow_empty: bool,
) -> Result<()> {
    let metrics = Arc::new(Metrics::new());
    let store = Arc::new(
        PolicyStore::open(policies, allow_empty, Arc::clone(&metrics))
            .context("cannot load the policy set; refusing to start without valid policies")?,
    );
    let key_pair = tls::load_key_pair(cert, key)?;
    let tls_config = tls::server_config(tls::CertResolver::new(key_pair))?;
    let _watcher = store
        .watch(POLL_INTERVAL)
        .with_context(|| format!("cannot watch {}", policies.display()))?;
    let options = ServeOptions {
        addr,
        ..ServeOptions::default()
    };
    let server = Server::start(options, tls_config, Arc::clone(&store), metrics)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(
        addr = %server.local_addr(),
        policies = store.snapshot().set.len(),
        dir = %policies.display(),
        "portier is serving HTTPS"
    );
    shutdown_signal().await;
    tracing::info!("shutting down: no longer ready, finishing in-flight requests");
    server.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

fn check(policies: &Path, files: &[PathBuf], output: Output) -> Result<ExitCode> {
    let set = PolicySet::from_dir(policies)?;
    let report = offline::check_paths(files, &set, &mut std::io::stdin().lock())?;
    match output {
        Output::Table => print!("{}", offline::render_table(&report)),
        Output::Json => println!("{}", serde_json::to_string_pretty(&report.rows)?),
    }
    Ok(if report.denies() {
        ExitCode::from(EXIT_VIOLATION)
    } else {
        ExitCode::SUCCESS
    })
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
