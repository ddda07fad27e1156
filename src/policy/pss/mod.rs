//! The Pod Security Standards, control for control as upstream's
//! `k8s.io/pod-security-admission/policy` package defines them (see `README.md` here).
//!
//! Each control is one file: a pure function of the requested policy version and the pod view
//! that reports a finding per offending pod field, container field, volume or annotation, with
//! upstream's `reason (detail)` text for that one offender as the problem. The registry below
//! lists the controls in upstream's order and composes the levels as upstream does: restricted
//! is baseline minus the baseline controls a restricted control overrides, plus the restricted
//! controls, and a control not yet defined at the requested version does not run.
//!
//! Nothing here allocates unless a finding is reported.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer};

use super::{ParamError, Sink};
use crate::pod::PodView;

mod fill;
mod text;

pub mod app_armor;
pub mod capabilities_baseline;
pub mod capabilities_restricted;
pub mod host_namespaces;
pub mod host_path_volumes;
pub mod host_ports;
pub mod host_probes;
pub mod host_process;
pub mod labels;
pub mod namespace;
pub mod privilege_escalation;
pub mod privileged;
pub mod proc_mount;
pub mod proc_mount_restricted;
pub mod run_as_non_root;
pub mod run_as_user;
pub mod seccomp_baseline;
pub mod seccomp_restricted;
pub mod selinux;
pub mod sysctls;
pub mod upstream;
pub mod volume_types;

#[cfg(test)]
mod tests;

/// The check id of the whole standard at a level.
pub const ID: &str = "pod-security";

/// The newest policy version upstream defines (`v1.37`): `latest`, and any newer `v1.N`, mean
/// this one, as upstream clamps a requested version to its newest.
pub const LATEST_MINOR: u32 = 37;

/// A Pod Security Standards level (upstream's third level, `privileged`, checks nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Baseline,
    Restricted,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A requested policy version: `latest` or `v1.N`, parsed as upstream's `ParseVersion` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    #[default]
    Latest,
    /// `v1.N` with this minor version.
    V1(u32),
}

/// A version that is neither `latest` nor `v1.N`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version {0:?}: expected \"latest\" or \"v1.N\" such as \"v1.29\"")]
pub struct VersionError(pub String);

impl Version {
    /// `latest`, or `v1.` followed by a minor version without leading zeros.
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        if text == "latest" {
            return Ok(Version::Latest);
        }
        let minor = text
            .strip_prefix("v1.")
            .filter(|m| {
                !m.is_empty()
                    && m.bytes().all(|b| b.is_ascii_digit())
                    && (m.len() == 1 || !m.starts_with('0'))
            })
            .and_then(|m| m.parse::<u32>().ok());
        match minor {
            Some(minor) => Ok(Version::V1(minor)),
            None => Err(VersionError(text.to_owned())),
        }
    }

    /// The minor version whose definitions apply: `latest` and versions newer than upstream's
    /// newest are upstream's newest.
    pub fn minor(self) -> u32 {
        match self {
            Version::Latest => LATEST_MINOR,
            Version::V1(minor) => minor.min(LATEST_MINOR),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Latest => f.write_str("latest"),
            Version::V1(minor) => write!(f, "v1.{minor}"),
        }
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let text = String::deserialize(de)?;
        Version::parse(&text).map_err(de::Error::custom)
    }
}

/// How a control judges a pod at a (clamped) minor version.
pub type Evaluate = for<'o, 'p, 'v, 'a> fn(u32, PodView<'v, 'a>, &mut Sink<'o, 'p, 'v>);

/// One control of the standard.
#[derive(Debug)]
pub struct Control {
    /// portier's check id, e.g. `pss-privileged`.
    pub id: &'static str,
    /// Upstream's check id, e.g. `privileged`, `capabilities_baseline`.
    pub upstream_id: &'static str,
    /// The control's name in the Pod Security Standards, e.g. `Privileged Containers`.
    pub name: &'static str,
    pub level: Level,
    /// The minor versions at which upstream defines a revision of the control (its
    /// `MinimumVersion`s); the first is the version the control appears at.
    pub revisions: &'static [u32],
    /// The upstream id of the baseline control this restricted control replaces, at every
    /// version where this one is defined.
    pub overrides: Option<&'static str>,
    pub evaluate: Evaluate,
}

impl Control {
    /// The first version the control is defined at.
    pub fn since(&self) -> u32 {
        self.revisions.first().copied().unwrap_or(0)
    }

    pub fn defined_at(&self, minor: u32) -> bool {
        self.since() <= minor
    }
}

/// Every control, in upstream's order: baseline controls by upstream id, then restricted ones
/// by upstream id (byte order). Findings of `pod-security` come out in this order.
pub static CONTROLS: [&Control; 19] = [
    &app_armor::CONTROL,
    &capabilities_baseline::CONTROL,
    &host_namespaces::CONTROL,
    &host_path_volumes::CONTROL,
    &host_ports::CONTROL,
    &host_probes::CONTROL,
    &privileged::CONTROL,
    &proc_mount::CONTROL,
    &selinux::CONTROL,
    &seccomp_baseline::CONTROL,
    &sysctls::CONTROL,
    &host_process::CONTROL,
    &privilege_escalation::CONTROL,
    &capabilities_restricted::CONTROL,
    &proc_mount_restricted::CONTROL,
    &volume_types::CONTROL,
    &run_as_non_root::CONTROL,
    &run_as_user::CONTROL,
    &seccomp_restricted::CONTROL,
];

/// The control with portier check id `id`.
pub fn control(id: &str) -> Option<&'static Control> {
    CONTROLS.iter().copied().find(|c| c.id == id)
}

/// The controls that make up `level` at `minor`, in upstream's order.
pub fn controls_for(level: Level, minor: u32) -> Vec<&'static Control> {
    let defined = CONTROLS.iter().copied().filter(|c| c.defined_at(minor));
    let restricted = defined.clone().filter(|c| c.level == Level::Restricted);
    let overridden: Vec<&str> = match level {
        Level::Baseline => Vec::new(),
        Level::Restricted => restricted.clone().filter_map(|c| c.overrides).collect(),
    };
    let baseline =
        defined.filter(|c| c.level == Level::Baseline && !overridden.contains(&c.upstream_id));
    match level {
        Level::Baseline => baseline.collect(),
        Level::Restricted => baseline.chain(restricted).collect(),
    }
}

/// Params of `pod-security`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub level: Level,
    #[serde(default)]
    pub version: Version,
}

/// Params of a single control's check.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlParams {
    #[serde(default)]
    pub version: Version,
}

/// A compiled `pod-security` check: the controls of a level at a version.
#[derive(Debug)]
pub struct PodSecurity {
    pub level: Level,
    pub version: Version,
    minor: u32,
    controls: Vec<&'static Control>,
}

impl PodSecurity {
    pub fn compile(params: Params) -> PodSecurity {
        let minor = params.version.minor();
        PodSecurity {
            level: params.level,
            version: params.version,
            minor,
            controls: controls_for(params.level, minor),
        }
    }

    pub fn controls(&self) -> &[&'static Control] {
        &self.controls
    }

    pub fn evaluate<'v>(&self, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
        for control in &self.controls {
            (control.evaluate)(self.minor, pod, sink);
        }
    }

    /// Whether any control of the level has something to fill in (restricted does).
    pub fn can_mutate(&self) -> bool {
        self.controls
            .iter()
            .any(|c| fill::fill_for(c.upstream_id).is_some())
    }

    /// Fills in every fillable control's compliant value; returns whether anything changed.
    pub fn mutate(&self, spec: &mut crate::policy::edit::Object) -> bool {
        let mut changed = false;
        for control in &self.controls {
            if let Some(fill) = fill::fill_for(control.upstream_id) {
                changed |= fill(spec);
            }
        }
        changed
    }
}

/// A compiled single-control check.
#[derive(Debug)]
pub struct ControlCheck {
    pub control: &'static Control,
    pub version: Version,
    minor: u32,
}

impl ControlCheck {
    /// Fails when the control is not defined at the requested version: a check that can never
    /// report anything is a mistake in the policy.
    pub fn compile(
        control: &'static Control,
        params: ControlParams,
    ) -> Result<ControlCheck, ParamError> {
        let minor = params.version.minor();
        if !control.defined_at(minor) {
            return Err(ParamError::new(
                "spec.params.version",
                format!(
                    "{} ({}) is defined from v1.{} on, not at {}",
                    control.id,
                    control.upstream_id,
                    control.since(),
                    params.version
                ),
            ));
        }
        Ok(ControlCheck {
            control,
            version: params.version,
            minor,
        })
    }

    pub fn evaluate<'v>(&self, pod: PodView<'v, '_>, sink: &mut Sink<'_, '_, 'v>) {
        (self.control.evaluate)(self.minor, pod, sink);
    }

    pub fn can_mutate(&self) -> bool {
        fill::fill_for(self.control.upstream_id).is_some()
    }

    pub fn mutate(&self, spec: &mut crate::policy::edit::Object) -> bool {
        fill::fill_for(self.control.upstream_id).is_some_and(|fill| fill(spec))
    }
}
