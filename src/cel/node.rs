//! The compiled form of an expression: names resolved, macros expanded, functions looked up,
//! literal regular expressions compiled. The checker produced it, so every call here names a
//! function that exists with an arity it has; what remains to decide at run time is which
//! overload the values' types select.

use std::sync::Arc;

use super::library::Function;
use super::value::TypeName;

/// A literal.
#[derive(Debug, Clone)]
pub(crate) enum Const {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    String(Box<str>),
    Bytes(Arc<[u8]>),
    Type(TypeName),
}

/// A variable the evaluation binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    Object,
    OldObject,
    Request,
    Params,
    NamespaceObject,
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Const(Const),
    Root(Root),
    /// A comprehension variable: its slot in the stack of bound variables.
    Local(usize),
    /// `variables.<name>`: the index of the variable in its policy.
    Variable(usize),
    Select(Box<Node>, Box<str>),
    /// `a.?b`.
    OptSelect(Box<Node>, Box<str>),
    /// `has(a.b)`.
    Has(Box<Node>, Box<str>),
    Index(Box<[Node; 2]>),
    /// `a[?b]`.
    OptIndex(Box<[Node; 2]>),
    And(Box<[Node; 2]>),
    Or(Box<[Node; 2]>),
    Conditional(Box<[Node; 3]>),
    /// `x.or(y)` (`value: false`) and `x.orValue(y)` (`value: true`): `y` is evaluated only
    /// when `x` is none, as cel-go does.
    OptionalOr {
        value: bool,
        parts: Box<[Node; 2]>,
    },
    Call(&'static Function, Box<[Node]>),
    /// `matches`, `find` or `findAll` with a literal pattern, compiled at load time.
    Regex(Box<RegexCall>),
    /// A list literal; `optional` holds the positions written `?e`.
    List(Box<[Node]>, Box<[usize]>),
    /// A map literal: key, value, and whether the entry was written `?k: v`.
    Map(Box<[(Node, Node, bool)]>),
    Comprehension(Box<Comprehension>),
}

#[derive(Debug, Clone)]
pub(crate) struct RegexCall {
    pub function: RegexFunction,
    pub target: Node,
    pub regex: Arc<regex::Regex>,
    /// `findAll`'s limit, when given.
    pub limit: Option<Node>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegexFunction {
    Matches,
    Find,
    FindAll,
}

/// A macro's loop over a list or a map (or an optional, for `optMap`/`optFlatMap`).
#[derive(Debug, Clone)]
pub(crate) struct Comprehension {
    pub kind: Loop,
    pub range: Node,
    /// The slot of the (first) variable; a second variable, when declared, is the next slot.
    pub slot: usize,
    pub two_vars: bool,
    /// The predicate of `map(x, p, t)`, `transformList(i, v, p, t)`...
    pub filter: Option<Node>,
    pub body: Node,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loop {
    All,
    Exists,
    ExistsOne,
    /// `map`, and `transformList` (two variables).
    Map,
    Filter,
    TransformMap,
    TransformMapEntry,
    SortBy,
    OptMap,
    OptFlatMap,
}
