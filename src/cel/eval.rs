//! Evaluating a compiled expression, counting its cost.
//!
//! Semantics follow cel-go as the API server runs it: `&&`, `||` and the `all`/`exists`
//! macros absorb an error when another operand decides the result; a missing map key, a
//! function applied to values of the wrong types, an integer overflow or a division by zero
//! are errors (which the policy's `failurePolicy` then handles); values of different types
//! are unequal rather than an error.
//!
//! Cost: every step adds to a meter, in the units of cel-go's runtime cost tracker (reading a
//! variable, a field or an element costs 1, a literal 0, a call 1 or, for functions whose work
//! grows with their input, a tenth of the characters or elements they go through, a list
//! literal 10, a map literal 30, each loop iteration 1 more), and the evaluation stops with
//! "operation cancelled: actual cost limit exceeded" as soon as the meter passes the limit,
//! [`PER_CALL_LIMIT`] per expression as in Kubernetes. The units are close to cel-go's but
//! not identical; the limit bounds work, whatever the input.

use std::cell::{Cell, RefCell};

use super::Program;
use super::library::Call;
use super::node::{Comprehension, Const, Loop, Node, RegexCall, Root};
use super::value::{List, Map, Str, Value};

/// The most cost units one expression may spend in one evaluation (Kubernetes'
/// `celconfig.PerCallLimit`).
pub const PER_CALL_LIMIT: u64 = 1_000_000;

/// The most cost units all the expressions of one policy may spend on one request
/// (Kubernetes' `celconfig.RuntimeCELCostBudget`).
pub const RUNTIME_BUDGET: u64 = 10_000_000;

/// Why an evaluation produced no value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("no such key: {0}")]
    NoSuchKey(String),
    /// A function or operator applied to values of types it has no overload for.
    #[error("no such overload: {0}")]
    NoSuchOverload(String),
    #[error("index '{index}' out of range in list size '{size}'")]
    IndexOutOfRange { index: i64, size: usize },
    #[error("integer overflow")]
    IntOverflow,
    #[error("unsigned integer overflow")]
    UintOverflow,
    #[error("division by zero")]
    DivisionByZero,
    #[error("modulus by zero")]
    ModulusByZero,
    /// The expression spent more than its cost limit: the evaluation is cancelled, and no
    /// `&&` or `||` absorbs it.
    #[error("operation cancelled: actual cost limit exceeded")]
    CostLimitExceeded,
    #[error("{0}")]
    Message(String),
}

impl EvalError {
    pub fn message(m: impl Into<String>) -> Self {
        EvalError::Message(m.into())
    }

    /// A function applied to values it has no overload for, naming their types.
    pub fn no_overload(function: &str, args: &[Value<'_>]) -> Self {
        let types: Vec<&str> = args.iter().map(|a| a.type_name().as_str()).collect();
        EvalError::NoSuchOverload(format!("{function}({})", types.join(", ")))
    }

    fn is_fatal(&self) -> bool {
        matches!(self, EvalError::CostLimitExceeded)
    }
}

/// Counts cost units against a limit.
#[derive(Debug)]
pub struct Meter {
    spent: u64,
    limit: u64,
}

impl Meter {
    pub fn new(limit: u64) -> Self {
        Meter { spent: 0, limit }
    }

    pub fn charge(&mut self, units: u64) -> Result<(), EvalError> {
        self.spent = self.spent.saturating_add(units);
        if self.spent > self.limit {
            return Err(EvalError::CostLimitExceeded);
        }
        Ok(())
    }

    pub fn spent(&self) -> u64 {
        self.spent
    }
}

/// The values an expression's variables are bound to.
#[derive(Debug, Default, Clone)]
pub struct Activation<'a> {
    pub object: Value<'a>,
    pub old_object: Value<'a>,
    pub request: Value<'a>,
    pub params: Value<'a>,
    pub namespace_object: Value<'a>,
}

/// One evaluation of a policy's expressions: the activation, and the policy's variables,
/// each evaluated on first use and then remembered (as the API server's composition does).
pub struct Scope<'s, 'a> {
    activation: &'s Activation<'a>,
    variables: &'a [Program],
    cache: RefCell<Vec<Option<Result<Value<'a>, EvalError>>>>,
    variables_cost: Cell<u64>,
}

impl<'s, 'a> Scope<'s, 'a> {
    pub fn new(activation: &'s Activation<'a>, variables: &'a [Program]) -> Self {
        Scope {
            activation,
            variables,
            cache: RefCell::new(vec![None; variables.len()]),
            variables_cost: Cell::new(0),
        }
    }

    /// The cost of the variables evaluated since the last call.
    pub fn take_variables_cost(&self) -> u64 {
        self.variables_cost.replace(0)
    }

    fn variable(&self, index: usize) -> Result<Value<'a>, EvalError> {
        if let Some(Some(done)) = self.cache.borrow().get(index) {
            return done.clone();
        }
        let Some(program) = self.variables.get(index) else {
            return Err(EvalError::message(format!("no variable #{index}")));
        };
        let evaluated = program.evaluate(self);
        self.variables_cost
            .set(self.variables_cost.get().saturating_add(evaluated.cost));
        if let Some(slot) = self.cache.borrow_mut().get_mut(index) {
            *slot = Some(evaluated.value.clone());
        }
        evaluated.value
    }
}

/// What one evaluation of one expression produced, and what it cost (its variables' cost
/// excluded: see [`Scope::take_variables_cost`]).
#[derive(Debug)]
pub struct Evaluation<'a> {
    pub value: Result<Value<'a>, EvalError>,
    pub cost: u64,
}

pub(crate) fn evaluate<'a>(node: &'a Node, scope: &Scope<'_, 'a>) -> Evaluation<'a> {
    let mut eval = Eval {
        scope,
        locals: Vec::new(),
        meter: Meter::new(PER_CALL_LIMIT),
    };
    let value = eval.eval(node);
    Evaluation {
        value,
        cost: eval.meter.spent(),
    }
}

struct Eval<'e, 's, 'a> {
    scope: &'e Scope<'s, 'a>,
    /// The comprehension variables in scope, by slot.
    locals: Vec<Value<'a>>,
    meter: Meter,
}

/// Arguments of most calls fit here without allocating.
const INLINE_ARGS: usize = 4;

impl<'a> Eval<'_, '_, 'a> {
    fn eval(&mut self, node: &'a Node) -> Result<Value<'a>, EvalError> {
        match node {
            Node::Const(c) => Ok(constant(c)),
            Node::Root(root) => {
                self.meter.charge(1)?;
                let a = self.scope.activation;
                Ok(match root {
                    Root::Object => a.object.clone(),
                    Root::OldObject => a.old_object.clone(),
                    Root::Request => a.request.clone(),
                    Root::Params => a.params.clone(),
                    Root::NamespaceObject => a.namespace_object.clone(),
                })
            }
            Node::Local(slot) => {
                self.meter.charge(1)?;
                self.locals
                    .get(*slot)
                    .cloned()
                    .ok_or_else(|| EvalError::message("unbound comprehension variable"))
            }
            Node::Variable(index) => {
                self.meter.charge(1)?;
                self.scope.variable(*index)
            }
            Node::Select(operand, field) => {
                let target = self.eval(operand)?;
                self.meter.charge(1)?;
                select(target, field)
            }
            Node::OptSelect(operand, field) => {
                let target = self.eval(operand)?;
                self.meter.charge(1)?;
                opt_select(target, field)
            }
            Node::Has(operand, field) => {
                let target = self.eval(operand)?;
                has(&target, field)
            }
            Node::Index(pair) => {
                let target = self.eval(&pair[0])?;
                let key = self.eval(&pair[1])?;
                self.meter.charge(1)?;
                index(target, &key)
            }
            Node::OptIndex(pair) => {
                let target = self.eval(&pair[0])?;
                let key = self.eval(&pair[1])?;
                self.meter.charge(1)?;
                opt_index(target, &key)
            }
            Node::And(pair) => self.logic(pair, false),
            Node::Or(pair) => self.logic(pair, true),
            Node::Conditional(parts) => match self.eval(&parts[0])? {
                Value::Bool(true) => self.eval(&parts[1]),
                Value::Bool(false) => self.eval(&parts[2]),
                other => Err(EvalError::no_overload("_?_:_", &[other])),
            },
            Node::OptionalOr { value, parts } => {
                let name = if *value { "orValue" } else { "or" };
                let first = self.eval(&parts[0])?;
                self.meter.charge(1)?;
                match first {
                    Value::Optional(Some(v)) if *value => Ok((*v).clone()),
                    Value::Optional(Some(_)) => Ok(first),
                    Value::Optional(None) => {
                        let second = self.eval(&parts[1])?;
                        match (value, second) {
                            (true, v) => Ok(v),
                            (false, v @ Value::Optional(_)) => Ok(v),
                            (false, other) => Err(EvalError::no_overload(name, &[first, other])),
                        }
                    }
                    other => Err(EvalError::no_overload(name, &[other])),
                }
            }
            Node::Call(function, args) => {
                if args.len() <= INLINE_ARGS {
                    let mut values: [Value<'a>; INLINE_ARGS] = Default::default();
                    for (slot, arg) in values.iter_mut().zip(args.iter()) {
                        *slot = self.eval(arg)?;
                    }
                    self.meter.charge(1)?;
                    let mut call = Call::new(&mut self.meter, function.name);
                    function.invoke(&mut call, &mut values[..args.len()])
                } else {
                    let mut values = Vec::with_capacity(args.len());
                    for arg in args.iter() {
                        values.push(self.eval(arg)?);
                    }
                    self.meter.charge(1)?;
                    let mut call = Call::new(&mut self.meter, function.name);
                    function.invoke(&mut call, &mut values)
                }
            }
            Node::Regex(call) => self.regex(call),
            Node::List(elements, optional) => {
                self.meter.charge(10)?;
                let mut items = Vec::with_capacity(elements.len());
                for (i, element) in elements.iter().enumerate() {
                    let value = self.eval(element)?;
                    if optional.contains(&i) {
                        match value {
                            Value::Optional(Some(v)) => items.push((*v).clone()),
                            Value::Optional(None) => {}
                            other => {
                                return Err(EvalError::message(format!(
                                    "cannot initialize optional list element from non-optional value {}",
                                    other.type_name().as_str()
                                )));
                            }
                        }
                    } else {
                        items.push(value);
                    }
                }
                Ok(Value::list(items))
            }
            Node::Map(entries) => {
                self.meter.charge(30)?;
                let mut out: Vec<(Value<'a>, Value<'a>)> = Vec::with_capacity(entries.len());
                for (key, value, optional) in entries.iter() {
                    let key = self.eval(key)?;
                    if !matches!(
                        key,
                        Value::String(_) | Value::Int(_) | Value::Uint(_) | Value::Bool(_)
                    ) {
                        return Err(EvalError::message(format!(
                            "unsupported key type: {}",
                            key.type_name().as_str()
                        )));
                    }
                    let value = match (self.eval(value)?, optional) {
                        (Value::Optional(Some(v)), true) => (*v).clone(),
                        (Value::Optional(None), true) => continue,
                        (other, true) => {
                            return Err(EvalError::message(format!(
                                "cannot initialize optional entry from non-optional value {}",
                                other.type_name().as_str()
                            )));
                        }
                        (v, false) => v,
                    };
                    if out.iter().any(|(k, _)| k.equals(&key)) {
                        return Err(EvalError::message(format!(
                            "Failed with repeated key: {}",
                            super::library::strings::display(&key)
                        )));
                    }
                    out.push((key, value));
                }
                Ok(Value::map(out))
            }
            Node::Comprehension(c) => self.comprehension(c),
        }
    }

    /// `&&` (`or` false) and `||` (`or` true): the deciding value wins over an error in the
    /// other operand, as in cel-go.
    fn logic(&mut self, pair: &'a [Node; 2], or: bool) -> Result<Value<'a>, EvalError> {
        let left = self.eval(&pair[0]);
        match &left {
            Ok(Value::Bool(b)) if *b == or => return Ok(Value::Bool(or)),
            Err(e) if e.is_fatal() => return left,
            _ => {}
        }
        let right = self.eval(&pair[1]);
        match (left, right) {
            (_, Ok(Value::Bool(b))) if b == or => Ok(Value::Bool(or)),
            (_, Err(e)) if e.is_fatal() => Err(e),
            (Ok(Value::Bool(_)), Ok(Value::Bool(_))) => Ok(Value::Bool(!or)),
            (Err(e), _) | (_, Err(e)) => Err(e),
            (Ok(l), Ok(r)) => Err(EvalError::no_overload(
                if or { "_||_" } else { "_&&_" },
                &[l, r],
            )),
        }
    }

    fn regex(&mut self, call: &'a RegexCall) -> Result<Value<'a>, EvalError> {
        let target = self.eval(&call.target)?;
        let limit = match &call.limit {
            Some(node) => Some(self.eval(node)?),
            None => None,
        };
        self.meter.charge(1)?;
        let mut c = Call::new(&mut self.meter, call.function.name());
        super::library::regex::apply(&mut c, call.function, &call.regex, target, limit)
    }

    fn comprehension(&mut self, c: &'a Comprehension) -> Result<Value<'a>, EvalError> {
        let range = self.eval(&c.range)?;
        if matches!(c.kind, Loop::OptMap | Loop::OptFlatMap) {
            return self.opt_map(c, range);
        }
        let items = match &range {
            Value::List(list) => Items::List(list.clone()),
            Value::Map(map) => Items::Map(map.clone()),
            other => {
                return Err(EvalError::message(format!(
                    "cannot iterate over a value of type {}",
                    other.type_name().as_str()
                )));
            }
        };
        let result = self.run_loop(c, &items);
        self.locals.truncate(c.slot);
        result
    }

    fn opt_map(&mut self, c: &'a Comprehension, range: Value<'a>) -> Result<Value<'a>, EvalError> {
        let inner = match range {
            Value::Optional(None) => return Ok(Value::Optional(None)),
            Value::Optional(Some(v)) => (*v).clone(),
            other => return Err(EvalError::no_overload(c.kind.name(), &[other])),
        };
        self.bind(c.slot, inner, None);
        let result = self.eval(&c.body);
        self.locals.truncate(c.slot);
        let result = result?;
        match c.kind {
            Loop::OptFlatMap => match result {
                Value::Optional(_) => Ok(result),
                other => Err(EvalError::no_overload("optFlatMap", &[other])),
            },
            _ => Ok(Value::optional(Some(result))),
        }
    }

    fn bind(&mut self, slot: usize, first: Value<'a>, second: Option<Value<'a>>) {
        self.locals.truncate(slot);
        self.locals.push(first);
        if let Some(second) = second {
            self.locals.push(second);
        }
    }

    /// Binds the variables for element `i`: the element (the key, for a map) with one
    /// variable; the index and the element (the key and the value) with two.
    fn bind_item(&mut self, c: &Comprehension, items: &Items<'a>, i: usize) {
        match items {
            Items::List(list) => {
                let element = list.get(i).unwrap_or_default();
                if c.two_vars {
                    self.bind(c.slot, Value::Int(i as i64), Some(element));
                } else {
                    self.bind(c.slot, element, None);
                }
            }
            Items::Map(map) => {
                let (key, value) = map.entry(i).unwrap_or_default();
                if c.two_vars {
                    self.bind(c.slot, key, Some(value));
                } else {
                    self.bind(c.slot, key, None);
                }
            }
        }
    }

    /// The predicate of a filtering form, as a bool.
    fn test(&mut self, node: &'a Node, function: &str) -> Result<bool, EvalError> {
        match self.eval(node)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError::no_overload(function, &[other])),
        }
    }

    fn run_loop(
        &mut self,
        c: &'a Comprehension,
        items: &Items<'a>,
    ) -> Result<Value<'a>, EvalError> {
        let len = items.len();
        match c.kind {
            Loop::All | Loop::Exists => {
                let decisive = c.kind == Loop::Exists;
                let mut error = None;
                for i in 0..len {
                    self.meter.charge(1)?;
                    self.bind_item(c, items, i);
                    match self.eval(&c.body) {
                        Ok(Value::Bool(b)) if b == decisive => return Ok(Value::Bool(decisive)),
                        Ok(Value::Bool(_)) => {}
                        Ok(other) => {
                            error.get_or_insert(EvalError::no_overload(c.kind.name(), &[other]));
                        }
                        Err(e) if e.is_fatal() => return Err(e),
                        Err(e) => {
                            error.get_or_insert(e);
                        }
                    }
                }
                match error {
                    Some(e) => Err(e),
                    None => Ok(Value::Bool(!decisive)),
                }
            }
            Loop::ExistsOne => {
                let mut count = 0usize;
                for i in 0..len {
                    self.meter.charge(1)?;
                    self.bind_item(c, items, i);
                    if self.test(&c.body, "exists_one")? {
                        count += 1;
                    }
                }
                Ok(Value::Bool(count == 1))
            }
            Loop::Map | Loop::Filter => {
                let mut out = Vec::new();
                for i in 0..len {
                    self.meter.charge(2)?;
                    self.bind_item(c, items, i);
                    if let Some(filter) = &c.filter
                        && !self.test(filter, c.kind.name())?
                    {
                        continue;
                    }
                    if c.kind == Loop::Filter {
                        if self.test(&c.body, "filter")? {
                            out.push(self.locals[c.slot].clone());
                        }
                    } else {
                        out.push(self.eval(&c.body)?);
                    }
                }
                Ok(Value::list(out))
            }
            Loop::TransformMap | Loop::TransformMapEntry => {
                let mut out: Vec<(Value<'a>, Value<'a>)> = Vec::new();
                for i in 0..len {
                    self.meter.charge(2)?;
                    self.bind_item(c, items, i);
                    if let Some(filter) = &c.filter
                        && !self.test(filter, c.kind.name())?
                    {
                        continue;
                    }
                    let value = self.eval(&c.body)?;
                    if c.kind == Loop::TransformMap {
                        out.push((self.locals[c.slot].clone(), value));
                        continue;
                    }
                    let Value::Map(entry) = value else {
                        return Err(EvalError::no_overload("transformMapEntry", &[value]));
                    };
                    for (k, v) in entry.entries() {
                        if out.iter().any(|(existing, _)| existing.equals(&k)) {
                            return Err(EvalError::message(format!(
                                "insert failed: key {} already exists",
                                super::library::strings::display(&k)
                            )));
                        }
                        out.push((k, v));
                    }
                }
                Ok(Value::map(out))
            }
            Loop::SortBy => {
                let Items::List(list) = items else {
                    return Err(EvalError::message("sortBy needs a list"));
                };
                let mut keyed = Vec::with_capacity(len);
                for i in 0..len {
                    self.meter.charge(2)?;
                    self.bind_item(c, items, i);
                    let key = self.eval(&c.body)?;
                    keyed.push((key, list.get(i).unwrap_or_default()));
                }
                let keys: Vec<Value<'a>> = keyed.iter().map(|(k, _)| k.clone()).collect();
                super::library::lists::check_sortable(&keys)?;
                self.meter
                    .charge(super::library::lists::sort_cost(keyed.len()))?;
                keyed.sort_by(|(a, _), (b, _)| a.compare(b).unwrap_or(std::cmp::Ordering::Equal));
                Ok(Value::list(keyed.into_iter().map(|(_, v)| v).collect()))
            }
            Loop::OptMap | Loop::OptFlatMap => Err(EvalError::message("not a loop")),
        }
    }
}

enum Items<'a> {
    List(List<'a>),
    Map(Map<'a>),
}

impl Items<'_> {
    fn len(&self) -> usize {
        match self {
            Items::List(l) => l.len(),
            Items::Map(m) => m.len(),
        }
    }
}

impl Loop {
    fn name(self) -> &'static str {
        match self {
            Loop::All => "all",
            Loop::Exists => "exists",
            Loop::ExistsOne => "exists_one",
            Loop::Map => "map",
            Loop::Filter => "filter",
            Loop::TransformMap => "transformMap",
            Loop::TransformMapEntry => "transformMapEntry",
            Loop::SortBy => "sortBy",
            Loop::OptMap => "optMap",
            Loop::OptFlatMap => "optFlatMap",
        }
    }
}

fn constant<'a>(c: &'a Const) -> Value<'a> {
    match c {
        Const::Null => Value::Null,
        Const::Bool(b) => Value::Bool(*b),
        Const::Int(i) => Value::Int(*i),
        Const::Uint(u) => Value::Uint(*u),
        Const::Double(d) => Value::Double(*d),
        Const::String(s) => Value::String(Str::Borrowed(s)),
        Const::Bytes(b) => Value::Bytes(std::rc::Rc::from(&**b)),
        Const::Type(t) => Value::Type(*t),
    }
}

/// `target.field`: a map's value; on an optional, the optional of the field when present.
pub(crate) fn select<'a>(target: Value<'a>, field: &str) -> Result<Value<'a>, EvalError> {
    match target {
        Value::Map(map) => map
            .get_str(field)
            .ok_or_else(|| EvalError::NoSuchKey(field.to_owned())),
        Value::Optional(_) => opt_select(target, field),
        other => Err(EvalError::message(format!(
            "type '{}' does not support field selection",
            other.type_name().as_str()
        ))),
    }
}

/// `target.?field`: `optional.of(target.field)` when present, `optional.none()` otherwise.
pub(crate) fn opt_select<'a>(target: Value<'a>, field: &str) -> Result<Value<'a>, EvalError> {
    match target {
        Value::Map(map) => Ok(Value::optional(map.get_str(field))),
        Value::Optional(None) => Ok(Value::Optional(None)),
        Value::Optional(Some(inner)) => opt_select((*inner).clone(), field),
        other => Err(EvalError::message(format!(
            "type '{}' does not support field selection",
            other.type_name().as_str()
        ))),
    }
}

fn has(target: &Value<'_>, field: &str) -> Result<Value<'static>, EvalError> {
    match target {
        Value::Map(map) => Ok(Value::Bool(map.get_str(field).is_some())),
        other => Err(EvalError::message(format!(
            "invalid type for field selection: {}",
            other.type_name().as_str()
        ))),
    }
}

/// A list position from an index value: ints, uints and integral doubles.
fn position(key: &Value<'_>) -> Option<i64> {
    match key {
        Value::Int(i) => Some(*i),
        Value::Uint(u) => i64::try_from(*u).ok().or(Some(i64::MAX)),
        Value::Double(d) if d.fract() == 0.0 && d.is_finite() => Some(*d as i64),
        _ => None,
    }
}

/// `target[key]`.
pub(crate) fn index<'a>(target: Value<'a>, key: &Value<'_>) -> Result<Value<'a>, EvalError> {
    match target {
        Value::List(list) => {
            let Some(i) = position(key) else {
                return Err(EvalError::no_overload(
                    "_[_]",
                    &[Value::List(list), key.clone()],
                ));
            };
            usize::try_from(i)
                .ok()
                .and_then(|i| list.get(i))
                .ok_or(EvalError::IndexOutOfRange {
                    index: i,
                    size: list.len(),
                })
        }
        Value::Map(map) => map
            .get(key)
            .ok_or_else(|| EvalError::NoSuchKey(super::library::strings::display(key))),
        Value::Optional(_) => opt_index(target, key),
        other => Err(EvalError::no_overload("_[_]", &[other, key.clone()])),
    }
}

/// `target[?key]`.
pub(crate) fn opt_index<'a>(target: Value<'a>, key: &Value<'_>) -> Result<Value<'a>, EvalError> {
    match target {
        Value::List(list) => {
            let Some(i) = position(key) else {
                return Err(EvalError::no_overload(
                    "_[?_]",
                    &[Value::List(list), key.clone()],
                ));
            };
            Ok(Value::optional(
                usize::try_from(i).ok().and_then(|i| list.get(i)),
            ))
        }
        Value::Map(map) => Ok(Value::optional(map.get(key))),
        Value::Optional(None) => Ok(Value::Optional(None)),
        Value::Optional(Some(inner)) => opt_index((*inner).clone(), key),
        other => Err(EvalError::no_overload("_[?_]", &[other, key.clone()])),
    }
}
