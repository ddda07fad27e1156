//! Types as the checker sees them: what an expression is known to produce before it runs.
//!
//! The declarations are the API server's for admission expressions (`object`, `oldObject` and
//! `params` are `dyn`: the API server itself declares them so; `request` and `namespaceObject`
//! are objects with declared fields), so a field of the object is known only at run time,
//! while a typo in `request.operaton`, a call of an unknown function or `size(1)` are errors
//! when the policy loads. Unification follows cel-go: a type parameter binds to the first type
//! it meets (`dyn` included), and `dyn` is assignable to and from everything.

use std::fmt;
use std::sync::Arc;

use super::value::TypeName;

/// The type of an expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Type {
    Dyn,
    Null,
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Duration,
    Timestamp,
    /// The type of type values (`type(x)`, `int`).
    Type,
    List(Box<Type>),
    Map(Box<Type>, Box<Type>),
    Optional(Box<Type>),
    /// A library type: quantities, IPs, CIDRs, URLs, semvers, named formats.
    Opaque(TypeName),
    /// An object with declared fields (`request`, `namespaceObject`, `variables`).
    Object(Arc<ObjectType>),
    /// A type parameter of a function signature (`A`, `B`); never the type of an expression.
    Param(u8),
}

/// An object type: a name and its fields.
#[derive(Debug, PartialEq)]
pub struct ObjectType {
    pub name: String,
    pub fields: Vec<(String, Type)>,
}

impl ObjectType {
    pub fn field(&self, name: &str) -> Option<&Type> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

impl Type {
    pub fn list(elem: Type) -> Type {
        Type::List(Box::new(elem))
    }

    pub fn map(key: Type, value: Type) -> Type {
        Type::Map(Box::new(key), Box::new(value))
    }

    pub fn optional(inner: Type) -> Type {
        Type::Optional(Box::new(inner))
    }

    pub fn is_dyn(&self) -> bool {
        matches!(self, Type::Dyn)
    }

    /// Whether a value of type `arg` may be passed where `self` is expected, binding type
    /// parameters in `bindings` as it goes.
    pub fn accepts(&self, arg: &Type, bindings: &mut Bindings) -> bool {
        match (self, arg) {
            (Type::Param(p), _) => match bindings.get(*p).cloned() {
                Some(bound) => {
                    // Compatible: keep the more general of the two, as cel-go does
                    // (`true ? 1 : dyn(2)` is dyn).
                    let ok = bound.accepts(arg, &mut Bindings::default());
                    // An empty literal (`[]`, `{}`: `list(dyn)`) takes the other's type, as
                    // cel-go's fresh type variables do (`x.orValue([])`).
                    let empty_literal = matches!(
                        (&bound, arg),
                        (Type::List(_), Type::List(e)) if e.is_dyn()
                    ) || matches!(
                        (&bound, arg),
                        (Type::Map(..), Type::Map(k, v)) if k.is_dyn() && v.is_dyn()
                    );
                    if ok && !empty_literal {
                        bindings.set(*p, most_general(&bound, arg));
                    }
                    ok
                }
                None => {
                    bindings.set(*p, arg.clone());
                    true
                }
            },
            (Type::Dyn, _) | (_, Type::Dyn) => true,
            (Type::List(p), Type::List(a)) => p.accepts(a, bindings),
            (Type::Map(pk, pv), Type::Map(ak, av)) => {
                pk.accepts(ak, bindings) && pv.accepts(av, bindings)
            }
            (Type::Optional(p), Type::Optional(a)) => p.accepts(a, bindings),
            (Type::Object(p), Type::Object(a)) => p.name == a.name,
            // cel-go's checker keeps the legacy nullness rule: null is assignable to object
            // (struct) types, so `namespaceObject == null` checks.
            (Type::Object(_), Type::Null) | (Type::Null, Type::Object(_)) => true,
            (Type::Opaque(p), Type::Opaque(a)) => p == a,
            (p, a) => {
                std::mem::discriminant(p) == std::mem::discriminant(a)
                    && !matches!(p, Type::List(_) | Type::Map(..) | Type::Optional(_))
            }
        }
    }

    /// This type with its parameters replaced by their bindings (`dyn` when unbound).
    pub fn substitute(&self, bindings: &Bindings) -> Type {
        match self {
            Type::Param(p) => bindings.get(*p).cloned().unwrap_or(Type::Dyn),
            Type::List(e) => Type::list(e.substitute(bindings)),
            Type::Map(k, v) => Type::map(k.substitute(bindings), v.substitute(bindings)),
            Type::Optional(e) => Type::optional(e.substitute(bindings)),
            other => other.clone(),
        }
    }

    /// Whether values of this type may be ordered with `<` and sorted (or may be, for `dyn`).
    pub fn maybe_orderable(&self) -> bool {
        matches!(
            self,
            Type::Dyn
                | Type::Int
                | Type::Uint
                | Type::Double
                | Type::String
                | Type::Bytes
                | Type::Bool
                | Type::Duration
                | Type::Timestamp
        )
    }
}

/// The more general of two compatible types: `dyn` wherever either is `dyn`.
fn most_general(a: &Type, b: &Type) -> Type {
    match (a, b) {
        (Type::Dyn, _) | (_, Type::Dyn) => Type::Dyn,
        (Type::List(x), Type::List(y)) => Type::list(most_general(x, y)),
        (Type::Map(xk, xv), Type::Map(yk, yv)) => {
            Type::map(most_general(xk, yk), most_general(xv, yv))
        }
        (Type::Optional(x), Type::Optional(y)) => Type::optional(most_general(x, y)),
        _ => a.clone(),
    }
}

/// The bindings of a signature's type parameters while one call is checked.
#[derive(Debug, Default, Clone)]
pub struct Bindings([Option<Type>; 2]);

impl Bindings {
    fn get(&self, p: u8) -> Option<&Type> {
        self.0.get(usize::from(p)).and_then(Option::as_ref)
    }

    fn set(&mut self, p: u8, t: Type) {
        if let Some(slot) = self.0.get_mut(usize::from(p)) {
            *slot = Some(t);
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Dyn => f.write_str("dyn"),
            Type::Null => f.write_str("null_type"),
            Type::Bool => f.write_str("bool"),
            Type::Int => f.write_str("int"),
            Type::Uint => f.write_str("uint"),
            Type::Double => f.write_str("double"),
            Type::String => f.write_str("string"),
            Type::Bytes => f.write_str("bytes"),
            Type::Duration => f.write_str("google.protobuf.Duration"),
            Type::Timestamp => f.write_str("google.protobuf.Timestamp"),
            Type::Type => f.write_str("type"),
            Type::List(e) => write!(f, "list({e})"),
            Type::Map(k, v) => write!(f, "map({k}, {v})"),
            Type::Optional(e) => write!(f, "optional_type({e})"),
            Type::Opaque(t) => f.write_str(t.as_str()),
            Type::Object(o) => f.write_str(&o.name),
            Type::Param(0) => f.write_str("A"),
            Type::Param(_) => f.write_str("B"),
        }
    }
}

/// The type of the `request` variable: `kubernetes.AdmissionRequest` as the API server
/// declares it (`BuildRequestType`), without `object`, `oldObject` and `uid`.
pub fn request_type() -> Type {
    let gvk = Arc::new(ObjectType {
        name: "kubernetes.GroupVersionKind".into(),
        fields: vec![
            ("group".into(), Type::String),
            ("version".into(), Type::String),
            ("kind".into(), Type::String),
        ],
    });
    let gvr = Arc::new(ObjectType {
        name: "kubernetes.GroupVersionResource".into(),
        fields: vec![
            ("group".into(), Type::String),
            ("version".into(), Type::String),
            ("resource".into(), Type::String),
        ],
    });
    let user_info = Arc::new(ObjectType {
        name: "kubernetes.UserInfo".into(),
        fields: vec![
            ("username".into(), Type::String),
            ("uid".into(), Type::String),
            ("groups".into(), Type::list(Type::String)),
            (
                "extra".into(),
                Type::map(Type::String, Type::list(Type::String)),
            ),
        ],
    });
    Type::Object(Arc::new(ObjectType {
        name: "kubernetes.AdmissionRequest".into(),
        fields: vec![
            ("kind".into(), Type::Object(Arc::clone(&gvk))),
            ("resource".into(), Type::Object(Arc::clone(&gvr))),
            ("subResource".into(), Type::String),
            ("requestKind".into(), Type::Object(gvk)),
            ("requestResource".into(), Type::Object(gvr)),
            ("requestSubResource".into(), Type::String),
            ("name".into(), Type::String),
            ("namespace".into(), Type::String),
            ("operation".into(), Type::String),
            ("userInfo".into(), Type::Object(user_info)),
            ("dryRun".into(), Type::Bool),
            ("options".into(), Type::Dyn),
        ],
    }))
}

/// The type of `namespaceObject`: `kubernetes.Namespace` as the API server declares it
/// (`BuildNamespaceType`).
pub fn namespace_type() -> Type {
    let strings = || Type::list(Type::String);
    let string_map = || Type::map(Type::String, Type::String);
    let condition = Arc::new(ObjectType {
        name: "kubernetes.NamespaceCondition".into(),
        fields: vec![
            ("status".into(), Type::String),
            ("type".into(), Type::String),
            ("lastTransitionTime".into(), Type::Timestamp),
            ("message".into(), Type::String),
            ("reason".into(), Type::String),
        ],
    });
    let metadata = Arc::new(ObjectType {
        name: "kubernetes.NamespaceMetadata".into(),
        fields: vec![
            ("name".into(), Type::String),
            ("generateName".into(), Type::String),
            ("namespace".into(), Type::String),
            ("labels".into(), string_map()),
            ("annotations".into(), string_map()),
            ("UID".into(), Type::String),
            ("creationTimestamp".into(), Type::Timestamp),
            ("deletionGracePeriodSeconds".into(), Type::Int),
            ("deletionTimestamp".into(), Type::Timestamp),
            ("generation".into(), Type::Int),
            ("resourceVersion".into(), Type::String),
            ("finalizers".into(), strings()),
        ],
    });
    let spec = Arc::new(ObjectType {
        name: "kubernetes.NamespaceSpec".into(),
        fields: vec![("finalizers".into(), strings())],
    });
    let status = Arc::new(ObjectType {
        name: "kubernetes.NamespaceStatus".into(),
        fields: vec![
            ("conditions".into(), Type::list(Type::Object(condition))),
            ("phase".into(), Type::String),
        ],
    });
    Type::Object(Arc::new(ObjectType {
        name: "kubernetes.Namespace".into(),
        fields: vec![
            ("metadata".into(), Type::Object(metadata)),
            ("spec".into(), Type::Object(spec)),
            ("status".into(), Type::Object(status)),
        ],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_bind_to_the_first_type_met() {
        let a = Type::Param(0);
        let mut b = Bindings::default();
        assert!(a.accepts(&Type::Int, &mut b));
        assert!(!a.accepts(&Type::String, &mut b));
        assert_eq!(a.substitute(&b), Type::Int);
        assert!(a.accepts(&Type::Dyn, &mut b));
        assert_eq!(a.substitute(&b), Type::Dyn, "the more general type wins");

        let mut b = Bindings::default();
        assert!(a.accepts(&Type::Dyn, &mut b));
        assert!(a.accepts(&Type::String, &mut b));
        assert_eq!(a.substitute(&b), Type::Dyn);

        let list_a = Type::list(Type::Param(0));
        let mut b = Bindings::default();
        assert!(list_a.accepts(&Type::list(Type::String), &mut b));
        assert!(!list_a.accepts(&Type::Int, &mut b));
        assert_eq!(list_a.substitute(&b).to_string(), "list(string)");
    }

    #[test]
    fn names_are_cel_go_s() {
        assert_eq!(
            Type::map(Type::String, Type::optional(Type::Dyn)).to_string(),
            "map(string, optional_type(dyn))"
        );
        assert_eq!(request_type().to_string(), "kubernetes.AdmissionRequest");
        assert_eq!(
            Type::Opaque(TypeName::Quantity).to_string(),
            "kubernetes.Quantity"
        );
    }
}
