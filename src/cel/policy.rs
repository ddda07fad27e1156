//! A compiled CEL policy, portier's own (`check: cel`) or one ValidatingAdmissionPolicy with
//! one of its bindings, and its evaluation over one request, as the API server's
//! ValidatingAdmissionPolicy plugin decides (`k8s.io/apiserver/pkg/admission/plugin/policy/
//! validating`, `validator.go` and `dispatcher.go`):
//!
//! 1. params: none, or the param objects the binding's `paramRef` selects (each is evaluated
//!    in turn), or a configuration error (`parameterNotFoundAction: Deny`);
//! 2. `matchConditions`: any false skips the policy; an error (with none false) is an error;
//! 3. `validations`: each not `true` fails with its message (`messageExpression`, else
//!    `message`, else `failed expression: <expression>`) and reason (default `Invalid`); an
//!    error fails under `failurePolicy: Fail` and is ignored under `Ignore`;
//! 4. `auditAnnotations`: a non-empty string is recorded as `<policy>/<key>`, null skips it,
//!    anything else (or an error under `Fail`) denies.
//!
//! Validations and message expressions share one cost budget ([`RUNTIME_BUDGET`]), audit
//! annotations another; running out fails the policy under its `failurePolicy`.

use super::Program;
use super::admission::Admission;
use super::eval::{Activation, RUNTIME_BUDGET, Scope};
use super::json::Json;
use super::matcher::{Attributes, Matcher};
use super::value::Value;
use crate::labels::LabelSelector;

/// The longest message a `messageExpression` may produce (the API server's
/// `MaxEvaluatedMessageExpressionSizeBytes`); a longer one falls back to `message`.
pub const MAX_MESSAGE_EXPRESSION_BYTES: usize = 5 * 1024;

/// What an error or a configuration problem does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Counts as a failed validation.
    Fail,
    /// Is ignored.
    Ignore,
}

/// Where a CEL policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// portier's own `check: cel` policy.
    Portier { name: String },
    /// A ValidatingAdmissionPolicy and the binding that puts it to work.
    Binding { policy: String, binding: String },
}

#[derive(Debug, Clone)]
pub struct Validation {
    pub program: Program,
    pub message: Option<String>,
    pub message_expression: Option<Program>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AuditAnnotation {
    pub key: String,
    pub program: Program,
}

#[derive(Debug, Clone)]
pub struct MatchCondition {
    pub name: String,
    pub program: Program,
}

/// A param object read from the policy directory.
#[derive(Debug)]
pub struct ParamObject {
    pub namespace: String,
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub json: Json<'static>,
}

/// How a binding's params are found.
#[derive(Debug)]
pub enum Params {
    /// The policy has no `paramKind`.
    None,
    /// The policy has a `paramKind` and the binding no `paramRef`: evaluated once, with
    /// `params` null.
    Null,
    Ref(ParamRef),
}

#[derive(Debug)]
pub struct ParamRef {
    pub name: Option<String>,
    /// `paramRef.namespace`; when unset and the param kind is namespaced, the request's.
    pub namespace: Option<String>,
    pub selector: Option<LabelSelector>,
    /// `parameterNotFoundAction: Deny`.
    pub deny_when_missing: bool,
    pub namespaced: bool,
    pub candidates: Vec<ParamObject>,
}

impl ParamRef {
    /// The param objects for a request in `namespace`, or the configuration error.
    fn resolve(&self, namespace: &str) -> Result<Vec<&Json<'static>>, String> {
        let namespace = match (&self.namespace, self.namespaced) {
            (Some(ns), true) => ns.as_str(),
            (None, true) if namespace.is_empty() => {
                return Err(
                    "cannot use namespaced paramRef in policy binding that matches cluster-scoped resources"
                        .into(),
                );
            }
            (None, true) => namespace,
            (_, false) => "",
        };
        let found: Vec<&Json<'static>> = self
            .candidates
            .iter()
            .filter(|p| p.namespace == namespace)
            .filter(|p| match (&self.name, &self.selector) {
                (Some(name), _) => &p.name == name,
                (None, Some(selector)) => selector.matches(p.labels.as_slice()),
                (None, None) => false,
            })
            .map(|p| &p.json)
            .collect();
        if found.is_empty() && self.deny_when_missing {
            return Err(
                "no params found for policy binding with `Deny` parameterNotFoundAction".into(),
            );
        }
        Ok(found)
    }
}

/// What a failure does: a binding's `validationActions`. portier's own policies have none
/// (all false): their `mode` decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Actions {
    pub deny: bool,
    pub warn: bool,
    pub audit: bool,
}

/// A compiled CEL policy.
#[derive(Debug)]
pub struct CelPolicy {
    pub origin: Origin,
    /// The variables, in order: each may read the ones before it.
    pub variables: Vec<Program>,
    pub match_conditions: Vec<MatchCondition>,
    pub validations: Vec<Validation>,
    pub audit_annotations: Vec<AuditAnnotation>,
    pub failure_policy: FailurePolicy,
    pub params: Params,
    /// The policy's `matchConstraints` and the binding's `matchResources` (both must match);
    /// everything for portier's own policies, which select with `match`/`exclude`.
    pub constraints: Matcher,
    pub binding_match: Matcher,
    /// The policy's and the binding's object selectors (each must match the object's labels
    /// or its old labels, as in the API server).
    pub object_selectors: Vec<LabelSelector>,
    /// The policy's and the binding's namespace selectors, each with its field (for the
    /// message when the namespace's labels are not known).
    pub namespace_selectors: Vec<(String, LabelSelector)>,
    pub actions: Actions,
}

/// Whether a policy applies to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applies {
    Yes,
    No,
    /// Its rules and object selectors choose the request, but a namespace selector needs
    /// labels that are not known: the message says which and why.
    Undecided(String),
}

/// One way the request failed the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    /// `Forbidden`, `Unauthorized`, `RequestEntityTooLarge` or `Invalid`.
    pub reason: String,
    /// A configuration problem or a failed audit annotation: denies whatever the binding's
    /// `validationActions` say, as in the API server.
    pub always_denies: bool,
}

/// What evaluating a policy on one request found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub failures: Vec<Failure>,
    /// Audit annotations: (`<policy>/<key>`, value).
    pub annotations: Vec<(String, String)>,
}

impl CelPolicy {
    /// The name the API server uses for the policy in messages and annotation keys.
    pub fn policy_name(&self) -> &str {
        match &self.origin {
            Origin::Portier { name } => name,
            Origin::Binding { policy, .. } => policy,
        }
    }

    /// Writes a failure's message as the API server words it for a ValidatingAdmissionPolicy
    /// (`deployments.apps "web" is forbidden: ValidatingAdmissionPolicy 'p' with binding 'b'
    /// denied request: ...`, or `Validation failed for ...` when it only warns or audits), and
    /// `name/cel: message` for portier's own policy `name`.
    pub fn write_message(
        &self,
        name: &str,
        mode: crate::policy::Mode,
        denied_object: Option<&str>,
        message: &str,
        out: &mut impl std::fmt::Write,
    ) -> std::fmt::Result {
        match &self.origin {
            Origin::Portier { .. } => write!(out, "{name}/{}: {message}", crate::policy::CEL_ID),
            Origin::Binding { policy, binding } if mode == crate::policy::Mode::Enforce => {
                // The API server's `admission.NewForbidden` wording.
                match denied_object {
                    Some(object) => write!(out, "{object} is forbidden: ")?,
                    None => out.write_str("forbidden: ")?,
                }
                write!(
                    out,
                    "ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: {message}"
                )
            }
            Origin::Binding { policy, binding } => write!(
                out,
                "Validation failed for ValidatingAdmissionPolicy '{policy}' with binding '{binding}': {message}"
            ),
        }
    }

    /// Whether the policy's rules (and its binding's) select the request: rules and object
    /// selectors first, which need nothing but the request, then namespace selectors.
    pub fn applies(&self, admission: &Admission<'_>) -> Applies {
        let chosen = self.rules_select(&admission.attributes)
            && self.object_selectors.iter().all(|selector| {
                [admission.labels, admission.old_labels]
                    .into_iter()
                    .flatten()
                    .any(|labels| selector.matches(&labels))
            });
        if !chosen {
            return Applies::No;
        }
        if self.namespace_selectors.is_empty() {
            return Applies::Yes;
        }
        match admission.namespace_selector_labels() {
            Ok(None) => Applies::Yes,
            Ok(Some(labels)) => match self
                .namespace_selectors
                .iter()
                .all(|(_, s)| s.matches(labels))
            {
                true => Applies::Yes,
                false => Applies::No,
            },
            Err(why) => {
                let (field, selector) = &self.namespace_selectors[0];
                Applies::Undecided(format!(
                    "cannot decide {field} ({selector}): the labels of namespace {:?} are not known ({why})",
                    admission.attributes.namespace
                ))
            }
        }
    }

    /// Whether the policy's rules and its binding's select a request with these attributes
    /// (its selectors aside).
    pub fn rules_select(&self, attributes: &Attributes<'_>) -> bool {
        self.constraints.matches(attributes) && self.binding_match.matches(attributes)
    }

    /// Whether judging a request may need its namespace: a namespace selector, or an
    /// expression reading `namespaceObject`.
    pub fn needs_namespace(&self) -> bool {
        !self.namespace_selectors.is_empty() || self.reads_namespace_object()
    }

    /// Whether an expression of the policy reads `namespaceObject`.
    pub fn reads_namespace_object(&self) -> bool {
        let programs = self
            .variables
            .iter()
            .chain(self.match_conditions.iter().map(|c| &c.program));
        let validations = self
            .validations
            .iter()
            .flat_map(|v| std::iter::once(&v.program).chain(v.message_expression.as_ref()));
        let annotations = self.audit_annotations.iter().map(|a| &a.program);
        programs
            .chain(validations)
            .chain(annotations)
            .any(Program::reads_namespace_object)
    }

    /// A request the policy cannot decide fails closed, whatever its `failurePolicy`:
    /// portier never lets a policy lapse because it lacks what the API server would have.
    pub fn undecided(&self, problem: String) -> Outcome {
        Outcome {
            failures: vec![Failure {
                message: problem,
                reason: "Forbidden".into(),
                always_denies: true,
            }],
            annotations: Vec::new(),
        }
    }

    /// Evaluates the policy on a request it applies to.
    pub fn evaluate(&self, admission: &Admission<'_>) -> Outcome {
        let namespace_object = match self.reads_namespace_object() {
            true => match admission.namespace_object_value() {
                Ok(value) => value,
                Err(why) => {
                    return self.undecided(format!(
                        "cannot evaluate namespaceObject: namespace {:?} is not known ({why})",
                        admission.attributes.namespace
                    ));
                }
            },
            false => Value::Null,
        };
        let mut outcome = Outcome::default();
        let params: Vec<Option<&Json<'static>>> = match &self.params {
            Params::None | Params::Null => vec![None],
            Params::Ref(r) => match r.resolve(admission.attributes.namespace) {
                Ok(found) => found.into_iter().map(Some).collect(),
                Err(problem) => {
                    self.config_error(&mut outcome, problem);
                    return outcome;
                }
            },
        };
        for param in params {
            self.evaluate_with(admission, param, &namespace_object, &mut outcome);
        }
        outcome
    }

    fn config_error(&self, outcome: &mut Outcome, problem: String) {
        if self.failure_policy == FailurePolicy::Fail {
            outcome.failures.push(Failure {
                message: format!("failed to configure binding: {problem}"),
                reason: "Invalid".into(),
                always_denies: true,
            });
        }
    }

    fn error(&self, outcome: &mut Outcome, message: String) {
        if self.failure_policy == FailurePolicy::Fail {
            outcome.failures.push(Failure {
                message,
                reason: "Invalid".into(),
                always_denies: false,
            });
        }
    }

    fn evaluate_with(
        &self,
        admission: &Admission<'_>,
        param: Option<&Json<'static>>,
        namespace_object: &Value<'_>,
        outcome: &mut Outcome,
    ) {
        let activation = Activation {
            object: admission.object.clone(),
            old_object: admission.old_object.clone(),
            request: admission.request.clone(),
            params: param.map_or(Value::Null, Value::from_json),
            namespace_object: namespace_object.clone(),
        };
        let scope = Scope::new(&activation, &self.variables);
        let mut budget = RUNTIME_BUDGET;
        let spend = |budget: &mut u64, cost: u64| -> bool {
            match budget.checked_sub(cost) {
                Some(left) => {
                    *budget = left;
                    true
                }
                None => false,
            }
        };
        const OUT_OF_BUDGET: &str = "validation failed due to running out of cost budget, no further validation rules will be run";

        // matchConditions: a false one skips the policy, even when another errs.
        let mut condition_error = None;
        for condition in &self.match_conditions {
            let evaluated = condition.program.evaluate(&scope);
            if !spend(&mut budget, evaluated.cost + scope.take_variables_cost()) {
                self.error(outcome, OUT_OF_BUDGET.into());
                return;
            }
            match evaluated.value {
                Ok(Value::Bool(true)) => {}
                Ok(Value::Bool(false)) => return,
                Ok(other) => {
                    condition_error.get_or_insert(format!(
                        "matchCondition '{}': expression must evaluate to bool, got {}",
                        condition.name,
                        other.type_name().as_str()
                    ));
                }
                Err(e) => {
                    condition_error.get_or_insert(format!(
                        "matchCondition '{}': expression '{}' resulted in error: {e}",
                        condition.name,
                        condition.program.source()
                    ));
                }
            }
        }
        if let Some(problem) = condition_error {
            self.error(outcome, problem);
            return;
        }

        for validation in &self.validations {
            let evaluated = validation.program.evaluate(&scope);
            if !spend(&mut budget, evaluated.cost + scope.take_variables_cost()) {
                self.error(outcome, OUT_OF_BUDGET.into());
                return;
            }
            match evaluated.value {
                Ok(Value::Bool(true)) => {}
                Ok(_) => {
                    let message = self.message(validation, &scope, &mut budget);
                    outcome.failures.push(Failure {
                        message,
                        reason: validation
                            .reason
                            .clone()
                            .unwrap_or_else(|| "Invalid".into()),
                        always_denies: false,
                    });
                }
                Err(e) => self.error(
                    outcome,
                    format!(
                        "expression '{}' resulted in error: {e}",
                        validation.program.source()
                    ),
                ),
            }
        }

        let mut budget = RUNTIME_BUDGET;
        for annotation in &self.audit_annotations {
            let evaluated = annotation.program.evaluate(&scope);
            if !spend(&mut budget, evaluated.cost + scope.take_variables_cost()) {
                self.error(outcome, OUT_OF_BUDGET.into());
                return;
            }
            let problem = match evaluated.value {
                Ok(Value::String(s)) => {
                    let value = s.trim();
                    if !value.is_empty() {
                        let key = format!("{}/{}", self.policy_name(), annotation.key);
                        // Several params may give a key values; distinct ones are joined.
                        match outcome.annotations.iter_mut().find(|(k, _)| *k == key) {
                            Some((_, existing)) if existing.split(", ").any(|v| v == value) => {}
                            Some((_, existing)) => {
                                existing.push_str(", ");
                                existing.push_str(value);
                            }
                            None => outcome.annotations.push((key, value.to_owned())),
                        }
                    }
                    continue;
                }
                Ok(Value::Null) => continue,
                Ok(other) => format!(
                    "valueExpression '{}' resulted in unsupported return type: {}. Return type must be either string or null.",
                    annotation.program.source(),
                    other.type_name().as_str()
                ),
                Err(e) if self.failure_policy == FailurePolicy::Fail => format!(
                    "expression '{}' resulted in error: {e}",
                    annotation.program.source()
                ),
                Err(_) => continue,
            };
            outcome.failures.push(Failure {
                message: problem,
                reason: "Invalid".into(),
                always_denies: true,
            });
        }
    }

    /// The message of a failed validation, by the API server's rules.
    fn message<'a>(
        &'a self,
        validation: &'a Validation,
        scope: &Scope<'_, 'a>,
        budget: &mut u64,
    ) -> String {
        if let Some(expression) = &validation.message_expression {
            let evaluated = expression.evaluate(scope);
            let cost = evaluated.cost + scope.take_variables_cost();
            *budget = budget.saturating_sub(cost);
            if let Ok(Value::String(s)) = evaluated.value {
                let message = s.trim();
                if !message.is_empty()
                    && message.len() <= MAX_MESSAGE_EXPRESSION_BYTES
                    && !message.contains('\n')
                {
                    return message.to_owned();
                }
            }
        }
        if let Some(message) = validation.message.as_deref().map(str::trim)
            && !message.is_empty()
        {
            return message.to_owned();
        }
        format!("failed expression: {}", validation.program.source().trim())
    }
}
