//! cel-go's sets extension (`ext.Sets`): `sets.contains`, `sets.equivalent` and
//! `sets.intersects` over lists, with CEL equality (so `1` and `1.0` are the same element).

use super::sig::*;
use super::{Call, Registry};
use crate::cel::eval::EvalError;
use crate::cel::value::{List, Value};

pub(crate) fn register(r: &mut Registry) {
    let pair: &[(&[crate::cel::types::Type], crate::cel::types::Type)] =
        &[(&[list(a()), list(a())], Bool)];
    r.global("sets.contains", contains, pair);
    r.global("sets.equivalent", equivalent, pair);
    r.global("sets.intersects", intersects, pair);
}

fn lists<'a>(call: &mut Call<'_>, args: &[Value<'a>]) -> Result<(List<'a>, List<'a>), EvalError> {
    match (&args[0], &args[1]) {
        (Value::List(x), Value::List(y)) => {
            // Each element of one is looked for in the other.
            call.charge((x.len() as u64).saturating_mul(y.len() as u64))?;
            Ok((x.clone(), y.clone()))
        }
        _ => call.no_overload(args),
    }
}

/// Whether every element of `sub` is in `of`.
fn all_in(sub: &List<'_>, of: &List<'_>) -> bool {
    sub.iter().all(|x| of.iter().any(|y| x.equals(&y)))
}

fn contains<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let (x, y) = lists(call, args)?;
    Ok(Value::Bool(all_in(&y, &x)))
}

fn equivalent<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let (x, y) = lists(call, args)?;
    Ok(Value::Bool(all_in(&x, &y) && all_in(&y, &x)))
}

fn intersects<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let (x, y) = lists(call, args)?;
    Ok(Value::Bool(
        x.iter().any(|a| y.iter().any(|b| a.equals(&b))),
    ))
}
