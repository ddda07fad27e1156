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

fn typed<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
) -> Result<T, DocError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = match (prefix, path.as_str()) {
            ("", ".") => "(document)".to_owned(),
            ("", p) => p.to_owned(),
            (prefix, ".") => prefix.to_owned(),
            (prefix, p) => format!("{prefix}.{p}"),
        };
        DocError::new(field, e.into_inner().to_string())
    })
}

/// A CEL identifier, as variable names must be.
fn is_cel_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A qualified name (`[prefix/]name`), as matchCondition names and annotation keys must be.
fn is_qualified_name(name: &str) -> bool {
    crate::labels::check_key(name).is_ok()
}

fn compile_expression(
    source: &str,
    decls: &Declarations,
    field: &str,
    want: &[Type],
) -> Result<Program, DocError> {
    if source.trim().is_empty() {
        return Err(DocError::new(field, "Required value: expression is empty"));
    }
    let program = compile(source, decls).map_err(|e| DocError::new(field, e.to_string()))?;
    if !want.is_empty() && !want.contains(program.output()) {
        let expected = want
            .iter()
            .map(Type::to_string)
            .collect::<Vec<_>>()
            .join(" or ");
        return Err(DocError::new(
            field,
            format!("must evaluate to {expected} but got {}", program.output()),
        ));
    }
    Ok(program)
}

const REASONS: [&str; 4] = [
    "Unauthorized",
    "Forbidden",
    "Invalid",
    "RequestEntityTooLarge",
];

/// Compiles variables, match conditions, validations and audit annotations in the order the
/// API server does (variables first, each seeing the ones before it).
#[allow(clippy::too_many_arguments)]
fn compile_expressions(
    prefix: &str,
    params: bool,
    variables: &[VariableDoc],
    match_conditions: &[MatchConditionDoc],
    validations: &[ValidationDoc],
    audit_annotations: &[AuditAnnotationDoc],
    failure_policy: Option<&str>,
    policy_name: &str,
) -> Result<Compiled, DocError> {
    let failure_policy = match failure_policy {
        None | Some("Fail") => FailurePolicy::Fail,
        Some("Ignore") => FailurePolicy::Ignore,
        Some(other) => {
            return Err(DocError::new(
                format!("{prefix}.failurePolicy"),
                format!("Unsupported value: {other:?}: supported values: \"Fail\", \"Ignore\""),
            ));
        }
    };
    let mut decls = Declarations {
        params,
        ..Declarations::default()
    };
    let mut compiled_variables = Vec::with_capacity(variables.len());
    for (i, v) in variables.iter().enumerate() {
        let field = format!("{prefix}.variables[{i}]");
        if !is_cel_identifier(&v.name) {
            return Err(DocError::new(
                format!("{field}.name"),
                format!("{:?} is not a valid CEL identifier", v.name),
            ));
        }
        if decls.variables.iter().any(|(n, _)| *n == v.name) {
            return Err(DocError::new(
                format!("{field}.name"),
                format!("Duplicate value: {:?}", v.name),
            ));
        }
        let program =
            compile_expression(&v.expression, &decls, &format!("{field}.expression"), &[])?;
        decls
            .variables
            .push((v.name.clone(), program.output().clone()));
        compiled_variables.push(program);
    }
    if match_conditions.len() > 64 {
        return Err(DocError::new(
            format!("{prefix}.matchConditions"),
            "Too many: must have at most 64 items",
        ));
    }
    let mut conditions = Vec::with_capacity(match_conditions.len());
    for (i, c) in match_conditions.iter().enumerate() {
        let field = format!("{prefix}.matchConditions[{i}]");
        if !is_qualified_name(&c.name) {
            return Err(DocError::new(
                format!("{field}.name"),
                format!("{:?} is not a valid qualified name", c.name),
            ));
        }
        if match_conditions[..i].iter().any(|o| o.name == c.name) {
            return Err(DocError::new(
                format!("{field}.name"),
                format!("Duplicate value: {:?}", c.name),
            ));
        }
        conditions.push(MatchCondition {
            name: c.name.clone(),
            program: compile_expression(
                &c.expression,
                &decls,
                &format!("{field}.expression"),
                &[Type::Bool],
            )?,
        });
    }
    let mut compiled_validations = Vec::with_capacity(validations.len());
    for (i, v) in validations.iter().enumerate() {
        let field = format!("{prefix}.validations[{i}]");
        let program = compile_expression(
            &v.expression,
            &decls,
            &format!("{field}.expression"),
            &[Type::Bool],
        )?;
        if let Some(message) = &v.message
            && message.contains('\n')
        {
            return Err(DocError::new(
                format!("{field}.message"),
                "message must not contain line breaks",
            ));
        }
        if let Some(reason) = &v.reason
            && !REASONS.contains(&reason.as_str())
        {
            return Err(DocError::new(
                format!("{field}.reason"),
                format!(
                    "Unsupported value: {reason:?}: supported values: \"Unauthorized\", \"Forbidden\", \"Invalid\", \"RequestEntityTooLarge\""
                ),
            ));
        }
        let message_expression = match &v.message_expression {
            Some(source) => Some(compile_expression(
                source,
                &decls,
                &format!("{field}.messageExpression"),
                &[Type::String],
            )?),
            None => None,
        };
        compiled_validations.push(Validation {
            program,
            message: v.message.clone(),
            message_expression,
            reason: v.reason.clone(),
        });
    }
    let mut annotations = Vec::with_capacity(audit_annotations.len());
    for (i, a) in audit_annotations.iter().enumerate() {
        let field = format!("{prefix}.auditAnnotations[{i}]");
        let full_key = format!("{policy_name}/{}", a.key);
        if a.key.is_empty()
            || a.key.contains('/')
            || !is_qualified_name(&full_key)
            || a.key.len() > 63
        {
            return Err(DocError::new(
                format!("{field}.key"),
                format!(
                    "{:?} is not a valid audit annotation key: at most 63 alphanumeric characters, '-', '_' or '.', which with the policy's name must form a valid qualified name ({full_key:?})",
                    a.key
                ),
            ));
        }
        if audit_annotations[..i].iter().any(|o| o.key == a.key) {
            return Err(DocError::new(
                format!("{field}.key"),
                format!("Duplicate value: {:?}", a.key),
            ));
        }
        annotations.push(AuditAnnotation {
            key: a.key.clone(),
            program: compile_expression(
                &a.value_expression,
                &decls,
                &format!("{field}.valueExpression"),
                &[Type::String, Type::Null],
            )?,
        });
    }
    Ok(Compiled {
        variables: compiled_variables,
        match_conditions: conditions,
        validations: compiled_validations,
        audit_annotations: annotations,
        failure_policy,
    })
}

/// Compiles the params of a `check: cel` policy named `name`.
pub fn compile_portier(name: &str, params: serde_json::Value) -> Result<CelPolicy, DocError> {
    let params = if params.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        params
    };
    let doc: PortierParamsDoc = typed(params, "spec.params")?;
    let validations = doc.validations.unwrap_or_default();
    let audit_annotations = doc.audit_annotations.unwrap_or_default();
    if validations.is_empty() && audit_annotations.is_empty() {
        return Err(DocError::new(
            "spec.params.validations",
            "Required value: a cel policy needs validations or auditAnnotations",
        ));
    }
    let compiled = compile_expressions(
        "spec.params",
        false,
        &doc.variables.unwrap_or_default(),
        &doc.match_conditions.unwrap_or_default(),
        &validations,
        &audit_annotations,
        doc.failure_policy.as_deref(),
        name,
    )?;
    Ok(CelPolicy {
        origin: Origin::Portier {
            name: name.to_owned(),
        },
        variables: compiled.variables,
        match_conditions: compiled.match_conditions,
        validations: compiled.validations,
        audit_annotations: compiled.audit_annotations,
        failure_policy: compiled.failure_policy,
        params: Params::None,
        constraints: Matcher::default(),
        binding_match: Matcher::default(),
        object_selectors: Vec::new(),
        namespace_selectors: Vec::new(),
        actions: Actions::default(),
    })
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
        Matcher { rules, exclude },
        object_selector,
        namespace_selector,
    ))
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
        let api_version = doc
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned();
        let kind = doc
            .get("kind")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned();
        let name = doc
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or("")
            .to_owned();
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

    /// Pairs bindings with their policies and finds their params: the compiled policies, in
    /// the order of the bindings.
    pub fn compile(mut self) -> Result<Vec<BoundPolicy>, SetError> {
        // Param objects: every other object must be of a kind some policy takes as params.
        let param_kinds: Vec<(String, String)> = self
            .policies
            .iter()
            .filter_map(|p| p.param_kind.clone())
            .collect();
        let mut params: Vec<((String, String), ParamObject)> = Vec::new();
        for (place, doc) in std::mem::take(&mut self.objects) {
            let api_version = doc
                .get("apiVersion")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned();
            let kind = doc
                .get("kind")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned();
            let metadata = doc.get("metadata");
            let text = |key: &str| {
                metadata
                    .and_then(|m| m.get(key))
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_owned()
            };
            let name = text("name");
            let fail = |error: DocError| SetError {
                place: place.clone(),
                object: format!("{kind} {name}"),
                error,
            };
            if !param_kinds
                .iter()
                .any(|(v, k)| *v == api_version && *k == kind)
            {
                return Err(fail(DocError::new(
                    "kind",
                    format!(
                        "a {api_version} {kind} is not a policy, and no ValidatingAdmissionPolicy takes it as params (spec.paramKind)"
                    ),
                )));
            }
            if name.is_empty() {
                return Err(fail(DocError::new("metadata.name", "Required value")));
            }
            let labels = metadata
                .and_then(|m| m.get("labels"))
                .and_then(|l| l.as_object())
                .map(|l| {
                    l.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            params.push((
                (api_version, kind),
                ParamObject {
                    namespace: text("namespace"),
                    name,
                    labels,
                    json: Json::from_value(&doc),
                },
            ));
        }

        let mut out = Vec::with_capacity(self.bindings.len());
        for binding in &self.bindings {
            let fail = |error: DocError| SetError {
                place: binding.place.clone(),
                object: format!("{BINDING_KIND} {}", binding.name),
                error,
            };
            let Some(index) = self
                .policies
                .iter()
                .position(|p| p.name == binding.policy_name)
            else {
                return Err(fail(DocError::new(
                    "spec.policyName",
                    format!(
                        "no ValidatingAdmissionPolicy named {:?} is loaded (a binding must be loaded with its policy)",
                        binding.policy_name
                    ),
                )));
            };
            let policy = &self.policies[index];
            let param_source = match (&policy.param_kind, &binding.param_ref) {
                (None, _) => Params::None,
                (Some(_), None) => Params::Null,
                (Some(kind), Some(param_ref)) => {
                    let candidates: Vec<&ParamObject> = params
                        .iter()
                        .filter(|(k, _)| k == kind)
                        .map(|(_, p)| p)
                        .collect();
                    // A param kind is namespaced when the API says so (ConfigMaps, Secrets...)
                    // or, for other kinds, when its objects name a namespace.
                    let group = kind.0.rsplit_once('/').map_or("", |(g, _)| g);
                    let namespaced = match super::resources::resource_for(group, &kind.1).1 {
                        Some(known) => known,
                        None => candidates.iter().any(|p| !p.namespace.is_empty()),
                    };
                    if !namespaced
                        && param_ref
                            .namespace
                            .as_deref()
                            .is_some_and(|n| !n.is_empty())
                    {
                        return Err(fail(DocError::new(
                            "spec.paramRef.namespace",
                            "paramRef.namespace must not be provided for a cluster-scoped `paramKind`",
                        )));
                    }
                    let selector = match &param_ref.selector {
                        Some(s) => Some(
                            LabelSelector::compile(s, "spec.paramRef.selector")
                                .map_err(|e| fail(selector_error(e)))?,
                        ),
                        None => None,
                    };
                    Params::Ref(ParamRef {
                        name: param_ref.name.clone().filter(|n| !n.is_empty()),
                        namespace: param_ref.namespace.clone().filter(|n| !n.is_empty()),
                        selector,
                        deny_when_missing: param_ref.parameter_not_found_action.as_deref()
                            == Some("Deny"),
                        namespaced,
                        candidates: params
                            .iter()
                            .filter(|(k, _)| k == kind)
                            .map(|(_, p)| ParamObject {
                                namespace: p.namespace.clone(),
                                name: p.name.clone(),
                                labels: p.labels.clone(),
                                json: p.json.clone(),
                            })
                            .collect(),
                    })
                }
            };
            out.push((binding, index, param_source));
        }
        // A policy bound several times: each binding gets a copy of its compiled expressions.
        let mut bound = Vec::with_capacity(out.len());
        for (binding, index, params) in out {
            let policy = &self.policies[index];
            let compiled = policy.compiled.clone();
            bound.push(BoundPolicy {
                name: binding.name.clone(),
                place: binding.place.clone(),
                policy: CelPolicy {
                    origin: Origin::Binding {
                        policy: policy.name.clone(),
                        binding: binding.name.clone(),
                    },
                    variables: compiled.variables,
                    match_conditions: compiled.match_conditions,
                    validations: compiled.validations,
                    audit_annotations: compiled.audit_annotations,
                    failure_policy: compiled.failure_policy,
                    params,
                    constraints: policy.constraints.clone(),
                    binding_match: binding.matcher.clone(),
                    object_selectors: policy
                        .object_selector
                        .iter()
                        .chain(binding.object_selector.iter())
                        .cloned()
                        .collect(),
                    namespace_selectors: policy
                        .namespace_selector
                        .iter()
                        .chain(binding.namespace_selector.iter())
                        .cloned()
                        .collect(),
                    actions: binding.actions,
                },
            });
        }
        Ok(bound)
    }
}

fn load_binding(place: Place, doc: BindingDoc) -> Result<LoadedBinding, DocError> {
    let spec = doc.spec;
    let policy_name = spec
        .policy_name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| DocError::new("spec.policyName", "Required value"))?;
    let actions_list = spec.validation_actions.unwrap_or_default();
    if actions_list.is_empty() {
        return Err(DocError::new("spec.validationActions", "Required value"));
    }
    let mut actions = Actions::default();
    for (i, a) in actions_list.iter().enumerate() {
        let slot = match a.as_str() {
            "Deny" => &mut actions.deny,
            "Warn" => &mut actions.warn,
            "Audit" => &mut actions.audit,
            other => {
                return Err(DocError::new(
                    format!("spec.validationActions[{i}]"),
                    format!(
                        "Unsupported value: {other:?}: supported values: \"Audit\", \"Deny\", \"Warn\""
                    ),
                ));
            }
        };
        if std::mem::replace(slot, true) {
            return Err(DocError::new(
                format!("spec.validationActions[{i}]"),
                format!("Duplicate value: {a:?}"),
            ));
        }
    }
    if actions.deny && actions.warn {
        return Err(DocError::new(
            "spec.validationActions",
            "Deny and Warn may not be used together: this combination needlessly duplicates the validation failure both in the API response body and the HTTP warning headers",
        ));
    }
    if let Some(param_ref) = &spec.param_ref {
        let has_name = param_ref.name.as_deref().is_some_and(|n| !n.is_empty());
        if has_name == param_ref.selector.is_some() {
            return Err(DocError::new(
                "spec.paramRef",
                "one of name or selector must be set (and not both)",
            ));
        }
        match param_ref.parameter_not_found_action.as_deref() {
            Some("Allow" | "Deny") => {}
            None => {
                return Err(DocError::new(
                    "spec.paramRef.parameterNotFoundAction",
                    "Required value",
                ));
            }
            Some(other) => {
                return Err(DocError::new(
                    "spec.paramRef.parameterNotFoundAction",
                    format!("Unsupported value: {other:?}: supported values: \"Allow\", \"Deny\""),
                ));
            }
        }
        if let Some(selector) = &param_ref.selector {
            LabelSelector::compile(selector, "spec.paramRef.selector").map_err(selector_error)?;
        }
    }
    let (matcher, object_selector, namespace_selector) = match &spec.match_resources {
        Some(m) => compile_match("spec.matchResources", m, false)?,
        None => (Matcher::default(), None, None),
    };
    Ok(LoadedBinding {
        place,
        name: doc.metadata.name,
        policy_name,
        actions,
        param_ref: spec.param_ref,
        matcher,
        object_selector,
        namespace_selector,
    })
}
