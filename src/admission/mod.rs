//! The AdmissionReview wire format (admission.k8s.io/v1): bytes in, bytes out.
//!
//! Decoding borrows from the request body and reads only what policies need; the object is kept
//! as raw JSON until its kind is known, then decoded straight into the pod view. Every input
//! problem becomes an answer: malformed JSON is HTTP 400; a review with a readable uid but a
//! shape portier cannot judge fails closed (`allowed: false` with a clear `status.message`).

mod decode;
mod encode;
mod namespace;
mod wire;

use serde_json::value::RawValue;

use crate::cel::deferred::Document;
use crate::cel::json::Node;
use crate::engine::{self, Request};
use crate::labels::OldLabels;
use crate::mutation;
use crate::namespaces::NamespaceLabels;
use crate::pod::{self, PodView, Text, Workload, WorkloadKind};
use crate::policy::{ImageVerdicts, Mode, PolicySet, Unverified};
use decode::{Target, decode_one_pass, read_uid, target};
use encode::{allow, encode_findings, encode_verdict, fail_closed, findings, patched};
pub use encode::{bad_request, status_body};
pub use namespace::{Judged as NamespaceJudged, NamespaceReview, answer_namespace};
use wire::{RequestIn, ReviewIn};

pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const KIND: &str = "AdmissionReview";

/// The longest warning returned; kubectl prints each on one line.
pub const MAX_WARNING_CHARS: usize = 120;

pub use crate::outcome::{Endpoint, Outcome};

/// The HTTP answer to one review.
#[derive(Debug)]
pub struct Answer {
    /// 200 for every AdmissionReview answer, 400 when none could be given.
    pub http_status: u16,
    pub body: Vec<u8>,
    pub outcome: Outcome,
    /// What was judged, when something was violated (for the decision log).
    pub subject: Option<Subject>,
    /// One per violation, in policy order (`/validate` only).
    pub decisions: Vec<Decision>,
    /// Indexes of the policies whose mutation is in the returned patch (`/mutate` only).
    pub mutated: Vec<usize>,
}

/// The request a decision was about: identity only, never the object's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub uid: String,
    pub operation: String,
    /// The object's kind, e.g. `Deployment` or, judged by CEL policies, `Ingress`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub user: String,
}

/// One violation and what its policy's mode made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Index of the policy in the set in force.
    pub policy_index: usize,
    pub policy: String,
    pub check: &'static str,
    /// What the violation did: the policy's mode, or `warn` for a lenient finding.
    pub mode: Mode,
    /// Also recorded as an audit annotation, besides what `mode` did.
    pub audited: bool,
    /// `policy/check: container "x" path: what is wrong — how to fix it`.
    pub message: String,
}

/// Answers one AdmissionReview posted to `endpoint`, knowing nothing of image signatures
/// (`signed-images` then judges only what needs no registry).
pub fn review(body: &[u8], set: &PolicySet, endpoint: Endpoint) -> Answer {
    match decode(body, endpoint) {
        Decoded::Answered(answer) => answer,
        Decoded::Judge(judgement) => answer(
            &judgement,
            set,
            &Unverified,
            NamespaceLabels::Unknown("no source of namespace labels"),
        ),
        Decoded::Namespace(review, other) => {
            let judged = review.judge(set);
            let pods = Err("no access to the API".into());
            answer_namespace(&review, &judged, &other, set, &pods, || false)
        }
        Decoded::Other(other) => answer_other(
            &other,
            set,
            NamespaceLabels::Unknown("no source of namespace labels"),
        ),
    }
}

/// The review as CEL policies read it: indexed, its objects decoded only where expressions
/// look (`cel::deferred`). The body is checked as UTF-8 once, as a whole; it was decoded as
/// JSON already, by the decoder that read the review to get here.
fn cel_review(body: &[u8]) -> Result<Document<'_>, String> {
    let why =
        |e: &dyn std::fmt::Display| format!("the review cannot be read for CEL policies: {e}");
    let text = std::str::from_utf8(body).map_err(|e| why(&e))?;
    Document::index(text).map_err(|e| why(&e))
}

/// The review's `request`, which CEL policies read.
fn cel_request(review: Node<'_>) -> Result<Node<'_>, String> {
    review
        .get("request")
        .ok_or_else(|| "the review cannot be read for CEL policies: it has no request".to_owned())
}

/// What a request names (its resource, subresource, operation, namespace, name, kind and
/// user), as the review decoder read them: what the built-in checks' selectors read, and what
/// CEL policies' rules select by, enough to know before reading the review for CEL that no
/// CEL policy of a set selects it. They are the fields CEL's reading of the review gives
/// [`crate::cel::Admission`] (a field the decoder finds missing reads as empty there too).
struct RequestKey<'a> {
    group: Option<Text<'a>>,
    version: Option<Text<'a>>,
    resource: Option<Text<'a>>,
    sub_resource: Option<Text<'a>>,
    operation: Option<Text<'a>>,
    namespace: Option<Text<'a>>,
    name: Option<Text<'a>>,
    kind: Option<Text<'a>>,
    user: Option<Text<'a>>,
}

impl<'a> RequestKey<'a> {
    fn of(request: &RequestIn<'a>) -> RequestKey<'a> {
        let resource = request.resource.as_ref();
        RequestKey {
            group: resource.and_then(|r| r.group.clone()),
            version: resource.and_then(|r| r.version.clone()),
            resource: resource.and_then(|r| r.resource.clone()),
            sub_resource: request.sub_resource.clone(),
            operation: request.operation.clone(),
            namespace: request.namespace.clone(),
            name: request.name.clone(),
            kind: request.kind.as_ref().and_then(|k| k.kind.clone()),
            user: request.user_info.as_ref().and_then(|u| u.username.clone()),
        }
    }

    /// Whether some CEL policy of `set` may select the request.
    fn may_be_selected_in(&self, set: &PolicySet) -> bool {
        if !set.has_cel() {
            return false;
        }
        fn text<'t>(t: &'t Option<Text<'_>>) -> &'t str {
            t.as_deref().unwrap_or("")
        }
        let attributes = crate::cel::matcher::Attributes {
            group: text(&self.group),
            version: text(&self.version),
            resource: text(&self.resource),
            sub_resource: text(&self.sub_resource),
            operation: text(&self.operation),
            namespace: text(&self.namespace),
            name: text(&self.name),
        };
        crate::cel::judge::may_select(set, &attributes, text(&self.kind), self.user.as_deref())
    }
}

/// A review read from its body: answered already, or a workload to judge.
// Returned by value once per review and matched at once; boxing either variant would put an
// allocation on the review's path.
#[allow(clippy::large_enum_variant)]
pub enum Decoded<'a> {
    /// Malformed, not for portier (another kind, operation or subresource), or unreadable:
    /// the answer needs no policy.
    Answered(Answer),
    Judge(Judgement<'a>),
    /// A Namespace CREATE or UPDATE on `/validate` (rare: boxed, decoded whole), and the
    /// same request for CEL policies.
    Namespace(Box<NamespaceReview<'a>>, Other<'a>),
    /// A request the built-in checks do not judge (another kind, operation or subresource):
    /// only CEL policies may, on the whole object ([`answer_other`]).
    Other(Other<'a>),
}

/// A request for CEL policies alone: allowed at once by a set without any.
pub struct Other<'a> {
    endpoint: Endpoint,
    uid: Text<'a>,
    /// What the request names (`namespace` is empty for cluster-scoped objects).
    key: RequestKey<'a>,
    /// The whole review, which CEL policies read.
    body: &'a [u8],
}

/// A workload to judge, decoded once from the review's body (which it borrows).
pub struct Judgement<'a> {
    endpoint: Endpoint,
    uid: Text<'a>,
    /// What the request names.
    key: RequestKey<'a>,
    kind: WorkloadKind,
    workload: Workload<'a>,
    /// The object as sent, for `/mutate`'s patch.
    object: Option<&'a RawValue>,
    /// The object an UPDATE replaces, as sent.
    old_object: Option<&'a RawValue>,
    /// Its labels, read from it on first use.
    old_labels: Option<OldLabels<'a>>,
    /// The whole review, which CEL policies read again when some of them select it.
    body: &'a [u8],
}

impl<'a> Judgement<'a> {
    /// What the policies' selectors read of the request, without the namespace's labels.
    pub fn request(&self) -> Request<'_> {
        let key = &self.key;
        let namespace = key
            .namespace
            .as_deref()
            .or(self.workload.namespace.as_deref())
            .unwrap_or("");
        let request = Request::new(self.kind, namespace, key.user.as_deref())
            .with_name(key.name.as_deref())
            .with_object_labels(&self.workload.labels)
            .with_operation(key.operation.as_deref(), self.old_object.map(|o| o.get()));
        match &self.old_labels {
            Some(old) => request.with_old_object_labels(old),
            None => request,
        }
    }

    /// [`Judgement::request`] with what is known of the namespace's labels.
    pub fn request_in<'r>(&'r self, namespace_labels: NamespaceLabels<'r>) -> Request<'r> {
        self.request().with_namespace_labels(namespace_labels)
    }

    /// The namespace the object is in.
    pub fn namespace(&self) -> &str {
        self.request().namespace
    }

    /// The pod (template) to judge; `None` for a controller without one (allowed as is).
    pub fn pod(&self) -> Option<PodView<'_, 'a>> {
        self.workload.pod()
    }
}

/// Decodes a review posted to `endpoint`. The common case takes one pass over the body;
/// anything unusual (an error, escaped keys, fields in an order other than the API server's)
/// takes the general path, which gives the same answer and explains every error.
pub fn decode(body: &[u8], endpoint: Endpoint) -> Decoded<'_> {
    #[cfg(any(test, feature = "test-seams"))]
    engine::seams::DECODES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Ok((review, workload)) = decode_one_pass(body, endpoint) {
        return prepare(review, workload, endpoint, body);
    }
    decode_general(body, endpoint)
}

/// [`decode`] without the one-pass decoding: the object is captured raw and decoded once its
/// kind is known, and every error is explained.
fn decode_general(body: &[u8], endpoint: Endpoint) -> Decoded<'_> {
    // serde would also read a JSON array as the review's fields by position.
    if body.trim_ascii_start().first() != Some(&b'{') {
        if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            return Decoded::Answered(bad_request(&format!(
                "the body is not valid JSON: {syntax}"
            )));
        }
        return Decoded::Answered(bad_request(
            "the body must be a JSON object (an AdmissionReview)",
        ));
    }
    let review: ReviewIn<'_> = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) if e.is_data() => {
            // A shape error may hide a syntax error further on: say which it really is.
            if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                return Decoded::Answered(bad_request(&format!(
                    "the body is not valid JSON: {syntax}"
                )));
            }
            let why = format!("the AdmissionReview has the wrong shape: {e}");
            return Decoded::Answered(match read_uid(body) {
                Some(uid) => fail_closed(uid, endpoint, &why),
                None => bad_request(&why),
            });
        }
        Err(e) => {
            return Decoded::Answered(bad_request(&format!("the body is not valid JSON: {e}")));
        }
    };
    prepare(review, None, endpoint, body)
}

/// Checks a decoded review and finds its workload. `decoded` is the workload when
/// [`decode_one_pass`] already read `request.object`; otherwise it is decoded from the raw
/// object here.
fn prepare<'a>(
    review: ReviewIn<'a>,
    decoded: Option<Workload<'a>>,
    endpoint: Endpoint,
    body: &'a [u8],
) -> Decoded<'a> {
    let api_version = review.api_version.as_deref().unwrap_or("");
    let kind = review.kind.as_deref().unwrap_or("");
    if api_version != API_VERSION || kind != KIND {
        return Decoded::Answered(bad_request(&format!(
            "expected apiVersion {API_VERSION:?} and kind {KIND:?}, got {api_version:?} and {kind:?}"
        )));
    }
    let Some(request) = review.request else {
        return Decoded::Answered(bad_request("the AdmissionReview has no request"));
    };
    let key = RequestKey::of(&request);
    if endpoint == Endpoint::Validate
        && let (Some(gvk), Some(uid), Some(operation)) =
            (&request.kind, &request.uid, &request.operation)
        && !uid.is_empty()
        && namespace::is_namespace_write(
            gvk.group.as_deref().unwrap_or(""),
            gvk.kind.as_deref().unwrap_or(""),
            operation,
            request.sub_resource.as_deref().unwrap_or(""),
        )
    {
        let other = Other {
            endpoint,
            uid: Text(uid.0.clone()),
            key,
            body,
        };
        return namespace::decode(
            Text(uid.0.clone()),
            Text(operation.0.clone()),
            request.name,
            request.user_info.and_then(|u| u.username),
            request.object,
            request.old_object,
            other,
        );
    }
    let target = target(&request, decoded.is_some());
    let Some(uid) = request.uid.filter(|uid| !uid.is_empty()) else {
        return Decoded::Answered(bad_request("request.uid is missing"));
    };
    let (kind, object) = match target {
        Target::NotJudged => {
            return Decoded::Other(Other {
                endpoint,
                uid,
                key,
                body,
            });
        }
        Target::Unreadable(why) => {
            return Decoded::Answered(fail_closed(&uid, endpoint, &why));
        }
        Target::Workload(kind, object) => (kind, object),
    };
    let workload = match (decoded, object) {
        (Some(workload), _) => workload,
        (None, Some(object)) => match pod::decode_workload(kind, object.get()) {
            Ok(w) => w,
            Err(_) => {
                let why = pod::explain_decode_error(kind, object.get());
                let why = format!("request.object is not a valid {kind}: {why}");
                return Decoded::Answered(fail_closed(&uid, endpoint, &why));
            }
        },
        // `target` returns a workload only with an object.
        (None, None) => {
            return Decoded::Answered(fail_closed(&uid, endpoint, "request.object is missing"));
        }
    };
    Decoded::Judge(Judgement {
        endpoint,
        uid,
        key,
        kind,
        workload,
        object,
        old_object: request.old_object,
        old_labels: request.old_object.map(OldLabels::new),
        body,
    })
}

/// Judges a decoded review against `set`, reading image signature verdicts from `images`
/// (what was verified for this review) and the namespace's labels from `namespace`, and
/// encodes the answer.
pub fn answer(
    judgement: &Judgement<'_>,
    set: &PolicySet,
    images: &dyn ImageVerdicts,
    namespace: NamespaceLabels<'_>,
) -> Answer {
    answer_in(judgement, set, images, namespace, None)
}

/// [`answer`], with the Namespace object (CEL's `namespaceObject`) when the caller has it.
pub fn answer_in(
    judgement: &Judgement<'_>,
    set: &PolicySet,
    images: &dyn ImageVerdicts,
    namespace: NamespaceLabels<'_>,
    namespace_object: Option<&crate::cel::Json<'_>>,
) -> Answer {
    let request = judgement.request_in(namespace);
    // CEL policies read the whole request: read again, only when some CEL policy may select
    // it, and only on /validate (they validate; /mutate never denies).
    let cel_review =
        match judgement.endpoint == Endpoint::Validate && judgement.key.may_be_selected_in(set) {
            true => match cel_review(judgement.body) {
                Ok(review) => Some(review),
                Err(why) => return fail_closed(&judgement.uid, judgement.endpoint, &why),
            },
            false => None,
        };
    let cel_request = match cel_review.as_ref().map(|review| cel_request(review.root())) {
        Some(Ok(request)) => Some(request),
        Some(Err(why)) => return fail_closed(&judgement.uid, judgement.endpoint, &why),
        None => None,
    };
    let admission = cel_request.map(|request| {
        with_namespace(
            crate::cel::Admission::from_request(request),
            namespace,
            namespace_object,
        )
    });
    let verdict = match (judgement.pod(), &admission) {
        (Some(pod), None) => engine::evaluate_with(set, &request, pod, images),
        (None, None) => return allow(&judgement.uid),
        (pod, Some(admission)) => {
            engine::evaluate_admission(set, pod.map(|pod| (&request, pod)), images, admission)
        }
    };
    let endpoint = judgement.endpoint;
    // Policies that pin verified image tags to digests on /mutate, whatever the verdict.
    let pinning: Vec<usize> = if endpoint == Endpoint::Mutate {
        mutation::pinning_policies(set, &request)
    } else {
        Vec::new()
    };
    if verdict.is_clean()
        && pinning.is_empty()
        && verdict.cel_annotations.is_empty()
        && (verdict.annotations.is_empty() || endpoint == Endpoint::Mutate)
    {
        return allow(&judgement.uid);
    }
    if endpoint == Endpoint::Mutate {
        // Mutation never denies: the validating webhook, which the API server calls after it,
        // decides on whatever a patch could not fix.
        // On /mutate the one-pass decoder keeps the object raw, for the patch to be made from.
        let Some(raw) = judgement.object else {
            return allow(&judgement.uid);
        };
        return match mutation::mutate(set, &verdict, request.kind, raw.get(), &pinning, images) {
            Ok(Some(m)) => patched(&judgement.uid, m),
            Ok(None) => allow(&judgement.uid),
            Err(e) => {
                // The object decoded as a workload, so this cannot happen short of a bug; it
                // is said and counted, and the review is left to /validate.
                tracing::error!(uid = %&*judgement.uid, error = %e, "cannot make the mutation's patch");
                Answer {
                    outcome: Outcome::Invalid,
                    ..allow(&judgement.uid)
                }
            }
        };
    }
    let subject = Subject {
        uid: judgement.uid.to_string(),
        operation: judgement.key.operation.as_deref().unwrap_or("").to_owned(),
        kind: request.kind.as_str().to_owned(),
        namespace: request.namespace.to_owned(),
        name: judgement
            .key
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
            .or(judgement.workload.name.as_deref())
            .or(judgement.workload.generate_name.as_deref())
            .unwrap_or("")
            .to_owned(),
        user: request.user.unwrap_or("").to_owned(),
    };
    encode_verdict(subject, &verdict, request.kind.pod_spec_path())
}

impl Other<'_> {
    /// The namespace the request is in; empty for a cluster-scoped object.
    pub fn namespace(&self) -> &str {
        self.key.namespace.as_deref().unwrap_or("")
    }
}

/// Whether judging a request (of `namespace`) with `set` may need its namespace's labels or
/// object: only then does the caller look them up.
pub fn cel_needs_namespace(set: &PolicySet, namespace: &str) -> bool {
    !namespace.is_empty()
        && set.has_cel()
        && set
            .policies()
            .iter()
            .any(|p| matches!(&p.check, crate::policy::Check::Cel(c) if c.needs_namespace()))
}

/// Judges a request only CEL policies may judge (any kind, operation or subresource: a
/// Service, an Ingress, a Namespace, a custom resource, a DELETE, a `pods/exec`) with the
/// namespace's labels from `namespace`, and encodes the answer. Without CEL policies, or on
/// /mutate, it is allowed as it is.
pub fn answer_other(other: &Other<'_>, set: &PolicySet, namespace: NamespaceLabels<'_>) -> Answer {
    answer_other_in(other, set, namespace, None)
}

/// [`answer_other`], with the Namespace object (`namespaceObject`) when the caller has it.
pub fn answer_other_in(
    other: &Other<'_>,
    set: &PolicySet,
    namespace: NamespaceLabels<'_>,
    namespace_object: Option<&crate::cel::Json<'_>>,
) -> Answer {
    if !set.has_cel() || other.endpoint != Endpoint::Validate {
        return allow(&other.uid);
    }
    with_cel_findings(
        other,
        set,
        namespace,
        namespace_object,
        |found| match found {
            Some((subject, findings)) => encode_findings(subject, findings),
            None => allow(&other.uid),
        },
    )
}

/// Judges `other` with the set's CEL policies and answers with what they found (`None`:
/// nothing); a review CEL policies cannot read is refused (fail closed).
fn with_cel_findings(
    other: &Other<'_>,
    set: &PolicySet,
    namespace: NamespaceLabels<'_>,
    namespace_object: Option<&crate::cel::Json<'_>>,
    answer: impl FnOnce(Option<(Subject, encode::Findings<'_>)>) -> Answer,
) -> Answer {
    if !other.key.may_be_selected_in(set) {
        return answer(None);
    }
    let review = match cel_review(other.body) {
        Ok(review) => review,
        Err(why) => return fail_closed(&other.uid, other.endpoint, &why),
    };
    let request = match cel_request(review.root()) {
        Ok(request) => request,
        Err(why) => return fail_closed(&other.uid, other.endpoint, &why),
    };
    let admission = with_namespace(
        crate::cel::Admission::from_request(request),
        namespace,
        namespace_object,
    );
    let verdict = engine::evaluate_admission(set, None, &Unverified, &admission);
    if verdict.is_clean() && verdict.cel_annotations.is_empty() {
        return answer(None);
    }
    let a = &admission.attributes;
    let subject = Subject {
        uid: other.uid.to_string(),
        operation: a.operation.to_owned(),
        kind: admission.kind.to_owned(),
        namespace: a.namespace.to_owned(),
        name: a.name.to_owned(),
        user: admission.user.unwrap_or("").to_owned(),
    };
    answer(Some((subject, findings(&verdict, ""))))
}

/// A CEL request with what is known of its namespace.
fn with_namespace<'a>(
    admission: crate::cel::Admission<'a>,
    labels: NamespaceLabels<'a>,
    object: Option<&'a crate::cel::Json<'a>>,
) -> crate::cel::Admission<'a> {
    match (object, labels.source()) {
        (Some(object), Some(source)) => admission.with_namespace_object(object, source),
        _ => admission.with_namespace_labels(labels),
    }
}

#[cfg(test)]
mod tests;
