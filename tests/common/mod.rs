//! Test harness: a real portier server (real TLS with a CA this harness makes with rcgen,
//! bound to 127.0.0.1:0) and a real HTTPS client (reqwest over rustls) that trusts that CA.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod metrics;
pub mod notation_signing;
pub mod referrers_api;
pub mod registry;
pub mod signing;
pub mod workloads;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use portier::metrics::Metrics;
use portier::reload::{PolicyStore, Watcher};
use portier::server::{ServeOptions, Server};
use portier::tls;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};

/// A CA and a serving certificate for 127.0.0.1 / localhost, made for one test.
pub struct TestPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestPki {
    pub fn new() -> TestPki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(DnType::CommonName, "portier test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        TestPki {
            ca_pem: ca_cert.pem(),
            cert_pem: leaf.pem(),
            key_pem: key.serialize_pem(),
            issuer,
        }
    }

    /// A new serving key pair for 127.0.0.1 / localhost from the same CA: (cert PEM, key PEM).
    pub fn reissue(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A client certificate with subject CN `cn`, signed by this CA: (cert PEM, key PEM).
    pub fn client_cert(&self, cn: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// An HTTPS client that trusts only this CA. `http2` offers h2 by ALPN, else HTTP/1.1 only.
    pub fn client(&self, http2: bool) -> reqwest::Client {
        self.client_with_identity(http2, None)
    }

    /// Like `client`, presenting a client certificate (cert PEM, key PEM) when given.
    pub fn client_with_identity(
        &self,
        http2: bool,
        identity: Option<&(String, String)>,
    ) -> reqwest::Client {
        self.client_builder(http2, identity).build().unwrap()
    }

    /// The builder behind `client`, for tests that tune connection reuse.
    pub fn client_builder(
        &self,
        http2: bool,
        identity: Option<&(String, String)>,
    ) -> reqwest::ClientBuilder {
        let config = self.client_config(http2, identity);
        let builder = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .timeout(Duration::from_secs(20));
        if http2 { builder } else { builder.http1_only() }
    }

    /// The TLS configuration behind `client`: trusts only this CA, presents `identity`.
    pub fn client_config(
        &self,
        http2: bool,
        identity: Option<&(String, String)>,
    ) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match identity {
            Some((cert, key)) => {
                let chain = rustls::pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        config
    }
}

/// A running portier with its own policy directory.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub pki: TestPki,
    pub server: Option<Server>,
    pub store: Arc<PolicyStore>,
    pub metrics: Arc<Metrics>,
    pub client: reqwest::Client,
    /// The webhook listener, https://127.0.0.1:PORT.
    pub base: String,
    /// The operations listener, http://127.0.0.1:PORT.
    pub ops_base: String,
    _watcher: Option<Watcher>,
    _key_watch: Option<Watcher>,
    _client_ca_watch: Option<Watcher>,
}

/// How to start a test server beyond its policies.
#[derive(Default)]
pub struct Options {
    /// The policy directory, when not the temp dir itself (e.g. a ConfigMap-like layout).
    pub policies: Option<PathBuf>,
    /// Backup poll interval of the policy watcher (default 30 s: rely on file events).
    pub poll: Option<Duration>,
    /// Mutual TLS: the client CA (PEM) and the allowed subject globs.
    pub client_auth: Option<(String, Vec<String>)>,
    /// Server options to change (addresses are always loopback, port 0).
    pub serve: Option<ServeOptions>,
    /// Accept a policy directory without policies (`serve --allow-empty`).
    pub allow_empty: bool,
}

impl TestServer {
    /// Starts a server whose policy directory holds `files` (name, YAML).
    pub async fn start(files: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        Self::start_in(dir, Duration::from_secs(30)).await
    }

    /// Starts a server on an existing policy directory, watching it with `poll` as backup.
    pub async fn start_in(dir: tempfile::TempDir, poll: Duration) -> TestServer {
        let options = Options {
            poll: Some(poll),
            ..Options::default()
        };
        Self::start_with(dir, options).await
    }

    /// Like `start_in`, with the policies in `policies` (e.g. a ConfigMap-like layout).
    pub async fn start_at(
        dir: tempfile::TempDir,
        policies: Option<PathBuf>,
        poll: Duration,
    ) -> TestServer {
        let options = Options {
            policies,
            poll: Some(poll),
            ..Options::default()
        };
        Self::start_with(dir, options).await
    }

    pub async fn start_with(dir: tempfile::TempDir, options: Options) -> TestServer {
        let pki = TestPki::new();
        let cert = dir.path().join("tls.crt.pem");
        let key = dir.path().join("tls.key.pem");
        std::fs::write(&cert, &pki.cert_pem).unwrap();
        write_private(&key, &pki.key_pem);
        let client_auth = options.client_auth.map(|(ca_pem, allowed_subjects)| {
            let ca = dir.path().join("client-ca.pem");
            std::fs::write(&ca, ca_pem).unwrap();
            tls::ClientAuth {
                ca,
                allowed_subjects,
            }
        });
        let metrics = Arc::new(Metrics::new());
        let policy_dir = options.policies.unwrap_or_else(|| dir.path().to_owned());
        let store = Arc::new(
            PolicyStore::open(&policy_dir, options.allow_empty, Arc::clone(&metrics)).unwrap(),
        );
        let watcher = store
            .watch(options.poll.unwrap_or(Duration::from_secs(30)))
            .unwrap();
        let key_pair = tls::KeyPairFiles {
            cert: cert.clone(),
            key: key.clone(),
            allow_world_readable_key: false,
        };
        let resolver = tls::CertResolver::new(key_pair.load().unwrap().0);
        let key_watch = tls::watch_key_pair(
            key_pair,
            Arc::clone(&resolver),
            Arc::clone(&metrics),
            Duration::from_secs(30),
        )
        .unwrap();
        let server_tls = tls::ServerTls::new(resolver, client_auth).unwrap();
        let client_ca_watch = tls::watch_client_ca(
            Arc::clone(&server_tls),
            Arc::clone(&metrics),
            Duration::from_secs(30),
        )
        .unwrap();
        let serve_options = ServeOptions {
            addr: "127.0.0.1:0".parse().unwrap(),
            metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
            ..options.serve.unwrap_or_default()
        };
        let server = Server::start(
            serve_options,
            server_tls,
            Arc::clone(&store),
            Arc::clone(&metrics),
            portier::images::Verifier::new(Arc::clone(&metrics)),
        )
        .await
        .unwrap();
        let base = format!("https://127.0.0.1:{}", server.local_addr().port());
        let ops_base = format!("http://127.0.0.1:{}", server.metrics_addr().unwrap().port());
        let client = pki.client(true);
        TestServer {
            dir,
            pki,
            server: Some(server),
            store,
            metrics,
            client,
            base,
            ops_base,
            _watcher: Some(watcher),
            _key_watch: Some(key_watch),
            _client_ca_watch: client_ca_watch,
        }
    }

    /// Replaces the serving key pair's files with a pair from a new CA, as cert-manager
    /// renewing a Secret would; returns the new PKI.
    pub fn rotate_key_pair(&self) -> TestPki {
        let pki = TestPki::new();
        replace_file(&self.dir.path().join("tls.key.pem"), &pki.key_pem, 0o600);
        replace_file(&self.dir.path().join("tls.crt.pem"), &pki.cert_pem, 0o644);
        pki
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// POSTs a body and returns the status and the JSON answer.
    pub async fn post(&self, endpoint: &str, body: Vec<u8>) -> (u16, Value) {
        post_with(&self.client, &self.base, endpoint, body).await
    }

    /// POSTs a review for `object` to /validate and returns the `response` part.
    pub async fn validate(&self, object: Value) -> Value {
        let (status, answer) = self.post("/validate", review_bytes(&object)).await;
        assert_eq!(status, 200, "{answer}");
        answer["response"].clone()
    }

    /// GET on the operations listener (metrics, health, readiness).
    pub async fn get(&self, path: &str) -> (u16, String) {
        get_text(&self.client, &format!("{}{path}", self.ops_base)).await
    }

    /// GET on the webhook listener.
    pub async fn get_webhook(&self, path: &str) -> (u16, String) {
        get_text(&self.client, &format!("{}{path}", self.base)).await
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

pub async fn get_text(client: &reqwest::Client, url: &str) -> (u16, String) {
    let r = client.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let bytes = r.bytes().await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

pub async fn post_with(
    client: &reqwest::Client,
    base: &str,
    endpoint: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let r = client
        .post(format!("{base}{endpoint}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let bytes = r.bytes().await.unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "answer is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, value)
}

/// The group a kind belongs to, as the API server puts it in `request.kind`.
fn group_of(kind: &str) -> &'static str {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => "apps",
        "Job" | "CronJob" => "batch",
        _ => "",
    }
}

/// An AdmissionReview as the API server sends it for a CREATE of `object`.
pub fn review(object: &Value) -> Value {
    review_op(object, "CREATE")
}

pub fn review_op(object: &Value, operation: &str) -> Value {
    let kind = object["kind"].as_str().unwrap_or("Pod");
    let group = group_of(kind);
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "2b752327-a529-4ffd-b2e2-478455e80a0d",
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": format!("{}s", kind.to_lowercase())},
            "requestKind": {"group": group, "version": "v1", "kind": kind},
            "namespace": namespace,
            "name": object["metadata"]["name"],
            "operation": operation,
            "userInfo": {"username": "alice@example.com", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

pub fn review_bytes(object: &Value) -> Vec<u8> {
    serde_json::to_vec(&review(object)).unwrap()
}

/// A container that passes every built-in check.
pub fn good_container(name: &str) -> Value {
    json!({
        "name": name,
        "image": "registry.example.com/shop/app:1.0",
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]}},
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "128Mi"}}
    })
}

pub fn pod(namespace: &str, containers: Vec<Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": namespace, "labels": {"app": "web"}},
        "spec": {"containers": containers}
    })
}

/// A Deployment whose pod template has `spec` as its pod spec.
pub fn deployment(namespace: &str, pod_spec: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec}}
    })
}

/// A policy document.
pub fn policy(name: &str, check: &str, mode: &str, params: &str) -> String {
    format!(
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: {name}}}\nspec:\n  check: {check}\n  mode: {mode}\n  params: {params}\n"
    )
}

/// A `portier serve` child process on loopback, with its stderr (the log) collected.
pub struct ServeProcess {
    pub child: std::process::Child,
    pub addr: String,
    pub metrics_addr: String,
    log: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl ServeProcess {
    /// Starts the built binary with `args` after `serve` (plus loopback addresses and JSON
    /// logs) and waits until it says it is serving.
    pub fn start(args: &[&str]) -> ServeProcess {
        Self::start_with_env(args, &[])
    }

    /// Like `start`, with these environment variables set.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> ServeProcess {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_portier"));
        command
            .args(["--log-format", "json", "serve", "--addr", "127.0.0.1:0"])
            .args(["--metrics-addr", "127.0.0.1:0", "--shutdown-delay", "0s"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        // Drop stops it when a test fails; a test binary that crashes runs no Drop, so the
        // kernel stops it then (SIGKILL when the spawning thread, the test's, ends).
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut process = ServeProcess {
            child,
            addr: String::new(),
            metrics_addr: String::new(),
            log,
            seen: Vec::new(),
        };
        let ready = process
            .wait_for_line(|l| l.contains("portier is serving HTTPS"))
            .unwrap_or_else(|| panic!("portier did not start:\n{}", process.seen.join("\n")));
        let v: Value = serde_json::from_str(&ready).unwrap();
        process.addr = v["addr"].as_str().unwrap().to_string();
        process.metrics_addr = v["metrics_addr"].as_str().unwrap().to_string();
        process
    }

    /// Reads log lines until one matches (or the process's stderr closes / 20 s pass).
    pub fn wait_for_line(&mut self, matches: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code and every log line.
    pub fn terminate(mut self) -> (Option<i32>, Vec<String>) {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.log.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        (status.code(), std::mem::take(&mut self.seen))
    }

    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `text` to `path` readable by the owner only (as a private key must be).
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Writes a new file and renames it over `path` (atomic for readers), with `mode`.
pub fn replace_file(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
