//! The functions of the Kubernetes CEL environment, one file per library, each registering
//! its functions with their signatures (for the checker) and one implementation that picks
//! the overload from the values' types (for the evaluator).
//!
//! What is here is what the API server's base environment holds for admission expressions
//! (`k8s.io/apiserver/pkg/cel/environment/base.go`, Kubernetes 1.37): the CEL standard
//! library with optional types and cross-type numeric comparisons, cel-go's `ext.Strings`
//! (version 2), `ext.Sets`, `ext.Lists` (version 3) and two-variable comprehensions, and
//! Kubernetes' own libraries: lists, regex, URLs, quantities, IP addresses and CIDRs, named
//! formats and semver. Not here: the authorizer library (`authorizer`), which needs the
//! API server's authorization, and libraries the API server does not offer admission
//! expressions (cel-go's math, encoders, bindings): a policy that calls one does not load.

pub(crate) mod core;
pub(crate) mod format;
pub(crate) mod lists;
pub(crate) mod net;
pub(crate) mod optional;
pub(crate) mod quantity;
pub(crate) mod regex;
pub(crate) mod semver;
pub(crate) mod sets;
pub(crate) mod strings;
pub(crate) mod time;
pub(crate) mod url;

use std::collections::HashMap;
use std::sync::LazyLock;

use super::eval::{EvalError, Meter};
use super::types::Type;
use super::value::{TypeName, Value};

/// What a function implementation can do besides computing: charge cost for work that grows
/// with its input.
pub struct Call<'m> {
    meter: &'m mut Meter,
    pub function: &'static str,
    /// Whether a refusal ([`Call::no_overload`]) must say what it refused. Not while
    /// [`Function::invoke`] tries implementations: it words the refusal itself, and writing
    /// one message per implementation tried cost more than most calls.
    detailed_refusals: bool,
}

impl<'m> Call<'m> {
    pub(crate) fn new(meter: &'m mut Meter, function: &'static str) -> Self {
        Call {
            meter,
            function,
            detailed_refusals: true,
        }
    }

    pub fn charge(&mut self, units: u64) -> Result<(), EvalError> {
        self.meter.charge(units)
    }

    /// Charges a tenth of `size` (rounded up): cel-go's cost of going through `size`
    /// characters or elements.
    pub fn charge_traversal(&mut self, size: usize) -> Result<(), EvalError> {
        self.meter.charge((size as u64).div_ceil(10))
    }

    pub fn no_overload<T>(&self, args: &[Value<'_>]) -> Result<T, EvalError> {
        match self.detailed_refusals {
            true => Err(EvalError::no_overload(self.function, args)),
            false => Err(EvalError::NoSuchOverload(String::new())),
        }
    }
}

/// A function implementation: the arguments (the receiver first, for member calls), which it
/// may take apart.
pub type Imp = for<'a> fn(&mut Call<'_>, &mut [Value<'a>]) -> Result<Value<'a>, EvalError>;

/// One signature: parameter types (the receiver first, for member functions) and result.
#[derive(Debug, Clone)]
pub struct Overload {
    pub params: Vec<Type>,
    pub result: Type,
}

/// A function as an expression calls it: globally (`f(x)`) or as a member (`x.f()`).
pub struct Function {
    pub name: &'static str,
    pub member: bool,
    pub overloads: Vec<Overload>,
    /// One implementation per library declaring the function (`isLessThan` is the
    /// quantity's and the semver's); each refuses other types with `NoSuchOverload` before
    /// touching its arguments, and the next is tried.
    imps: Vec<Imp>,
}

impl Function {
    pub(crate) fn invoke<'a>(
        &self,
        call: &mut Call<'_>,
        args: &mut [Value<'a>],
    ) -> Result<Value<'a>, EvalError> {
        // Refusals are renamed below: their own messages need not be written.
        let detailed = std::mem::replace(&mut call.detailed_refusals, false);
        let mut decided = None;
        for imp in &self.imps {
            match imp(call, args) {
                Err(EvalError::NoSuchOverload(_)) => {}
                result => {
                    decided = Some(result);
                    break;
                }
            }
        }
        call.detailed_refusals = detailed;
        // Name the function and every argument type, whichever implementation refused.
        decided.unwrap_or_else(|| Err(EvalError::no_overload(self.name, args)))
    }
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .field("member", &self.member)
            .finish_non_exhaustive()
    }
}

/// Every function, by name and call style.
#[derive(Default)]
pub struct Registry {
    functions: HashMap<(String, bool), Function>,
}

impl Registry {
    /// Declares `name(params) -> result` called globally, implemented by `imp`.
    pub(crate) fn global(&mut self, name: &'static str, imp: Imp, overloads: &[(&[Type], Type)]) {
        self.add(name, false, imp, overloads);
    }

    /// Declares `params[0].name(params[1..]) -> result`, implemented by `imp`.
    pub(crate) fn member(&mut self, name: &'static str, imp: Imp, overloads: &[(&[Type], Type)]) {
        self.add(name, true, imp, overloads);
    }

    fn add(&mut self, name: &'static str, member: bool, imp: Imp, overloads: &[(&[Type], Type)]) {
        let entry = self
            .functions
            .entry((name.to_owned(), member))
            .or_insert(Function {
                name,
                member,
                overloads: Vec::new(),
                imps: Vec::new(),
            });
        entry.imps.push(imp);
        entry
            .overloads
            .extend(overloads.iter().map(|(params, result)| Overload {
                params: params.to_vec(),
                result: result.clone(),
            }));
    }

    pub fn get(&self, name: &str, member: bool) -> Option<&Function> {
        self.functions.get(&(name.to_owned(), member))
    }

    /// Whether a global function's name starts with `namespace.` (`optional.`, `sets.`...).
    pub fn is_namespace(&self, namespace: &str) -> bool {
        self.functions.keys().any(|(name, member)| {
            !member
                && name
                    .strip_prefix(namespace)
                    .is_some_and(|rest| rest.starts_with('.'))
        })
    }
}

/// The Kubernetes CEL environment's functions, built once.
pub static FUNCTIONS: LazyLock<Registry> = LazyLock::new(|| {
    let mut r = Registry::default();
    core::register(&mut r);
    optional::register(&mut r);
    time::register(&mut r);
    strings::register(&mut r);
    lists::register(&mut r);
    sets::register(&mut r);
    regex::register(&mut r);
    url::register(&mut r);
    net::register(&mut r);
    quantity::register(&mut r);
    format::register(&mut r);
    semver::register(&mut r);
    r
});

/// Shorthands for signatures.
pub(crate) mod sig {
    use super::{Type, TypeName};

    pub fn a() -> Type {
        Type::Param(0)
    }
    pub fn b() -> Type {
        Type::Param(1)
    }
    pub fn list(t: Type) -> Type {
        Type::list(t)
    }
    pub fn map(k: Type, v: Type) -> Type {
        Type::map(k, v)
    }
    pub fn opt(t: Type) -> Type {
        Type::optional(t)
    }
    pub fn opaque(t: TypeName) -> Type {
        Type::Opaque(t)
    }
    pub use Type::{Bool, Bytes, Double, Duration, Dyn, Int, String, Timestamp, Uint};
}

/// Takes argument `i` out of the arguments (a function owns them).
pub(crate) fn take<'a>(args: &mut [Value<'a>], i: usize) -> Value<'a> {
    args.get_mut(i).map(std::mem::take).unwrap_or_default()
}

/// Converts an int argument to a `usize` count or position, or fails with `what`.
pub(crate) fn non_negative(value: i64, what: &str) -> Result<usize, EvalError> {
    usize::try_from(value).map_err(|_| EvalError::message(format!("{what}: {value} is negative")))
}
