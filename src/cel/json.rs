//! The object tree CEL expressions read, decoded once from the review's bytes.
//!
//! The API server evaluates admission expressions over the unstructured form of objects
//! (`common.SchemalessTypedToVal`: what JSON decoding into `map[string]any` gives), so that
//! is what portier builds: maps, lists, strings, booleans, null, and numbers that are `int`
//! when integral and in range, `double` otherwise. Strings borrow from the request body
//! unless they hold escapes; maps keep their keys in document order and are searched
//! linearly (Kubernetes objects have a handful of keys per level).
//!
//! At admission the review is not decoded into such a tree: its objects and arrays are decoded
//! only where expressions look ([`super::deferred`]). A [`Node`] reads either alike.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::deferred::{Document, Level, Slot};

/// A JSON value, borrowing its strings from the text it was decoded from.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Json<'a> {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

/// An object's `metadata.labels` as label selectors read them; not a map of strings, no
/// labels.
impl crate::labels::Labels for Json<'_> {
    fn label(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key).and_then(Json::as_str).map(Cow::Borrowed)
    }
}

impl crate::labels::Labels for Node<'_> {
    fn label(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key).and_then(|v| v.as_str()).map(Cow::Borrowed)
    }
}

/// A JSON value as expressions read it, from a decoded tree or from a [`Document`], whose
/// objects and arrays decode one level at a time as nodes of them are made.
#[derive(Debug, Clone, Copy)]
pub enum Node<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    String(&'a str),
    Array(Items<'a>),
    Object(Entries<'a>),
}

/// The items of an array.
#[derive(Debug, Clone, Copy)]
pub enum Items<'a> {
    Tree(&'a [Json<'a>]),
    Document(&'a Document<'a>, &'a [Slot]),
}

/// The entries of an object, in document order.
#[derive(Debug, Clone, Copy)]
pub enum Entries<'a> {
    Tree(&'a [(Cow<'a, str>, Json<'a>)]),
    Document(&'a Document<'a>, &'a [(Slot, Slot)]),
}

impl<'a> Node<'a> {
    /// The node of a document's value.
    pub fn of(document: &'a Document<'a>, slot: &'a Slot) -> Node<'a> {
        match slot {
            Slot::Null => Node::Null,
            Slot::Bool(b) => Node::Bool(*b),
            Slot::Int(i) => Node::Int(*i),
            Slot::Double(d) => Node::Double(*d),
            Slot::Text { .. } => Node::String(document.text_of(slot)),
            Slot::Escaped(s) => Node::String(s),
            Slot::Container(index) => Node::of_container(document, *index),
        }
    }

    fn of_container(document: &'a Document<'a>, index: u32) -> Node<'a> {
        match document.level(index) {
            Level::Array(items) => Node::Array(Items::Document(document, items)),
            Level::Object(entries) => Node::Object(Entries::Document(document, entries)),
            Level::Unreadable => Node::Null,
        }
    }

    /// The value of `key` when this is an object that has it (the last, should a key repeat,
    /// as Go's decoder keeps it).
    pub fn get(&self, key: &str) -> Option<Node<'a>> {
        match self {
            Node::Object(entries) => entries.get(key),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a tree that owns its strings.
    pub fn to_owned_json(&self) -> Json<'static> {
        let owned = |s: &str| Cow::Owned(s.to_owned());
        match *self {
            Node::Null => Json::Null,
            Node::Bool(b) => Json::Bool(b),
            Node::Int(i) => Json::Int(i),
            Node::Double(d) => Json::Double(d),
            Node::String(s) => Json::String(owned(s)),
            Node::Array(items) => Json::Array(items.iter().map(|n| n.to_owned_json()).collect()),
            Node::Object(entries) => Json::Object(
                entries
                    .iter()
                    .map(|(k, v)| (owned(k), v.to_owned_json()))
                    .collect(),
            ),
        }
    }
}

impl<'a> Items<'a> {
    pub fn len(&self) -> usize {
        match self {
            Items::Tree(items) => items.len(),
            Items::Document(_, items) => items.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, index: usize) -> Option<Node<'a>> {
        match *self {
            Items::Tree(items) => items.get(index).map(Json::node),
            Items::Document(document, items) => items.get(index).map(|s| Node::of(document, s)),
        }
    }

    pub fn iter(self) -> impl Iterator<Item = Node<'a>> {
        (0..self.len()).filter_map(move |i| self.get(i))
    }
}

impl<'a> Entries<'a> {
    pub fn len(&self) -> usize {
        match self {
            Entries::Tree(entries) => entries.len(),
            Entries::Document(_, entries) => entries.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key of the entry at `index`.
    pub fn key(&self, index: usize) -> Option<&'a str> {
        match *self {
            Entries::Tree(entries) => entries.get(index).map(|(k, _)| &**k),
            Entries::Document(document, entries) => {
                entries.get(index).map(|(k, _)| key_text(document, k))
            }
        }
    }

    /// The entry at `index`.
    pub fn entry(&self, index: usize) -> Option<(&'a str, Node<'a>)> {
        match *self {
            Entries::Tree(entries) => entries.get(index).map(|(k, v)| (&**k, v.node())),
            Entries::Document(document, entries) => entries
                .get(index)
                .map(|(k, v)| (key_text(document, k), Node::of(document, v))),
        }
    }

    /// The value under `key` (the last, should a key repeat).
    pub fn get(&self, key: &str) -> Option<Node<'a>> {
        match *self {
            Entries::Tree(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.node()),
            Entries::Document(document, entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| document.key_is(k, key))
                .map(|(_, v)| Node::of(document, v)),
        }
    }

    pub fn iter(self) -> impl Iterator<Item = (&'a str, Node<'a>)> {
        (0..self.len()).filter_map(move |i| self.entry(i))
    }
}

fn key_text<'a>(document: &'a Document<'a>, key: &'a Slot) -> &'a str {
    match key {
        Slot::Escaped(s) => s,
        other => document.text_of(other),
    }
}

impl PartialEq for Node<'_> {
    /// Nodes are equal when they read the same, whichever form they come from.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Node::Null, Node::Null) => true,
            (Node::Bool(a), Node::Bool(b)) => a == b,
            (Node::Int(a), Node::Int(b)) => a == b,
            (Node::Double(a), Node::Double(b)) => a == b,
            (Node::String(a), Node::String(b)) => a == b,
            (Node::Array(a), Node::Array(b)) => a.len() == b.len() && a.iter().eq(b.iter()),
            (Node::Object(a), Node::Object(b)) => a.len() == b.len() && a.iter().eq(b.iter()),
            _ => false,
        }
    }
}

impl<'a> Json<'a> {
    /// Decodes JSON text, borrowing from it.
    pub fn parse(text: &'a str) -> Result<Json<'a>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        // Nesting is bounded by serde_json's own recursion limit (128).
        let value = Json::deserialize(&mut de)?;
        de.end()?;
        Ok(value)
    }

    /// An owned copy of a `serde_json::Value` (params read from policy files, offline objects).
    pub fn from_value(value: &serde_json::Value) -> Json<'static> {
        match value {
            serde_json::Value::Null => Json::Null,
            serde_json::Value::Bool(b) => Json::Bool(*b),
            serde_json::Value::Number(n) => number(n.as_i64(), n.as_u64(), n.as_f64()),
            serde_json::Value::String(s) => Json::String(Cow::Owned(s.clone())),
            serde_json::Value::Array(items) => {
                Json::Array(items.iter().map(Json::from_value).collect())
            }
            serde_json::Value::Object(map) => Json::Object(
                map.iter()
                    .map(|(k, v)| (Cow::Owned(k.clone()), Json::from_value(v)))
                    .collect(),
            ),
        }
    }

    /// The value of `key` when this is an object that has it (the last, should a key repeat,
    /// as Go's decoder keeps it).
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(entries) => entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a [`Node`].
    pub fn node(&'a self) -> Node<'a> {
        match self {
            Json::Null => Node::Null,
            Json::Bool(b) => Node::Bool(*b),
            Json::Int(i) => Node::Int(*i),
            Json::Double(d) => Node::Double(*d),
            Json::String(s) => Node::String(s),
            Json::Array(items) => Node::Array(Items::Tree(items)),
            Json::Object(entries) => Node::Object(Entries::Tree(entries)),
        }
    }

    /// Moves the value into one that owns its strings.
    pub fn into_owned(self) -> Json<'static> {
        match self {
            Json::Null => Json::Null,
            Json::Bool(b) => Json::Bool(b),
            Json::Int(i) => Json::Int(i),
            Json::Double(d) => Json::Double(d),
            Json::String(s) => Json::String(Cow::Owned(s.into_owned())),
            Json::Array(items) => Json::Array(items.into_iter().map(Json::into_owned).collect()),
            Json::Object(entries) => Json::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                    .collect(),
            ),
        }
    }
}

/// A JSON number as Go's JSON decoding into `any` followed by the unstructured conversion
/// leaves it: integral values that fit `int64` are `int`, everything else `double`.
fn number(int: Option<i64>, uint: Option<u64>, float: Option<f64>) -> Json<'static> {
    match (int, uint, float) {
        (Some(i), _, _) => Json::Int(i),
        (None, Some(u), _) => Json::Double(u as f64),
        (None, None, Some(f)) => Json::Double(f),
        (None, None, None) => Json::Null,
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Json<'a> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_any(JsonVisitor(std::marker::PhantomData))
    }
}

struct JsonVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for JsonVisitor<'a> {
    type Value = Json<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json<'a>, E> {
        Ok(Json::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Json<'a>, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Json<'a>, D::Error> {
        Json::deserialize(de)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json<'a>, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json<'a>, E> {
        Ok(Json::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json<'a>, E> {
        Ok(match i64::try_from(v) {
            Ok(i) => Json::Int(i),
            Err(_) => Json::Double(v as f64),
        })
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json<'a>, E> {
        Ok(Json::Double(v))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Json<'a>, E> {
        Ok(Json::String(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json<'a>, E> {
        Ok(Json::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json<'a>, E> {
        Ok(Json::String(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'a>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element::<Json<'a>>()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'a>, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(key) = map.next_key::<Key<'a>>()? {
            let value = map.next_value::<Json<'a>>()?;
            entries.push((key.0, value));
        }
        Ok(Json::Object(entries))
    }
}

/// A map key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct KeyVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for KeyVisitor<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        de.deserialize_str(KeyVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_int_when_integral_and_in_range() {
        let j = Json::parse(r#"[1, -2, 1.5, 1e3, 9223372036854775807, 9223372036854775808, 2.0]"#)
            .unwrap();
        let Json::Array(items) = j else {
            panic!("not an array")
        };
        assert_eq!(items[0], Json::Int(1));
        assert_eq!(items[1], Json::Int(-2));
        assert_eq!(items[2], Json::Double(1.5));
        assert_eq!(items[3], Json::Double(1000.0));
        assert_eq!(items[4], Json::Int(i64::MAX));
        assert_eq!(items[5], Json::Double(9223372036854775808.0));
        assert_eq!(items[6], Json::Double(2.0));
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let text = r#"{"a": "plain", "b\u0041": "esc\"aped"}"#;
        let j = Json::parse(text).unwrap();
        let Json::Object(entries) = &j else {
            panic!("not an object")
        };
        assert!(matches!(entries[0].0, Cow::Borrowed("a")));
        assert!(matches!(
            &entries[0].1,
            Json::String(Cow::Borrowed("plain"))
        ));
        assert_eq!(entries[1].0, "bA");
        assert_eq!(j.get("bA").and_then(Json::as_str), Some("esc\"aped"));
        assert_eq!(j.get("missing"), None);
    }

    #[test]
    fn owned_values_convert_the_same_way() {
        let v = serde_json::json!({"n": 3, "f": 0.5, "l": [true, null], "s": "x"});
        let j = Json::from_value(&v);
        let text = v.to_string();
        assert_eq!(j, Json::parse(&text).unwrap());
        assert!(Json::parse("[1,").is_err());
        assert!(Json::parse("1 2").is_err());
    }
}
