//! The pod annotations policies read (AppArmor and the legacy seccomp keys); every other
//! annotation is skipped while decoding.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::Text;

/// The annotations policies read, as `(key, value)` pairs in document order. Only the keys
/// that carry security settings are kept (AppArmor and the legacy seccomp annotations, see
/// [`Annotations::KEPT_PREFIXES`]); every other annotation is skipped while decoding, so a pod
/// with the usual labels-and-annotations clutter costs no allocation here.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Annotations<'a>(Vec<(Text<'a>, Text<'a>)>);

static NO_ANNOTATIONS: Annotations<'static> = Annotations(Vec::new());

impl<'a> Annotations<'a> {
    /// Annotation keys starting with one of these are kept.
    pub const KEPT_PREFIXES: [&'static str; 3] = [
        "container.apparmor.security.beta.kubernetes.io/",
        "seccomp.security.alpha.kubernetes.io/",
        "container.seccomp.security.alpha.kubernetes.io/",
    ];

    /// An empty set, for views of a bare pod spec.
    pub fn none() -> &'static Annotations<'static> {
        &NO_ANNOTATIONS
    }

    fn kept(key: &str) -> bool {
        Self::KEPT_PREFIXES.iter().any(|p| key.starts_with(p))
    }

    /// Builds a set from pairs, keeping only the keys a decoded set would keep.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Annotations(
            pairs
                .into_iter()
                .filter(|(k, _)| Self::kept(k))
                .map(|(k, v)| (Text(Cow::Borrowed(k)), Text(Cow::Borrowed(v))))
                .collect(),
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    /// The value of `key` (the last one, should a document repeat a key).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| **k == *key)
            .map(|(_, v)| &**v)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Annotations<'a> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct AnnotationsVisitor<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for AnnotationsVisitor<'a> {
            type Value = Annotations<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of annotations")
            }

            fn visit_map<M: de::MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut kept = Vec::new();
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    if Annotations::kept(&key) {
                        // A null value is an empty string to the API server.
                        let value: Option<Text<'de>> = map.next_value()?;
                        kept.push((key, value.unwrap_or_default()));
                    } else {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
                Ok(Annotations(kept))
            }
        }

        de.deserialize_map(AnnotationsVisitor(std::marker::PhantomData))
    }
}
