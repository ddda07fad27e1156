//! Each control's result worded as upstream's `CheckResult`: one `reason` and one `detail` for
//! all offenders together (`containers "a", "b" must not set securityContext.privileged=true`),
//! which Pod Security admission joins into its messages (`ForbiddenDetail`, `ForbiddenReason`).
//!
//! The per-control files report one finding per offender, pointing at its field; the `level:
//! namespace` mode answers in PSA's own words instead, so it reads the same pod here, function
//! for function as upstream's `check_*.go` (`policy/` of `k8s.io/pod-security-admission`). The
//! predicates (allowed values per version) are the control files' own, so both agree on what
//! is forbidden; `tests` below check that they agree on every sample. Nothing here allocates
//! for a compliant pod: lists only grow when something is forbidden.

use std::borrow::Cow;

use super::text::{go_quote, join_quote, sorted_distinct};
use super::{
    Control, app_armor, capabilities_baseline, seccomp_baseline, selinux, sysctls, volume_types,
};
use crate::pod::{ContainerRef, PodView};

/// A control's verdict in upstream's words: `(reason, detail)`, `None` when allowed.
pub type Forbidden = Option<(Cow<'static, str>, String)>;

/// Upstream's `pluralize`.
fn plural(singular: &'static str, plural: &'static str, count: usize) -> &'static str {
    if count == 1 { singular } else { plural }
}

/// `container "a"` / `containers "a", "b"`.
fn containers(names: &[&str]) -> String {
    format!(
        "{} {}",
        plural("container", "containers", names.len()),
        join_quote(names)
    )
}

fn names<'s>(
    pod: &'s PodView<'_, '_>,
    mut bad: impl FnMut(&ContainerRef<'s, '_>) -> bool,
) -> Vec<&'s str> {
    pod.spec
        .all_containers()
        .filter(|at| bad(at))
        .map(|at| &*at.container.name)
        .collect()
}

fn forbidden(reason: &'static str, detail: String) -> Forbidden {
    Some((Cow::Borrowed(reason), detail))
}

/// `control` at `minor` (clamped already) on `pod`.
pub fn evaluate(control: &Control, minor: u32, pod: PodView<'_, '_>) -> Forbidden {
    let user_namespace = pod.spec.in_user_namespace();
    let windows = pod.spec.is_windows();
    match control.upstream_id {
        "appArmorProfile" => app_armor_profile(pod),
        "capabilities_baseline" => capabilities_baseline(pod),
        "hostNamespaces" => host_namespaces(pod),
        "hostPathVolumes" => host_path_volumes(pod),
        "hostPorts" => host_ports(pod),
        "hostProbesAndHostLifecycle" => host_probes(pod),
        "privileged" => privileged(pod),
        "procMount" if minor >= 35 && user_namespace => None,
        "procMount" | "procMount_restricted" => proc_mount(pod),
        "seLinuxOptions" => se_linux_options(pod, minor),
        "seccompProfile_baseline" if minor < 19 => seccomp_annotations(pod),
        "seccompProfile_baseline" => seccomp(pod, false),
        "sysctls" => sysctl_names(pod, minor),
        "windowsHostProcess" => host_process(pod),
        "allowPrivilegeEscalation" if minor >= 25 && windows => None,
        "allowPrivilegeEscalation" => allow_privilege_escalation(pod),
        "capabilities_restricted" if minor >= 25 && windows => None,
        "capabilities_restricted" => capabilities_restricted(pod),
        "restrictedVolumes" => restricted_volumes(pod),
        "runAsNonRoot" if minor >= 35 && user_namespace => None,
        "runAsNonRoot" => run_as_non_root(pod),
        "runAsUser" if minor >= 35 && user_namespace => None,
        "runAsUser" => run_as_user(pod),
        "seccompProfile_restricted" if minor >= 25 && windows => None,
        "seccompProfile_restricted" => seccomp(pod, true),
        other => Some((Cow::Owned(format!("unknown check {other}")), String::new())),
    }
}

/// `pod`, then the containers, joined by ` and `, for controls that name both.
fn setters(pod_bad: bool, containers_bad: &[&str]) -> Vec<String> {
    let mut setters = Vec::new();
    if pod_bad {
        setters.push("pod".to_owned());
    }
    if !containers_bad.is_empty() {
        setters.push(containers(containers_bad));
    }
    setters
}

fn app_armor_profile(pod: PodView<'_, '_>) -> Forbidden {
    let pod_type = app_armor::bad_type(
        pod.spec
            .pod_security()
            .and_then(|sc| sc.app_armor_profile.as_ref()),
    );
    let mut values: Vec<&str> = pod_type.into_iter().collect();
    let mut bad = Vec::new();
    for at in pod.spec.all_containers() {
        let profile = at
            .container
            .security()
            .and_then(|sc| sc.app_armor_profile.as_ref());
        if let Some(kind) = app_armor::bad_type(profile) {
            bad.push(&*at.container.name);
            values.push(kind);
        }
    }
    let mut annotations: Vec<String> = pod
        .annotations
        .iter()
        .filter(|(k, v)| k.starts_with(app_armor::PREFIX) && !app_armor::allowed_annotation(v))
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect();
    let mut setters = setters(pod_type.is_some(), &bad);
    let mut list: Vec<String> = sorted_distinct(values)
        .into_iter()
        .map(str::to_owned)
        .collect();
    if !annotations.is_empty() {
        annotations.sort();
        setters.push(plural("annotation", "annotations", annotations.len()).to_owned());
        list.append(&mut annotations);
    }
    if setters.is_empty() {
        return None;
    }
    let reason = plural(
        "forbidden AppArmor profile",
        "forbidden AppArmor profiles",
        list.len(),
    );
    forbidden(
        reason,
        format!(
            "{} must not set AppArmor profile type to {}",
            setters.join(" and "),
            join_quote(&list)
        ),
    )
}

fn capabilities_baseline(pod: PodView<'_, '_>) -> Forbidden {
    let mut caps = Vec::new();
    let bad = names(&pod, |at| {
        let added = at
            .container
            .security()
            .and_then(|sc| sc.capabilities.as_ref())
            .map_or(&[][..], |c| c.add());
        let before = caps.len();
        caps.extend(
            added
                .iter()
                .map(|c| &**c)
                .filter(|c| !capabilities_baseline::allowed(c)),
        );
        caps.len() > before
    });
    if bad.is_empty() {
        return None;
    }
    forbidden(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers(&bad),
            join_quote(sorted_distinct(caps))
        ),
    )
}

fn host_namespaces(pod: PodView<'_, '_>) -> Forbidden {
    let spec = pod.spec;
    let set: Vec<&str> = [
        (spec.host_network, "hostNetwork=true"),
        (spec.host_pid, "hostPID=true"),
        (spec.host_ipc, "hostIPC=true"),
    ]
    .into_iter()
    .filter(|(on, _)| *on == Some(true))
    .map(|(_, words)| words)
    .collect();
    if set.is_empty() {
        return None;
    }
    forbidden("host namespaces", set.join(", "))
}

fn host_path_volumes(pod: PodView<'_, '_>) -> Forbidden {
    let bad: Vec<&str> = pod
        .spec
        .volumes()
        .iter()
        .filter(|v| v.host_path.is_some())
        .map(|v| &*v.name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    forbidden(
        "hostPath volumes",
        format!(
            "{} {}",
            plural("volume", "volumes", bad.len()),
            join_quote(&bad)
        ),
    )
}

fn host_ports(pod: PodView<'_, '_>) -> Forbidden {
    let mut ports = Vec::new();
    let bad = names(&pod, |at| {
        let before = ports.len();
        ports.extend(
            at.container
                .ports()
                .iter()
                .filter_map(|p| p.host_port)
                .filter(|p| *p != 0)
                .map(|p| p.to_string()),
        );
        ports.len() > before
    });
    if bad.is_empty() {
        return None;
    }
    let ports = sorted_distinct(ports.iter().map(String::as_str));
    forbidden(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers(&bad),
            plural("uses", "use", bad.len()),
            plural("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
    )
}

fn host_probes(pod: PodView<'_, '_>) -> Forbidden {
    let mut hosts = Vec::new();
    let bad = names(&pod, |at| {
        let before = hosts.len();
        for (_, handler) in at.container.handlers() {
            for action in [handler.http_get.as_ref(), handler.tcp_socket.as_ref()] {
                if let Some(host) = action.and_then(|a| a.host.as_deref())
                    && !host.is_empty()
                {
                    hosts.push(host);
                }
            }
        }
        hosts.len() > before
    });
    if bad.is_empty() {
        return None;
    }
    let bad = sorted_distinct(bad);
    let hosts = sorted_distinct(hosts);
    forbidden(
        "probe or lifecycle host",
        format!(
            "{} {} {} {}",
            containers(&bad),
            plural("uses", "use", bad.len()),
            plural(
                "probe or lifecycle host",
                "probe or lifecycle hosts",
                hosts.len()
            ),
            join_quote(hosts)
        ),
    )
}

fn privileged(pod: PodView<'_, '_>) -> Forbidden {
    let bad = names(&pod, |at| {
        at.container.security().and_then(|sc| sc.privileged) == Some(true)
    });
    if bad.is_empty() {
        return None;
    }
    forbidden(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers(&bad)
        ),
    )
}

fn proc_mount(pod: PodView<'_, '_>) -> Forbidden {
    let mut values = Vec::new();
    let bad = names(&pod, |at| {
        match at
            .container
            .security()
            .and_then(|sc| sc.proc_mount.as_deref())
        {
            Some(value) if value != "Default" => {
                values.push(value);
                true
            }
            _ => false,
        }
    });
    if bad.is_empty() {
        return None;
    }
    forbidden(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers(&bad),
            join_quote(sorted_distinct(values))
        ),
    )
}

fn se_linux_options(pod: PodView<'_, '_>, minor: u32) -> Forbidden {
    let (mut types, mut user, mut role) = (Vec::new(), false, false);
    let mut invalid = |options: &crate::pod::SeLinuxOptions<'_>| {
        let kind = options.kind.as_deref().unwrap_or("");
        let mut valid = true;
        if !selinux::allowed_type(kind, minor) {
            valid = false;
            types.push(kind.to_owned());
        }
        if options.user.as_deref().is_some_and(|u| !u.is_empty()) {
            valid = false;
            user = true;
        }
        if options.role.as_deref().is_some_and(|r| !r.is_empty()) {
            valid = false;
            role = true;
        }
        !valid
    };
    let pod_bad = pod
        .spec
        .pod_security()
        .and_then(|sc| sc.se_linux_options.as_ref())
        .is_some_and(&mut invalid);
    let bad = names(&pod, |at| {
        at.container
            .security()
            .and_then(|sc| sc.se_linux_options.as_ref())
            .is_some_and(&mut invalid)
    });
    let setters = setters(pod_bad, &bad);
    if setters.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !types.is_empty() {
        let types = sorted_distinct(types.iter().map(String::as_str));
        data.push(format!(
            "{} {}",
            plural("type", "types", types.len()),
            join_quote(types)
        ));
    }
    if user {
        data.push("user may not be set".to_owned());
    }
    if role {
        data.push("role may not be set".to_owned());
    }
    forbidden(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters.join(" and "),
            data.join("; ")
        ),
    )
}

/// Before v1.19: the seccomp annotations of the pod and of each container.
fn seccomp_annotations(pod: PodView<'_, '_>) -> Forbidden {
    let mut bad = Vec::new();
    let mut check = |key: &str| {
        if let Some(value) = pod.annotations.get(key)
            && !seccomp_baseline::allowed_annotation(value)
        {
            bad.push(format!("{key}={}", go_quote(value)));
        }
    };
    check(seccomp_baseline::POD_ANNOTATION);
    // The keys are only built when the pod has container seccomp annotations at all.
    if pod
        .annotations
        .iter()
        .any(|(k, _)| k.starts_with(seccomp_baseline::CONTAINER_ANNOTATION))
    {
        for at in pod.spec.all_containers() {
            check(&format!(
                "{}{}",
                seccomp_baseline::CONTAINER_ANNOTATION,
                at.container.name
            ));
        }
    }
    if bad.is_empty() {
        return None;
    }
    bad.sort();
    bad.dedup();
    forbidden(
        "seccompProfile",
        format!(
            "forbidden {} {}",
            plural("annotation", "annotations", bad.len()),
            bad.join(", ")
        ),
    )
}

/// From v1.19, baseline (`must_set: false`) and restricted (`must_set: true`).
fn seccomp(pod: PodView<'_, '_>, must_set: bool) -> Forbidden {
    let pod_profile = pod
        .spec
        .pod_security()
        .and_then(|sc| sc.seccomp_profile.as_ref());
    let pod_bad = seccomp_baseline::bad_type(pod_profile);
    let pod_set = pod_profile.is_some() && pod_bad.is_none();
    let mut values: Vec<&str> = pod_bad.into_iter().collect();
    let mut implicit = Vec::new();
    let explicit = names(&pod, |at| {
        match at
            .container
            .security()
            .and_then(|sc| sc.seccomp_profile.as_ref())
        {
            Some(profile) => match seccomp_baseline::bad_type(Some(profile)) {
                Some(kind) => {
                    values.push(kind);
                    true
                }
                None => false,
            },
            None => {
                if !pod_set {
                    implicit.push(&*at.container.name);
                }
                false
            }
        }
    });
    let setters = setters(pod_bad.is_some(), &explicit);
    if !setters.is_empty() {
        return forbidden(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters.join(" and "),
                join_quote(sorted_distinct(values))
            ),
        );
    }
    if must_set && !implicit.is_empty() {
        return forbidden(
            "seccompProfile",
            format!(
                "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                containers(&implicit)
            ),
        );
    }
    None
}

fn sysctl_names(pod: PodView<'_, '_>, minor: u32) -> Forbidden {
    let bad: Vec<&str> = pod
        .spec
        .pod_security()
        .map_or(&[][..], |sc| sc.sysctls())
        .iter()
        .map(|s| &*s.name)
        .filter(|name| !sysctls::safe(name, minor))
        .collect();
    if bad.is_empty() {
        return None;
    }
    forbidden("forbidden sysctls", bad.join(", "))
}

fn host_process(pod: PodView<'_, '_>) -> Forbidden {
    let bad = names(&pod, |at| {
        at.container
            .security()
            .and_then(|sc| sc.windows_options.as_ref())
            .and_then(|w| w.host_process)
            == Some(true)
    });
    let pod_bad = pod
        .spec
        .pod_security()
        .and_then(|sc| sc.windows_options.as_ref())
        .and_then(|w| w.host_process)
        == Some(true);
    let setters = setters(pod_bad, &bad);
    if setters.is_empty() {
        return None;
    }
    forbidden(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters.join(" and ")
        ),
    )
}

fn allow_privilege_escalation(pod: PodView<'_, '_>) -> Forbidden {
    let bad = names(&pod, |at| {
        at.container
            .security()
            .and_then(|sc| sc.allow_privilege_escalation)
            != Some(false)
    });
    if bad.is_empty() {
        return None;
    }
    forbidden(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers(&bad)
        ),
    )
}

fn capabilities_restricted(pod: PodView<'_, '_>) -> Forbidden {
    let mut missing_drop = Vec::new();
    let mut adding = Vec::new();
    let mut caps = Vec::new();
    for at in pod.spec.all_containers() {
        let Some(capabilities) = at
            .container
            .security()
            .and_then(|sc| sc.capabilities.as_ref())
        else {
            missing_drop.push(&*at.container.name);
            continue;
        };
        if !capabilities.drop().iter().any(|c| &**c == "ALL") {
            missing_drop.push(&*at.container.name);
        }
        let before = caps.len();
        caps.extend(
            capabilities
                .add()
                .iter()
                .map(|c| &**c)
                .filter(|c| *c != "NET_BIND_SERVICE"),
        );
        if caps.len() > before {
            adding.push(&*at.container.name);
        }
    }
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers(&adding),
            join_quote(sorted_distinct(caps))
        ));
    }
    if details.is_empty() {
        return None;
    }
    forbidden("unrestricted capabilities", details.join("; "))
}

fn restricted_volumes(pod: PodView<'_, '_>) -> Forbidden {
    let mut bad = Vec::new();
    let mut types = Vec::new();
    for volume in pod.spec.volumes() {
        if volume_types::allowed(volume) {
            continue;
        }
        bad.push(&*volume.name);
        types.push(
            volume_types::NAMING_ORDER
                .into_iter()
                .find(|t| volume.sources.contains(*t))
                .map_or("unknown", |t| t.key()),
        );
    }
    if bad.is_empty() {
        return None;
    }
    let types = sorted_distinct(types);
    forbidden(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            plural("volume", "volumes", bad.len()),
            join_quote(&bad),
            plural("uses", "use", bad.len()),
            plural(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(types)
        ),
    )
}

fn run_as_non_root(pod: PodView<'_, '_>) -> Forbidden {
    let pod_value = pod.spec.pod_security().and_then(|sc| sc.run_as_non_root);
    let mut implicit = Vec::new();
    let explicit = names(&pod, |at| {
        match at.container.security().and_then(|sc| sc.run_as_non_root) {
            Some(value) => !value,
            None => {
                if pod_value != Some(true) {
                    implicit.push(&*at.container.name);
                }
                false
            }
        }
    });
    let setters = setters(pod_value == Some(false), &explicit);
    if !setters.is_empty() {
        return forbidden(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        );
    }
    if !implicit.is_empty() {
        return forbidden(
            "runAsNonRoot != true",
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                containers(&implicit)
            ),
        );
    }
    None
}

fn run_as_user(pod: PodView<'_, '_>) -> Forbidden {
    let pod_bad = pod.spec.pod_security().and_then(|sc| sc.run_as_user) == Some(0);
    let bad = names(&pod, |at| {
        at.container.security().and_then(|sc| sc.run_as_user) == Some(0)
    });
    let setters = setters(pod_bad, &bad);
    if setters.is_empty() {
        return None;
    }
    forbidden(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", setters.join(" and ")),
    )
}

#[cfg(test)]
#[path = "upstream_tests.rs"]
mod tests;
