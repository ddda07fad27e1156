//! Label selectors (`metav1.LabelSelector`) as ValidatingAdmissionPolicies write them:
//! validated at load, and matched against a label map (a binding's `paramRef.selector`
//! chooses param objects so). An empty selector matches everything.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The YAML form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelectorDoc {
    #[serde(default)]
    pub match_labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub match_expressions: Option<Vec<RequirementDoc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequirementDoc {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// A validated selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<(String, Operator, Vec<String>)>,
}

impl LabelSelector {
    /// Validates `doc` as the API server's `ValidateLabelSelector` does; the error names the
    /// field below the selector.
    pub fn compile(doc: &LabelSelectorDoc) -> Result<LabelSelector, (String, String)> {
        let mut requirements = Vec::new();
        for (key, value) in doc.match_labels.iter().flatten() {
            validate_key(key).map_err(|m| (format!("matchLabels[{key}]"), m))?;
            validate_value(value).map_err(|m| (format!("matchLabels[{key}]"), m))?;
            requirements.push((key.clone(), Operator::In, vec![value.clone()]));
        }
        for (i, req) in doc.match_expressions.iter().flatten().enumerate() {
            let field = |f: &str| format!("matchExpressions[{i}].{f}");
            validate_key(&req.key).map_err(|m| (field("key"), m))?;
            let values = req.values.clone().unwrap_or_default();
            let operator = match req.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err((
                        field("operator"),
                        format!(
                            "Unsupported value: {other:?}: supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\""
                        ),
                    ));
                }
            };
            match operator {
                Operator::In | Operator::NotIn if values.is_empty() => {
                    return Err((
                        field("values"),
                        "Required value: must be specified when `operator` is 'In' or 'NotIn'"
                            .into(),
                    ));
                }
                Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                    return Err((
                        field("values"),
                        "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'".into(),
                    ));
                }
                _ => {}
            }
            for v in &values {
                validate_value(v).map_err(|m| (field("values"), m))?;
            }
            requirements.push((req.key.clone(), operator, values));
        }
        Ok(LabelSelector { requirements })
    }

    /// Whether the selector is `{}`, which matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `labels` (key, value pairs) satisfy every requirement.
    pub fn matches<'l>(&self, labels: impl Fn(&str) -> Option<&'l str>) -> bool {
        self.requirements.iter().all(|(key, op, values)| {
            let value = labels(key);
            match op {
                Operator::In => value.is_some_and(|v| values.iter().any(|x| x == v)),
                Operator::NotIn => value.is_none_or(|v| !values.iter().any(|x| x == v)),
                Operator::Exists => value.is_some(),
                Operator::DoesNotExist => value.is_none(),
            }
        })
    }
}

fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b.first().is_some_and(u8::is_ascii_alphanumeric)
                && b.last().is_some_and(u8::is_ascii_alphanumeric)
        })
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name.
pub fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if prefix.is_some_and(|p| !is_dns_subdomain(p)) || !is_name_part(name) {
        return Err(format!(
            "{key:?} is not a valid label key: a name of at most 63 alphanumeric characters, '-', '_' or '.' (starting and ending alphanumeric), with an optional DNS subdomain prefix and '/'"
        ));
    }
    Ok(())
}

fn validate_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_name_part(value) {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a valid label value: at most 63 alphanumeric characters, '-', '_' or '.', starting and ending alphanumeric"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(yaml: &str) -> Result<LabelSelector, (String, String)> {
        let doc: LabelSelectorDoc = serde_saphyr::from_str(yaml).unwrap();
        LabelSelector::compile(&doc)
    }

    #[test]
    fn matches_labels_and_expressions() {
        let s = selector(
            "{matchLabels: {app: web}, matchExpressions: [{key: tier, operator: In, values: [a, b]}, {key: legacy, operator: DoesNotExist}]}",
        )
        .unwrap();
        let labels = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| *v)
        };
        assert!(s.matches(labels(&[("app", "web"), ("tier", "a")])));
        assert!(!s.matches(labels(&[("app", "web"), ("tier", "c")])));
        assert!(!s.matches(labels(&[("app", "web"), ("tier", "a"), ("legacy", "")])));
        assert!(!s.matches(labels(&[("tier", "a")])));
        let not_in =
            selector("{matchExpressions: [{key: env, operator: NotIn, values: [prod]}]}").unwrap();
        assert!(not_in.matches(labels(&[])));
        assert!(!not_in.matches(labels(&[("env", "prod")])));
        assert!(selector("{}").unwrap().is_empty());
    }

    #[test]
    fn invalid_selectors_name_the_field() {
        let e =
            selector("{matchExpressions: [{key: a, operator: Equals, values: [x]}]}").unwrap_err();
        assert_eq!(e.0, "matchExpressions[0].operator");
        let e = selector("{matchExpressions: [{key: a, operator: In}]}").unwrap_err();
        assert_eq!(e.0, "matchExpressions[0].values");
        let e =
            selector("{matchExpressions: [{key: a, operator: Exists, values: [x]}]}").unwrap_err();
        assert_eq!(e.0, "matchExpressions[0].values");
        let e = selector("{matchLabels: {'bad key!': x}}").unwrap_err();
        assert_eq!(e.0, "matchLabels[bad key!]");
        assert!(selector("{matchLabels: {example.com/team: a-b_c.d}}").is_ok());
    }
}
