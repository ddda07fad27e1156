//! Regular expressions: the standard `matches` and Kubernetes' `find` and `findAll`
//! (`k8s.io/apiserver/pkg/cel/library/regex.go`). The syntax is RE2's, which Rust's `regex`
//! crate shares (no backreferences, no look-around), and matching takes linear time. A
//! literal pattern is compiled when the policy loads, and a bad one is a load error (as the
//! API server's `ValidateRegexLiterals`); a pattern computed at run time is compiled on each
//! call, its cost charged.

use super::sig::*;
// Types of signatures are values (`String` the CEL type); in type position `String` is Rust's.
use super::{Call, Registry, non_negative};
use crate::cel::eval::EvalError;
use crate::cel::node::RegexFunction;
use crate::cel::value::Value;
use std::string::String;

/// Compiled patterns larger than this are refused (RE2's own default is 8 MB).
const SIZE_LIMIT: usize = 4 << 20;

pub(crate) fn register(r: &mut Registry) {
    r.member("find", find, &[(&[String, String], String)]);
    r.member(
        "findAll",
        find_all,
        &[
            (&[String, String], list(String)),
            (&[String, String, Int], list(String)),
        ],
    );
}

/// Compiles a pattern, or says why not (in the words the load error shows).
pub(crate) fn compile(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(&ascii_perl_classes(pattern))
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))
}

/// RE2's Perl classes are ASCII (`\w` is `[0-9A-Za-z_]`, `\d` is `[0-9]`, `\s` is
/// `[\t\n\f\r ]`, `\b` an ASCII word boundary) where Rust's `regex` makes them Unicode: the
/// pattern is rewritten so that they mean what they mean in the API server. (Besides the
/// meaning, a Unicode `\w` repeated `{0,127}` times compiles to a far larger automaton.)
/// Nested classes keep the rewrite valid inside brackets (`[\w.-]` is `[[0-9A-Za-z_].-]`).
fn ascii_perl_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(next) = chars.next() else {
            out.push(c);
            break;
        };
        match next {
            'd' => out.push_str("[0-9]"),
            'D' => out.push_str("[^0-9]"),
            'w' => out.push_str("[0-9A-Za-z_]"),
            'W' => out.push_str("[^0-9A-Za-z_]"),
            's' => out.push_str("[\\t\\n\\f\\r ]"),
            'S' => out.push_str("[^\\t\\n\\f\\r ]"),
            'b' => out.push_str("(?-u:\\b)"),
            'B' => out.push_str("(?-u:\\B)"),
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    out
}

/// cel-go's cost of matching: a tenth of the text's length, times a quarter of the
/// pattern's (the pattern's size stands for the size of its automaton).
pub(crate) fn charge(call: &mut Call<'_>, text: &str, pattern: &str) -> Result<(), EvalError> {
    let text_cost = (1 + text.len() as u64).div_ceil(10);
    let pattern_cost = (pattern.len() as u64).div_ceil(4).max(1);
    call.charge(text_cost.saturating_mul(pattern_cost))
}

impl RegexFunction {
    pub(crate) fn name(self) -> &'static str {
        match self {
            RegexFunction::Matches => "matches",
            RegexFunction::Find => "find",
            RegexFunction::FindAll => "findAll",
        }
    }
}

/// A regex function applied to `target` with a compiled pattern (`limit`: `findAll`'s).
pub(crate) fn apply<'a>(
    call: &mut Call<'_>,
    function: RegexFunction,
    regex: &regex::Regex,
    target: Value<'a>,
    limit: Option<Value<'a>>,
) -> Result<Value<'a>, EvalError> {
    let Value::String(text) = &target else {
        return call.no_overload(&[target]);
    };
    charge(call, text, regex.as_str())?;
    Ok(match function {
        RegexFunction::Matches => Value::Bool(regex.is_match(text)),
        RegexFunction::Find => Value::string(regex.find(text).map_or("", |m| m.as_str())),
        RegexFunction::FindAll => {
            let max = match limit {
                None => usize::MAX,
                Some(Value::Int(n)) if n < 0 => usize::MAX,
                Some(Value::Int(n)) => non_negative(n, "findAll limit")?,
                Some(other) => return call.no_overload(&[target.clone(), other]),
            };
            Value::list(
                regex
                    .find_iter(text)
                    .take(max)
                    .map(|m| Value::string(m.as_str()))
                    .collect(),
            )
        }
    })
}

fn dynamic<'a>(
    call: &mut Call<'_>,
    args: &mut [Value<'a>],
    function: RegexFunction,
) -> Result<Value<'a>, EvalError> {
    let Value::String(pattern) = &args[1] else {
        return call.no_overload(args);
    };
    let regex = compile(pattern).map_err(EvalError::message)?;
    let limit = args.get(2).cloned();
    apply(call, function, &regex, args[0].clone(), limit)
}

fn find<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    dynamic(call, args, RegexFunction::Find)
}

fn find_all<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    dynamic(call, args, RegexFunction::FindAll)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perl_classes_are_ascii_as_in_re2() {
        assert!(compile(r"^\w+$").unwrap().is_match("abc_1"));
        assert!(!compile(r"^\w+$").unwrap().is_match("é"));
        assert!(
            !compile(r"^\d$").unwrap().is_match("٣"),
            "an Arabic-Indic digit is no \\d"
        );
        assert!(compile(r"^[\w.-]+$").unwrap().is_match("a.b-c"));
        assert!(!compile(r"^[^\w]$").unwrap().is_match("a"));
        assert!(compile(r"a\sb").unwrap().is_match("a b"));
        assert!(!compile(r"a\sb").unwrap().is_match("a\u{a0}b"));
        assert!(compile(r"\bcat\b").unwrap().is_match("a cat."));
        assert!(
            compile(r"\\w").unwrap().is_match("\\w"),
            "an escaped backslash stays"
        );
        // Kubescape C-0075's tag pattern: too large as a Unicode automaton.
        assert!(compile(r":[\w][\w.-]{0,127}(\/)?").is_ok());
    }
}
