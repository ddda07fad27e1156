//! List functions: Kubernetes' lists library (`isSorted`, `sum`, `min`, `max`, `indexOf`,
//! `lastIndexOf`, `includes`; `k8s.io/apiserver/pkg/cel/library/lists.go`) and cel-go's lists
//! extension at version 3 (`slice`, `flatten`, `lists.range`, `distinct`, `reverse`, `sort`;
//! `sortBy` is a macro, in the compiler).

use std::cmp::Ordering;

use super::sig::*;
use super::{Call, Registry, take};
use crate::cel::eval::EvalError;
use crate::cel::types::Type;
use crate::cel::value::{List, Value};

pub(crate) fn register(r: &mut Registry) {
    let comparable = [Int, Uint, Double, Bool, Duration, Timestamp, String, Bytes];
    let sorted: Vec<[Type; 1]> = comparable.iter().map(|t| [list(t.clone())]).collect();
    r.member(
        "isSorted",
        is_sorted,
        &sorted
            .iter()
            .map(|p| (p.as_slice(), Bool))
            .collect::<Vec<_>>(),
    );
    let extremes: Vec<(&[Type], Type)> = sorted
        .iter()
        .zip(comparable.iter())
        .map(|(p, t)| (p.as_slice(), t.clone()))
        .collect();
    r.member("min", min, &extremes);
    r.member("max", max, &extremes);
    let summable = [Int, Uint, Double, Duration];
    let sums: Vec<[Type; 1]> = summable.iter().map(|t| [list(t.clone())]).collect();
    r.member(
        "sum",
        sum,
        &sums
            .iter()
            .zip(summable.iter())
            .map(|(p, t)| (p.as_slice(), t.clone()))
            .collect::<Vec<_>>(),
    );
    r.member("indexOf", index_of, &[(&[list(a()), a()], Int)]);
    r.member("lastIndexOf", last_index_of, &[(&[list(a()), a()], Int)]);
    r.member("includes", includes, &[(&[Dyn, Dyn], Bool)]);

    r.member("slice", slice, &[(&[list(a()), Int, Int], list(a()))]);
    r.member(
        "flatten",
        flatten,
        &[
            (&[list(list(a()))], list(a())),
            (&[list(Dyn), Int], list(Dyn)),
        ],
    );
    r.global("lists.range", range, &[(&[Int], list(Int))]);
    r.member("distinct", distinct, &[(&[list(a())], list(a()))]);
    r.member("reverse", reverse, &[(&[list(a())], list(a()))]);
    r.member(
        "sort",
        sort,
        &comparable
            .iter()
            .map(|t| [list(t.clone())])
            .collect::<Vec<_>>()
            .iter()
            .map(|p| (p.as_slice(), p[0].clone()))
            .collect::<Vec<_>>(),
    );
}

fn list_arg<'a>(call: &Call<'_>, args: &[Value<'a>]) -> Result<List<'a>, EvalError> {
    match &args[0] {
        Value::List(l) => Ok(l.clone()),
        _ => call.no_overload(args),
    }
}

/// The order of two elements, or the error cel-go gives for elements it cannot compare.
fn ordered(a: &Value<'_>, b: &Value<'_>) -> Result<Ordering, EvalError> {
    a.compare(b).ok_or_else(|| {
        EvalError::NoSuchOverload(format!(
            "compare({}, {})",
            a.type_name().as_str(),
            b.type_name().as_str()
        ))
    })
}

fn is_sorted<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let list = list_arg(call, args)?;
    call.charge(list.len() as u64)?;
    let mut previous: Option<Value<'a>> = None;
    for item in list.iter() {
        if let Some(p) = &previous
            && ordered(p, &item)? == Ordering::Greater
        {
            return Ok(Value::Bool(false));
        }
        previous = Some(item);
    }
    Ok(Value::Bool(true))
}

fn extreme<'a>(
    call: &mut Call<'_>,
    args: &[Value<'a>],
    prefer: Ordering,
) -> Result<Value<'a>, EvalError> {
    let list = list_arg(call, args)?;
    call.charge(list.len() as u64)?;
    let mut best: Option<Value<'a>> = None;
    for item in list.iter() {
        best = Some(match best {
            None => item,
            Some(b) if ordered(&b, &item)? == prefer => item,
            Some(b) => b,
        });
    }
    best.ok_or_else(|| EvalError::message(format!("{} called on empty list", call.function)))
}

fn min<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    extreme(call, args, Ordering::Greater)
}

fn max<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    extreme(call, args, Ordering::Less)
}

fn sum<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let list = list_arg(call, args)?;
    call.charge(list.len() as u64)?;
    let mut total: Option<Value<'a>> = None;
    for item in list.iter() {
        total = Some(match total {
            None => match item {
                Value::Int(_) | Value::Uint(_) | Value::Double(_) | Value::Duration(_) => item,
                other => return Err(EvalError::no_overload("sum", &[other])),
            },
            Some(t) => {
                let mut pair = [t, item];
                super::core::plus(call, &mut pair)?
            }
        });
    }
    Ok(total.unwrap_or(Value::Int(0)))
}

fn index_of<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let list = list_arg(call, args)?;
    call.charge(list.len() as u64)?;
    let found = list.iter().position(|v| v.equals(&args[1]));
    Ok(Value::Int(found.map_or(-1, |i| i as i64)))
}

fn last_index_of<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let list = list_arg(call, args)?;
    call.charge(list.len() as u64)?;
    let found = (0..list.len())
        .rev()
        .find(|&i| list.get(i).is_some_and(|v| v.equals(&args[1])));
    Ok(Value::Int(found.map_or(-1, |i| i as i64)))
}

fn includes<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    if let Value::List(list) = &args[0] {
        call.charge(list.len() as u64)?;
        return Ok(Value::Bool(list.iter().any(|v| v.equals(&args[1]))));
    }
    Ok(Value::Bool(args[0].equals(&args[1])))
}

fn slice<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let list = list_arg(call, args)?;
    let (Value::Int(start), Value::Int(end)) = (&args[1], &args[2]) else {
        return call.no_overload(args);
    };
    let (start, end) = (*start, *end);
    if start < 0 || end < 0 {
        return Err(EvalError::message(format!(
            "cannot slice({start}, {end}), negative indexes not supported"
        )));
    }
    if start > end {
        return Err(EvalError::message(format!(
            "cannot slice({start}, {end}), start index must be less than or equal to end index"
        )));
    }
    if end as usize > list.len() {
        return Err(EvalError::message(format!(
            "cannot slice({start}, {end}), list is length {}",
            list.len()
        )));
    }
    call.charge((end - start) as u64)?;
    Ok(Value::list(
        (start as usize..end as usize)
            .filter_map(|i| list.get(i))
            .collect(),
    ))
}

fn flatten_into<'a>(
    call: &mut Call<'_>,
    list: &List<'a>,
    depth: i64,
    out: &mut Vec<Value<'a>>,
) -> Result<(), EvalError> {
    call.charge(list.len() as u64)?;
    for item in list.iter() {
        match item {
            Value::List(inner) if depth > 0 => flatten_into(call, &inner, depth - 1, out)?,
            other => out.push(other),
        }
    }
    Ok(())
}

fn flatten<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let list = list_arg(call, args)?;
    let depth = match args.get(1) {
        None => 1,
        Some(Value::Int(d)) if *d < 0 => {
            return Err(EvalError::message("level must be non-negative"));
        }
        // Deeper than any value can nest.
        Some(Value::Int(d)) => (*d).min(256),
        Some(_) => return call.no_overload(args),
    };
    let mut out = Vec::with_capacity(list.len());
    flatten_into(call, &list, depth, &mut out)?;
    Ok(Value::list(out))
}

fn range<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let Value::Int(n) = &args[0] else {
        return call.no_overload(args);
    };
    let n = (*n).max(0);
    call.charge(n as u64)?;
    Ok(Value::list((0..n).map(Value::Int).collect()))
}

fn distinct<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let list = list_arg(call, args)?;
    let n = list.len() as u64;
    call.charge(n.saturating_mul(n).div_ceil(10))?;
    let mut out: Vec<Value<'a>> = Vec::new();
    for item in list.iter() {
        if !out.iter().any(|v| v.equals(&item)) {
            out.push(item);
        }
    }
    Ok(Value::list(out))
}

fn reverse<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let list = list_arg(call, args)?;
    call.charge(list.len() as u64)?;
    let mut items = list.to_vec();
    items.reverse();
    Ok(Value::list(items))
}

/// The elements can be sorted: all of one orderable type.
pub(crate) fn check_sortable(items: &[Value<'_>]) -> Result<(), EvalError> {
    let Some(first) = items.first() else {
        return Ok(());
    };
    if !first.is_orderable() {
        return Err(EvalError::message("list elements must be comparable"));
    }
    if items.iter().any(|v| v.type_name() != first.type_name()) {
        return Err(EvalError::message("list elements must have the same type"));
    }
    Ok(())
}

/// The cost of sorting `n` elements: n·log₂(n).
pub(crate) fn sort_cost(n: usize) -> u64 {
    let n = n as u64;
    n.saturating_mul(u64::from(64 - n.leading_zeros()))
}

fn sort<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let list = list_arg(call, args)?;
    let mut items = list.to_vec();
    check_sortable(&items)?;
    call.charge(sort_cost(items.len()))?;
    items.sort_by(|a, b| a.compare(b).unwrap_or(Ordering::Equal));
    let _ = take(args, 0);
    Ok(Value::list(items))
}
