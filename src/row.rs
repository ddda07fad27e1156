//! One violation in one resource, as `portier check` and `portier audit` print it (table,
//! JSON, YAML) and the PolicyReports carry it.

use serde::Serialize;

use crate::engine;
use crate::pod::WorkloadKind;

/// One violation found in one resource.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Row {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub policy: String,
    pub check: String,
    pub mode: String,
    /// The container concerned, absent for pod-level findings.
    pub container: Option<String>,
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Row {
    /// The row for one violation found in the `kind` workload `namespace/name`, its path
    /// rendered below the kind's pod spec path. `portier audit` builds its rows here too.
    pub fn from_violation(
        kind: WorkloadKind,
        namespace: &str,
        name: &str,
        violation: &engine::Violation<'_, '_>,
    ) -> Row {
        Row::of_object(
            kind.as_str(),
            kind.pod_spec_path(),
            namespace,
            name,
            violation,
        )
    }

    /// The row for one violation in an object of any kind (`pod_spec_path`: where its pod
    /// spec is, for findings about a pod; CEL policies' findings name no path).
    pub fn of_object(
        kind: &str,
        pod_spec_path: &str,
        namespace: &str,
        name: &str,
        violation: &engine::Violation<'_, '_>,
    ) -> Row {
        let f = &violation.finding;
        Row {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            policy: violation.policy.name.clone(),
            check: violation.policy.check.label().to_owned(),
            mode: violation.mode.as_str().to_owned(),
            container: f.container.map(|(_, name)| name.to_owned()),
            path: f.path.render(pod_spec_path),
            message: if f.fix.is_empty() {
                f.problem.to_string()
            } else {
                format!("{} — {}", f.problem, f.fix)
            },
        }
    }
}
