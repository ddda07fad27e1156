//! Security of portier itself: mutual TLS, the separate operations listener, decision logs
//! that leak nothing, private-key hygiene.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Options, ServeProcess, TestPki, TestServer, good_container, pod, policy, write_private,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn mtls_server(allowed: Vec<String>) -> (TestServer, TestPki) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        policy("np", "privileged", "enforce", "{}"),
    )
    .unwrap();
    let client_ca = TestPki::new();
    let options = Options {
        client_auth: Some((client_ca.ca_pem.clone(), allowed)),
        ..Options::default()
    };
    (TestServer::start_with(dir, options).await, client_ca)
}

async fn validate_status(
    client: &reqwest::Client,
    server: &TestServer,
) -> Result<u16, reqwest::Error> {
    let body = common::review_bytes(&pod("shop", vec![good_container("app")]));
    let r = client
        .post(format!("{}/validate", server.base))
        .body(body)
        .send()
        .await?;
    Ok(r.status().as_u16())
}

#[tokio::test]
async fn mutual_tls_admits_only_the_right_client() {
    let (server, client_ca) = mtls_server(vec!["kube-apiserver*".into()]).await;

    for http2 in [false, true] {
        let no_cert = server.pki.client(http2);
        assert!(
            validate_status(&no_cert, &server).await.is_err(),
            "no client certificate"
        );

        let other_ca = TestPki::new();
        let foreign = other_ca.client_cert("kube-apiserver-webhook-client");
        let foreign_client = server.pki.client_with_identity(http2, Some(&foreign));
        assert!(
            validate_status(&foreign_client, &server).await.is_err(),
            "certificate from another CA"
        );

        let intruder = client_ca.client_cert("intruder");
        let intruder_client = server.pki.client_with_identity(http2, Some(&intruder));
        assert!(
            validate_status(&intruder_client, &server).await.is_err(),
            "subject not allowed"
        );

        let apiserver = client_ca.client_cert("kube-apiserver-webhook-client");
        let apiserver_client = server.pki.client_with_identity(http2, Some(&apiserver));
        assert_eq!(
            validate_status(&apiserver_client, &server).await.unwrap(),
            200
        );
    }
    // Probes and Prometheus need no client certificate: they use the operations listener.
    assert_eq!(server.get("/readyz").await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn mutual_tls_without_an_allow_list_accepts_any_subject_of_the_ca() {
    let (server, client_ca) = mtls_server(Vec::new()).await;
    let anyone = client_ca.client_cert("anything");
    let client = server.pki.client_with_identity(true, Some(&anyone));
    assert_eq!(validate_status(&client, &server).await.unwrap(), 200);
    server.stop().await;
}

/// A raw HTTP/1.1-over-TLS connection with `config`, or the handshake's error.
async fn raw_connection(
    server: &TestServer,
    config: &Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let addr = server.base.trim_start_matches("https://");
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(Arc::clone(config))
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
}

/// The head of a review POST and its body.
fn review_request() -> (Vec<u8>, Vec<u8>) {
    let body = common::review_bytes(&pod("shop", vec![good_container("app")]));
    let head = format!(
        "POST /validate HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    (head.into_bytes(), body)
}

/// Reads one HTTP/1.1 response (its head and a Content-Length body); an empty string when the
/// server closes or refuses the connection (a TLS 1.3 client learns that its certificate was
/// refused only on its first read).
async fn read_response(
    conn: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> String {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => 0,
            Err(_) => panic!("no answer within 10 s"),
        };
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .and_then(|v| v.trim().parse::<usize>().ok())
            });
            if length.is_some_and(|len| body.len() >= len) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// One whole review over a new connection: the response, or empty when refused.
async fn review_over_new_connection(
    server: &TestServer,
    config: &Arc<rustls::ClientConfig>,
) -> String {
    let Ok(mut conn) = raw_connection(server, config).await else {
        return String::new();
    };
    let (head, body) = review_request();
    if conn.write_all(&head).await.is_err() || conn.write_all(&body).await.is_err() {
        return String::new();
    }
    read_response(&mut conn).await
}

async fn metric(server: &TestServer, prefix: &str) -> f64 {
    let (_, text) = server.get("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_client_ca_is_used_for_new_handshakes_and_open_connections_are_untouched() {
    const DEADLINE: Duration = Duration::from_secs(10);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        policy("np", "privileged", "enforce", "{}"),
    )
    .unwrap();
    let old_ca = TestPki::new();
    let options = Options {
        client_auth: Some((old_ca.ca_pem.clone(), vec!["kube-apiserver*".into()])),
        // The review held half-sent across the rotation must not meet its deadline however
        // long the reload takes on a busy machine.
        serve: Some(portier::server::ServeOptions {
            request_timeout: Duration::from_secs(120),
            ..Default::default()
        }),
        ..Options::default()
    };
    let server = TestServer::start_with(dir, options).await;
    let subject = "kube-apiserver-webhook-client";
    // One client configuration for every connection of the old client: it keeps the session
    // tickets the server hands out, so its new connections offer to resume (which must not
    // get it past a CA that no longer trusts it).
    let old_identity = old_ca.client_cert(subject);
    let old_client = Arc::new(server.pki.client_config(false, Some(&old_identity)));

    // An open keep-alive connection of the old client, with a review half-sent across the
    // rotation...
    let mut open = raw_connection(&server, &old_client).await.unwrap();
    let (head, body) = review_request();
    open.write_all(&head).await.unwrap();
    open.write_all(&body).await.unwrap();
    let answer = read_response(&mut open).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    open.write_all(&head).await.unwrap();
    open.write_all(&body[..100]).await.unwrap();
    open.flush().await.unwrap();
    // ...and an HTTP/2 connection (reqwest keeps it in its pool).
    let established = server.pki.client_with_identity(true, Some(&old_identity));
    assert_eq!(validate_status(&established, &server).await.unwrap(), 200);

    // The CA bundle is replaced as a mounted ConfigMap or Secret would be.
    let ok_before = metric(&server, r#"portier_tls_reloads_total{result="ok"} "#).await;
    let new_ca = TestPki::new();
    let ca_file = server.path().join("client-ca.pem");
    common::replace_file(&ca_file, &new_ca.ca_pem, 0o644);
    let newcomer = new_ca.client_cert(subject);
    let new_client = server.pki.client_with_identity(true, Some(&newcomer));
    let started = Instant::now();
    while validate_status(&new_client, &server).await.ok() != Some(200) {
        assert!(
            started.elapsed() < DEADLINE,
            "a client of the new CA never got in"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("new client CA in use after {:?}", started.elapsed());
    assert!(metric(&server, r#"portier_tls_reloads_total{result="ok"} "#).await > ok_before);

    // The in-flight review is answered, and the connection goes on serving.
    open.write_all(&body[100..]).await.unwrap();
    let answer = read_response(&mut open).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "in flight: {answer}");
    open.write_all(&head).await.unwrap();
    open.write_all(&body).await.unwrap();
    let answer = read_response(&mut open).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "keep-alive: {answer}");
    assert_eq!(
        validate_status(&established, &server).await.unwrap(),
        200,
        "the open HTTP/2 connection is untouched"
    );

    // A new connection of the old client is refused, resuming or not.
    let refused = review_over_new_connection(&server, &old_client).await;
    assert!(refused.is_empty(), "old CA, session to resume: {refused}");
    let fresh_old = Arc::new(server.pki.client_config(false, Some(&old_identity)));
    let refused = review_over_new_connection(&server, &fresh_old).await;
    assert!(refused.is_empty(), "old CA: {refused}");
    // --client-cn-allow still applies to the new CA's certificates.
    let intruder = new_ca.client_cert("intruder");
    let intruder_client = server.pki.client_with_identity(true, Some(&intruder));
    assert!(validate_status(&intruder_client, &server).await.is_err());

    // A bundle that does not parse is counted, and the new CA stays.
    let failed_before = metric(&server, r#"portier_tls_reloads_total{result="failed"} "#).await;
    common::replace_file(&ca_file, "not a certificate\n", 0o644);
    let started = Instant::now();
    while metric(&server, r#"portier_tls_reloads_total{result="failed"} "#).await <= failed_before {
        assert!(
            started.elapsed() < DEADLINE,
            "the broken bundle was never looked at"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = server.pki.client_with_identity(false, Some(&newcomer));
    assert_eq!(validate_status(&again, &server).await.unwrap(), 200);
    assert!(
        review_over_new_connection(&server, &fresh_old)
            .await
            .is_empty()
    );
    server.stop().await;
}

/// Policies, certificate and key for a `portier serve` process; returns their paths and the
/// PKI that made the certificate.
fn serving_files(dir: &std::path::Path) -> (String, String, String, TestPki) {
    let pki = TestPki::new();
    let policies = dir.join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("p.yaml"),
        policy("no-privileged", "privileged", "enforce", "{}")
            + "---\n"
            + &policy("warn-non-root", "run-as-non-root", "warn", "{}"),
    )
    .unwrap();
    let cert = dir.join("tls.crt");
    let key = dir.join("tls.key");
    std::fs::write(&cert, &pki.cert_pem).unwrap();
    write_private(&key, &pki.key_pem);
    (
        policies.display().to_string(),
        cert.display().to_string(),
        key.display().to_string(),
        pki,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_logs_are_structured_and_never_carry_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let (policies, cert, key, pki) = serving_files(dir.path());
    let server = ServeProcess::start(&[
        "--policies",
        &policies,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);

    let mut object = pod("shop", vec![good_container("app")]);
    object["metadata"]["annotations"] =
        json!({"vault.example.com/token": "SECRET-ANNOTATION-4711"});
    object["spec"]["containers"][0]["env"] =
        json!([{"name": "DB_PASSWORD", "value": "SECRET-ENV-0815"}]);
    object["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    let client = pki.client(true);
    let base = format!("https://{}", server.addr);
    let (status, answer) =
        common::post_with(&client, &base, "/validate", common::review_bytes(&object)).await;
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["allowed"], false);
    assert!(
        !answer.to_string().contains("SECRET-"),
        "the answer leaks nothing either"
    );

    // The client stays connected: shutdown must close its idle HTTP/2 connection (GOAWAY) and
    // exit promptly. (Multi-threaded: the client answers the GOAWAY's ping while `terminate`
    // blocks this thread.)
    let (code, lines) = server.terminate();
    assert_eq!(
        code,
        Some(0),
        "SIGTERM is a clean exit:\n{}",
        lines.join("\n")
    );
    let all = lines.join("\n");
    assert!(
        !all.contains("SECRET-ENV-0815"),
        "env value leaked into the log:\n{all}"
    );
    assert!(
        !all.contains("SECRET-ANNOTATION-4711"),
        "annotation leaked into the log:\n{all}"
    );
    assert!(
        !all.contains("vault.example.com"),
        "annotation key leaked into the log:\n{all}"
    );
    let decisions: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "portier::decision")
        .collect();
    assert_eq!(decisions.len(), 2, "one line per violation:\n{all}");
    let deny = decisions.iter().find(|d| d["mode"] == "enforce").unwrap();
    assert_eq!(deny["uid"], "2b752327-a529-4ffd-b2e2-478455e80a0d");
    assert_eq!(deny["operation"], "CREATE");
    assert_eq!(deny["kind"], "Pod");
    assert_eq!(deny["namespace"], "shop");
    assert_eq!(deny["name"], "web");
    assert_eq!(deny["user"], "alice@example.com");
    assert_eq!(deny["policy"], "no-privileged");
    assert_eq!(deny["check"], "privileged");
    assert_eq!(deny["allowed"], false);
    assert!(
        deny["message"]
            .as_str()
            .unwrap()
            .contains("spec.containers[0].securityContext.privileged")
    );
    let warn = decisions.iter().find(|d| d["mode"] == "warn").unwrap();
    assert_eq!(warn["policy"], "warn-non-root");
}

#[test]
fn a_world_readable_key_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let (policies, cert, key, _) = serving_files(dir.path());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portier"))
        .args([
            "serve",
            "--policies",
            &policies,
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ])
        .args(["--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is readable by every user"), "{err}");
    assert!(
        !err.contains("PRIVATE KEY"),
        "the key itself is never printed"
    );

    let server = ServeProcess::start(&[
        "--policies",
        &policies,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--allow-world-readable-key",
    ]);
    let (code, _) = server.terminate();
    assert_eq!(code, Some(0));
}
