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

use super::node::{Const, Loop, Node, Root};
use super::types::{Bindings, Type, namespace_type, request_type};
use super::value::TypeName;
use super::{CompileError, Declarations};

mod calls;

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
