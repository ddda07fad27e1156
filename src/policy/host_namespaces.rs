//! `host-namespaces`: no sharing of the node's network, PID or IPC namespaces; optionally no
//! host ports.
//!
//! Host ports are judged only when `params.hostPorts` is given: `hostPorts: {}` forbids every
//! host port, `hostPorts: {allowed: [8080]}` forbids all but those. A `hostPort` of 0 means
//! unset. With `hostNetwork: true` the API server defaults each port's `hostPort` to its
//! `containerPort`, so that is the port judged when none is written.

use std::borrow::Cow;

use serde::Deserialize;

use super::{Finding, Sink};
use crate::pod::PodSpec;

pub const ID: &str = "host-namespaces";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Params {
    #[serde(default)]
    pub host_ports: Option<HostPorts>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostPorts {
    #[serde(default)]
    pub allowed: Vec<u16>,
}

pub fn evaluate<'v>(params: &Params, pod: &'v PodSpec<'_>, sink: &mut Sink<'_, '_, 'v>) {
    let namespaces = [
        (pod.host_network, "hostNetwork", "the node's network"),
        (pod.host_pid, "hostPID", "the node's process IDs"),
        (pod.host_ipc, "hostIPC", "the node's IPC"),
    ];
    for (value, field, what) in namespaces {
        if value == Some(true) {
            sink.report(Finding::pod(
                field,
                format!("is true: the pod shares {what} namespace"),
                format!("remove {field} or set it to false"),
            ));
        }
    }
    let Some(host_ports) = &params.host_ports else {
        return;
    };
    let host_network = pod.host_network == Some(true);
    for at in pod.all_containers() {
        if !sink.in_scope(&at) {
            continue;
        }
        for (i, port) in at.container.ports().iter().enumerate() {
            let host_port = match port.host_port {
                Some(p) if p != 0 => p,
                _ if host_network => port.container_port.unwrap_or(0),
                _ => 0,
            };
            if host_port == 0 || allowed(host_port, &host_ports.allowed) {
                continue;
            }
            let fix: Cow<'static, str> = if host_ports.allowed.is_empty() {
                "remove hostPort and reach the pod through a Service".into()
            } else {
                format!(
                    "remove hostPort, or use one of the allowed host ports {:?}",
                    host_ports.allowed
                )
                .into()
            };
            sink.report(Finding::for_container(
                &at,
                format!("ports[{i}].hostPort"),
                format!("host port {host_port} is not allowed"),
                fix,
            ));
        }
    }
}

fn allowed(port: i32, allowed: &[u16]) -> bool {
    allowed.iter().any(|&a| i32::from(a) == port)
}

#[cfg(test)]
mod tests {
    use crate::policy::testing::{findings, messages};

    #[test]
    fn host_namespaces_are_denied_false_and_unset_pass() {
        let pod =
            r#"{"hostNetwork":true,"hostPID":true,"hostIPC":false,"containers":[{"name":"a"}]}"#;
        assert_eq!(
            findings("check: host-namespaces", pod),
            vec!["pod spec.hostNetwork", "pod spec.hostPID"]
        );
        assert!(findings("check: host-namespaces", r#"{"hostIPC":false}"#).is_empty());
    }

    #[test]
    fn host_ports_only_when_asked_and_zero_means_unset() {
        let pod = r#"{"containers":[{"name":"a","ports":[{"containerPort":80,"hostPort":0},{"containerPort":81,"hostPort":8081}]}],
            "initContainers":[{"name":"i","ports":[{"containerPort":9,"hostPort":9090}]}]}"#;
        assert!(findings("check: host-namespaces", pod).is_empty());
        let policy = "check: host-namespaces\nparams: {hostPorts: {allowed: [9090]}}";
        assert_eq!(
            findings(policy, pod),
            vec!["container a spec.containers[0].ports[1].hostPort"]
        );
        let all = "check: host-namespaces\nparams: {hostPorts: {}}";
        assert_eq!(findings(all, pod).len(), 2);
    }

    #[test]
    fn host_network_implies_host_ports() {
        let pod =
            r#"{"hostNetwork":true,"containers":[{"name":"a","ports":[{"containerPort":80}]}]}"#;
        let policy = "check: host-namespaces\nparams: {hostPorts: {}}";
        let msgs = messages(policy, pod);
        assert_eq!(msgs.len(), 2);
        assert!(msgs[1].contains("host port 80 is not allowed"), "{msgs:?}");
    }
}
