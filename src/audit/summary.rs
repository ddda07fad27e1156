//! Totals over a whole scan: per policy and per namespace, for the summary tables, the JSON
//! summary and the gauges.

use serde::Serialize;

use super::{ImageSignatures, NamespaceResult, Problem, Status};
use crate::policy::PolicySet;

/// Totals over a whole scan, for the summary tables, the JSON summary and the gauges.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Namespaces the scan meant to cover.
    pub namespaces_total: usize,
    /// Namespaces fully scanned.
    pub namespaces_complete: usize,
    /// Workloads judged: top-most controllers and standalone pods.
    pub workloads: u64,
    pub controllers: u64,
    /// Pods judged on their controller.
    pub covered_pods: u64,
    pub standalone_pods: u64,
    /// Objects of other kinds judged for the CEL policies that select them.
    pub objects: u64,
    pub violations: u64,
    /// Workloads with at least one violation.
    pub violating_workloads: u64,
    /// False when a namespace or a kind could not be scanned, or the scan stopped.
    pub complete: bool,
    /// Why the scan stopped early, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Whether the `signed-images` policies were checked; absent when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_signatures: Option<ImageSignatures>,
    /// What the scan said once: kinds CEL policies name that are not served, cluster-scoped
    /// kinds not audited.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub policies: Vec<PolicySummary>,
    pub namespaces: Vec<NamespaceSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicySummary {
    pub policy: String,
    /// The mode the policy is really in (the audit judges every policy as enforce).
    pub mode: String,
    pub check: String,
    pub violations: u64,
    /// Workloads with at least one violation of this policy.
    pub workloads: u64,
    /// Pods those workloads stand for: what enforcing the policy would stop from being
    /// re-created.
    pub pods: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NamespaceSummary {
    pub namespace: String,
    pub status: Status,
    pub workloads: u64,
    pub pods: u64,
    /// Objects of other kinds judged for CEL policies.
    pub objects: u64,
    pub violations: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

impl Summary {
    pub fn new(set: &PolicySet, namespaces_total: usize) -> Summary {
        Summary {
            namespaces_total,
            complete: true,
            policies: set
                .policies()
                .iter()
                .map(|p| PolicySummary {
                    policy: p.name.clone(),
                    mode: p.mode.as_str().to_owned(),
                    check: p.check.id().to_owned(),
                    violations: 0,
                    workloads: 0,
                    pods: 0,
                })
                .collect(),
            ..Summary::default()
        }
    }

    /// Adds one namespace's results (or the cluster-scoped objects', which count in every
    /// total but the namespaces').
    pub fn add(&mut self, ns: &NamespaceResult) {
        let judged = ns.judged();
        let violations = ns.violations() as u64;
        self.workloads += judged;
        self.controllers += u64::from(ns.controllers);
        self.covered_pods += u64::from(ns.covered_pods);
        self.standalone_pods += u64::from(ns.standalone_pods);
        self.objects += u64::from(ns.objects);
        self.violations += violations;
        self.violating_workloads += ns.workloads.len() as u64;
        if ns.status != Status::Complete {
            self.complete = false;
        } else if !ns.is_cluster_scope() {
            self.namespaces_complete += 1;
        }
        for workload in &ns.workloads {
            let mut last: Option<&str> = None;
            for row in &workload.rows {
                let Some(p) = self.policies.iter_mut().find(|p| p.policy == row.policy) else {
                    continue;
                };
                p.violations += 1;
                if last != Some(row.policy.as_str()) {
                    p.workloads += 1;
                    p.pods += u64::from(workload.pods);
                    last = Some(row.policy.as_str());
                }
            }
        }
        self.namespaces.push(NamespaceSummary {
            namespace: ns.namespace.clone(),
            status: ns.status,
            workloads: judged,
            pods: u64::from(ns.covered_pods) + u64::from(ns.standalone_pods),
            objects: u64::from(ns.objects),
            violations,
            problems: ns.problems.clone(),
        });
    }

    /// Records that the scan stopped early.
    pub fn stop(&mut self, why: String) {
        self.complete = false;
        self.stopped = Some(why);
    }

    /// Every problem of every namespace.
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.namespaces.iter().flat_map(|n| n.problems.iter())
    }
}
