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

mod client;
mod load;
mod report;
mod server;

use client::*;
use load::*;
use report::*;
use server::*;

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
