//! `--report policyreport`: the audit's findings as `wgpolicyk8s.io/v1alpha2` PolicyReports,
//! the format Kyverno writes and Policy Reporter (and its dashboards) read.
//!
//! One PolicyReport per namespace, named `portier-<namespace>` (one report per namespace, as
//! Kyverno's namespace reports were named `polr-ns-<namespace>`), labelled
//! `app.kubernetes.io/managed-by: portier`. One `fail` result per violation, with
//! `source: portier`, the policy, the check as `rule`, the workload in `resources`, and the
//! container, path and real mode in `properties`. `summary.pass` counts the (workload, policy)
//! pairs judged without a violation. The cluster-scoped objects CEL policies select (audited
//! with `--all-namespaces`) go into one ClusterPolicyReport, `portier-cluster`, built and
//! written the same way.
//!
//! Reports are written with server-side apply (`PATCH`, `application/apply-patch+yaml`,
//! `fieldManager=portier`, `force=true`, `fieldValidation=Strict`): one request creates or
//! replaces the report, with no read-modify-write race and no need to read reports first
//! (RBAC: `create` and `patch` on policyreports, nothing else). Since `results` is an atomic
//! list, each apply replaces the previous results whole, so fixed violations disappear.
//!
//! A report stays well under etcd's object size limit (1.5 MiB by default): at most
//! `max_results` results (default 1000) and about 1 MiB of them. What is cut is counted in the
//! `summary` (which always counts every result) and in the annotations
//! `portier.dev/results-total` and `portier.dev/results-cut`.

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::core::Request;
use kube::core::params::{Patch, PatchParams, ValidationDirective};
use serde::{Deserialize, Serialize};

use super::api::{self, ApiFailure};
use super::{NamespaceResult, Status};

pub const API_VERSION: &str = "wgpolicyk8s.io/v1alpha2";
pub const KIND: &str = "PolicyReport";
pub const CLUSTER_KIND: &str = "ClusterPolicyReport";
/// The name of the ClusterPolicyReport.
pub const CLUSTER_REPORT_NAME: &str = "portier-cluster";
/// The field manager of server-side apply, and every result's `source`.
pub const SOURCE: &str = "portier";
/// Results per report when not told otherwise.
pub const DEFAULT_MAX_RESULTS: usize = 1000;
/// Bytes of results per report, whatever `max_results` says: with metadata and summary the
/// object stays well below etcd's 1.5 MiB.
pub const MAX_RESULTS_BYTES: usize = 1024 * 1024;
pub const ANNOTATION_TOTAL: &str = "portier.dev/results-total";
pub const ANNOTATION_CUT: &str = "portier.dev/results-cut";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReport {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub summary: ReportSummary,
    pub results: Vec<ReportResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSummary {
    pub pass: u64,
    pub fail: u64,
    pub warn: u64,
    pub error: u64,
    pub skip: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportResult {
    pub source: String,
    pub policy: String,
    pub rule: String,
    pub result: String,
    pub severity: String,
    pub category: String,
    pub message: String,
    pub scored: bool,
    pub timestamp: Timestamp,
    pub resources: Vec<ObjectReference>,
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: i32,
}

/// The report's name in `namespace`; the ClusterPolicyReport's for `""`.
pub fn report_name(namespace: &str) -> String {
    match namespace {
        "" => CLUSTER_REPORT_NAME.to_owned(),
        namespace => format!("portier-{namespace}"),
    }
}

/// The severity a violation gets: how a policy's real mode ranks it.
pub fn severity(mode: &str) -> &'static str {
    match mode {
        "enforce" => "high",
        "warn" => "medium",
        _ => "low",
    }
}

/// The category a check's results are filed under in dashboards.
pub fn category(check: &str) -> &'static str {
    match check {
        "resource-limits" => "Resources",
        "privileged" | "host-namespaces" | "run-as-non-root" | "pod-security" => "Pod Security",
        pss if pss.starts_with("pss-") => "Pod Security",
        _ => "portier",
    }
}

/// Builds the report of one namespace (a ClusterPolicyReport for the cluster-scoped objects),
/// cutting results beyond `max_results` or the byte budget.
pub fn build(ns: &NamespaceResult, max_results: usize) -> PolicyReport {
    let since = ns.judged_at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let timestamp = Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    };
    let total = ns.violations();
    let mut results = Vec::with_capacity(total.min(max_results));
    let mut bytes = 0;
    for (judged, row) in ns.rows() {
        if results.len() >= max_results {
            break;
        }
        let mut properties = BTreeMap::new();
        if let Some(container) = &row.container {
            properties.insert("container".to_owned(), container.clone());
        }
        properties.insert("path".to_owned(), row.path.clone());
        properties.insert("mode".to_owned(), row.mode.clone());
        properties.insert("pods".to_owned(), judged.pods.to_string());
        let result = ReportResult {
            source: SOURCE.to_owned(),
            policy: row.policy.clone(),
            rule: row.check.clone(),
            result: "fail".to_owned(),
            severity: severity(&row.mode).to_owned(),
            category: category(&row.check).to_owned(),
            message: row.message.clone(),
            scored: true,
            timestamp,
            resources: vec![ObjectReference {
                api_version: Some(judged.kind.api_version()),
                kind: Some(judged.kind.as_str().to_owned()),
                name: Some(judged.name.clone()),
                namespace: (!ns.is_cluster_scope()).then(|| ns.namespace.clone()),
                uid: (!judged.uid.is_empty()).then(|| judged.uid.clone()),
                ..ObjectReference::default()
            }],
            properties,
        };
        bytes += serde_json::to_vec(&result).map_or(0, |v| v.len() + 1);
        if bytes > MAX_RESULTS_BYTES {
            break;
        }
        results.push(result);
    }
    let cut = total - results.len();
    let mut annotations = BTreeMap::from([(ANNOTATION_TOTAL.to_owned(), total.to_string())]);
    if cut > 0 {
        annotations.insert(ANNOTATION_CUT.to_owned(), cut.to_string());
    }
    PolicyReport {
        api_version: API_VERSION.to_owned(),
        kind: match ns.is_cluster_scope() {
            true => CLUSTER_KIND,
            false => KIND,
        }
        .to_owned(),
        metadata: ObjectMeta {
            name: Some(report_name(&ns.namespace)),
            namespace: (!ns.is_cluster_scope()).then(|| ns.namespace.clone()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                SOURCE.to_owned(),
            )])),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        summary: ReportSummary {
            pass: ns.passed,
            fail: total as u64,
            ..ReportSummary::default()
        },
        results,
    }
}

/// Why a report was not written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "the wgpolicyk8s.io/v1alpha2 PolicyReport CRD is not installed ({0}); install it with `kubectl apply -f deploy/crds/policyreports.yaml`"
    )]
    CrdMissing(String),
    #[error("the namespace's scan is {}, so its report was left as it was", .0.as_str())]
    Incomplete(Status),
    #[error(
        "the API server rejected the report ({0}); the installed PolicyReport CRD may be an older schema (without `source`?): compare it with deploy/crds/policyreports.yaml"
    )]
    Rejected(ApiFailure),
    #[error("{0}")]
    Api(ApiFailure),
}

impl ReportError {
    /// Whether no other report can be written either.
    pub fn is_fatal(&self) -> bool {
        match self {
            ReportError::CrdMissing(_) | ReportError::Rejected(_) => true,
            ReportError::Api(failure) => failure.is_fatal(),
            ReportError::Incomplete(_) => false,
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub name: String,
    pub results: usize,
    pub cut: usize,
}

/// Writes reports with server-side apply.
#[derive(Clone)]
pub struct ReportWriter {
    client: Client,
    max_results: usize,
}

impl ReportWriter {
    pub fn new(client: Client, max_results: usize) -> ReportWriter {
        ReportWriter {
            client,
            max_results: max_results.max(1),
        }
    }

    /// Creates or replaces the report of `ns`. A namespace whose scan was not complete keeps
    /// its previous report: an incomplete scan must not erase findings it could not see.
    pub async fn write(&self, ns: &NamespaceResult) -> Result<Written, ReportError> {
        if ns.status != Status::Complete {
            return Err(ReportError::Incomplete(ns.status));
        }
        let report = build(ns, self.max_results);
        let name = report_name(&ns.namespace);
        let mut params = PatchParams::apply(SOURCE).force();
        params.field_validation = Some(ValidationDirective::Strict);
        let collection = match ns.is_cluster_scope() {
            true => format!("/apis/{API_VERSION}/clusterpolicyreports"),
            false => format!(
                "/apis/{API_VERSION}/namespaces/{}/policyreports",
                ns.namespace
            ),
        };
        let request = Request::new(collection)
            .patch(&name, &params, &Patch::Apply(&report))
            .map_err(|e| {
                ReportError::Api(ApiFailure::Decode(format!("cannot build the request: {e}")))
            })?;
        match self
            .client
            .request_text(request)
            .await
            .map_err(api::classify)
        {
            Ok(_) => Ok(Written {
                name,
                results: report.results.len(),
                cut: ns.violations() - report.results.len(),
            }),
            Err(failure) => Err(refusal(failure)),
        }
    }
}

/// What a failed apply means for the reports. A report the installed CRD's schema refuses is
/// refused in every namespace: 400 or 422 from validation, or, for a field the schema does not
/// declare (an older CRD without `source`), a 500 from the API server's server-side apply,
/// which fails to build the typed patch before any validation runs.
fn refusal(failure: ApiFailure) -> ReportError {
    match failure {
        ApiFailure::NotServed(message) => ReportError::CrdMissing(message),
        ApiFailure::Status {
            code: 400 | 422, ..
        } => ReportError::Rejected(failure),
        ApiFailure::Status {
            code: 500,
            ref message,
        } if message.starts_with("failed to create typed patch object") => {
            ReportError::Rejected(failure)
        }
        failure => ReportError::Api(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, message: &str) -> ApiFailure {
        ApiFailure::Status {
            code,
            message: message.to_owned(),
        }
    }

    #[test]
    fn a_schema_refusal_is_fatal_and_other_failures_are_not() {
        // kube-apiserver v1.32's words for a field an older CRD does not declare.
        let undeclared = status(
            500,
            "failed to create typed patch object (shop/portier-shop; wgpolicyk8s.io/v1alpha2, Kind=PolicyReport): .results[0].source: field not declared in schema",
        );
        for failure in [
            undeclared,
            status(400, "strict decoding error"),
            status(422, "x"),
        ] {
            let error = refusal(failure);
            assert!(matches!(error, ReportError::Rejected(_)), "{error:?}");
            assert!(error.is_fatal());
        }
        let etcd = refusal(status(500, "etcdserver: request timed out"));
        assert!(matches!(etcd, ReportError::Api(_)) && !etcd.is_fatal());
        let missing = refusal(ApiFailure::NotServed("404 page not found".into()));
        assert!(matches!(missing, ReportError::CrdMissing(_)) && missing.is_fatal());
    }
}
