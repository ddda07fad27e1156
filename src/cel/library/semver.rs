//! Kubernetes' semver library (`k8s.io/apiserver/pkg/cel/library/semverlib.go`, version 1):
//! `semver(s)`, `semver(s, normalize)`, `isSemver(s)`, `isSemver(s, normalize)`, `major`,
//! `minor`, `patch`, `isGreaterThan`, `isLessThan`, `compareTo`. Versions parse as
//! `blang/semver` parses them (strict: `MAJOR.MINOR.PATCH[-PRE][+BUILD]`, no leading zeros);
//! `normalize` first drops a `v`, leading zeros and fills in missing parts, as Kubernetes does.

use std::cmp::Ordering;

use super::sig::*;
// Types of signatures are values (`String` the CEL type); in type position `String` is Rust's.
use super::{Call, Registry};
use crate::cel::eval::EvalError;
use crate::cel::value::{TypeName, Value};
use std::string::String;

/// A semantic version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Semver {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pre: Vec<Identifier>,
    build: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Identifier {
    Numeric(u64),
    Alphanumeric(String),
}

pub(crate) fn register(r: &mut Registry) {
    let v = || opaque(TypeName::Semver);
    r.global(
        "semver",
        to_semver,
        &[(&[String], v()), (&[String, Bool], v())],
    );
    r.global(
        "isSemver",
        is_semver,
        &[(&[String], Bool), (&[String, Bool], Bool)],
    );
    for name in ["major", "minor", "patch"] {
        r.member(name, part, &[(&[v()], Int)]);
    }
    r.member("isGreaterThan", compare, &[(&[v(), v()], Bool)]);
    r.member("isLessThan", compare, &[(&[v(), v()], Bool)]);
    r.member("compareTo", compare, &[(&[v(), v()], Int)]);
}

fn number(s: &str, what: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("Invalid character(s) found in {what} number {s:?}"));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(format!(
            "{} number must not contain leading zeroes {s:?}",
            capitalized(what)
        ));
    }
    s.parse()
        .map_err(|_| format!("Invalid {what} number {s:?}"))
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn valid_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `blang/semver`'s `Parse`.
pub(crate) fn parse(s: &str) -> Result<Semver, String> {
    let (rest, build) = match s.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (s, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    let [major, minor, patch] = parts.as_slice() else {
        return Err("No Major.Minor.Patch elements found".into());
    };
    let mut version = Semver {
        major: number(major, "major")?,
        minor: number(minor, "minor")?,
        patch: number(patch, "patch")?,
        pre: Vec::new(),
        build: Vec::new(),
    };
    if let Some(pre) = pre {
        for id in pre.split('.') {
            if !valid_identifier(id) {
                return Err(format!("Invalid character(s) found in prerelease {id:?}"));
            }
            version.pre.push(if id.bytes().all(|b| b.is_ascii_digit()) {
                if id.len() > 1 && id.starts_with('0') {
                    return Err(format!(
                        "Numeric PreRelease version must not contain leading zeroes {id:?}"
                    ));
                }
                Identifier::Numeric(
                    id.parse()
                        .map_err(|_| format!("Invalid prerelease {id:?}"))?,
                )
            } else {
                Identifier::Alphanumeric(id.to_owned())
            });
        }
    }
    if let Some(build) = build {
        for id in build.split('.') {
            if !valid_identifier(id) {
                return Err(format!(
                    "Invalid character(s) found in build meta data {id:?}"
                ));
            }
            version.build.push(id.to_owned());
        }
    }
    Ok(version)
}

/// Kubernetes' `normalizeAndParse`.
fn normalize_and_parse(s: &str) -> Result<Semver, String> {
    let s = s.strip_prefix('v').unwrap_or(s);
    let mut parts: Vec<String> = s.splitn(3, '.').map(str::to_owned).collect();
    for p in parts.iter_mut() {
        if p.len() > 1 {
            let trimmed = p.trim_start_matches('0');
            *p = if trimmed.is_empty() || !trimmed.starts_with(|c: char| c.is_ascii_digit()) {
                format!("0{trimmed}")
            } else {
                trimmed.to_owned()
            };
        }
    }
    if parts.len() < 3 {
        if parts.last().is_some_and(|p| p.contains(['+', '-'])) {
            return Err("short version cannot contain PreRelease/Build meta data".into());
        }
        while parts.len() < 3 {
            parts.push("0".into());
        }
    }
    parse(&parts.join("."))
}

impl Semver {
    /// Semantic versioning precedence (build metadata ignored).
    pub fn precedence(&self, other: &Semver) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => {
                    for (a, b) in self.pre.iter().zip(other.pre.iter()) {
                        let o = match (a, b) {
                            (Identifier::Numeric(x), Identifier::Numeric(y)) => x.cmp(y),
                            (Identifier::Numeric(_), Identifier::Alphanumeric(_)) => Ordering::Less,
                            (Identifier::Alphanumeric(_), Identifier::Numeric(_)) => {
                                Ordering::Greater
                            }
                            (Identifier::Alphanumeric(x), Identifier::Alphanumeric(y)) => x.cmp(y),
                        };
                        if o != Ordering::Equal {
                            return o;
                        }
                    }
                    self.pre.len().cmp(&other.pre.len())
                }
            })
    }
}

fn read(call: &Call<'_>, args: &[Value<'_>]) -> Result<Result<Semver, String>, EvalError> {
    let normalize = match args.get(1) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return call.no_overload(args),
    };
    let Value::String(s) = &args[0] else {
        return call.no_overload(args);
    };
    Ok(if normalize {
        normalize_and_parse(s)
    } else {
        parse(s)
    })
}

fn to_semver<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    read(call, args)?
        .map(|v| Value::Semver(std::rc::Rc::new(v)))
        .map_err(EvalError::message)
}

fn is_semver<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    Ok(Value::Bool(read(call, args)?.is_ok()))
}

fn part<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let Value::Semver(v) = &args[0] else {
        return call.no_overload(args);
    };
    let n = match call.function {
        "major" => v.major,
        "minor" => v.minor,
        _ => v.patch,
    };
    i64::try_from(n)
        .map(Value::Int)
        .map_err(|_| EvalError::IntOverflow)
}

fn compare<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let (Value::Semver(x), Value::Semver(y)) = (&args[0], &args[1]) else {
        return call.no_overload(args);
    };
    let order = x.precedence(y);
    Ok(match call.function {
        "isGreaterThan" => Value::Bool(order == Ordering::Greater),
        "isLessThan" => Value::Bool(order == Ordering::Less),
        _ => Value::Int(order as i64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strictly_and_normalizes_on_request() {
        assert!(parse("1.2.3").is_ok());
        assert!(parse("1.2.3-alpha.1+build.5").is_ok());
        assert!(parse("v1.2.3").is_err());
        assert!(parse("1.2").is_err());
        assert!(parse("01.2.3").is_err());
        assert!(parse("1.2.3-01").is_err());
        assert_eq!(
            normalize_and_parse("v1.02").unwrap(),
            parse("1.2.0").unwrap()
        );
        assert!(normalize_and_parse("1.2-alpha").is_err());
    }

    #[test]
    fn precedence_follows_semver() {
        let order = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.1.0",
            "2.0.0",
        ];
        for pair in order.windows(2) {
            let (a, b) = (parse(pair[0]).unwrap(), parse(pair[1]).unwrap());
            assert_eq!(
                a.precedence(&b),
                Ordering::Less,
                "{} < {}",
                pair[0],
                pair[1]
            );
        }
        assert_eq!(
            parse("1.0.0+a")
                .unwrap()
                .precedence(&parse("1.0.0+b").unwrap()),
            Ordering::Equal
        );
    }
}
