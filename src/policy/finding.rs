//! What a check reports, and the sink it reports into.

use std::borrow::Cow;
use std::fmt;

use crate::pod::{ContainerList, ContainerRef};

use super::selector::Selector;
use super::{Mode, Policy};

/// Where a finding points, relative to the pod spec (the engine adds the workload's prefix,
/// e.g. `spec.template.spec` for a Deployment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldPath {
    /// A field of the pod spec itself, e.g. `hostNetwork` or `securityContext.runAsUser`.
    Pod(Cow<'static, str>),
    /// A field of the pod's metadata (the pod template's, for controllers), e.g.
    /// `annotations[container.apparmor.security.beta.kubernetes.io/app]`.
    Metadata(Cow<'static, str>),
    /// A field of one container, e.g. `securityContext.privileged`.
    Container {
        list: ContainerList,
        index: usize,
        field: Cow<'static, str>,
    },
    /// A field of the object itself, from its root, e.g. `metadata.namespace`; empty for
    /// findings about a whole object of any kind (CEL policies name no field).
    Object(Cow<'static, str>),
}

impl FieldPath {
    pub fn container(at: &ContainerRef<'_, '_>, field: impl Into<Cow<'static, str>>) -> Self {
        FieldPath::Container {
            list: at.list,
            index: at.index,
            field: field.into(),
        }
    }

    /// Writes the full JSON path below `pod_spec_path`.
    pub fn write(&self, pod_spec_path: &str, out: &mut impl fmt::Write) -> fmt::Result {
        match self {
            FieldPath::Pod(field) => write!(out, "{pod_spec_path}.{field}"),
            FieldPath::Metadata(field) => {
                // The metadata sits beside the spec: `spec` -> `metadata`,
                // `spec.template.spec` -> `spec.template.metadata`.
                let parent = pod_spec_path.strip_suffix("spec").unwrap_or("");
                write!(out, "{parent}metadata.{field}")
            }
            FieldPath::Container { list, index, field } => {
                write!(out, "{pod_spec_path}.{}[{index}].{field}", list.field())
            }
            FieldPath::Object(field) => out.write_str(field),
        }
    }

    pub fn render(&self, pod_spec_path: &str) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = self.write(pod_spec_path, &mut s);
        s
    }
}

/// One thing wrong with a pod, as a check found it. It borrows from the pod view (`'v`).
#[derive(Debug, Clone)]
pub struct Finding<'v> {
    /// The container concerned (with the list it is in), `None` for pod-level findings.
    pub container: Option<(ContainerList, &'v str)>,
    pub path: FieldPath,
    /// What is wrong, e.g. "privileged is true".
    pub problem: Cow<'static, str>,
    /// How to fix it, e.g. "remove securityContext.privileged or set it to false"; empty for
    /// CEL policies, whose message is all there is.
    pub fix: Cow<'static, str>,
    /// The status reason a denial for it carries: `None` is `Forbidden`; a CEL validation's
    /// `reason` (`Invalid`, `Unauthorized`, `RequestEntityTooLarge`) otherwise.
    pub reason: Option<&'static str>,
    /// The object as the API server names one it forbids (`deployments.apps "web"`): a
    /// ValidatingAdmissionPolicy's denial begins `<it> is forbidden: `, as the API server's own
    /// does.
    pub denied_object: Option<String>,
}

impl<'v> Finding<'v> {
    /// A pod-level finding, e.g. `hostNetwork`.
    pub fn pod(
        field: impl Into<Cow<'static, str>>,
        problem: impl Into<Cow<'static, str>>,
        fix: impl Into<Cow<'static, str>>,
    ) -> Self {
        Finding {
            container: None,
            path: FieldPath::Pod(field.into()),
            problem: problem.into(),
            fix: fix.into(),
            reason: None,
            denied_object: None,
        }
    }

    /// A container that is wrong because of a pod-level value it inherits: names the container,
    /// points at the pod's field.
    pub fn inherited(
        at: &ContainerRef<'v, '_>,
        pod_field: &'static str,
        problem: impl Into<Cow<'static, str>>,
        fix: impl Into<Cow<'static, str>>,
    ) -> Self {
        Finding {
            container: Some((at.list, &at.container.name)),
            path: FieldPath::Pod(Cow::Borrowed(pod_field)),
            problem: problem.into(),
            fix: fix.into(),
            reason: None,
            denied_object: None,
        }
    }

    /// A finding on an annotation of the pod (its template's, for controllers), naming the
    /// container it concerns if any.
    pub fn annotation(
        container: Option<&ContainerRef<'v, '_>>,
        key: &str,
        problem: impl Into<Cow<'static, str>>,
        fix: impl Into<Cow<'static, str>>,
    ) -> Self {
        Finding {
            container: container.map(|at| (at.list, &*at.container.name)),
            path: FieldPath::Metadata(format!("annotations[{key}]").into()),
            problem: problem.into(),
            fix: fix.into(),
            reason: None,
            denied_object: None,
        }
    }

    /// A policy whose `namespaceSelector` could not be decided: it fails closed, in its mode,
    /// saying why.
    pub fn undecided(namespace: &str, undecided: super::selector::Undecided<'_>) -> Self {
        Finding {
            container: None,
            path: FieldPath::Object(Cow::Borrowed("metadata.namespace")),
            problem: format!(
                "cannot decide {}: the labels of namespace {namespace:?} are not known ({})",
                undecided.selector, undecided.why
            )
            .into(),
            fix: "give portier read access to namespaces (get, list, watch), or, offline, the namespace's labels".into(),
            reason: None,
            denied_object: None,
        }
    }

    /// A finding on a field of one container.
    pub fn for_container(
        at: &ContainerRef<'v, '_>,
        field: impl Into<Cow<'static, str>>,
        problem: impl Into<Cow<'static, str>>,
        fix: impl Into<Cow<'static, str>>,
    ) -> Self {
        Finding {
            container: Some((at.list, &at.container.name)),
            path: FieldPath::container(at, field),
            problem: problem.into(),
            fix: fix.into(),
            reason: None,
            denied_object: None,
        }
    }
}

/// Collects findings for one policy. The engine creates one per policy and passes it to the
/// policy's check; the sink knows which containers the policy's selector leaves in scope.
pub struct Sink<'o, 'p, 'v> {
    policy: &'p Policy,
    /// The policy's position in its set.
    index: usize,
    out: &'o mut Vec<Violation<'p, 'v>>,
    /// Where audit annotations that are not violations go; `None` drops them.
    annotations: Option<&'o mut Vec<Annotation<'p>>>,
}

/// An audit annotation a policy adds that is not a violation (Pod Security admission's
/// `enforce-policy: restricted:latest`, `exempt: namespace`). Its key in the answer is
/// `<policy>.<key>`.
#[derive(Debug, Clone)]
pub struct Annotation<'p> {
    pub policy: &'p Policy,
    pub policy_index: usize,
    pub key: &'static str,
    /// Borrowed when the text is one of a fixed set (`restricted:latest`): no allocation.
    pub value: Cow<'static, str>,
}

/// A finding together with the policy that reported it.
#[derive(Debug, Clone)]
pub struct Violation<'p, 'v> {
    pub policy: &'p Policy,
    /// The policy's position in the set it was judged with.
    pub policy_index: usize,
    pub finding: Finding<'v>,
    /// What the violation does: the policy's mode, or `warn` for a lenient finding of an
    /// enforcing policy.
    pub mode: Mode,
    /// Also recorded as an audit annotation (a lenient finding: allowed, but on the record).
    pub audited: bool,
    /// Worded as upstream Pod Security admission words it: the message is the finding's
    /// problem as it is (no policy prefix, never shortened), and as an audit annotation its key
    /// is `<policy>.audit-violations`.
    pub verbatim: bool,
}

impl Violation<'_, '_> {
    /// `policy/check: container "app" spec.containers[0].securityContext.privileged: what is
    /// wrong — how to fix it`, with the JSON path below the workload's pod spec path.
    pub fn write_message(&self, pod_spec_path: &str, out: &mut impl fmt::Write) -> fmt::Result {
        let f = &self.finding;
        if let super::Check::Cel(cel) = &self.policy.check {
            // The whole message is the policy's: as the API server words it for a
            // ValidatingAdmissionPolicy, `policy/cel: message` for portier's own.
            let denied_object = f.denied_object.as_deref();
            return cel.write_message(&self.policy.name, self.mode, denied_object, &f.problem, out);
        }
        if self.verbatim {
            return out.write_str(&f.problem);
        }
        write!(out, "{}/{}: ", self.policy.name, self.policy.check.id())?;
        match f.container {
            Some((list, name)) => write!(out, "{} {name:?} ", list.noun())?,
            None => out.write_str("pod ")?,
        }
        f.path.write(pod_spec_path, out)?;
        write!(out, ": {} — {}", f.problem, f.fix)
    }

    pub fn message(&self, pod_spec_path: &str) -> String {
        let mut s = String::with_capacity(160);
        // Writing into a String cannot fail.
        let _ = self.write_message(pod_spec_path, &mut s);
        s
    }
}

impl<'o, 'p, 'v> Sink<'o, 'p, 'v> {
    pub fn new(policy: &'p Policy, index: usize, out: &'o mut Vec<Violation<'p, 'v>>) -> Self {
        Sink {
            policy,
            index,
            out,
            annotations: None,
        }
    }

    /// Keeps the audit annotations the check adds in `annotations`.
    pub fn annotating(mut self, annotations: &'o mut Vec<Annotation<'p>>) -> Self {
        self.annotations = Some(annotations);
        self
    }

    pub fn report(&mut self, finding: Finding<'v>) {
        self.out.push(Violation {
            policy: self.policy,
            policy_index: self.index,
            finding,
            mode: self.policy.mode,
            audited: false,
            verbatim: false,
        });
    }

    /// Reports a finding worded as upstream Pod Security admission words it, with the mode
    /// the namespace's labels gave it (never stricter than the policy's own mode).
    /// Returns the mode it was reported in.
    pub fn report_verbatim(&mut self, mode: Mode, finding: Finding<'v>) -> Mode {
        let mode = mode.at_most(self.policy.mode);
        self.out.push(Violation {
            policy: self.policy,
            policy_index: self.index,
            finding,
            mode,
            audited: false,
            verbatim: true,
        });
        mode
    }

    /// Adds an audit annotation `<policy>.<key>: value` that is not a violation.
    pub fn annotate(&mut self, key: &'static str, value: impl Into<Cow<'static, str>>) {
        if let Some(out) = self.annotations.as_deref_mut() {
            out.push(Annotation {
                policy: self.policy,
                policy_index: self.index,
                key,
                value: value.into(),
            });
        }
    }

    /// The policy this sink reports for.
    pub fn policy(&self) -> &'p Policy {
        self.policy
    }

    /// Reports something that must never deny (e.g. a signature that could not be checked
    /// under `onRegistryError: allow`): an enforcing policy warns instead, and the finding is
    /// also recorded as an audit annotation.
    pub fn report_lenient(&mut self, finding: Finding<'v>) {
        let mode = match self.policy.mode {
            Mode::Enforce => Mode::Warn,
            other => other,
        };
        self.out.push(Violation {
            policy: self.policy,
            policy_index: self.index,
            finding,
            mode,
            audited: true,
            verbatim: false,
        });
    }

    /// Whether a container is judged by this policy (its image is matched and not excluded).
    pub fn in_scope(&self, at: &ContainerRef<'_, '_>) -> bool {
        self.selector().judges_image(at.container.image())
    }

    /// [`Sink::in_scope`] for an image parsed already (`None`: not an image reference).
    pub fn judges_reference(&self, reference: Option<&crate::image_ref::ImageRef<'_>>) -> bool {
        self.selector().judges_reference(reference)
    }

    /// The policy's selector (borrowed from the set, not from the sink).
    pub(crate) fn selector(&self) -> &'p Selector {
        &self.policy.selector
    }
}
