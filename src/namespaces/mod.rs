//! What policies know of a request's namespace: its labels, its Namespace object, and where
//! they came from.
//!
//! **The one seam** is [`Found`]: a namespace looked up by name, whoever found it. `serve` gets
//! it from its watch-fed cache (`NamespaceCache::lookup(name, deadline).await.found()`, a
//! namespace the cache does not hold yet read once from the API); `check` and `audit` from
//! [`KnownNamespaces::find`] (Namespace objects in `check`'s input and its
//! `--namespace-labels`, the namespaces `audit` lists). [`Found::labels`] is what the engine
//! reads ([`NamespaceLabels`]: label selectors, Pod Security labels); [`Found::object`] is the
//! whole `Arc<Namespace>`, for what needs more than labels (a ValidatingAdmissionPolicy's
//! `namespaceObject`). A Namespace review is its own labels (`LabelSource::Object`). So the
//! entry points share one evaluation and differ only in where the namespace comes from, which
//! [`LabelSource`] says (and metrics count).

mod cache;
mod known;
mod pods;

pub use cache::{Lookup, NamespaceCache, Namespaces, labels_of};
pub use known::{KnownNamespaces, NamespaceLabelsFlagError, parse_namespace_labels_flag};

use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;

/// A namespace looked up by name: its object and labels, or why they are not known.
#[derive(Debug, Clone, Copy)]
pub enum Found<'a> {
    Known(&'a Arc<Namespace>, LabelSource),
    Unknown(&'a str),
}

impl<'a> Found<'a> {
    /// Its labels, for the engine.
    pub fn labels(&self) -> NamespaceLabels<'a> {
        match *self {
            Found::Known(namespace, source) => NamespaceLabels::Known(labels_of(namespace), source),
            Found::Unknown(why) => NamespaceLabels::Unknown(why),
        }
    }

    /// The whole Namespace, as the API server has it (managed fields dropped).
    pub fn object(&self) -> Option<&'a Arc<Namespace>> {
        match *self {
            Found::Known(namespace, _) => Some(namespace),
            Found::Unknown(_) => None,
        }
    }
}

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
