//! Bindings: read and validated, paired with their policies, their params found among the
//! other objects of the policy directory.

use super::*;

impl Documents {
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
            let api_version = text_at(&doc, &["apiVersion"]);
            let kind = text_at(&doc, &["kind"]);
            let metadata = doc.get("metadata");
            let name = text_at(&doc, &["metadata", "name"]);
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
                    namespace: text_at(&doc, &["metadata", "namespace"]),
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
                    let namespaced = match crate::cel::resources::resource_for(group, &kind.1).1 {
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

pub(super) fn load_binding(place: Place, doc: BindingDoc) -> Result<LoadedBinding, DocError> {
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
