//! The decoder: a workload of a known kind from its JSON text, or from where it sits inside a
//! larger document ([`WorkloadSeed`]), reading only what [`Workload`] holds.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::{Annotations, PodSpec, Text, Workload, WorkloadKind};
use crate::labels::RawLabels;

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
        WorkloadKind::PodTemplate => {
            let obj = PodTemplateObject::deserialize(de)?;
            let (annotations, spec) = PodTemplate::split(obj.template);
            (obj.metadata, annotations, spec)
        }
        WorkloadKind::Deployment
        | WorkloadKind::StatefulSet
        | WorkloadKind::DaemonSet
        | WorkloadKind::ReplicaSet
        | WorkloadKind::ReplicationController
        | WorkloadKind::Job => {
            let obj = TemplateObject::deserialize(de)?;
            let (annotations, spec) = PodTemplate::split(obj.spec.and_then(|s| s.template));
            (obj.metadata, annotations, spec)
        }
    };
    let metadata = metadata.unwrap_or_default();
    Ok(Workload {
        labels: RawLabels(metadata.labels),
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
    /// Kept as JSON text: read only when an `objectSelector` asks (see [`RawLabels`]).
    #[serde(borrow, default)]
    labels: Option<&'a serde_json::value::RawValue>,
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

/// A PodTemplate keeps its pod at the top level, under `template.spec`.
#[derive(Deserialize)]
struct PodTemplateObject<'a> {
    #[serde(borrow, default)]
    metadata: Option<ObjectMeta<'a>>,
    #[serde(borrow, default)]
    template: Option<PodTemplate<'a>>,
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
