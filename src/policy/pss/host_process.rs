//! `windowsHostProcess` (baseline, HostProcess): neither the pod nor any container may set
//! `securityContext.windowsOptions.hostProcess: true`. Applies to every pod, Windows or not.

use super::text::{container, problem};
use super::{Control, Level};
use crate::pod::PodView;
use crate::policy::{Finding, Sink};

pub const ID: &str = "pss-host-process";

pub static CONTROL: Control = Control {
    id: ID,
    upstream_id: "windowsHostProcess",
    name: "HostProcess",
    level: Level::Baseline,
    revisions: &[0],
    overrides: None,
    evaluate,
};

const FIELD: &str = "securityContext.windowsOptions.hostProcess";
const FIX: &str = "remove securityContext.windowsOptions.hostProcess or set it to false";

fn evaluate<'v>(_minor: u32, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    let pod_value = pod
        .spec
        .pod_security()
        .and_then(|sc| sc.windows_options.as_ref())
        .and_then(|w| w.host_process);
    if pod_value == Some(true) {
        sink.report(Finding::pod(
            FIELD,
            problem("hostProcess", &format!("pod must not set {FIELD}=true")),
            FIX,
        ));
    }
    for at in pod.spec.all_containers() {
        if !sink.in_scope(&at) {
            continue;
        }
        let value = at
            .container
            .security()
            .and_then(|sc| sc.windows_options.as_ref())
            .and_then(|w| w.host_process);
        if value == Some(true) {
            let detail = format!("{} must not set {FIELD}=true", container(&at));
            sink.report(Finding::for_container(
                &at,
                FIELD,
                problem("hostProcess", &detail),
                FIX,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{each_list, run};

    #[test]
    fn host_process_is_denied_at_pod_and_container_level() {
        assert_eq!(
            run(
                "pss-host-process",
                r#"{"os":{"name":"windows"},"securityContext":{"windowsOptions":{"hostProcess":true}}}"#
            ),
            vec![
                "spec.securityContext.windowsOptions.hostProcess: hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)"
            ]
        );
        let c = r#"{"name":"c","securityContext":{"windowsOptions":{"hostProcess":true}}}"#;
        for (list, pod) in each_list(c) {
            assert_eq!(
                run("pss-host-process", &pod),
                vec![format!(
                    "spec.{list}[0].securityContext.windowsOptions.hostProcess: hostProcess (container \"c\" must not set securityContext.windowsOptions.hostProcess=true)"
                )]
            );
        }
        for ok in [
            r#"{"securityContext":{"windowsOptions":{"hostProcess":false}},"containers":[{"name":"c","securityContext":{"windowsOptions":{}}}]}"#,
            r#"{"securityContext":{"windowsOptions":{"runAsUserName":"x"}},"containers":[{"name":"c"}]}"#,
        ] {
            assert!(run("pss-host-process", ok).is_empty());
        }
    }
}
