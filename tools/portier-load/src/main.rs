//! `portier-load`: an HTTPS load generator for portier, loopback only.
//!
//! It starts `portier serve` itself (with a fresh development certificate) or targets `--url`,
//! holds N keep-alive connections over HTTP/1.1 or HTTP/2, posts a weighted mix of
//! AdmissionReview fixtures for a fixed duration (or request count), and prints throughput,
//! latency percentiles and the server's resident memory.
//!
//! Two ways to load:
//! - closed loop (default): every worker sends its next request as soon as the previous answer
//!   arrives. Measures the most the server can do.
//! - open loop (`--rate R`): requests are due at fixed times (R per second) whatever the server
//!   does, and latency is measured from when a request was *due*, not from when it was sent,
//!   so a slow server cannot hide its queueing (coordinated omission). A dedicated pacing
//!   thread issues the due times; workers pick them up.
//!
//! Every run is bounded (`--duration` ≤ 10 min, optional `--requests`) and stops by itself.
//!
//! A workspace member of its own, so portier's package carries no HTTP client:
//! `cargo build --release --bin portier && cargo run --release -p portier-load -- [ARGS]`.

use std::io::Read as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};
use tokio_rustls::TlsConnector;

/// The longest run allowed.
const MAX_DURATION: Duration = Duration::from_secs(600);

#[derive(Debug, Parser)]
#[command(
    name = "portier-load",
    about = "Load portier's HTTPS webhook on this machine (loopback only) and report throughput, latency and RSS"
)]
struct Args {
    /// Target a running server (https://127.0.0.1:PORT or https://[::1]:PORT) instead of
    /// starting one. Needs --cacert.
    #[arg(long)]
    url: Option<String>,
    /// CA certificate (PEM) that signed the target's certificate.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// PID of the target server, to report its RSS (a started server is known).
    #[arg(long)]
    server_pid: Option<u32>,
    /// The portier binary to start (default: `portier` next to this program).
    #[arg(long)]
    portier: Option<PathBuf>,
    /// Policy directory for the started server.
    #[arg(long, default_value = "policies")]
    policies: PathBuf,
    /// HTTP version.
    #[arg(long, value_enum, default_value_t = Protocol::H1)]
    http: Protocol,
    /// Keep-alive connections.
    #[arg(short, long, default_value_t = 8)]
    connections: usize,
    /// Concurrent requests per HTTP/2 connection (HTTP/1.1 always has one).
    #[arg(long, default_value_t = 8)]
    streams: usize,
    /// Seconds to measure, after the warm-up.
    #[arg(short, long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring (results discarded).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Stop after this many measured requests (the duration still bounds the run).
    #[arg(short = 'n', long)]
    requests: Option<u64>,
    /// Open loop: send this many reviews per second on a fixed schedule and measure latency
    /// from each request's due time. Without it, a closed loop runs as fast as it can.
    #[arg(short, long)]
    rate: Option<f64>,
    /// Endpoint to post to.
    #[arg(long, default_value = "/validate")]
    endpoint: String,
    /// Fixtures to send, as FILE or FILE:WEIGHT, in a repeating weighted mix (default: the
    /// shipped 2 KB, 8 KB, 64 KB and denied reviews, weighted 6:2:1:1).
    #[arg(short, long = "fixture")]
    fixtures: Vec<String>,
    /// Threads of the load generator's runtime (it shares the machine with the server).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// `--worker-threads` of the started server (default: its own, one per CPU).
    #[arg(long)]
    server_threads: Option<u16>,
    /// Open a new TLS connection for every request (closed loop), to measure handshakes.
    #[arg(long)]
    new_connection: bool,
    /// Do not offer TLS session resumption (with --new-connection: full handshakes only).
    #[arg(long)]
    no_resumption: bool,
    /// Also print the result as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    H1,
    H2,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("portier-load: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// One fixture of the mix.
struct Fixture {
    name: String,
    body: Bytes,
}

/// The repository's review fixtures (this package lives in `tools/portier-load/`).
fn default_fixtures() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    [
        ("review-pod-2k.json", 6),
        ("review-deployment-8k.json", 2),
        ("review-deployment-64k.json", 1),
        ("review-privileged-pod.json", 1),
    ]
    .iter()
    .map(|(f, w)| format!("{}:{w}", dir.join(f).display()))
    .collect()
}

/// Reads the fixtures and expands weights into a repeating sequence of indices.
fn load_mix(specs: &[String]) -> Result<(Vec<Fixture>, Vec<usize>)> {
    let mut fixtures = Vec::new();
    let mut sequence = Vec::new();
    for spec in specs {
        let (file, weight) = match spec.rsplit_once(':') {
            Some((f, w)) if w.chars().all(|c| c.is_ascii_digit()) && !w.is_empty() => {
                (f, w.parse::<usize>()?)
            }
            _ => (spec.as_str(), 1),
        };
        let body = std::fs::read(file).with_context(|| format!("cannot read {file}"))?;
        let name = Path::new(file)
            .file_name()
            .map_or(file.to_owned(), |n| n.to_string_lossy().into_owned());
        sequence.extend(std::iter::repeat_n(fixtures.len(), weight));
        fixtures.push(Fixture {
            name,
            body: Bytes::from(body),
        });
    }
    if sequence.is_empty() {
        bail!("no fixture to send (all weights are 0)");
    }
    Ok((fixtures, sequence))
}

fn run(args: Args) -> Result<bool> {
    if !(args.duration > 0.0 && args.warmup >= 0.0) {
        bail!("--duration must be positive and --warmup not negative");
    }
    let total = Duration::from_secs_f64(args.duration + args.warmup);
    if total > MAX_DURATION {
        bail!("a run lasts at most {} s", MAX_DURATION.as_secs());
    }
    if args.connections == 0 || args.streams == 0 || args.threads == 0 {
        bail!("--connections, --streams and --threads must be at least 1");
    }
    if let Some(rate) = args.rate
        && !(rate > 0.0 && rate <= 1_000_000.0)
    {
        bail!("--rate must be between 0 and 1000000 reviews/s");
    }
    let specs = if args.fixtures.is_empty() {
        default_fixtures()
    } else {
        args.fixtures.clone()
    };
    let (fixtures, sequence) = load_mix(&specs)?;

    // The server: the given one, or one we start and stop.
    let mut started = None;
    let (addr, ca_pem, server_pid) = match &args.url {
        Some(url) => {
            let cacert = args
                .cacert
                .as_ref()
                .ok_or_else(|| anyhow!("--url needs --cacert"))?;
            let ca = std::fs::read(cacert)
                .with_context(|| format!("cannot read {}", cacert.display()))?;
            (loopback_addr(url)?, ca, args.server_pid)
        }
        None => {
            let server = StartedServer::start(&args)?;
            let out = (server.addr, server.ca_pem.clone(), Some(server.child.id()));
            started = Some(server);
            out
        }
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    let result = runtime.block_on(load(&args, addr, &ca_pem, fixtures, sequence));
    let rss = server_pid.and_then(read_rss);
    drop(started);
    let report = result?;
    let clean = report.errors == 0;
    report.print(&args, rss);
    Ok(clean)
}

/// Accepts only loopback targets: this tool never sends traffic off the machine.
fn loopback_addr(url: &str) -> Result<SocketAddr> {
    let uri: Uri = url.parse().with_context(|| format!("bad --url {url}"))?;
    if uri.scheme_str() != Some("https") {
        bail!("--url must be https://");
    }
    let host = uri.host().unwrap_or("");
    let ip: IpAddr = match host.trim_start_matches('[').trim_end_matches(']') {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        other => other
            .parse()
            .with_context(|| format!("--url host {host:?} is not an IP address"))?,
    };
    if !ip.is_loopback() {
        bail!("--url must point at this machine (127.0.0.0/8 or ::1), not {ip}");
    }
    Ok(SocketAddr::new(ip, uri.port_u16().unwrap_or(443)))
}

/// A `portier serve` child process with a throwaway development certificate.
struct StartedServer {
    child: Child,
    addr: SocketAddr,
    ca_pem: Vec<u8>,
    dir: PathBuf,
}

impl StartedServer {
    fn start(args: &Args) -> Result<StartedServer> {
        let bin = match &args.portier {
            Some(p) => p.clone(),
            None => std::env::current_exe()?
                .parent()
                .ok_or_else(|| anyhow!("cannot find my own directory"))?
                .join("portier"),
        };
        if !bin.exists() {
            bail!(
                "{} does not exist: build portier in this tool's profile (cargo build --release --bin portier) or pass --portier",
                bin.display()
            );
        }
        let dir = std::env::temp_dir().join(format!("portier-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let status = Command::new(&bin)
            .args(["dev-cert", "--out-dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .status()
            .context("cannot run portier dev-cert")?;
        if !status.success() {
            bail!("portier dev-cert failed");
        }
        // A free port: bind, read, release. Nothing else on loopback is racing for it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::fs::File::create(dir.join("server.log"))?;
        let mut command = Command::new(&bin);
        command.arg("serve");
        if let Some(n) = args.server_threads {
            command.arg("--worker-threads").arg(n.to_string());
        }
        let child = command
            .arg("--policies")
            .arg(&args.policies)
            .arg("--tls-cert")
            .arg(dir.join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.join("tls.key"))
            .arg("--addr")
            .arg(addr.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start portier serve")?;
        let ca_pem = std::fs::read(dir.join("ca.crt"))?;
        let mut server = StartedServer {
            child,
            addr,
            ca_pem,
            dir,
        };
        server.wait_listening()?;
        Ok(server)
    }

    fn wait_listening(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                let mut log = String::new();
                let _ = std::fs::File::open(self.dir.join("server.log"))
                    .and_then(|mut f| f.read_to_string(&mut log));
                bail!("portier serve exited ({status}): {log}");
            }
            if std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("portier serve did not listen on {} within 15 s", self.addr)
    }
}

impl Drop for StartedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Resident memory of a process: (now, peak) in bytes, from /proc/PID/status.
fn read_rss(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn tls_connector(ca_pem: &[u8], protocol: Protocol, resumption: bool) -> Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.context("bad CA certificate")?)?;
    }
    // ring, the provider portier serves with.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !resumption {
        config.resumption = rustls::client::Resumption::disabled();
    }
    config.alpn_protocols = vec![match protocol {
        Protocol::H1 => b"http/1.1".to_vec(),
        Protocol::H2 => b"h2".to_vec(),
    }];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Sends one request on whatever connection kind a worker holds.
#[derive(Clone)]
enum Sender {
    H1(Arc<Mutex<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

async fn connect(addr: SocketAddr, connector: &TlsConnector, protocol: Protocol) -> Result<Sender> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::IpAddress(addr.ip().into());
    let tls = connector.connect(name, tcp).await?;
    let io = TokioIo::new(tls);
    Ok(match protocol {
        Protocol::H1 => {
            let (send, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            Sender::H1(Arc::new(Mutex::new(send)))
        }
        Protocol::H2 => {
            let (send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            Sender::H2(send)
        }
    })
}

impl Sender {
    /// Posts `body` and reads the whole answer; `Ok(status)`.
    async fn post(&self, uri: &Uri, authority: &str, body: Bytes) -> Result<u16> {
        let response = match self {
            Sender::H1(send) => {
                let request = Request::post(uri.path())
                    .header(hyper::header::HOST, authority)
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(body))?;
                let mut send = send.lock().await;
                send.ready().await?;
                send.send_request(request).await?
            }
            Sender::H2(send) => {
                let request = Request::post(uri.clone())
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(body))?;
                let mut send = send.clone();
                send.ready().await?;
                send.send_request(request).await?
            }
        };
        let status = response.status().as_u16();
        response.into_body().collect().await?;
        Ok(status)
    }
}

/// What every worker measured, merged.
#[derive(Default)]
struct Report {
    latencies_ns: Vec<u64>,
    /// Open loop only: from sending to the answer (without the wait for a free connection).
    service_ns: Vec<u64>,
    errors: u64,
    error_sample: Option<String>,
    statuses: Vec<(u16, u64)>,
    measured: Duration,
    per_fixture: Vec<u64>,
    fixture_names: Vec<String>,
    due: u64,
}

#[derive(Default)]
struct WorkerStats {
    latencies_ns: Vec<u64>,
    service_ns: Vec<u64>,
    errors: u64,
    error_sample: Option<String>,
    non_ok: Vec<(u16, u64)>,
    per_fixture: Vec<u64>,
}

impl WorkerStats {
    fn record(
        &mut self,
        result: &Result<u16>,
        latency: Duration,
        service: Option<Duration>,
        fixture: usize,
    ) {
        match result {
            Ok(200) => {
                self.latencies_ns.push(latency.as_nanos() as u64);
                if let Some(service) = service {
                    self.service_ns.push(service.as_nanos() as u64);
                }
                self.per_fixture[fixture] += 1;
            }
            Ok(status) => {
                self.errors += 1;
                match self.non_ok.iter_mut().find(|(s, _)| s == status) {
                    Some((_, n)) => *n += 1,
                    None => self.non_ok.push((*status, 1)),
                }
            }
            Err(e) => {
                self.errors += 1;
                self.error_sample.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
}

/// Shared state of a run.
struct Plan {
    uri: Uri,
    authority: String,
    fixtures: Vec<Fixture>,
    sequence: Vec<usize>,
    /// Next request index (closed loop) or due slot (open loop).
    next: AtomicU64,
    measure_from: Instant,
    stop_at: Instant,
    limit: Option<u64>,
    /// Requests counted toward --requests.
    measured: AtomicU64,
    done: AtomicBool,
    /// `--new-connection`: where and how to connect for every request.
    reconnect: Option<(SocketAddr, TlsConnector, Protocol)>,
}

impl Plan {
    fn body(&self, index: u64) -> (usize, Bytes) {
        let f = self.sequence[(index % self.sequence.len() as u64) as usize];
        (f, self.fixtures[f].body.clone())
    }

    /// Counts a request that completed in the measured window; false once the limit is hit.
    fn count_measured(&self) -> bool {
        let n = self.measured.fetch_add(1, Ordering::Relaxed) + 1;
        if self.limit.is_some_and(|limit| n >= limit) {
            self.done.store(true, Ordering::Relaxed);
        }
        true
    }
}

async fn load(
    args: &Args,
    addr: SocketAddr,
    ca_pem: &[u8],
    fixtures: Vec<Fixture>,
    sequence: Vec<usize>,
) -> Result<Report> {
    if args.new_connection && args.rate.is_some() {
        bail!("--new-connection runs a closed loop only");
    }
    let connector = tls_connector(ca_pem, args.http, !args.no_resumption)?;
    let authority = match addr {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    };
    let uri: Uri = format!("https://{authority}{}", args.endpoint).parse()?;
    let mut senders = Vec::new();
    for _ in 0..args.connections {
        let sender = connect(addr, &connector, args.http)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        // HTTP/1.1 carries one request at a time; HTTP/2 `streams` at once.
        let workers = match args.http {
            Protocol::H1 => 1,
            Protocol::H2 => args.streams,
        };
        senders.extend(std::iter::repeat_n(sender, workers));
    }
    let fixture_names: Vec<String> = fixtures.iter().map(|f| f.name.clone()).collect();
    let nfixtures = fixtures.len();
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let stop_at = measure_from + Duration::from_secs_f64(args.duration);
    let plan = Arc::new(Plan {
        uri,
        authority,
        fixtures,
        sequence,
        next: AtomicU64::new(0),
        measure_from,
        stop_at,
        limit: args.requests,
        measured: AtomicU64::new(0),
        done: AtomicBool::new(false),
        reconnect: args
            .new_connection
            .then(|| (addr, connector.clone(), args.http)),
    });

    // Open loop: a pacing thread sends due times; workers take them in order.
    let (slots, pacer) = match args.rate {
        Some(rate) => {
            let (tx, rx) = mpsc::unbounded_channel::<(u64, Instant)>();
            let plan = Arc::clone(&plan);
            let pacer = std::thread::spawn(move || pace(rate, start, &plan, tx));
            (Some(Arc::new(Mutex::new(rx))), Some(pacer))
        }
        None => (None, None),
    };

    let mut tasks = Vec::new();
    for sender in senders {
        let plan = Arc::clone(&plan);
        let slots = slots.clone();
        tasks.push(tokio::spawn(async move {
            let mut stats = WorkerStats {
                per_fixture: vec![0; nfixtures],
                ..WorkerStats::default()
            };
            match slots {
                None => closed_loop(&plan, &sender, &mut stats).await,
                Some(slots) => open_loop(&plan, &sender, &slots, &mut stats).await,
            }
            stats
        }));
    }
    // Bounded whatever happens: workers get the run's length plus 10 s to finish.
    let hard_stop = stop_at + Duration::from_secs(10);
    let mut report = Report {
        per_fixture: vec![0; nfixtures],
        fixture_names,
        ..Report::default()
    };
    for task in tasks {
        let left = hard_stop.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, task).await {
            Ok(Ok(stats)) => {
                report.latencies_ns.extend(stats.latencies_ns);
                report.service_ns.extend(stats.service_ns);
                report.errors += stats.errors;
                if report.error_sample.is_none() {
                    report.error_sample = stats.error_sample;
                }
                for (status, n) in stats.non_ok {
                    match report.statuses.iter_mut().find(|(s, _)| *s == status) {
                        Some((_, m)) => *m += n,
                        None => report.statuses.push((status, n)),
                    }
                }
                for (total, n) in report.per_fixture.iter_mut().zip(stats.per_fixture) {
                    *total += n;
                }
            }
            Ok(Err(e)) => bail!("a worker failed: {e}"),
            Err(_) => {
                plan.done.store(true, Ordering::Relaxed);
                report.errors += 1;
                report
                    .error_sample
                    .get_or_insert_with(|| "requests still in flight at the hard stop".into());
            }
        }
    }
    plan.done.store(true, Ordering::Relaxed);
    if let Some(pacer) = pacer {
        report.due = pacer.join().unwrap_or(0);
    }
    let ended = Instant::now().min(stop_at);
    report.measured = ended.saturating_duration_since(measure_from);
    Ok(report)
}

async fn closed_loop(plan: &Plan, sender: &Sender, stats: &mut WorkerStats) {
    while !plan.done.load(Ordering::Relaxed) {
        let sent = Instant::now();
        if sent >= plan.stop_at {
            break;
        }
        let index = plan.next.fetch_add(1, Ordering::Relaxed);
        let (fixture, body) = plan.body(index);
        let result = match &plan.reconnect {
            None => sender.post(&plan.uri, &plan.authority, body).await,
            Some((addr, connector, protocol)) => match connect(*addr, connector, *protocol).await {
                Ok(fresh) => fresh.post(&plan.uri, &plan.authority, body).await,
                Err(e) => Err(e),
            },
        };
        if sent >= plan.measure_from && plan.count_measured() {
            stats.record(&result, sent.elapsed(), None, fixture);
        }
        if result.is_err() && plan.reconnect.is_none() && !sender_alive(sender) {
            break;
        }
    }
}

async fn open_loop(
    plan: &Plan,
    sender: &Sender,
    slots: &Mutex<mpsc::UnboundedReceiver<(u64, Instant)>>,
    stats: &mut WorkerStats,
) {
    loop {
        let Some((index, due)) = slots.lock().await.recv().await else {
            break;
        };
        let (fixture, body) = plan.body(index);
        let sent = Instant::now();
        let result = sender.post(&plan.uri, &plan.authority, body).await;
        // Latency from the due time: waiting for a free connection counts.
        if due >= plan.measure_from && plan.count_measured() {
            stats.record(&result, due.elapsed(), Some(sent.elapsed()), fixture);
        }
        if result.is_err() && !sender_alive(sender) {
            break;
        }
    }
}

fn sender_alive(sender: &Sender) -> bool {
    match sender {
        Sender::H1(s) => s.try_lock().map(|s| !s.is_closed()).unwrap_or(true),
        Sender::H2(s) => !s.is_closed(),
    }
}

/// The pacing thread: issues slot `i` at `start + i / rate` (sleeping in between, or at once
/// when behind) until the run ends. Returns how many slots fell due.
fn pace(rate: f64, start: Instant, plan: &Plan, tx: mpsc::UnboundedSender<(u64, Instant)>) -> u64 {
    // Linux lets a sleeping thread wake up to 50 µs late by default (timer slack), which
    // would add to every measured latency: ask for 1 ns.
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and touches only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut i: u64 = 0;
    loop {
        let due = start + interval.mul_f64(i as f64);
        if due >= plan.stop_at || plan.done.load(Ordering::Relaxed) {
            return i;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if tx.send((i, due)).is_err() {
            return i;
        }
        i += 1;
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // Nearest rank; the epsilon keeps 99.9% of 1000 at rank 999 despite float rounding.
    let rank = (p / 100.0 * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Report {
    fn print(mut self, args: &Args, rss: Option<(u64, u64)>) {
        self.latencies_ns.sort_unstable();
        let ok = self.latencies_ns.len() as u64;
        let secs = self.measured.as_secs_f64().max(1e-9);
        let throughput = ok as f64 / secs;
        let us = |ns: u64| ns as f64 / 1000.0;
        let p = |q: f64| us(percentile(&self.latencies_ns, q));
        let mode = match args.rate {
            Some(rate) => format!("open loop at {rate} reviews/s (latency from due time)"),
            None if args.new_connection => format!(
                "closed loop, a new connection per request ({})",
                if args.no_resumption {
                    "full handshakes"
                } else {
                    "resumed handshakes"
                }
            ),
            None => "closed loop".to_owned(),
        };
        let protocol = match args.http {
            Protocol::H1 => "HTTP/1.1".to_owned(),
            Protocol::H2 => format!("HTTP/2 ({} streams each)", args.streams),
        };
        println!(
            "portier-load: {protocol} over TLS, {} connections, {mode}, {:.1} s measured after {:.1} s warm-up",
            args.connections, secs, args.warmup
        );
        let mix: Vec<String> = self
            .fixture_names
            .iter()
            .zip(&self.per_fixture)
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        println!(
            "  answered: {ok} ok ({}), {} errors",
            mix.join(", "),
            self.errors
        );
        if !self.statuses.is_empty() {
            println!("  non-200 answers: {:?}", self.statuses);
        }
        if let Some(e) = &self.error_sample {
            println!("  first error: {e}");
        }
        println!("  throughput: {throughput:.0} reviews/s");
        if let Some(rate) = args.rate
            && throughput < rate * 0.97
        {
            println!(
                "  note: the server did not keep up with {rate} reviews/s (latency includes the backlog)"
            );
        }
        println!(
            "  latency µs: p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}",
            p(50.0),
            p(90.0),
            p(99.0),
            p(99.9),
            us(self.latencies_ns.last().copied().unwrap_or(0))
        );
        self.service_ns.sort_unstable();
        let service = |q: f64| us(percentile(&self.service_ns, q));
        if !self.service_ns.is_empty() {
            // When these are much lower than the above, requests waited before being sent: for
            // a free connection, or for the load generator itself to get a CPU.
            println!(
                "  of which sent → answered µs: p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}",
                service(50.0),
                service(90.0),
                service(99.0),
                service(99.9)
            );
        }
        match rss {
            Some((now, peak)) => println!(
                "  server RSS: {:.1} MB at the end, {:.1} MB peak",
                now as f64 / 1e6,
                peak as f64 / 1e6
            ),
            None => println!("  server RSS: unknown (pass --server-pid)"),
        }
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "protocol": match args.http { Protocol::H1 => "h1", Protocol::H2 => "h2" },
                    "connections": args.connections,
                    "streams": args.streams,
                    "rate": args.rate,
                    "seconds": secs,
                    "ok": ok,
                    "errors": self.errors,
                    "throughput": throughput,
                    "latency_us": {"p50": p(50.0), "p90": p(90.0), "p99": p(99.0), "p999": p(99.9),
                        "max": us(self.latencies_ns.last().copied().unwrap_or(0))},
                    "sent_to_answered_us": (!self.service_ns.is_empty()).then(|| serde_json::json!(
                        {"p50": service(50.0), "p90": service(90.0), "p99": service(99.0), "p999": service(99.9)})),
                    "rss_bytes": rss.map(|r| r.0),
                    "rss_peak_bytes": rss.map(|r| r.1),
                })
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(loopback_addr("https://127.0.0.1:8443").is_ok());
        assert!(loopback_addr("https://[::1]:8443").is_ok());
        assert!(loopback_addr("https://localhost:8443").is_ok());
        assert!(loopback_addr("https://10.0.0.1:8443").is_err());
        assert!(loopback_addr("https://example.com").is_err());
        assert!(loopback_addr("http://127.0.0.1:8443").is_err());
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 50.0), 500);
        assert_eq!(percentile(&v, 99.0), 990);
        assert_eq!(percentile(&v, 99.9), 999);
        assert_eq!(percentile(&[], 99.0), 0);
    }
}
