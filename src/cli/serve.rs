//! `portier serve`: the webhook, its watches, the periodic audit, graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::{POLL_INTERVAL, ReportKind};
use portier::audit;
use portier::images::Verifier;
use portier::metrics::Metrics;
use portier::namespaces::NamespaceCache;
use portier::reload::PolicyStore;
use portier::server::{ServeOptions, Server};
use portier::tls;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Directory of policy files (*.yaml, *.yml); watched and hot-reloaded.
    #[arg(long, env = "PORTIER_POLICIES")]
    pub policies: PathBuf,
    /// PEM certificate chain for the HTTPS listener.
    #[arg(long, env = "PORTIER_TLS_CERT")]
    pub tls_cert: PathBuf,
    /// PEM private key for the HTTPS listener.
    #[arg(long, env = "PORTIER_TLS_KEY")]
    pub tls_key: PathBuf,
    /// Address of the webhook listener (HTTPS: /validate, /mutate).
    #[arg(long, default_value = "0.0.0.0:8443", env = "PORTIER_ADDR")]
    pub addr: SocketAddr,
    /// Address of the operations listener (plain HTTP: /metrics, /healthz, /readyz).
    #[arg(long, default_value = "0.0.0.0:9090", env = "PORTIER_METRICS_ADDR")]
    pub metrics_addr: SocketAddr,
    /// Require client certificates signed by this CA (PEM) on the webhook listener.
    #[arg(long, env = "PORTIER_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// With --client-ca: accept only client certificates whose subject CN matches one of
    /// these globs (repeatable).
    #[arg(long = "client-cn-allow", requires = "client_ca")]
    pub client_cn_allow: Vec<String>,
    /// Start even when the policy directory holds no policy (every request is then allowed).
    #[arg(long)]
    pub allow_empty: bool,
    /// Accept a TLS private key file that every user can read.
    #[arg(long)]
    pub allow_world_readable_key: bool,
    /// Reviews answered at once; more get HTTP 503.
    #[arg(long, default_value_t = 1024)]
    pub max_in_flight: usize,
    /// A review not answered by then gets HTTP 503 (keep it below the webhook's
    /// timeoutSeconds).
    #[arg(long, default_value = "2500ms", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// On SIGTERM, report not ready this long before closing the listeners.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub shutdown_delay: Duration,
    /// Threads that serve requests (default: the CPUs this process may use, which honours
    /// a container's CPU limit).
    #[arg(long, env = "PORTIER_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: Option<u16>,
    /// Audit every namespace this often in the background (e.g. 10m) and export
    /// portier_audit_violations{namespace,policy,check}; off when unset. Uses the in-cluster
    /// service account (or $KUBECONFIG).
    #[arg(long, value_parser = humantime::parse_duration, env = "PORTIER_AUDIT_INTERVAL")]
    pub audit_interval: Option<Duration>,
    /// Kubeconfig for the Kubernetes API (namespace labels, the periodic audit); default: as
    /// kubectl finds one ($KUBECONFIG, ~/.kube/config), then the in-cluster service account.
    /// Without any, policies that need namespace labels fail closed.
    #[arg(long, env = "PORTIER_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// With --audit-interval: also write the results as PolicyReports.
    #[arg(
        long,
        value_enum,
        requires = "audit_interval",
        env = "PORTIER_AUDIT_REPORT"
    )]
    pub audit_report: Option<ReportKind>,
}

/// Builds the runtime (one worker per usable CPU, or --worker-threads) and serves until SIGTERM.
pub fn run(args: ServeArgs) -> Result<ExitCode> {
    // A webhook's work is CPU-bound (TLS, JSON), so more threads than cores only add switching.
    let workers = match args.worker_threads {
        Some(n) => usize::from(n),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let config = ServeConfig {
        policies: args.policies,
        key_pair: tls::KeyPairFiles {
            cert: args.tls_cert,
            key: args.tls_key,
            allow_world_readable_key: args.allow_world_readable_key,
        },
        client_auth: args.client_ca.map(|ca| tls::ClientAuth {
            ca,
            allowed_subjects: args.client_cn_allow,
        }),
        allow_empty: args.allow_empty,
        kubeconfig: args.kubeconfig,
        audit: args
            .audit_interval
            .map(|interval| audit::periodic::PeriodicOptions {
                interval,
                page_size: audit::DEFAULT_PAGE_SIZE,
                reports: args
                    .audit_report
                    .map(|_| audit::report::DEFAULT_MAX_RESULTS),
            }),
        options: ServeOptions {
            addr: args.addr,
            metrics_addr: Some(args.metrics_addr),
            max_in_flight: args.max_in_flight,
            request_timeout: args.request_timeout,
            shutdown_delay: args.shutdown_delay,
            ..ServeOptions::default()
        },
    };
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

/// What `serve` runs with, from the arguments.
struct ServeConfig {
    policies: PathBuf,
    key_pair: tls::KeyPairFiles,
    client_auth: Option<tls::ClientAuth>,
    allow_empty: bool,
    kubeconfig: Option<PathBuf>,
    audit: Option<audit::periodic::PeriodicOptions>,
    options: ServeOptions,
}

async fn serve(args: ServeConfig) -> Result<()> {
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
    let namespaces = namespace_cache(args.kubeconfig, &store, &metrics).await;
    let namespace_watch = namespaces.watch();
    let server = Server::start_with(
        args.options,
        Arc::clone(&server_tls),
        Arc::clone(&store),
        Arc::clone(&metrics),
        Arc::clone(&images),
        namespaces,
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
    if let Some(task) = namespace_watch {
        task.abort();
    }
    tracing::info!("shutting down: no longer ready, finishing in-flight requests");
    server.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// The namespace cache over the API, or, without API access, none: then say so, and which
/// policies will fail closed for it.
async fn namespace_cache(
    kubeconfig: Option<PathBuf>,
    store: &PolicyStore,
    metrics: &Arc<Metrics>,
) -> Arc<NamespaceCache> {
    let connect = audit::Connect {
        kubeconfig,
        ..audit::Connect::default()
    };
    match audit::client(&connect).await {
        Ok(connection) => {
            tracing::info!(server = %connection.server, "watching namespaces for their labels");
            NamespaceCache::new(connection.client, Arc::clone(metrics))
        }
        Err(e) => {
            let why = format!("portier has no access to the Kubernetes API ({e})");
            let snapshot = store.snapshot();
            let needing: Vec<&str> = snapshot
                .set
                .policies()
                .iter()
                .filter(|p| p.reads_namespace_labels())
                .map(|p| p.name.as_str())
                .collect();
            if needing.is_empty() {
                tracing::warn!(reason = %why, "namespace labels are unknown: a policy that needs them will fail closed");
            } else {
                tracing::warn!(
                    reason = %why,
                    policies = %needing.join(", "),
                    "namespace labels are unknown: these policies need them and fail closed (deny in enforce mode)"
                );
            }
            NamespaceCache::without_api(why, Arc::clone(metrics))
        }
    }
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
