//! Starting `portier serve` for a run, and reading its memory.

use super::*;

/// Accepts only loopback targets: this tool never sends traffic off the machine.
pub(crate) fn loopback_addr(url: &str) -> Result<SocketAddr> {
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
pub(crate) struct StartedServer {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) ca_pem: Vec<u8>,
    pub(crate) dir: PathBuf,
}

impl StartedServer {
    pub(crate) fn start(args: &Args) -> Result<StartedServer> {
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

    pub(crate) fn wait_listening(&mut self) -> Result<()> {
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
pub(crate) fn read_rss(pid: u32) -> Option<(u64, u64)> {
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
