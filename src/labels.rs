//! Kubernetes label selectors (`metav1.LabelSelector`), parsed and validated at load exactly as
//! apimachinery does, and matched against any set of labels without allocating.
//!
//! The semantics are apimachinery's `metav1.LabelSelectorAsSelector` and
//! `labels.NewRequirement` (k8s.io/apimachinery/pkg/apis/meta/v1/helpers.go,
//! pkg/labels/selector.go, pkg/util/validation/validation.go), which the API server uses for a
//! webhook's `namespaceSelector` and `objectSelector`:
//!
//! - `matchLabels: {k: v}` is the requirement `k In (v)`; every requirement must hold (AND).
//! - `In` holds when the label is present with one of the values; `NotIn` when it is absent or
//!   has none of them (so `NotIn` matches an object without the label); `Exists` when it is
//!   present (with any value, the empty one too); `DoesNotExist` when it is absent.
//! - Keys are qualified names (`[prefix/]name`: the prefix a DNS-1123 subdomain of at most 253
//!   characters, the name at most 63 alphanumerics, `-`, `_`, `.`, starting and ending with an
//!   alphanumeric); values are label values (at most 63 such characters, or empty).
//! - `In` and `NotIn` need at least one value; `Exists` and `DoesNotExist` take none. Operators
//!   are spelt exactly so (case matters). Anything else is a load error naming the field.
//! - An empty selector (`{}`) matches everything. (A *missing* selector is the policy's
//!   business: portier's `match` and `exclude` treat it as "not given".)
//!
//! This room knows nothing of policies or namespaces: `policy::selector` compiles its
//! `namespaceSelector` / `objectSelector` here, the namespace cache (`crate::namespaces`) hands
//! out label sets that implement [`Labels`], and CEL's `namespaceSelector`/`objectSelector`
//! bindings can reuse both.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Deserialize;

/// A set of labels a selector can be matched against. `Sync`, so that a request holding some
/// can be awaited across.
pub trait Labels: Sync {
    /// The value of `key`, if the label is present. Borrowed when the set holds it as text;
    /// owned only for a value that had to be unescaped from JSON.
    fn label(&self, key: &str) -> Option<Cow<'_, str>>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key).map(|v| Cow::Borrowed(v.as_str()))
    }
}

impl<S: std::hash::BuildHasher + Sync> Labels for HashMap<String, String, S> {
    fn label(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key).map(|v| Cow::Borrowed(v.as_str()))
    }
}

impl<K: AsRef<str> + Sync, V: AsRef<str> + Sync> Labels for [(K, V)] {
    fn label(&self, key: &str) -> Option<Cow<'_, str>> {
        // The last one wins, as a JSON object with a repeated key decodes in Go.
        self.iter()
            .rev()
            .find(|(k, _)| k.as_ref() == key)
            .map(|(_, v)| Cow::Borrowed(v.as_ref()))
    }
}

impl<L: Labels + ?Sized> Labels for &L {
    fn label(&self, key: &str) -> Option<Cow<'_, str>> {
        (**self).label(key)
    }
}

/// No labels at all: what an object without `metadata.labels` has.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLabels;

impl Labels for NoLabels {
    fn label(&self, _: &str) -> Option<Cow<'_, str>> {
        None
    }
}

/// The labels of an object as its JSON text holds them (`metadata.labels`, kept raw while
/// decoding): read only when a selector asks, by scanning the object for the key, so decoding
/// a review costs nothing for them and matching allocates only for an escaped value.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawLabels<'a>(pub Option<&'a serde_json::value::RawValue>);

impl Labels for RawLabels<'_> {
    fn label(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key)
    }
}

impl<'a> RawLabels<'a> {
    /// The value of `key`, borrowed from the JSON text (owned only when it holds escapes).
    pub fn get(&self, key: &str) -> Option<Cow<'a, str>> {
        let raw = self.0?;
        let mut de = serde_json::Deserializer::from_str(raw.get());
        // Not a map of strings (the API server never sends one): no label is read from it.
        serde::Deserializer::deserialize_any(&mut de, FindLabel { key }).ok()?
    }
}

/// The labels of an object given as JSON text (the `oldObject` of an UPDATE review): found in
/// it on first use, then read as [`RawLabels`].
#[derive(Debug)]
pub struct OldLabels<'a> {
    object: &'a serde_json::value::RawValue,
    labels: std::sync::OnceLock<RawLabels<'a>>,
}

impl<'a> OldLabels<'a> {
    pub fn new(object: &'a serde_json::value::RawValue) -> Self {
        OldLabels {
            object,
            labels: std::sync::OnceLock::new(),
        }
    }

    fn labels(&self) -> RawLabels<'a> {
        *self.labels.get_or_init(|| {
            #[derive(Deserialize)]
            struct Object<'a> {
                #[serde(borrow, default)]
                metadata: Option<Metadata<'a>>,
            }
            #[derive(Deserialize)]
            struct Metadata<'a> {
                #[serde(borrow, default)]
                labels: Option<&'a serde_json::value::RawValue>,
            }
            let object: Option<Object<'a>> = serde_json::from_str(self.object.get()).ok();
            RawLabels(object.and_then(|o| o.metadata).and_then(|m| m.labels))
        })
    }
}

impl Labels for OldLabels<'_> {
    fn label(&self, key: &str) -> Option<Cow<'_, str>> {
        self.labels().get(key)
    }
}

/// Scans a JSON object for one key; the last occurrence wins, as in Go's decoder.
struct FindLabel<'k> {
    key: &'k str,
}

impl<'de> serde::de::Visitor<'de> for FindLabel<'_> {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of labels")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<CowStr<'de>>()? {
            if key.0 == self.key {
                found = Some(map.next_value::<CowStr<'de>>()?.0);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// A string borrowed from the JSON text, owned only when it holds escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        de.deserialize_str(V)
    }
}

/// The YAML/JSON form of a `metav1.LabelSelector`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelectorDoc {
    #[serde(default)]
    pub match_labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub match_expressions: Option<Vec<RequirementDoc>>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RequirementDoc {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Option<Vec<String>>,
}

/// A selector that does not validate, with the path of the offending field below the
/// selector's own path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct LabelSelectorError {
    pub field: String,
    pub message: String,
}

/// How a requirement compares a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Operator {
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "In",
            Operator::NotIn => "NotIn",
            Operator::Exists => "Exists",
            Operator::DoesNotExist => "DoesNotExist",
        }
    }
}

/// One compiled requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: Box<str>,
    operator: Operator,
    /// Sorted and without duplicates (apimachinery keeps them as a set).
    values: Box<[Box<str>]>,
}

impl Requirement {
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> Operator {
        self.operator
    }

    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(|v| &**v)
    }

    fn has_value(&self, value: &str) -> bool {
        self.values.binary_search_by(|v| (**v).cmp(value)).is_ok()
    }

    /// apimachinery's `Requirement.Matches`.
    pub fn matches(&self, labels: &(impl Labels + ?Sized)) -> bool {
        match self.operator {
            Operator::In => labels.label(&self.key).is_some_and(|v| self.has_value(&v)),
            Operator::NotIn => labels.label(&self.key).is_none_or(|v| !self.has_value(&v)),
            Operator::Exists => labels.label(&self.key).is_some(),
            Operator::DoesNotExist => labels.label(&self.key).is_none(),
        }
    }
}

/// A compiled label selector: every requirement must hold; none means everything matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Validates `doc` as the API server validates a webhook's selector; `field` is the
    /// selector's path, for messages (e.g. `spec.match.namespaceSelector`).
    pub fn compile(
        doc: &LabelSelectorDoc,
        field: &str,
    ) -> Result<LabelSelector, LabelSelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in doc.match_labels.iter().flatten() {
            let at = format!("{field}.matchLabels");
            check_key(key).map_err(|m| error(&at, key, m))?;
            check_value(value).map_err(|m| error(&format!("{at}[{key}]"), value, m))?;
            requirements.push(Requirement {
                key: key.as_str().into(),
                operator: Operator::In,
                values: Box::new([value.as_str().into()]),
            });
        }
        for (i, expression) in doc.match_expressions.iter().flatten().enumerate() {
            let at = format!("{field}.matchExpressions[{i}]");
            requirements.push(compile_requirement(expression, &at)?);
        }
        Ok(LabelSelector { requirements })
    }

    /// The selector that matches everything (`{}`).
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    /// Whether it matches every set of labels (no requirement at all).
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn matches(&self, labels: &(impl Labels + ?Sized)) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl fmt::Display for LabelSelector {
    /// The selector in kubectl's `-l` syntax (`a=b,c notin (d,e),!f`), for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match r.operator {
                Operator::In if r.values.len() == 1 => write!(f, "{}={}", r.key, r.values[0])?,
                Operator::In => write!(f, "{} in ({})", r.key, r.values.join(","))?,
                Operator::NotIn => write!(f, "{} notin ({})", r.key, r.values.join(","))?,
                Operator::Exists => write!(f, "{}", r.key)?,
                Operator::DoesNotExist => write!(f, "!{}", r.key)?,
            }
        }
        Ok(())
    }
}

fn error(field: &str, value: &str, message: String) -> LabelSelectorError {
    LabelSelectorError {
        field: field.to_owned(),
        message: format!("invalid value {value:?}: {message}"),
    }
}

fn compile_requirement(doc: &RequirementDoc, at: &str) -> Result<Requirement, LabelSelectorError> {
    check_key(&doc.key).map_err(|m| error(&format!("{at}.key"), &doc.key, m))?;
    let operator = match doc.operator.as_str() {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            return Err(LabelSelectorError {
                field: format!("{at}.operator"),
                message: format!(
                    "{other:?} is not a valid label selector operator: use In, NotIn, Exists or DoesNotExist"
                ),
            });
        }
    };
    let values = doc.values.as_deref().unwrap_or_default();
    match operator {
        Operator::In | Operator::NotIn if values.is_empty() => {
            return Err(LabelSelectorError {
                field: format!("{at}.values"),
                message: "for 'In' and 'NotIn' operators, values set can't be empty".into(),
            });
        }
        Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
            return Err(LabelSelectorError {
                field: format!("{at}.values"),
                message: "values set must be empty for 'Exists' and 'DoesNotExist'".into(),
            });
        }
        _ => {}
    }
    for (j, value) in values.iter().enumerate() {
        check_value(value).map_err(|m| error(&format!("{at}.values[{j}]"), value, m))?;
    }
    let mut values: Vec<Box<str>> = values.iter().map(|v| v.as_str().into()).collect();
    values.sort_unstable();
    values.dedup();
    Ok(Requirement {
        key: doc.key.as_str().into(),
        operator,
        values: values.into_boxed_slice(),
    })
}

const NAME_RULE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// apimachinery's `IsQualifiedName`: `[prefix/]name`.
pub fn check_key(key: &str) -> Result<(), String> {
    let mut parts = key.split('/');
    let (prefix, name) = match (parts.next(), parts.next(), parts.next()) {
        (Some(name), None, _) => (None, name),
        (Some(prefix), Some(name), None) => (Some(prefix), name),
        _ => {
            return Err(format!(
                "a qualified name {NAME_RULE}, with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ));
        }
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err("prefix part must be non-empty".into());
        }
        check_dns_subdomain(prefix).map_err(|m| format!("prefix part {m}"))?;
    }
    if name.is_empty() {
        return Err("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters".into());
    }
    if !is_qualified_name_part(name) {
        return Err(format!("name part {NAME_RULE}"));
    }
    Ok(())
}

/// apimachinery's `IsValidLabelValue`: empty, or at most 63 characters like a name part.
pub fn check_value(value: &str) -> Result<(), String> {
    if value.len() > 63 {
        return Err("must be no more than 63 characters".into());
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        return Err(format!(
            "a valid label must be an empty string or {}",
            NAME_RULE.replacen("must ", "", 1)
        ));
    }
    Ok(())
}

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    let ext = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.');
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() && b.iter().all(ext)
        }
        _ => false,
    }
}

/// apimachinery's `IsDNS1123Subdomain`.
fn check_dns_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err("must be no more than 253 characters".into());
    }
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
        match (b.first(), b.last()) {
            (Some(f), Some(z)) => {
                (f.is_ascii_lowercase() || f.is_ascii_digit())
                    && (z.is_ascii_lowercase() || z.is_ascii_digit())
                    && b.iter().all(inner)
            }
            _ => false,
        }
    };
    if s.split('.').all(label_ok) {
        Ok(())
    } else {
        Err("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')".into())
    }
}

/// Parses kubectl-style `k=v,k2=v2` label lists (`--namespace-labels NS=k=v,...`): each pair
/// validated as a label key and value. An empty text is no labels.
pub fn parse_label_list(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not key=value"))?;
        check_key(key).map_err(|m| format!("label key {key:?}: {m}"))?;
        check_value(value).map_err(|m| format!("label value {value:?} of {key:?}: {m}"))?;
        labels.insert(key.to_owned(), value.to_owned());
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(yaml: &str) -> Result<LabelSelector, LabelSelectorError> {
        let doc: LabelSelectorDoc = serde_saphyr::from_str(yaml).unwrap();
        LabelSelector::compile(&doc, "sel")
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn an_empty_selector_matches_everything() {
        let s = selector("{}").unwrap();
        assert!(s.is_everything());
        assert!(s.matches(&labels(&[])));
        assert!(s.matches(&labels(&[("a", "b")])));
        assert!(s.matches(&NoLabels));
        let s = selector("{matchLabels: {}, matchExpressions: []}").unwrap();
        assert!(s.is_everything());
    }

    #[test]
    fn match_labels_need_every_pair() {
        let s = selector("{matchLabels: {tier: prod, team: a}}").unwrap();
        assert!(s.matches(&labels(&[("tier", "prod"), ("team", "a"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("tier", "prod")])));
        assert!(!s.matches(&labels(&[("tier", "dev"), ("team", "a")])));
        assert!(!s.matches(&NoLabels), "a missing label does not match");
        let empty_value = selector("{matchLabels: {tier: ''}}").unwrap();
        assert!(empty_value.matches(&labels(&[("tier", "")])));
        assert!(!empty_value.matches(&NoLabels));
    }

    #[test]
    fn every_operator_as_apimachinery_matches_it() {
        let is =
            |yaml: &str, pairs: &[(&str, &str)]| selector(yaml).unwrap().matches(&labels(pairs));
        let in_ = "{matchExpressions: [{key: env, operator: In, values: [prod, staging]}]}";
        assert!(is(in_, &[("env", "prod")]));
        assert!(is(in_, &[("env", "staging")]));
        assert!(!is(in_, &[("env", "dev")]));
        assert!(!is(in_, &[]), "In needs the label");

        let not_in = "{matchExpressions: [{key: env, operator: NotIn, values: [prod]}]}";
        assert!(!is(not_in, &[("env", "prod")]));
        assert!(is(not_in, &[("env", "dev")]));
        assert!(is(not_in, &[]), "NotIn matches a missing label");
        assert!(is(not_in, &[("other", "prod")]));

        let exists = "{matchExpressions: [{key: env, operator: Exists}]}";
        assert!(is(exists, &[("env", "")]));
        assert!(is(exists, &[("env", "x")]));
        assert!(!is(exists, &[]));

        let absent = "{matchExpressions: [{key: env, operator: DoesNotExist}]}";
        assert!(!is(absent, &[("env", "")]));
        assert!(is(absent, &[]));
        assert!(is(absent, &[("envx", "a")]));

        // Requirements AND together, matchLabels included.
        let both = "{matchLabels: {team: a}, matchExpressions: [{key: env, operator: NotIn, values: [prod]}, {key: legacy, operator: DoesNotExist}]}";
        assert!(is(both, &[("team", "a")]));
        assert!(is(both, &[("team", "a"), ("env", "dev")]));
        assert!(!is(both, &[("team", "a"), ("env", "prod")]));
        assert!(!is(both, &[("team", "a"), ("legacy", "true")]));
        assert!(!is(both, &[("env", "dev")]));
    }

    #[test]
    fn invalid_selectors_are_refused_with_the_field() {
        let err = |yaml: &str| selector(yaml).unwrap_err();
        let e = err("{matchExpressions: [{key: env, operator: In}]}");
        assert_eq!(e.field, "sel.matchExpressions[0].values");
        let e = err("{matchExpressions: [{key: env, operator: NotIn, values: []}]}");
        assert_eq!(e.field, "sel.matchExpressions[0].values");
        let e = err("{matchExpressions: [{key: env, operator: Exists, values: [a]}]}");
        assert!(e.message.contains("must be empty"), "{e}");
        let e = err("{matchExpressions: [{key: env, operator: DoesNotExist, values: [a]}]}");
        assert_eq!(e.field, "sel.matchExpressions[0].values");
        let e = err("{matchExpressions: [{key: env, operator: in, values: [a]}]}");
        assert_eq!(e.field, "sel.matchExpressions[0].operator");
        assert!(
            e.to_string()
                .contains("\"in\" is not a valid label selector operator"),
            "{e}"
        );
        let e = err("{matchExpressions: [{key: 'a/b/c', operator: Exists}]}");
        assert_eq!(e.field, "sel.matchExpressions[0].key");
        let e = err("{matchExpressions: [{key: env, operator: In, values: ['bad value']}]}");
        assert_eq!(e.field, "sel.matchExpressions[0].values[0]");
        let e = err("{matchLabels: {'-bad': x}}");
        assert_eq!(e.field, "sel.matchLabels");
        let e = err("{matchLabels: {good: '-bad'}}");
        assert_eq!(e.field, "sel.matchLabels[good]");
        // Unknown fields are refused by the document type itself.
        assert!(serde_saphyr::from_str::<LabelSelectorDoc>("{matchLabel: {a: b}}").is_err());
        assert!(
            serde_saphyr::from_str::<LabelSelectorDoc>(
                "{matchExpressions: [{key: a, operator: Exists, value: [x]}]}"
            )
            .is_err()
        );
    }

    #[test]
    fn keys_and_values_follow_apimachinery() {
        for good in [
            "a",
            "A",
            "a.b_c-d",
            "example.com/name",
            "pod-security.kubernetes.io/enforce",
            "kubernetes.io/metadata.name",
            &"x".repeat(63),
            &format!("{}/n", "a".repeat(253)),
        ] {
            assert_eq!(check_key(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a/b/c",
            "-a",
            "a-",
            "a b",
            "Example.com/a",
            "ex_ample.com/a",
            &"x".repeat(64),
            &format!("{}/n", "a".repeat(254)),
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        for good in ["", "a", "prod", "v1.32", "A_b-c.d", &"x".repeat(63)] {
            assert_eq!(check_value(good), Ok(()), "{good}");
        }
        for bad in ["-a", "a-", "a b", "a/b", &"x".repeat(64)] {
            assert!(check_value(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn duplicate_values_and_display() {
        let s = selector(
            "{matchLabels: {a: b}, matchExpressions: [{key: c, operator: NotIn, values: [e, d, e]}, {key: f, operator: Exists}, {key: g, operator: DoesNotExist}, {key: h, operator: In, values: [x, y]}]}",
        )
        .unwrap();
        assert_eq!(s.requirements()[1].values().collect::<Vec<_>>(), ["d", "e"]);
        assert_eq!(s.to_string(), "a=b,c notin (d,e),f,!g,h in (x,y)");
    }

    #[test]
    fn label_sets_of_every_shape() {
        let s = selector("{matchLabels: {a: b}}").unwrap();
        let pairs: &[(&str, &str)] = &[("a", "x"), ("a", "b")];
        assert!(s.matches(pairs), "the last of a repeated key wins");
        let map: HashMap<String, String> = [("a".to_owned(), "b".to_owned())].into();
        assert!(s.matches(&map));
    }

    #[test]
    fn raw_labels_are_read_from_the_json_text() {
        let json = r#"{"app":"web","tier":"pr\u006fd","tier2":"x","app":"api"}"#;
        let raw: &serde_json::value::RawValue = serde_json::from_str(json).unwrap();
        let labels = RawLabels(Some(raw));
        assert_eq!(labels.label("app").as_deref(), Some("api"), "the last wins");
        assert_eq!(labels.label("tier").as_deref(), Some("prod"), "unescaped");
        assert!(matches!(labels.label("tier2"), Some(Cow::Borrowed("x"))));
        assert_eq!(labels.label("none"), None);
        let null: &serde_json::value::RawValue = serde_json::from_str("null").unwrap();
        assert_eq!(RawLabels(Some(null)).label("app"), None);
        let bad: &serde_json::value::RawValue = serde_json::from_str(r#"{"app":1}"#).unwrap();
        assert_eq!(RawLabels(Some(bad)).label("app"), None);
        assert_eq!(RawLabels(None).label("app"), None);
        let s = selector("{matchLabels: {app: api}}").unwrap();
        assert!(s.matches(&labels));
    }

    #[test]
    fn label_lists_parse_as_kubectl_writes_them() {
        assert_eq!(
            parse_label_list("a=b,example.com/c=").unwrap(),
            labels(&[("a", "b"), ("example.com/c", "")])
        );
        assert!(parse_label_list("").unwrap().is_empty());
        assert!(parse_label_list("a").is_err());
        assert!(parse_label_list("a=b c").is_err());
        assert!(parse_label_list("-a=b").is_err());
    }
}
