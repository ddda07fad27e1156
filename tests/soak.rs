//! Soak: the real binary under steady HTTPS traffic while its policies are reloaded 50 times
//! (good and broken alternately) and its certificate is rotated twice. Bounded to ~20 s.
//!
//! Holds: no request fails; every verdict is the verdict of a valid policy set (never of a
//! broken or empty one); RSS grows by less than `RSS_GROWTH_BOUND_KIB`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{ServeProcess, TestPki, good_container, pod, policy, replace_file, write_private};
use serde_json::json;

const RELOADS: usize = 50;
const RELOAD_EVERY: Duration = Duration::from_millis(250);
/// Stated bound on RSS growth across the soak (allocator slack, TLS sessions, metric series).
const RSS_GROWTH_BOUND_KIB: u64 = 20 * 1024;

fn client(pki: &TestPki, http2: bool) -> reqwest::Client {
    pki.client_builder(http2, None)
        // Short-lived connections too, so handshakes happen across the rotations.
        .pool_idle_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Set A: privileged is warn → allowed with a warning.
    Warned,
    /// Set B: privileged is enforce → denied.
    Denied,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_reloads_and_rotations_under_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    let file = policies.join("policy.yaml");
    let set_a = policy("privileged", "privileged", "warn", "{}");
    let set_b = policy("privileged", "privileged", "enforce", "{}");
    let broken = "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: privileged}\nspec: {check: privileged, mode: maybe}\n";
    std::fs::write(&file, &set_a).unwrap();
    let pki = TestPki::new();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    std::fs::write(&cert, &pki.cert_pem).unwrap();
    write_private(&key, &pki.key_pem);

    let server = ServeProcess::start(&[
        "--policies",
        policies.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let base = format!("https://{}", server.addr);
    let mut object = pod("shop", vec![good_container("app")]);
    object["spec"]["containers"][0]["securityContext"]["privileged"] = json!(true);
    let body = common::review_bytes(&object);

    // Warm up, then take the baseline RSS.
    let warm = client(&pki, true);
    for _ in 0..200 {
        common::post_with(&warm, &base, "/validate", body.clone()).await;
    }
    let rss_start = server.rss_kib().expect("RSS readable");

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for http2 in [false, true, false, true] {
        let client = client(&pki, http2);
        let (base, body, stop) = (base.clone(), body.clone(), Arc::clone(&stop));
        workers.push(tokio::spawn(async move {
            let (mut warned, mut denied, mut failures) = (0u64, 0u64, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let sent = client
                    .post(format!("{base}/validate"))
                    .body(body.clone())
                    .send()
                    .await;
                let answer = match sent {
                    Ok(r) if r.status() == 200 => r
                        .bytes()
                        .await
                        .ok()
                        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok()),
                    Ok(r) => {
                        failures.push(format!("HTTP {}", r.status()));
                        continue;
                    }
                    Err(e) => {
                        failures.push(format!("{e:?}"));
                        continue;
                    }
                };
                let Some(answer) = answer else {
                    failures.push("unreadable answer".into());
                    continue;
                };
                let r = &answer["response"];
                let verdict = match (
                    r["allowed"].as_bool(),
                    r["warnings"].as_array().map(Vec::len),
                ) {
                    (Some(true), Some(1)) => Verdict::Warned,
                    (Some(false), _) if r["status"]["code"] == 403 => Verdict::Denied,
                    _ => {
                        failures.push(format!("verdict of no valid set: {answer}"));
                        continue;
                    }
                };
                match verdict {
                    Verdict::Warned => warned += 1,
                    Verdict::Denied => denied += 1,
                }
            }
            (warned, denied, failures)
        }));
    }

    // 50 reloads: A, broken, B, broken, A, ... and two certificate rotations on the way.
    let mut last_good = Verdict::Warned;
    for i in 0..RELOADS {
        let text = match i % 4 {
            0 => {
                last_good = Verdict::Denied;
                &set_b
            }
            2 => {
                last_good = Verdict::Warned;
                &set_a
            }
            _ => broken,
        };
        replace_file(&file, text, 0o644);
        if i == RELOADS / 3 || i == 2 * RELOADS / 3 {
            let (new_cert, new_key) = pki.reissue();
            replace_file(&key, &new_key, 0o600);
            replace_file(&cert, &new_cert, 0o644);
        }
        tokio::time::sleep(RELOAD_EVERY).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut warned, mut denied, mut failures) = (0, 0, Vec::new());
    for w in workers {
        let (a, b, f) = w.await.unwrap();
        warned += a;
        denied += b;
        failures.extend(f);
    }
    let rss_end = server.rss_kib().expect("RSS readable");
    let (_, final_answer) =
        common::post_with(&client(&pki, true), &base, "/validate", body.clone()).await;
    let (_, metrics) = common::get_text(
        &client(&pki, false),
        &format!("http://{}/metrics", server.metrics_addr),
    )
    .await;
    let (code, log) = server.terminate();

    eprintln!(
        "soak: {} reviews ({warned} warned, {denied} denied), {} failures; RSS {rss_start} KiB -> {rss_end} KiB",
        warned + denied,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "failed requests: {:?}",
        &failures[..failures.len().min(5)]
    );
    assert!(
        warned > 0 && denied > 0,
        "both valid sets were in force at some point"
    );
    let final_verdict = if final_answer["response"]["allowed"] == false {
        Verdict::Denied
    } else {
        Verdict::Warned
    };
    assert_eq!(final_verdict, last_good, "the last valid set is in force");
    let count = |needle: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(needle))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let ok = count(r#"portier_policy_reloads_total{result="ok"} "#);
    let failed = count(r#"portier_policy_reloads_total{result="failed"} "#);
    let tls_ok = count(r#"portier_tls_reloads_total{result="ok"} "#);
    eprintln!("soak: policy reloads ok {ok}, failed {failed}; TLS reloads ok {tls_ok}");
    // Each broken write is refused and reported once (events may coalesce, never double).
    assert!(
        (20.0..=25.0).contains(&failed),
        "broken sets were seen and refused once each: {failed}"
    );
    assert!(ok >= 20.0, "good sets were loaded: {ok}");
    assert!(tls_ok >= 2.0, "both rotations were loaded: {tls_ok}");
    assert!(
        rss_end <= rss_start + RSS_GROWTH_BOUND_KIB,
        "RSS grew from {rss_start} KiB to {rss_end} KiB"
    );
    assert_eq!(code, Some(0), "clean exit:\n{}", log.join("\n"));
}
