//! Which requests a ValidatingAdmissionPolicy and its binding apply to: `resourceRules` and
//! `excludeResourceRules` of `matchConstraints` / `matchResources`, decided on the request's
//! group, version, resource, subresource, operation, scope and name, exactly as the API
//! server's rule matcher (`k8s.io/apiserver/pkg/admission/plugin/webhook/predicates/rules`
//! and `.../policy/matching`) decides them.
//!
//! `matchPolicy: Equivalent` (the default) also matches a request for an equivalent resource:
//! the same resource in another version of its group, or in the group it moved from or to
//! (`extensions` deployments, daemonsets and replicasets are `apps` ones; `extensions`
//! ingresses and networkpolicies are `networking.k8s.io` ones; core events are
//! `events.k8s.io` ones), as the API server's `EquivalentResourceMapper` registers them.
//! The object is judged as the request carries it: the API server converts it to the version
//! the webhook's own rules asked for, not to the one the policy's rule names. Without
//! discovery portier takes every version of a group as served.

/// A request, as the matcher sees it.
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    pub group: &'a str,
    pub version: &'a str,
    /// The resource's plural name, e.g. `deployments`.
    pub resource: &'a str,
    pub sub_resource: &'a str,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: &'a str,
    /// Empty for cluster-scoped resources. For a Namespace, its own name.
    pub namespace: &'a str,
    /// The object's name; empty when the API server will generate it.
    pub name: &'a str,
}

/// `scope` of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    Cluster,
    Namespaced,
}

/// One `NamedRuleWithOperations`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub operations: Vec<String>,
    pub api_groups: Vec<String>,
    pub api_versions: Vec<String>,
    /// `resource` or `resource/subresource`, `*` allowed in either part.
    pub resources: Vec<String>,
    pub scope: Scope,
    /// Empty: any name.
    pub resource_names: Vec<String>,
}

fn exact_or_wildcard(items: &[String], requested: &str) -> bool {
    items.iter().any(|i| i == "*" || i == requested)
}

/// The groups that serve `resource` of `group` under the same name (itself included).
pub fn equivalent_groups<'a>(group: &'a str, resource: &str) -> Vec<&'a str> {
    match (group, resource) {
        ("apps" | "extensions", "deployments" | "daemonsets" | "replicasets") => {
            vec!["apps", "extensions"]
        }
        ("networking.k8s.io" | "extensions", "ingresses" | "networkpolicies") => {
            vec!["networking.k8s.io", "extensions"]
        }
        ("" | "events.k8s.io", "events") => vec!["", "events.k8s.io"],
        _ => vec![group],
    }
}

impl Rule {
    /// The rule under `matchPolicy: Equivalent`: exactly, or for an equivalent resource (any
    /// version of the request's group or of a group equivalent to it).
    pub fn matches_equivalent(&self, a: &Attributes<'_>) -> bool {
        self.matches(a)
            || equivalent_groups(a.group, a.resource)
                .into_iter()
                .any(|group| {
                    self.api_versions.iter().any(|version| {
                        self.matches(&Attributes {
                            group,
                            version,
                            ..*a
                        })
                    })
                })
    }

    /// The API server's `rules.Matcher.Matches` plus the `resourceNames` check.
    pub fn matches(&self, a: &Attributes<'_>) -> bool {
        self.scope_matches(a)
            && self
                .operations
                .iter()
                .any(|op| op == "*" || op == a.operation)
            && exact_or_wildcard(&self.api_groups, a.group)
            && exact_or_wildcard(&self.api_versions, a.version)
            && self.resources.iter().any(|r| {
                let (res, sub) = r.split_once('/').unwrap_or((r, ""));
                (res == "*" || res == a.resource) && (sub == "*" || sub == a.sub_resource)
            })
            && (self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == a.name))
    }

    fn scope_matches(&self, a: &Attributes<'_>) -> bool {
        let is_namespace_object =
            a.group.is_empty() && a.version == "v1" && a.resource == "namespaces";
        match self.scope {
            Scope::All => true,
            Scope::Namespaced => !is_namespace_object && !a.namespace.is_empty(),
            Scope::Cluster => is_namespace_object || a.namespace.is_empty(),
        }
    }
}

/// `resourceRules` and `excludeResourceRules` of one `MatchResources`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matcher {
    /// Empty: every resource (a binding's `matchResources` may leave them out).
    pub rules: Vec<Rule>,
    pub exclude: Vec<Rule>,
    /// `matchPolicy: Exact`; `Equivalent` (false) is the default.
    pub exact: bool,
}

impl Matcher {
    /// Whether the request is chosen; `matchPolicy` applies to exclusions too, as in the API
    /// server's `matchesResourceRules`.
    pub fn matches(&self, a: &Attributes<'_>) -> bool {
        let rule_matches = |r: &Rule| match self.exact {
            true => r.matches(a),
            false => r.matches_equivalent(a),
        };
        if self.exclude.iter().any(rule_matches) {
            return false;
        }
        self.rules.is_empty() || self.rules.iter().any(rule_matches)
    }

    /// Whether the request could be chosen for some object name: [`Matcher::matches`] with
    /// `resourceNames` read as "any name" in the rules and exclusions naming names left out
    /// (they exclude some objects, never the whole resource). What the audit lists for a
    /// policy; each object listed is then matched by name.
    pub fn may_match(&self, a: &Attributes<'_>) -> bool {
        let rule_matches = |r: &Rule| {
            let any_name = Rule {
                resource_names: Vec::new(),
                ..r.clone()
            };
            match self.exact {
                true => any_name.matches(a),
                false => any_name.matches_equivalent(a),
            }
        };
        let excluded = self
            .exclude
            .iter()
            .filter(|r| r.resource_names.is_empty())
            .any(rule_matches);
        !excluded && (self.rules.is_empty() || self.rules.iter().any(rule_matches))
    }

    /// The (group, resource) pairs the rules name, for reporting what a policy can judge.
    pub fn kinds_hint(&self) -> impl Iterator<Item = (&str, &str)> {
        self.rules.iter().flat_map(|r| {
            r.api_groups.iter().flat_map(move |g| {
                r.resources
                    .iter()
                    .map(move |res| (g.as_str(), res.as_str()))
            })
        })
    }
}

/// Validates one rule as the API server validates `NamedRuleWithOperations`, returning the
/// path below the rule and the problem.
pub fn validate(rule: &Rule) -> Result<(), (String, String)> {
    const OPERATIONS: [&str; 5] = ["*", "CREATE", "UPDATE", "DELETE", "CONNECT"];
    let required = |name: &str, list: &[String]| {
        if list.is_empty() {
            Err((name.to_owned(), "Required value".to_owned()))
        } else {
            Ok(())
        }
    };
    required("operations", &rule.operations)?;
    required("apiGroups", &rule.api_groups)?;
    required("apiVersions", &rule.api_versions)?;
    required("resources", &rule.resources)?;
    for (i, op) in rule.operations.iter().enumerate() {
        if !OPERATIONS.contains(&op.as_str()) {
            return Err((
                format!("operations[{i}]"),
                format!(
                    "Unsupported value: {op:?}: supported values: \"*\", \"CREATE\", \"UPDATE\", \"DELETE\", \"CONNECT\""
                ),
            ));
        }
    }
    for (name, list) in [
        ("operations", &rule.operations),
        ("apiGroups", &rule.api_groups),
        ("apiVersions", &rule.api_versions),
    ] {
        if list.len() > 1 && list.iter().any(|v| v == "*") {
            return Err((
                name.to_owned(),
                "if '*' is present, must not specify other values".to_owned(),
            ));
        }
    }
    for (i, v) in rule.api_versions.iter().enumerate() {
        if v.is_empty() {
            return Err((format!("apiVersions[{i}]"), "must not be empty".to_owned()));
        }
    }
    let mut seen_subs: Vec<(&str, &str)> = Vec::new();
    for (i, r) in rule.resources.iter().enumerate() {
        if r.is_empty() {
            return Err((format!("resources[{i}]"), "must not be empty".to_owned()));
        }
        let (res, sub) = r.split_once('/').unwrap_or((r, ""));
        if res.is_empty() || (r.contains('/') && sub.is_empty()) || sub.contains('/') {
            return Err((
                format!("resources[{i}]"),
                format!("{r:?} is not a valid resource: use 'resource' or 'resource/subresource'"),
            ));
        }
        if seen_subs.contains(&(res, sub)) {
            return Err((format!("resources[{i}]"), format!("Duplicate value: {r:?}")));
        }
        seen_subs.push((res, sub));
    }
    // '*' (every resource, no subresources) and '*/*' (everything) rule out the forms they
    // already cover, as the API server's validation does.
    let has = |s: &str| rule.resources.iter().any(|r| r == s);
    if has("*/*") && rule.resources.len() > 1 {
        return Err((
            "resources".to_owned(),
            "if '*/*' is present, must not specify other resources".to_owned(),
        ));
    }
    if has("*") && rule.resources.iter().any(|r| !r.contains('/') && r != "*") {
        return Err((
            "resources".to_owned(),
            "if '*' is present, must not specify other resources without subresources".to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(ops: &[&str], groups: &[&str], versions: &[&str], resources: &[&str]) -> Rule {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        Rule {
            operations: v(ops),
            api_groups: v(groups),
            api_versions: v(versions),
            resources: v(resources),
            scope: Scope::All,
            resource_names: Vec::new(),
        }
    }

    fn attrs<'a>(
        group: &'a str,
        resource: &'a str,
        sub: &'a str,
        op: &'a str,
        ns: &'a str,
    ) -> Attributes<'a> {
        Attributes {
            group,
            version: "v1",
            resource,
            sub_resource: sub,
            operation: op,
            namespace: ns,
            name: "x",
        }
    }

    #[test]
    fn groups_versions_operations_and_wildcards() {
        let r = rule(&["CREATE", "UPDATE"], &["apps"], &["v1"], &["deployments"]);
        assert!(r.matches(&attrs("apps", "deployments", "", "CREATE", "ns")));
        assert!(!r.matches(&attrs("apps", "deployments", "", "DELETE", "ns")));
        assert!(!r.matches(&attrs("", "deployments", "", "CREATE", "ns")));
        assert!(!r.matches(&attrs("apps", "statefulsets", "", "CREATE", "ns")));
        let mut other_version = attrs("apps", "deployments", "", "CREATE", "ns");
        other_version.version = "v1beta1";
        assert!(!r.matches(&other_version));
        let any = rule(&["*"], &["*"], &["*"], &["*"]);
        assert!(any.matches(&attrs("batch", "jobs", "", "CONNECT", "")));
    }

    #[test]
    fn subresources_match_only_when_named() {
        // From the API server's rules_test.go: "*" is every resource without subresources.
        let star = rule(&["*"], &["*"], &["*"], &["*"]);
        assert!(!star.matches(&attrs("", "pods", "status", "UPDATE", "ns")));
        let star_star = rule(&["*"], &["*"], &["*"], &["*/*"]);
        assert!(star_star.matches(&attrs("", "pods", "status", "UPDATE", "ns")));
        assert!(star_star.matches(&attrs("", "pods", "", "UPDATE", "ns")));
        // `pods/*`: the API server's code matches the pods themselves too (`sub == "*"`).
        let pods_any = rule(&["*"], &[""], &["v1"], &["pods/*"]);
        assert!(pods_any.matches(&attrs("", "pods", "ephemeralcontainers", "UPDATE", "ns")));
        assert!(pods_any.matches(&attrs("", "pods", "", "UPDATE", "ns")));
        assert!(!pods_any.matches(&attrs("", "services", "", "UPDATE", "ns")));
        let any_status = rule(&["*"], &["*"], &["*"], &["*/status"]);
        assert!(any_status.matches(&attrs("apps", "deployments", "status", "UPDATE", "ns")));
        assert!(!any_status.matches(&attrs("apps", "deployments", "scale", "UPDATE", "ns")));
        let exact = rule(
            &["*"],
            &[""],
            &["v1"],
            &["pods", "pods/ephemeralcontainers"],
        );
        assert!(exact.matches(&attrs("", "pods", "ephemeralcontainers", "UPDATE", "ns")));
        assert!(!exact.matches(&attrs("", "pods", "exec", "CONNECT", "ns")));
    }

    #[test]
    fn scope_and_names() {
        let mut namespaced = rule(&["*"], &["*"], &["*"], &["*"]);
        namespaced.scope = Scope::Namespaced;
        assert!(namespaced.matches(&attrs("", "pods", "", "CREATE", "ns")));
        assert!(!namespaced.matches(&attrs(
            "rbac.authorization.k8s.io",
            "clusterroles",
            "",
            "CREATE",
            ""
        )));
        // A Namespace's request carries its own name as namespace, yet it is cluster-scoped.
        assert!(!namespaced.matches(&attrs("", "namespaces", "", "CREATE", "team-a")));
        let mut cluster = namespaced.clone();
        cluster.scope = Scope::Cluster;
        assert!(cluster.matches(&attrs("", "namespaces", "", "CREATE", "team-a")));
        assert!(!cluster.matches(&attrs("", "pods", "", "CREATE", "ns")));
        let mut named = rule(&["*"], &[""], &["v1"], &["configmaps"]);
        named.resource_names = vec!["x".into()];
        assert!(named.matches(&attrs("", "configmaps", "", "UPDATE", "ns")));
        let mut other = attrs("", "configmaps", "", "UPDATE", "ns");
        other.name = "y";
        assert!(!named.matches(&other));
    }

    #[test]
    fn exclusions_win_and_no_rules_match_everything() {
        let m = Matcher {
            rules: vec![rule(&["*"], &["*"], &["*"], &["*"])],
            exclude: vec![rule(&["DELETE"], &[""], &["v1"], &["pods"])],
            exact: false,
        };
        assert!(m.matches(&attrs("", "pods", "", "CREATE", "ns")));
        assert!(!m.matches(&attrs("", "pods", "", "DELETE", "ns")));
        let everything = Matcher::default();
        assert!(everything.matches(&attrs("x", "y", "z", "CONNECT", "")));
    }

    #[test]
    fn equivalent_resources_match_unless_exact() {
        let deployments = || Matcher {
            rules: vec![rule(&["CREATE"], &["apps"], &["v1"], &["deployments"])],
            exclude: Vec::new(),
            exact: false,
        };
        let request = |group, version| Attributes {
            version,
            ..attrs(group, "deployments", "", "CREATE", "ns")
        };
        let equivalent = deployments();
        let exact = Matcher {
            exact: true,
            ..deployments()
        };
        for (group, version) in [
            ("apps", "v1beta2"),
            ("apps", "v1beta1"),
            ("extensions", "v1beta1"),
        ] {
            assert!(
                equivalent.matches(&request(group, version)),
                "{group}/{version}"
            );
            assert!(
                !exact.matches(&request(group, version)),
                "{group}/{version}"
            );
        }
        assert!(exact.matches(&request("apps", "v1")));
        // Another resource, or the same name in an unrelated group, is not equivalent.
        assert!(!equivalent.matches(&request("example.com", "v1")));
        let mut statefulsets = request("extensions", "v1beta1");
        statefulsets.resource = "statefulsets";
        assert!(!equivalent.matches(&statefulsets));
        // Ingresses moved from extensions to networking.k8s.io; exclusions follow the policy.
        let ingresses = Matcher {
            rules: vec![rule(&["*"], &["*"], &["*"], &["*"])],
            exclude: vec![rule(
                &["*"],
                &["networking.k8s.io"],
                &["v1"],
                &["ingresses"],
            )],
            exact: false,
        };
        let old_ingress = Attributes {
            version: "v1beta1",
            ..attrs("extensions", "ingresses", "", "CREATE", "ns")
        };
        assert!(!ingresses.matches(&old_ingress));
        assert!(
            Matcher {
                exact: true,
                ..ingresses
            }
            .matches(&old_ingress)
        );
    }

    #[test]
    fn rules_are_validated_as_the_api_server_does() {
        assert!(validate(&rule(&["CREATE"], &[""], &["v1"], &["pods"])).is_ok());
        let e = validate(&rule(&["CREATE", "PATCH"], &[""], &["v1"], &["pods"])).unwrap_err();
        assert_eq!(e.0, "operations[1]");
        let e = validate(&rule(&["*", "CREATE"], &[""], &["v1"], &["pods"])).unwrap_err();
        assert_eq!(e.0, "operations");
        let e = validate(&rule(&["CREATE"], &[], &["v1"], &["pods"])).unwrap_err();
        assert_eq!(e, ("apiGroups".into(), "Required value".into()));
        let e = validate(&rule(&["CREATE"], &[""], &["v1"], &["*", "pods"])).unwrap_err();
        assert_eq!(e.0, "resources");
        assert!(validate(&rule(&["CREATE"], &[""], &["v1"], &["*", "pods/status"])).is_ok());
        let e = validate(&rule(&["CREATE"], &[""], &["v1"], &["pods/"])).unwrap_err();
        assert_eq!(e.0, "resources[0]");
    }
}
