//! `hostNamespaces` (baseline, Host Namespaces): `hostNetwork`, `hostPID` and `hostIPC` must
//! not be true (unset is false).

use super::text::problem;
use super::{Control, Level};
use crate::pod::PodView;
use crate::policy::{Finding, Sink};

pub const ID: &str = "pss-host-namespaces";

pub static CONTROL: Control = Control {
    id: ID,
    upstream_id: "hostNamespaces",
    name: "Host Namespaces",
    level: Level::Baseline,
    revisions: &[0],
    overrides: None,
    evaluate,
};

fn evaluate<'v>(_minor: u32, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    let spec = pod.spec;
    // Upstream's order.
    for (value, field) in [
        (spec.host_network, "hostNetwork"),
        (spec.host_pid, "hostPID"),
        (spec.host_ipc, "hostIPC"),
    ] {
        if value == Some(true) {
            sink.report(Finding::pod(
                field,
                problem("host namespaces", &format!("{field}=true")),
                format!("remove {field} or set it to false"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::run;

    #[test]
    fn each_host_namespace_is_reported_true_only() {
        assert_eq!(
            run(
                "pss-host-namespaces",
                r#"{"hostIPC":true,"hostPID":true,"hostNetwork":true}"#
            ),
            vec![
                "spec.hostNetwork: host namespaces (hostNetwork=true)",
                "spec.hostPID: host namespaces (hostPID=true)",
                "spec.hostIPC: host namespaces (hostIPC=true)",
            ]
        );
        for field in ["hostNetwork", "hostPID", "hostIPC"] {
            let one = run("pss-host-namespaces", &format!(r#"{{"{field}":true}}"#));
            assert_eq!(
                one,
                vec![format!("spec.{field}: host namespaces ({field}=true)")]
            );
            assert!(run("pss-host-namespaces", &format!(r#"{{"{field}":false}}"#)).is_empty());
        }
        assert!(run("pss-host-namespaces", "{}").is_empty());
    }
}
