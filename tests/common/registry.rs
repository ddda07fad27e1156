//! A real OCI registry for integration tests: Debian's `docker-registry` (distribution 2.8)
//! run as a child process on 127.0.0.1, plus helpers that push tiny images made by the test
//! and sign them the way `cosign sign --key` does (the classic "attached" `sha256-<hex>.sig`
//! tag holding one simple-signing layer per signature).
//!
//! Nothing here depends on portier's own code: the formats are written out by hand after
//! cosign's output, so the verifier is tested against the wire format, not against itself.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// The response header each registry is configured to send with a value of its own, so
/// that the readiness probe knows it reached this registry and not another process that
/// took the port in the meantime.
const MARKER_HEADER: &str = "X-Portier-Test-Registry";
const START_BUDGET: Duration = Duration::from_secs(10);
const INSTALL_HINT: &str = "install Debian's docker-registry: apt-get install -y docker-registry";

/// A running `docker-registry serve` on 127.0.0.1 with its storage in a temp dir.
/// Dropping it kills the process and waits for it.
pub struct Registry {
    child: Option<Child>,
    port: u16,
    client: reqwest::Client,
    dir: tempfile::TempDir,
}

/// A signature layer with any annotations: (payload, [(annotation, value)]).
pub type AnnotatedLayer = (Vec<u8>, Vec<(String, String)>);

/// One signature in a cosign signature artifact: the signed payload (a layer blob) and the
/// base64 DER signature over it (the layer's annotation).
#[derive(Clone, Debug)]
pub struct SignatureLayer {
    pub payload: Vec<u8>,
    pub signature_b64: String,
}

/// The registry binary: on PATH, else Debian's location; panics with how to install it.
fn registry_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("docker-registry");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let debian = PathBuf::from("/usr/bin/docker-registry");
    if debian.is_file() {
        return debian;
    }
    panic!("the registry tests need a real OCI registry and none was found; {INSTALL_HINT}");
}

/// A port that was free a moment ago (bound on :0 and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// "sha256:<hex>" of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The tag cosign stores an image's signatures under: `sha256-<hex>.sig`.
pub fn signature_tag(image_digest: &str) -> String {
    let hex = image_digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("not a sha256 digest: {image_digest}"));
    format!("sha256-{hex}.sig")
}

/// cosign's simple-signing payload, byte for byte as `cosign sign` writes it (compact JSON,
/// this field order). `docker_reference` is the repository with its registry host, without
/// tag or digest.
pub fn simple_signing_payload(docker_reference: &str, digest: &str) -> Vec<u8> {
    let s = |v: &str| serde_json::to_string(v).unwrap();
    format!(
        concat!(
            r#"{{"critical":{{"identity":{{"docker-reference":{}}},"#,
            r#""image":{{"docker-manifest-digest":{}}},"#,
            r#""type":"cosign container image signature"}},"optional":null}}"#
        ),
        s(docker_reference),
        s(digest)
    )
    .into_bytes()
}

/// An OCI descriptor as go-containerregistry serializes it (mediaType, size, digest,
/// annotations).
fn descriptor(media_type: &str, bytes: &[u8], annotations: &[(&str, &str)]) -> String {
    let s = |v: &str| serde_json::to_string(v).unwrap();
    let mut out = format!(
        r#"{{"mediaType":{},"size":{},"digest":{}"#,
        s(media_type),
        bytes.len(),
        s(&sha256_digest(bytes))
    );
    if !annotations.is_empty() {
        let fields: Vec<String> = annotations
            .iter()
            .map(|(k, v)| format!("{}:{}", s(k), s(v)))
            .collect();
        out.push_str(&format!(r#","annotations":{{{}}}"#, fields.join(",")));
    }
    out.push('}');
    out
}

/// An OCI image manifest (schemaVersion 2, mediaType set) over a config and layers given as
/// serialized descriptors.
fn oci_manifest(config: &str, layers: &[String]) -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{config},"layers":[{}]}}"#,
        layers.join(",")
    )
    .into_bytes()
}

/// The config blob cosign writes for a signature image: an empty image whose rootfs lists
/// the payloads' digests, one history entry per layer.
fn cosign_config(layers: &[SignatureLayer]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("\"{}\"", sha256_digest(&l.payload)))
        .collect();
    let history = vec![r#"{"created":"0001-01-01T00:00:00Z"}"#; layers.len()];
    format!(
        concat!(
            r#"{{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{}],"os":"","#,
            r#""rootfs":{{"type":"layers","diff_ids":[{}]}},"config":{{}}}}"#
        ),
        history.join(","),
        diff_ids.join(",")
    )
    .into_bytes()
}

/// A new client for the plain-HTTP registry (its own connection pool). reqwest is built
/// without a default TLS provider, so it gets a rustls config (ring, no roots) it never uses.
pub fn http_client() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .http1_only()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

impl Registry {
    /// Starts a registry on a free port of 127.0.0.1 and waits until `GET /v2/` answers 200.
    pub async fn start() -> Registry {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let binary = registry_binary();
        let client = http_client();
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let marker = format!(
                "{}-{}-{port}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            );
            let storage = dir.path().join("storage");
            std::fs::create_dir(&storage).unwrap();
            // Debian's /etc/docker/registry/config.yml wants htpasswd auth; this one has none.
            let config = format!(
                concat!(
                    "version: 0.1\n",
                    "log:\n  level: error\n  accesslog:\n    disabled: true\n",
                    "storage:\n  filesystem:\n    rootdirectory: {storage}\n",
                    "  delete:\n    enabled: true\n",
                    "http:\n  addr: 127.0.0.1:{port}\n",
                    "  headers:\n    {header}: [\"{marker}\"]\n",
                ),
                storage = storage.display(),
                port = port,
                header = MARKER_HEADER,
                marker = marker,
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).unwrap();
            let log_path = dir.path().join("registry.log");
            let log = File::create(&log_path).unwrap();
            let mut command = Command::new(&binary);
            command
                .arg("serve")
                .arg(&config_path)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log));
            // distribution reads REGISTRY_* variables as config overrides: ignore the caller's.
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("REGISTRY_") {
                    command.env_remove(name);
                }
            }
            let child = command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL_HINT}", binary.display()));
            let mut registry = Registry {
                child: Some(child),
                port,
                client: client.clone(),
                dir,
            };
            let deadline = Instant::now() + START_BUDGET;
            loop {
                if let Some(status) = registry.child.as_mut().unwrap().try_wait().unwrap() {
                    registry.child = None;
                    last_log = registry.log();
                    if last_log.contains("address already in use") {
                        break; // someone took the port: try another one
                    }
                    panic!(
                        "docker-registry exited ({status}) before answering on {}:\n{last_log}",
                        registry.host()
                    );
                }
                if registry.answers(&marker).await {
                    return registry;
                }
                if Instant::now() > deadline {
                    panic!(
                        "docker-registry did not answer GET /v2/ on {} within {START_BUDGET:?}:\n{}",
                        registry.host(),
                        registry.log()
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("docker-registry found no free port in 5 attempts:\n{last_log}");
    }

    /// A handle on a registry someone else runs at `host` (127.0.0.1:PORT), e.g. a proxy in
    /// front of one: the same push helpers, nothing to stop.
    pub fn at(host: &str) -> Registry {
        let port = host
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .expect("127.0.0.1:PORT");
        Registry {
            child: None,
            port,
            client: http_client(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Whether GET /v2/ answers 200 from the registry started with `marker`.
    async fn answers(&self, marker: &str) -> bool {
        let request = self
            .client
            .get(format!("{}/v2/", self.base_url()))
            .timeout(Duration::from_millis(500));
        match request.send().await {
            Ok(r) => {
                r.status() == 200
                    && r.headers().get(MARKER_HEADER).and_then(|v| v.to_str().ok()) == Some(marker)
            }
            Err(_) => false,
        }
    }

    /// What the registry wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// "127.0.0.1:PORT": the registry part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// "http://127.0.0.1:PORT".
    pub fn base_url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// The plain-HTTP client the harness uses, for tests that talk to the registry directly.
    /// It keeps connections alive: after `stop` its first request may fail with a closed
    /// connection rather than "connection refused" (use `http_client()` for a fresh pool).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// "127.0.0.1:PORT/<repo>": cosign's docker-reference for images in `repo`.
    pub fn repository(&self, repo: &str) -> String {
        format!("{}/{repo}", self.host())
    }

    /// "127.0.0.1:PORT/<repo>@<digest>".
    pub fn image_ref(&self, repo: &str, digest: &str) -> String {
        format!("{}/{repo}@{digest}", self.host())
    }

    /// Kills the registry and waits for it (an outage); idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Uploads a blob (monolithic: POST an upload, PUT its bytes with the digest); returns
    /// "sha256:<hex>".
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        let r = self
            .client
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base_url()))
            .header("content-length", "0")
            .send()
            .await
            .unwrap();
        let status = r.status();
        let location = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let body = r.text().await.unwrap_or_default();
        assert_eq!(status, 202, "starting a blob upload to {repo}: {body}");
        let location = location.expect("upload answer without Location");
        // distribution 2.8 answers with an absolute URL carrying a `_state` query.
        let url = if location.starts_with('/') {
            format!("{}{location}", self.base_url())
        } else {
            location
        };
        let separator = if url.contains('?') { '&' } else { '?' };
        let r = self
            .client
            .put(format!("{url}{separator}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(status, 201, "uploading blob {digest} to {repo}: {body}");
        digest
    }

    /// PUTs a manifest under `reference` (tag or digest); returns its digest, checked
    /// against the registry's Docker-Content-Digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let digest = sha256_digest(bytes);
        let r = self
            .client
            .put(format!(
                "{}/v2/{repo}/manifests/{reference}",
                self.base_url()
            ))
            .header("content-type", media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        let status = r.status();
        let answered = r
            .headers()
            .get("docker-content-digest")
            .map(|v| v.to_str().unwrap().to_string());
        let body = r.text().await.unwrap_or_default();
        assert_eq!(status, 201, "pushing manifest {repo}:{reference}: {body}");
        assert_eq!(
            answered.as_deref(),
            Some(digest.as_str()),
            "registry digest of manifest {repo}:{reference}"
        );
        digest
    }

    /// Pushes a tiny OCI image (a config and one layer whose bytes depend on `seed`, so each
    /// seed has its own digest) tagged `tag`; returns the manifest digest.
    pub async fn push_image(&self, repo: &str, tag: &str, seed: &str) -> String {
        self.push_image_manifest(repo, tag, seed).await.0
    }

    /// [`Registry::push_image`], also returning the manifest's bytes.
    pub async fn push_image_manifest(
        &self,
        repo: &str,
        tag: &str,
        seed: &str,
    ) -> (String, Vec<u8>) {
        let layer = format!("portier test layer: {seed}\n").into_bytes();
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            sha256_digest(&layer)
        )
        .into_bytes();
        self.push_blob(repo, &layer).await;
        self.push_blob(repo, &config).await;
        let manifest = oci_manifest(
            &descriptor(OCI_CONFIG, &config, &[]),
            &[descriptor(OCI_LAYER, &layer, &[])],
        );
        let digest = self.push_manifest(repo, tag, OCI_MANIFEST, &manifest).await;
        (digest, manifest)
    }

    /// Pushes an OCI 1.1 referrer of `subject` (an image manifest digest in `repo`): the
    /// `blob` as the single layer of media type `layer_type`, the empty config, `artifactType`
    /// set and `subject` naming the image, as cosign v3 and `notation sign` push it. Pushed
    /// by digest (no tag). Returns the referrer's descriptor for an index.
    pub async fn push_referrer(
        &self,
        repo: &str,
        subject: &str,
        subject_size: usize,
        artifact_type: &str,
        layer_type: &str,
        blob: &[u8],
    ) -> serde_json::Value {
        self.push_blob(repo, blob).await;
        self.push_blob(repo, b"{}").await;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY, "digest": sha256_digest(b"{}"), "size": 2},
            "layers": [{"mediaType": layer_type, "digest": sha256_digest(blob), "size": blob.len()}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size},
            "annotations": {"org.opencontainers.image.created": "2026-12-01T00:00:00Z"}
        }))
        .unwrap();
        let digest = sha256_digest(&manifest);
        self.push_manifest(repo, &digest, OCI_MANIFEST, &manifest)
            .await;
        serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": manifest.len(),
            "artifactType": artifact_type
        })
    }

    /// Writes the referrers tag schema's index for `subject` (tag `sha256-<hex>`), listing
    /// `referrers` (descriptors from [`Registry::push_referrer`]): what a client does on a
    /// registry without the referrers API, as distribution 2.8 is.
    pub async fn tag_referrers(&self, repo: &str, subject: &str, referrers: &[serde_json::Value]) {
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": referrers
        }))
        .unwrap();
        let tag = subject.replace(':', "-");
        self.push_manifest(repo, &tag, OCI_INDEX, &index).await;
    }

    /// Pushes cosign's signature artifact for `image_digest` in `repo`: an OCI manifest
    /// tagged `sha256-<hex>.sig` with one simple-signing layer per signature (cosign appends
    /// a layer each time an image is signed again). Replaces any earlier artifact; returns
    /// the artifact's manifest digest.
    pub async fn push_signatures(
        &self,
        repo: &str,
        image_digest: &str,
        layers: &[SignatureLayer],
    ) -> String {
        let mut descriptors = Vec::with_capacity(layers.len());
        for layer in layers {
            self.push_blob(repo, &layer.payload).await;
            descriptors.push(descriptor(
                SIMPLE_SIGNING,
                &layer.payload,
                &[(SIGNATURE_ANNOTATION, &layer.signature_b64)],
            ));
        }
        let config = cosign_config(layers);
        self.push_blob(repo, &config).await;
        let manifest = oci_manifest(&descriptor(OCI_CONFIG, &config, &[]), &descriptors);
        self.push_manifest(repo, &signature_tag(image_digest), OCI_MANIFEST, &manifest)
            .await
    }

    /// Pushes a legacy signature artifact whose layers carry any annotations (keyless
    /// signatures add the certificate and the Rekor bundle): (payload, annotations) each.
    pub async fn push_annotated_signatures(
        &self,
        repo: &str,
        image_digest: &str,
        layers: &[AnnotatedLayer],
    ) -> String {
        let mut descriptors = Vec::with_capacity(layers.len());
        let mut plain = Vec::with_capacity(layers.len());
        for (payload, annotations) in layers {
            self.push_blob(repo, payload).await;
            let pairs: Vec<(&str, &str)> = annotations
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            descriptors.push(descriptor(SIMPLE_SIGNING, payload, &pairs));
            plain.push(SignatureLayer {
                payload: payload.clone(),
                signature_b64: String::new(),
            });
        }
        let config = cosign_config(&plain);
        self.push_blob(repo, &config).await;
        let manifest = oci_manifest(&descriptor(OCI_CONFIG, &config, &[]), &descriptors);
        self.push_manifest(repo, &signature_tag(image_digest), OCI_MANIFEST, &manifest)
            .await
    }

    /// Signs `image_digest` in `repo` with each signer, as `cosign sign --key` run once per
    /// signer would (payload naming this registry's repository); returns the artifact digest.
    pub async fn sign_image(
        &self,
        repo: &str,
        image_digest: &str,
        signers: &[&TestSigner],
    ) -> String {
        let payload = simple_signing_payload(&self.repository(repo), image_digest);
        let layers: Vec<SignatureLayer> =
            signers.iter().map(|s| s.layer(payload.clone())).collect();
        self.push_signatures(repo, image_digest, &layers).await
    }

    /// Deletes a manifest by digest (e.g. to remove a signature artifact).
    pub async fn delete_manifest(&self, repo: &str, digest: &str) {
        let r = self
            .client
            .delete(format!("{}/v2/{repo}/manifests/{digest}", self.base_url()))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(status, 202, "deleting manifest {repo}@{digest}: {body}");
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An ECDSA P-256 key pair made for one test, used like a `cosign generate-key-pair` key.
pub struct TestSigner {
    key: EcdsaKeyPair,
    public_key_pem: String,
    rng: SystemRandom,
}

impl Default for TestSigner {
    fn default() -> Self {
        Self::new()
    }
}

impl TestSigner {
    pub fn new() -> TestSigner {
        let generated = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            generated.serialized_der(),
            &rng,
        )
        .unwrap();
        TestSigner {
            key,
            public_key_pem: generated.public_key_pem(),
            rng,
        }
    }

    /// The SPKI public key as PEM ("-----BEGIN PUBLIC KEY-----"), like cosign.pub.
    pub fn public_key_pem(&self) -> String {
        self.public_key_pem.clone()
    }

    /// Standard padded base64 of the ASN.1 DER ECDSA-P256-SHA256 signature over `payload`,
    /// as cosign stores it in the layer annotation.
    pub fn sign(&self, payload: &[u8]) -> String {
        let signature = self.key.sign(&self.rng, payload).unwrap();
        STANDARD.encode(signature.as_ref())
    }

    /// A signature layer: `payload` with this key's signature over it.
    pub fn layer(&self, payload: Vec<u8>) -> SignatureLayer {
        let signature_b64 = self.sign(&payload);
        SignatureLayer {
            payload,
            signature_b64,
        }
    }
}
