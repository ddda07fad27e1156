//! A real Kubernetes API server for tests: etcd and kube-apiserver (the pair controller-runtime's
//! envtest runs: no kubelet, scheduler or controller-manager) on loopback, with free ports and a
//! PKI made here with rcgen.
//!
//! One API server per test binary, started by the first test that asks for it ([`cluster`]);
//! tests keep apart by working in namespaces of their own ([`Cluster::namespace`]). Cluster-wide
//! objects a test makes (webhook configurations, RBAC) carry that namespace in their name.
//!
//! The binaries are found through `KUBEBUILDER_ASSETS` (envtest's convention: a folder holding
//! `kube-apiserver` and `etcd`), then `../shared/k8s/kube-apiserver.gz` beside the repository
//! (unpacked into the scratch folder; etcd from `$PATH`), then `$PATH`. Without them every test
//! that needs the server fails with one line saying how to get them: CI must not pass by
//! skipping them.
//!
//! Both processes are stopped by their own handles when the test binary exits, kube-apiserver
//! first, even when tests failed (an `atexit` hook: Rust never drops statics), and they die with
//! the test binary if it crashes (`PR_SET_PDEATHSIG`, set for the thread that spawned them,
//! which lives as long as the process).
#![allow(dead_code)] // each test binary uses a different part of the harness

// Built on the API server below; `audit_env` and `webhooks` use `crate::common` too, so a test
// binary that declares `mod k8s;` declares `mod common;` as well.
pub mod audit_env;
mod binaries;
pub mod objects;
pub mod policy_reports;
pub mod rbac;
pub mod webhooks;

use std::io::{BufRead, Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::{Value, json};

/// What a developer without the binaries reads, once per failing test.
pub const HOW_TO_GET_ONE: &str = "no Kubernetes API server for the real-server tests: run `setup-envtest use 1.32 -p path` (sigs.k8s.io/controller-runtime/tools/setup-envtest) and set KUBEBUILDER_ASSETS to the folder it prints (it holds kube-apiserver and etcd), or put kube-apiserver and etcd on $PATH (Debian: apt-get install etcd-server)";

/// Every test namespace carries the label `e2e.portier.dev/<its name>: "true"`, so that a
/// test's webhook configurations can be narrowed to the namespaces it chose.
pub const TEST_LABEL_PREFIX: &str = "e2e.portier.dev/";

/// A running API server.
pub struct Cluster {
    /// https://127.0.0.1:PORT
    pub server: String,
    /// An admin kubeconfig (a client certificate in `system:masters`).
    pub kubeconfig: PathBuf,
    /// The API server's audit log (JSON lines; see [`AUDIT_POLICY`]).
    pub audit_log: PathBuf,
    /// The scratch folder: PKI, etcd's data, logs. Removed at exit.
    pub dir: PathBuf,
    /// Where the binaries came from, for messages.
    pub origin: String,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
    counter: AtomicUsize,
}

/// Every request on workloads, namespaces and PolicyReports at `Metadata` level: that level
/// carries the webhooks' audit annotations, the request URI (pagination, field manager) and
/// the user, which is what the tests read. Nothing else, so the log stays small.
pub const AUDIT_POLICY: &str = "\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    resources:
      - group: \"\"
        resources: [pods, pods/ephemeralcontainers, replicationcontrollers, namespaces]
      - group: apps
      - group: batch
      - group: wgpolicyk8s.io
  - level: None
";

/// Namespaces the API server's own Pod Security admission leaves alone (its
/// `exemptions.namespaces`), so that portier's `level: namespace` can judge them instead while
/// PSA judges twins with the same labels (`tests/psa.rs`). Only these exact names.
pub const PSA_EXEMPT_NAMESPACES: [&str; 8] = [
    "portier-psa-0",
    "portier-psa-1",
    "portier-psa-2",
    "portier-psa-3",
    "portier-psa-4",
    "portier-psa-5",
    "portier-psa-6",
    "portier-psa-7",
];

fn admission_configuration() -> String {
    format!(
        "apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: PodSecurity
    configuration:
      apiVersion: pod-security.admission.config.k8s.io/v1
      kind: PodSecurityConfiguration
      defaults: {{enforce: privileged, enforce-version: latest, audit: privileged, audit-version: latest, warn: privileged, warn-version: latest}}
      exemptions: {{usernames: [], runtimeClasses: [], namespaces: [{}]}}
",
        PSA_EXEMPT_NAMESPACES.join(", ")
    )
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The processes to stop at exit, in start order (stopped in reverse), and the scratch folder.
static RUNNING: Mutex<Running> = Mutex::new(Running {
    children: Vec::new(),
    dir: None,
});

struct Running {
    children: Vec<(&'static str, Child)>,
    dir: Option<PathBuf>,
}

/// The API server of this test binary, started on first use. Panics with [`HOW_TO_GET_ONE`]
/// (or why the server did not start) when there is none.
pub fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(start) {
        Ok(cluster) => cluster,
        Err(why) => panic!("{why}"),
    }
}

fn start() -> Result<Cluster, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("kube-apiserver-keeper".into())
        .spawn(move || {
            let _ = tx.send(launch());
            // PR_SET_PDEATHSIG fires when the spawning *thread* ends: this one must outlive
            // every test, so it parks until the process exits.
            loop {
                std::thread::park();
            }
        })
        .map_err(|e| format!("cannot start the API server's thread: {e}"))?;
    rx.recv()
        .map_err(|_| "the API server's thread ended without an answer".to_owned())?
}

/// A port nothing listens on now. The kernel picks ephemeral ports spread over a wide range, so
/// another bind taking it before etcd or the API server does is unlikely enough for tests.
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn pki_error(e: rcgen::Error) -> String {
    format!("cannot make the test PKI: {e}")
}

/// Spawns `command` so that it gets SIGKILL when the spawning thread (the keeper) ends, i.e.
/// when the test binary dies without running its exit hooks.
fn spawn_tied(name: &'static str, mut command: Command, log: &Path) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let parent = std::process::id();
    command.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: between fork and exec the closure only makes async-signal-safe calls (prctl,
    // getppid, _exit) and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect: then nobody would stop us.
            if libc::getppid() != parent as libc::pid_t {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    running.children.push((name, child));
    Ok(())
}

/// Stops one process: SIGTERM for a clean shutdown, SIGKILL if it takes more than 10 s.
fn stop(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with the pid of a child we have not reaped yet, so not a reused pid.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

extern "C" fn stop_at_exit() {
    let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    while let Some((_, mut child)) = running.children.pop() {
        stop(&mut child);
    }
    if let Some(dir) = running.dir.take() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The last lines of a log file, for failure messages.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn launch() -> Result<Cluster, String> {
    let dir = tempfile::Builder::new()
        .prefix("portier-k8s-")
        .tempdir()
        .map_err(|e| format!("cannot make a scratch folder: {e}"))?
        .keep();
    {
        let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
        running.dir = Some(dir.clone());
    }
    // SAFETY: registers a plain function with no arguments, once (OnceLock).
    if unsafe { libc::atexit(stop_at_exit) } != 0 {
        return Err("cannot register the exit hook that stops the API server".to_owned());
    }
    let binaries = binaries::find_binaries(&dir)?;

    // The PKI: one CA signs the API server's serving certificate and every client certificate
    // (it is the API server's --client-ca-file too).
    let ca_key = KeyPair::generate().map_err(pki_error)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(pki_error)?;
    ca.distinguished_name
        .push(DnType::CommonName, "portier test kubernetes CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_pem = ca.self_signed(&ca_key).map_err(pki_error)?.pem();
    let issuer = Issuer::new(ca, ca_key);
    let serving_key = KeyPair::generate().map_err(pki_error)?;
    let mut serving = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .map_err(pki_error)?;
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_pem = serving
        .signed_by(&serving_key, &issuer)
        .map_err(pki_error)?
        .pem();
    let sa_key = KeyPair::generate().map_err(pki_error)?;
    let pki = dir.join("pki");
    std::fs::create_dir(&pki).map_err(|e| format!("{}: {e}", pki.display()))?;
    write(&pki.join("ca.crt"), &ca_pem)?;
    write(&pki.join("apiserver.crt"), &serving_pem)?;
    write_private(&pki.join("apiserver.key"), &serving_key.serialize_pem())?;
    write(&pki.join("sa.pub"), &sa_key.public_key_pem())?;
    write_private(&pki.join("sa.key"), &sa_key.serialize_pem())?;
    write(&dir.join("audit-policy.yaml"), AUDIT_POLICY)?;
    write(&dir.join("admission.yaml"), &admission_configuration())?;

    let etcd_port = free_port()?;
    let peer_port = free_port()?;
    let port = free_port()?;
    let etcd_url = format!("http://127.0.0.1:{etcd_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let mut etcd = Command::new(&binaries.etcd);
    etcd.arg("--name=portier-test")
        .arg(format!("--data-dir={}", dir.join("etcd").display()))
        .arg(format!("--listen-client-urls={etcd_url}"))
        .arg(format!("--advertise-client-urls={etcd_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=portier-test={peer_url}"));
    let etcd_log = dir.join("etcd.log");
    spawn_tied("etcd", etcd, &etcd_log)?;

    let file = |name: &str| pki.join(name).display().to_string();
    let audit_log = dir.join("audit.log");
    let mut apiserver = Command::new(&binaries.apiserver);
    apiserver
        .arg(format!("--etcd-servers={etcd_url}"))
        .arg(format!("--secure-port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg("--advertise-address=127.0.0.1")
        .arg(format!("--client-ca-file={}", file("ca.crt")))
        .arg(format!("--tls-cert-file={}", file("apiserver.crt")))
        .arg(format!("--tls-private-key-file={}", file("apiserver.key")))
        .arg(format!("--service-account-key-file={}", file("sa.pub")))
        .arg(format!(
            "--service-account-signing-key-file={}",
            file("sa.key")
        ))
        .arg("--service-account-issuer=https://kubernetes.default.svc")
        .arg("--service-cluster-ip-range=10.96.0.0/24")
        .arg("--authorization-mode=RBAC")
        // No controller-manager makes service-account tokens, so that plugin would refuse pods.
        .arg("--disable-admission-plugins=ServiceAccount")
        // Otherwise the API server refuses privileged pods before any webhook sees them.
        .arg("--allow-privileged=true")
        // A loopback advertise address makes the Endpoints reconciler complain every 10 s.
        .arg("--endpoint-reconciler-type=none")
        .arg(format!(
            "--audit-policy-file={}",
            dir.join("audit-policy.yaml").display()
        ))
        .arg(format!("--audit-log-path={}", audit_log.display()))
        .arg("--audit-log-mode=blocking")
        .arg(format!(
            "--admission-control-config-file={}",
            dir.join("admission.yaml").display()
        ))
        .arg(format!("--cert-dir={}", dir.join("certs").display()));
    let apiserver_log = dir.join("kube-apiserver.log");
    spawn_tied("kube-apiserver", apiserver, &apiserver_log)?;

    let (admin_cert, admin_key) =
        client_cert(&issuer, "portier-test-admin", Some("system:masters"))?;
    let server = format!("https://127.0.0.1:{port}");
    let kubeconfig = dir.join("admin.kubeconfig");
    write_private(
        &kubeconfig,
        &kubeconfig_text(&server, &ca_pem, &admin_cert, &admin_key, None),
    )?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build a runtime: {e}"))?;
    let started = Instant::now();
    runtime.block_on(async {
        let client = client_from(&kubeconfig).await;
        let mut last = String::new();
        while started.elapsed() < Duration::from_secs(90) {
            {
                let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
                for (name, child) in running.children.iter_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        let log = if *name == "etcd" {
                            &etcd_log
                        } else {
                            &apiserver_log
                        };
                        return Err(format!(
                            "{name} ({}) exited with {status} before the API server was ready:\n{}",
                            binaries.origin,
                            tail(log, 30)
                        ));
                    }
                }
            }
            let readyz = axum::http::Request::get("/readyz")
                .body(Vec::new())
                .map_err(|e| e.to_string())?;
            match client.request_text(readyz).await {
                Ok(text) if text == "ok" => return Ok(()),
                Ok(text) => last = text,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "the API server ({}) was not ready after 90 s: {last}\n{}",
            binaries.origin,
            tail(&apiserver_log, 30)
        ))
    })?;
    eprintln!(
        "k8s harness: kube-apiserver from {} ready at {server} in {:.1} s ({})",
        binaries.origin,
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(Cluster {
        server,
        kubeconfig,
        audit_log,
        dir,
        origin: binaries.origin,
        ca_pem,
        issuer,
        counter: AtomicUsize::new(0),
    })
}

fn client_cert(
    issuer: &Issuer<'static, KeyPair>,
    user: &str,
    group: Option<&str>,
) -> Result<(String, String), String> {
    let key = KeyPair::generate().map_err(pki_error)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_error)?;
    params.distinguished_name.push(DnType::CommonName, user);
    // The API server reads the subject's O as the user's group. rcgen keeps one value per
    // attribute type, so one group per user: all the tests need.
    if let Some(group) = group {
        params
            .distinguished_name
            .push(DnType::OrganizationName, group);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer).map_err(pki_error)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn kubeconfig_text(
    server: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
    namespace: Option<&str>,
) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let namespace = namespace
        .map(|ns| format!("\n    namespace: {ns}"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}
    certificate-authority-data: {}
users:
- name: test
  user:
    client-certificate-data: {}
    client-key-data: {}
contexts:
- name: test
  context:
    cluster: test
    user: test{namespace}
current-context: test
",
        b64(ca_pem),
        b64(cert_pem),
        b64(key_pem)
    )
}

/// A kube client from a kubeconfig file. Clients belong to the runtime that made them, so each
/// test makes its own.
pub async fn client_from(kubeconfig: &Path) -> Client {
    let config = Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("{}: {e}", kubeconfig.display()));
    let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", kubeconfig.display()));
    Client::try_from(config).unwrap()
}

impl Cluster {
    /// An admin client (`system:masters`).
    pub async fn client(&self) -> Client {
        client_from(&self.kubeconfig).await
    }

    /// A name no other test of this binary gets: `prefix-N`.
    pub fn unique(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.counter.fetch_add(1, Ordering::Relaxed))
    }

    /// Creates a fresh namespace `prefix-N`, labelled `e2e.portier.dev/<name>: "true"`, and
    /// returns its name.
    pub async fn namespace(&self, client: &Client, prefix: &str) -> String {
        let name = self.unique(prefix);
        self.create_namespace(client, &name).await;
        name
    }

    /// Creates the namespace `name` (labelled as [`Cluster::namespace`] does).
    pub async fn create_namespace(&self, client: &Client, name: &str) {
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {test_label(name): "true"}}
        }))
        .unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("cannot create namespace {name}: {e}"));
    }

    /// The CA of the API server's serving certificate and of its client certificates (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes a kubeconfig for the user `user` (a client certificate this cluster trusts,
    /// with `group` as its one group) into `path`, its context namespace `namespace`.
    pub fn user_kubeconfig(
        &self,
        path: &Path,
        user: &str,
        group: Option<&str>,
        namespace: Option<&str>,
    ) -> PathBuf {
        let (cert, key) = client_cert(&self.issuer, user, group).unwrap();
        write_private(
            path,
            &kubeconfig_text(&self.server, &self.ca_pem, &cert, &key, namespace),
        )
        .unwrap();
        path.to_owned()
    }

    /// Every event of the audit log so far.
    pub fn audit_events(&self) -> Vec<Value> {
        let mut file = match std::fs::File::open(&self.audit_log) {
            Ok(f) => f,
            Err(_) => return Vec::new(),
        };
        let mut text = String::new();
        let _ = file.rewind();
        let _ = file.read_to_string(&mut text);
        std::io::Cursor::new(text)
            .lines()
            .map_while(Result::ok)
            // The last line may still be half written.
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect()
    }

    /// The audit log's events once every request made before this call is in it: asks for a
    /// marker (a pod that does not exist in `namespace`) and waits for its event. The API
    /// server writes an event after the response, so the requests of a process that just
    /// ended may otherwise be missing.
    pub async fn audit_events_settled(&self, client: &Client, namespace: &str) -> Vec<Value> {
        let marker = self.unique("audit-marker");
        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), namespace);
        let _ = pods.get_opt(&marker).await.unwrap();
        eventually(&format!("the audit event of {namespace}/{marker}"), || {
            let events = self.audit_events();
            let seen = events
                .iter()
                .any(|e| e["objectRef"]["name"] == marker.as_str());
            async move { seen.then_some(events) }
        })
        .await
    }
}

/// The label key that marks namespace `ns` as chosen by its test.
pub fn test_label(ns: &str) -> String {
    format!("{TEST_LABEL_PREFIX}{ns}")
}

/// Polls `check` every 100 ms until it returns `Some`, for at most 60 s, then panics naming
/// `what`. Waiting on the API server's caches (webhook configurations, CRDs) needs this; the
/// tests assert what happens, never how long it took.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The documents of a YAML file of this repository.
pub fn repo_yaml(path: &str) -> Vec<Value> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// The object `kind`/`name` of `deploy/portier.yaml` (the chart rendered with its defaults).
pub fn deployed(kind: &str, name: &str) -> Value {
    repo_yaml("deploy/portier.yaml")
        .into_iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/portier.yaml"))
}
