//! The Namespaces among `check`'s inputs: what policies know of an object's namespace
//! offline. A `namespaceSelector` reads their labels and a CEL `namespaceObject` the whole
//! Namespace, as the API server would read them from its namespace cache; an object whose
//! namespace is not among the inputs has a namespace nothing is known of (a selector that
//! needs it cannot be decided and fails closed, saying so).

use std::collections::BTreeMap;

use crate::cel::{Admission, Json};
use crate::labels::{Labels, NoLabels};
use crate::namespaces::{LabelSource, NamespaceLabels};

/// Why the labels of a namespace no input holds are not known.
pub const NOT_IN_INPUTS: &str =
    "no Namespace of that name is among the inputs: add it to the files checked";

/// The Namespace objects read from the inputs, by name.
#[derive(Debug, Default)]
pub struct InputNamespaces {
    by_name: BTreeMap<String, Json<'static>>,
}

impl InputNamespaces {
    /// Collects the `v1` Namespaces among `objects` (a later one of the same name wins, as a
    /// later `kubectl apply` would).
    pub fn collect<'v>(objects: impl IntoIterator<Item = &'v serde_json::Value>) -> Self {
        let mut by_name = BTreeMap::new();
        for object in objects {
            let is_namespace = object.get("apiVersion").and_then(|v| v.as_str()) == Some("v1")
                && object.get("kind").and_then(|v| v.as_str()) == Some("Namespace");
            let name = object
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(|n| n.as_str());
            if let (true, Some(name)) = (is_namespace, name) {
                by_name.insert(name.to_owned(), Json::from_value(object));
            }
        }
        InputNamespaces { by_name }
    }

    /// Adds (or replaces) one Namespace.
    pub fn insert(&mut self, namespace: &serde_json::Value) {
        if let Some(name) = namespace["metadata"]["name"].as_str() {
            self.by_name
                .insert(name.to_owned(), Json::from_value(namespace));
        }
    }

    pub fn get(&self, name: &str) -> Option<&Json<'static>> {
        self.by_name.get(name)
    }

    /// What is known of the labels of namespace `name`.
    pub fn labels(&self, name: &str) -> NamespaceLabels<'_> {
        match self.get(name) {
            Some(namespace) => {
                let labels: &dyn Labels =
                    match namespace.get("metadata").and_then(|m| m.get("labels")) {
                        Some(labels) => labels,
                        None => &NoLabels,
                    };
                NamespaceLabels::Known(labels, LabelSource::Input)
            }
            None => NamespaceLabels::Unknown(NOT_IN_INPUTS),
        }
    }

    /// `admission` with its namespace as far as the inputs know it.
    pub fn bind<'a>(&'a self, admission: Admission<'a>) -> Admission<'a> {
        let namespace = admission.attributes.namespace;
        match self.get(namespace) {
            Some(object) => admission.with_namespace_object(object, LabelSource::Input),
            None => admission.with_namespace_labels(NamespaceLabels::Unknown(NOT_IN_INPUTS)),
        }
    }
}
