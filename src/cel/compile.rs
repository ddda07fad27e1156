//! From source text to a checked [`Node`] tree.
//!
//! The `cel` crate parses (cel-go's grammar, optional syntax on, no macros: this module
//! expands them itself, into loops the evaluator runs natively). Then one pass resolves every
//! name and function and computes each sub-expression's type with the declarations the API
//! server gives admission expressions, so that an unknown variable, field of `request`,
//! function or macro form, a call with the wrong number or provably wrong types of arguments,
//! an invalid literal regular expression, duration or timestamp, or a non-homogeneous list
//! literal is an error with a line and column, before anything runs.
//!
//! Deeply nested text could overflow a thread's stack in the parser (which recurses as deep as
//! the text nests), so parsing and checking run on a thread of their own with a large stack,
//! the source is at most [`MAX_SOURCE_CHARS`] characters (cel-go's default), and a tree nested
//! deeper than [`MAX_DEPTH`] is refused: evaluation recurses along the tree, on the server's
//! own threads.

use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue, SourceInfo};

use super::library::{FUNCTIONS, Function};
use super::node::{Comprehension, Const, Loop, Node, RegexCall, RegexFunction, Root};
use super::types::{Bindings, Type, namespace_type, request_type};
use super::value::TypeName;
use super::{CompileError, Declarations};

/// The longest expression accepted, in characters (cel-go's `ExpressionSizeCodePointLimit`).
pub const MAX_SOURCE_CHARS: usize = 100_000;

/// The deepest expression tree accepted.
pub const MAX_DEPTH: usize = 250;

/// The parser's thread stack: enough for [`MAX_SOURCE_CHARS`] of the deepest-nesting text.
const PARSER_STACK: usize = 256 << 20;

/// An expression parsed and checked: its tree, its type, and whether it reads
/// `namespaceObject` (which a request may not have known).
pub(crate) struct Checked {
    pub node: Node,
    pub output: Type,
    pub reads_namespace_object: bool,
}

/// Parses and checks `source`.
pub(crate) fn compile(source: &str, decls: &Declarations) -> Result<Checked, CompileError> {
    let chars = source.chars().count();
    if chars > MAX_SOURCE_CHARS {
        return Err(CompileError::at(
            1,
            1,
            format!(
                "the expression has {chars} characters; at most {MAX_SOURCE_CHARS} are allowed"
            ),
        ));
    }
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("cel-compile".into())
            .stack_size(PARSER_STACK)
            .spawn_scoped(scope, || compile_here(source, decls));
        match worker {
            Ok(handle) => handle.join().unwrap_or_else(|_| {
                Err(CompileError::at(
                    1,
                    1,
                    "the CEL parser failed on this expression",
                ))
            }),
            Err(e) => Err(CompileError::at(
                1,
                1,
                format!("cannot start the CEL parser's thread: {e}"),
            )),
        }
    })
}

fn compile_here(source: &str, decls: &Declarations) -> Result<Checked, CompileError> {
    let parsed =
        std::panic::catch_unwind(|| cel::Env::default().parser().parse_with_source_info(source));
    let (expr, info) = match parsed {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(errors)) => {
            let first = errors.errors.first();
            let (line, column) = first.map_or((1, 1), |e| (e.pos.0.max(1), e.pos.1.max(1)));
            let message = first.map_or_else(|| "syntax error".to_owned(), |e| e.msg.clone());
            return Err(CompileError::at(line as usize, column as usize, message));
        }
        Err(_) => {
            return Err(CompileError::at(
                1,
                1,
                "the CEL parser failed on this expression",
            ));
        }
    };
    if let Some(id) = too_deep(&expr) {
        let (line, column) = position(&info, source, id);
        return Err(CompileError::at(
            line,
            column,
            format!("the expression nests more than {MAX_DEPTH} levels deep"),
        ));
    }
    let mut compiler = Compiler {
        decls,
        info: &info,
        source,
        locals: Vec::new(),
        request: request_type(),
        reads_namespace_object: false,
    };
    let (node, output) = compiler.expr(&expr)?;
    Ok(Checked {
        node,
        output,
        reads_namespace_object: compiler.reads_namespace_object,
    })
}

/// The id of a node deeper than [`MAX_DEPTH`], found without recursing.
fn too_deep(root: &IdedExpr) -> Option<u64> {
    let mut stack: Vec<(&IdedExpr, usize)> = vec![(root, 1)];
    while let Some((e, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Some(e.id);
        }
        match &e.expr {
            Expr::Call(call) => {
                if let Some(t) = &call.target {
                    stack.push((t, depth + 1));
                }
                stack.extend(call.args.iter().map(|a| (a, depth + 1)));
            }
            Expr::Select(select) => stack.push((&select.operand, depth + 1)),
            Expr::List(list) => stack.extend(list.elements.iter().map(|a| (a, depth + 1))),
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(m) = &entry.expr {
                        stack.push((&m.key, depth + 1));
                        stack.push((&m.value, depth + 1));
                    }
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        stack.push((&f.value, depth + 1));
                    }
                }
            }
            Expr::Comprehension(c) => {
                for part in [
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ] {
                    stack.push((part, depth + 1));
                }
            }
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
    }
    None
}

/// The 1-based line and column where node `id` starts.
fn position(info: &SourceInfo, source: &str, id: u64) -> (usize, usize) {
    let Some((start, _)) = info.offset_for(id) else {
        return (1, 1);
    };
    let (mut line, mut column) = (1, 1);
    for c in source.chars().take(start as usize) {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

type Compiled = Result<(Node, Type), CompileError>;

struct Compiler<'c> {
    decls: &'c Declarations,
    info: &'c SourceInfo,
    source: &'c str,
    /// The comprehension variables in scope, innermost last; a variable's slot is its index.
    locals: Vec<(String, Type)>,
    request: Type,
    /// Set when the expression names `namespaceObject`.
    reads_namespace_object: bool,
}

/// The type names an expression may use as values (`type(x) == string`).
fn type_name(name: &str) -> Option<TypeName> {
    Some(match name {
        "bool" => TypeName::Bool,
        "int" => TypeName::Int,
        "uint" => TypeName::Uint,
        "double" => TypeName::Double,
        "string" => TypeName::String,
        "bytes" => TypeName::Bytes,
        "list" => TypeName::List,
        "map" => TypeName::Map,
        "null_type" => TypeName::Null,
        "type" => TypeName::Type,
        "google.protobuf.Duration" => TypeName::Duration,
        "google.protobuf.Timestamp" => TypeName::Timestamp,
        _ => return None,
    })
}

impl Compiler<'_> {
    fn error(&self, id: u64, message: impl Into<String>) -> CompileError {
        let (line, column) = position(self.info, self.source, id);
        CompileError::at(line, column, message)
    }

    fn local(&self, name: &str) -> Option<usize> {
        self.locals.iter().rposition(|(n, _)| n == name)
    }

    fn expr(&mut self, e: &IdedExpr) -> Compiled {
        match &e.expr {
            Expr::Literal(lit) => Ok(literal(lit)),
            Expr::Ident(name) => self.ident(e.id, name),
            Expr::Select(select) => {
                if let Expr::Ident(root) = &select.operand.expr
                    && root == "variables"
                    && self.local(root).is_none()
                {
                    return self.variable(e.id, &select.field);
                }
                if let Some(name) = select_as_type_name(e)
                    && let Some(t) = type_name(&name)
                {
                    return Ok((Node::Const(Const::Type(t)), Type::Type));
                }
                let (operand, operand_type) = self.expr(&select.operand)?;
                let t = self.field_type(e.id, &operand_type, &select.field)?;
                Ok((
                    Node::Select(Box::new(operand), select.field.as_str().into()),
                    t,
                ))
            }
            Expr::Call(call) => self.call(e, &call.func_name, call.target.as_deref(), &call.args),
            Expr::List(list) => self.list(e, &list.elements, &list.optional_indices),
            Expr::Map(map) => {
                let mut entries = Vec::with_capacity(map.entries.len());
                let (mut key_type, mut value_type): (Option<Type>, Option<Type>) = (None, None);
                for entry in &map.entries {
                    let EntryExpr::MapEntry(m) = &entry.expr else {
                        return Err(self.error(entry.id, "message construction is not supported"));
                    };
                    let (key, kt) = self.expr(&m.key)?;
                    if !matches!(
                        kt,
                        Type::Dyn | Type::String | Type::Int | Type::Uint | Type::Bool
                    ) {
                        return Err(self.error(m.key.id, format!("unsupported map key type: {kt}")));
                    }
                    let (value, vt) = self.expr(&m.value)?;
                    let vt = if m.optional {
                        self.unwrap_optional(m.value.id, vt)?
                    } else {
                        vt
                    };
                    key_type = Some(self.join(m.key.id, key_type, kt)?);
                    value_type = Some(self.join(m.value.id, value_type, vt)?);
                    entries.push((key, value, m.optional));
                }
                Ok((
                    Node::Map(entries.into_boxed_slice()),
                    Type::map(
                        key_type.unwrap_or(Type::Dyn),
                        value_type.unwrap_or(Type::Dyn),
                    ),
                ))
            }
            Expr::Struct(_) => Err(self.error(e.id, "message construction is not supported")),
            Expr::Comprehension(_) | Expr::Unspecified => {
                Err(self.error(e.id, "unsupported expression"))
            }
        }
    }

    fn ident(&mut self, id: u64, name: &str) -> Compiled {
        if let Some(slot) = self.local(name) {
            return Ok((Node::Local(slot), self.locals[slot].1.clone()));
        }
        let root = match name {
            "object" => Root::Object,
            "oldObject" => Root::OldObject,
            "request" => return Ok((Node::Root(Root::Request), self.request.clone())),
            "params" if self.decls.params => Root::Params,
            "namespaceObject" => {
                self.reads_namespace_object = true;
                return Ok((Node::Root(Root::NamespaceObject), namespace_type()));
            }
            "authorizer" => {
                return Err(self.error(
                    id,
                    "authorizer is not supported by portier: authorization checks need the API server",
                ));
            }
            "variables" => {
                return Err(self.error(id, "variables can only be used as variables.<name>"));
            }
            other => match type_name(other) {
                Some(t) => return Ok((Node::Const(Const::Type(t)), Type::Type)),
                None => {
                    return Err(self.error(
                        id,
                        format!("undeclared reference to '{other}' (in container '')"),
                    ));
                }
            },
        };
        Ok((Node::Root(root), Type::Dyn))
    }

    fn variable(&mut self, id: u64, name: &str) -> Compiled {
        match self.decls.variables.iter().position(|(n, _)| n == name) {
            Some(i) => Ok((Node::Variable(i), self.decls.variables[i].1.clone())),
            None => Err(self.error(
                id,
                format!("undefined field '{name}' (no variable of this name is declared before this expression)"),
            )),
        }
    }

    /// The type of `field` selected from a value of type `t`.
    fn field_type(&self, id: u64, t: &Type, field: &str) -> Result<Type, CompileError> {
        match t {
            Type::Dyn => Ok(Type::Dyn),
            Type::Map(k, v) if Type::String.accepts(k, &mut Bindings::default()) => {
                Ok((**v).clone())
            }
            Type::Object(o) => o
                .field(field)
                .cloned()
                .ok_or_else(|| self.error(id, format!("undefined field '{field}'"))),
            Type::Optional(inner) => Ok(Type::optional(self.field_type(id, inner, field)?)),
            other => Err(self.error(
                id,
                format!("type '{other}' does not support field selection"),
            )),
        }
    }

    /// The type of `t[key]`.
    fn index_type(&self, id: u64, t: &Type, key: &Type) -> Result<Type, CompileError> {
        let mismatch = || {
            self.error(
                id,
                format!("found no matching overload for '_[_]' applied to '({t}, {key})'"),
            )
        };
        match t {
            Type::Dyn => Ok(Type::Dyn),
            Type::List(e) => match key {
                Type::Int | Type::Uint | Type::Dyn => Ok((**e).clone()),
                _ => Err(mismatch()),
            },
            Type::Map(k, v) => {
                if k.accepts(key, &mut Bindings::default()) {
                    Ok((**v).clone())
                } else {
                    Err(mismatch())
                }
            }
            Type::Optional(inner) => Ok(Type::optional(self.index_type(id, inner, key)?)),
            _ => Err(mismatch()),
        }
    }

    /// The element type of a list or map literal so far, joined with the next element's: the
    /// first type stays, and a type that cannot be assigned to it is an error (as the API
    /// server's `HomogeneousAggregateLiterals`).
    fn join(&self, id: u64, so_far: Option<Type>, next: Type) -> Result<Type, CompileError> {
        match so_far {
            None => Ok(next),
            Some(t) if t.accepts(&next, &mut Bindings::default()) => Ok(t),
            Some(t) => Err(self.error(id, format!("expected type '{t}' but found '{next}'"))),
        }
    }

    fn unwrap_optional(&self, id: u64, t: Type) -> Result<Type, CompileError> {
        match t {
            Type::Optional(inner) => Ok(*inner),
            Type::Dyn => Ok(Type::Dyn),
            other => Err(self.error(
                id,
                format!("expected type 'optional_type(dyn)' but found '{other}'"),
            )),
        }
    }

    fn list(&mut self, e: &IdedExpr, elements: &[IdedExpr], optional: &[usize]) -> Compiled {
        let mut nodes = Vec::with_capacity(elements.len());
        let mut elem: Option<Type> = None;
        for (i, element) in elements.iter().enumerate() {
            let (node, t) = self.expr(element)?;
            let t = if optional.contains(&i) {
                self.unwrap_optional(element.id, t)?
            } else {
                t
            };
            elem = Some(self.join(element.id, elem, t)?);
            nodes.push(node);
        }
        let _ = e;
        Ok((
            Node::List(
                nodes.into_boxed_slice(),
                optional.to_vec().into_boxed_slice(),
            ),
            Type::list(elem.unwrap_or(Type::Dyn)),
        ))
    }

    fn bool_operand(
        &mut self,
        function: &str,
        args: &[IdedExpr],
    ) -> Result<Vec<Node>, CompileError> {
        let mut nodes = Vec::with_capacity(args.len());
        let mut types = Vec::with_capacity(args.len());
        for arg in args {
            let (n, t) = self.expr(arg)?;
            nodes.push(n);
            types.push(t);
        }
        if types.iter().any(|t| !matches!(t, Type::Bool | Type::Dyn)) {
            return Err(self.no_overload_error(
                args.first().map_or(0, |a| a.id),
                function,
                None,
                &types,
            ));
        }
        Ok(nodes)
    }

    fn no_overload_error(
        &self,
        id: u64,
        function: &str,
        receiver: Option<&Type>,
        args: &[Type],
    ) -> CompileError {
        let list: Vec<String> = args.iter().map(Type::to_string).collect();
        let applied = match receiver {
            Some(r) => format!("{r}.({})", list.join(", ")),
            None => format!("({})", list.join(", ")),
        };
        self.error(
            id,
            format!("found no matching overload for '{function}' applied to '{applied}'"),
        )
    }

    fn call(
        &mut self,
        e: &IdedExpr,
        name: &str,
        target: Option<&IdedExpr>,
        args: &[IdedExpr],
    ) -> Compiled {
        match (name, target, args.len()) {
            ("_&&_" | "_||_", None, 2) => {
                let nodes = self.bool_operand(name, args)?;
                let pair = two(nodes);
                return Ok((
                    if name == "_&&_" {
                        Node::And(pair)
                    } else {
                        Node::Or(pair)
                    },
                    Type::Bool,
                ));
            }
            ("_?_:_", None, 3) => {
                let (cond, ct) = self.expr(&args[0])?;
                if !matches!(ct, Type::Bool | Type::Dyn) {
                    return Err(
                        self.error(args[0].id, format!("expected type 'bool' but found '{ct}'"))
                    );
                }
                let (yes, yt) = self.expr(&args[1])?;
                let (no, nt) = self.expr(&args[2])?;
                let mut b = Bindings::default();
                let param = Type::Param(0);
                if !(param.accepts(&yt, &mut b) && param.accepts(&nt, &mut b)) {
                    return Err(self.no_overload_error(e.id, "_?_:_", None, &[ct, yt, nt]));
                }
                return Ok((
                    Node::Conditional(Box::new([cond, yes, no])),
                    param.substitute(&b),
                ));
            }
            ("_?._", None, 2) => {
                let Expr::Literal(LiteralValue::String(field)) = &args[1].expr else {
                    return Err(self.error(args[1].id, "unsupported optional field selection"));
                };
                let (operand, ot) = self.expr(&args[0])?;
                let t = match self.field_type(e.id, &ot, field.inner())? {
                    Type::Optional(t) => Type::Optional(t),
                    t => Type::optional(t),
                };
                return Ok((Node::OptSelect(Box::new(operand), field.inner().into()), t));
            }
            ("_[_]" | "_[?_]", None, 2) => {
                let (operand, ot) = self.expr(&args[0])?;
                let (key, kt) = self.expr(&args[1])?;
                let t = self.index_type(e.id, &ot, &kt)?;
                let pair = Box::new([operand, key]);
                return Ok(if name == "_[_]" {
                    (Node::Index(pair), t)
                } else {
                    let t = match t {
                        Type::Optional(t) => Type::Optional(t),
                        t => Type::optional(t),
                    };
                    (Node::OptIndex(pair), t)
                });
            }
            ("has", None, 1) => return self.has(&args[0]),
            _ => {}
        }
        if let Some(target) = target {
            if let Some(kind) = macro_kind(name, args.len()) {
                return self.comprehension(e, kind, target, args);
            }
            // `optional.of(x)`, `sets.contains(a, b)`: a namespaced global function.
            if let Expr::Ident(ns) = &target.expr
                && self.local(ns).is_none()
                && !is_variable_name(ns)
            {
                let qualified = format!("{ns}.{name}");
                if let Some(function) = FUNCTIONS.get(&qualified, false) {
                    return self.function_call(e, function, None, args);
                }
            }
            if let Some(regex) = self.regex_call(e, name, Some(target), args)? {
                return Ok(regex);
            }
            if matches!(name, "or" | "orValue") && args.len() == 1 {
                return self.optional_or(e, name, target, &args[0]);
            }
        } else if let Some(regex) = self.regex_call(e, name, None, args)? {
            return Ok(regex);
        }
        if target.is_none()
            && matches!(name, "duration" | "timestamp")
            && let [
                IdedExpr {
                    expr: Expr::Literal(LiteralValue::String(s)),
                    id,
                },
            ] = args
        {
            let valid = if name == "duration" {
                super::library::time::parse_duration(s.inner()).is_some()
            } else {
                super::library::time::parse_rfc3339(s.inner()).is_some()
            };
            if !valid {
                return Err(self.error(*id, format!("invalid {name} literal {:?}", s.inner())));
            }
        }
        let Some(function) = FUNCTIONS.get(name, target.is_some()) else {
            if target.is_some() && is_macro_name(name) {
                return Err(self.error(
                    e.id,
                    format!("wrong number of arguments to the {name} macro"),
                ));
            }
            // `math.abs(x)`: a namespace the environment does not have.
            if let Some(IdedExpr {
                expr: Expr::Ident(ns),
                ..
            }) = target
                && self.local(ns).is_none()
                && !is_variable_name(ns)
            {
                return Err(self.error(
                    e.id,
                    format!("undeclared reference to '{ns}.{name}' (in container '')"),
                ));
            }
            // What the call is applied to may hold the first error (`authorizer.x().y()`).
            for arg in target.into_iter().chain(args) {
                self.expr(arg)?;
            }
            let what = if target.is_some() && FUNCTIONS.get(name, false).is_some() {
                format!("'{name}' is a global function, not a member: call it as {name}(x)")
            } else if target.is_none() && FUNCTIONS.get(name, true).is_some() {
                format!("'{name}' is a member function: call it as x.{name}()")
            } else {
                format!("undeclared reference to '{name}' (in container '')")
            };
            return Err(self.error(e.id, what));
        };
        self.function_call(e, function, target, args)
    }

    fn function_call(
        &mut self,
        e: &IdedExpr,
        function: &'static Function,
        target: Option<&IdedExpr>,
        args: &[IdedExpr],
    ) -> Compiled {
        let mut nodes = Vec::with_capacity(args.len() + 1);
        let mut types = Vec::with_capacity(args.len() + 1);
        for arg in target.into_iter().chain(args) {
            let (n, t) = self.expr(arg)?;
            nodes.push(n);
            types.push(t);
        }
        let result = self.resolve(e.id, function, &types)?;
        Ok((Node::Call(function, nodes.into_boxed_slice()), result))
    }

    /// The result type of `function` applied to `types`, or the error cel-go gives.
    fn resolve(&self, id: u64, function: &Function, types: &[Type]) -> Result<Type, CompileError> {
        let mut result: Option<Type> = None;
        for overload in &function.overloads {
            if overload.params.len() != types.len() {
                continue;
            }
            let mut b = Bindings::default();
            if overload
                .params
                .iter()
                .zip(types)
                .all(|(p, t)| p.accepts(t, &mut b))
            {
                let r = overload.result.substitute(&b);
                result = Some(match result {
                    None => r,
                    Some(prev) if prev == r => prev,
                    Some(_) => Type::Dyn,
                });
            }
        }
        result.ok_or_else(|| {
            let (receiver, args) = if function.member {
                (types.first(), types.get(1..).unwrap_or_default())
            } else {
                (None, types)
            };
            self.no_overload_error(id, function.name, receiver, args)
        })
    }

    fn has(&mut self, arg: &IdedExpr) -> Compiled {
        let Expr::Select(select) = &arg.expr else {
            return Err(self.error(arg.id, "invalid argument to has() macro"));
        };
        if let Expr::Ident(root) = &select.operand.expr
            && root == "variables"
            && self.local(root).is_none()
        {
            // A declared variable is always present.
            self.variable(arg.id, &select.field)?;
            return Ok((Node::Const(Const::Bool(true)), Type::Bool));
        }
        let (operand, ot) = self.expr(&select.operand)?;
        self.field_type(arg.id, &ot, &select.field)?;
        Ok((
            Node::Has(Box::new(operand), select.field.as_str().into()),
            Type::Bool,
        ))
    }

    /// `matches`, `find` and `findAll` with a literal pattern: compiled now.
    fn regex_call(
        &mut self,
        e: &IdedExpr,
        name: &str,
        target: Option<&IdedExpr>,
        args: &[IdedExpr],
    ) -> Result<Option<(Node, Type)>, CompileError> {
        let (function, subject, pattern, limit, result) = match (name, target, args) {
            ("matches", Some(t), [p]) => (RegexFunction::Matches, t, p, None, Type::Bool),
            ("matches", None, [t, p]) => (RegexFunction::Matches, t, p, None, Type::Bool),
            ("find", Some(t), [p]) => (RegexFunction::Find, t, p, None, Type::String),
            ("findAll", Some(t), [p]) => {
                (RegexFunction::FindAll, t, p, None, Type::list(Type::String))
            }
            ("findAll", Some(t), [p, n]) => (
                RegexFunction::FindAll,
                t,
                p,
                Some(n),
                Type::list(Type::String),
            ),
            _ => return Ok(None),
        };
        let Expr::Literal(LiteralValue::String(text)) = &pattern.expr else {
            return Ok(None);
        };
        let regex = super::library::regex::compile(text.inner())
            .map_err(|why| self.error(pattern.id, why))?;
        let (subject_node, st) = self.expr(subject)?;
        if !matches!(st, Type::String | Type::Dyn) {
            return Err(self.no_overload_error(e.id, name, target.map(|_| &st), &[Type::String]));
        }
        let limit = match limit {
            Some(n) => {
                let (node, t) = self.expr(n)?;
                if !matches!(t, Type::Int | Type::Dyn) {
                    return Err(self.no_overload_error(e.id, name, Some(&st), &[Type::String, t]));
                }
                Some(node)
            }
            None => None,
        };
        Ok(Some((
            Node::Regex(Box::new(RegexCall {
                function,
                target: subject_node,
                regex: Arc::new(regex),
                limit,
            })),
            result,
        )))
    }

    fn optional_or(
        &mut self,
        e: &IdedExpr,
        name: &str,
        target: &IdedExpr,
        arg: &IdedExpr,
    ) -> Compiled {
        let function = FUNCTIONS
            .get(name, true)
            .ok_or_else(|| self.error(e.id, format!("undeclared reference to '{name}'")))?;
        let (x, xt) = self.expr(target)?;
        let (y, yt) = self.expr(arg)?;
        let result = self.resolve(e.id, function, &[xt, yt])?;
        Ok((
            Node::OptionalOr {
                value: name == "orValue",
                parts: Box::new([x, y]),
            },
            result,
        ))
    }

    fn comprehension(
        &mut self,
        e: &IdedExpr,
        kind: Loop,
        target: &IdedExpr,
        args: &[IdedExpr],
    ) -> Compiled {
        let two_vars = match kind {
            Loop::TransformMap | Loop::TransformMapEntry => true,
            Loop::Map if args.len() >= 3 && is_transform_list(e) => true,
            Loop::All | Loop::Exists | Loop::ExistsOne => args.len() == 3,
            _ => false,
        };
        let vars = if two_vars { 2 } else { 1 };
        let mut names = Vec::with_capacity(2);
        for arg in &args[..vars] {
            match &arg.expr {
                Expr::Ident(name) => names.push(name.clone()),
                _ => return Err(self.error(arg.id, "argument must be a simple name")),
            }
        }
        if two_vars && names[0] == names[1] {
            return Err(self.error(args[1].id, format!("duplicate variable name: {}", names[0])));
        }
        let (range, range_type) = self.expr(target)?;
        let var_types: Vec<Type> = match (kind, &range_type) {
            (Loop::OptMap | Loop::OptFlatMap, Type::Optional(inner)) => vec![(**inner).clone()],
            (Loop::OptMap | Loop::OptFlatMap, Type::Dyn) => vec![Type::Dyn],
            (Loop::OptMap | Loop::OptFlatMap, other) => {
                return Err(self.no_overload_error(e.id, macro_name(e), Some(other), &[]));
            }
            (_, Type::List(elem)) if two_vars => vec![Type::Int, (**elem).clone()],
            (_, Type::List(elem)) => vec![(**elem).clone()],
            (Loop::SortBy, other) if !other.is_dyn() => {
                return Err(self.no_overload_error(e.id, "sortBy", Some(other), &[]));
            }
            (_, Type::Map(k, v)) if two_vars => vec![(**k).clone(), (**v).clone()],
            (_, Type::Map(k, _)) => vec![(**k).clone()],
            (_, Type::Dyn) => vec![Type::Dyn; vars],
            (_, other) => {
                return Err(self.error(
                    target.id,
                    format!(
                        "expression of type '{other}' cannot be range of a comprehension (must be list, map, or dynamic)"
                    ),
                ));
            }
        };
        let slot = self.locals.len();
        for (name, t) in names.iter().zip(var_types.iter()) {
            self.locals.push((name.clone(), t.clone()));
        }
        let rest = &args[vars..];
        let compiled = self.loop_body(e, kind, rest);
        self.locals.truncate(slot);
        let (filter, body, body_type) = compiled?;
        let result = match kind {
            Loop::All | Loop::Exists | Loop::ExistsOne => Type::Bool,
            Loop::Map => Type::list(body_type),
            Loop::Filter => Type::list(var_types[0].clone()),
            Loop::TransformMap => Type::map(var_types[0].clone(), body_type),
            Loop::TransformMapEntry => match body_type {
                Type::Map(k, v) => Type::Map(k, v),
                _ => Type::map(Type::Dyn, Type::Dyn),
            },
            Loop::SortBy => range_type.clone(),
            Loop::OptMap => Type::optional(body_type),
            Loop::OptFlatMap => body_type,
        };
        Ok((
            Node::Comprehension(Box::new(Comprehension {
                kind,
                range,
                slot,
                two_vars,
                filter,
                body,
            })),
            result,
        ))
    }

    /// The predicate (when given) and the body of a macro, type-checked.
    fn loop_body(
        &mut self,
        e: &IdedExpr,
        kind: Loop,
        rest: &[IdedExpr],
    ) -> Result<(Option<Node>, Node, Type), CompileError> {
        let (filter, body) = match rest {
            [body] => (None, body),
            [filter, body] => (Some(filter), body),
            _ => return Err(self.error(e.id, "wrong number of arguments to a macro")),
        };
        let filter = match filter {
            Some(f) => {
                let (node, t) = self.expr(f)?;
                if !matches!(t, Type::Bool | Type::Dyn) {
                    return Err(self.error(f.id, format!("the filter must be a bool, not {t}")));
                }
                Some(node)
            }
            None => None,
        };
        let (node, t) = self.expr(body)?;
        match kind {
            Loop::All | Loop::Exists | Loop::ExistsOne | Loop::Filter
                if !matches!(t, Type::Bool | Type::Dyn) =>
            {
                Err(self.error(
                    body.id,
                    format!("the predicate of {} must be a bool, not {t}", macro_name(e)),
                ))
            }
            Loop::TransformMapEntry if !matches!(t, Type::Map(..) | Type::Dyn) => Err(self.error(
                body.id,
                format!("transformMapEntry must produce a map, not {t}"),
            )),
            Loop::SortBy if !t.maybe_orderable() => Err(self.error(
                body.id,
                format!("sortBy needs a key that can be ordered, not {t}"),
            )),
            Loop::OptFlatMap if !matches!(t, Type::Optional(_) | Type::Dyn) => Err(self.error(
                body.id,
                format!("optFlatMap must produce an optional, not {t}"),
            )),
            _ => Ok((filter, node, t)),
        }
    }
}

fn two(nodes: Vec<Node>) -> Box<[Node; 2]> {
    let mut it = nodes.into_iter();
    let (a, b) = (it.next(), it.next());
    Box::new([
        a.unwrap_or(Node::Const(Const::Null)),
        b.unwrap_or(Node::Const(Const::Null)),
    ])
}

fn literal(lit: &LiteralValue) -> (Node, Type) {
    let (c, t) = match lit {
        LiteralValue::Boolean(b) => (Const::Bool(*b.inner()), Type::Bool),
        LiteralValue::Bytes(b) => (Const::Bytes(Arc::from(b.inner())), Type::Bytes),
        LiteralValue::Double(d) => (Const::Double(*d.inner()), Type::Double),
        LiteralValue::Int(i) => (Const::Int(*i.inner()), Type::Int),
        LiteralValue::Null => (Const::Null, Type::Null),
        LiteralValue::String(s) => (Const::String(s.inner().into()), Type::String),
        LiteralValue::UInt(u) => (Const::Uint(*u.inner()), Type::Uint),
    };
    (Node::Const(c), t)
}

/// A qualified name spelled by selections on an identifier (`google.protobuf.Duration`).
fn select_as_type_name(e: &IdedExpr) -> Option<String> {
    let mut parts = Vec::new();
    let mut cur = e;
    loop {
        match &cur.expr {
            Expr::Select(s) if !s.test => {
                parts.push(s.field.as_str());
                cur = &s.operand;
            }
            Expr::Ident(name) => {
                parts.push(name.as_str());
                break;
            }
            _ => return None,
        }
    }
    parts.reverse();
    Some(parts.join("."))
}

fn is_variable_name(name: &str) -> bool {
    matches!(
        name,
        "object"
            | "oldObject"
            | "request"
            | "params"
            | "namespaceObject"
            | "variables"
            | "authorizer"
    )
}

fn is_macro_name(name: &str) -> bool {
    matches!(
        name,
        "all"
            | "exists"
            | "exists_one"
            | "existsOne"
            | "map"
            | "filter"
            | "transformList"
            | "transformMap"
            | "transformMapEntry"
            | "sortBy"
            | "optMap"
            | "optFlatMap"
    )
}

/// The macro a receiver call `x.name(args)` is, by name and argument count.
fn macro_kind(name: &str, args: usize) -> Option<Loop> {
    Some(match (name, args) {
        ("all", 2 | 3) => Loop::All,
        ("exists", 2 | 3) => Loop::Exists,
        ("exists_one", 2) | ("existsOne", 2 | 3) => Loop::ExistsOne,
        ("map", 2 | 3) => Loop::Map,
        ("filter", 2) => Loop::Filter,
        ("transformList", 3 | 4) => Loop::Map,
        ("transformMap", 3 | 4) => Loop::TransformMap,
        ("transformMapEntry", 3 | 4) => Loop::TransformMapEntry,
        ("sortBy", 2) => Loop::SortBy,
        ("optMap", 2) => Loop::OptMap,
        ("optFlatMap", 2) => Loop::OptFlatMap,
        _ => return None,
    })
}

fn is_transform_list(e: &IdedExpr) -> bool {
    matches!(&e.expr, Expr::Call(c) if c.func_name == "transformList")
}

fn macro_name(e: &IdedExpr) -> &str {
    match &e.expr {
        Expr::Call(c) => &c.func_name,
        _ => "macro",
    }
}
