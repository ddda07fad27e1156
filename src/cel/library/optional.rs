//! Optional values (`cel.OptionalTypes()`, latest version, as the API server enables it):
//! `optional.of`, `optional.ofNonZeroValue`, `optional.none`, `value`, `hasValue`, `or`,
//! `orValue`, a list's `first` and `last`, and `optional.unwrap` / `unwrapOpt`. The syntax
//! (`a.?b`, `a[?b]`, `[?x]`, `{?k: v}`) and the `optMap`/`optFlatMap` macros are in the
//! compiler and the evaluator; `or` and `orValue` evaluate their argument only when needed,
//! which the compiler arranges too.

use super::sig::*;
use super::{Call, Registry, take};
use crate::cel::eval::EvalError;
use crate::cel::value::Value;

pub(crate) fn register(r: &mut Registry) {
    r.global("optional.of", of, &[(&[a()], opt(a()))]);
    r.global(
        "optional.ofNonZeroValue",
        of_non_zero,
        &[(&[a()], opt(a()))],
    );
    r.global("optional.none", none, &[(&[], opt(Dyn))]);
    r.member("value", value, &[(&[opt(a())], a())]);
    r.member("hasValue", has_value, &[(&[opt(a())], Bool)]);
    r.member("or", or, &[(&[opt(a()), opt(a())], opt(a()))]);
    r.member("orValue", or_value, &[(&[opt(a()), a()], a())]);
    r.member("first", first, &[(&[list(a())], opt(a()))]);
    r.member("last", last, &[(&[list(a())], opt(a()))]);
    r.global("optional.unwrap", unwrap, &[(&[list(opt(a()))], list(a()))]);
    r.member("unwrapOpt", unwrap, &[(&[list(opt(a()))], list(a()))]);
}

fn of<'a>(_: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    Ok(Value::optional(Some(take(args, 0))))
}

/// Whether a value is its type's zero value (`ofNonZeroValue` gives none for those).
fn is_zero(v: &Value<'_>) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Int(i) => *i == 0,
        Value::Uint(u) => *u == 0,
        Value::Double(d) => *d == 0.0,
        Value::String(s) => s.is_empty(),
        Value::Bytes(b) => b.is_empty(),
        Value::List(l) => l.is_empty(),
        Value::Map(m) => m.is_empty(),
        Value::Optional(o) => o.is_none(),
        Value::Duration(d) => d.0 == 0,
        Value::Timestamp(t) => t.0 == 0,
        _ => false,
    }
}

fn of_non_zero<'a>(_: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let v = take(args, 0);
    Ok(Value::optional((!is_zero(&v)).then_some(v)))
}

fn none<'a>(_: &mut Call<'_>, _: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    Ok(Value::Optional(None))
}

fn value<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match &args[0] {
        Value::Optional(Some(v)) => Ok((**v).clone()),
        Value::Optional(None) => Err(EvalError::message("optional.none() dereference")),
        _ => call.no_overload(args),
    }
}

fn has_value<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match &args[0] {
        Value::Optional(o) => Ok(Value::Bool(o.is_some())),
        _ => call.no_overload(args),
    }
}

/// `x.or(y)` once both are known (the evaluator evaluates `y` only when `x` is none).
pub(crate) fn or<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match (&args[0], &args[1]) {
        (Value::Optional(Some(_)), _) => Ok(take(args, 0)),
        (Value::Optional(None), Value::Optional(_)) => Ok(take(args, 1)),
        _ => call.no_overload(args),
    }
}

/// `x.orValue(y)` once both are known.
pub(crate) fn or_value<'a>(
    call: &mut Call<'_>,
    args: &mut [Value<'a>],
) -> Result<Value<'a>, EvalError> {
    match &args[0] {
        Value::Optional(Some(v)) => Ok((**v).clone()),
        Value::Optional(None) => Ok(take(args, 1)),
        _ => call.no_overload(args),
    }
}

fn first<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match &args[0] {
        Value::List(l) => Ok(Value::optional(l.get(0))),
        _ => call.no_overload(args),
    }
}

fn last<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match &args[0] {
        Value::List(l) => Ok(Value::optional(
            l.len().checked_sub(1).and_then(|i| l.get(i)),
        )),
        _ => call.no_overload(args),
    }
}

fn unwrap<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let Value::List(list) = &args[0] else {
        return call.no_overload(args);
    };
    call.charge(list.len() as u64)?;
    let mut out = Vec::with_capacity(list.len());
    for item in list.iter() {
        match item {
            Value::Optional(Some(v)) => out.push((*v).clone()),
            Value::Optional(None) => {}
            other => {
                return Err(EvalError::message(format!(
                    "optional.unwrap: a list element is a {}, not an optional",
                    other.type_name().as_str()
                )));
            }
        }
    }
    Ok(Value::list(out))
}
