//! Calls, macros and comprehensions: functions resolved against the library's overloads,
//! `has()`, literal regular expressions compiled once, `or`/`orValue`, and the macros
//! expanded into the loops the evaluator runs natively.

use std::sync::Arc;

use cel::common::ast::{Expr, IdedExpr, LiteralValue};

use super::{
    Compiled, Compiler, is_macro_name, is_transform_list, is_variable_name, macro_kind, macro_name,
    two,
};
use crate::cel::CompileError;
use crate::cel::library::{FUNCTIONS, Function};
use crate::cel::node::{Comprehension, Const, Loop, Node, RegexCall, RegexFunction};
use crate::cel::types::{Bindings, Type};

impl Compiler<'_> {
    pub(super) fn call(
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
                crate::cel::library::time::parse_duration(s.inner()).is_some()
            } else {
                crate::cel::library::time::parse_rfc3339(s.inner()).is_some()
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

    pub(super) fn function_call(
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
    pub(super) fn resolve(
        &self,
        id: u64,
        function: &Function,
        types: &[Type],
    ) -> Result<Type, CompileError> {
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

    pub(super) fn has(&mut self, arg: &IdedExpr) -> Compiled {
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
    pub(super) fn regex_call(
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
        let regex = crate::cel::library::regex::compile(text.inner())
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

    pub(super) fn optional_or(
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

    pub(super) fn comprehension(
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
    pub(super) fn loop_body(
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
