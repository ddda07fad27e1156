//! One request as CEL policies see it: the attributes rules match on, and the values
//! expressions read (`object`, `oldObject`, `request`), all borrowed from the review's
//! decoded `request` (at admission) or from a synthetic CREATE of a manifest (offline).

use std::borrow::Cow;

use super::json::{Json, Node};
use super::matcher::Attributes;
use super::resources::resource_for;
use super::value::Value;
use crate::labels::{Labels, NoLabels};
use crate::namespaces::{LabelSource, NamespaceLabels};

/// A request to judge.
#[derive(Debug, Clone)]
pub struct Admission<'a> {
    pub attributes: Attributes<'a>,
    /// `request.kind.kind`.
    pub kind: &'a str,
    /// The requesting user (`None` offline).
    pub user: Option<&'a str>,
    pub object: Value<'a>,
    pub old_object: Value<'a>,
    pub request: Value<'a>,
    /// The object's labels and its old labels, for object selectors.
    pub labels: Option<Node<'a>>,
    pub old_labels: Option<Node<'a>>,
    /// The object's `metadata` (its `oldObject`'s for a DELETE).
    pub metadata: Option<Node<'a>>,
    /// What is known of the namespace the object is in: its labels, for `namespaceSelector`.
    pub namespace_labels: NamespaceLabels<'a>,
    /// The Namespace object, for `namespaceObject`; `None` when not known.
    pub namespace_object: Option<Node<'a>>,
}

/// Why a namespace's labels or object are not known.
pub type Unknown<'a> = &'a str;

fn text<'a>(json: Node<'a>, path: &[&str]) -> &'a str {
    let mut node = json;
    for key in path {
        match node.get(key) {
            Some(next) => node = next,
            None => return "",
        }
    }
    node.as_str().unwrap_or("")
}

impl<'a> Admission<'a> {
    /// The request of an AdmissionReview (`review.request`).
    pub fn from_request(request: Node<'a>) -> Admission<'a> {
        let value = |key: &str| request.get(key).map_or(Value::Null, Value::from_node);
        let labels = |key: &str| {
            request
                .get(key)
                .and_then(|o| o.get("metadata"))
                .and_then(|m| m.get("labels"))
        };
        let user = request
            .get("userInfo")
            .and_then(|u| u.get("username"))
            .and_then(|u| u.as_str());
        Admission {
            attributes: Attributes {
                group: text(request, &["resource", "group"]),
                version: text(request, &["resource", "version"]),
                resource: text(request, &["resource", "resource"]),
                sub_resource: text(request, &["subResource"]),
                operation: text(request, &["operation"]),
                namespace: text(request, &["namespace"]),
                name: text(request, &["name"]),
            },
            kind: text(request, &["kind", "kind"]),
            user,
            object: value("object"),
            old_object: value("oldObject"),
            request: Value::from_node(request),
            labels: labels("object"),
            old_labels: labels("oldObject"),
            metadata: ["object", "oldObject"]
                .into_iter()
                .find_map(|key| request.get(key).and_then(|o| o.get("metadata"))),
            namespace_labels: NamespaceLabels::NOT_GIVEN,
            namespace_object: None,
        }
    }

    /// The request with what is known of its namespace's labels.
    pub fn with_namespace_labels(mut self, labels: NamespaceLabels<'a>) -> Self {
        self.namespace_labels = labels;
        self
    }

    /// The request with its namespace's object (and so its labels), read from `source`.
    pub fn with_namespace_object(mut self, namespace: &'a Json<'a>, source: LabelSource) -> Self {
        let labels: &'a dyn Labels = match namespace.get("metadata").and_then(|m| m.get("labels")) {
            Some(labels) => labels,
            None => &NoLabels,
        };
        self.namespace_labels = NamespaceLabels::Known(labels, source);
        self.namespace_object = Some(namespace.node());
        self
    }

    /// Whether the request is about a Namespace itself (not one of its subresources).
    pub fn is_namespace_request(&self) -> bool {
        let a = &self.attributes;
        a.group.is_empty() && a.resource == "namespaces" && a.sub_resource.is_empty()
    }

    /// The labels a `namespaceSelector` reads, as the API server's namespace matcher finds
    /// them (`predicates/namespace/matcher.go`): a cluster-scoped request other than a
    /// Namespace always matches (`Ok(None)`); a Namespace's CREATE or UPDATE is matched on its
    /// own labels and its DELETE on the labels it had; other requests on their namespace's
    /// labels, which may not be known (`Err(why)`).
    pub fn namespace_selector_labels(&self) -> Result<Option<&dyn Labels>, Unknown<'a>> {
        if self.is_namespace_request() {
            let labels = match self.attributes.operation {
                "DELETE" => &self.old_labels,
                _ => &self.labels,
            };
            return Ok(Some(match labels {
                Some(labels) => labels as &dyn Labels,
                None => &NoLabels,
            }));
        }
        if self.attributes.namespace.is_empty() {
            return Ok(None);
        }
        match self.namespace_labels {
            NamespaceLabels::Known(labels, _) => Ok(Some(labels)),
            NamespaceLabels::Unknown(why) => Err(why),
        }
    }

    /// What `namespaceObject` is bound to: null for cluster-scoped requests and for a
    /// Namespace itself (as the API server binds it), the Namespace otherwise, or why it is
    /// not known.
    pub fn namespace_object_value(&self) -> Result<Value<'a>, Unknown<'a>> {
        if self.is_namespace_request() || self.attributes.namespace.is_empty() {
            return Ok(Value::Null);
        }
        match (self.namespace_object, self.namespace_labels) {
            (Some(namespace), _) => Ok(Value::from_node(namespace)),
            (None, NamespaceLabels::Unknown(why)) => Err(why),
            (None, NamespaceLabels::Known(..)) => {
                Err("only the namespace's labels were given, not the Namespace object")
            }
        }
    }
}

/// The `request` of a review the API server would send for creating `object` (a manifest):
/// its kind and resource from the object's `apiVersion` and `kind`, its name and namespace
/// (`default_namespace` when a namespaced object names none, as kubectl would create it), no
/// user. Returns `None` when the object has no `apiVersion` or `kind`.
pub fn synthetic_create(object: Json<'_>, default_namespace: &str) -> Option<Json<'static>> {
    let object = object.into_owned();
    let api_version = object.get("apiVersion")?.as_str()?.to_owned();
    let kind = object.get("kind")?.as_str()?.to_owned();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
    let (resource, namespaced) = resource_for(group, &kind);
    let metadata_namespace = text(object.node(), &["metadata", "namespace"]);
    let namespace = match namespaced {
        Some(false) => "",
        _ if !metadata_namespace.is_empty() => metadata_namespace,
        Some(true) => default_namespace,
        // An unknown kind with no namespace: cluster-scoped, as far as a file can tell.
        None => "",
    }
    .to_owned();
    let served = Served {
        group,
        version,
        kind: &kind,
        resource: &resource,
    };
    Some(create_request(object, &served, &namespace))
}

/// A resource as the API server serves it: what a review names besides the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served<'s> {
    pub group: &'s str,
    pub version: &'s str,
    pub kind: &'s str,
    /// The plural name, e.g. `services`.
    pub resource: &'s str,
}

/// The `request` of a review the API server would send for creating `object`, an object of
/// the `served` resource in `namespace` (empty when cluster-scoped), by no user. The object
/// gets the `apiVersion` and `kind` a review's object carries when it lacks them (the items of
/// a list do), and keeps borrowing from the text it was decoded from.
pub fn create_request<'a>(mut object: Json<'a>, served: &Served<'_>, namespace: &str) -> Json<'a> {
    let s = |v: &str| Json::String(Cow::Owned(v.to_owned()));
    if let Json::Object(entries) = &mut object {
        let api_version = match served.group {
            "" => served.version.to_owned(),
            group => format!("{group}/{}", served.version),
        };
        for (key, value) in [("kind", s(served.kind)), ("apiVersion", s(&api_version))] {
            if !entries.iter().any(|(k, _)| k == key) {
                entries.insert(0, (Cow::Borrowed(key), value));
            }
        }
    }
    let name = text(object.node(), &["metadata", "name"]).to_owned();
    // A Namespace's own request carries its name as the namespace.
    let namespace = if served.group.is_empty() && served.kind == "Namespace" {
        name.as_str()
    } else {
        namespace
    };
    let object_of = |entries: Vec<(&'static str, Json<'a>)>| {
        Json::Object(
            entries
                .into_iter()
                .map(|(k, v)| (Cow::Borrowed(k), v))
                .collect(),
        )
    };
    let gvk = object_of(vec![
        ("group", s(served.group)),
        ("version", s(served.version)),
        ("kind", s(served.kind)),
    ]);
    let gvr = object_of(vec![
        ("group", s(served.group)),
        ("version", s(served.version)),
        ("resource", s(served.resource)),
    ]);
    object_of(vec![
        ("uid", s("")),
        ("kind", gvk.clone()),
        ("resource", gvr.clone()),
        ("requestKind", gvk),
        ("requestResource", gvr),
        ("name", s(&name)),
        ("namespace", s(namespace)),
        ("operation", s("CREATE")),
        ("userInfo", object_of(vec![])),
        ("object", object),
        ("oldObject", Json::Null),
        ("dryRun", Json::Bool(false)),
        (
            "options",
            object_of(vec![
                ("apiVersion", s("meta.k8s.io/v1")),
                ("kind", s("CreateOptions")),
            ]),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_becomes_a_create_of_it() {
        let object = Json::parse(
            r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"app": "web"}}}"#,
        )
        .unwrap();
        let request = synthetic_create(object, "default").unwrap();
        let a = Admission::from_request(request.node());
        assert_eq!(a.attributes.group, "");
        assert_eq!(a.attributes.version, "v1");
        assert_eq!(a.attributes.resource, "services");
        assert_eq!(a.attributes.namespace, "default");
        assert_eq!(a.attributes.name, "web");
        assert_eq!(a.attributes.operation, "CREATE");
        assert_eq!(a.kind, "Service");
        assert!(matches!(a.old_object, Value::Null));
        assert!(a.labels.is_some());

        let ns = Json::parse(
            r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}"#,
        )
        .unwrap();
        let request = synthetic_create(ns, "default").unwrap();
        assert_eq!(
            Admission::from_request(request.node()).attributes.namespace,
            "team-a"
        );
        let role = Json::parse(r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r", "namespace": "x"}}"#).unwrap();
        let request = synthetic_create(role, "default").unwrap();
        let a = Admission::from_request(request.node());
        assert_eq!(
            (a.attributes.group, a.attributes.namespace),
            ("rbac.authorization.k8s.io", "")
        );
        assert!(synthetic_create(Json::parse("{}").unwrap(), "default").is_none());
    }

    #[test]
    fn a_listed_item_gets_the_kind_a_review_object_carries() {
        // The items of a list have no apiVersion or kind.
        let item = Json::parse(r#"{"metadata": {"name": "web", "namespace": "shop"}}"#).unwrap();
        let served = Served {
            group: "apps",
            version: "v1",
            kind: "Deployment",
            resource: "deployments",
        };
        let request = create_request(item, &served, "shop");
        let a = Admission::from_request(request.node());
        assert_eq!(
            (
                a.attributes.group,
                a.attributes.resource,
                a.attributes.namespace,
                a.attributes.name
            ),
            ("apps", "deployments", "shop", "web")
        );
        let object = request.get("object").unwrap();
        assert_eq!(
            object.get("apiVersion").and_then(Json::as_str),
            Some("apps/v1")
        );
        assert_eq!(
            object.get("kind").and_then(Json::as_str),
            Some("Deployment")
        );
    }
}
