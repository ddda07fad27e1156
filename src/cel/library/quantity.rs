//! Kubernetes' quantity library (`k8s.io/apiserver/pkg/cel/library/quantity.go`):
//! `quantity`, `isQuantity`, `sign`, `isInteger`, `asInteger`, `asApproximateFloat`, `add`,
//! `sub`, `isGreaterThan`, `isLessThan`, `compareTo`, and `==` by value (`quantity('1') ==
//! quantity('1000m')`). Quantities are portier's own ([`crate::policy::quantity`]): exact, in
//! nano-units, with the API's grammar.

use std::cmp::Ordering;

use super::sig::*;
use super::{Call, Registry};
use crate::cel::eval::EvalError;
use crate::cel::value::{TypeName, Value};
use crate::policy::quantity::Quantity;

const NANOS: i128 = 1_000_000_000;

pub(crate) fn register(r: &mut Registry) {
    let q = || opaque(TypeName::Quantity);
    r.global("quantity", to_quantity, &[(&[String], q())]);
    r.global("isQuantity", is_quantity, &[(&[String], Bool)]);
    r.member("sign", sign, &[(&[q()], Int)]);
    r.member("isInteger", is_integer, &[(&[q()], Bool)]);
    r.member("asInteger", as_integer, &[(&[q()], Int)]);
    r.member("asApproximateFloat", as_float, &[(&[q()], Double)]);
    r.member("add", add, &[(&[q(), q()], q()), (&[q(), Int], q())]);
    r.member("sub", sub, &[(&[q(), q()], q()), (&[q(), Int], q())]);
    r.member("isGreaterThan", compare, &[(&[q(), q()], Bool)]);
    r.member("isLessThan", compare, &[(&[q(), q()], Bool)]);
    r.member("compareTo", compare, &[(&[q(), q()], Int)]);
}

fn to_quantity<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let Value::String(s) = &args[0] else {
        return call.no_overload(args);
    };
    Quantity::parse(s)
        .map(Value::Quantity)
        .map_err(|e| EvalError::message(e.to_string()))
}

fn is_quantity<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let Value::String(s) = &args[0] else {
        return call.no_overload(args);
    };
    Ok(Value::Bool(Quantity::parse(s).is_ok()))
}

fn quantity(call: &Call<'_>, args: &[Value<'_>]) -> Result<Quantity, EvalError> {
    match &args[0] {
        Value::Quantity(q) => Ok(*q),
        _ => call.no_overload(args),
    }
}

fn sign<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let q = quantity(call, args)?;
    Ok(Value::Int(q.nanos().signum() as i64))
}

/// The value as an `int64` when it is a whole number that fits (the API's `AsInt64`).
fn as_i64(q: Quantity) -> Option<i64> {
    (q.nanos() % NANOS == 0)
        .then(|| i64::try_from(q.nanos() / NANOS).ok())
        .flatten()
}

fn is_integer<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let q = quantity(call, args)?;
    Ok(Value::Bool(as_i64(q).is_some()))
}

fn as_integer<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let q = quantity(call, args)?;
    as_i64(q)
        .map(Value::Int)
        .ok_or_else(|| EvalError::message("cannot convert value to integer"))
}

fn as_float<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let q = quantity(call, args)?;
    Ok(Value::Double(q.nanos() as f64 / NANOS as f64))
}

/// The second operand of `add`/`sub` in nano-units: a quantity or an int.
fn operand(call: &Call<'_>, args: &[Value<'_>]) -> Result<i128, EvalError> {
    match &args[1] {
        Value::Quantity(q) => Ok(q.nanos()),
        Value::Int(i) => Ok(i128::from(*i) * NANOS),
        _ => call.no_overload(args),
    }
}

fn from_nanos<'a>(nanos: Option<i128>) -> Result<Value<'a>, EvalError> {
    nanos
        .map(|n| Value::Quantity(Quantity::from_nanos(n)))
        .ok_or_else(|| EvalError::message("quantity overflow"))
}

fn add<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let q = quantity(call, args)?;
    let other = operand(call, args)?;
    from_nanos(q.nanos().checked_add(other))
}

fn sub<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let q = quantity(call, args)?;
    let other = operand(call, args)?;
    from_nanos(q.nanos().checked_sub(other))
}

fn compare<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let (Value::Quantity(x), Value::Quantity(y)) = (&args[0], &args[1]) else {
        return call.no_overload(args);
    };
    let order = x.cmp(y);
    Ok(match call.function {
        "isGreaterThan" => Value::Bool(order == Ordering::Greater),
        "isLessThan" => Value::Bool(order == Ordering::Less),
        _ => Value::Int(order as i64),
    })
}
