//! Pod Security admission's namespace labels, read exactly as upstream reads them
//! (`k8s.io/pod-security-admission/api/helpers.go`: `PolicyToEvaluate`, `ParseLevel`,
//! `ParseVersion`):
//!
//! - `pod-security.kubernetes.io/{enforce,warn,audit}` name a level, `…-version` a version; an
//!   absent label keeps the configured default (privileged:latest unless `params.defaults`).
//! - An enforce level labelled (validly) stricter than warn, with no warn level label, warns
//!   at the enforce level too (and its version, unless a warn version is labelled).
//! - An invalid level is `restricted` for enforce (fail closed) and `privileged` for warn and
//!   audit (fail open); an invalid version is `latest`. Each invalid label is an error that PSA
//!   reports (the `error` audit annotation on pods, a refusal on a Namespace write).
//!
//! Reading labels allocates nothing unless a label is invalid.

use std::fmt;

use serde::Deserialize;

use super::LATEST_MINOR;
use super::text::go_quote;
use crate::labels::Labels;

pub const ENFORCE: &str = "pod-security.kubernetes.io/enforce";
pub const ENFORCE_VERSION: &str = "pod-security.kubernetes.io/enforce-version";
pub const AUDIT: &str = "pod-security.kubernetes.io/audit";
pub const AUDIT_VERSION: &str = "pod-security.kubernetes.io/audit-version";
pub const WARN: &str = "pod-security.kubernetes.io/warn";
pub const WARN_VERSION: &str = "pod-security.kubernetes.io/warn-version";

/// A Pod Security level, with upstream's third one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PsaLevel {
    Privileged,
    Baseline,
    Restricted,
}

impl PsaLevel {
    fn parse(text: &str) -> Option<PsaLevel> {
        match text {
            "privileged" => Some(PsaLevel::Privileged),
            "baseline" => Some(PsaLevel::Baseline),
            "restricted" => Some(PsaLevel::Restricted),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PsaLevel::Privileged => "privileged",
            PsaLevel::Baseline => "baseline",
            PsaLevel::Restricted => "restricted",
        }
    }

    /// Upstream's `CompareLevels` order.
    pub fn strictness(self) -> u8 {
        match self {
            PsaLevel::Privileged => 0,
            PsaLevel::Baseline => 1,
            PsaLevel::Restricted => 2,
        }
    }
}

/// A label's version: `latest`, or `v1.N` with N as large as Go's `int` holds (upstream
/// accepts `v1.40000` and evaluates it as its newest definitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PsaVersion {
    /// `None`: latest.
    minor: Option<u64>,
}

impl PsaVersion {
    pub const LATEST: PsaVersion = PsaVersion { minor: None };

    /// Upstream's `ParseVersion`: `latest`, or `^v1\.(0|[1-9][0-9]*)$` within Go's int.
    pub fn parse(text: &str) -> Option<PsaVersion> {
        if text == "latest" {
            return Some(PsaVersion::LATEST);
        }
        let digits = text.strip_prefix("v1.")?;
        let well_formed = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits.len() == 1 || !digits.starts_with('0'));
        if !well_formed {
            return None;
        }
        let minor = digits.parse::<i64>().ok()?;
        Some(PsaVersion {
            minor: Some(minor.unsigned_abs()),
        })
    }

    /// The definitions that apply: upstream's newest for `latest` and anything newer.
    pub fn effective_minor(self) -> u32 {
        match self.minor {
            None => LATEST_MINOR,
            Some(minor) => u32::try_from(minor).unwrap_or(u32::MAX).min(LATEST_MINOR),
        }
    }
}

impl fmt::Display for PsaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.minor {
            None => f.write_str("latest"),
            Some(minor) => write!(f, "v1.{minor}"),
        }
    }
}

/// A level at a version, written `restricted:latest` as upstream writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LevelVersion {
    pub level: PsaLevel,
    pub version: PsaVersion,
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.level.as_str(), self.version)
    }
}

impl LevelVersion {
    pub const PRIVILEGED: LevelVersion = LevelVersion {
        level: PsaLevel::Privileged,
        version: PsaVersion::LATEST,
    };
}

/// What a namespace's labels ask for, per mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PsaPolicy {
    pub enforce: LevelVersion,
    pub audit: LevelVersion,
    pub warn: LevelVersion,
}

impl Default for PsaPolicy {
    fn default() -> Self {
        PsaPolicy {
            enforce: LevelVersion::PRIVILEGED,
            audit: LevelVersion::PRIVILEGED,
            warn: LevelVersion::PRIVILEGED,
        }
    }
}

impl PsaPolicy {
    pub fn fully_privileged(&self) -> bool {
        [self.enforce, self.audit, self.warn]
            .iter()
            .all(|lv| lv.level == PsaLevel::Privileged)
    }
}

/// An invalid PSA label: its key and value (upstream's `field.Invalid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelError {
    pub key: &'static str,
    pub value: String,
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = if self.key.ends_with("-version") {
            "must be \"latest\" or \"v1.x\""
        } else {
            "must be one of privileged, baseline, restricted"
        };
        write!(
            f,
            "metadata.labels[{}]: Invalid value: {}: {why}",
            self.key,
            go_quote(&self.value)
        )
    }
}

/// Upstream's `field.ErrorList.ToAggregate().Error()`: one error as it is, several in brackets.
pub fn aggregate(errors: &[LabelError]) -> String {
    match errors {
        [one] => one.to_string(),
        many => {
            let joined: Vec<String> = many.iter().map(ToString::to_string).collect();
            format!("[{}]", joined.join(", "))
        }
    }
}

/// Upstream's `PolicyToEvaluate`: the policy the labels give over `defaults`, and the invalid
/// labels (empty when all are valid), in upstream's order.
pub fn policy_to_evaluate(
    labels: &dyn Labels,
    defaults: PsaPolicy,
) -> (PsaPolicy, Vec<LabelError>) {
    let mut policy = defaults;
    let mut errors = Vec::new();
    // Enforce fails closed (restricted), audit and warn fail open (privileged).
    let modes = [
        (
            ENFORCE,
            ENFORCE_VERSION,
            &mut policy.enforce,
            PsaLevel::Restricted,
        ),
        (
            AUDIT,
            AUDIT_VERSION,
            &mut policy.audit,
            PsaLevel::Privileged,
        ),
        (WARN, WARN_VERSION, &mut policy.warn, PsaLevel::Privileged),
    ];
    for (level_key, version_key, slot, invalid_level) in modes {
        if let Some(value) = labels.label(level_key) {
            slot.level = PsaLevel::parse(&value).unwrap_or_else(|| {
                errors.push(LabelError {
                    key: level_key,
                    value: value.to_string(),
                });
                invalid_level
            });
        }
        if let Some(value) = labels.label(version_key) {
            slot.version = PsaVersion::parse(&value).unwrap_or_else(|| {
                errors.push(LabelError {
                    key: version_key,
                    value: value.to_string(),
                });
                PsaVersion::LATEST
            });
        }
    }
    // Upstream defaults warn to the enforce level when enforce is explicitly (and validly) set
    // stricter and no warn level is labelled: a warn version label keeps its own version.
    let enforce_labelled = labels
        .label(ENFORCE)
        .is_some_and(|l| PsaLevel::parse(&l).is_some());
    if enforce_labelled
        && labels.label(WARN).is_none()
        && policy.enforce.level.strictness() > policy.warn.level.strictness()
    {
        policy.warn.level = policy.enforce.level;
        if labels.label(WARN_VERSION).is_none() {
            policy.warn.version = policy.enforce.version;
        }
    }
    (policy, errors)
}

/// `params.defaults`, as PodSecurityConfiguration's `defaults` (each unset mode privileged,
/// each unset version latest).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    enforce: Option<PsaLevel>,
    #[serde(rename = "enforce-version")]
    enforce_version: Option<String>,
    audit: Option<PsaLevel>,
    #[serde(rename = "audit-version")]
    audit_version: Option<String>,
    warn: Option<PsaLevel>,
    #[serde(rename = "warn-version")]
    warn_version: Option<String>,
}

impl Defaults {
    /// The policy of an unlabelled namespace; a bad version names its field.
    pub fn compile(self) -> Result<PsaPolicy, (String, String)> {
        let version = |field: &str, text: Option<String>| {
            match text {
            None => Ok(PsaVersion::LATEST),
            Some(text) => PsaVersion::parse(&text).ok_or_else(|| {
                (
                    format!("spec.params.defaults.{field}"),
                    format!("invalid version {text:?}: expected \"latest\" or \"v1.N\" such as \"v1.29\""),
                )
            }),
        }
        };
        let level = |l: Option<PsaLevel>| l.unwrap_or(PsaLevel::Privileged);
        Ok(PsaPolicy {
            enforce: LevelVersion {
                level: level(self.enforce),
                version: version("enforce-version", self.enforce_version)?,
            },
            audit: LevelVersion {
                level: level(self.audit),
                version: version("audit-version", self.audit_version)?,
            },
            warn: LevelVersion {
                level: level(self.warn),
                version: version("warn-version", self.warn_version)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn lv(text: &str) -> String {
        text.to_owned()
    }

    #[test]
    fn absent_labels_keep_the_defaults() {
        let (p, e) = policy_to_evaluate(&labels(&[]), PsaPolicy::default());
        assert!(e.is_empty());
        assert!(p.fully_privileged());
        assert_eq!(p.enforce.to_string(), lv("privileged:latest"));
        let defaults = Defaults {
            enforce: Some(PsaLevel::Baseline),
            warn_version: Some("v1.29".into()),
            warn: Some(PsaLevel::Restricted),
            ..Defaults::default()
        }
        .compile()
        .unwrap();
        let (p, _) = policy_to_evaluate(&labels(&[(AUDIT, "baseline")]), defaults);
        assert_eq!(p.enforce.to_string(), "baseline:latest");
        assert_eq!(p.warn.to_string(), "restricted:v1.29");
        assert_eq!(p.audit.to_string(), "baseline:latest");
    }

    #[test]
    fn invalid_values_fail_closed_for_enforce_and_open_for_warn_and_audit() {
        // helpers.go: ParseLevel returns restricted with its error; PolicyToEvaluate turns an
        // invalid audit or warn level into privileged; ParseVersion returns latest.
        let (p, e) = policy_to_evaluate(
            &labels(&[
                (ENFORCE, "Baseline"),
                (ENFORCE_VERSION, "v1.029"),
                (AUDIT, "strict"),
                (WARN, ""),
                (WARN_VERSION, "v1.25"),
            ]),
            PsaPolicy::default(),
        );
        assert_eq!(p.enforce.to_string(), "restricted:latest");
        assert_eq!(p.audit.level, PsaLevel::Privileged);
        assert_eq!(p.warn.to_string(), "privileged:v1.25");
        assert_eq!(
            aggregate(&e),
            "[metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"Baseline\": must be one of privileged, baseline, restricted, \
             metadata.labels[pod-security.kubernetes.io/enforce-version]: Invalid value: \"v1.029\": must be \"latest\" or \"v1.x\", \
             metadata.labels[pod-security.kubernetes.io/audit]: Invalid value: \"strict\": must be one of privileged, baseline, restricted, \
             metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: \"\": must be one of privileged, baseline, restricted]"
        );
        let (_, e) = policy_to_evaluate(&labels(&[(WARN_VERSION, "1.25")]), PsaPolicy::default());
        assert_eq!(
            aggregate(&e),
            "metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: \"1.25\": must be \"latest\" or \"v1.x\""
        );
    }

    #[test]
    fn a_stricter_enforce_label_warns_too_unless_warn_is_labelled() {
        let (p, _) = policy_to_evaluate(
            &labels(&[(ENFORCE, "restricted"), (ENFORCE_VERSION, "v1.30")]),
            PsaPolicy::default(),
        );
        assert_eq!(p.warn.to_string(), "restricted:v1.30");
        let (p, _) = policy_to_evaluate(
            &labels(&[(ENFORCE, "baseline"), (WARN_VERSION, "v1.20")]),
            PsaPolicy::default(),
        );
        assert_eq!(p.warn.to_string(), "baseline:v1.20");
        let (p, _) = policy_to_evaluate(
            &labels(&[(ENFORCE, "restricted"), (WARN, "privileged")]),
            PsaPolicy::default(),
        );
        assert_eq!(p.warn.to_string(), "privileged:latest");
        // An invalid enforce label (restricted by failure) does not warn.
        let (p, _) = policy_to_evaluate(&labels(&[(ENFORCE, "x")]), PsaPolicy::default());
        assert_eq!(p.warn.to_string(), "privileged:latest");
    }

    #[test]
    fn versions_parse_as_upstream_parse_version() {
        for (text, shown, minor) in [
            ("latest", "latest", LATEST_MINOR),
            ("v1.0", "v1.0", 0),
            ("v1.25", "v1.25", 25),
            ("v1.99999999999", "v1.99999999999", LATEST_MINOR),
        ] {
            let v = PsaVersion::parse(text).unwrap();
            assert_eq!(
                (v.to_string().as_str(), v.effective_minor()),
                (shown, minor)
            );
        }
        for bad in [
            "",
            "Latest",
            "v1.01",
            "1.25",
            "v2.0",
            "v1.",
            "v1.-1",
            "v1.2.3",
            "v1.99999999999999999999",
        ] {
            assert_eq!(PsaVersion::parse(bad), None, "{bad:?}");
        }
    }
}
