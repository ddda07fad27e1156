//! `portier check`: judge manifests from files as admission would.
//!
//! Each YAML or JSON document (or each item of a `List`) is turned back into JSON and decoded
//! by the very decoder admission uses, then evaluated by the same engine, so `check` and the
//! webhook cannot disagree on an object. There is no requesting user offline, so `users`
//! selectors do not apply; a namespace-less object is judged in `default`, as kubectl would
//! create it. The API server's defaults that can change a verdict are applied first (see
//! [`apply_admission_defaults`]), since admission only ever sees defaulted objects.
//!
//! Offline by default: `signed-images` reports nothing, since a file check should not reach the
//! network unasked. With [`Images::Verify`] (`--verify-images`) each object is judged as
//! admission judges it: with the cached verdicts, then again after verifying what the cache
//! did not know; `--mutate` then also pins verified tags to their digest, as `/mutate` does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cel::admission::synthetic_create;
use crate::cel::{Admission, Json};
use crate::engine::{self, Request};
use crate::image_pass::ReviewImages;
use crate::images::Verifier;
use crate::mutation;
use crate::pod::{self, VolumeType, WorkloadKind};
use crate::policy::{ImageVerdicts, Mode, PolicySet, Unverified};
use crate::row::Row;
use namespaces::InputNamespaces;

mod namespaces;

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: not valid YAML or JSON: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin} document {document}: {message}")]
    Object {
        origin: String,
        document: usize,
        message: String,
    },
    #[error(transparent)]
    NamespaceLabels(#[from] crate::namespaces::NamespaceLabelsFlagError),
}

/// The result of checking some inputs.
#[derive(Debug, Default)]
pub struct Report {
    /// Objects judged: workloads, and objects of other kinds a CEL policy selected.
    pub judged: usize,
    /// Objects no policy judges.
    pub skipped: usize,
    pub rows: Vec<Row>,
    /// With mutation on: every object read, as `/mutate` would leave it (in input order).
    pub mutated: Vec<serde_json::Value>,
    /// With mutation on: how many objects a patch changed.
    pub patched: usize,
    /// One per object whose namespace's labels a policy needed and nothing gave.
    pub notes: Vec<String>,
}

/// What `check` does besides judging.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mutate {
    /// Judge the objects as written.
    #[default]
    No,
    /// Apply `/mutate`'s patch first, keep the patched objects, and judge those (as the API
    /// server calls mutating webhooks before validating ones).
    Yes,
}

/// Where `check` gets image signature verdicts from.
#[derive(Clone, Copy, Default)]
pub enum Images<'a> {
    /// Nowhere: `signed-images` reports nothing.
    #[default]
    Offline,
    /// The registries, through `verifier`, waited for on `runtime`.
    Verify {
        verifier: &'a Arc<Verifier>,
        runtime: &'a tokio::runtime::Runtime,
    },
}

impl Report {
    /// Whether something violates an enforce policy, i.e. admission would deny it.
    pub fn denies(&self) -> bool {
        self.rows.iter().any(|r| r.mode == Mode::Enforce.as_str())
    }
}

/// Reads every input (a file, a directory of `*.yaml`/`*.yml`/`*.json` files, or `-` for
/// `stdin`) and judges what it holds.
pub fn check_paths(
    paths: &[PathBuf],
    set: &PolicySet,
    stdin: &mut dyn std::io::Read,
    mutate: Mutate,
    images: Images<'_>,
    namespace_labels: &[String],
) -> Result<Report, OfflineError> {
    // Every input is read before any is judged: a Namespace in one file is the namespace of
    // the objects of every other.
    let mut inputs = Vec::new();
    for path in paths {
        if path == Path::new("-") {
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(|source| OfflineError::Read {
                    path: path.clone(),
                    source,
                })?;
            inputs.push(("<stdin>".to_owned(), text));
            continue;
        }
        for file in expand(path)? {
            let text = std::fs::read_to_string(&file).map_err(|source| OfflineError::Read {
                path: file.clone(),
                source,
            })?;
            inputs.push((file.display().to_string(), text));
        }
    }
    let mut parsed = Vec::with_capacity(inputs.len());
    for (origin, text) in &inputs {
        parsed.push((origin.as_str(), parse(origin, text)?));
    }
    let mut namespaces = InputNamespaces::collect(
        parsed
            .iter()
            .flat_map(|(_, documents)| documents.iter().flat_map(objects_of)),
    );
    // `--namespace-labels NS=k=v,...`: all the labels of NS (the same NS twice merges),
    // replacing what the inputs say of it.
    let mut flagged: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, String>,
    > = std::collections::BTreeMap::new();
    for flag in namespace_labels {
        let (name, labels) = crate::namespaces::parse_namespace_labels_flag(flag)?;
        flagged.entry(name).or_default().extend(labels);
    }
    for (name, labels) in flagged {
        namespaces.insert(&serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels},
        }));
    }
    let mut report = Report::default();
    let judge = Judge {
        set,
        mutate,
        images,
        namespaces: &namespaces,
    };
    for (origin, documents) in &parsed {
        judge.documents(origin, documents, &mut report)?;
    }
    Ok(report)
}

fn expand(path: &Path) -> Result<Vec<PathBuf>, OfflineError> {
    let read_err = |source| OfflineError::Read {
        path: path.to_owned(),
        source,
    };
    if !std::fs::metadata(path).map_err(read_err)?.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_err)? {
        let p = entry.map_err(read_err)?.path();
        let manifest = p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        if manifest && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Judges every object in one YAML/JSON text (several documents, `List`s allowed), the
/// Namespaces it holds being all that is known of namespaces.
pub fn check_text(
    origin: &str,
    text: &str,
    set: &PolicySet,
    mutate: Mutate,
    images: Images<'_>,
    report: &mut Report,
) -> Result<(), OfflineError> {
    let documents = parse(origin, text)?;
    let namespaces = InputNamespaces::collect(documents.iter().flat_map(objects_of));
    Judge {
        set,
        mutate,
        images,
        namespaces: &namespaces,
    }
    .documents(origin, &documents, report)
}

fn parse(origin: &str, text: &str) -> Result<Vec<serde_json::Value>, OfflineError> {
    serde_saphyr::from_multiple(text).map_err(|e| OfflineError::Parse {
        origin: origin.to_owned(),
        message: e.to_string(),
    })
}

/// The objects of a document, or none when it is not one (the error is reported when it is
/// judged).
fn objects_of(document: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut objects = Vec::new();
    let _ = flatten(document, &mut objects);
    objects
}

/// What judging an object needs besides the object.
#[derive(Clone, Copy)]
struct Judge<'a> {
    set: &'a PolicySet,
    mutate: Mutate,
    images: Images<'a>,
    namespaces: &'a InputNamespaces,
}

impl Judge<'_> {
    fn documents(
        &self,
        origin: &str,
        documents: &[serde_json::Value],
        report: &mut Report,
    ) -> Result<(), OfflineError> {
        let Judge {
            set,
            mutate,
            images,
            namespaces,
        } = *self;
        for (i, document) in documents.iter().enumerate() {
            let fail = |message: String| OfflineError::Object {
                origin: origin.to_owned(),
                document: i + 1,
                message,
            };
            let mut objects = Vec::new();
            flatten(document, &mut objects).map_err(fail)?;
            for object in objects {
                if mutate == Mutate::No {
                    judge(
                        object,
                        set,
                        images,
                        namespaces,
                        Pass::BeforeMutation,
                        report,
                    )
                    .map_err(fail)?;
                    continue;
                }
                let patched = mutated(object, set, images, namespaces).map_err(fail)?;
                let object = match patched {
                    Some(p) => {
                        report.patched += 1;
                        p
                    }
                    None => object.clone(),
                };
                judge(&object, set, images, namespaces, Pass::Mutated, report).map_err(fail)?;
                report.mutated.push(object);
            }
        }
        Ok(())
    }
}

/// Collects the objects of a document, unpacking `List` kinds (`List`, `PodList`, ...).
fn flatten<'v>(
    value: &'v serde_json::Value,
    out: &mut Vec<&'v serde_json::Value>,
) -> Result<(), String> {
    let Some(object) = value.as_object() else {
        return Err(
            "is not a Kubernetes object (expected a mapping with apiVersion and kind)".into(),
        );
    };
    let kind = object.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    if kind.ends_with("List")
        && let Some(items) = object.get("items")
    {
        let items = items
            .as_array()
            .ok_or_else(|| format!("{kind}.items is not a list"))?;
        for item in items {
            flatten(item, out)?;
        }
        return Ok(());
    }
    out.push(value);
    Ok(())
}

/// The object as `/mutate` would leave it (API server defaults applied first, as they are
/// before webhooks run), when a patch changes it.
fn mutated(
    object: &serde_json::Value,
    set: &PolicySet,
    images: Images<'_>,
    namespaces: &InputNamespaces,
) -> Result<Option<serde_json::Value>, String> {
    let judged = evaluate(
        object,
        set,
        images,
        namespaces,
        Pass::BeforeMutation,
        |judged| {
            let Evaluated {
                kind,
                defaulted,
                json,
                request,
                verdict,
                images: verdicts,
                ..
            } = judged;
            // Offline, no image is verified, so there is no digest to pin; verified, tags are
            // pinned as /mutate pins them.
            let pinning = match images {
                Images::Offline => Vec::new(),
                Images::Verify { .. } => mutation::pinning_policies(set, request),
            };
            let mutation = mutation::mutate(set, verdict, kind, json, &pinning, verdicts)
                .map_err(|e| e.to_string())?;
            let Some(mutation) = mutation else {
                return Ok(None);
            };
            let mut patched = defaulted.clone();
            json_patch::patch(&mut patched, &mutation.patch)
                .map_err(|e| format!("cannot apply portier's own patch: {e}"))?;
            Ok(Some(patched))
        },
    )?;
    Ok(judged.flatten().flatten())
}

/// Whether an object is judged as written or as `/mutate` left it: a manifest as written is
/// judged as admission would see it, its tags pinned where `mutateDigest` would pin them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    BeforeMutation,
    Mutated,
}

/// One object judged, as [`evaluate`] hands it on.
struct Evaluated<'a, 'p, 'v> {
    kind: WorkloadKind,
    /// The object with the API server's defaults applied, and as JSON text.
    defaulted: &'a serde_json::Value,
    json: &'a str,
    workload: &'a pod::Workload<'v>,
    request: &'a Request<'a>,
    verdict: &'a engine::Verdict<'p, 'v>,
    /// The image signature verdicts the object was judged with.
    images: &'a dyn ImageVerdicts,
}

/// Decodes a judged object as admission would (API server defaults applied) and evaluates it,
/// then hands the result to `then`. `Ok(None)` for kinds portier does not judge; `Ok(Some(None))`
/// for a workload without a pod template.
fn evaluate<R>(
    object: &serde_json::Value,
    set: &PolicySet,
    images: Images<'_>,
    namespaces: &InputNamespaces,
    pass: Pass,
    then: impl FnOnce(Evaluated<'_, '_, '_>) -> Result<R, String>,
) -> Result<Option<Option<R>>, String> {
    let Some((kind, _)) = kind_of(object)? else {
        return Ok(None);
    };
    let mut defaulted = object.clone();
    apply_admission_defaults(kind, &mut defaulted);
    let json = defaulted.to_string();
    let workload = pod::decode_workload(kind, &json).map_err(|_| {
        format!(
            "not a valid {kind}: {}",
            pod::explain_decode_error(kind, &json)
        )
    })?;
    let Some(pod) = workload.pod() else {
        return Ok(Some(None));
    };
    let namespace = workload.namespace.as_deref().unwrap_or("default");
    let request = Request::new(kind, namespace, None)
        .with_name(workload.name.as_deref())
        .with_object_labels(&workload.labels)
        .with_namespace_labels(namespaces.labels(namespace));
    // CEL policies judge the whole object, as a CREATE of it would be reviewed.
    let cel_request = set
        .has_cel()
        .then(|| synthetic_create(Json::from_value(&defaulted), "default"))
        .flatten();
    let admission = cel_request
        .as_ref()
        .map(|r| namespaces.bind(Admission::from_request(r.node())));
    let run = |images: &dyn ImageVerdicts| match &admission {
        Some(admission) => {
            engine::evaluate_admission(set, Some((&request, pod)), images, admission)
        }
        None => engine::evaluate_with(set, &request, pod, images),
    };
    let judged = |verdict: &engine::Verdict<'_, '_>, images: &dyn ImageVerdicts| {
        then(Evaluated {
            kind,
            defaulted: &defaulted,
            json: &json,
            workload: &workload,
            request: &request,
            verdict,
            images,
        })
        .map(|r| Some(Some(r)))
    };
    let Images::Verify { verifier, runtime } = images else {
        return judged(&run(&Unverified), &Unverified);
    };
    let images = runtime.block_on(
        ReviewImages::new(verifier)
            .before_mutation(pass == Pass::BeforeMutation)
            .verify(set, &request, pod, None),
    );
    judged(&run(&images), &images)
}

/// An object of a kind without a pod, judged by the CEL policies that select it (a CREATE of
/// it, as offline objects are): `None` when none does.
fn judge_other(
    object: &serde_json::Value,
    set: &PolicySet,
    namespaces: &InputNamespaces,
) -> Result<Option<Vec<Row>>, String> {
    if !set.has_cel() {
        return Ok(None);
    }
    let request =
        synthetic_create(Json::from_value(object), "default").ok_or("has no apiVersion or kind")?;
    let admission = namespaces.bind(Admission::from_request(request.node()));
    let verdict = engine::evaluate_admission(set, None, &Unverified, &admission);
    if verdict.judged == 0 {
        return Ok(None);
    }
    let a = &admission.attributes;
    Ok(Some(
        verdict
            .violations
            .iter()
            .map(|v| Row::of_object(admission.kind, "", a.namespace, a.name, v))
            .collect(),
    ))
}

/// The judged kind of an object and its kind name; `None` for kinds portier does not judge.
fn kind_of(object: &serde_json::Value) -> Result<Option<(WorkloadKind, &str)>, String> {
    let api_version = object
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .ok_or("has no apiVersion")?;
    let kind_name = object
        .get("kind")
        .and_then(|v| v.as_str())
        .ok_or("has no kind")?;
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    Ok(WorkloadKind::from_group_kind(group, kind_name).map(|k| (k, kind_name)))
}

fn judge(
    object: &serde_json::Value,
    set: &PolicySet,
    images: Images<'_>,
    namespaces: &InputNamespaces,
    pass: Pass,
    report: &mut Report,
) -> Result<(), String> {
    let mut note = None;
    let rows = evaluate(object, set, images, namespaces, pass, |judged| {
        let Evaluated {
            kind,
            workload,
            request,
            verdict,
            ..
        } = judged;
        let namespace = workload.namespace.as_deref().unwrap_or("default");
        let name = workload
            .name
            .as_deref()
            .or(workload.generate_name.as_deref())
            .unwrap_or("");
        if let crate::namespaces::NamespaceLabels::Unknown(why) = request.namespace_labels
            && engine::needs_namespace_labels(set, request)
        {
            note = Some(format!(
                "{kind} {namespace}/{name}: the labels of namespace {namespace:?} are not known ({why}), so policies that read them could not decide; give them with a Namespace object in the input or --namespace-labels {namespace}=key=value,..."
            ));
        }
        Ok(verdict
            .violations
            .iter()
            .map(|v| Row::from_violation(kind, namespace, name, v))
            .collect::<Vec<_>>())
    })?;
    report.notes.extend(note);
    match rows {
        None => match judge_other(object, set, namespaces)? {
            Some(rows) => {
                report.judged += 1;
                report.rows.extend(rows);
            }
            None => report.skipped += 1,
        },
        Some(rows) => {
            report.judged += 1;
            report.rows.extend(rows.into_iter().flatten());
        }
    }
    Ok(())
}

/// Applies the API server's defaults that can change a verdict, as they would be applied before
/// admission webhooks see the object:
///
/// - a volume that sets no source becomes an `emptyDir` (`SetDefaults_Volume`), which the
///   restricted Pod Security Standard allows;
/// - in a Pod with `hostNetwork: true`, every port of a container or init container without a
///   `hostPort` gets its `containerPort` as `hostPort` (`SetDefaults_Pod`). Pod templates are
///   not defaulted so (Kubernetes 1.28 and later), so controllers are left alone.
pub fn apply_admission_defaults(kind: WorkloadKind, object: &mut serde_json::Value) {
    let mut spec = Some(object);
    for field in kind.pod_spec_path().split('.') {
        spec = spec.and_then(|v| v.get_mut(field));
    }
    let Some(spec) = spec.and_then(|s| s.as_object_mut()) else {
        return;
    };
    if let Some(volumes) = spec.get_mut("volumes").and_then(|v| v.as_array_mut()) {
        for volume in volumes.iter_mut().filter_map(|v| v.as_object_mut()) {
            let has_source = volume
                .iter()
                .any(|(k, v)| !v.is_null() && VolumeType::from_key(k).is_some());
            if !has_source {
                volume.insert("emptyDir".into(), serde_json::json!({}));
            }
        }
    }
    let host_network = spec.get("hostNetwork").and_then(|v| v.as_bool()) == Some(true);
    if kind != WorkloadKind::Pod || !host_network {
        return;
    }
    for list in ["containers", "initContainers"] {
        let Some(containers) = spec.get_mut(list).and_then(|v| v.as_array_mut()) else {
            continue;
        };
        for container in containers {
            let Some(ports) = container.get_mut("ports").and_then(|v| v.as_array_mut()) else {
                continue;
            };
            for port in ports.iter_mut().filter_map(|p| p.as_object_mut()) {
                let unset = port
                    .get("hostPort")
                    .is_none_or(|h| h.is_null() || h.as_i64() == Some(0));
                if let (true, Some(container_port)) = (unset, port.get("containerPort").cloned()) {
                    port.insert("hostPort".into(), container_port);
                }
            }
        }
    }
}

/// Renders rows as an aligned table with a summary line.
pub fn render_table(report: &Report) -> String {
    let header = ["RESOURCE", "POLICY", "MODE", "CONTAINER", "PATH", "MESSAGE"];
    let rows: Vec<[String; 6]> = report
        .rows
        .iter()
        .map(|r| {
            [
                format!("{}/{}/{}", r.kind, r.namespace, r.name),
                format!("{}/{}", r.policy, r.check),
                r.mode.clone(),
                r.container.clone().unwrap_or_else(|| "-".into()),
                r.path.clone(),
                r.message.clone(),
            ]
        })
        .collect();
    let mut out = crate::table::render(&header, &rows);
    let count = |mode: Mode| {
        report
            .rows
            .iter()
            .filter(|r| r.mode == mode.as_str())
            .count()
    };
    out.push_str(&format!(
        "{} object(s) judged, {} violation(s): {} enforce, {} warn, {} audit; {} other object(s) not judged\n",
        report.judged,
        report.rows.len(),
        count(Mode::Enforce),
        count(Mode::Warn),
        count(Mode::Audit),
        report.skipped
    ));
    out
}

#[cfg(test)]
mod tests;
