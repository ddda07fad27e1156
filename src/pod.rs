//! A borrowed view of the parts of a workload that policies read.
//!
//! The admission hot path never builds a full `k8s_openapi` Pod: it decodes only the fields below,
//! borrowing strings from the request body where JSON allows it (`Cow` falls back to an owned
//! string only when a value contains escapes). Every other field is skipped by serde.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// The kinds whose pod spec portier judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    Pod,
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    ReplicationController,
    Job,
    CronJob,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 8] = [
        WorkloadKind::Pod,
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::ReplicaSet,
        WorkloadKind::ReplicationController,
        WorkloadKind::Job,
        WorkloadKind::CronJob,
    ];

    /// Maps an API group and kind (as in `request.kind` or an object's apiVersion/kind) to a
    /// judged workload; `None` for everything portier does not judge.
    pub fn from_group_kind(group: &str, kind: &str) -> Option<Self> {
        let found = match (group, kind) {
            ("", "Pod") => Self::Pod,
            ("", "ReplicationController") => Self::ReplicationController,
            ("apps", "Deployment") => Self::Deployment,
            ("apps", "StatefulSet") => Self::StatefulSet,
            ("apps", "DaemonSet") => Self::DaemonSet,
            ("apps", "ReplicaSet") => Self::ReplicaSet,
            ("batch", "Job") => Self::Job,
            ("batch", "CronJob") => Self::CronJob,
            _ => return None,
        };
        Some(found)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pod => "Pod",
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
            Self::ReplicaSet => "ReplicaSet",
            Self::ReplicationController => "ReplicationController",
            Self::Job => "Job",
            Self::CronJob => "CronJob",
        }
    }

    /// Where the pod spec sits inside an object of this kind, as a JSON path.
    pub fn pod_spec_path(self) -> &'static str {
        match self {
            Self::Pod => "spec",
            Self::CronJob => "spec.jobTemplate.spec.template.spec",
            _ => "spec.template.spec",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded workload: its identity and the pod spec it runs (absent when the object carries no
/// template, which the API server would reject anyway).
#[derive(Debug, Default)]
pub struct Workload<'a> {
    pub name: Option<Text<'a>>,
    pub generate_name: Option<Text<'a>>,
    pub namespace: Option<Text<'a>>,
    /// The annotations of the pod: `metadata.annotations` of a Pod, the pod template's
    /// (`spec.template.metadata.annotations`) for controllers. Only the keys policies read.
    pub pod_annotations: Annotations<'a>,
    pub spec: Option<PodSpec<'a>>,
}

impl<'a> Workload<'a> {
    /// What checks judge: the pod's annotations and spec. `None` without a pod spec.
    pub fn pod(&self) -> Option<PodView<'_, 'a>> {
        self.spec.as_ref().map(|spec| PodView {
            annotations: &self.pod_annotations,
            spec,
        })
    }
}

/// A pod as checks see it: the annotations of its metadata and its spec. For a controller these
/// come from the pod template, so they are what the pods it creates will carry.
#[derive(Debug, Clone, Copy)]
pub struct PodView<'v, 'a> {
    pub annotations: &'v Annotations<'a>,
    pub spec: &'v PodSpec<'a>,
}

impl<'v, 'a> PodView<'v, 'a> {
    /// A view of a bare pod spec, without annotations.
    pub fn of_spec(spec: &'v PodSpec<'a>) -> Self {
        PodView {
            annotations: Annotations::none(),
            spec,
        }
    }
}

/// Decodes a workload of a known kind from its JSON text.
pub fn decode_workload(kind: WorkloadKind, json: &str) -> Result<Workload<'_>, serde_json::Error> {
    // serde accepts a JSON array for a struct (fields by position); an object must be an object.
    if !json.trim_start().starts_with('{') {
        return Err(de::Error::custom(format!("a {kind} must be a JSON object")));
    }
    let mut de = serde_json::Deserializer::from_str(json);
    let workload = decode_with(kind, &mut de)?;
    de.end()?;
    Ok(workload)
}

/// Like [`decode_workload`], but on failure names the JSON path of the offending field
/// (e.g. `spec.containers[0].securityContext.runAsUser`). Slower: for error messages only.
pub fn explain_decode_error(kind: WorkloadKind, json: &str) -> String {
    match decode_workload(kind, json) {
        Ok(_) => return "no error".to_owned(),
        // Syntax errors carry a position, and the shape check no path: nothing to add.
        Err(e) if !e.is_data() || !json.trim_start().starts_with('{') => return e.to_string(),
        Err(_) => {}
    }
    let mut de = serde_json::Deserializer::from_str(json);
    let mut track = serde_path_to_error::Track::new();
    let result = decode_with(
        kind,
        serde_path_to_error::Deserializer::new(&mut de, &mut track),
    );
    match result {
        Ok(_) => match de.end() {
            Ok(()) => "no error".to_owned(),
            Err(e) => e.to_string(),
        },
        Err(e) => {
            let path = track.path().to_string();
            if path == "." || path.is_empty() {
                e.to_string()
            } else {
                format!("{path}: {e}")
            }
        }
    }
}

fn decode_with<'de, D: Deserializer<'de>>(
    kind: WorkloadKind,
    de: D,
) -> Result<Workload<'de>, D::Error> {
    let (metadata, pod_annotations, spec) = match kind {
        WorkloadKind::Pod => {
            let mut pod = PodObject::deserialize(de)?;
            let annotations = pod
                .metadata
                .as_mut()
                .and_then(|m| m.annotations.take())
                .unwrap_or_default();
            (pod.metadata, annotations, pod.spec)
        }
        WorkloadKind::CronJob => {
            let cron = CronJobObject::deserialize(de)?;
            let template = cron
                .spec
                .and_then(|s| s.job_template)
                .and_then(|t| t.spec)
                .and_then(|s| s.template);
            let (annotations, spec) = PodTemplate::split(template);
            (cron.metadata, annotations, spec)
        }
        _ => {
            let obj = TemplateObject::deserialize(de)?;
            let (annotations, spec) = PodTemplate::split(obj.spec.and_then(|s| s.template));
            (obj.metadata, annotations, spec)
        }
    };
    let metadata = metadata.unwrap_or_default();
    Ok(Workload {
        name: metadata.name,
        generate_name: metadata.generate_name,
        namespace: metadata.namespace,
        pod_annotations,
        spec,
    })
}

/// Decodes a workload of a known kind where it sits inside a larger document (the
/// AdmissionReview's `request.object`), so the object is read once instead of being captured
/// and parsed again. Like [`decode_workload`], it accepts only a JSON object; `null` is `None`.
pub struct WorkloadSeed(pub WorkloadKind);

impl<'de> de::DeserializeSeed<'de> for WorkloadSeed {
    type Value = Option<Workload<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for WorkloadSeed {
    type Value = Option<Workload<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} object", self.0)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_map(self)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        decode_with(self.0, de::value::MapAccessDeserializer::new(map)).map(Some)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectMeta<'a> {
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
    #[serde(borrow, default)]
    generate_name: Option<Text<'a>>,
    #[serde(borrow, default)]
    namespace: Option<Text<'a>>,
    #[serde(borrow, default)]
    annotations: Option<Annotations<'a>>,
}

#[derive(Deserialize)]
struct PodObject<'a> {
    #[serde(borrow, default)]
    metadata: Option<ObjectMeta<'a>>,
    #[serde(borrow, default)]
    spec: Option<PodSpec<'a>>,
}

/// Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController and Job all keep their
/// pod under `spec.template.spec`.
#[derive(Deserialize)]
struct TemplateObject<'a> {
    #[serde(borrow, default)]
    metadata: Option<ObjectMeta<'a>>,
    #[serde(borrow, default)]
    spec: Option<TemplateHolder<'a>>,
}

#[derive(Deserialize)]
struct TemplateHolder<'a> {
    #[serde(borrow, default)]
    template: Option<PodTemplate<'a>>,
}

#[derive(Deserialize)]
struct PodTemplate<'a> {
    #[serde(borrow, default)]
    metadata: Option<ObjectMeta<'a>>,
    #[serde(borrow, default)]
    spec: Option<PodSpec<'a>>,
}

impl<'a> PodTemplate<'a> {
    /// The template's annotations and pod spec.
    fn split(template: Option<Self>) -> (Annotations<'a>, Option<PodSpec<'a>>) {
        match template {
            Some(t) => (
                t.metadata.and_then(|m| m.annotations).unwrap_or_default(),
                t.spec,
            ),
            None => (Annotations::default(), None),
        }
    }
}

#[derive(Deserialize)]
struct CronJobObject<'a> {
    #[serde(borrow, default)]
    metadata: Option<ObjectMeta<'a>>,
    #[serde(borrow, default)]
    spec: Option<CronJobSpec<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CronJobSpec<'a> {
    #[serde(borrow, default)]
    job_template: Option<JobTemplate<'a>>,
}

#[derive(Deserialize)]
struct JobTemplate<'a> {
    #[serde(borrow, default)]
    spec: Option<TemplateHolder<'a>>,
}

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

/// The annotations policies read, as `(key, value)` pairs in document order. Only the keys
/// that carry security settings are kept (AppArmor and the legacy seccomp annotations, see
/// [`Annotations::KEPT_PREFIXES`]); every other annotation is skipped while decoding, so a pod
/// with the usual labels-and-annotations clutter costs no allocation here.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Annotations<'a>(Vec<(Text<'a>, Text<'a>)>);

static NO_ANNOTATIONS: Annotations<'static> = Annotations(Vec::new());

impl<'a> Annotations<'a> {
    /// Annotation keys starting with one of these are kept.
    pub const KEPT_PREFIXES: [&'static str; 3] = [
        "container.apparmor.security.beta.kubernetes.io/",
        "seccomp.security.alpha.kubernetes.io/",
        "container.seccomp.security.alpha.kubernetes.io/",
    ];

    /// An empty set, for views of a bare pod spec.
    pub fn none() -> &'static Annotations<'static> {
        &NO_ANNOTATIONS
    }

    fn kept(key: &str) -> bool {
        Self::KEPT_PREFIXES.iter().any(|p| key.starts_with(p))
    }

    /// Builds a set from pairs, keeping only the keys a decoded set would keep.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Annotations(
            pairs
                .into_iter()
                .filter(|(k, _)| Self::kept(k))
                .map(|(k, v)| (Text(Cow::Borrowed(k)), Text(Cow::Borrowed(v))))
                .collect(),
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    /// The value of `key` (the last one, should a document repeat a key).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| **k == *key)
            .map(|(_, v)| &**v)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Annotations<'a> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct AnnotationsVisitor<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for AnnotationsVisitor<'a> {
            type Value = Annotations<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of annotations")
            }

            fn visit_map<M: de::MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut kept = Vec::new();
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    if Annotations::kept(&key) {
                        // A null value is an empty string to the API server.
                        let value: Option<Text<'de>> = map.next_value()?;
                        kept.push((key, value.unwrap_or_default()));
                    } else {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
                Ok(Annotations(kept))
            }
        }

        de.deserialize_map(AnnotationsVisitor(std::marker::PhantomData))
    }
}

/// The kinds of volume source (the keys of a Kubernetes `VolumeSource`), in the API's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VolumeType {
    HostPath,
    EmptyDir,
    GcePersistentDisk,
    AwsElasticBlockStore,
    GitRepo,
    Secret,
    Nfs,
    Iscsi,
    Glusterfs,
    PersistentVolumeClaim,
    Rbd,
    FlexVolume,
    Cinder,
    Cephfs,
    Flocker,
    DownwardApi,
    Fc,
    AzureFile,
    ConfigMap,
    VsphereVolume,
    Quobyte,
    AzureDisk,
    PhotonPersistentDisk,
    Projected,
    PortworxVolume,
    ScaleIo,
    Storageos,
    Csi,
    Ephemeral,
    Image,
}

impl VolumeType {
    pub const ALL: [VolumeType; 30] = [
        Self::HostPath,
        Self::EmptyDir,
        Self::GcePersistentDisk,
        Self::AwsElasticBlockStore,
        Self::GitRepo,
        Self::Secret,
        Self::Nfs,
        Self::Iscsi,
        Self::Glusterfs,
        Self::PersistentVolumeClaim,
        Self::Rbd,
        Self::FlexVolume,
        Self::Cinder,
        Self::Cephfs,
        Self::Flocker,
        Self::DownwardApi,
        Self::Fc,
        Self::AzureFile,
        Self::ConfigMap,
        Self::VsphereVolume,
        Self::Quobyte,
        Self::AzureDisk,
        Self::PhotonPersistentDisk,
        Self::Projected,
        Self::PortworxVolume,
        Self::ScaleIo,
        Self::Storageos,
        Self::Csi,
        Self::Ephemeral,
        Self::Image,
    ];

    /// The field name in a volume, e.g. `hostPath`.
    pub fn key(self) -> &'static str {
        match self {
            Self::HostPath => "hostPath",
            Self::EmptyDir => "emptyDir",
            Self::GcePersistentDisk => "gcePersistentDisk",
            Self::AwsElasticBlockStore => "awsElasticBlockStore",
            Self::GitRepo => "gitRepo",
            Self::Secret => "secret",
            Self::Nfs => "nfs",
            Self::Iscsi => "iscsi",
            Self::Glusterfs => "glusterfs",
            Self::PersistentVolumeClaim => "persistentVolumeClaim",
            Self::Rbd => "rbd",
            Self::FlexVolume => "flexVolume",
            Self::Cinder => "cinder",
            Self::Cephfs => "cephfs",
            Self::Flocker => "flocker",
            Self::DownwardApi => "downwardAPI",
            Self::Fc => "fc",
            Self::AzureFile => "azureFile",
            Self::ConfigMap => "configMap",
            Self::VsphereVolume => "vsphereVolume",
            Self::Quobyte => "quobyte",
            Self::AzureDisk => "azureDisk",
            Self::PhotonPersistentDisk => "photonPersistentDisk",
            Self::Projected => "projected",
            Self::PortworxVolume => "portworxVolume",
            Self::ScaleIo => "scaleIO",
            Self::Storageos => "storageos",
            Self::Csi => "csi",
            Self::Ephemeral => "ephemeral",
            Self::Image => "image",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.key() == key)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// The set of sources a volume sets (the API server allows exactly one; a manifest may hold
/// none, or several).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VolumeSources(u32);

impl VolumeSources {
    pub fn contains(self, t: VolumeType) -> bool {
        self.0 & t.bit() != 0
    }

    pub fn insert(&mut self, t: VolumeType) {
        self.0 |= t.bit();
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = VolumeType> {
        VolumeType::ALL
            .into_iter()
            .filter(move |t| self.contains(*t))
    }
}

/// A volume of the pod: its name, which source keys it sets (a key whose value is `null`
/// counts as unset, as for the API server), and the host path of a `hostPath` volume.
#[derive(Debug, Default)]
pub struct Volume<'a> {
    pub name: Text<'a>,
    pub sources: VolumeSources,
    pub host_path: Option<HostPathSource<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct HostPathSource<'a> {
    #[serde(borrow, default)]
    pub path: Option<Text<'a>>,
    #[serde(borrow, rename = "type", default)]
    pub kind: Option<Text<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Volume<'a> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct VolumeVisitor<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for VolumeVisitor<'a> {
            type Value = Volume<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a volume")
            }

            fn visit_map<M: de::MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut volume = Volume::default();
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    if &*key == "name" {
                        let name: Option<Text<'de>> = map.next_value()?;
                        volume.name = name.unwrap_or_default();
                        continue;
                    }
                    match VolumeType::from_key(&key) {
                        Some(VolumeType::HostPath) => {
                            volume.host_path = map.next_value()?;
                            if volume.host_path.is_some() {
                                volume.sources.insert(VolumeType::HostPath);
                            }
                        }
                        Some(t) => {
                            if map.next_value::<Option<de::IgnoredAny>>()?.is_some() {
                                volume.sources.insert(t);
                            }
                        }
                        None => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(volume)
            }
        }

        de.deserialize_map(VolumeVisitor(std::marker::PhantomData))
    }
}

/// A string borrowed from the JSON text when it holds no escapes. serde only borrows into a bare
/// `Cow` field; inside `Option` or `Vec` a `Cow` would always be owned, so views use this.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_str(CowStrVisitor { numbers: false })
            .map(Text)
    }
}

/// A resource quantity as written ("500m", "1Gi"). The API server always sends strings; a YAML
/// manifest may say `cpu: 1`, so numbers are accepted and kept in their decimal form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantityText<'a>(pub Cow<'a, str>);

impl QuantityText<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for QuantityText<'a> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_any(CowStrVisitor { numbers: true })
            .map(QuantityText)
    }
}

struct CowStrVisitor {
    numbers: bool,
}

impl CowStrVisitor {
    fn number<'de, E: de::Error>(
        &self,
        v: impl ToString,
        unexp: de::Unexpected<'_>,
    ) -> Result<Cow<'de, str>, E> {
        if self.numbers {
            Ok(Cow::Owned(v.to_string()))
        } else {
            Err(E::invalid_type(unexp, self))
        }
    }
}

impl<'de> Visitor<'de> for CowStrVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.numbers {
            f.write_str("a resource quantity such as \"500m\" or \"1Gi\"")
        } else {
            f.write_str("a string")
        }
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.number(v, de::Unexpected::Unsigned(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.number(v, de::Unexpected::Signed(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.number(v, de::Unexpected::Float(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_deployment_template_and_borrows_strings() {
        let json = r#"{"apiVersion":"apps/v1","kind":"Deployment",
            "metadata":{"name":"web","namespace":"shop","labels":{"a":"b"}},
            "spec":{"replicas":2,"template":{"metadata":{"labels":{"a":"b"}},
              "spec":{"hostNetwork":true,"containers":[{"name":"app","image":"nginx:1",
                "resources":{"limits":{"cpu":"1","memory":"1Gi","nvidia.com/gpu":"1"}}}]}}}}"#;
        let w = decode_workload(WorkloadKind::Deployment, json).unwrap();
        assert_eq!(w.name.as_deref(), Some("web"));
        let spec = w.spec.unwrap();
        assert_eq!(spec.host_network, Some(true));
        let c = &spec.containers()[0];
        assert!(matches!(c.name, Cow::Borrowed("app")));
        assert!(matches!(
            c.image.as_ref().unwrap().0,
            Cow::Borrowed("nginx:1")
        ));
        let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(limits.cpu.as_ref().unwrap().as_str(), "1");
    }

    #[test]
    fn decodes_a_cronjob_and_tolerates_nulls() {
        let json = r#"{"metadata":{"name":"nightly"},"spec":{"schedule":"@daily","jobTemplate":
            {"spec":{"template":{"spec":{"containers":[{"name":"x","ports":null,
              "securityContext":null}],"initContainers":null}}}}}}"#;
        let w = decode_workload(WorkloadKind::CronJob, json).unwrap();
        let spec = w.spec.unwrap();
        assert_eq!(spec.containers().len(), 1);
        assert!(spec.init_containers().is_empty());
        assert_eq!(
            WorkloadKind::CronJob.pod_spec_path(),
            "spec.jobTemplate.spec.template.spec"
        );
    }

    #[test]
    fn all_containers_walks_every_list_with_positions() {
        let json = r#"{"spec":{"initContainers":[{"name":"i"}],"containers":[{"name":"a"},{"name":"b"}],
            "ephemeralContainers":[{"name":"e"}]}}"#;
        let w = decode_workload(WorkloadKind::Pod, json).unwrap();
        let spec = w.spec.unwrap();
        let seen: Vec<_> = spec
            .all_containers()
            .map(|c| (c.list.field(), c.index, c.container.name.to_string()))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("initContainers", 0, "i".to_owned()),
                ("containers", 0, "a".to_owned()),
                ("containers", 1, "b".to_owned()),
                ("ephemeralContainers", 0, "e".to_owned()),
            ]
        );
    }

    #[test]
    fn wrong_shapes_are_errors_that_name_the_field() {
        let json =
            r#"{"spec":{"containers":[{"name":"a","securityContext":{"runAsUser":"root"}}]}}"#;
        assert!(decode_workload(WorkloadKind::Pod, json).is_err());
        let why = explain_decode_error(WorkloadKind::Pod, json);
        assert!(
            why.starts_with("spec.containers[0].securityContext.runAsUser"),
            "{why}"
        );
        assert!(decode_workload(WorkloadKind::Pod, r#"{"spec":{"containers":{}}}"#).is_err());
        assert!(decode_workload(WorkloadKind::Pod, r#"[]"#).is_err());
    }

    #[test]
    fn quantities_accept_numbers_from_yaml() {
        let json = r#"{"spec":{"containers":[{"name":"a","resources":{"requests":{"cpu":1,"memory":0.5}}}]}}"#;
        let w = decode_workload(WorkloadKind::Pod, json).unwrap();
        let spec = w.spec.unwrap();
        let req = spec.containers()[0]
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap();
        assert_eq!(req.cpu.as_ref().unwrap().as_str(), "1");
        assert_eq!(req.memory.as_ref().unwrap().as_str(), "0.5");
    }

    #[test]
    fn keeps_only_security_annotations_of_the_pod_or_its_template() {
        let pod = r#"{"metadata":{"name":"p","annotations":{"team":"a",
            "container.apparmor.security.beta.kubernetes.io/app":"runtime/default",
            "seccomp.security.alpha.kubernetes.io/pod":null}},"spec":{}}"#;
        let w = decode_workload(WorkloadKind::Pod, pod).unwrap();
        let kept: Vec<_> = w.pod_annotations.iter().collect();
        assert_eq!(
            kept,
            vec![
                (
                    "container.apparmor.security.beta.kubernetes.io/app",
                    "runtime/default"
                ),
                ("seccomp.security.alpha.kubernetes.io/pod", ""),
            ]
        );
        assert_eq!(
            w.pod().unwrap().annotations.get("team"),
            None,
            "other annotations are skipped"
        );

        // Controllers: the template's annotations, not the controller's own.
        let deployment = r#"{"metadata":{"annotations":{"container.apparmor.security.beta.kubernetes.io/x":"unconfined"}},
            "spec":{"template":{"metadata":{"annotations":{"container.apparmor.security.beta.kubernetes.io/app":"localhost/p"}},
            "spec":{"containers":[{"name":"app"}]}}}}"#;
        let w = decode_workload(WorkloadKind::Deployment, deployment).unwrap();
        let view = w.pod().unwrap();
        assert_eq!(
            view.annotations
                .get("container.apparmor.security.beta.kubernetes.io/app"),
            Some("localhost/p")
        );
        assert_eq!(view.annotations.iter().count(), 1);

        let cron = r#"{"spec":{"jobTemplate":{"spec":{"template":{"metadata":{"annotations":
            {"container.seccomp.security.alpha.kubernetes.io/c":"unconfined"}},"spec":{}}}}}}"#;
        let w = decode_workload(WorkloadKind::CronJob, cron).unwrap();
        assert_eq!(
            w.pod_annotations
                .get("container.seccomp.security.alpha.kubernetes.io/c"),
            Some("unconfined")
        );
        assert!(decode_workload(WorkloadKind::Pod, r#"{"metadata":{"annotations":{"container.apparmor.security.beta.kubernetes.io/a":1}}}"#).is_err());
    }

    #[test]
    fn decodes_volume_types_security_fields_and_handler_hosts() {
        let json = r#"{"spec":{"os":{"name":"windows"},"hostUsers":false,
            "securityContext":{"seLinuxOptions":{"type":"spc_t"},"sysctls":[{"name":"kernel.msgmax","value":"1"}],
              "appArmorProfile":{"type":"Unconfined"},"windowsOptions":{"hostProcess":true}},
            "volumes":[{"name":"h","hostPath":{"path":"/etc"}},{"name":"c","configMap":{"name":"x"}},
              {"name":"n","secret":null},{"name":"two","nfs":{},"emptyDir":{}},{"name":"odd","future":{}}],
            "containers":[{"name":"a","securityContext":{"procMount":"Unmasked","capabilities":{"add":["NET_ADMIN"]}},
              "livenessProbe":{"httpGet":{"host":"10.0.0.1","port":80}},"startupProbe":{"exec":{"command":["x"]}},
              "lifecycle":{"preStop":{"tcpSocket":{"host":"db","port":5432}}}}]}}"#;
        let w = decode_workload(WorkloadKind::Pod, json).unwrap();
        let spec = w.spec.unwrap();
        assert!(spec.is_windows());
        assert!(spec.in_user_namespace());
        let psc = spec.pod_security().unwrap();
        assert_eq!(psc.sysctls()[0].name.0, "kernel.msgmax");
        assert_eq!(
            psc.windows_options.as_ref().unwrap().host_process,
            Some(true)
        );
        let v = spec.volumes();
        assert_eq!(
            v[0].sources.iter().collect::<Vec<_>>(),
            vec![VolumeType::HostPath]
        );
        assert_eq!(
            v[0].host_path.as_ref().unwrap().path.as_deref(),
            Some("/etc")
        );
        assert!(v[1].sources.contains(VolumeType::ConfigMap));
        assert!(v[2].sources.is_empty(), "a null source is unset");
        assert_eq!(
            v[3].sources.iter().collect::<Vec<_>>(),
            vec![VolumeType::EmptyDir, VolumeType::Nfs]
        );
        assert!(v[4].sources.is_empty(), "unknown keys are no known source");
        assert_eq!(&*v[4].name, "odd");
        let c = &spec.containers()[0];
        let handlers: Vec<_> = c
            .handlers()
            .map(|(field, h)| {
                let host = h
                    .http_get
                    .as_ref()
                    .or(h.tcp_socket.as_ref())
                    .and_then(|a| a.host.as_deref());
                (field, host)
            })
            .collect();
        assert_eq!(
            handlers,
            vec![
                ("livenessProbe", Some("10.0.0.1")),
                ("startupProbe", None),
                ("lifecycle.preStop", Some("db")),
            ]
        );
        let sc = c.security().unwrap();
        assert_eq!(sc.proc_mount.as_deref(), Some("Unmasked"));
        assert_eq!(sc.capabilities.as_ref().unwrap().add()[0].0, "NET_ADMIN");
        assert!(!PodSpec::default().is_windows());
    }

    #[test]
    fn only_judged_kinds_are_recognised() {
        assert_eq!(
            WorkloadKind::from_group_kind("apps", "Deployment"),
            Some(WorkloadKind::Deployment)
        );
        assert_eq!(WorkloadKind::from_group_kind("", "Deployment"), None);
        assert_eq!(WorkloadKind::from_group_kind("", "ConfigMap"), None);
        assert_eq!(
            WorkloadKind::from_group_kind("batch", "CronJob"),
            Some(WorkloadKind::CronJob)
        );
    }
}
