//! `sysctls` (baseline, Sysctls): every `spec.securityContext.sysctls[*].name` must be one of
//! the safe sysctls of the requested version (values are not read). The safe set grew over
//! time; each name below carries the version it was allowed from.

use super::text::problem;
use super::{Control, Level};
use crate::pod::PodView;
use crate::policy::{Finding, Sink};

pub const ID: &str = "pss-sysctls";

pub static CONTROL: Control = Control {
    id: ID,
    upstream_id: "sysctls",
    name: "Sysctls",
    level: Level::Baseline,
    revisions: &[0, 27, 29, 32, 37],
    overrides: None,
    evaluate,
};

/// The safe sysctls, with the minor version each is allowed from.
pub const SAFE: [(&str, u32); 14] = [
    ("kernel.shm_rmid_forced", 0),
    ("net.ipv4.ip_local_port_range", 0),
    ("net.ipv4.tcp_syncookies", 0),
    ("net.ipv4.ping_group_range", 0),
    ("net.ipv4.ip_unprivileged_port_start", 0),
    ("net.ipv4.ip_local_reserved_ports", 27),
    ("net.ipv4.tcp_keepalive_time", 29),
    ("net.ipv4.tcp_fin_timeout", 29),
    ("net.ipv4.tcp_keepalive_intvl", 29),
    ("net.ipv4.tcp_keepalive_probes", 29),
    ("net.ipv4.tcp_rmem", 32),
    ("net.ipv4.tcp_wmem", 32),
    ("net.ipv4.tcp_slow_start_after_idle", 37),
    ("net.ipv4.tcp_notsent_lowat", 37),
];

pub fn safe(name: &str, minor: u32) -> bool {
    SAFE.iter().any(|(n, since)| *n == name && *since <= minor)
}

fn evaluate<'v>(minor: u32, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
    let Some(sc) = pod.spec.pod_security() else {
        return;
    };
    for (i, sysctl) in sc.sysctls().iter().enumerate() {
        if safe(&sysctl.name, minor) {
            continue;
        }
        sink.report(Finding::pod(
            format!("securityContext.sysctls[{i}].name"),
            problem("forbidden sysctls", &sysctl.name),
            "remove it: only the safe, namespaced sysctls are allowed (see the Pod Security Standards)",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, run};
    use super::SAFE;

    fn pod(names: &[&str]) -> String {
        let sysctls: Vec<String> = names
            .iter()
            .map(|n| format!(r#"{{"name":"{n}","value":"1"}}"#))
            .collect();
        format!(
            r#"{{"securityContext":{{"sysctls":[{}]}}}}"#,
            sysctls.join(",")
        )
    }

    #[test]
    fn unsafe_sysctls_are_denied_one_by_one() {
        assert_eq!(
            run(
                "pss-sysctls",
                &pod(&[
                    "kernel.msgmax",
                    "net.ipv4.tcp_syncookies",
                    "net.core.somaxconn",
                    "kernel.msgmax"
                ])
            ),
            vec![
                "spec.securityContext.sysctls[0].name: forbidden sysctls (kernel.msgmax)",
                "spec.securityContext.sysctls[2].name: forbidden sysctls (net.core.somaxconn)",
                "spec.securityContext.sysctls[3].name: forbidden sysctls (kernel.msgmax)",
            ]
        );
        assert!(run("pss-sysctls", &pod(&[])).is_empty());
        assert!(run("pss-sysctls", r#"{"securityContext":{"sysctls":null}}"#).is_empty());
    }

    #[test]
    fn the_safe_set_per_version() {
        let all: Vec<&str> = SAFE.iter().map(|(n, _)| *n).collect();
        assert!(run("pss-sysctls", &pod(&all)).is_empty());
        for (version, newly_safe) in [
            ("v1.27", &["net.ipv4.ip_local_reserved_ports"][..]),
            (
                "v1.29",
                &[
                    "net.ipv4.tcp_keepalive_time",
                    "net.ipv4.tcp_fin_timeout",
                    "net.ipv4.tcp_keepalive_intvl",
                    "net.ipv4.tcp_keepalive_probes",
                ][..],
            ),
            ("v1.32", &["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"][..]),
            (
                "v1.37",
                &[
                    "net.ipv4.tcp_slow_start_after_idle",
                    "net.ipv4.tcp_notsent_lowat",
                ][..],
            ),
        ] {
            let minor: u32 = version[3..].parse().unwrap();
            let before = format!("v1.{}", minor - 1);
            assert!(run(&at("pss-sysctls", version), &pod(newly_safe)).is_empty());
            assert_eq!(
                run(&at("pss-sysctls", &before), &pod(newly_safe)).len(),
                newly_safe.len(),
                "{before}"
            );
        }
        assert!(
            run(
                &at("pss-sysctls", "v1.0"),
                &pod(&["kernel.shm_rmid_forced"])
            )
            .is_empty()
        );
    }
}
