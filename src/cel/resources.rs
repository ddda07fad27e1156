//! Kinds and the resources that serve them: what the API server's discovery would say for an
//! object read from a file (`portier check` reviews each manifest as a CREATE of it, and a
//! policy's rules name resources, not kinds).
//!
//! Built-in kinds are looked up in a table (resource name and whether it is namespaced);
//! another kind (a custom resource) gets kubectl's guess of its plural
//! (`UnsafeGuessKindToResource`) and is namespaced when its manifest names a namespace.

/// (group, kind, resource, namespaced) of the built-in kinds.
const BUILT_IN: &[(&str, &str, &str, bool)] = &[
    ("", "Pod", "pods", true),
    ("", "Service", "services", true),
    ("", "ConfigMap", "configmaps", true),
    ("", "Secret", "secrets", true),
    ("", "ServiceAccount", "serviceaccounts", true),
    ("", "PersistentVolumeClaim", "persistentvolumeclaims", true),
    ("", "ReplicationController", "replicationcontrollers", true),
    ("", "Endpoints", "endpoints", true),
    ("", "Event", "events", true),
    ("", "LimitRange", "limitranges", true),
    ("", "ResourceQuota", "resourcequotas", true),
    ("", "PodTemplate", "podtemplates", true),
    ("", "Binding", "bindings", true),
    ("", "Namespace", "namespaces", false),
    ("", "Node", "nodes", false),
    ("", "PersistentVolume", "persistentvolumes", false),
    ("", "ComponentStatus", "componentstatuses", false),
    ("apps", "Deployment", "deployments", true),
    ("apps", "StatefulSet", "statefulsets", true),
    ("apps", "DaemonSet", "daemonsets", true),
    ("apps", "ReplicaSet", "replicasets", true),
    ("apps", "ControllerRevision", "controllerrevisions", true),
    ("batch", "Job", "jobs", true),
    ("batch", "CronJob", "cronjobs", true),
    (
        "autoscaling",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    ),
    (
        "policy",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    ("networking.k8s.io", "Ingress", "ingresses", true),
    (
        "networking.k8s.io",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    ("networking.k8s.io", "IngressClass", "ingressclasses", false),
    ("discovery.k8s.io", "EndpointSlice", "endpointslices", true),
    ("coordination.k8s.io", "Lease", "leases", true),
    ("events.k8s.io", "Event", "events", true),
    ("rbac.authorization.k8s.io", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    (
        "rbac.authorization.k8s.io",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    ("storage.k8s.io", "StorageClass", "storageclasses", false),
    ("storage.k8s.io", "CSIDriver", "csidrivers", false),
    ("storage.k8s.io", "CSINode", "csinodes", false),
    (
        "storage.k8s.io",
        "VolumeAttachment",
        "volumeattachments",
        false,
    ),
    (
        "storage.k8s.io",
        "CSIStorageCapacity",
        "csistoragecapacities",
        true,
    ),
    (
        "scheduling.k8s.io",
        "PriorityClass",
        "priorityclasses",
        false,
    ),
    ("node.k8s.io", "RuntimeClass", "runtimeclasses", false),
    (
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
    ("apiregistration.k8s.io", "APIService", "apiservices", false),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        false,
    ),
    (
        "certificates.k8s.io",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        false,
    ),
    (
        "flowcontrol.apiserver.k8s.io",
        "FlowSchema",
        "flowschemas",
        false,
    ),
    (
        "flowcontrol.apiserver.k8s.io",
        "PriorityLevelConfiguration",
        "prioritylevelconfigurations",
        false,
    ),
    ("gateway.networking.k8s.io", "Gateway", "gateways", true),
    ("gateway.networking.k8s.io", "HTTPRoute", "httproutes", true),
    (
        "gateway.networking.k8s.io",
        "GatewayClass",
        "gatewayclasses",
        false,
    ),
];

/// The resource serving `kind` of `group`, and whether it is namespaced (`None` when the
/// table does not know the kind).
pub fn resource_for(group: &str, kind: &str) -> (String, Option<bool>) {
    match BUILT_IN
        .iter()
        .find(|(g, k, _, _)| *g == group && *k == kind)
    {
        Some((_, _, resource, namespaced)) => ((*resource).to_owned(), Some(*namespaced)),
        None => (guess_plural(kind), None),
    }
}

/// kubectl's `UnsafeGuessKindToResource`.
fn guess_plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.is_empty() {
        return lower;
    }
    if lower.ends_with('s') {
        return format!("{lower}es");
    }
    if let Some(stem) = lower.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        return format!("{stem}ies");
    }
    format!("{lower}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_kinds_and_guesses() {
        assert_eq!(resource_for("", "Service"), ("services".into(), Some(true)));
        assert_eq!(
            resource_for("networking.k8s.io", "Ingress"),
            ("ingresses".into(), Some(true))
        );
        assert_eq!(
            resource_for("", "Namespace"),
            ("namespaces".into(), Some(false))
        );
        assert_eq!(
            resource_for("example.com", "Widget"),
            ("widgets".into(), None)
        );
        assert_eq!(resource_for("example.com", "Policy").0, "policies");
        assert_eq!(resource_for("example.com", "Gateway").0, "gateways");
        assert_eq!(resource_for("example.com", "Class").0, "classes");
    }
}
