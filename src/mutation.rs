//! `/mutate`: JSON patches that make a pod compliant instead of rejecting it.
//!
//! Only policies with `spec.mutate: true` that found a violation take part, so a compliant
//! pod costs nothing beyond the evaluation. For the rest, the object is parsed into JSON, each
//! such policy's check fills in what is absent (never changing what the user wrote), and the
//! patch is the RFC 6902 difference between the original and the filled-in object: pointers
//! are escaped and parents are added before their members by construction. Applying the
//! patch and mutating again yields no patch (idempotent).

use serde_json::Value;

use crate::engine::{Request, Verdict};
use crate::pod::WorkloadKind;
use crate::policy::{Check, ImageVerdicts, PolicySet, edit, signed_images};

/// The pod (template) annotation listing the policies that filled something in.
pub const MUTATED_BY: &str = "portier.dev/mutated-by";

/// A patch and who made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    /// RFC 6902 operations.
    pub patch: json_patch::Patch,
    /// Indexes (in the set) of the policies that changed something.
    pub policies: Vec<usize>,
}

/// JSON pointer of the pod spec and of the pod (template) metadata inside an object.
fn pointers(kind: WorkloadKind) -> (&'static str, &'static str) {
    match kind {
        WorkloadKind::Pod => ("/spec", "/metadata"),
        WorkloadKind::CronJob => (
            "/spec/jobTemplate/spec/template/spec",
            "/spec/jobTemplate/spec/template",
        ),
        WorkloadKind::PodTemplate => ("/template/spec", "/template"),
        WorkloadKind::Deployment
        | WorkloadKind::StatefulSet
        | WorkloadKind::DaemonSet
        | WorkloadKind::ReplicaSet
        | WorkloadKind::ReplicationController
        | WorkloadKind::Job => ("/spec/template/spec", "/spec/template"),
    }
}

/// The `signed-images` policies with `mutateDigest` that judge `request`, by index.
pub fn pinning_policies(set: &PolicySet, request: &Request<'_>) -> Vec<usize> {
    crate::engine::selecting(set, request)
        .filter(|(_, p)| matches!(&p.check, Check::SignedImages(params) if params.mutate_digest))
        .map(|(i, _)| i)
        .collect()
}

/// Mutates `object` (the JSON text of a `kind` workload judged by `verdict`): fills in what
/// the violated mutating policies can, and pins the images the `pinning` policies verified.
pub fn mutate(
    set: &PolicySet,
    verdict: &Verdict<'_, '_>,
    kind: WorkloadKind,
    object: &str,
    pinning: &[usize],
    images: &dyn ImageVerdicts,
) -> Result<Option<Mutation>, serde_json::Error> {
    let wanted: Vec<usize> = verdict
        .violated_policies()
        .filter(|&i| set.policies()[i].mutate)
        .collect();
    if wanted.is_empty() && pinning.is_empty() {
        return Ok(None);
    }
    let original: Value = serde_json::from_str(object)?;
    let mut mutated = original.clone();
    let (spec_pointer, meta_pointer) = pointers(kind);
    let Some(spec) = mutated
        .pointer_mut(spec_pointer)
        .and_then(Value::as_object_mut)
    else {
        return Ok(None);
    };
    let mut applied: Vec<usize> = wanted
        .into_iter()
        .filter(|&i| set.policies()[i].check.mutate(spec))
        .collect();
    for &i in pinning {
        let policy = &set.policies()[i];
        if let Check::SignedImages(params) = &policy.check
            && signed_images::pin_digests(params, &policy.selector, spec, images)
        {
            applied.push(i);
        }
    }
    applied.sort_unstable();
    applied.dedup();
    if applied.is_empty() {
        return Ok(None);
    }
    record(
        &mut mutated,
        meta_pointer,
        kind,
        applied.iter().map(|&i| set.policies()[i].name.as_str()),
    );
    let patch = json_patch::diff(&original, &mutated);
    if patch.0.is_empty() {
        return Ok(None);
    }
    Ok(Some(Mutation {
        patch,
        policies: applied,
    }))
}

/// Adds the policy names to the `portier.dev/mutated-by` annotation (sorted, comma-separated).
fn record<'n>(
    object: &mut Value,
    meta_pointer: &str,
    kind: WorkloadKind,
    names: impl Iterator<Item = &'n str>,
) {
    let holder = match kind {
        // A pod's metadata always exists; a template's may not.
        WorkloadKind::Pod => object.pointer_mut(meta_pointer),
        _ => object.pointer_mut(meta_pointer).and_then(|template| {
            let template = template.as_object_mut()?;
            edit::set_if_absent(template, &["metadata"], Value::Object(Default::default()));
            template.get_mut("metadata")
        }),
    };
    let Some(meta) = holder.and_then(Value::as_object_mut) else {
        return;
    };
    let mut all: Vec<String> = edit::get(meta, &["annotations", MUTATED_BY])
        .and_then(Value::as_str)
        .map(|v| v.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    all.extend(names.map(str::to_owned));
    all.sort();
    all.dedup();
    edit::set_if_absent(meta, &["annotations"], Value::Object(Default::default()));
    if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        annotations.insert(MUTATED_BY.to_owned(), Value::String(all.join(",")));
    }
}
