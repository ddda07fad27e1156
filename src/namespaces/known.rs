//! Namespaces known without a cache: `check`'s input (Namespace objects, `--namespace-labels`)
//! and `audit`'s list. Looked up by name into the same [`Found`] that `serve`'s cache gives.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;

use super::{Found, LabelSource};

/// A `--namespace-labels` value that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "--namespace-labels {given:?}: {why} (expected NAMESPACE=key=value,key=value..., or NAMESPACE= for no labels)"
)]
pub struct NamespaceLabelsFlagError {
    pub given: String,
    pub why: &'static str,
}

/// Reads one `--namespace-labels NS=key=value,key=value` (`NS=` for no labels).
pub fn parse_namespace_labels_flag(
    flag: &str,
) -> Result<(String, BTreeMap<String, String>), NamespaceLabelsFlagError> {
    let fail = |why| NamespaceLabelsFlagError {
        given: flag.to_owned(),
        why,
    };
    let (name, pairs) = flag.split_once('=').ok_or_else(|| fail("no '='"))?;
    if name.is_empty() {
        return Err(fail("no namespace name before the first '='"));
    }
    let mut labels = BTreeMap::new();
    for pair in pairs.split(',').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| fail("a label without '=value'"))?;
        if key.is_empty() {
            return Err(fail("a label without a key"));
        }
        labels.insert(key.to_owned(), value.to_owned());
    }
    Ok((name.to_owned(), labels))
}

/// Namespaces by name, with where each came from.
#[derive(Debug, Default)]
pub struct KnownNamespaces {
    map: HashMap<String, (Arc<Namespace>, LabelSource)>,
    /// Why a namespace not in the map is unknown.
    missing: &'static str,
}

impl KnownNamespaces {
    /// None yet; a name not added is unknown for `missing`.
    pub fn new(missing: &'static str) -> KnownNamespaces {
        KnownNamespaces {
            map: HashMap::new(),
            missing,
        }
    }

    /// Adds (or replaces) a namespace under its `metadata.name`; one without a name is ignored.
    pub fn insert(&mut self, namespace: Namespace, source: LabelSource) {
        if let Some(name) = namespace.metadata.name.clone().filter(|n| !n.is_empty()) {
            self.map.insert(name, (Arc::new(namespace), source));
        }
    }

    /// Adds the labels of one `--namespace-labels NS=k=v,...`: they are all the namespace's
    /// labels (what the input said of it is replaced); the same NS given twice merges.
    pub fn insert_flag(&mut self, flag: &str) -> Result<(), NamespaceLabelsFlagError> {
        let (name, given) = parse_namespace_labels_flag(flag)?;
        let mut labels = match self.map.get(&name) {
            Some((ns, LabelSource::Flag)) => ns.metadata.labels.clone().unwrap_or_default(),
            _ => BTreeMap::new(),
        };
        labels.extend(given);
        let mut namespace = Namespace::default();
        namespace.metadata.name = Some(name.to_owned());
        namespace.metadata.labels = Some(labels);
        self.insert(namespace, LabelSource::Flag);
        Ok(())
    }

    /// What is known of namespace `name`.
    pub fn find(&self, name: &str) -> Found<'_> {
        match self.map.get(name) {
            Some((namespace, source)) => Found::Known(namespace, *source),
            None => Found::Unknown(self.missing),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_give_every_label_of_a_namespace_and_bad_ones_are_refused() {
        let mut known = KnownNamespaces::new("not given");
        let mut input = Namespace::default();
        input.metadata.name = Some("shop".into());
        input.metadata.labels = Some([("old".to_owned(), "x".to_owned())].into());
        known.insert(input, LabelSource::Input);
        known.insert_flag("shop=tier=prod,team=a").unwrap();
        known.insert_flag("shop=zone=1").unwrap();
        known.insert_flag("bare=").unwrap();
        let found = known.find("shop");
        let labels = found.labels().labels().unwrap();
        assert_eq!(labels.label("tier").as_deref(), Some("prod"));
        assert_eq!(labels.label("zone").as_deref(), Some("1"));
        assert_eq!(
            labels.label("old"),
            None,
            "the flag replaces the input's labels"
        );
        assert_eq!(found.labels().source(), Some(LabelSource::Flag));
        assert_eq!(
            found.object().unwrap().metadata.name.as_deref(),
            Some("shop")
        );
        assert!(known.find("bare").labels().labels().is_some());
        assert!(matches!(
            known.find("other").labels(),
            crate::namespaces::NamespaceLabels::Unknown("not given")
        ));
        for bad in ["shop", "=a=b", "shop=tier", "shop==x"] {
            assert!(known.insert_flag(bad).is_err(), "{bad}");
        }
    }
}
