//! `hostPorts` (baseline, Host Ports): no container port may set a `hostPort` other than 0
//! (0 and unset are the same). Upstream visits ephemeral containers too.

use super::text::{container, problem};
use super::{Control, Level};
use crate::pod::PodView;
use crate::policy::{Finding, Sink};

pub const ID: &str = "pss-host-ports";

pub static CONTROL: Control = Control {
    id: ID,
    upstream_id: "hostPorts",
    name: "Host Ports",
    level: Level::Baseline,
    revisions: &[0],
    overrides: None,
    evaluate,
};

fn evaluate<'v>(_minor: u32, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    for at in pod.spec.all_containers() {
        if !sink.in_scope(&at) {
            continue;
        }
        for (i, port) in at.container.ports().iter().enumerate() {
            let Some(host_port) = port.host_port.filter(|p| *p != 0) else {
                continue;
            };
            let detail = format!("{} uses hostPort {host_port}", container(&at));
            sink.report(Finding::for_container(
                &at,
                format!("ports[{i}].hostPort"),
                problem("hostPort", &detail),
                "remove hostPort and reach the pod through a Service",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{each_list, run};

    #[test]
    fn a_non_zero_host_port_is_denied_in_every_container_kind() {
        let c = r#"{"name":"c","ports":[{"containerPort":80},{"containerPort":81,"hostPort":0},{"containerPort":82,"hostPort":8082}]}"#;
        for (list, pod) in each_list(c) {
            assert_eq!(
                run("pss-host-ports", &pod),
                vec![format!(
                    "spec.{list}[0].ports[2].hostPort: hostPort (container \"c\" uses hostPort 8082)"
                )]
            );
        }
        let ok = r#"{"name":"c","ports":[{"containerPort":80,"hostPort":0},{"containerPort":81}]}"#;
        for (_, pod) in each_list(ok) {
            assert!(run("pss-host-ports", &pod).is_empty());
        }
    }
}
