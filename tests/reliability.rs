//! Operating safely: key pair rotation without restart, load shedding, request deadlines,
//! graceful shutdown with requests in flight, hostile JSON.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Options, TestPki, TestServer, good_container, pod, policy, review_bytes};
use portier::server::ServeOptions;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEADLINE: Duration = Duration::from_secs(10);

async fn start(serve: Option<ServeOptions>) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        policy("np", "privileged", "enforce", "{}"),
    )
    .unwrap();
    let options = Options {
        serve,
        ..Options::default()
    };
    TestServer::start_with(dir, options).await
}

async fn metric(server: &TestServer, prefix: &str) -> f64 {
    let (_, text) = server.get("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn reviews_ok(client: &reqwest::Client, server: &TestServer) -> bool {
    let body = review_bytes(&pod("shop", vec![good_container("app")]));
    match client
        .post(format!("{}/validate", server.base))
        .body(body)
        .send()
        .await
    {
        Ok(r) => r.status() == 200,
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_pair_rotates_without_restart_and_a_bad_pair_is_refused() {
    let server = start(None).await;
    // HTTP/2 keeps one connection open across the rotation.
    let established = server.pki.client(true);
    assert!(reviews_ok(&established, &server).await);

    let rotated = server.rotate_key_pair();
    let fresh = rotated.client(true);
    let started = Instant::now();
    while !reviews_ok(&fresh, &server).await {
        assert!(
            started.elapsed() < DEADLINE,
            "new handshakes never got the new pair"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("new key pair in use after {:?}", started.elapsed());
    assert!(
        reviews_ok(&established, &server).await,
        "the established connection is untouched"
    );
    assert!(
        !reviews_ok(&server.pki.client(true), &server).await,
        "new handshakes no longer get the old pair"
    );
    assert!(metric(&server, r#"portier_tls_reloads_total{result="ok"} "#).await >= 1.0);

    // A key that does not match the certificate: rejected, the rotated pair stays.
    let failed_before = metric(&server, r#"portier_tls_reloads_total{result="failed"} "#).await;
    let stranger = TestPki::new();
    common::replace_file(&server.path().join("tls.key.pem"), &stranger.key_pem, 0o600);
    let started = Instant::now();
    while metric(&server, r#"portier_tls_reloads_total{result="failed"} "#).await <= failed_before {
        assert!(
            started.elapsed() < DEADLINE,
            "the bad pair was never looked at"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        reviews_ok(&rotated.client(true), &server).await,
        "the good pair is still served"
    );
    server.stop().await;
}

/// A raw HTTP/1.1-over-TLS connection, to hold a request half-sent.
async fn raw_connection(
    server: &TestServer,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(server.pki.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(portier::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let addr = server.base.trim_start_matches("https://");
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    connector
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

/// Sends the headers and the first `sent` bytes of a review, and returns the rest.
async fn start_review(
    conn: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    sent: usize,
) -> Vec<u8> {
    let body = review_bytes(&pod("shop", vec![good_container("app")]));
    let head = format!(
        "POST /validate HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body[..sent]).await.unwrap();
    conn.flush().await.unwrap();
    body[sent..].to_vec()
}

async fn read_response(
    conn: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> String {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = Vec::new();
    let started = Instant::now();
    while started.elapsed() < DEADLINE {
        let n = tokio::time::timeout(DEADLINE, conn.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok());
            if length.is_some_and(|len| body.len() >= len) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_in_flight_cap_requests_get_a_clean_503_and_slow_ones_time_out() {
    let server = start(Some(ServeOptions {
        max_in_flight: 1,
        request_timeout: Duration::from_millis(1500),
        ..ServeOptions::default()
    }))
    .await;
    // A client that sends half a review and stalls holds the only slot...
    let mut slow = raw_connection(&server).await;
    let _rest = start_review(&mut slow, 100).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...so the next review is shed, with a JSON body and Retry-After.
    let r = server
        .client
        .post(format!("{}/validate", server.base))
        .body(review_bytes(&pod("shop", vec![good_container("app")])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["reason"], "ServiceUnavailable");
    // The stalled request itself is answered when its deadline passes, not left hanging.
    let answer = read_response(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("not answered in time"), "{answer}");
    // And the slot is free again.
    assert!(reviews_ok(&server.client, &server).await);
    // A malformed review, for the third kind of failure.
    let r = server
        .client
        .post(format!("{}/validate", server.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // Each failure is counted as what it was.
    let (_, metrics) = server.get("/metrics").await;
    for outcome in ["shed", "timed_out", "invalid"] {
        let series = format!(
            r#"portier_admission_requests_total{{endpoint="validate",outcome="{outcome}"}} 1"#
        );
        assert!(metrics.contains(&series), "{series}\n{metrics}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_reports_not_ready_and_finishes_requests_in_flight() {
    let mut server = start(Some(ServeOptions {
        shutdown_delay: Duration::from_millis(300),
        ..ServeOptions::default()
    }))
    .await;
    let mut in_flight = raw_connection(&server).await;
    let rest = start_review(&mut in_flight, 200).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let running = server.server.take().unwrap();
    let shutdown = tokio::spawn(running.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 503, "not ready while draining: {body}");

    // The request that was in flight when shutdown began completes normally.
    in_flight.write_all(&rest).await.unwrap();
    in_flight.flush().await.unwrap();
    let answer = read_response(&mut in_flight).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"allowed\":true"), "{answer}");
    tokio::time::timeout(DEADLINE, shutdown)
        .await
        .unwrap()
        .unwrap();

    // Then nothing listens any more.
    let addr = server.base.trim_start_matches("https://").to_string();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn deeply_nested_json_does_no_harm() {
    let server = start(None).await;
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let review =
        serde_json::to_string(&common::review(&pod("shop", vec![good_container("app")]))).unwrap();

    // In a field policies never read: skipped without recursion, the pod is judged.
    let skipped = review.replacen("\"labels\":", &format!("\"deep\":{nested},\"labels\":"), 1);
    let (status, answer) = server.post("/validate", skipped.into_bytes()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["response"]["allowed"], true);

    // Where a list of containers is expected: fails closed, naming the field.
    let judged = review.replacen("\"containers\":[", &format!("\"containers\":[{nested},"), 1);
    let (status, answer) = server.post("/validate", judged.into_bytes()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["response"]["allowed"], false);
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("spec.containers"),
        "{answer}"
    );

    // As the whole body: refused.
    let (status, answer) = server.post("/validate", nested.clone().into_bytes()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("must be a JSON object"),
        "{answer}"
    );

    // Nesting in policy files and offline manifests is bounded by the YAML parser's budget.
    assert!(portier::policy::PolicySet::from_yaml("deep.yaml", &nested).is_err());
    assert!(reviews_ok(&server.client, &server).await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_do_not_hold_shutdown_open() {
    for http2 in [true, false] {
        let mut server = start(Some(ServeOptions {
            drain_timeout: Duration::from_secs(30),
            ..ServeOptions::default()
        }))
        .await;
        let client = server.pki.client(http2);
        assert!(reviews_ok(&client, &server).await);
        // The client keeps its connection open; shutdown closes it (GOAWAY for HTTP/2) instead
        // of waiting out the drain timeout.
        let started = Instant::now();
        let running = server.server.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), running.shutdown())
            .await
            .expect("shutdown did not wait for the idle connection");
        eprintln!(
            "http2={http2}: shutdown with an idle connection took {:?}",
            started.elapsed()
        );
        drop(client);
    }
}

#[tokio::test]
async fn an_empty_set_allowed_at_start_is_ready_and_allows_everything() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        allow_empty: true,
        ..Options::default()
    };
    let server = TestServer::start_with(dir, options).await;
    assert_eq!(
        server.get("/readyz").await.0,
        200,
        "--allow-empty serves, so it is ready"
    );
    assert!(reviews_ok(&server.client, &server).await);
    server.stop().await;
}
