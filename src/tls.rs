//! TLS for the webhook listener: rustls (ring provider), TLS 1.2 and 1.3, ALPN h2 and
//! http/1.1, and a certificate resolver whose key pair can be replaced while serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

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
    #[error("cannot build the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The one crypto provider portier uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM certificate chain and private key and checks that they belong together.
pub fn load_key_pair(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
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
    Ok(certified)
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

/// The server configuration: TLS 1.3 and 1.2 only, ALPN h2 then http/1.1.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
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
        assert!(server_config(resolver).is_ok());
    }
}
