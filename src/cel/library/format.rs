//! Kubernetes' named formats (`k8s.io/apiserver/pkg/cel/library/format.go`):
//! `format.named(name)`, `format.dns1123Label()` and the other named formats, and
//! `<format>.validate(s)`, which is `optional.none()` for a valid string and the list of the
//! API's validation messages otherwise. The checks and their messages are apimachinery's
//! (`k8s.io/apimachinery/pkg/util/validation`), the CRD formats kube-openapi's.

use std::sync::LazyLock;

use super::sig::*;
// Types of signatures are values (`String` the CEL type); in type position `String` is Rust's.
use super::{Call, Registry};
use crate::cel::eval::EvalError;
use crate::cel::value::{NamedFormat, TypeName, Value};
use std::string::String;

/// The names `format.named()` knows, each with its function (`format.<name>()`).
const NAMES: [(&str, &str); 13] = [
    ("dns1123Label", "format.dns1123Label"),
    ("dns1123Subdomain", "format.dns1123Subdomain"),
    ("dns1035Label", "format.dns1035Label"),
    ("qualifiedName", "format.qualifiedName"),
    ("dns1123LabelPrefix", "format.dns1123LabelPrefix"),
    ("dns1123SubdomainPrefix", "format.dns1123SubdomainPrefix"),
    ("dns1035LabelPrefix", "format.dns1035LabelPrefix"),
    ("labelValue", "format.labelValue"),
    ("uri", "format.uri"),
    ("uuid", "format.uuid"),
    ("byte", "format.byte"),
    ("date", "format.date"),
    ("datetime", "format.datetime"),
];

pub(crate) fn register(r: &mut Registry) {
    let format = || opaque(TypeName::Format);
    r.global("format.named", named, &[(&[String], opt(format()))]);
    for (_, function) in NAMES {
        r.global(function, constant, &[(&[], format())]);
    }
    r.member(
        "validate",
        validate,
        &[(&[format(), String], opt(list(String)))],
    );
}

fn named<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let Value::String(name) = &args[0] else {
        return call.no_overload(args);
    };
    let found = NAMES.iter().find(|(n, _)| *n == &**name);
    Ok(Value::optional(
        found.map(|(n, _)| Value::Format(NamedFormat(n))),
    ))
}

fn constant<'a>(call: &mut Call<'_>, _: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match NAMES.iter().find(|(_, f)| *f == call.function) {
        Some((n, _)) => Ok(Value::Format(NamedFormat(n))),
        None => call.no_overload(&[]),
    }
}

fn validate<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let (Value::Format(format), Value::String(s)) = (&args[0], &args[1]) else {
        return call.no_overload(args);
    };
    call.charge_traversal(s.len())?;
    let errors = check(format.0, s);
    Ok(Value::optional((!errors.is_empty()).then(|| {
        Value::list(errors.into_iter().map(Value::string).collect())
    })))
}

const LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

fn subdomain_fmt() -> String {
    format!("{LABEL_FMT}(\\.{LABEL_FMT})*")
}

fn label_value_fmt() -> String {
    format!("({QUALIFIED_FMT})?")
}

/// A whole-string match of an apimachinery pattern.
fn full(pattern: &str) -> regex::Regex {
    // The patterns are constants of this file and compile.
    regex::Regex::new(&format!("^(?:{pattern})$")).unwrap_or_else(|_| never())
}

fn never() -> regex::Regex {
    regex::Regex::new("[^\\s\\S]").unwrap_or_else(|_| unreachable!("a valid regex"))
}

static LABEL: LazyLock<regex::Regex> = LazyLock::new(|| full(LABEL_FMT));
static SUBDOMAIN: LazyLock<regex::Regex> = LazyLock::new(|| full(&subdomain_fmt()));
static DNS1035: LazyLock<regex::Regex> = LazyLock::new(|| full(DNS1035_FMT));
static QUALIFIED: LazyLock<regex::Regex> = LazyLock::new(|| full(QUALIFIED_FMT));
static LABEL_VALUE: LazyLock<regex::Regex> = LazyLock::new(|| full(&label_value_fmt()));
static UUID: LazyLock<regex::Regex> = LazyLock::new(|| {
    full("(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}")
});

/// apimachinery's `RegexError`.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{msg} (e.g. {}regex used for validation is '{fmt}')",
        examples.join(" or ")
    )
}

fn max_len(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn dns1123_label(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.len() > 63 {
        errors.push(max_len(63));
    }
    if !LABEL.is_match(s) {
        if SUBDOMAIN.is_match(s) {
            errors.push("must not contain dots".into());
        } else {
            errors.push(regex_error(LABEL_MSG, LABEL_FMT, &["my-name", "123-abc"]));
        }
    }
    errors
}

fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.len() > 253 {
        errors.push(max_len(253));
    }
    if !SUBDOMAIN.is_match(s) {
        errors.push(regex_error(
            SUBDOMAIN_MSG,
            &subdomain_fmt(),
            &["example.com"],
        ));
    }
    errors
}

fn dns1035_label(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.len() > 63 {
        errors.push(max_len(63));
    }
    if !DNS1035.is_match(s) {
        errors.push(regex_error(
            DNS1035_MSG,
            DNS1035_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errors
}

/// apimachinery's `maskTrailingDash`, for the `*Prefix` formats (a generateName prefix may
/// end with a dash).
fn mask_trailing_dash(s: &str) -> String {
    if s.len() > 1 && s.ends_with('-') {
        format!("{}a", &s[..s.len() - 2])
    } else {
        s.to_owned()
    }
}

fn qualified_name(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".into());
            } else {
                errors.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_MSG,
                    QUALIFIED_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            )];
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".into());
    } else if name.len() > 63 {
        errors.push(format!("name part {}", max_len(63)));
    }
    if !QUALIFIED.is_match(name) {
        errors.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_MSG,
                QUALIFIED_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errors
}

fn label_value(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.len() > 63 {
        errors.push(max_len(63));
    }
    if !LABEL_VALUE.is_match(s) {
        errors.push(regex_error(
            LABEL_VALUE_MSG,
            &label_value_fmt(),
            &["MyValue", "my_value", "12345"],
        ));
    }
    errors
}

fn valid_base64(s: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).is_ok()
}

fn valid_date(s: &str) -> bool {
    s.len() == 10 && super::time::parse_rfc3339(&format!("{s}T00:00:00Z")).is_some()
}

/// kube-openapi's `date-time`: RFC 3339, also with a space or a lowercase `t`/`z`, and with
/// the seconds' fraction optional.
fn valid_datetime(s: &str) -> bool {
    let normalized: String = s
        .char_indices()
        .map(|(i, c)| match (i, c) {
            (10, ' ' | 't') => 'T',
            (_, 'z') => 'Z',
            _ => c,
        })
        .collect();
    super::time::parse_rfc3339(&normalized).is_some()
}

fn check(format: &str, s: &str) -> Vec<String> {
    match format {
        "dns1123Label" => dns1123_label(s),
        "dns1123LabelPrefix" => dns1123_label(&mask_trailing_dash(s)),
        "dns1123Subdomain" => dns1123_subdomain(s),
        "dns1123SubdomainPrefix" => dns1123_subdomain(&mask_trailing_dash(s)),
        "dns1035Label" => dns1035_label(s),
        "dns1035LabelPrefix" => dns1035_label(&mask_trailing_dash(s)),
        "qualifiedName" => qualified_name(s),
        "labelValue" => label_value(s),
        "uri" => match super::url::parse_request_uri(s) {
            Ok(()) => Vec::new(),
            Err(e) => vec![format!("parse {s:?}: {e}")],
        },
        "uuid" if !UUID.is_match(s) => vec!["does not match the UUID format".into()],
        "byte" if !valid_base64(s) => vec!["invalid base64".into()],
        "date" if !valid_date(s) => vec!["invalid date".into()],
        "datetime" if !valid_datetime(s) => vec!["invalid datetime".into()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apimachinery_messages() {
        assert!(check("dns1123Label", "my-name").is_empty());
        assert_eq!(check("dns1123Label", "a.b"), vec!["must not contain dots"]);
        assert_eq!(
            check("dns1123Label", "Bad"),
            vec![
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
        assert_eq!(check("dns1123Label", &"a".repeat(64)), vec![max_len(63)]);
        assert!(check("dns1123LabelPrefix", "my-prefix-").is_empty());
        assert!(check("dns1123Subdomain", "apiextensions.k8s.io").is_empty());
        assert!(check("qualifiedName", "apiextensions.k8s.io/v1beta1").is_empty());
        assert_eq!(
            check("qualifiedName", "/x"),
            vec!["prefix part must be non-empty"]
        );
        assert!(check("labelValue", "").is_empty());
        assert!(!check("labelValue", "-x").is_empty());
        assert!(check("uuid", "123e4567-e89b-12d3-a456-426614174000").is_empty());
        assert!(check("byte", "aGVsbG8=").is_empty());
        assert_eq!(check("byte", "aGVsbG8"), vec!["invalid base64"]);
        assert!(check("date", "2021-01-01").is_empty());
        assert!(!check("date", "2021-02-30").is_empty());
        assert!(check("datetime", "2021-01-01T00:00:00Z").is_empty());
        assert!(check("uri", "http://example.com").is_empty());
        assert!(!check("uri", "example.com").is_empty());
    }
}
