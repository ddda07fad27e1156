//! `hostProbesAndHostLifecycle` (baseline, from v1.34; Host Probes / Lifecycle Hooks): probes
//! (`livenessProbe`, `readinessProbe`, `startupProbe`) and lifecycle hooks (`postStart`,
//! `preStop`) must not set `httpGet.host` or `tcpSocket.host` (any non-empty value, even the
//! pod's own IP or `localhost`), which would let the kubelet reach other hosts on the pod's
//! behalf. `grpc`, `exec` and `sleep` actions have no host.

use super::text::{container, problem};
use super::{Control, Level};
use crate::pod::PodView;
use crate::policy::{Finding, Sink};

pub const ID: &str = "pss-host-probes";

pub static CONTROL: Control = Control {
    id: ID,
    upstream_id: "hostProbesAndHostLifecycle",
    name: "Host Probes / Lifecycle Hooks",
    level: Level::Baseline,
    revisions: &[34],
    overrides: None,
    evaluate,
};

fn evaluate<'v>(_minor: u32, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    for at in pod.spec.all_containers() {
        if !sink.in_scope(&at) {
            continue;
        }
        for (field, handler) in at.container.handlers() {
            for (action, target) in [
                ("httpGet", handler.http_get.as_ref()),
                ("tcpSocket", handler.tcp_socket.as_ref()),
            ] {
                let Some(host) = target.and_then(|t| t.host.as_deref()) else {
                    continue;
                };
                if host.is_empty() {
                    continue;
                }
                let detail = format!("{} uses probe or lifecycle host \"{host}\"", container(&at));
                sink.report(Finding::for_container(
                    &at,
                    format!("{field}.{action}.host"),
                    problem("probe or lifecycle host", &detail),
                    "remove host: probes and hooks then connect to the pod's own IP",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, each_list, run};

    #[test]
    fn every_probe_and_hook_host_is_denied_in_every_container_kind() {
        let c = r#"{"name":"c",
            "livenessProbe":{"httpGet":{"host":"127.0.0.1","port":80}},
            "readinessProbe":{"tcpSocket":{"host":"localhost","port":80}},
            "startupProbe":{"httpGet":{"host":"","port":80},"tcpSocket":{"host":"a.com"}},
            "lifecycle":{"postStart":{"httpGet":{"host":"b.com"}},"preStop":{"tcpSocket":{"host":"::1"}}}}"#;
        for (list, pod) in each_list(c) {
            let p = format!("spec.{list}[0]");
            let d = "probe or lifecycle host (container \"c\" uses probe or lifecycle host";
            assert_eq!(
                run("pss-host-probes", &pod),
                vec![
                    format!("{p}.livenessProbe.httpGet.host: {d} \"127.0.0.1\")"),
                    format!("{p}.readinessProbe.tcpSocket.host: {d} \"localhost\")"),
                    format!("{p}.startupProbe.tcpSocket.host: {d} \"a.com\")"),
                    format!("{p}.lifecycle.postStart.httpGet.host: {d} \"b.com\")"),
                    format!("{p}.lifecycle.preStop.tcpSocket.host: {d} \"::1\")"),
                ]
            );
        }
        let ok = r#"{"name":"c","livenessProbe":{"httpGet":{"port":80},"exec":{"command":["x"]}},
            "readinessProbe":{"grpc":{"port":9}},"lifecycle":{"preStop":{"sleep":{"seconds":1}}}}"#;
        for (_, pod) in each_list(ok) {
            assert!(run("pss-host-probes", &pod).is_empty());
        }
    }

    #[test]
    fn defined_from_v1_34() {
        let pod =
            r#"{"containers":[{"name":"c","startupProbe":{"httpGet":{"host":"localhost"}}}]}"#;
        assert_eq!(run(&at("pss-host-probes", "v1.34"), pod).len(), 1);
        assert_eq!(run(&at("pss-host-probes", "v1.99"), pod).len(), 1);
        let baseline_v1_33 = "pod-security\nparams: {level: baseline, version: v1.33}";
        assert!(run(baseline_v1_33, pod).is_empty());
        let baseline_v1_34 = "pod-security\nparams: {level: baseline, version: v1.34}";
        assert_eq!(run(baseline_v1_34, pod).len(), 1);
    }
}
