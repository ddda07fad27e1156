//! The mirror of the PodSpec fields policies read: containers and where they sit, security
//! contexts, probes and lifecycle hooks, ports and resources.

use std::borrow::Cow;

use serde::Deserialize;

use super::{QuantityText, Text, Volume};

/// The pod spec fields policies read. Lists are `Option` because clients may send `null`;
/// use the accessor methods.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec<'a> {
    #[serde(default)]
    pub host_network: Option<bool>,
    #[serde(default, rename = "hostPID")]
    pub host_pid: Option<bool>,
    #[serde(default, rename = "hostIPC")]
    pub host_ipc: Option<bool>,
    #[serde(borrow, default)]
    pub security_context: Option<PodSecurityContext<'a>>,
    #[serde(borrow, default)]
    pub containers: Option<Vec<Container<'a>>>,
    #[serde(borrow, default)]
    pub init_containers: Option<Vec<Container<'a>>>,
    #[serde(borrow, default)]
    pub ephemeral_containers: Option<Vec<Container<'a>>>,
    #[serde(borrow, default)]
    pub volumes: Option<Vec<Volume<'a>>>,
    /// `spec.os`: `name: windows` marks a Windows pod.
    #[serde(borrow, default)]
    pub os: Option<PodOs<'a>>,
    /// `false` runs the pod in its own user namespace; unset means true.
    #[serde(default)]
    pub host_users: Option<bool>,
    /// The RuntimeClass, which Pod Security admission's exemptions name.
    #[serde(borrow, default)]
    pub runtime_class_name: Option<Text<'a>>,
}

/// The three lists a container can come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerList {
    Containers,
    InitContainers,
    EphemeralContainers,
}

impl ContainerList {
    /// The field name in the pod spec.
    pub fn field(self) -> &'static str {
        match self {
            Self::Containers => "containers",
            Self::InitContainers => "initContainers",
            Self::EphemeralContainers => "ephemeralContainers",
        }
    }

    /// How a person names a container of this list.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Containers => "container",
            Self::InitContainers => "init container",
            Self::EphemeralContainers => "ephemeral container",
        }
    }
}

/// A container together with where it sits in the pod spec.
#[derive(Debug, Clone, Copy)]
pub struct ContainerRef<'s, 'a> {
    pub list: ContainerList,
    pub index: usize,
    pub container: &'s Container<'a>,
}

impl<'a> PodSpec<'a> {
    pub fn containers(&self) -> &[Container<'a>] {
        self.containers.as_deref().unwrap_or(&[])
    }

    pub fn init_containers(&self) -> &[Container<'a>] {
        self.init_containers.as_deref().unwrap_or(&[])
    }

    pub fn ephemeral_containers(&self) -> &[Container<'a>] {
        self.ephemeral_containers.as_deref().unwrap_or(&[])
    }

    /// Every container of the pod: init containers, containers, then ephemeral containers.
    pub fn all_containers(&self) -> impl Iterator<Item = ContainerRef<'_, 'a>> {
        tagged(ContainerList::InitContainers, self.init_containers())
            .chain(tagged(ContainerList::Containers, self.containers()))
            .chain(tagged(
                ContainerList::EphemeralContainers,
                self.ephemeral_containers(),
            ))
    }

    pub fn pod_security(&self) -> Option<&PodSecurityContext<'a>> {
        self.security_context.as_ref()
    }

    pub fn volumes(&self) -> &[Volume<'a>] {
        self.volumes.as_deref().unwrap_or(&[])
    }

    /// Whether `spec.os.name` is exactly `windows` (as the API server compares it).
    pub fn is_windows(&self) -> bool {
        self.os
            .as_ref()
            .and_then(|os| os.name.as_deref())
            .is_some_and(|name| name == "windows")
    }

    /// Whether the pod explicitly asks for its own user namespace (`hostUsers: false`).
    pub fn in_user_namespace(&self) -> bool {
        self.host_users == Some(false)
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct PodOs<'a> {
    #[serde(borrow, default)]
    pub name: Option<Text<'a>>,
}

fn tagged<'s, 'a>(
    list: ContainerList,
    items: &'s [Container<'a>],
) -> impl Iterator<Item = ContainerRef<'s, 'a>> {
    items
        .iter()
        .enumerate()
        .map(move |(index, container)| ContainerRef {
            list,
            index,
            container,
        })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityContext<'a> {
    #[serde(default)]
    pub run_as_non_root: Option<bool>,
    #[serde(default)]
    pub run_as_user: Option<i64>,
    #[serde(default)]
    pub run_as_group: Option<i64>,
    #[serde(borrow, default)]
    pub seccomp_profile: Option<SeccompProfile<'a>>,
    #[serde(borrow, default)]
    pub app_armor_profile: Option<AppArmorProfile<'a>>,
    #[serde(borrow, default, rename = "seLinuxOptions")]
    pub se_linux_options: Option<SeLinuxOptions<'a>>,
    #[serde(borrow, default)]
    pub windows_options: Option<WindowsOptions<'a>>,
    #[serde(borrow, default)]
    pub sysctls: Option<Vec<Sysctl<'a>>>,
}

impl<'a> PodSecurityContext<'a> {
    pub fn sysctls(&self) -> &[Sysctl<'a>] {
        self.sysctls.as_deref().unwrap_or(&[])
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Sysctl<'a> {
    #[serde(borrow, default)]
    pub name: Text<'a>,
    #[serde(borrow, default)]
    pub value: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container<'a> {
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub image: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub security_context: Option<SecurityContext<'a>>,
    #[serde(default)]
    pub ports: Option<Vec<ContainerPort>>,
    #[serde(borrow, default)]
    pub resources: Option<Resources<'a>>,
    #[serde(borrow, default)]
    pub liveness_probe: Option<Handler<'a>>,
    #[serde(borrow, default)]
    pub readiness_probe: Option<Handler<'a>>,
    #[serde(borrow, default)]
    pub startup_probe: Option<Handler<'a>>,
    #[serde(borrow, default)]
    pub lifecycle: Option<Lifecycle<'a>>,
}

impl<'a> Container<'a> {
    pub fn image(&self) -> &str {
        self.image.as_deref().unwrap_or("")
    }

    pub fn security(&self) -> Option<&SecurityContext<'a>> {
        self.security_context.as_ref()
    }

    pub fn ports(&self) -> &[ContainerPort] {
        self.ports.as_deref().unwrap_or(&[])
    }

    /// The probes and lifecycle hooks that are set, with their field names.
    pub fn handlers(&self) -> impl Iterator<Item = (&'static str, &Handler<'a>)> {
        let lifecycle = self.lifecycle.as_ref();
        [
            ("livenessProbe", self.liveness_probe.as_ref()),
            ("readinessProbe", self.readiness_probe.as_ref()),
            ("startupProbe", self.startup_probe.as_ref()),
            (
                "lifecycle.postStart",
                lifecycle.and_then(|l| l.post_start.as_ref()),
            ),
            (
                "lifecycle.preStop",
                lifecycle.and_then(|l| l.pre_stop.as_ref()),
            ),
        ]
        .into_iter()
        .filter_map(|(field, handler)| handler.map(|h| (field, h)))
    }
}

/// A probe or a lifecycle hook: only the network actions, whose `host` policies read.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handler<'a> {
    #[serde(borrow, default)]
    pub http_get: Option<HostAction<'a>>,
    #[serde(borrow, default)]
    pub tcp_socket: Option<HostAction<'a>>,
}

/// `httpGet` or `tcpSocket`: the host to connect to (unset or empty means the pod's IP).
#[derive(Debug, Default, Deserialize)]
pub struct HostAction<'a> {
    #[serde(borrow, default)]
    pub host: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle<'a> {
    #[serde(borrow, default)]
    pub post_start: Option<Handler<'a>>,
    #[serde(borrow, default)]
    pub pre_stop: Option<Handler<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext<'a> {
    #[serde(default)]
    pub run_as_non_root: Option<bool>,
    #[serde(default)]
    pub run_as_user: Option<i64>,
    #[serde(default)]
    pub run_as_group: Option<i64>,
    #[serde(default)]
    pub privileged: Option<bool>,
    #[serde(default)]
    pub allow_privilege_escalation: Option<bool>,
    #[serde(default)]
    pub read_only_root_filesystem: Option<bool>,
    #[serde(borrow, default)]
    pub capabilities: Option<Capabilities<'a>>,
    #[serde(borrow, default)]
    pub seccomp_profile: Option<SeccompProfile<'a>>,
    #[serde(borrow, default)]
    pub app_armor_profile: Option<AppArmorProfile<'a>>,
    #[serde(borrow, default, rename = "seLinuxOptions")]
    pub se_linux_options: Option<SeLinuxOptions<'a>>,
    #[serde(borrow, default)]
    pub windows_options: Option<WindowsOptions<'a>>,
    #[serde(borrow, default)]
    pub proc_mount: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Capabilities<'a> {
    #[serde(borrow, default)]
    pub add: Option<Vec<Text<'a>>>,
    #[serde(borrow, default)]
    pub drop: Option<Vec<Text<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeccompProfile<'a> {
    #[serde(borrow, rename = "type", default)]
    pub kind: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub localhost_profile: Option<Text<'a>>,
}

impl<'a> Capabilities<'a> {
    pub fn add(&self) -> &[Text<'a>] {
        self.add.as_deref().unwrap_or(&[])
    }

    pub fn drop(&self) -> &[Text<'a>] {
        self.drop.as_deref().unwrap_or(&[])
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppArmorProfile<'a> {
    #[serde(borrow, rename = "type", default)]
    pub kind: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub localhost_profile: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SeLinuxOptions<'a> {
    #[serde(borrow, default)]
    pub user: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub role: Option<Text<'a>>,
    #[serde(borrow, rename = "type", default)]
    pub kind: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub level: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowsOptions<'a> {
    #[serde(default)]
    pub host_process: Option<bool>,
    #[serde(borrow, default)]
    pub run_as_user_name: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    #[serde(default)]
    pub container_port: Option<i32>,
    #[serde(default)]
    pub host_port: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Resources<'a> {
    #[serde(borrow, default)]
    pub requests: Option<ResourceList<'a>>,
    #[serde(borrow, default)]
    pub limits: Option<ResourceList<'a>>,
}

/// The resources policies know; others (GPUs, ephemeral-storage, ...) are skipped.
#[derive(Debug, Default, Deserialize)]
pub struct ResourceList<'a> {
    #[serde(borrow, default)]
    pub cpu: Option<QuantityText<'a>>,
    #[serde(borrow, default)]
    pub memory: Option<QuantityText<'a>>,
}
