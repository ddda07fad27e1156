//! Loading CEL policies: ValidatingAdmissionPolicy and ValidatingAdmissionPolicyBinding
//! documents (`admissionregistration.k8s.io/v1`) as they are, the param objects beside them,
//! and the params of portier's own `check: cel` policies.
//!
//! Every field is read and validated as the API server's validation does
//! (`pkg/apis/admissionregistration/validation`), every expression compiled and checked; an
//! unknown field, an unsupported feature or a bad expression is an error naming the field.
//! A policy without a binding does nothing; each binding of a policy becomes one compiled
//! policy in the set (named after the binding, as bindings are what the API server enforces).
//!
//! `objectSelector` needs only the object's labels; `namespaceSelector` and `namespaceObject`
//! need the namespace, which the caller gives when it knows it (a request it cannot decide
//! fails closed: [`super::policy::Applies::Undecided`]).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::matcher::{self, Matcher, Rule, Scope};
use super::policy::{
    Actions, AuditAnnotation, CelPolicy, FailurePolicy, MatchCondition, Origin, ParamObject,
    ParamRef, Params, Validation,
};
use super::types::Type;
use super::{Declarations, Json, Program, compile};
use crate::labels::{LabelSelector, LabelSelectorDoc, LabelSelectorError};

mod bindings;
mod expressions;

use bindings::load_binding;
pub use expressions::compile_portier;
use expressions::{compile_expressions, typed};

pub const API_GROUP: &str = "admissionregistration.k8s.io";
pub const API_VERSION: &str = "admissionregistration.k8s.io/v1";
pub const POLICY_KIND: &str = "ValidatingAdmissionPolicy";
pub const BINDING_KIND: &str = "ValidatingAdmissionPolicyBinding";

/// A problem in one document: the field (its YAML path) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocError {
    pub field: String,
    pub message: String,
}

impl DocError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        DocError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The standard object metadata; only the name matters to portier, the rest is accepted so
/// that objects exported from a cluster load as they are.
#[derive(Debug, Deserialize)]
#[allow(dead_code)] // read so that unknown fields are errors, not to be used
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetadataDoc {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    uid: Option<serde_json::Value>,
    #[serde(default)]
    resource_version: Option<serde_json::Value>,
    #[serde(default)]
    generation: Option<serde_json::Value>,
    #[serde(default)]
    creation_timestamp: Option<serde_json::Value>,
    #[serde(default)]
    managed_fields: Option<serde_json::Value>,
    #[serde(default)]
    owner_references: Option<serde_json::Value>,
    #[serde(default)]
    finalizers: Option<serde_json::Value>,
    #[serde(default)]
    generate_name: Option<serde_json::Value>,
    #[serde(default)]
    self_link: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyDoc {
    #[allow(dead_code)] // checked before the document is read
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: MetadataDoc,
    spec: PolicySpecDoc,
    /// Written by the API server (type checking results); accepted and ignored.
    #[serde(default)]
    #[allow(dead_code)]
    status: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicySpecDoc {
    #[serde(default)]
    param_kind: Option<ParamKindDoc>,
    #[serde(default)]
    match_constraints: Option<MatchResourcesDoc>,
    #[serde(default)]
    validations: Option<Vec<ValidationDoc>>,
    #[serde(default)]
    failure_policy: Option<String>,
    #[serde(default)]
    audit_annotations: Option<Vec<AuditAnnotationDoc>>,
    #[serde(default)]
    match_conditions: Option<Vec<MatchConditionDoc>>,
    #[serde(default)]
    variables: Option<Vec<VariableDoc>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ParamKindDoc {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MatchResourcesDoc {
    #[serde(default)]
    namespace_selector: Option<LabelSelectorDoc>,
    #[serde(default)]
    object_selector: Option<LabelSelectorDoc>,
    #[serde(default)]
    resource_rules: Option<Vec<RuleDoc>>,
    #[serde(default)]
    exclude_resource_rules: Option<Vec<RuleDoc>>,
    #[serde(default)]
    match_policy: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleDoc {
    #[serde(default)]
    resource_names: Option<Vec<String>>,
    #[serde(default)]
    operations: Option<Vec<String>>,
    #[serde(default)]
    api_groups: Option<Vec<String>>,
    #[serde(default)]
    api_versions: Option<Vec<String>>,
    #[serde(default)]
    resources: Option<Vec<String>>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ValidationDoc {
    pub expression: String,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message_expression: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuditAnnotationDoc {
    pub key: String,
    pub value_expression: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConditionDoc {
    pub name: String,
    pub expression: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDoc {
    pub name: String,
    pub expression: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BindingDoc {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: MetadataDoc,
    spec: BindingSpecDoc,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BindingSpecDoc {
    #[serde(default)]
    policy_name: Option<String>,
    #[serde(default)]
    param_ref: Option<ParamRefDoc>,
    #[serde(default)]
    match_resources: Option<MatchResourcesDoc>,
    #[serde(default)]
    validation_actions: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ParamRefDoc {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    selector: Option<LabelSelectorDoc>,
    #[serde(default)]
    parameter_not_found_action: Option<String>,
}

/// The params of portier's own `check: cel` policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PortierParamsDoc {
    #[serde(default)]
    variables: Option<Vec<VariableDoc>>,
    #[serde(default)]
    validations: Option<Vec<ValidationDoc>>,
    #[serde(default)]
    audit_annotations: Option<Vec<AuditAnnotationDoc>>,
    #[serde(default)]
    match_conditions: Option<Vec<MatchConditionDoc>>,
    #[serde(default)]
    failure_policy: Option<String>,
}

/// The expressions of a policy, compiled.
#[derive(Clone)]
struct Compiled {
    variables: Vec<Program>,
    match_conditions: Vec<MatchCondition>,
    validations: Vec<Validation>,
    audit_annotations: Vec<AuditAnnotation>,
    failure_policy: FailurePolicy,
}

fn compile_rules(field: &str, rules: &[RuleDoc]) -> Result<Vec<Rule>, DocError> {
    let mut out = Vec::with_capacity(rules.len());
    for (i, r) in rules.iter().enumerate() {
        let field = format!("{field}[{i}]");
        let scope = match r.scope.as_deref() {
            None | Some("*") => Scope::All,
            Some("Cluster") => Scope::Cluster,
            Some("Namespaced") => Scope::Namespaced,
            Some(other) => {
                return Err(DocError::new(
                    format!("{field}.scope"),
                    format!(
                        "Unsupported value: {other:?}: supported values: \"*\", \"Cluster\", \"Namespaced\""
                    ),
                ));
            }
        };
        let rule = Rule {
            operations: r.operations.clone().unwrap_or_default(),
            api_groups: r.api_groups.clone().unwrap_or_default(),
            api_versions: r.api_versions.clone().unwrap_or_default(),
            resources: r.resources.clone().unwrap_or_default(),
            scope,
            resource_names: r.resource_names.clone().unwrap_or_default(),
        };
        matcher::validate(&rule).map_err(|(f, m)| DocError::new(format!("{field}.{f}"), m))?;
        out.push(rule);
    }
    Ok(out)
}

/// A `MatchResources` compiled: its rules, and its object and namespace selectors unless
/// empty (the namespace selector with its field, for messages).
type CompiledMatch = (
    Matcher,
    Option<LabelSelector>,
    Option<(String, LabelSelector)>,
);

/// Compiles a `MatchResources` (`require_rules` for a policy's `matchConstraints`).
fn compile_match(
    field: &str,
    doc: &MatchResourcesDoc,
    require_rules: bool,
) -> Result<CompiledMatch, DocError> {
    let namespace_selector = match &doc.namespace_selector {
        Some(selector) => {
            let at = format!("{field}.namespaceSelector");
            let compiled = LabelSelector::compile(selector, &at).map_err(selector_error)?;
            Some((at, compiled)).filter(|(_, s)| !s.is_everything())
        }
        None => None,
    };
    let object_selector = match &doc.object_selector {
        Some(selector) => Some(
            LabelSelector::compile(selector, &format!("{field}.objectSelector"))
                .map_err(selector_error)?,
        )
        .filter(|s| !s.is_everything()),
        None => None,
    };
    match doc.match_policy.as_deref() {
        None | Some("Equivalent") | Some("Exact") => {}
        Some(other) => {
            return Err(DocError::new(
                format!("{field}.matchPolicy"),
                format!(
                    "Unsupported value: {other:?}: supported values: \"Equivalent\", \"Exact\""
                ),
            ));
        }
    }
    let rules = compile_rules(
        &format!("{field}.resourceRules"),
        doc.resource_rules.as_deref().unwrap_or_default(),
    )?;
    if require_rules && rules.is_empty() {
        return Err(DocError::new(
            format!("{field}.resourceRules"),
            "Required value",
        ));
    }
    let exclude = compile_rules(
        &format!("{field}.excludeResourceRules"),
        doc.exclude_resource_rules.as_deref().unwrap_or_default(),
    )?;
    Ok((
        Matcher {
            rules,
            exclude,
            exact: doc.match_policy.as_deref() == Some("Exact"),
        },
        object_selector,
        namespace_selector,
    ))
}

/// The string at `path` in a document, empty when it is absent or not a string (what names
/// a document in an error before its shape is checked).
fn text_at(doc: &serde_json::Value, path: &[&str]) -> String {
    path.iter()
        .try_fold(doc, |v, key| v.get(key))
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned()
}

fn selector_error(e: LabelSelectorError) -> DocError {
    DocError::new(e.field, e.message)
}

/// A DNS subdomain, as object names must be.
fn validate_object_name(name: &str) -> Result<(), DocError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && l.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
                && l.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric)
        });
    if ok {
        Ok(())
    } else {
        Err(DocError::new(
            "metadata.name",
            format!("{name:?} is not a valid name: a lowercase RFC 1123 subdomain"),
        ))
    }
}

/// One document's place, for error messages.
#[derive(Debug, Clone)]
pub struct Place {
    pub origin: String,
    /// 1-based among the file's documents.
    pub document: usize,
}

/// A loading error tied to its document and the object it is about.
#[derive(Debug, Clone)]
pub struct SetError {
    pub place: Place,
    /// `ValidatingAdmissionPolicy demo` or `ValidatingAdmissionPolicyBinding demo-binding`.
    pub object: String,
    pub error: DocError,
}

struct LoadedPolicy {
    place: Place,
    name: String,
    param_kind: Option<(String, String)>,
    compiled: Compiled,
    constraints: Matcher,
    object_selector: Option<LabelSelector>,
    namespace_selector: Option<(String, LabelSelector)>,
}

struct LoadedBinding {
    place: Place,
    name: String,
    policy_name: String,
    actions: Actions,
    param_ref: Option<ParamRefDoc>,
    matcher: Matcher,
    object_selector: Option<LabelSelector>,
    namespace_selector: Option<(String, LabelSelector)>,
}

/// A compiled binding, ready to join the set.
pub struct BoundPolicy {
    /// The binding's name (the name it has in the set).
    pub name: String,
    /// Where the binding was read.
    pub place: Place,
    pub policy: CelPolicy,
}

/// The admission policy documents of a policy directory, collected file by file.
#[derive(Default)]
pub struct Documents {
    policies: Vec<LoadedPolicy>,
    bindings: Vec<LoadedBinding>,
    /// Every other object: a param if a policy's `paramKind` names its kind.
    objects: Vec<(Place, serde_json::Value)>,
}

impl Documents {
    /// Whether `api_version`/`kind` is one of the documents this module reads.
    pub fn is_admission_kind(api_version: &str) -> bool {
        api_version.split('/').next() == Some(API_GROUP)
    }

    /// Reads one `admissionregistration.k8s.io` document.
    pub fn add(&mut self, place: Place, doc: serde_json::Value) -> Result<(), SetError> {
        let api_version = text_at(&doc, &["apiVersion"]);
        let kind = text_at(&doc, &["kind"]);
        let name = text_at(&doc, &["metadata", "name"]);
        let fail = |error: DocError| SetError {
            place: place.clone(),
            object: format!("{kind} {name}"),
            error,
        };
        if api_version != API_VERSION {
            return Err(fail(DocError::new(
                "apiVersion",
                format!("{api_version:?} is not supported: portier reads {API_VERSION}"),
            )));
        }
        match kind.as_str() {
            POLICY_KIND => {
                let doc: PolicyDoc = typed(doc, "").map_err(fail)?;
                validate_object_name(&doc.metadata.name).map_err(fail)?;
                let loaded = self.load_policy(place.clone(), doc).map_err(fail)?;
                if let Some(first) = self.policies.iter().find(|p| p.name == loaded.name) {
                    return Err(fail(DocError::new(
                        "metadata.name",
                        format!(
                            "a ValidatingAdmissionPolicy named {:?} is already in {} document {}",
                            loaded.name, first.place.origin, first.place.document
                        ),
                    )));
                }
                self.policies.push(loaded);
            }
            BINDING_KIND => {
                let doc: BindingDoc = typed(doc, "").map_err(fail)?;
                validate_object_name(&doc.metadata.name).map_err(fail)?;
                let loaded = load_binding(place.clone(), doc).map_err(fail)?;
                if let Some(first) = self.bindings.iter().find(|b| b.name == loaded.name) {
                    return Err(fail(DocError::new(
                        "metadata.name",
                        format!(
                            "a ValidatingAdmissionPolicyBinding named {:?} is already in {} document {}",
                            loaded.name, first.place.origin, first.place.document
                        ),
                    )));
                }
                self.bindings.push(loaded);
            }
            other => {
                return Err(fail(DocError::new(
                    "kind",
                    format!(
                        "{other:?} is not supported: portier reads {POLICY_KIND} and {BINDING_KIND} (MutatingAdmissionPolicy and webhook configurations are not policies it runs)"
                    ),
                )));
            }
        }
        Ok(())
    }

    /// Keeps any other object: it must turn out to be a param of some policy.
    pub fn add_object(&mut self, place: Place, doc: serde_json::Value) {
        self.objects.push((place, doc));
    }

    fn load_policy(&self, place: Place, doc: PolicyDoc) -> Result<LoadedPolicy, DocError> {
        let spec = doc.spec;
        let param_kind = match spec.param_kind {
            None => None,
            Some(pk) => {
                let api_version = pk
                    .api_version
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| DocError::new("spec.paramKind.apiVersion", "Required value"))?;
                let kind = pk
                    .kind
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| DocError::new("spec.paramKind.kind", "Required value"))?;
                Some((api_version, kind))
            }
        };
        let (constraints, object_selector, namespace_selector) = match &spec.match_constraints {
            Some(m) => compile_match("spec.matchConstraints", m, true)?,
            None => return Err(DocError::new("spec.matchConstraints", "Required value")),
        };
        let validations = spec.validations.unwrap_or_default();
        let audit_annotations = spec.audit_annotations.unwrap_or_default();
        if validations.is_empty() && audit_annotations.is_empty() {
            return Err(DocError::new(
                "spec.validations",
                "Required value: validations or auditAnnotations must contain at least one item",
            ));
        }
        let compiled = compile_expressions(
            "spec",
            param_kind.is_some(),
            &spec.variables.unwrap_or_default(),
            &spec.match_conditions.unwrap_or_default(),
            &validations,
            &audit_annotations,
            spec.failure_policy.as_deref(),
            &doc.metadata.name,
        )?;
        Ok(LoadedPolicy {
            place,
            name: doc.metadata.name,
            param_kind,
            compiled,
            constraints,
            object_selector,
            namespace_selector,
        })
    }
}
