//! Hot reload under traffic: verdicts follow the policy files, nothing fails while they change,
//! and a broken set never replaces a good one.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{TestServer, good_container, pod, policy, post_with, review_bytes};
use serde_json::json;

/// Functional deadline for a reload to show (a failure means "never"); the measured time is
/// printed. Reload speed itself is a benchmark concern, not a test assertion.
const DEADLINE: Duration = Duration::from_secs(10);

fn privileged_pod() -> serde_json::Value {
    let mut p = pod("shop", vec![good_container("app")]);
    p["spec"]["containers"][0]["securityContext"]["privileged"] = json!(true);
    p
}

/// Writes a file the way editors and config tools do: a new file renamed over the old one.
fn replace_file(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn wait_until<F, Fut>(what: &str, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !probe().await {
        assert!(
            started.elapsed() < DEADLINE,
            "{what} did not happen within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

struct Observation {
    started: Instant,
    finished: Instant,
    allowed: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_follow_edits_under_traffic_and_broken_files_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, policy("no-privileged", "privileged", "warn", "{}")).unwrap();
    // A long backup poll: the change must be seen through file events.
    let server = TestServer::start_in(dir, Duration::from_secs(60)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for http2 in [false, true, false, true] {
        let client = server.pki.client(http2);
        let base = server.base.clone();
        let stop = Arc::clone(&stop);
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let (status, answer) =
                    post_with(&client, &base, "/validate", review_bytes(&privileged_pod())).await;
                assert_eq!(status, 200, "a request failed during reload: {answer}");
                let allowed = answer["response"]["allowed"].as_bool().unwrap();
                seen.push(Observation {
                    started,
                    finished: Instant::now(),
                    allowed,
                });
            }
            seen
        }));
    }

    // Valid → stricter: warn becomes enforce.
    tokio::time::sleep(Duration::from_millis(200)).await;
    replace_file(
        &file,
        &policy("no-privileged", "privileged", "enforce", "{}"),
    );
    let took = wait_until("the stricter policy", || async {
        server.validate(privileged_pod()).await["allowed"] == false
    })
    .await;
    eprintln!("stricter policy in force after {took:?}");

    // Stricter → broken: the enforce set stays.
    let failed_before = failed_reloads(&server).await;
    replace_file(
        &file,
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: x}\nspec: {check: privileged, mode: sometimes}\n",
    );
    let took = wait_until("the failed reload to be counted", || async {
        failed_reloads(&server).await > failed_before
    })
    .await;
    eprintln!("broken file rejected after {took:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;

    stop.store(true, Ordering::Relaxed);
    let mut observations = Vec::new();
    for c in clients {
        observations.extend(c.await.unwrap());
    }
    assert!(
        observations.len() > 20,
        "traffic flowed: {} requests",
        observations.len()
    );
    assert!(
        observations.iter().any(|o| o.allowed),
        "warn mode allowed at first"
    );
    // Once a deny has been answered, every request started afterwards is denied: the swap is
    // atomic and never rolled back by the broken file.
    let first_deny = observations
        .iter()
        .filter(|o| !o.allowed)
        .map(|o| o.finished)
        .min()
        .expect("the enforce policy denied some requests");
    let late_allows = observations
        .iter()
        .filter(|o| o.allowed && o.started > first_deny)
        .count();
    assert_eq!(
        late_allows, 0,
        "requests allowed after the enforce set was in force"
    );
    assert_eq!(server.validate(privileged_pod()).await["allowed"], false);
    assert_eq!(server.get("/readyz").await.0, 200);
    eprintln!(
        "{} reviews answered during the reloads, none failed",
        observations.len()
    );
    server.stop().await;
}

async fn failed_reloads(server: &TestServer) -> u64 {
    let (_, metrics) = server.get("/metrics").await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"portier_policy_reloads_total{result="failed"} "#))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A mounted ConfigMap: keys are symlinks to `..data/<key>`, and an update renames a new
/// `..data` symlink over the old one, pointing at a new timestamped directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_style_symlink_swap_is_picked_up() {
    use std::os::unix::fs::symlink;
    let root = tempfile::tempdir().unwrap();
    let mount = root.path().join("policies");
    std::fs::create_dir(&mount).unwrap();
    let version_1 = mount.join("..2026_11_23_10_00_00.000000001");
    std::fs::create_dir(&version_1).unwrap();
    std::fs::write(
        version_1.join("policies.yaml"),
        policy("no-privileged", "privileged", "warn", "{}"),
    )
    .unwrap();
    symlink(version_1.file_name().unwrap(), mount.join("..data")).unwrap();
    symlink("..data/policies.yaml", mount.join("policies.yaml")).unwrap();

    let server = TestServer::start_at(root, Some(mount.clone()), Duration::from_secs(60)).await;
    assert_eq!(server.validate(privileged_pod()).await["allowed"], true);

    let version_2 = mount.join("..2026_11_23_10_05_00.000000002");
    std::fs::create_dir(&version_2).unwrap();
    std::fs::write(
        version_2.join("policies.yaml"),
        policy("no-privileged", "privileged", "enforce", "{}"),
    )
    .unwrap();
    symlink(version_2.file_name().unwrap(), mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    std::fs::remove_dir_all(&version_1).unwrap();

    let took = wait_until("the ConfigMap update", || async {
        server.validate(privileged_pod()).await["allowed"] == false
    })
    .await;
    eprintln!("ConfigMap update in force after {took:?}");
    server.stop().await;
}
