//! CEL as the Kubernetes API server runs it for admission: the expression language of
//! ValidatingAdmissionPolicies and of portier's own `check: cel` policies.
//!
//! - [`compile`] parses and type-checks an expression when the policy set loads, against the
//!   declarations an admission expression has (`object`, `oldObject`, `request`, `params`,
//!   `variables`; [`Declarations`]), so a syntax error, an unknown function or field of
//!   `request`, or a call with the wrong types is a load error with a line and column.
//! - [`Program::evaluate`] runs it over values that borrow from the request's bytes
//!   ([`json::Json`]), with the API server's error semantics and a cost limit
//!   ([`eval::PER_CALL_LIMIT`] units per expression, [`eval::RUNTIME_BUDGET`] per policy).
//!
//! Parsing is the `cel` crate's (cel-go's grammar); checking, evaluation and the libraries are
//! portier's: the crate's own interpreter has no cost accounting, no two-variable
//! comprehensions and none of Kubernetes' libraries, and measured short of Kubernetes'
//! semantics elsewhere (see `tests` below and the room's README section in the project
//! README). The environment is the API server's for Kubernetes 1.37 ([`library`]), minus the
//! authorizer.

pub mod admission;
mod compile;
pub mod deferred;
pub mod eval;
pub mod json;
pub mod judge;
pub mod library;
pub mod matcher;
mod node;
pub mod policy;
pub mod resources;
pub mod types;
pub mod value;
pub mod vap;

#[cfg(test)]
mod check_tests;
#[cfg(test)]
mod library_tests;
#[cfg(test)]
mod namespace_tests;
#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod readme_tests;
#[cfg(test)]
mod tests;

use std::fmt;

pub use admission::Admission;
pub use compile::{MAX_DEPTH, MAX_SOURCE_CHARS};
pub use eval::{Activation, EvalError, Evaluation, PER_CALL_LIMIT, RUNTIME_BUDGET, Scope};
pub use json::Json;
pub use judge::{Judged, judge};
pub use node::Root;
pub use types::Type;
pub use value::Value;

/// What an expression may refer to besides the request's variables.
#[derive(Debug, Clone, Default)]
pub struct Declarations {
    /// `params` is declared (a ValidatingAdmissionPolicy with a `paramKind`).
    pub params: bool,
    /// The policy's variables declared before this expression, with their types.
    pub variables: Vec<(String, Type)>,
}

/// Why an expression does not compile, and where (1-based, in characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} column {column}: {message}")]
pub struct CompileError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl CompileError {
    pub(crate) fn at(line: usize, column: usize, message: impl Into<String>) -> Self {
        CompileError {
            line,
            column,
            message: message.into(),
        }
    }
}

/// A compiled, checked expression. Immutable, shared by every evaluation.
#[derive(Clone)]
pub struct Program {
    root: node::Node,
    output: Type,
    source: String,
    reads_namespace_object: bool,
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Program")
            .field("source", &self.source)
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

/// Parses and checks `source` against `decls`.
pub fn compile(source: &str, decls: &Declarations) -> Result<Program, CompileError> {
    let checked = compile::compile(source, decls)?;
    Ok(Program {
        root: checked.node,
        output: checked.output,
        source: source.to_owned(),
        reads_namespace_object: checked.reads_namespace_object,
    })
}

impl Program {
    /// The type the checker found the expression produces.
    pub fn output(&self) -> &Type {
        &self.output
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the expression names `namespaceObject`: evaluating it needs the namespace.
    pub fn reads_namespace_object(&self) -> bool {
        self.reads_namespace_object
    }

    /// Evaluates the expression in `scope`, which also holds its policy's variables.
    pub fn evaluate<'a>(&'a self, scope: &Scope<'_, 'a>) -> Evaluation<'a> {
        eval::evaluate(&self.root, scope)
    }
}
