//! The CEL standard library: operators, `size`, the string predicates, `matches` with a
//! pattern computed at run time, and the type conversions.

use std::cmp::Ordering;
use std::rc::Rc;

use super::sig::*;
use super::{Call, Registry, take};
use crate::cel::eval::EvalError;
use crate::cel::types::Type;
use crate::cel::value::Value;

pub(crate) fn register(r: &mut Registry) {
    let numbers = [Int, Uint, Double];
    let mut add: Vec<(&[Type], Type)> = Vec::new();
    let pairs: Vec<[Type; 2]> = vec![
        [Int, Int],
        [Uint, Uint],
        [Double, Double],
        [String, String],
        [Bytes, Bytes],
        [list(a()), list(a())],
        [Duration, Duration],
        [Timestamp, Duration],
        [Duration, Timestamp],
    ];
    let results = [
        Int,
        Uint,
        Double,
        String,
        Bytes,
        list(a()),
        Duration,
        Timestamp,
        Timestamp,
    ];
    for (p, res) in pairs.iter().zip(results.iter()) {
        add.push((p.as_slice(), res.clone()));
    }
    r.global("_+_", plus, &add);

    let sub_pairs: Vec<[Type; 2]> = vec![
        [Int, Int],
        [Uint, Uint],
        [Double, Double],
        [Duration, Duration],
        [Timestamp, Timestamp],
        [Timestamp, Duration],
    ];
    let sub_results = [Int, Uint, Double, Duration, Duration, Timestamp];
    let sub: Vec<(&[Type], Type)> = sub_pairs
        .iter()
        .zip(sub_results.iter())
        .map(|(p, res)| (p.as_slice(), res.clone()))
        .collect();
    r.global("_-_", minus, &sub);

    let same: Vec<[Type; 2]> = numbers.iter().map(|t| [t.clone(), t.clone()]).collect();
    let arith: Vec<(&[Type], Type)> = same.iter().map(|p| (p.as_slice(), p[0].clone())).collect();
    r.global("_*_", times, &arith);
    r.global("_/_", divide, &arith);
    r.global("_%_", modulo, &arith[..2]);
    r.global("-_", negate, &[(&[Int], Int), (&[Double], Double)]);
    r.global("!_", not, &[(&[Bool], Bool)]);

    r.global("_==_", equals, &[(&[a(), a()], Bool)]);
    r.global("_!=_", not_equals, &[(&[a(), a()], Bool)]);

    // Orderable pairs, the numeric ones across types (cel.CrossTypeNumericComparisons).
    let mut ordered: Vec<[Type; 2]> = Vec::new();
    for x in &numbers {
        for y in &numbers {
            ordered.push([x.clone(), y.clone()]);
        }
    }
    for t in [String, Bytes, Bool, Duration, Timestamp] {
        ordered.push([t.clone(), t]);
    }
    let ordered: Vec<(&[Type], Type)> = ordered.iter().map(|p| (p.as_slice(), Bool)).collect();
    r.global("_<_", less, &ordered);
    r.global("_<=_", less_equals, &ordered);
    r.global("_>_", greater, &ordered);
    r.global("_>=_", greater_equals, &ordered);

    r.global(
        "@in",
        contained,
        &[(&[a(), list(a())], Bool), (&[a(), map(a(), b())], Bool)],
    );

    let sizes: [(&[Type], Type); 4] = [
        (&[String], Int),
        (&[Bytes], Int),
        (&[list(a())], Int),
        (&[map(a(), b())], Int),
    ];
    r.global("size", size, &sizes);
    r.member("size", size, &sizes);

    r.member("contains", contains, &[(&[String, String], Bool)]);
    r.member("startsWith", starts_with, &[(&[String, String], Bool)]);
    r.member("endsWith", ends_with, &[(&[String, String], Bool)]);
    r.global("matches", matches, &[(&[String, String], Bool)]);
    r.member("matches", matches, &[(&[String, String], Bool)]);

    r.global(
        "int",
        to_int,
        &[
            (&[Int], Int),
            (&[Uint], Int),
            (&[Double], Int),
            (&[String], Int),
            (&[Timestamp], Int),
        ],
    );
    r.global(
        "uint",
        to_uint,
        &[
            (&[Uint], Uint),
            (&[Int], Uint),
            (&[Double], Uint),
            (&[String], Uint),
        ],
    );
    r.global(
        "double",
        to_double,
        &[
            (&[Double], Double),
            (&[Int], Double),
            (&[Uint], Double),
            (&[String], Double),
        ],
    );
    r.global(
        "string",
        to_string,
        &[
            (&[String], String),
            (&[Int], String),
            (&[Uint], String),
            (&[Double], String),
            (&[Bool], String),
            (&[Bytes], String),
            (&[Timestamp], String),
            (&[Duration], String),
        ],
    );
    r.global("bytes", to_bytes, &[(&[Bytes], Bytes), (&[String], Bytes)]);
    r.global("bool", to_bool, &[(&[Bool], Bool), (&[String], Bool)]);
    r.global("dyn", to_dyn, &[(&[a()], Dyn)]);
    r.global("type", type_of, &[(&[a()], Type::Type)]);
}

pub(crate) fn plus<'a>(
    call: &mut Call<'_>,
    args: &mut [Value<'a>],
) -> Result<Value<'a>, EvalError> {
    match (&args[0], &args[1]) {
        (Value::Int(x), Value::Int(y)) => x
            .checked_add(*y)
            .map(Value::Int)
            .ok_or(EvalError::IntOverflow),
        (Value::Uint(x), Value::Uint(y)) => x
            .checked_add(*y)
            .map(Value::Uint)
            .ok_or(EvalError::UintOverflow),
        (Value::Double(x), Value::Double(y)) => Ok(Value::Double(x + y)),
        (Value::String(x), Value::String(y)) => {
            call.charge_traversal(x.len() + y.len())?;
            let mut s = std::string::String::with_capacity(x.len() + y.len());
            s.push_str(x);
            s.push_str(y);
            Ok(Value::string(s))
        }
        (Value::Bytes(x), Value::Bytes(y)) => {
            call.charge_traversal(x.len() + y.len())?;
            let mut b = Vec::with_capacity(x.len() + y.len());
            b.extend_from_slice(x);
            b.extend_from_slice(y);
            Ok(Value::Bytes(Rc::from(b)))
        }
        (Value::List(x), Value::List(y)) => {
            call.charge_traversal(x.len() + y.len())?;
            if y.is_empty() {
                return Ok(args[0].clone());
            }
            if x.is_empty() {
                return Ok(args[1].clone());
            }
            let mut items = x.to_vec();
            items.extend(y.iter());
            Ok(Value::list(items))
        }
        (Value::Duration(x), Value::Duration(y)) => super::time::duration(x.0 + y.0),
        (Value::Timestamp(t), Value::Duration(d)) | (Value::Duration(d), Value::Timestamp(t)) => {
            super::time::timestamp(t.0 + d.0)
        }
        _ => call.no_overload(args),
    }
}

fn minus<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match (&args[0], &args[1]) {
        (Value::Int(x), Value::Int(y)) => x
            .checked_sub(*y)
            .map(Value::Int)
            .ok_or(EvalError::IntOverflow),
        (Value::Uint(x), Value::Uint(y)) => x
            .checked_sub(*y)
            .map(Value::Uint)
            .ok_or(EvalError::UintOverflow),
        (Value::Double(x), Value::Double(y)) => Ok(Value::Double(x - y)),
        (Value::Duration(x), Value::Duration(y)) => super::time::duration(x.0 - y.0),
        (Value::Timestamp(x), Value::Timestamp(y)) => super::time::duration(x.0 - y.0),
        (Value::Timestamp(t), Value::Duration(d)) => super::time::timestamp(t.0 - d.0),
        _ => call.no_overload(args),
    }
}

fn times<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match (&args[0], &args[1]) {
        (Value::Int(x), Value::Int(y)) => x
            .checked_mul(*y)
            .map(Value::Int)
            .ok_or(EvalError::IntOverflow),
        (Value::Uint(x), Value::Uint(y)) => x
            .checked_mul(*y)
            .map(Value::Uint)
            .ok_or(EvalError::UintOverflow),
        (Value::Double(x), Value::Double(y)) => Ok(Value::Double(x * y)),
        _ => call.no_overload(args),
    }
}

fn divide<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match (&args[0], &args[1]) {
        (Value::Int(_), Value::Int(0)) | (Value::Uint(_), Value::Uint(0)) => {
            Err(EvalError::DivisionByZero)
        }
        (Value::Int(x), Value::Int(y)) => x
            .checked_div(*y)
            .map(Value::Int)
            .ok_or(EvalError::IntOverflow),
        (Value::Uint(x), Value::Uint(y)) => Ok(Value::Uint(x / y)),
        (Value::Double(x), Value::Double(y)) => Ok(Value::Double(x / y)),
        _ => call.no_overload(args),
    }
}

fn modulo<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match (&args[0], &args[1]) {
        (Value::Int(_), Value::Int(0)) | (Value::Uint(_), Value::Uint(0)) => {
            Err(EvalError::ModulusByZero)
        }
        (Value::Int(x), Value::Int(y)) => x
            .checked_rem(*y)
            .map(Value::Int)
            .ok_or(EvalError::IntOverflow),
        (Value::Uint(x), Value::Uint(y)) => Ok(Value::Uint(x % y)),
        _ => call.no_overload(args),
    }
}

fn negate<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match &args[0] {
        Value::Int(x) => x
            .checked_neg()
            .map(Value::Int)
            .ok_or(EvalError::IntOverflow),
        Value::Double(x) => Ok(Value::Double(-x)),
        _ => call.no_overload(args),
    }
}

fn not<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match &args[0] {
        Value::Bool(b) => Ok(Value::Bool(!b)),
        _ => call.no_overload(args),
    }
}

fn equality_cost(call: &mut Call<'_>, a: &Value<'_>, b: &Value<'_>) -> Result<(), EvalError> {
    let size = a.cost_size().min(b.cost_size());
    call.charge_traversal(size as usize)
}

fn equals<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    equality_cost(call, &args[0], &args[1])?;
    Ok(Value::Bool(args[0].equals(&args[1])))
}

fn not_equals<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    equality_cost(call, &args[0], &args[1])?;
    Ok(Value::Bool(!args[0].equals(&args[1])))
}

/// Orders two arguments for a comparison operator: NaN compares false, unorderable types
/// have no overload.
fn order<'a>(
    call: &mut Call<'_>,
    args: &[Value<'a>],
    test: fn(Ordering) -> bool,
) -> Result<Value<'a>, EvalError> {
    if let (Value::String(x), Value::String(y)) = (&args[0], &args[1]) {
        call.charge_traversal(x.len().min(y.len()))?;
    }
    match args[0].compare(&args[1]) {
        Some(o) => Ok(Value::Bool(test(o))),
        None if is_nan(&args[0]) || is_nan(&args[1]) => {
            if is_number(&args[0]) && is_number(&args[1]) {
                Ok(Value::Bool(false))
            } else {
                call.no_overload(args)
            }
        }
        None => call.no_overload(args),
    }
}

fn is_nan(v: &Value<'_>) -> bool {
    matches!(v, Value::Double(d) if d.is_nan())
}

fn is_number(v: &Value<'_>) -> bool {
    matches!(v, Value::Int(_) | Value::Uint(_) | Value::Double(_))
}

fn less<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    order(call, args, Ordering::is_lt)
}

fn less_equals<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    order(call, args, Ordering::is_le)
}

fn greater<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    order(call, args, Ordering::is_gt)
}

fn greater_equals<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    order(call, args, Ordering::is_ge)
}

fn contained<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match &args[1] {
        Value::List(list) => {
            call.charge(list.len() as u64)?;
            Ok(Value::Bool(list.iter().any(|v| v.equals(&args[0]))))
        }
        Value::Map(map) => Ok(Value::Bool(map.get(&args[0]).is_some())),
        _ => call.no_overload(args),
    }
}

fn size<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let n = match &args[0] {
        Value::String(s) => s.chars().count(),
        Value::Bytes(b) => b.len(),
        Value::List(l) => l.len(),
        Value::Map(m) => m.len(),
        _ => return call.no_overload(args),
    };
    Ok(Value::Int(n as i64))
}

fn strings_pair<'v, 'a>(
    call: &mut Call<'_>,
    args: &'v [Value<'a>],
) -> Result<(&'v str, &'v str), EvalError> {
    match (&args[0], &args[1]) {
        (Value::String(x), Value::String(y)) => Ok((x, y)),
        _ => call.no_overload(args),
    }
}

fn contains<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let (s, sub) = strings_pair(call, args)?;
    let found = s.contains(sub);
    call.charge_traversal(s.len())?;
    Ok(Value::Bool(found))
}

fn starts_with<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let (s, prefix) = strings_pair(call, args)?;
    let found = s.starts_with(prefix);
    call.charge_traversal(prefix.len())?;
    Ok(Value::Bool(found))
}

fn ends_with<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let (s, suffix) = strings_pair(call, args)?;
    let found = s.ends_with(suffix);
    call.charge_traversal(suffix.len())?;
    Ok(Value::Bool(found))
}

/// `matches` with a pattern computed at run time: compiled on each call (a literal pattern
/// is compiled once, when the policy loads).
fn matches<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let (s, pattern) = strings_pair(call, args)?;
    let regex = super::regex::compile(pattern).map_err(EvalError::message)?;
    super::regex::charge(call, s, pattern)?;
    Ok(Value::Bool(regex.is_match(s)))
}

fn conversion_error<T>(from: &Value<'_>, to: &str) -> Result<T, EvalError> {
    Err(EvalError::message(format!(
        "type conversion error from '{}' to '{to}'",
        from.type_name().as_str()
    )))
}

fn to_int<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match &args[0] {
        Value::Int(i) => Ok(Value::Int(*i)),
        Value::Uint(u) => i64::try_from(*u)
            .map(Value::Int)
            .map_err(|_| EvalError::IntOverflow),
        Value::Double(d) => {
            // cel-go's doubleToInt64Checked: the bounds themselves are out of range.
            if d.is_nan() || *d <= i64::MIN as f64 || *d >= i64::MAX as f64 {
                return Err(EvalError::IntOverflow);
            }
            Ok(Value::Int(d.trunc() as i64))
        }
        Value::String(s) => match parse_go_int(s) {
            Some(i) => Ok(Value::Int(i)),
            None => conversion_error(&args[0], "int"),
        },
        Value::Timestamp(t) => Ok(Value::Int(t.0.div_euclid(1_000_000_000) as i64)),
        _ => call.no_overload(args),
    }
}

/// Go's `strconv.ParseInt(s, 10, 64)`: an optional sign and decimal digits.
fn parse_go_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn to_uint<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match &args[0] {
        Value::Uint(u) => Ok(Value::Uint(*u)),
        Value::Int(i) => u64::try_from(*i)
            .map(Value::Uint)
            .map_err(|_| EvalError::UintOverflow),
        Value::Double(d) => {
            if d.is_nan() || *d < 0.0 || *d >= 1.8446744073709552e19 {
                return Err(EvalError::UintOverflow);
            }
            Ok(Value::Uint(d.trunc() as u64))
        }
        Value::String(s) => {
            let digits = s.strip_prefix('+').unwrap_or(s);
            match digits.bytes().all(|b| b.is_ascii_digit()) && !digits.is_empty() {
                true => s
                    .parse::<u64>()
                    .map(Value::Uint)
                    .or_else(|_| conversion_error(&args[0], "uint")),
                false => conversion_error(&args[0], "uint"),
            }
        }
        _ => call.no_overload(args),
    }
}

fn to_double<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match &args[0] {
        Value::Double(d) => Ok(Value::Double(*d)),
        Value::Int(i) => Ok(Value::Double(*i as f64)),
        Value::Uint(u) => Ok(Value::Double(*u as f64)),
        Value::String(s) => match s.parse::<f64>() {
            Ok(d) => Ok(Value::Double(d)),
            Err(_) => conversion_error(&args[0], "double"),
        },
        _ => call.no_overload(args),
    }
}

fn to_string<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    Ok(match &args[0] {
        Value::String(_) => take(args, 0),
        Value::Int(i) => Value::string(i.to_string()),
        Value::Uint(u) => Value::string(u.to_string()),
        Value::Double(d) => Value::string(super::strings::format_double(*d)),
        Value::Bool(b) => Value::string(b.to_string()),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => {
                call.charge_traversal(s.len())?;
                Value::string(s)
            }
            Err(_) => return conversion_error(&args[0], "string"),
        },
        Value::Timestamp(t) => Value::string(super::time::format_timestamp(*t)),
        Value::Duration(d) => Value::string(super::time::format_duration(*d)),
        _ => return call.no_overload(args),
    })
}

fn to_bytes<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match &args[0] {
        Value::Bytes(_) => Ok(take(args, 0)),
        Value::String(s) => {
            call.charge_traversal(s.len())?;
            Ok(Value::Bytes(Rc::from(s.as_bytes())))
        }
        _ => call.no_overload(args),
    }
}

fn to_bool<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    match &args[0] {
        Value::Bool(b) => Ok(Value::Bool(*b)),
        // Go's strconv.ParseBool.
        Value::String(s) => match &**s {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(Value::Bool(true)),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(Value::Bool(false)),
            _ => conversion_error(&args[0], "bool"),
        },
        _ => call.no_overload(args),
    }
}

fn to_dyn<'a>(_: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    Ok(take(args, 0))
}

fn type_of<'a>(_: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    Ok(Value::Type(args[0].type_name()))
}
