//! The HTTPS client side: TLS to portier, HTTP/1.1 or HTTP/2 senders.

use super::*;

pub(crate) fn tls_connector(
    ca_pem: &[u8],
    protocol: Protocol,
    resumption: bool,
) -> Result<TlsConnector> {
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
pub(crate) enum Sender {
    H1(Arc<Mutex<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

pub(crate) async fn connect(
    addr: SocketAddr,
    connector: &TlsConnector,
    protocol: Protocol,
) -> Result<Sender> {
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
    pub(crate) async fn post(&self, uri: &Uri, authority: &str, body: Bytes) -> Result<u16> {
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
