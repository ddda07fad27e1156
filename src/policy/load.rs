//! Reading and validating a policy set from YAML.

use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::selector::CriteriaDoc;
use super::{Check, Mode, Policy, Selector};
use crate::cel::vap;

pub const API_VERSION: &str = "portier.dev/v1";
pub const KIND: &str = "Policy";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read policy directory {}: {source}", dir.display())]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read policy file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: not valid YAML: {message}")]
    Yaml { origin: String, message: String },
    #[error("{origin} document {document}: {field}: {message}")]
    Invalid {
        origin: String,
        /// 1-based index among the file's non-empty documents.
        document: usize,
        field: String,
        message: String,
    },
    /// A problem in a CEL policy, a ValidatingAdmissionPolicy, its binding or its params,
    /// naming the object (`ValidatingAdmissionPolicy demo`, `Policy no-latest`); an
    /// expression's message starts with its line and column.
    #[error("{origin} document {document}: {object}: {field}: {message}")]
    Object {
        origin: String,
        document: usize,
        object: String,
        field: String,
        message: String,
    },
    #[error("policy name {name:?} is used twice: {first} and {second}")]
    DuplicateName {
        name: String,
        first: String,
        second: String,
    },
    #[error("no policies found in {} (expected *.yaml or *.yml files with kind: Policy, or ValidatingAdmissionPolicies with bindings)", dir.display())]
    Empty { dir: PathBuf },
}

/// The YAML form of a policy. Unknown fields are errors: a misspelt `exclude` must not
/// silently widen a policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyDoc {
    api_version: String,
    kind: String,
    metadata: MetadataDoc,
    spec: SpecDoc,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetadataDoc {
    name: String,
    #[serde(default)]
    #[allow(dead_code)] // accepted so policies can carry the usual Kubernetes metadata
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    #[allow(dead_code)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecDoc {
    check: String,
    /// Enforce unless said otherwise: the safe default for a policy someone wrote down.
    #[serde(default = "default_mode")]
    mode: Mode,
    #[serde(default, rename = "match")]
    include: Option<CriteriaDoc>,
    #[serde(default)]
    exclude: Option<CriteriaDoc>,
    #[serde(default)]
    params: serde_json::Value,
    /// Fill in compliant defaults on `/mutate`.
    #[serde(default)]
    mutate: bool,
}

fn default_mode() -> Mode {
    Mode::Enforce
}

/// A validated, compiled set of policies, in file order.
#[derive(Debug, Default)]
pub struct PolicySet {
    policies: Vec<Policy>,
    fingerprint: u64,
    /// Whether a policy is a CEL one: only then is the whole object decoded for them.
    cel: bool,
}

/// The policy files of a directory, read but not yet parsed.
#[derive(Debug)]
pub struct Sources {
    files: Vec<(String, String)>,
    fingerprint: u64,
}

impl Sources {
    /// Reads every `*.yaml` / `*.yml` file of `dir` (not recursive) in name order. Names that
    /// start with a dot are skipped: a mounted ConfigMap keeps its real files in `..data` and
    /// timestamped `..2026_...` directories, and exposes each key as a symlink beside them.
    pub fn read_dir(dir: &Path) -> Result<Sources, LoadError> {
        let read_dir_err = |source| LoadError::ReadDir {
            dir: dir.to_owned(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_dir_err)? {
            let entry = entry.map_err(read_dir_err)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') || !(name.ends_with(".yaml") || name.ends_with(".yml")) {
                continue;
            }
            let path = entry.path();
            // Follows symlinks, as the ConfigMap layout needs.
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => paths.push(path),
                Ok(_) => {}
                Err(source) => return Err(LoadError::ReadFile { path, source }),
            }
        }
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| LoadError::ReadFile {
                path: path.clone(),
                source,
            })?;
            files.push((path.display().to_string(), text));
        }
        Ok(Sources::from_files(files))
    }

    /// Sources from in-memory files: (name used in error messages, YAML text).
    pub fn from_files(files: Vec<(String, String)>) -> Sources {
        let mut hasher = DefaultHasher::new();
        files.hash(&mut hasher);
        Sources {
            fingerprint: hasher.finish(),
            files,
        }
    }

    /// Identifies the content: two reads with the same fingerprint hold the same policies.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Parses and validates every document: portier's policies in file order, then one
    /// policy per ValidatingAdmissionPolicyBinding (with its policy and params), in file
    /// order.
    pub fn compile(&self) -> Result<PolicySet, LoadError> {
        let mut policies: Vec<Policy> = Vec::new();
        // Where each policy was read, for duplicate names.
        let mut origins: Vec<String> = Vec::new();
        let mut add = |policy: Policy, origin: &str, policies: &mut Vec<Policy>| {
            if let Some(i) = policies.iter().position(|p| p.name == policy.name) {
                return Err(LoadError::DuplicateName {
                    name: policy.name,
                    first: origins[i].clone(),
                    second: origin.to_owned(),
                });
            }
            policies.push(policy);
            origins.push(origin.to_owned());
            Ok(())
        };
        let mut admission = vap::Documents::default();
        for (origin, text) in &self.files {
            for document in parse_file(origin, text)? {
                match document {
                    Document::Policy(policy) => add(*policy, origin, &mut policies)?,
                    Document::Admission(place, doc) => {
                        admission.add(place, doc).map_err(object_error)?;
                    }
                    Document::Other(place, doc) => admission.add_object(place, doc),
                }
            }
        }
        for bound in admission.compile().map_err(object_error)? {
            let actions = bound.policy.actions;
            let mode = if actions.deny {
                Mode::Enforce
            } else if actions.warn {
                Mode::Warn
            } else {
                Mode::Audit
            };
            let origin = format!("{} document {}", bound.place.origin, bound.place.document);
            let policy = Policy {
                name: bound.name,
                mode,
                check: Check::Cel(Box::new(bound.policy)),
                selector: Selector::default(),
                mutate: false,
            };
            add(policy, &origin, &mut policies)?;
        }
        let cel = policies.iter().any(|p| matches!(p.check, Check::Cel(_)));
        Ok(PolicySet {
            policies,
            fingerprint: self.fingerprint,
            cel,
        })
    }
}

impl PolicySet {
    /// Reads and compiles a directory; an empty directory is an error.
    pub fn from_dir(dir: &Path) -> Result<PolicySet, LoadError> {
        let set = Sources::read_dir(dir)?.compile()?;
        if set.is_empty() {
            return Err(LoadError::Empty {
                dir: dir.to_owned(),
            });
        }
        Ok(set)
    }

    /// Compiles one YAML text; `origin` names it in error messages.
    pub fn from_yaml(origin: &str, text: &str) -> Result<PolicySet, LoadError> {
        Sources::from_files(vec![(origin.to_owned(), text.to_owned())]).compile()
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// The names of the `signed-images` policies: those that judge nothing without registry
    /// access (`portier check` offline, `portier audit --no-verify-images`).
    pub fn signed_images_policies(&self) -> Vec<&str> {
        self.policies
            .iter()
            .filter(|p| matches!(p.check, Check::SignedImages(_)))
            .map(|p| p.name.as_str())
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Whether some policy is a CEL policy (portier's `check: cel` or a
    /// ValidatingAdmissionPolicy), which judges the whole object.
    pub fn has_cel(&self) -> bool {
        self.cel
    }

    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The files outside the policy directory that the set's policies read (keys, trusted
    /// roots, trust stores, docker configs), each with the hash of its content when read.
    pub fn external_files(&self) -> Vec<(std::path::PathBuf, u64)> {
        let mut out = Vec::new();
        for policy in &self.policies {
            if let Check::SignedImages(params) = &policy.check {
                out.extend(params.files.iter().cloned());
            }
        }
        out
    }

    /// Whether a file of [`PolicySet::external_files`] no longer holds what was read.
    pub fn external_files_changed(&self) -> bool {
        self.external_files()
            .iter()
            .any(|(path, hash)| crate::policy::signed_images::file_hash(path) != *hash)
    }
}

/// One document of a policy file, read.
enum Document {
    Policy(Box<Policy>),
    /// A ValidatingAdmissionPolicy or a binding (`admissionregistration.k8s.io`).
    Admission(vap::Place, serde_json::Value),
    /// Another object: it must be the params of an admission policy.
    Other(vap::Place, serde_json::Value),
}

fn object_error(e: vap::SetError) -> LoadError {
    LoadError::Object {
        origin: e.place.origin,
        document: e.place.document,
        object: e.object,
        field: e.error.field,
        message: e.error.message,
    }
}

fn parse_file(origin: &str, text: &str) -> Result<Vec<Document>, LoadError> {
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).map_err(|e| LoadError::Yaml {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
    documents
        .into_iter()
        .enumerate()
        .map(|(i, doc)| {
            let place = vap::Place {
                origin: origin.to_owned(),
                document: i + 1,
            };
            let api_version = doc.get("apiVersion").and_then(|v| v.as_str()).unwrap_or("");
            // A document that says it is portier's, or says nothing, is read as a Policy
            // (and its errors are a Policy's).
            if !api_version.is_empty()
                && !api_version.starts_with("portier.dev/")
                && doc.is_object()
            {
                return Ok(if vap::Documents::is_admission_kind(api_version) {
                    Document::Admission(place, doc)
                } else {
                    Document::Other(place, doc)
                });
            }
            compile_document(doc)
                .map(|p| Document::Policy(Box::new(p)))
                .map_err(|e| match e {
                    DocumentError::Field(field, message) => LoadError::Invalid {
                        origin: origin.to_owned(),
                        document: i + 1,
                        field,
                        message,
                    },
                    DocumentError::Object(object, field, message) => LoadError::Object {
                        origin: origin.to_owned(),
                        document: i + 1,
                        object,
                        field,
                        message,
                    },
                })
        })
        .collect()
}

/// A problem with one policy document: a field, or (for CEL policies) a field of a named
/// policy.
enum DocumentError {
    Field(String, String),
    Object(String, String, String),
}

impl From<(String, String)> for DocumentError {
    fn from((field, message): (String, String)) -> Self {
        DocumentError::Field(field, message)
    }
}

fn compile_document(doc: serde_json::Value) -> Result<Policy, DocumentError> {
    let doc: PolicyDoc = serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "(document)".to_owned()
        } else {
            path
        };
        (field, e.into_inner().to_string())
    })?;
    if doc.api_version != API_VERSION {
        return Err(DocumentError::Field(
            "apiVersion".into(),
            format!("is {:?}, expected {API_VERSION:?}", doc.api_version),
        ));
    }
    if doc.kind != KIND {
        return Err(DocumentError::Field(
            "kind".into(),
            format!("is {:?}, expected {KIND:?}", doc.kind),
        ));
    }
    validate_name(&doc.metadata.name).map_err(|m| ("metadata.name".to_owned(), m))?;
    let selector = Selector::compile(doc.spec.include.as_ref(), doc.spec.exclude.as_ref())
        .map_err(|e| (e.field().to_owned(), e.message()))?;
    let check = if doc.spec.check == super::CEL_ID {
        // An image glob cannot select a CEL policy: it judges whole objects, not containers.
        for (list, criteria) in [("match", &doc.spec.include), ("exclude", &doc.spec.exclude)] {
            if criteria.as_ref().is_some_and(|c| c.images.is_some()) {
                return Err(DocumentError::Field(
                    format!("spec.{list}.images"),
                    "does not apply to cel policies, which judge whole objects rather than containers".into(),
                ));
            }
        }
        let policy = crate::cel::vap::compile_portier(&doc.metadata.name, doc.spec.params)
            .map_err(|e| {
                DocumentError::Object(format!("Policy {}", doc.metadata.name), e.field, e.message)
            })?;
        Check::Cel(Box::new(crate::cel::policy::CelPolicy {
            actions: crate::cel::policy::Actions::default(),
            ..policy
        }))
    } else {
        Check::compile(&doc.spec.check, doc.spec.params).map_err(|e| (e.field, e.message))?
    };
    if doc.spec.mutate && !check.can_mutate() {
        return Err(("spec.mutate".into(), check.cannot_mutate_reason().into()).into());
    }
    Ok(Policy {
        name: doc.metadata.name,
        mode: doc.spec.mode,
        check,
        selector,
        mutate: doc.spec.mutate,
    })
}

/// Policy names appear in audit annotation keys, metric labels and messages, so they follow
/// the Kubernetes rules for the name part of a label key.
fn validate_name(name: &str) -> Result<(), String> {
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let alnum_ends = name
        .bytes()
        .next()
        .zip(name.bytes().last())
        .is_some_and(|(a, z)| a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric());
    if name.len() > 63 || !valid_chars || !alnum_ends {
        return Err(format!(
            "{name:?} is not a valid policy name: use at most 63 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(yaml: &str) -> String {
        PolicySet::from_yaml("p.yaml", yaml)
            .unwrap_err()
            .to_string()
    }

    const GOOD: &str = "apiVersion: portier.dev/v1\nkind: Policy\nmetadata: {name: no-priv}\nspec: {check: privileged, mode: warn}\n";

    #[test]
    fn loads_several_documents_and_defaults_mode_to_enforce() {
        let yaml = format!(
            "{GOOD}---\napiVersion: portier.dev/v1\nkind: Policy\nmetadata: {{name: non-root}}\nspec:\n  check: run-as-non-root\n---\n"
        );
        let set = PolicySet::from_yaml("p.yaml", &yaml).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.policies()[0].mode, Mode::Warn);
        assert_eq!(set.policies()[1].mode, Mode::Enforce);
        assert_eq!(set.policies()[1].check.id(), "run-as-non-root");
    }

    #[test]
    fn errors_name_file_document_and_field() {
        let second = GOOD
            .replace("no-priv", "two")
            .replace("mode: warn", "mode: block");
        let e = err(&format!("{GOOD}---\n{second}"));
        assert!(
            e.starts_with("p.yaml document 2: spec.mode: unknown variant `block`"),
            "{e}"
        );

        let e = err(&GOOD.replace("check: privileged", "check: nope"));
        assert!(
            e.contains("document 1: spec.check: unknown check `nope`"),
            "{e}"
        );

        let e = err(&GOOD.replace("mode: warn", "mode: warn, params: {colour: red}"));
        assert!(
            e.contains("spec.params.colour: unknown field `colour`"),
            "{e}"
        );

        let e = err(&GOOD.replace("mode: warn", "mode: warn, exlude: {}"));
        assert!(e.contains("spec.exlude: unknown field `exlude`"), "{e}");

        let e = err(&GOOD.replace("mode: warn", "mode: warn, match: {namespaces: ['a[']}"));
        assert!(e.contains("spec.match.namespaces: invalid glob"), "{e}");

        let e = err(&GOOD.replace("portier.dev/v1", "portier.dev/v2"));
        assert!(e.contains("apiVersion: is \"portier.dev/v2\""), "{e}");

        let e = err(&GOOD.replace("no-priv", "No_Priv"));
        assert!(e.contains("metadata.name"), "{e}");

        let e = err("a: [unclosed");
        assert!(e.starts_with("p.yaml: not valid YAML"), "{e}");
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let e = err(&format!("{GOOD}---\n{GOOD}"));
        assert!(e.contains("\"no-priv\" is used twice"), "{e}");
    }

    #[test]
    fn reads_a_directory_skipping_dotfiles_and_other_extensions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), GOOD).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not yaml: [").unwrap();
        std::fs::create_dir(dir.path().join("..data")).unwrap();
        std::fs::write(dir.path().join(".hidden.yaml"), "broken: [").unwrap();
        let set = PolicySet::from_dir(dir.path()).unwrap();
        assert_eq!(set.len(), 1);

        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            PolicySet::from_dir(empty.path()),
            Err(LoadError::Empty { .. })
        ));
    }
}
