//! What policies know of a request's namespace: its labels, and where they came from.
//!
//! The engine reads namespace labels through [`NamespaceLabels`], whoever found them: `serve`
//! from its watch-fed cache (or one read from the API for a namespace the cache does not hold
//! yet), a Namespace review from its own object, `check` from its input, `audit` from the
//! namespaces it lists. So the three entry points share one evaluation and differ only in where
//! the labels come from, which [`LabelSource`] says (and metrics count).

mod cache;

pub use cache::{Lookup, NamespaceCache, Namespaces, labels_of};

use crate::labels::Labels;

/// Where a request's namespace labels came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelSource {
    /// `serve`'s watch-fed namespace cache.
    Cache,
    /// Read from the API because the cache did not hold the namespace yet (then remembered).
    Api,
    /// The object under review is the Namespace itself (a Namespace CREATE or UPDATE).
    Object,
    /// `check`: a Namespace object among its input documents.
    Input,
    /// `check --namespace-labels NS=k=v,...`.
    Flag,
    /// `audit`: the namespace as the audit listed or read it.
    Listed,
}

impl LabelSource {
    pub const ALL: [LabelSource; 6] = [
        LabelSource::Cache,
        LabelSource::Api,
        LabelSource::Object,
        LabelSource::Input,
        LabelSource::Flag,
        LabelSource::Listed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LabelSource::Cache => "cache",
            LabelSource::Api => "api",
            LabelSource::Object => "object",
            LabelSource::Input => "input",
            LabelSource::Flag => "flag",
            LabelSource::Listed => "listed",
        }
    }
}

/// What is known of the labels of a request's namespace.
#[derive(Clone, Copy)]
pub enum NamespaceLabels<'r> {
    /// The labels, and where they came from.
    Known(&'r dyn Labels, LabelSource),
    /// Not known; the text says why, for the message of a policy that needed them
    /// (e.g. "portier has no access to the Kubernetes API").
    Unknown(&'r str),
}

impl std::fmt::Debug for NamespaceLabels<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NamespaceLabels::Known(_, source) => write!(f, "Known(from {})", source.as_str()),
            NamespaceLabels::Unknown(why) => write!(f, "Unknown({why:?})"),
        }
    }
}

impl<'r> NamespaceLabels<'r> {
    /// What a caller with no source of namespace labels passes.
    pub const NOT_GIVEN: NamespaceLabels<'static> =
        NamespaceLabels::Unknown("no labels were given for the namespace");

    pub fn labels(&self) -> Option<&'r dyn Labels> {
        match *self {
            NamespaceLabels::Known(labels, _) => Some(labels),
            NamespaceLabels::Unknown(_) => None,
        }
    }

    pub fn source(&self) -> Option<LabelSource> {
        match self {
            NamespaceLabels::Known(_, source) => Some(*source),
            NamespaceLabels::Unknown(_) => None,
        }
    }
}
