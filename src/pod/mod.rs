//! A borrowed view of the parts of a workload that policies read.
//!
//! The admission hot path never builds a full `k8s_openapi` Pod: it decodes only the fields below,
//! borrowing strings from the request body where JSON allows it (`Cow` falls back to an owned
//! string only when a value contains escapes). Every other field is skipped by serde.
//!
//! Here: what a decoded workload is ([`Workload`]) and what checks judge of it ([`PodView`]).
//! Beside it: the workload kinds (`kinds`), the decoder (`decode`), the mirror of the PodSpec
//! fields policies read (`spec`), the pod annotations they read (`annotations`), volumes and
//! their sources (`volumes`), and strings and quantities borrowed from the JSON text (`text`).

mod annotations;
mod decode;
mod kinds;
mod spec;
mod text;
mod volumes;

pub use annotations::Annotations;
pub use decode::{WorkloadSeed, decode_workload, explain_decode_error};
pub use kinds::WorkloadKind;
pub use spec::{
    AppArmorProfile, Capabilities, Container, ContainerList, ContainerPort, ContainerRef, Handler,
    HostAction, Lifecycle, PodOs, PodSecurityContext, PodSpec, ResourceList, Resources,
    SeLinuxOptions, SeccompProfile, SecurityContext, Sysctl, WindowsOptions,
};
pub use text::{QuantityText, Text};
pub use volumes::{HostPathSource, Volume, VolumeSources, VolumeType};

/// A decoded workload: its identity and the pod spec it runs (absent when the object carries no
/// template, which the API server would reject anyway).
#[derive(Debug, Default)]
pub struct Workload<'a> {
    pub name: Option<Text<'a>>,
    pub generate_name: Option<Text<'a>>,
    pub namespace: Option<Text<'a>>,
    /// The object's own labels (a controller's, not its pod template's), for `objectSelector`.
    pub labels: crate::labels::RawLabels<'a>,
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

#[cfg(test)]
mod tests;
