//! Policies: their YAML form, how it is validated and compiled, and the built-in checks.
//!
//! Everything is parsed and checked at load time (globs compiled, params typed, quantities
//! parsed), so evaluating a compiled [`Policy`] does no parsing and, when nothing is wrong, no
//! allocation. One file per check; each check is a pure function over the pod view.

pub mod edit;
mod finding;
mod load;
pub mod quantity;
mod selector;
#[cfg(test)]
pub(crate) mod testing;

pub mod host_namespaces;
pub mod privileged;
pub mod pss;
pub mod resource_limits;
pub mod run_as_non_root;
pub mod signed_images;

use std::fmt;

use serde::Deserialize;

pub use crate::images::{ImageVerdicts, Unverified};
pub use finding::{Annotation, FieldPath, Finding, Sink, Violation};
pub use load::{LoadError, PolicySet, Sources};
pub use selector::{CriteriaDoc, CriteriaError, Decision, Selector, SelectorError, Undecided};

use crate::pod::PodView;

/// What a violation of a policy does to an admission request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deny the request.
    Enforce,
    /// Allow it and return a warning that kubectl shows.
    Warn,
    /// Allow it and record an audit annotation (a dry run at admission time).
    Audit,
}

impl Mode {
    /// How strict a mode is: enforce, then warn, then audit.
    fn strictness(self) -> u8 {
        match self {
            Mode::Enforce => 2,
            Mode::Warn => 1,
            Mode::Audit => 0,
        }
    }

    /// This mode, or `cap` where `cap` is more lenient: a `level: namespace` policy in `warn`
    /// mode turns the namespace's enforce label into warnings.
    pub fn at_most(self, cap: Mode) -> Mode {
        if self.strictness() > cap.strictness() {
            cap
        } else {
            self
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::Audit => "audit",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compiled built-in check with its validated parameters.
#[derive(Debug)]
pub enum Check {
    RunAsNonRoot(run_as_non_root::Params),
    Privileged(privileged::Params),
    HostNamespaces(host_namespaces::Params),
    /// Boxed: its compiled amounts make it much larger than the other variants.
    ResourceLimits(Box<resource_limits::Params>),
    /// `pod-security`: a Pod Security Standards level at a version.
    PodSecurity(pss::PodSecurity),
    /// `pod-security` with `level: namespace`: Pod Security admission driven by the
    /// namespace's labels. Boxed: the controls of every level and version.
    PodSecurityNamespace(Box<pss::namespace::NamespacePolicy>),
    /// One control of the Pod Security Standards (`pss-*`).
    PssControl(pss::ControlCheck),
    /// Boxed: rules, keys and registry settings.
    SignedImages(Box<signed_images::Params>),
    /// A CEL policy: portier's own `check: cel`, or a ValidatingAdmissionPolicy with one of
    /// its bindings. It judges the whole object, of any kind, through the CEL room
    /// ([`crate::cel::judge`]), not the pod view: [`Check::evaluate`] leaves it out.
    Cel(Box<crate::cel::policy::CelPolicy>),
}

/// The check ids a policy's `spec.check` may name.
pub const CHECK_IDS: &[&str] = &[
    run_as_non_root::ID,
    privileged::ID,
    host_namespaces::ID,
    resource_limits::ID,
    signed_images::ID,
    pss::ID,
    pss::app_armor::ID,
    pss::capabilities_baseline::ID,
    pss::host_namespaces::ID,
    pss::host_path_volumes::ID,
    pss::host_ports::ID,
    pss::host_probes::ID,
    pss::privileged::ID,
    pss::proc_mount::ID,
    pss::selinux::ID,
    pss::seccomp_baseline::ID,
    pss::sysctls::ID,
    pss::host_process::ID,
    pss::privilege_escalation::ID,
    pss::capabilities_restricted::ID,
    pss::proc_mount_restricted::ID,
    pss::volume_types::ID,
    pss::run_as_non_root::ID,
    pss::run_as_user::ID,
    pss::seccomp_restricted::ID,
    CEL_ID,
];

/// `spec.check` of portier's own CEL policies.
pub const CEL_ID: &str = "cel";

/// The check id of ValidatingAdmissionPolicies (with their bindings) in a set.
pub const VAP_ID: &str = "validating-admission-policy";

impl Check {
    pub fn id(&self) -> &'static str {
        match self {
            Check::RunAsNonRoot(_) => run_as_non_root::ID,
            Check::Privileged(_) => privileged::ID,
            Check::HostNamespaces(_) => host_namespaces::ID,
            Check::ResourceLimits(_) => resource_limits::ID,
            Check::PodSecurity(_) | Check::PodSecurityNamespace(_) => pss::ID,
            Check::PssControl(c) => c.control.id,
            Check::SignedImages(_) => signed_images::ID,
            Check::Cel(c) => match c.origin {
                crate::cel::policy::Origin::Portier { .. } => CEL_ID,
                crate::cel::policy::Origin::Binding { .. } => VAP_ID,
            },
        }
    }

    /// What the check column of reports shows: the check id, or a ValidatingAdmissionPolicy's
    /// name (its binding is the policy).
    pub fn label(&self) -> &str {
        match self {
            Check::Cel(c) => match &c.origin {
                crate::cel::policy::Origin::Binding { policy, .. } => policy,
                crate::cel::policy::Origin::Portier { .. } => CEL_ID,
            },
            other => other.id(),
        }
    }

    /// Builds a check from its id and raw params, validating the params.
    fn compile(id: &str, params: serde_json::Value) -> Result<Check, ParamError> {
        Ok(match id {
            run_as_non_root::ID => Check::RunAsNonRoot(typed(params)?),
            privileged::ID => Check::Privileged(typed(params)?),
            host_namespaces::ID => Check::HostNamespaces(typed(params)?),
            resource_limits::ID => {
                Check::ResourceLimits(Box::new(resource_limits::Params::compile(typed(params)?)?))
            }
            signed_images::ID => {
                // The params' text is the policy revision in the verdict cache: an edited
                // policy never reuses a verdict reached under the old one.
                let mut revision = std::collections::hash_map::DefaultHasher::new();
                std::hash::Hash::hash(&params.to_string(), &mut revision);
                let revision = std::hash::Hasher::finish(&revision);
                Check::SignedImages(Box::new(signed_images::Params::compile(
                    typed(params)?,
                    revision,
                )?))
            }
            pss::ID if params.get("level").and_then(|l| l.as_str()) == Some("namespace") => {
                Check::PodSecurityNamespace(Box::new(pss::namespace::NamespacePolicy::compile(
                    params,
                )?))
            }
            pss::ID => Check::PodSecurity(pss::PodSecurity::compile(typed(params)?)),
            other => match pss::control(other) {
                Some(control) => {
                    Check::PssControl(pss::ControlCheck::compile(control, typed(params)?)?)
                }
                None => {
                    return Err(ParamError {
                        field: "spec.check".into(),
                        message: format!(
                            "unknown check `{other}`; known checks: {}",
                            CHECK_IDS.join(", ")
                        ),
                    });
                }
            },
        })
    }

    /// Whether the check reads the namespace's labels itself.
    pub fn reads_namespace_labels(&self) -> bool {
        match self {
            Check::PodSecurityNamespace(_) => true,
            Check::Cel(cel) => cel.needs_namespace(),
            _ => false,
        }
    }

    /// Whether this check (with these params) can fill in compliant defaults.
    pub fn can_mutate(&self) -> bool {
        match self {
            Check::RunAsNonRoot(_) => true,
            Check::Privileged(p) => privileged::can_mutate(p),
            Check::HostNamespaces(_) => false,
            Check::ResourceLimits(p) => p.can_mutate(),
            Check::PodSecurity(c) => c.can_mutate(),
            Check::PodSecurityNamespace(_) => false,
            Check::PssControl(c) => c.can_mutate(),
            // Pinning digests is `params.mutateDigest`; there are no defaults to fill in.
            Check::SignedImages(_) => false,
            Check::Cel(_) => false,
        }
    }

    /// Why `spec.mutate: true` is refused for this check, when it is.
    fn cannot_mutate_reason(&self) -> &'static str {
        match self {
            Check::Privileged(_) => {
                "privileged can only fill in allowPrivilegeEscalation: false; set params.allowPrivilegeEscalation: false"
            }
            Check::HostNamespaces(_) => {
                "host-namespaces has nothing safe to fill in (a host namespace or port is always written by the user)"
            }
            Check::ResourceLimits(_) => "resource-limits needs params.defaults to fill in",
            Check::PodSecurityNamespace(_) => {
                "level: namespace has no fixed level to fill in; use a policy with level: restricted and mutate: true"
            }
            Check::PodSecurity(_) => {
                "only the restricted level has values to fill in (allowPrivilegeEscalation, capabilities, seccomp, runAsNonRoot)"
            }
            Check::PssControl(_) => {
                "only pss-privilege-escalation, pss-capabilities-restricted, pss-seccomp-restricted and pss-run-as-non-root have values to fill in"
            }
            Check::SignedImages(_) => {
                "signed-images has no defaults to fill in; set params.mutateDigest: true to pin verified tags to their digest"
            }
            Check::Cel(_) => "cel policies validate; they have nothing to fill in",
            Check::RunAsNonRoot(_) => "",
        }
    }

    /// Fills in compliant values where the pod spec (JSON) leaves them absent; never changes a
    /// value the user wrote. Returns whether anything changed.
    pub fn mutate(&self, spec: &mut edit::Object) -> bool {
        match self {
            Check::RunAsNonRoot(p) => run_as_non_root::mutate(p, spec),
            Check::Privileged(p) => privileged::mutate(p, spec),
            Check::HostNamespaces(_) => false,
            Check::ResourceLimits(p) => resource_limits::mutate(p, spec),
            Check::PodSecurity(c) => c.mutate(spec),
            Check::PodSecurityNamespace(_) => false,
            Check::PssControl(c) => c.mutate(spec),
            Check::SignedImages(_) => false,
            Check::Cel(_) => false,
        }
    }

    /// Reports every way `pod` breaks this check into `sink`. `images` holds what is known of
    /// image signatures (only `signed-images` reads it).
    pub fn evaluate<'v>(
        &self,
        pod: PodView<'v, '_>,
        request: &crate::engine::Request<'_>,
        images: &dyn ImageVerdicts,
        sink: &mut Sink<'_, '_, 'v>,
    ) {
        match self {
            Check::RunAsNonRoot(p) => run_as_non_root::evaluate(p, pod.spec, sink),
            Check::Privileged(p) => privileged::evaluate(p, pod.spec, sink),
            Check::HostNamespaces(p) => host_namespaces::evaluate(p, pod.spec, sink),
            Check::ResourceLimits(p) => resource_limits::evaluate(p, pod.spec, sink),
            Check::PodSecurity(c) => c.evaluate(pod, sink),
            Check::PodSecurityNamespace(c) => c.evaluate(pod, request, sink),
            Check::PssControl(c) => c.evaluate(pod, sink),
            Check::SignedImages(p) => signed_images::evaluate(p, pod.spec, images, sink),
            // Judged over the whole object, by `cel::judge`.
            Check::Cel(_) => {}
        }
    }
}

/// A params problem, with the path of the offending field below `spec`.
#[derive(Debug)]
pub struct ParamError {
    pub field: String,
    pub message: String,
}

impl ParamError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ParamError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Deserializes params into a check's typed form, naming the offending field on failure.
pub(crate) fn typed<T: serde::de::DeserializeOwned>(
    params: serde_json::Value,
) -> Result<T, ParamError> {
    let params = if params.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        params
    };
    serde_path_to_error::deserialize(params).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "spec.params".to_owned()
        } else {
            format!("spec.params.{path}")
        };
        ParamError {
            field,
            message: e.into_inner().to_string(),
        }
    })
}

/// One compiled policy.
#[derive(Debug)]
pub struct Policy {
    pub name: String,
    pub mode: Mode,
    pub check: Check,
    pub selector: Selector,
    /// Whether `/mutate` fills in this check's compliant defaults.
    pub mutate: bool,
}

impl Policy {
    /// Whether judging a request needs its namespace's labels: a `namespaceSelector`, or a
    /// check that reads them.
    pub fn reads_namespace_labels(&self) -> bool {
        self.selector.reads_namespace_labels() || self.check.reads_namespace_labels()
    }
}
