//! `spec.match` and `spec.exclude`: which requests and containers a policy judges.
//!
//! `match` narrows: every list it gives must match (a missing list matches everything).
//! `exclude` carves out: any list it gives that matches excludes (a namespace, a kind, a user),
//! and `images` excludes single containers. The user lists apply only at admission, where a
//! requesting user exists; offline checks and audits have none and ignore them.
//!
//! Image globs see the canonical reference ([`crate::image_ref`]), whatever the pod's
//! spelling, and a text that is no image reference is judged by every policy and excluded by
//! no glob but `*`: an exclusion must never be reachable by misspelling an image.

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::image_ref::{self, ImageRef};
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
}

#[derive(Debug, thiserror::Error)]
#[error("{field}: invalid glob {pattern:?}: {reason}")]
pub struct SelectorError {
    pub field: String,
    pub pattern: String,
    pub reason: String,
}

/// A compiled list of globs.
#[derive(Debug, Clone)]
pub(crate) enum Globs {
    /// The list was not given.
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

#[derive(Debug, Clone)]
struct Criteria {
    namespaces: Globs,
    kinds: Globs,
    users: Globs,
    images: Globs,
}

impl Criteria {
    fn compile(field: &str, doc: Option<&CriteriaDoc>) -> Result<Criteria, SelectorError> {
        let empty = CriteriaDoc::default();
        let doc = doc.unwrap_or(&empty);
        let globs = |name: &str, list: &Option<Vec<String>>| {
            Globs::compile(&format!("{field}.{name}"), list.as_deref())
        };
        Ok(Criteria {
            namespaces: globs("namespaces", &doc.namespaces)?,
            kinds: globs("kinds", &doc.kinds)?,
            users: globs("users", &doc.users)?,
            images: image_globs(&format!("{field}.images"), doc.images.as_deref())?,
        })
    }
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
        let unset = Criteria {
            namespaces: Globs::Unset,
            kinds: Globs::Unset,
            users: Globs::Unset,
            images: Globs::Unset,
        };
        Selector {
            include: unset.clone(),
            exclude: unset,
        }
    }
}

impl Selector {
    pub fn compile(
        include: Option<&CriteriaDoc>,
        exclude: Option<&CriteriaDoc>,
    ) -> Result<Selector, SelectorError> {
        Ok(Selector {
            include: Criteria::compile("spec.match", include)?,
            exclude: Criteria::compile("spec.exclude", exclude)?,
        })
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
        assert_eq!(err.field, "spec.exclude.images");
        assert!(
            err.to_string().contains("docker.io/library/nginx:1.27"),
            "{err}"
        );
        let include = doc("{images: ['docker.io/nginx:*']}");
        let err = Selector::compile(Some(&include), None).unwrap_err();
        assert_eq!(err.field, "spec.match.images");
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
        assert_eq!(err.field, "spec.match.namespaces");
        assert!(err.to_string().contains("team-[a"), "{err}");
    }

    #[test]
    fn default_judges_everything() {
        let s = Selector::default();
        assert!(s.judges(WorkloadKind::CronJob, "kube-system", Some("x")));
        assert!(s.judges_image(""));
    }
}
