//! TLS for the webhook listener: rustls (ring provider), TLS 1.2 and 1.3 with the provider's
//! AEAD-only cipher suites, ALPN h2 and http/1.1, optional client certificates (mutual TLS),
//! and a certificate resolver whose key pair can be replaced while serving. Both the key pair
//! and the client CA are reloaded when their files change.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use globset::{Glob, GlobSet, GlobSetBuilder};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS certificate {}: {source}", path.display())]
    ReadCert {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("TLS certificate file {} holds no certificate", path.display())]
    NoCert { path: PathBuf },
    #[error("cannot read TLS private key {}: {source}", path.display())]
    ReadKey {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("TLS private key {} is not usable: {source}", path.display())]
    BadKey {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS private key {} does not match the certificate {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error(
        "TLS private key {} is readable by every user (mode {mode:o}); make it private (chmod 600, or defaultMode 0440 with fsGroup for a Secret volume), or pass --allow-world-readable-key",
        path.display()
    )]
    WorldReadableKey { path: PathBuf, mode: u32 },
    #[error("TLS certificate {} is not valid now: {why}", path.display())]
    NotValidNow { path: PathBuf, why: String },
    #[error("cannot read client CA {}: {source}", path.display())]
    ReadClientCa {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("client CA file {} holds no usable CA certificate", path.display())]
    NoClientCa { path: PathBuf },
    #[error("invalid --client-cn-allow glob {pattern:?}: {reason}")]
    BadSubjectGlob { pattern: String, reason: String },
    #[error("cannot build the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The one crypto provider portier uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM certificate chain and private key and checks that they belong together and
/// that the certificate is valid now.
pub fn load_key_pair(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    load_key_pair_with_expiry(cert_path, key_path).map(|(key, _)| key)
}

/// Like [`load_key_pair`], also returning the certificate's expiry (Unix seconds).
fn load_key_pair_with_expiry(
    cert_path: &Path,
    key_path: &Path,
) -> Result<(CertifiedKey, i64), TlsError> {
    let chain = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::ReadCert {
            path: cert_path.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCert {
            path: cert_path.to_owned(),
        });
    }
    let not_after = check_validity(&chain[0]).map_err(|why| TlsError::NotValidNow {
        path: cert_path.to_owned(),
        why,
    })?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|source| TlsError::ReadKey {
        path: key_path.to_owned(),
        source,
    })?;
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
        },
        source => TlsError::BadKey {
            path: key_path.to_owned(),
            source,
        },
    })?;
    Ok((certified, not_after))
}

/// Refuses a serving certificate outside its validity window: the API server would reject
/// every handshake, so serving it only turns a clear start-up error into failed admissions.
fn check_validity(cert: &CertificateDer<'_>) -> Result<i64, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| format!("cannot parse the certificate: {e}"))?;
    let validity = parsed.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now < validity.not_before {
        return Err(format!("not valid before {}", validity.not_before));
    }
    if now > validity.not_after {
        return Err(format!("expired at {}", validity.not_after));
    }
    Ok(validity.not_after.timestamp())
}

/// Refuses a private key file that every user on the machine can read.
pub fn check_key_permissions(key_path: &Path) -> Result<(), TlsError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Follows symlinks: Secret volumes expose keys as links into `..data`.
        if let Ok(meta) = std::fs::metadata(key_path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o004 != 0 {
                return Err(TlsError::WorldReadableKey {
                    path: key_path.to_owned(),
                    mode,
                });
            }
        }
    }
    #[cfg(not(unix))]
    let _ = key_path;
    Ok(())
}

/// Mutual TLS: clients must present a certificate signed by `ca`; with `allowed_subjects`,
/// its subject common name must also match one of these globs.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    pub ca: PathBuf,
    pub allowed_subjects: Vec<String>,
}

/// Verifies client certificates against the CA, then the subject against the allow list, so
/// a refused client fails the handshake itself.
#[derive(Debug)]
struct SubjectAllowList {
    chain: Arc<dyn ClientCertVerifier>,
    allowed: Option<GlobSet>,
}

fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

impl ClientCertVerifier for SubjectAllowList {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .chain
            .verify_client_cert(end_entity, intermediates, now)?;
        if let Some(allowed) = &self.allowed {
            let subject = common_name(end_entity);
            if !subject.as_deref().is_some_and(|cn| allowed.is_match(cn)) {
                tracing::warn!(
                    subject = subject.as_deref().unwrap_or("<none>"),
                    "client certificate refused: subject not in --client-cn-allow"
                );
                return Err(rustls::Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ));
            }
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// A fingerprint of the files' content (a file that cannot be read counts as one more
/// content), so a watcher acts once per change and not on every poll.
fn fingerprint_of(paths: &[&Path]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for path in paths {
        std::fs::read(path).ok().hash(&mut hasher);
    }
    hasher.finish()
}

fn client_verifier(auth: &ClientAuth) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&auth.ca)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::ReadClientCa {
            path: auth.ca.clone(),
            source,
        })?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError::NoClientCa {
            path: auth.ca.clone(),
        });
    }
    let chain = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TlsError::Config(rustls::Error::General(e.to_string())))?;
    let allowed = if auth.allowed_subjects.is_empty() {
        None
    } else {
        let mut set = GlobSetBuilder::new();
        for pattern in &auth.allowed_subjects {
            let glob = Glob::new(pattern).map_err(|e| TlsError::BadSubjectGlob {
                pattern: pattern.clone(),
                reason: e.kind().to_string(),
            })?;
            set.add(glob);
        }
        Some(set.build().map_err(|e| TlsError::BadSubjectGlob {
            pattern: auth.allowed_subjects.join(", "),
            reason: e.to_string(),
        })?)
    };
    Ok(Arc::new(SubjectAllowList { chain, allowed }))
}

/// The serving key pair's files, and how strictly to read them.
#[derive(Debug, Clone)]
pub struct KeyPairFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Accept a private key that every user can read (not recommended).
    pub allow_world_readable_key: bool,
}

impl KeyPairFiles {
    /// Reads and checks the pair; returns it with the certificate's expiry (Unix seconds).
    pub fn load(&self) -> Result<(CertifiedKey, i64), TlsError> {
        if !self.allow_world_readable_key {
            check_key_permissions(&self.key)?;
        }
        load_key_pair_with_expiry(&self.cert, &self.key)
    }

    fn fingerprint(&self) -> u64 {
        fingerprint_of(&[&self.cert, &self.key])
    }

    fn dirs(&self) -> Vec<PathBuf> {
        vec![parent_dir(&self.cert), parent_dir(&self.key)]
    }
}

/// The directory to watch for `path`: volumes update by swapping a symlink beside the file.
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Replaces `resolver`'s key pair whenever the files change (cert-manager renewing a Secret).
/// New handshakes use the new pair; established connections keep theirs. A pair that does
/// not load (half-written, mismatched, expired) is logged and counted, and the old one stays.
pub fn watch_key_pair(
    files: KeyPairFiles,
    resolver: Arc<CertResolver>,
    metrics: Arc<crate::metrics::Metrics>,
    poll: std::time::Duration,
) -> Result<crate::watch::Watcher, notify::Error> {
    let dirs = files.dirs();
    let last = std::sync::Mutex::new(files.fingerprint());
    crate::watch::watch_dirs(&dirs, poll, move || {
        let fingerprint = files.fingerprint();
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
        if *last == fingerprint {
            return;
        }
        // Remember failed content too: it is retried when the files change again, not on
        // every poll.
        *last = fingerprint;
        match files.load() {
            Ok((key, not_after)) => {
                resolver.replace(key);
                metrics.record_tls_reload(true, Some(not_after));
                tracing::info!(cert = %files.cert.display(), "TLS key pair reloaded");
            }
            Err(e) => {
                metrics.record_tls_reload(false, None);
                tracing::error!(error = %e, "TLS key pair reload failed; the previous pair stays in use");
            }
        }
    })
}

/// Serves the current key pair to every handshake; [`CertResolver::replace`] swaps it for new
/// handshakes without touching established connections.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl CertResolver {
    pub fn new(key: CertifiedKey) -> Arc<CertResolver> {
        Arc::new(CertResolver {
            current: ArcSwap::from_pointee(key),
        })
    }

    pub fn replace(&self, key: CertifiedKey) {
        self.current.store(Arc::new(key));
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The server configuration: TLS 1.3 and 1.2 only, ALPN h2 then http/1.1, and client
/// certificates required when `client_auth` is given.
pub fn server_config(
    resolver: Arc<CertResolver>,
    client_auth: Option<&ClientAuth>,
) -> Result<rustls::ServerConfig, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_auth {
        Some(auth) => builder.with_client_cert_verifier(client_verifier(auth)?),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The webhook listener's TLS configuration, as the next handshake gets it.
///
/// The key pair changes inside one configuration (through [`CertResolver`]). A new client CA
/// replaces the whole configuration instead: a fresh one also starts with an empty session
/// cache, and that matters because rustls does not verify a client certificate again when a
/// session is resumed, so a client of the old CA could otherwise come back through its
/// session ticket. Established connections keep the configuration they were accepted with.
#[derive(Debug)]
pub struct ServerTls {
    resolver: Arc<CertResolver>,
    client_auth: Option<ClientAuth>,
    current: ArcSwap<rustls::ServerConfig>,
    /// The client CA file's fingerprint, taken before the file was last read: a change after
    /// that read is seen as a change by [`watch_client_ca`], never missed.
    client_ca_read: std::sync::Mutex<u64>,
}

impl ServerTls {
    /// Builds the configuration; with `client_auth`, reads the client CA bundle.
    pub fn new(
        resolver: Arc<CertResolver>,
        client_auth: Option<ClientAuth>,
    ) -> Result<Arc<ServerTls>, TlsError> {
        let fingerprint = client_auth
            .as_ref()
            .map_or(0, |auth| fingerprint_of(&[&auth.ca]));
        let config = server_config(Arc::clone(&resolver), client_auth.as_ref())?;
        Ok(Arc::new(ServerTls {
            resolver,
            client_auth,
            current: ArcSwap::from_pointee(config),
            client_ca_read: std::sync::Mutex::new(fingerprint),
        }))
    }

    /// The configuration for the next handshake.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.current.load_full()
    }

    /// Whether clients must present a certificate.
    pub fn mutual(&self) -> bool {
        self.client_auth.is_some()
    }

    /// Reads the client CA bundle again if its content changed since the last read: `None`
    /// when it did not (or there is no client CA), else whether the new bundle is now used
    /// for new handshakes. A bundle that does not load leaves the configuration as it was; it
    /// is tried again when the file changes again.
    pub fn reload_client_ca(&self) -> Option<Result<(), TlsError>> {
        let auth = self.client_auth.as_ref()?;
        let fingerprint = fingerprint_of(&[&auth.ca]);
        let mut read = self
            .client_ca_read
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if *read == fingerprint {
            return None;
        }
        *read = fingerprint;
        Some(
            server_config(Arc::clone(&self.resolver), Some(auth))
                .map(|config| self.current.store(Arc::new(config))),
        )
    }
}

/// With mutual TLS, reloads the client CA bundle whenever its file changes (a mounted
/// ConfigMap or Secret updated in place): new handshakes are verified against the new CA,
/// established connections are untouched, and `--client-cn-allow` keeps applying. A bundle
/// that does not load is logged and counted in `portier_tls_reloads_total{result="failed"}`,
/// and the previous CA stays. `None` without mutual TLS.
pub fn watch_client_ca(
    tls: Arc<ServerTls>,
    metrics: Arc<crate::metrics::Metrics>,
    poll: std::time::Duration,
) -> Result<Option<crate::watch::Watcher>, notify::Error> {
    let Some(auth) = &tls.client_auth else {
        return Ok(None);
    };
    let ca = auth.ca.clone();
    let dirs = [parent_dir(&ca)];
    crate::watch::watch_dirs(&dirs, poll, move || match tls.reload_client_ca() {
        None => {}
        Some(Ok(())) => {
            metrics.record_tls_reload(true, None);
            tracing::info!(client_ca = %ca.display(), "client CA reloaded");
        }
        Some(Err(e)) => {
            metrics.record_tls_reload(false, None);
            tracing::error!(error = %e, "client CA reload failed; the previous CA stays in use");
        }
    })
    .map(Some)
}

/// A development CA and a serving certificate it signed, as PEM.
pub struct DevCert {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Makes a throwaway CA and a serving certificate for `hosts` (DNS names or IP addresses).
pub fn generate_dev_cert(hosts: &[String]) -> Result<DevCert, TlsError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "portier development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca = rcgen::Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(hosts.to_vec())?;
    params.distinguished_name.push(
        DnType::CommonName,
        hosts.first().map_or("portier", |h| h.as_str()),
    );
    let cert = params.signed_by(&key, &ca)?;
    Ok(DevCert {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn world_readable_keys_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("tls.key");
        std::fs::write(&key, "k").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check_key_permissions(&key).unwrap_err();
        assert!(
            e.to_string().contains("readable by every user (mode 644)"),
            "{e}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o440)).unwrap();
        assert!(check_key_permissions(&key).is_ok());
    }

    #[test]
    fn expired_certificates_are_refused() {
        use rcgen::{CertificateParams, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("c.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("k.pem"), key.serialize_pem()).unwrap();
        let e = load_key_pair(&dir.path().join("c.pem"), &dir.path().join("k.pem")).unwrap_err();
        assert!(
            e.to_string().contains("is not valid now: expired at"),
            "{e}"
        );
    }

    #[test]
    fn dev_cert_loads_and_mismatched_or_missing_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let a = generate_dev_cert(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        let b = generate_dev_cert(&["localhost".into()]).unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let cert = write("tls.crt", &a.cert_pem);
        let key = write("tls.key", &a.key_pem);
        let other_key = write("other.key", &b.key_pem);
        let garbage = write("garbage.pem", "hello");
        assert!(load_key_pair(&cert, &key).is_ok());
        let e = load_key_pair(&cert, &other_key).unwrap_err();
        assert!(matches!(e, TlsError::Mismatch { .. }), "{e}");
        let e = load_key_pair(&garbage, &key).unwrap_err();
        assert!(e.to_string().contains("holds no certificate"), "{e}");
        let e = load_key_pair(&cert, &dir.path().join("missing.key")).unwrap_err();
        assert!(e.to_string().contains("cannot read TLS private key"), "{e}");
        let resolver = CertResolver::new(load_key_pair(&cert, &key).unwrap());
        assert!(server_config(resolver, None).is_ok());
    }
}
