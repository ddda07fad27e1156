//! `portier bench`: how fast the policies of a directory judge the user's own objects.
//!
//! Each input is an AdmissionReview as the API server sends it, or a bare workload (YAML or JSON,
//! several documents or a `List` allowed) that is wrapped in a CREATE review first. For each one,
//! after a warm-up, it measures the whole in-process path (decode + evaluate + encode, exactly
//! what `/validate` runs), the engine alone on the already decoded pod, and the heap allocations
//! of one review (when the counting allocator is installed: the `portier` binary built with
//! the `alloc-count` feature, as tests build it).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::admission::{self, Endpoint, Outcome};
use crate::alloc_count;
use crate::engine::{self, Request};
use crate::pod::{self, WorkloadKind};
use crate::policy::PolicySet;

/// One object to measure.
#[derive(Debug, Clone)]
pub struct Input {
    /// The file name, with `[i]` appended when the file holds several objects.
    pub label: String,
    /// The AdmissionReview bytes posted to `/validate`.
    pub review: Vec<u8>,
}

/// What one input measured.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub label: String,
    pub bytes: usize,
    /// e.g. `Deployment shop/web`, or `not judged` for kinds portier lets through.
    pub what: String,
    pub outcome: Outcome,
    pub violations: usize,
    /// Decode + evaluate + encode, per review, in CPU time.
    pub review_ns: f64,
    /// The same on the wall clock (larger when the machine is busy).
    pub review_wall_ns: f64,
    /// `engine::evaluate` on the decoded pod, per review, in CPU time; `None` when there is no
    /// pod to judge.
    pub evaluate_ns: Option<f64>,
    /// Heap allocations of one review; `None` without the counting allocator.
    pub allocations: Option<f64>,
}

impl Measurement {
    /// `FILE<TAB>decode+evaluate+encode ns<TAB>evaluate-only ns<TAB>allocations`.
    pub fn tsv(&self) -> String {
        let opt = |v: Option<f64>, digits: usize| match v {
            Some(v) => format!("{v:.digits$}"),
            None => "-".to_owned(),
        };
        format!(
            "{}\t{:.0}\t{}\t{}",
            self.label,
            self.review_ns,
            opt(self.evaluate_ns, 0),
            opt(self.allocations, 0)
        )
    }
}

/// Reads `path`: an AdmissionReview is taken as it is; other objects are wrapped in reviews.
pub fn read_inputs(path: &Path) -> anyhow::Result<Vec<Input>> {
    use anyhow::Context;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let label = path.display().to_string();
    // JSON first: it keeps an AdmissionReview byte for byte as the API server would send it.
    let documents: Vec<Value> = match serde_json::from_str::<Value>(&text) {
        Ok(v) => vec![v],
        Err(_) => serde_saphyr::from_multiple(&text)
            .map_err(|e| anyhow::anyhow!("{label}: not valid JSON or YAML: {e}"))?,
    };
    let mut objects = Vec::new();
    for document in &documents {
        flatten(document, &mut objects);
    }
    if objects.is_empty() {
        anyhow::bail!("{label}: holds no object");
    }
    let many = objects.len() > 1;
    objects
        .into_iter()
        .enumerate()
        .map(|(i, object)| {
            let label = if many {
                format!("{label}[{i}]")
            } else {
                label.clone()
            };
            let review = if object.get("kind").and_then(Value::as_str) == Some(admission::KIND) {
                if !many && documents.len() == 1 && text.trim_start().starts_with('{') {
                    text.clone().into_bytes()
                } else {
                    serde_json::to_vec(object)?
                }
            } else {
                serde_json::to_vec(&wrap(object, i))?
            };
            Ok(Input { label, review })
        })
        .collect()
}

fn flatten<'v>(value: &'v Value, out: &mut Vec<&'v Value>) {
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind.ends_with("List")
        && let Some(items) = value.get("items").and_then(Value::as_array)
    {
        for item in items {
            flatten(item, out);
        }
        return;
    }
    if value.is_object() {
        out.push(value);
    }
}

/// An AdmissionReview for the CREATE of `object`, as the API server would send it.
pub fn wrap(object: &Value, index: usize) -> Value {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("v1");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let gvk = json!({"group": group, "version": version, "kind": kind});
    let gvr = json!({"group": group, "version": version,
        "resource": format!("{}s", kind.to_lowercase())});
    json!({
        "apiVersion": admission::API_VERSION,
        "kind": admission::KIND,
        "request": {
            "uid": format!("00000000-0000-4000-8000-{index:012}"),
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": object.pointer("/metadata/name"),
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "portier-bench", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

/// The decoded parts of a review that evaluation needs, read outside the timed loops.
struct ReviewParts {
    kind: WorkloadKind,
    namespace: String,
    user: Option<String>,
    object: String,
}

fn review_parts(review: &[u8]) -> Option<ReviewParts> {
    let v: Value = serde_json::from_slice(review).ok()?;
    let request = v.get("request")?;
    let group = request.pointer("/kind/group")?.as_str()?;
    let kind = request.pointer("/kind/kind")?.as_str()?;
    let kind = WorkloadKind::from_group_kind(group, kind)?;
    let object = request.get("object")?;
    let namespace = request
        .get("namespace")
        .and_then(Value::as_str)
        .or_else(|| object.pointer("/metadata/namespace")?.as_str())
        .unwrap_or("")
        .to_owned();
    Some(ReviewParts {
        kind,
        namespace,
        user: request
            .pointer("/userInfo/username")
            .and_then(Value::as_str)
            .map(str::to_owned),
        object: object.to_string(),
    })
}

/// Per-call times of a timed loop: on this thread's CPU clock, and on the wall clock.
#[derive(Debug, Clone, Copy)]
pub struct PerCall {
    /// Time this thread spent on a CPU per call: not inflated when other processes compete for
    /// the cores. Equals `wall_ns` on an idle machine. Wall time where no CPU clock exists.
    pub cpu_ns: f64,
    pub wall_ns: f64,
}

/// Times `iterations` calls of `f` after `iterations / 10` (at least 10) warm-up calls.
fn time_per_call<R>(iterations: u64, mut f: impl FnMut() -> R) -> PerCall {
    for _ in 0..(iterations / 10).max(10) {
        std::hint::black_box(f());
    }
    let cpu_started = thread_cpu_time();
    let started = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(f());
    }
    let wall = started.elapsed();
    let cpu = match (cpu_started, thread_cpu_time()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => wall,
    };
    PerCall {
        cpu_ns: duration_ns(cpu) / iterations as f64,
        wall_ns: duration_ns(wall) / iterations as f64,
    }
}

/// This thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`); `None` where there is no such clock.
#[cfg(unix)]
pub fn thread_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

#[cfg(not(unix))]
pub fn thread_cpu_time() -> Option<Duration> {
    None
}

fn duration_ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

/// Measures one input against `set`.
pub fn measure(input: &Input, set: &PolicySet, iterations: u64) -> Measurement {
    let iterations = iterations.max(1);
    let body = input.review.as_slice();
    let answer = admission::review(body, set, Endpoint::Validate);
    let review = time_per_call(iterations, || {
        admission::review(std::hint::black_box(body), set, Endpoint::Validate)
    });
    // Allocations are deterministic; a few calls are enough to average out lazy growth.
    let allocations = alloc_count::installed().then(|| {
        const CALLS: u64 = 16;
        let (_, n) = alloc_count::count(|| {
            for _ in 0..CALLS {
                std::hint::black_box(admission::review(body, set, Endpoint::Validate));
            }
        });
        n as f64 / CALLS as f64
    });
    let mut what = "not judged".to_owned();
    let mut violations = 0;
    let mut evaluate_ns = None;
    if let Some(j) = review_parts(body)
        && let Ok(workload) = pod::decode_workload(j.kind, &j.object)
    {
        let name = workload
            .name
            .as_deref()
            .or(workload.generate_name.as_deref())
            .unwrap_or("");
        what = format!("{} {}/{}", j.kind, j.namespace, name);
        if let Some(pod) = workload.pod() {
            let request = Request::new(j.kind, &j.namespace, j.user.as_deref());
            violations = engine::evaluate(set, &request, pod).violations.len();
            evaluate_ns = Some(
                time_per_call(iterations, || {
                    engine::evaluate(set, &request, std::hint::black_box(pod))
                })
                .cpu_ns,
            );
        }
    }
    Measurement {
        label: input.label.clone(),
        bytes: body.len(),
        what,
        outcome: answer.outcome,
        violations,
        review_ns: review.cpu_ns,
        review_wall_ns: review.wall_ns,
        evaluate_ns,
        allocations,
    }
}

/// A few lines a person reads: what each input is, its verdict, and what the figures mean.
pub fn summary(results: &[Measurement], policies: usize, iterations: u64) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "portier bench: {policies} policies, {iterations} iterations per input after a warm-up, \
         one thread; times are this thread's CPU time"
    );
    for m in results {
        let per_second = 1e9 / m.review_ns;
        let _ = writeln!(
            out,
            "  {}: {} ({} bytes), {}{}: {:.1} µs per review ({:.0} reviews/s on one core), \
             evaluate {}, {} allocations",
            m.label,
            m.what,
            m.bytes,
            m.outcome.as_str(),
            if m.violations > 0 {
                format!(" with {} violation(s)", m.violations)
            } else {
                String::new()
            },
            m.review_ns / 1000.0,
            per_second,
            m.evaluate_ns
                .map_or("-".to_owned(), |ns| format!("{:.2} µs", ns / 1000.0)),
            m.allocations
                .map_or("uncounted".to_owned(), |a| format!("{a:.0}")),
        );
        if m.review_wall_ns > m.review_ns * 1.1 {
            let _ = writeln!(
                out,
                "    (wall clock {:.1} µs per review: other processes were using the CPUs)",
                m.review_wall_ns / 1000.0
            );
        }
    }
    let _ = writeln!(
        out,
        "columns: FILE, decode+evaluate+encode ns/review, evaluate-only ns/review, heap allocations/review"
    );
    if results.iter().any(|m| m.allocations.is_none()) {
        // Say why rather than let a `-` pass for "none": the product binary leaves the
        // counting allocator out.
        let _ = writeln!(
            out,
            "heap allocations are not counted: this binary has no counting allocator \
             (build it with `cargo build --release --features alloc-count`)"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: &str = "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: np}\nspec: {check: privileged}\n";

    #[test]
    fn bare_workloads_are_wrapped_and_measured() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pods.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: shop}\nspec:\n  containers: [{name: c, image: x, securityContext: {privileged: true}}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n",
        )
        .unwrap();
        let inputs = read_inputs(&file).unwrap();
        assert_eq!(inputs.len(), 2);
        assert!(inputs[0].label.ends_with("pods.yaml[0]"));
        let set = PolicySet::from_yaml("p.yaml", SET).unwrap();
        let pod = measure(&inputs[0], &set, 3);
        assert_eq!(pod.outcome, Outcome::Denied);
        assert_eq!(pod.violations, 1);
        assert_eq!(pod.what, "Pod shop/a");
        assert!(pod.evaluate_ns.is_some());
        let cm = measure(&inputs[1], &set, 3);
        assert_eq!(cm.outcome, Outcome::Allowed);
        assert_eq!(cm.what, "not judged");
        assert!(cm.evaluate_ns.is_none());
        let line = pod.tsv();
        assert_eq!(line.split('\t').count(), 4, "{line}");
        // The library's tests run on the system allocator: nothing to count.
        assert!(pod.allocations.is_none());
        let text = summary(&[pod, cm], 1, 3);
        assert!(text.contains("denied with 1 violation(s)"));
        assert!(text.contains("heap allocations are not counted"), "{text}");
    }

    #[test]
    fn an_admission_review_is_taken_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("review.json");
        let review = serde_json::to_vec(&wrap(
            &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
                "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}}),
            7,
        ))
        .unwrap();
        std::fs::write(&file, &review).unwrap();
        let inputs = read_inputs(&file).unwrap();
        assert_eq!(inputs.len(), 1);
        assert_eq!(inputs[0].review, review);
        let set = PolicySet::from_yaml("p.yaml", SET).unwrap();
        let m = measure(&inputs[0], &set, 2);
        assert_eq!(m.outcome, Outcome::Allowed);
        assert_eq!(m.what, "Deployment default/w");
    }
}
