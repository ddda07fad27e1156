//! What the audit lists for CEL policies: the resources portier's `check: cel` policies
//! (`match.kinds`, `exclude.kinds`) and ValidatingAdmissionPolicies with their bindings
//! (`matchConstraints` and `matchResources`: `resourceRules` with `*` and `group/*`,
//! `excludeResourceRules`, `matchPolicy`) could select, among those the API server's discovery
//! says it serves and can list.
//!
//! Every object is judged as a CREATE of it, so a resource is listed when some policy would
//! be called for creating one of its objects: the policies' own matchers decide that on the
//! attributes such a request would carry (the discovered group, version and resource, its
//! scope), so wildcards, exclusions and equivalent resources mean exactly what they mean at
//! admission. `resourceNames` narrow objects, not resources: the objects listed are matched by
//! name when judged. Subresources are not objects and resources without `list` cannot be
//! listed; the pod controllers and Pods are listed by the workload scan anyway. A kind or
//! resource a policy names that the API server does not serve is said, never skipped silently.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::discovery::{Discovery, Scope as DiscoveryScope, verbs};

use super::ApiFailure;
use super::api::{self, plural};
use crate::cel::admission::Served;
use crate::cel::matcher::{Attributes, equivalent_groups};
use crate::cel::policy::Origin;
use crate::pod::WorkloadKind;
use crate::policy::{Check, PolicySet};

/// A resource the API server serves, in one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub group: String,
    pub version: String,
    pub kind: String,
    /// The plural name, e.g. `services`.
    pub resource: String,
    pub namespaced: bool,
}

impl Resource {
    pub fn served(&self) -> Served<'_> {
        Served {
            group: &self.group,
            version: &self.version,
            kind: &self.kind,
            resource: &self.resource,
        }
    }

    /// `apiVersion` of its objects, e.g. `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        match self.group.as_str() {
            "" => self.version.clone(),
            group => format!("{group}/{}", self.version),
        }
    }

    /// How RBAC and messages name it: `services`, `ingresses.networking.k8s.io`.
    pub fn name(&self) -> String {
        match self.group.as_str() {
            "" => self.resource.clone(),
            group => format!("{}.{group}", self.resource),
        }
    }

    /// Its REST collection, in `namespace` when it is namespaced.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let prefix = match self.group.as_str() {
            "" => format!("/api/{}", self.version),
            group => format!("/apis/{group}/{}", self.version),
        };
        match namespace {
            Some(namespace) => format!("{prefix}/namespaces/{namespace}/{}", self.resource),
            None => format!("{prefix}/{}", self.resource),
        }
    }
}

/// What the audit lists for the CEL policies of a set.
#[derive(Debug, Clone, Default)]
pub struct CelResources {
    /// Namespaced resources, listed in every namespace scanned.
    pub namespaced: Vec<Arc<Resource>>,
    /// Cluster-scoped resources, listed once per audit.
    pub cluster: Vec<Arc<Resource>>,
    /// Which workload kinds (the workload scan lists them) a CEL policy may select: their
    /// objects are then also judged by the CEL policies, each one a CREATE of it.
    pub workload_kinds: Vec<WorkloadKind>,
    /// What policies name that the API server does not serve, one sentence each.
    pub unknown: Vec<String>,
}

impl CelResources {
    /// Whether a CEL policy may select objects of the workload `kind`.
    pub fn judges_workload(&self, kind: WorkloadKind) -> bool {
        self.workload_kinds.contains(&kind)
    }
}

/// The served resource of a workload kind, in the version the audit lists it.
pub fn workload_resource(kind: WorkloadKind) -> Served<'static> {
    let (group, version) = api::api_version(kind)
        .rsplit_once('/')
        .unwrap_or(("", "v1"));
    Served {
        group,
        version,
        kind: kind.as_str(),
        resource: plural(kind),
    }
}

fn is_workload(group: &str, resource: &str) -> bool {
    super::CONTROLLER_ORDER
        .into_iter()
        .chain([WorkloadKind::Pod])
        .any(|kind| {
            let served = workload_resource(kind);
            served.group == group && served.resource == resource
        })
}

/// Whether some CEL policy of `set` may select a CREATE of an object of `served` (namespaced
/// or not), for some object name, namespace and labels.
pub fn may_select(set: &PolicySet, served: &Served<'_>, namespaced: bool) -> bool {
    // The namespace a request for such an object carries: a Namespace carries its own name.
    let is_namespace = served.group.is_empty() && served.resource == "namespaces";
    let attributes = Attributes {
        group: served.group,
        version: served.version,
        resource: served.resource,
        sub_resource: "",
        operation: "CREATE",
        namespace: if namespaced || is_namespace { "-" } else { "" },
        name: "",
    };
    set.policies().iter().any(|policy| {
        let Check::Cel(cel) = &policy.check else {
            return false;
        };
        match cel.origin {
            Origin::Portier { .. } => policy.selector.admits_kind(served.kind),
            Origin::Binding { .. } => {
                cel.constraints.may_match(&attributes) && cel.binding_match.may_match(&attributes)
            }
        }
    })
}

/// Chooses what to list among the `discovered` resources (every served version of each, the
/// preferred version of its group first): each resource once, in the first version a policy
/// may select; the workload kinds a policy may select; and what policies name that is not
/// served.
pub fn select(set: &PolicySet, discovered: &[Resource]) -> CelResources {
    let mut out = CelResources::default();
    if !set.has_cel() {
        return out;
    }
    out.workload_kinds = super::CONTROLLER_ORDER
        .into_iter()
        .chain([WorkloadKind::Pod])
        .filter(|kind| may_select(set, &workload_resource(*kind), true))
        .collect();
    let mut chosen: BTreeSet<(&str, &str)> = BTreeSet::new();
    for resource in discovered {
        let key = (resource.group.as_str(), resource.resource.as_str());
        if is_workload(key.0, key.1) || chosen.contains(&key) {
            continue;
        }
        if may_select(set, &resource.served(), resource.namespaced) {
            chosen.insert(key);
            let listed = Arc::new(resource.clone());
            match resource.namespaced {
                true => out.namespaced.push(listed),
                false => out.cluster.push(listed),
            }
        }
    }
    out.unknown = not_served(set, discovered);
    out
}

/// What the CEL policies name, literally (no glob, no `*`), that discovery does not know:
/// a `match.kinds` entry no served resource has as kind, a rule's group and resource no
/// served resource (or equivalent one) is.
fn not_served(set: &PolicySet, discovered: &[Resource]) -> Vec<String> {
    let mut out = Vec::new();
    let served_kind = |kind: &str| {
        discovered.iter().any(|r| r.kind == kind)
            || WorkloadKind::ALL.iter().any(|w| w.as_str() == kind)
    };
    let served_resource = |group: &str, resource: &str| {
        equivalent_groups(group, resource).into_iter().any(|g| {
            is_workload(g, resource)
                || discovered
                    .iter()
                    .any(|r| r.group == g && r.resource == resource)
        })
    };
    for policy in set.policies() {
        let Check::Cel(cel) = &policy.check else {
            continue;
        };
        match &cel.origin {
            Origin::Portier { name } => {
                for kind in policy.selector.kind_names() {
                    let glob = kind.contains(['*', '?', '[', '{']);
                    if !glob && !served_kind(kind) {
                        out.push(format!(
                            "policy {name}: kind {kind} (spec.match.kinds) is not served by the API server (discovery does not know it); nothing of that kind was audited"
                        ));
                    }
                }
            }
            Origin::Binding { policy, binding } => {
                let mut named: BTreeSet<(&str, &str)> = BTreeSet::new();
                for (group, resource) in cel
                    .constraints
                    .kinds_hint()
                    .chain(cel.binding_match.kinds_hint())
                {
                    let resource = resource.split_once('/').map_or(resource, |(r, _)| r);
                    if group != "*" && resource != "*" && !served_resource(group, resource) {
                        named.insert((group, resource));
                    }
                }
                for (group, resource) in named {
                    let name = match group {
                        "" => resource.to_owned(),
                        group => format!("{resource}.{group}"),
                    };
                    out.push(format!(
                        "ValidatingAdmissionPolicy {policy} (binding {binding}): resource {name} is not served by the API server (discovery does not know it); nothing of it was audited"
                    ));
                }
            }
        }
    }
    out
}

/// Asks the API server's discovery for every resource it serves that can be listed (every
/// version, each group's preferred version first). Aggregated discovery (two requests) when
/// the API server has it, else a request per group version.
pub async fn discover(client: &kube::Client) -> Result<Vec<Resource>, ApiFailure> {
    let discovery = match Discovery::new(client.clone()).run_aggregated().await {
        Ok(discovery) => discovery,
        Err(_) => Discovery::new(client.clone())
            .run()
            .await
            .map_err(api::classify)?,
    };
    let mut out = Vec::new();
    for group in discovery.groups_alphabetical() {
        let preferred = group.preferred_version_or_latest().to_owned();
        let mut versions: Vec<&str> = vec![preferred.as_str()];
        versions.extend(group.versions().filter(|v| *v != preferred));
        for version in versions {
            for (resource, capabilities) in group.versioned_resources(version) {
                if !capabilities.supports_operation(verbs::LIST) {
                    continue;
                }
                out.push(Resource {
                    group: resource.group,
                    version: resource.version,
                    kind: resource.kind,
                    resource: resource.plural,
                    namespaced: capabilities.scope == DiscoveryScope::Namespaced,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "cel_resources_tests.rs"]
mod tests;
