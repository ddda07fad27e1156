//! The expressions of a policy (variables, match conditions, validations, audit
//! annotations), compiled and checked with the declarations each may use, and portier's own
//! `check: cel` policies.

use super::*;

pub(super) fn typed<T: serde::de::DeserializeOwned>(
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
pub(super) fn is_cel_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A qualified name (`[prefix/]name`), as matchCondition names and annotation keys must be.
pub(super) fn is_qualified_name(name: &str) -> bool {
    crate::labels::check_key(name).is_ok()
}

pub(super) fn compile_expression(
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
pub(super) fn compile_expressions(
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
