//! Prometheus metrics.
//!
//! Label handles are resolved ahead of time (per endpoint and outcome at start, per policy at
//! load), because `with_label_values` takes a lock inside the vector: the request path only
//! touches atomics.

use std::sync::Mutex;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::namespaces::LabelSource;
use crate::outcome::{Endpoint, Outcome};
use crate::policy::PolicySet;

/// Buckets for request latency: a webhook answers in microseconds; the API server gives up after
/// its timeout (seconds).
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

const ENDPOINTS: [Endpoint; 2] = Endpoint::ALL;

pub struct Metrics {
    registry: Registry,
    /// [endpoint][outcome]
    requests: [[IntCounter; Outcome::ALL.len()]; 2],
    latency: [Histogram; 2],
    decisions: IntCounterVec,
    mutations: IntCounterVec,
    reloads_ok: IntCounter,
    reloads_failed: IntCounter,
    policies_loaded: IntGauge,
    tls_reloads_ok: IntCounter,
    tls_reloads_failed: IntCounter,
    tls_expiry: IntGauge,
    audit: AuditMetrics,
    images: ImageMetrics,
    namespaces: NamespaceMetrics,
}

/// `serve`'s Namespace cache, and where reviews' namespace labels came from.
struct NamespaceMetrics {
    cached: IntGauge,
    last_event: IntGauge,
    /// Seconds since `last_event`, set when rendering (a gauge that needs no query arithmetic).
    last_event_age: IntGauge,
    /// One per [`LabelSource`], then `unknown`.
    labels: [IntCounter; LabelSource::ALL.len() + 1],
}

/// `signed-images`: verifications, cache lookups, registry round trips.
struct ImageMetrics {
    /// [verified, rejected, unavailable]
    verifications: [IntCounter; 3],
    /// [hit, miss]
    cache: [IntCounter; 2],
    /// [resolve, signature_manifest, blob]
    registry_latency: [Histogram; 5],
}

/// A registry round trip, for the latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryOp {
    /// Tag → digest (HEAD of the manifest).
    Resolve,
    /// The `sha256-<hex>.sig` manifest.
    SignatureManifest,
    /// A signature payload, bundle or envelope.
    Blob,
    /// The referrers of a digest (the referrers API, or the referrers tag schema).
    Referrers,
    /// The image's own manifest, the bytes a Sigstore message signature signs.
    ImageManifest,
}

impl RegistryOp {
    const ALL: [RegistryOp; 5] = [
        RegistryOp::Resolve,
        RegistryOp::SignatureManifest,
        RegistryOp::Blob,
        RegistryOp::Referrers,
        RegistryOp::ImageManifest,
    ];

    fn as_str(self) -> &'static str {
        match self {
            RegistryOp::Resolve => "resolve",
            RegistryOp::SignatureManifest => "signature_manifest",
            RegistryOp::Blob => "blob",
            RegistryOp::Referrers => "referrers",
            RegistryOp::ImageManifest => "image_manifest",
        }
    }
}

/// How an image verification ended (the label of `portier_image_verifications_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationResult {
    Verified,
    Rejected,
    Unavailable,
}

/// Whether a verdict was in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    Hit,
    Miss,
}

/// The periodic audit's metrics (`serve --audit-interval`).
struct AuditMetrics {
    /// Replaced whole after each run; the lock keeps two runs from interleaving.
    violations: Mutex<IntGaugeVec>,
    runs: IntCounterVec,
    workloads: IntGauge,
    last_run: IntGauge,
}

/// Violations per (namespace, policy, check).
pub type AuditCounts = std::collections::BTreeMap<(String, String, String), u64>;

/// How a periodic audit run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditRun {
    /// Every namespace scanned completely.
    Complete,
    /// Results exported, but some namespace or kind could not be scanned.
    Partial,
    /// Nothing could be scanned; the gauges keep the previous run's values.
    Failed,
}

impl AuditRun {
    fn as_str(self) -> &'static str {
        match self {
            AuditRun::Complete => "complete",
            AuditRun::Partial => "partial",
            AuditRun::Failed => "failed",
        }
    }
}

fn endpoint_index(endpoint: Endpoint) -> usize {
    match endpoint {
        Endpoint::Validate => 0,
        Endpoint::Mutate => 1,
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        // The metric definitions below are constants: registering them cannot fail except by
        // a programming error (a duplicate name), which the unit test catches.
        let requests_vec = IntCounterVec::new(
            Opts::new(
                "portier_admission_requests_total",
                "Admission reviews answered, by endpoint and outcome (allowed, denied, invalid, shed: refused while too many were in flight, timed_out: not answered within the request timeout).",
            ),
            &["endpoint", "outcome"],
        )
        .expect("valid metric");
        let latency_vec = HistogramVec::new(
            HistogramOpts::new(
                "portier_admission_duration_seconds",
                "Time to answer one admission review, body read to response encoded.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["endpoint"],
        )
        .expect("valid metric");
        let decisions = IntCounterVec::new(
            Opts::new(
                "portier_policy_decisions_total",
                "Reviews in which a policy found a violation, by policy and mode.",
            ),
            &["policy", "mode"],
        )
        .expect("valid metric");
        let mutations = IntCounterVec::new(
            Opts::new(
                "portier_policy_mutations_total",
                "Patches returned by /mutate in which a policy filled something in, by policy.",
            ),
            &["policy"],
        )
        .expect("valid metric");
        let reloads = IntCounterVec::new(
            Opts::new(
                "portier_policy_reloads_total",
                "Policy set loads, by result (ok, failed). A failed load keeps the previous set.",
            ),
            &["result"],
        )
        .expect("valid metric");
        let policies_loaded =
            IntGauge::new("portier_policies_loaded", "Policies in the set in force.")
                .expect("valid metric");
        let tls_reloads = IntCounterVec::new(
            Opts::new(
                "portier_tls_reloads_total",
                "Serving key pair reloads after a file change, by result (ok, failed). A failed reload keeps the previous pair.",
            ),
            &["result"],
        )
        .expect("valid metric");
        let tls_expiry = IntGauge::new(
            "portier_tls_cert_expiry_timestamp_seconds",
            "When the serving certificate in use expires (Unix time).",
        )
        .expect("valid metric");
        let audit_violations = IntGaugeVec::new(
            Opts::new(
                "portier_audit_violations",
                "Violations found by the last periodic audit, every policy judged as enforce, by namespace, policy and check.",
            ),
            &["namespace", "policy", "check"],
        )
        .expect("valid metric");
        let audit_runs = IntCounterVec::new(
            Opts::new(
                "portier_audit_runs_total",
                "Periodic audit runs, by result (complete, partial, failed).",
            ),
            &["result"],
        )
        .expect("valid metric");
        let audit_workloads = IntGauge::new(
            "portier_audit_workloads",
            "Workloads (top-most controllers and standalone pods) judged by the last periodic audit.",
        )
        .expect("valid metric");
        let audit_last_run = IntGauge::new(
            "portier_audit_last_run_timestamp_seconds",
            "When the last periodic audit that exported results finished (Unix time).",
        )
        .expect("valid metric");
        let verifications = IntCounterVec::new(
            Opts::new(
                "portier_image_verifications_total",
                "Image signature verifications that reached the registry, by result (verified, rejected, unavailable).",
            ),
            &["result"],
        )
        .expect("valid metric");
        let image_cache = IntCounterVec::new(
            Opts::new(
                "portier_image_verdict_cache_total",
                "Image signature verdict lookups on the request path, by result (hit, miss).",
            ),
            &["result"],
        )
        .expect("valid metric");
        let registry_latency = HistogramVec::new(
            HistogramOpts::new(
                "portier_registry_request_duration_seconds",
                "Registry round trips made to verify image signatures, by operation (resolve, signature_manifest, blob), failures included.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )
        .expect("valid metric");
        let namespaces_cached = IntGauge::new(
            "portier_namespace_cache_namespaces",
            "Namespaces in serve's watch-fed namespace cache.",
        )
        .expect("valid metric");
        let namespace_last_event = IntGauge::new(
            "portier_namespace_cache_last_event_timestamp_seconds",
            "When the namespace cache last received an event from its watch (Unix time; 0: none yet).",
        )
        .expect("valid metric");
        let namespace_last_event_age = IntGauge::new(
            "portier_namespace_cache_last_event_age_seconds",
            "Seconds since the namespace cache last received an event from its watch (-1: none yet).",
        )
        .expect("valid metric");
        let namespace_labels = IntCounterVec::new(
            Opts::new(
                "portier_namespace_labels_total",
                "Reviews judged by a policy that needed the namespace's labels, by where they came from (cache, api: read on a cache miss, object: the Namespace under review, unknown: not available, so such policies failed closed).",
            ),
            &["source"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(namespaces_cached.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(namespace_last_event.clone()),
            Box::new(namespace_last_event_age.clone()),
            Box::new(namespace_labels.clone()),
            Box::new(verifications.clone()),
            Box::new(image_cache.clone()),
            Box::new(registry_latency.clone()),
            Box::new(audit_violations.clone()),
            Box::new(audit_runs.clone()),
            Box::new(audit_workloads.clone()),
            Box::new(audit_last_run.clone()),
            Box::new(tls_reloads.clone()),
            Box::new(tls_expiry.clone()),
            Box::new(requests_vec.clone()),
            Box::new(latency_vec.clone()),
            Box::new(decisions.clone()),
            Box::new(mutations.clone()),
            Box::new(reloads.clone()),
            Box::new(policies_loaded.clone()),
        ] {
            registry.register(collector).expect("unique metric");
        }
        let requests = ENDPOINTS.map(|e| {
            Outcome::ALL.map(|o| requests_vec.with_label_values(&[e.as_str(), o.as_str()]))
        });
        let latency = ENDPOINTS.map(|e| latency_vec.with_label_values(&[e.as_str()]));
        Metrics {
            registry,
            requests,
            latency,
            decisions,
            mutations,
            reloads_ok: reloads.with_label_values(&["ok"]),
            reloads_failed: reloads.with_label_values(&["failed"]),
            policies_loaded,
            tls_reloads_ok: tls_reloads.with_label_values(&["ok"]),
            tls_reloads_failed: tls_reloads.with_label_values(&["failed"]),
            tls_expiry,
            audit: AuditMetrics {
                violations: Mutex::new(audit_violations),
                runs: audit_runs,
                workloads: audit_workloads,
                last_run: audit_last_run,
            },
            images: ImageMetrics {
                verifications: ["verified", "rejected", "unavailable"]
                    .map(|r| verifications.with_label_values(&[r])),
                cache: ["hit", "miss"].map(|r| image_cache.with_label_values(&[r])),
                registry_latency: RegistryOp::ALL
                    .map(|op| registry_latency.with_label_values(&[op.as_str()])),
            },
            namespaces: NamespaceMetrics {
                cached: namespaces_cached,
                last_event: namespace_last_event,
                last_event_age: {
                    namespace_last_event_age.set(-1);
                    namespace_last_event_age
                },
                labels: std::array::from_fn(|i| {
                    let source = LabelSource::ALL.get(i).map_or("unknown", |s| s.as_str());
                    namespace_labels.with_label_values(&[source])
                }),
            },
        }
    }

    /// The namespace cache now holds `namespaces` namespaces.
    pub fn record_namespace_cache(&self, namespaces: usize) {
        self.namespaces
            .cached
            .set(i64::try_from(namespaces).unwrap_or(i64::MAX));
    }

    /// The namespace watch delivered an event.
    pub fn record_namespace_event(&self) {
        self.namespaces.last_event.set(unix_now());
    }

    /// A review was judged with namespace labels from `source` (`None`: unknown).
    pub fn record_namespace_labels(&self, source: Option<LabelSource>) {
        let i = source
            .and_then(|s| LabelSource::ALL.iter().position(|x| *x == s))
            .unwrap_or(LabelSource::ALL.len());
        self.namespaces.labels[i].inc();
    }

    pub fn record_image_verification(&self, result: VerificationResult) {
        let i = match result {
            VerificationResult::Verified => 0,
            VerificationResult::Rejected => 1,
            VerificationResult::Unavailable => 2,
        };
        self.images.verifications[i].inc();
    }

    pub fn record_image_cache(&self, result: CacheResult) {
        self.images.cache[match result {
            CacheResult::Hit => 0,
            CacheResult::Miss => 1,
        }]
        .inc();
    }

    pub fn record_registry_request(&self, op: RegistryOp, seconds: f64) {
        let i = RegistryOp::ALL.iter().position(|o| *o == op).unwrap_or(0);
        self.images.registry_latency[i].observe(seconds);
    }

    /// Records a periodic audit run; `results` (violations per (namespace, policy, check) and
    /// workloads judged) replace the previous run's gauges.
    pub fn record_audit_run(&self, run: AuditRun, results: Option<(&AuditCounts, u64)>) {
        self.audit.runs.with_label_values(&[run.as_str()]).inc();
        let Some((counts, workloads)) = results else {
            return;
        };
        {
            let gauges = self
                .audit
                .violations
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            gauges.reset();
            for ((namespace, policy, check), n) in counts {
                gauges
                    .with_label_values(&[namespace.as_str(), policy.as_str(), check.as_str()])
                    .set(i64::try_from(*n).unwrap_or(i64::MAX));
            }
        }
        self.audit
            .workloads
            .set(i64::try_from(workloads).unwrap_or(i64::MAX));
        self.audit.last_run.set(unix_now());
    }

    /// Records a key pair (re)load; `not_after` is the new certificate's expiry.
    pub fn record_tls_reload(&self, ok: bool, not_after: Option<i64>) {
        if ok {
            self.tls_reloads_ok.inc();
        } else {
            self.tls_reloads_failed.inc();
        }
        if let Some(t) = not_after {
            self.tls_expiry.set(t);
        }
    }

    /// Records the expiry of the certificate loaded at start.
    pub fn set_tls_expiry(&self, not_after: i64) {
        self.tls_expiry.set(not_after);
    }

    pub fn record_request(&self, endpoint: Endpoint, outcome: Outcome, seconds: f64) {
        let e = endpoint_index(endpoint);
        self.requests[e][outcome.index()].inc();
        self.latency[e].observe(seconds);
    }

    /// Resolves one decision counter per policy of `set`, in set order.
    pub fn decision_counters(&self, set: &PolicySet) -> Vec<IntCounter> {
        set.policies()
            .iter()
            .map(|p| {
                self.decisions
                    .with_label_values(&[p.name.as_str(), p.mode.as_str()])
            })
            .collect()
    }

    /// Resolves one mutation counter per policy of `set`, in set order.
    pub fn mutation_counters(&self, set: &PolicySet) -> Vec<IntCounter> {
        set.policies()
            .iter()
            .map(|p| self.mutations.with_label_values(&[p.name.as_str()]))
            .collect()
    }

    pub fn record_reload(&self, ok: bool, policies: usize) {
        if ok {
            self.reloads_ok.inc();
            self.policies_loaded
                .set(i64::try_from(policies).unwrap_or(i64::MAX));
        } else {
            self.reloads_failed.inc();
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let last = self.namespaces.last_event.get();
        if last > 0 {
            self.namespaces
                .last_event_age
                .set(unix_now().saturating_sub(last).max(0));
        }
        let mut out = Vec::with_capacity(4096);
        // Encoding gathered families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

fn unix_now() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(now).unwrap_or(i64::MAX)
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_its_labels() {
        let m = Metrics::new();
        m.record_request(Endpoint::Validate, Outcome::Denied, 0.0002);
        m.record_reload(true, 4);
        m.record_reload(false, 0);
        let set = PolicySet::from_yaml(
            "p.yaml",
            "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: np}\nspec: {check: privileged}",
        )
        .unwrap();
        m.decision_counters(&set)[0].inc();
        assert!(
            m.render()
                .contains("portier_namespace_cache_last_event_age_seconds -1")
        );
        m.record_namespace_cache(3);
        m.record_namespace_event();
        m.record_namespace_labels(Some(LabelSource::Cache));
        m.record_namespace_labels(Some(LabelSource::Cache));
        m.record_namespace_labels(None);
        let text = m.render();
        for needle in [
            r#"portier_admission_requests_total{endpoint="validate",outcome="denied"} 1"#,
            r#"portier_admission_requests_total{endpoint="mutate",outcome="allowed"} 0"#,
            r#"portier_admission_duration_seconds_bucket{endpoint="validate",le="0.00025"} 1"#,
            r#"portier_policy_decisions_total{mode="enforce",policy="np"} 1"#,
            r#"portier_policy_reloads_total{result="ok"} 1"#,
            r#"portier_policy_reloads_total{result="failed"} 1"#,
            "portier_policies_loaded 4",
            "portier_namespace_cache_namespaces 3",
            "portier_namespace_cache_last_event_age_seconds 0",
            r#"portier_namespace_labels_total{source="cache"} 2"#,
            r#"portier_namespace_labels_total{source="unknown"} 1"#,
            r#"portier_namespace_labels_total{source="api"} 0"#,
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn audit_gauges_are_replaced_whole_after_each_run() {
        let m = Metrics::new();
        let first = std::collections::BTreeMap::from([
            (
                ("shop".to_owned(), "np".to_owned(), "privileged".to_owned()),
                3,
            ),
            (
                ("web".to_owned(), "np".to_owned(), "privileged".to_owned()),
                1,
            ),
        ]);
        m.record_audit_run(AuditRun::Complete, Some((&first, 7)));
        let text = m.render();
        assert!(
            text.contains(
                r#"portier_audit_violations{check="privileged",namespace="shop",policy="np"} 3"#
            ),
            "{text}"
        );
        assert!(text.contains("portier_audit_workloads 7"), "{text}");
        let second = std::collections::BTreeMap::from([(
            ("web".to_owned(), "np".to_owned(), "privileged".to_owned()),
            2,
        )]);
        m.record_audit_run(AuditRun::Partial, Some((&second, 5)));
        m.record_audit_run(AuditRun::Failed, None);
        let text = m.render();
        assert!(!text.contains(r#"namespace="shop""#), "{text}");
        assert!(
            text.contains(
                r#"portier_audit_violations{check="privileged",namespace="web",policy="np"} 2"#
            ),
            "{text}"
        );
        for result in ["complete", "partial", "failed"] {
            assert!(
                text.contains(&format!(
                    r#"portier_audit_runs_total{{result="{result}"}} 1"#
                )),
                "{text}"
            );
        }
    }
}
