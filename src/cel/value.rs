//! CEL values during one evaluation.
//!
//! A value borrows what it can: strings, lists and maps read from the object are views into
//! the decoded [`Json`] tree (`'a` is how long that tree and the compiled program live), and
//! only what an expression computes is allocated, behind `Rc` so that copying a value is cheap.
//! Values never outlive the evaluation that made them, so they need not be `Send`.

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;
use std::rc::Rc;

use super::json::{Entries, Items, Json, Node};
use super::library::{semver::Semver, url::Url};
use crate::policy::quantity::Quantity;

/// A string, borrowed from the object or the program, or computed.
#[derive(Clone)]
pub enum Str<'a> {
    Borrowed(&'a str),
    Owned(Rc<str>),
}

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Str::Borrowed(s) => s,
            Str::Owned(s) => s,
        }
    }
}

impl fmt::Debug for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl From<String> for Str<'_> {
    fn from(s: String) -> Self {
        Str::Owned(Rc::from(s))
    }
}

/// A list: a view of a JSON array, or computed values.
#[derive(Clone)]
pub enum List<'a> {
    Json(Items<'a>),
    Values(Rc<Vec<Value<'a>>>),
}

impl<'a> List<'a> {
    pub fn len(&self) -> usize {
        match self {
            List::Json(items) => items.len(),
            List::Values(items) => items.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, index: usize) -> Option<Value<'a>> {
        match self {
            List::Json(items) => items.get(index).map(Value::from_node),
            List::Values(items) => items.get(index).cloned(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Value<'a>> + '_ {
        (0..self.len()).filter_map(move |i| self.get(i))
    }

    /// The values as a vector (copies a JSON view's elements into values).
    pub fn to_vec(&self) -> Vec<Value<'a>> {
        match self {
            List::Json(items) => items.iter().map(Value::from_node).collect(),
            List::Values(items) => items.as_ref().clone(),
        }
    }
}

impl fmt::Debug for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A map: a view of a JSON object (string keys), or computed entries in insertion order.
#[derive(Clone)]
pub enum Map<'a> {
    Json(Entries<'a>),
    Values(Rc<Vec<(Value<'a>, Value<'a>)>>),
}

impl<'a> Map<'a> {
    pub fn len(&self) -> usize {
        match self {
            Map::Json(entries) => entries.len(),
            Map::Values(entries) => entries.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value under a string key.
    pub fn get_str(&self, key: &str) -> Option<Value<'a>> {
        match self {
            Map::Json(entries) => entries.get(key).map(Value::from_node),
            Map::Values(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Value::String(s) if &**s == key))
                .map(|(_, v)| v.clone()),
        }
    }

    /// The value under `key`; numeric keys are found whatever their numeric type, as CEL's
    /// heterogeneous equality has it. `None` also for key types no map can hold.
    pub fn get(&self, key: &Value<'_>) -> Option<Value<'a>> {
        match (self, key) {
            (_, Value::String(s)) => self.get_str(s),
            (Map::Json(_), _) => None,
            (Map::Values(entries), key) => entries
                .iter()
                .find(|(k, _)| k.equals(key))
                .map(|(_, v)| v.clone()),
        }
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = Value<'a>> + '_ {
        (0..self.len()).filter_map(move |i| match self {
            Map::Json(entries) => entries.key(i).map(|k| Value::String(Str::Borrowed(k))),
            Map::Values(_) => self.entry(i).map(|(k, _)| k),
        })
    }

    pub fn entry(&self, index: usize) -> Option<(Value<'a>, Value<'a>)> {
        match self {
            Map::Json(entries) => entries
                .entry(index)
                .map(|(k, v)| (Value::String(Str::Borrowed(k)), Value::from_node(v))),
            Map::Values(entries) => entries.get(index).cloned(),
        }
    }

    pub fn entries(&self) -> impl Iterator<Item = (Value<'a>, Value<'a>)> + '_ {
        (0..self.len()).filter_map(move |i| self.entry(i))
    }
}

impl fmt::Debug for Map<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.entries()).finish()
    }
}

/// A duration in nanoseconds; CEL allows about ±10,000 years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub i128);

/// A point in time, in nanoseconds since the Unix epoch (UTC), years 1 to 9999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i128);

/// A CIDR block: an address and a prefix length (the address as written, not masked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// The named formats of `format.named()` and the `format.*()` functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedFormat(pub &'static str);

/// A type, as `type(x)` returns it and type names (`int`, `string`...) denote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeName {
    Null,
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    List,
    Map,
    Type,
    Optional,
    Duration,
    Timestamp,
    Quantity,
    Ip,
    Cidr,
    Url,
    Semver,
    Format,
}

impl TypeName {
    pub fn as_str(self) -> &'static str {
        match self {
            TypeName::Null => "null_type",
            TypeName::Bool => "bool",
            TypeName::Int => "int",
            TypeName::Uint => "uint",
            TypeName::Double => "double",
            TypeName::String => "string",
            TypeName::Bytes => "bytes",
            TypeName::List => "list",
            TypeName::Map => "map",
            TypeName::Type => "type",
            TypeName::Optional => "optional_type",
            TypeName::Duration => "google.protobuf.Duration",
            TypeName::Timestamp => "google.protobuf.Timestamp",
            TypeName::Quantity => "kubernetes.Quantity",
            TypeName::Ip => "net.IP",
            TypeName::Cidr => "net.CIDR",
            TypeName::Url => "kubernetes.URL",
            TypeName::Semver => "kubernetes.Semver",
            TypeName::Format => "kubernetes.NamedFormat",
        }
    }
}

/// One CEL value.
#[derive(Clone, Debug, Default)]
pub enum Value<'a> {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    String(Str<'a>),
    Bytes(Rc<[u8]>),
    List(List<'a>),
    Map(Map<'a>),
    /// `optional.of(v)` or `optional.none()`.
    Optional(Option<Rc<Value<'a>>>),
    Type(TypeName),
    Duration(Duration),
    Timestamp(Timestamp),
    Quantity(Quantity),
    Ip(IpAddr),
    Cidr(Cidr),
    Url(Rc<Url>),
    Semver(Rc<Semver>),
    Format(NamedFormat),
}

impl<'a> Value<'a> {
    /// The value a JSON tree reads as, borrowing from it.
    pub fn from_json(json: &'a Json<'a>) -> Value<'a> {
        Value::from_node(json.node())
    }

    /// The value a JSON node reads as, borrowing from it.
    pub fn from_node(node: Node<'a>) -> Value<'a> {
        match node {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::Int(i) => Value::Int(i),
            Node::Double(d) => Value::Double(d),
            Node::String(s) => Value::String(Str::Borrowed(s)),
            Node::Array(items) => Value::List(List::Json(items)),
            Node::Object(entries) => Value::Map(Map::Json(entries)),
        }
    }

    pub fn string(s: impl Into<String>) -> Value<'a> {
        Value::String(Str::from(s.into()))
    }

    pub fn list(items: Vec<Value<'a>>) -> Value<'a> {
        Value::List(List::Values(Rc::new(items)))
    }

    pub fn map(entries: Vec<(Value<'a>, Value<'a>)>) -> Value<'a> {
        Value::Map(Map::Values(Rc::new(entries)))
    }

    pub fn optional(value: Option<Value<'a>>) -> Value<'a> {
        Value::Optional(value.map(Rc::new))
    }

    pub fn type_name(&self) -> TypeName {
        match self {
            Value::Null => TypeName::Null,
            Value::Bool(_) => TypeName::Bool,
            Value::Int(_) => TypeName::Int,
            Value::Uint(_) => TypeName::Uint,
            Value::Double(_) => TypeName::Double,
            Value::String(_) => TypeName::String,
            Value::Bytes(_) => TypeName::Bytes,
            Value::List(_) => TypeName::List,
            Value::Map(_) => TypeName::Map,
            Value::Optional(_) => TypeName::Optional,
            Value::Type(_) => TypeName::Type,
            Value::Duration(_) => TypeName::Duration,
            Value::Timestamp(_) => TypeName::Timestamp,
            Value::Quantity(_) => TypeName::Quantity,
            Value::Ip(_) => TypeName::Ip,
            Value::Cidr(_) => TypeName::Cidr,
            Value::Url(_) => TypeName::Url,
            Value::Semver(_) => TypeName::Semver,
            Value::Format(_) => TypeName::Format,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// CEL equality: numbers compare across int, uint and double; values of different types
    /// are unequal (never an error); NaN equals nothing.
    pub fn equals(&self, other: &Value<'_>) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(_) | Uint(_) | Double(_), Int(_) | Uint(_) | Double(_)) => {
                compare_numbers(self, other) == Some(Ordering::Equal)
            }
            (String(a), String(b)) => **a == **b,
            (Bytes(a), Bytes(b)) => a == b,
            (List(a), List(b)) => {
                a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.equals(&y))
            }
            (Map(a), Map(b)) => {
                a.len() == b.len()
                    && a.entries()
                        .all(|(k, v)| b.get(&k).is_some_and(|w| v.equals(&w)))
            }
            (Optional(a), Optional(b)) => match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => a.equals(b),
                _ => false,
            },
            (Type(a), Type(b)) => a == b,
            (Duration(a), Duration(b)) => a == b,
            (Timestamp(a), Timestamp(b)) => a == b,
            (Quantity(a), Quantity(b)) => a == b,
            (Ip(a), Ip(b)) => a == b,
            (Cidr(a), Cidr(b)) => a == b,
            (Url(a), Url(b)) => a == b,
            (Semver(a), Semver(b)) => a.precedence(b) == Ordering::Equal,
            (Format(a), Format(b)) => a == b,
            _ => false,
        }
    }

    /// The order of two values of orderable types (numbers across types, strings, bytes,
    /// booleans, durations, timestamps); `None` when they cannot be ordered (other types,
    /// mixed types, NaN).
    pub fn compare(&self, other: &Value<'_>) -> Option<Ordering> {
        use Value::*;
        match (self, other) {
            (Int(_) | Uint(_) | Double(_), Int(_) | Uint(_) | Double(_)) => {
                compare_numbers(self, other)
            }
            (String(a), String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (Bytes(a), Bytes(b)) => Some(a.cmp(b)),
            (Bool(a), Bool(b)) => Some(a.cmp(b)),
            (Duration(a), Duration(b)) => Some(a.cmp(b)),
            (Timestamp(a), Timestamp(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    /// Whether the value is of a type `compare` orders.
    pub fn is_orderable(&self) -> bool {
        matches!(
            self,
            Value::Int(_)
                | Value::Uint(_)
                | Value::Double(_)
                | Value::String(_)
                | Value::Bytes(_)
                | Value::Bool(_)
                | Value::Duration(_)
                | Value::Timestamp(_)
        )
    }

    /// The size cost functions see: characters of a string, elements of a list or map,
    /// bytes of bytes; 1 for everything else.
    pub fn cost_size(&self) -> u64 {
        match self {
            Value::String(s) => s.len() as u64,
            Value::Bytes(b) => b.len() as u64,
            Value::List(l) => l.len() as u64,
            Value::Map(m) => m.len() as u64,
            _ => 1,
        }
    }
}

/// Compares numbers of any numeric types exactly, as cel-go does for cross-type comparisons.
fn compare_numbers(a: &Value<'_>, b: &Value<'_>) -> Option<Ordering> {
    use Value::*;
    match (a, b) {
        (Int(x), Int(y)) => Some(x.cmp(y)),
        (Uint(x), Uint(y)) => Some(x.cmp(y)),
        (Double(x), Double(y)) => x.partial_cmp(y),
        (Int(x), Uint(y)) => Some(if *x < 0 {
            Ordering::Less
        } else {
            (*x as u64).cmp(y)
        }),
        (Uint(_), Int(_)) => compare_numbers(b, a).map(Ordering::reverse),
        (Int(x), Double(y)) => compare_int_double(*x as i128, *y),
        (Uint(x), Double(y)) => compare_int_double(*x as i128, *y),
        (Double(_), Int(_) | Uint(_)) => compare_numbers(b, a).map(Ordering::reverse),
        _ => None,
    }
}

fn compare_int_double(i: i128, d: f64) -> Option<Ordering> {
    if d.is_nan() {
        return None;
    }
    if d < -9.3e18 {
        return Some(Ordering::Greater);
    }
    if d > 1.85e19 {
        return Some(Ordering::Less);
    }
    // Compare exactly: the integer part of d, then its fraction.
    let whole = d.trunc();
    let whole_int = whole as i128;
    match i.cmp(&whole_int) {
        Ordering::Equal => {
            let frac = d - whole;
            Some(if frac > 0.0 {
                Ordering::Less
            } else if frac < 0.0 {
                Ordering::Greater
            } else {
                Ordering::Equal
            })
        }
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_across_types() {
        assert!(Value::Int(1).equals(&Value::Uint(1)));
        assert!(Value::Int(1).equals(&Value::Double(1.0)));
        assert!(!Value::Int(1).equals(&Value::Double(1.5)));
        assert!(!Value::Double(f64::NAN).equals(&Value::Double(f64::NAN)));
        assert_eq!(
            Value::Int(-1).compare(&Value::Uint(0)),
            Some(Ordering::Less)
        );
        assert_eq!(
            Value::Int(2).compare(&Value::Double(1.5)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            Value::Int(i64::MAX).compare(&Value::Double(9.3e18)),
            Some(Ordering::Less)
        );
        assert_eq!(Value::Int(1).compare(&Value::Double(f64::NAN)), None);
        assert_eq!(Value::Int(1).compare(&Value::string("1")), None);
    }

    #[test]
    fn values_of_different_types_are_unequal() {
        assert!(!Value::Int(1).equals(&Value::string("1")));
        assert!(!Value::Null.equals(&Value::Bool(false)));
        let json = Json::parse(r#"{"a": [1, "x"], "b": null}"#).unwrap();
        let from_json = Value::from_json(&json);
        let built = Value::map(vec![
            (Value::string("b"), Value::Null),
            (
                Value::string("a"),
                Value::list(vec![Value::Uint(1), Value::string("x")]),
            ),
        ]);
        assert!(from_json.equals(&built));
        assert!(built.equals(&from_json));
    }
}
