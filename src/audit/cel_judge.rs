//! The audit's seam into the CEL policies: a listed object judged as a CREATE of it, as
//! `check` judges a manifest (the same [`create_request`], [`Admission`] and
//! [`engine::evaluate_admission`]), with the Namespace the audit listed or read, and nothing
//! else, as `namespaceObject` and the labels `namespaceSelector` reads.

use k8s_openapi::api::core::v1::Namespace;

use crate::cel::admission::{Served, create_request};
use crate::cel::{Admission, Json};
use crate::engine::{self, Request, Verdict};
use crate::namespaces::{Found, LabelSource, NamespaceLabels};
use crate::pod::PodView;
use crate::policy::{ImageVerdicts, PolicySet};

/// What CEL policies know of the namespace being scanned: its Namespace as the audit listed
/// (`-A`) or read (`-n`) it, or why the audit does not know it (the failure it met).
#[derive(Debug)]
pub struct CelNamespace {
    name: String,
    object: Option<Json<'static>>,
    unknown_why: String,
}

impl CelNamespace {
    /// The namespace `name`, as `found`.
    pub fn new(name: &str, found: Found<'_>) -> CelNamespace {
        match found {
            Found::Known(namespace, _) => CelNamespace {
                name: name.to_owned(),
                object: Some(namespace_json(namespace)),
                unknown_why: String::new(),
            },
            Found::Unknown(why) => CelNamespace {
                name: name.to_owned(),
                object: None,
                unknown_why: why.to_owned(),
            },
        }
    }

    /// For cluster-scoped objects, which are in no namespace (a Namespace is matched on its
    /// own labels, and `namespaceObject` is null for both, as in Kubernetes).
    pub fn cluster() -> CelNamespace {
        CelNamespace {
            name: String::new(),
            object: None,
            unknown_why: "a cluster-scoped object is in no namespace".to_owned(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn bind<'a>(&'a self, admission: Admission<'a>) -> Admission<'a> {
        match &self.object {
            Some(object) => admission.with_namespace_object(object, LabelSource::Listed),
            None => admission.with_namespace_labels(NamespaceLabels::Unknown(&self.unknown_why)),
        }
    }
}

/// The Namespace as CEL's `namespaceObject` reads it: as the API server has it, managed fields
/// dropped (as `serve`'s namespace cache keeps it).
fn namespace_json(namespace: &Namespace) -> Json<'static> {
    let mut value = serde_json::to_value(namespace).unwrap_or_default();
    if let Some(metadata) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        metadata.remove("managedFields");
    }
    Json::from_value(&value)
}

/// Judges the listed object `json`, of the `served` resource, in `namespace`: the CEL
/// policies on a CREATE of it, and the built-in checks on its pod when `workload` gives it
/// (the request their selectors read and the pod, already decoded). An error when the text
/// is not a JSON object.
pub fn judge_object<'p, 'v>(
    set: &'p PolicySet,
    served: &Served<'_>,
    json: &str,
    namespace: &CelNamespace,
    workload: Option<(&Request<'_>, PodView<'v, '_>)>,
    images: &dyn ImageVerdicts,
) -> Result<Verdict<'p, 'v>, String> {
    let object = Json::parse(json).map_err(|e| format!("not a JSON object: {e}"))?;
    if !matches!(object, Json::Object(_)) {
        return Err("not a JSON object".to_owned());
    }
    let request = create_request(object, served, &namespace.name);
    let admission = namespace.bind(Admission::from_request(request.node()));
    Ok(engine::evaluate_admission(
        set, workload, images, &admission,
    ))
}
