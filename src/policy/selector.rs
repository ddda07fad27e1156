//! `spec.match` and `spec.exclude`: which requests and containers a policy judges.
//!
//! `match` narrows: every list it gives must match (a missing list matches everything).
//! `exclude` carves out: any list it gives that matches excludes (a namespace, a kind, a user),
//! and `images` excludes single containers. The user lists apply only at admission, where a
//! requesting user exists; offline checks and audits have none and ignore them.
//!
//! `namespaceSelector` and `objectSelector` are Kubernetes label selectors
//! ([`crate::labels`]), read as the API server reads a webhook's: the namespace's labels (a
//! Namespace's own, when the object under review is one), and the object's own labels (a
//! workload's, not its pod template's), where an UPDATE matches when the object or the object
//! it replaces matches. A namespace whose labels are not known leaves a `namespaceSelector`
//! undecided; the engine then fails closed for that policy with a message saying why.
//!
//! Image globs see the canonical reference ([`crate::image_ref`]), whatever the pod's
//! spelling, and a text that is no image reference is judged by every policy and excluded by
//! no glob but `*`: an exclusion must never be reachable by misspelling an image.

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::engine::{ObjectLabels, Request};
use crate::image_ref::{self, ImageRef};
use crate::labels::{LabelSelector, LabelSelectorDoc, LabelSelectorError, Labels};
use crate::namespaces::NamespaceLabels;
use crate::pod::WorkloadKind;

/// The YAML form of `match` / `exclude`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CriteriaDoc {
    #[serde(default)]
    pub namespaces: Option<Vec<String>>,
    #[serde(default)]
    pub kinds: Option<Vec<String>>,
    #[serde(default)]
    pub users: Option<Vec<String>>,
    #[serde(default)]
    pub images: Option<Vec<String>>,
    /// The labels of the request's namespace.
    #[serde(default, rename = "namespaceSelector")]
    pub namespace_selector: Option<LabelSelectorDoc>,
    /// The labels of the object under review.
    #[serde(default, rename = "objectSelector")]
    pub object_selector: Option<LabelSelectorDoc>,
}

/// A `match` or `exclude` that does not compile.
#[derive(Debug, thiserror::Error)]
pub enum CriteriaError {
    #[error(transparent)]
    Glob(#[from] SelectorError),
    #[error(transparent)]
    Labels(#[from] LabelSelectorError),
}

impl CriteriaError {
    /// The offending field, e.g. `spec.match.namespaceSelector.matchExpressions[0].key`.
    pub fn field(&self) -> &str {
        match self {
            CriteriaError::Glob(e) => &e.field,
            CriteriaError::Labels(e) => &e.field,
        }
    }

    /// What is wrong with it.
    pub fn message(&self) -> String {
        match self {
            CriteriaError::Glob(e) => format!("invalid glob {:?}: {}", e.pattern, e.reason),
            CriteriaError::Labels(e) => e.message.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{field}: invalid glob {pattern:?}: {reason}")]
pub struct SelectorError {
    pub field: String,
    pub pattern: String,
    pub reason: String,
}

/// A compiled list of globs.
#[derive(Debug, Clone, Default)]
pub(crate) enum Globs {
    /// The list was not given.
    #[default]
    Unset,
    /// The list contains `*`: matches every value, checked without running a matcher.
    Everything,
    Set(GlobSet),
}

impl Globs {
    pub(crate) fn compile(
        field: &str,
        patterns: Option<&[String]>,
    ) -> Result<Globs, SelectorError> {
        let Some(patterns) = patterns else {
            return Ok(Globs::Unset);
        };
        if patterns.iter().any(|p| p == "*") {
            return Ok(Globs::Everything);
        }
        let mut set = GlobSetBuilder::new();
        for pattern in patterns {
            let glob = Glob::new(pattern).map_err(|e| SelectorError {
                field: field.to_owned(),
                pattern: pattern.clone(),
                reason: e.kind().to_string(),
            })?;
            set.add(glob);
        }
        let set = set.build().map_err(|e| SelectorError {
            field: field.to_owned(),
            pattern: patterns.join(", "),
            reason: e.to_string(),
        })?;
        Ok(Globs::Set(set))
    }

    /// For `match`: an unset list matches.
    pub(crate) fn admits(&self, value: &str) -> bool {
        match self {
            Globs::Unset | Globs::Everything => true,
            Globs::Set(set) => set.is_match(value),
        }
    }

    /// Whether the list matches every value (or is not given): no value needs to be read.
    fn is_trivial(&self) -> bool {
        matches!(self, Globs::Unset | Globs::Everything)
    }

    /// For `exclude`: an unset list excludes nothing.
    fn hits(&self, value: &str) -> bool {
        match self {
            Globs::Unset => false,
            Globs::Everything => true,
            Globs::Set(set) => set.is_match(value),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Criteria {
    namespaces: Globs,
    kinds: Globs,
    /// The `kinds` as written, for saying which named kind a cluster does not serve.
    kind_names: Vec<String>,
    users: Globs,
    images: Globs,
    /// `None`: not given.
    namespace_labels: Option<LabelSelector>,
    object_labels: Option<LabelSelector>,
}

impl Criteria {
    fn compile(field: &str, doc: Option<&CriteriaDoc>) -> Result<Criteria, CriteriaError> {
        let empty = CriteriaDoc::default();
        let doc = doc.unwrap_or(&empty);
        let globs = |name: &str, list: &Option<Vec<String>>| {
            Globs::compile(&format!("{field}.{name}"), list.as_deref())
        };
        let labels = |name: &str, doc: &Option<LabelSelectorDoc>| {
            doc.as_ref()
                .map(|d| LabelSelector::compile(d, &format!("{field}.{name}")))
                .transpose()
        };
        Ok(Criteria {
            namespaces: globs("namespaces", &doc.namespaces)?,
            kinds: globs("kinds", &doc.kinds)?,
            kind_names: doc.kinds.clone().unwrap_or_default(),
            users: globs("users", &doc.users)?,
            images: image_globs(&format!("{field}.images"), doc.images.as_deref())?,
            namespace_labels: labels("namespaceSelector", &doc.namespace_selector)?,
            object_labels: labels("objectSelector", &doc.object_selector)?,
        })
    }
}

/// Whether a policy judges a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'r> {
    Judged,
    NotJudged,
    /// A `namespaceSelector` needed the namespace's labels and they are not known.
    Undecided(Undecided<'r>),
}

/// A selector that could not be decided, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undecided<'r> {
    /// `spec.match.namespaceSelector` or `spec.exclude.namespaceSelector`.
    pub selector: &'static str,
    /// Why the labels are not known.
    pub why: &'r str,
}

/// The object's labels, or the labels of the object an UPDATE replaces: the API server's
/// `objectSelector` matches when either does.
fn object_matches(selector: &LabelSelector, labels: ObjectLabels<'_>) -> bool {
    selector.matches(labels.object) || labels.old.is_some_and(|old| selector.matches(old))
}

/// Whether `selector` matches the namespace's labels; `None` when they are not known.
fn namespace_matches(selector: &LabelSelector, labels: NamespaceLabels<'_>) -> Option<bool> {
    if selector.is_everything() {
        return Some(true);
    }
    labels.labels().map(|l: &dyn Labels| selector.matches(l))
}

/// Compiles globs over canonical image references, refusing those that can never match one.
pub(crate) fn image_globs(
    field: &str,
    patterns: Option<&[String]>,
) -> Result<Globs, SelectorError> {
    for pattern in patterns.unwrap_or_default() {
        if let Some(reason) = image_ref::unmatchable_glob(pattern) {
            return Err(SelectorError {
                field: field.to_owned(),
                pattern: pattern.clone(),
                reason,
            });
        }
    }
    Globs::compile(field, patterns)
}

/// The compiled `match` and `exclude` of one policy.
#[derive(Debug, Clone)]
pub struct Selector {
    include: Criteria,
    exclude: Criteria,
}

impl Default for Selector {
    /// Judges everything.
    fn default() -> Self {
        Selector {
            include: Criteria::default(),
            exclude: Criteria::default(),
        }
    }
}

impl Selector {
    pub fn compile(
        include: Option<&CriteriaDoc>,
        exclude: Option<&CriteriaDoc>,
    ) -> Result<Selector, CriteriaError> {
        Ok(Selector {
            include: Criteria::compile("spec.match", include)?,
            exclude: Criteria::compile("spec.exclude", exclude)?,
        })
    }

    /// Whether a `namespaceSelector` is given (in `match` or `exclude`): such a policy needs
    /// the namespace's labels to decide.
    pub fn reads_namespace_labels(&self) -> bool {
        self.include.namespace_labels.is_some() || self.exclude.namespace_labels.is_some()
    }

    /// Whether an `objectSelector` is given.
    pub fn reads_object_labels(&self) -> bool {
        self.include.object_labels.is_some() || self.exclude.object_labels.is_some()
    }

    /// Whether the policy judges `request`: the globs first (they need nothing but the
    /// request), then the object's labels, then the namespace's, which may not be known.
    pub fn decide<'r>(&self, request: &Request<'r>) -> Decision<'r> {
        if !self.judges(request.kind, request.namespace, request.user) {
            return Decision::NotJudged;
        }
        self.decide_labels(request)
    }

    /// The label selectors alone (what a Namespace review, which has no workload kind, reads
    /// after the name and user globs).
    pub fn decide_labels<'r>(&self, request: &Request<'r>) -> Decision<'r> {
        self.decide_labels_of(request.object_labels, request.namespace_labels)
    }

    /// [`Selector::decide_labels`] for an object of any kind (CEL policies judge Services,
    /// Namespaces...): its labels, and what is known of its namespace's.
    pub fn decide_labels_of<'r>(
        &self,
        object_labels: ObjectLabels<'_>,
        namespace_labels: NamespaceLabels<'r>,
    ) -> Decision<'r> {
        if let Some(s) = &self.include.object_labels
            && !object_matches(s, object_labels)
        {
            return Decision::NotJudged;
        }
        if let Some(s) = &self.exclude.object_labels
            && object_matches(s, object_labels)
        {
            return Decision::NotJudged;
        }
        let undecided = |selector| {
            let why = match namespace_labels {
                NamespaceLabels::Unknown(why) => why,
                NamespaceLabels::Known(..) => "",
            };
            Decision::Undecided(Undecided { selector, why })
        };
        if let Some(s) = &self.include.namespace_labels {
            match namespace_matches(s, namespace_labels) {
                Some(false) => return Decision::NotJudged,
                Some(true) => {}
                None => return undecided("spec.match.namespaceSelector"),
            }
        }
        if let Some(s) = &self.exclude.namespace_labels {
            match namespace_matches(s, namespace_labels) {
                Some(true) => return Decision::NotJudged,
                Some(false) => {}
                None => return undecided("spec.exclude.namespaceSelector"),
            }
        }
        Decision::Judged
    }

    /// Whether the namespace name and user globs choose a Namespace review (kinds and images
    /// concern workloads and are not read).
    pub fn judges_namespace_review(&self, namespace: &str, user: Option<&str>) -> bool {
        let user_admitted = user.is_none_or(|u| self.include.users.admits(u));
        let user_excluded = user.is_some_and(|u| self.exclude.users.hits(u));
        self.include.namespaces.admits(namespace)
            && user_admitted
            && !self.exclude.namespaces.hits(namespace)
            && !user_excluded
    }

    /// Whether `match.images` or `exclude.images` is given.
    pub fn selects_images(&self) -> bool {
        !matches!(self.include.images, Globs::Unset) || !matches!(self.exclude.images, Globs::Unset)
    }

    /// Whether the policy judges a workload of `kind` in `namespace`, requested by `user`
    /// (`None` outside admission).
    pub fn judges(&self, kind: WorkloadKind, namespace: &str, user: Option<&str>) -> bool {
        self.judges_kind(kind.as_str(), namespace, user)
    }

    /// [`Selector::judges`] for an object of any kind, by its kind's name (CEL policies judge
    /// Services, Ingresses...).
    pub fn judges_kind(&self, kind: &str, namespace: &str, user: Option<&str>) -> bool {
        let user_admitted = user.is_none_or(|u| self.include.users.admits(u));
        let user_excluded = user.is_some_and(|u| self.exclude.users.hits(u));
        self.include.namespaces.admits(namespace)
            && self.include.kinds.admits(kind)
            && user_admitted
            && !self.exclude.namespaces.hits(namespace)
            && !self.exclude.kinds.hits(kind)
            && !user_excluded
    }

    /// Whether the kind globs alone (`match.kinds`, `exclude.kinds`) choose the kind named
    /// `kind`, whatever the namespace and user: what the audit lists for the policy.
    pub fn admits_kind(&self, kind: &str) -> bool {
        self.include.kinds.admits(kind) && !self.exclude.kinds.hits(kind)
    }

    /// The kinds `match.kinds` names as written (globs included); empty when not given.
    pub fn kind_names(&self) -> &[String] {
        &self.include.kind_names
    }

    /// Whether a container running `image` (as the pod spells it) is judged.
    pub fn judges_image(&self, image: &str) -> bool {
        if self.include.images.is_trivial() && matches!(self.exclude.images, Globs::Unset) {
            return true;
        }
        self.judges_reference(image_ref::parse(image).as_ref().ok())
    }

    /// Whether a container running the parsed reference is judged; `None` for a text that is
    /// not an image reference, which only `exclude.images: ["*"]` leaves out.
    pub fn judges_reference(&self, reference: Option<&ImageRef<'_>>) -> bool {
        match reference {
            Some(r) => {
                self.include.images.admits(r.as_str()) && !self.exclude.images.hits(r.as_str())
            }
            None => !matches!(self.exclude.images, Globs::Everything),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(yaml: &str) -> CriteriaDoc {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn match_narrows_and_exclude_carves_out() {
        let include = doc("{namespaces: ['team-*'], kinds: ['Pod', 'Deployment']}");
        let exclude = doc(
            "{namespaces: ['team-legacy'], users: ['system:serviceaccount:kube-system:*'], images: ['registry.k8s.io/pause:*']}",
        );
        let s = Selector::compile(Some(&include), Some(&exclude)).unwrap();
        assert!(s.judges(WorkloadKind::Pod, "team-a", Some("alice")));
        assert!(s.judges(WorkloadKind::Pod, "team-a", None));
        assert!(!s.judges(WorkloadKind::Job, "team-a", Some("alice")));
        assert!(!s.judges(WorkloadKind::Pod, "default", Some("alice")));
        assert!(!s.judges(WorkloadKind::Pod, "team-legacy", Some("alice")));
        assert!(!s.judges(
            WorkloadKind::Pod,
            "team-a",
            Some("system:serviceaccount:kube-system:replicaset-controller")
        ));
        assert!(s.judges_image("nginx:1.27"));
        assert!(!s.judges_image("registry.k8s.io/pause:3.10"));
    }

    #[test]
    fn image_globs_see_the_canonical_reference() {
        let exclude = doc("{images: ['docker.io/library/nginx:*']}");
        let s = Selector::compile(None, Some(&exclude)).unwrap();
        for spelling in [
            "nginx:1.27",
            "nginx",
            "library/nginx:1.27",
            "docker.io/nginx:1.27",
            "index.docker.io/nginx:1.27",
            "index.docker.io/library/nginx:1.27",
        ] {
            assert!(!s.judges_image(spelling), "{spelling} is excluded");
        }
        // Not a reference: judged, never excluded by a glob that would match its look-alike.
        assert!(s.judges_image("docker.io/library/nginx:1.27 "));
        assert!(s.judges_image("NGINX:1.27"));
        let include = doc("{images: ['registry.example.com/*']}");
        let s = Selector::compile(Some(&include), None).unwrap();
        assert!(s.judges_image("registry.example.com/app"));
        assert!(!s.judges_image("nginx"));
        assert!(
            s.judges_image("registry.example.com/App"),
            "unparsable: judged"
        );
        let everything = doc("{images: ['*']}");
        let s = Selector::compile(None, Some(&everything)).unwrap();
        assert!(!s.judges_image("not an image"));
    }

    #[test]
    fn image_globs_that_can_never_match_are_refused() {
        let exclude = doc("{images: ['nginx:1.27']}");
        let err = Selector::compile(None, Some(&exclude)).unwrap_err();
        assert_eq!(err.field(), "spec.exclude.images");
        assert!(
            err.to_string().contains("docker.io/library/nginx:1.27"),
            "{err}"
        );
        let include = doc("{images: ['docker.io/nginx:*']}");
        let err = Selector::compile(Some(&include), None).unwrap_err();
        assert_eq!(err.field(), "spec.match.images");
    }

    #[test]
    fn star_matches_across_slashes_in_images() {
        let include = doc("{images: ['registry.example.com/team/*']}");
        let s = Selector::compile(Some(&include), None).unwrap();
        assert!(s.judges_image("registry.example.com/team/app:v1"));
        assert!(s.judges_image("registry.example.com/team/sub/app@sha256:abc"));
        assert!(!s.judges_image("docker.io/library/nginx"));
        assert!(!s.judges_image("nginx"));
    }

    #[test]
    fn bad_globs_name_the_field() {
        let include = doc("{namespaces: ['team-[a']}");
        let err = Selector::compile(Some(&include), None).unwrap_err();
        assert_eq!(err.field(), "spec.match.namespaces");
        assert!(err.to_string().contains("team-[a"), "{err}");
    }

    fn judged(d: Decision<'_>) -> Option<bool> {
        match d {
            Decision::Judged => Some(true),
            Decision::NotJudged => Some(false),
            Decision::Undecided(_) => None,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn namespace_selectors_read_the_namespaces_labels() {
        use crate::namespaces::LabelSource;
        let include = doc("{namespaceSelector: {matchLabels: {tier: prod}}}");
        let exclude = doc(
            "{namespaceSelector: {matchExpressions: [{key: portier.dev/exempt, operator: Exists}]}}",
        );
        let s = Selector::compile(Some(&include), Some(&exclude)).unwrap();
        assert!(s.reads_namespace_labels() && !s.reads_object_labels());
        let prod = labels(&[("tier", "prod")]);
        let exempt = labels(&[("tier", "prod"), ("portier.dev/exempt", "")]);
        let dev = labels(&[("tier", "dev")]);
        let at = |l: &std::collections::BTreeMap<String, String>| {
            judged(
                s.decide(
                    &Request::new(WorkloadKind::Pod, "shop", None)
                        .with_namespace_labels(NamespaceLabels::Known(l, LabelSource::Cache)),
                ),
            )
        };
        assert_eq!(at(&prod), Some(true));
        assert_eq!(at(&exempt), Some(false));
        assert_eq!(at(&dev), Some(false));
        assert_eq!(at(&labels(&[])), Some(false), "a missing label");
        let unknown = Request::new(WorkloadKind::Pod, "shop", None)
            .with_namespace_labels(NamespaceLabels::Unknown("no API access"));
        assert_eq!(
            s.decide(&unknown),
            Decision::Undecided(Undecided {
                selector: "spec.match.namespaceSelector",
                why: "no API access"
            })
        );
        // The globs are read first: a request they leave out needs no labels.
        let named = Selector::compile(
            Some(&doc(
                "{namespaces: ['team-*'], namespaceSelector: {matchLabels: {a: b}}}",
            )),
            None,
        )
        .unwrap();
        assert_eq!(named.decide(&unknown), Decision::NotJudged);
        // An empty selector matches everything, labels known or not.
        let everything = Selector::compile(Some(&doc("{namespaceSelector: {}}")), None).unwrap();
        assert_eq!(everything.decide(&unknown), Decision::Judged);
        // Only exclude given, labels unknown: undecided too (fail closed).
        let only_exclude = Selector::compile(None, Some(&exclude)).unwrap();
        assert!(matches!(
            only_exclude.decide(&unknown),
            Decision::Undecided(Undecided {
                selector: "spec.exclude.namespaceSelector",
                ..
            })
        ));
    }

    #[test]
    fn object_selectors_read_the_object_and_the_object_it_replaces() {
        let include =
            doc("{objectSelector: {matchExpressions: [{key: app, operator: In, values: [web]}]}}");
        let exclude = doc("{objectSelector: {matchLabels: {portier.dev/skip: 'true'}}}");
        let s = Selector::compile(Some(&include), Some(&exclude)).unwrap();
        assert!(s.reads_object_labels() && !s.reads_namespace_labels());
        let web = labels(&[("app", "web")]);
        let api = labels(&[("app", "api")]);
        let skipped = labels(&[("app", "web"), ("portier.dev/skip", "true")]);
        let none = labels(&[]);
        let decide =
            |object: &std::collections::BTreeMap<String, String>,
             old: Option<&std::collections::BTreeMap<String, String>>| {
                let r =
                    Request::new(WorkloadKind::Deployment, "shop", None).with_object_labels(object);
                let r = match old {
                    Some(old) => r.with_old_object_labels(old),
                    None => r,
                };
                judged(s.decide(&r))
            };
        assert_eq!(decide(&web, None), Some(true));
        assert_eq!(decide(&api, None), Some(false));
        assert_eq!(decide(&none, None), Some(false));
        assert_eq!(decide(&skipped, None), Some(false));
        // An UPDATE matches when either object does, as the API server's objectSelector.
        assert_eq!(decide(&api, Some(&web)), Some(true));
        assert_eq!(decide(&web, Some(&skipped)), Some(false));
        // Namespace labels are not needed for object selectors.
        assert_eq!(decide(&web, Some(&none)), Some(true));
    }

    #[test]
    fn bad_label_selectors_name_the_field() {
        let include = doc("{namespaceSelector: {matchExpressions: [{key: a, operator: In}]}}");
        let err = Selector::compile(Some(&include), None).unwrap_err();
        assert_eq!(
            err.field(),
            "spec.match.namespaceSelector.matchExpressions[0].values"
        );
        let exclude = doc("{objectSelector: {matchLabels: {'a b': c}}}");
        let err = Selector::compile(None, Some(&exclude)).unwrap_err();
        assert_eq!(err.field(), "spec.exclude.objectSelector.matchLabels");
        assert!(err.message().contains("\"a b\""), "{}", err.message());
    }

    #[test]
    fn default_judges_everything() {
        let s = Selector::default();
        assert!(s.judges(WorkloadKind::CronJob, "kube-system", Some("x")));
        assert!(s.judges_image(""));
    }
}
