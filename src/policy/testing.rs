//! Helpers for the checks' unit tests: compile one policy from a spec fragment and run it on a
//! pod spec (or a whole Pod) given as JSON.

use super::{PolicySet, Sink, Violation};
use crate::pod::{PodSpec, PodView, WorkloadKind, decode_workload};

fn run(
    spec: &str,
    pod_spec_json: &str,
    render: impl Fn(&Violation<'_, '_>) -> String,
) -> Vec<String> {
    run_object(spec, &format!(r#"{{"spec":{pod_spec_json}}}"#), render)
}

/// Compiles one policy named `t` from a spec fragment such as `check: privileged`.
pub fn policy_set(spec: &str) -> PolicySet {
    let indented = spec.replace('\n', "\n  ");
    let yaml = format!(
        "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: t}}\nspec:\n  {indented}\n"
    );
    PolicySet::from_yaml("test.yaml", &yaml).expect("test policy compiles")
}

/// Like `run`, on a whole Pod object (to give it metadata such as annotations).
pub fn run_object(
    spec: &str,
    pod_json: &str,
    render: impl Fn(&Violation<'_, '_>) -> String,
) -> Vec<String> {
    let set = policy_set(spec);
    let workload = decode_workload(WorkloadKind::Pod, pod_json).expect("test pod decodes");
    let empty = PodSpec::default();
    let pod = workload.pod().unwrap_or(PodView::of_spec(&empty));
    let mut out = Vec::new();
    for (index, policy) in set.policies().iter().enumerate() {
        policy.check.evaluate(
            pod,
            &crate::engine::Request::new(WorkloadKind::Pod, "default", None),
            &super::Unverified,
            &mut Sink::new(policy, index, &mut out),
        );
    }
    out.iter().map(render).collect()
}

/// One line per finding: `<container noun> <name> <path>` or `pod <path>`.
pub fn findings(spec: &str, pod_spec_json: &str) -> Vec<String> {
    run(spec, pod_spec_json, |v| {
        let path = v.finding.path.render("spec");
        match v.finding.container {
            Some((list, name)) => format!("{} {name} {path}", list.noun()),
            None => format!("pod {path}"),
        }
    })
}

/// The full messages the engine would give.
pub fn messages(spec: &str, pod_spec_json: &str) -> Vec<String> {
    run(spec, pod_spec_json, |v| v.message("spec"))
}
