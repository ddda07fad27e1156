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
    regex::RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))
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
