//! Security of portier itself: mutual TLS, the separate operations listener, decision logs
//! that leak nothing, private-key hygiene.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{
    Options, ServeProcess, TestPki, TestServer, good_container, pod, policy, write_private,
};
use serde_json::{Value, json};

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
