//! The AdmissionReview wire format (admission.k8s.io/v1): bytes in, bytes out.
//!
//! Decoding borrows from the request body and reads only what policies need; the object is kept
//! as raw JSON until its kind is known, then decoded straight into the pod view. Every input
//! problem becomes an answer: malformed JSON is HTTP 400; a review with a readable uid but a
//! shape portier cannot judge fails closed (`allowed: false` with a clear `status.message`).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize, Serializer, de};
use serde_json::value::RawValue;

use crate::engine::{self, Request, Verdict};
use crate::mutation::{self, Mutation};
use crate::pod::{self, PodView, Text, Workload, WorkloadKind};
use crate::policy::{ImageVerdicts, Mode, PolicySet, Unverified};

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
    pub kind: &'static str,
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn<'a> {
    #[serde(borrow, default)]
    api_version: Option<Text<'a>>,
    #[serde(borrow, default)]
    kind: Option<Text<'a>>,
    #[serde(borrow, default)]
    request: Option<RequestIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIn<'a> {
    #[serde(borrow, default)]
    uid: Option<Text<'a>>,
    #[serde(borrow, default)]
    kind: Option<GroupVersionKind<'a>>,
    #[serde(borrow, default)]
    sub_resource: Option<Text<'a>>,
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
    #[serde(borrow, default)]
    namespace: Option<Text<'a>>,
    #[serde(borrow, default)]
    operation: Option<Text<'a>>,
    #[serde(borrow, default)]
    user_info: Option<UserInfo<'a>>,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct GroupVersionKind<'a> {
    #[serde(borrow, default)]
    group: Option<Text<'a>>,
    #[serde(borrow, default)]
    kind: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct UserInfo<'a> {
    #[serde(borrow, default)]
    username: Option<Text<'a>>,
}

/// Just enough to fail closed when the rest of a review has the wrong shape.
#[derive(Deserialize)]
struct UidOnly<'a> {
    #[serde(borrow, default)]
    request: Option<UidRequest<'a>>,
}

#[derive(Deserialize)]
struct UidRequest<'a> {
    #[serde(borrow, default)]
    uid: Option<Text<'a>>,
}

/// Answers one AdmissionReview posted to `endpoint`, knowing nothing of image signatures
/// (`signed-images` then judges only what needs no registry).
pub fn review(body: &[u8], set: &PolicySet, endpoint: Endpoint) -> Answer {
    match decode(body, endpoint) {
        Decoded::Answered(answer) => answer,
        Decoded::Judge(judgement) => answer(judgement, set, &Unverified),
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
}

/// A workload to judge, decoded once from the review's body (which it borrows).
pub struct Judgement<'a> {
    endpoint: Endpoint,
    uid: Text<'a>,
    operation: Option<Text<'a>>,
    name: Option<Text<'a>>,
    namespace: Option<Text<'a>>,
    user: Option<Text<'a>>,
    kind: WorkloadKind,
    workload: Workload<'a>,
    /// The object as sent, for `/mutate`'s patch.
    object: Option<&'a RawValue>,
}

impl<'a> Judgement<'a> {
    /// What the policies' selectors read of the request.
    pub fn request(&self) -> Request<'_> {
        Request {
            kind: self.kind,
            namespace: self
                .namespace
                .as_deref()
                .or(self.workload.namespace.as_deref())
                .unwrap_or(""),
            user: self.user.as_deref(),
        }
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
    if let Ok((review, workload)) = decode_one_pass(body, endpoint) {
        return prepare(review, workload, endpoint);
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
    prepare(review, None, endpoint)
}

/// Checks a decoded review and finds its workload. `decoded` is the workload when
/// [`decode_one_pass`] already read `request.object`; otherwise it is decoded from the raw
/// object here.
fn prepare<'a>(
    review: ReviewIn<'a>,
    decoded: Option<Workload<'a>>,
    endpoint: Endpoint,
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
    let (kind, object) = match (target(&request, decoded.is_some()), request.uid.as_deref()) {
        (_, None | Some("")) => return Decoded::Answered(bad_request("request.uid is missing")),
        (Target::NotJudged, Some(uid)) => return Decoded::Answered(allow(uid)),
        (Target::Unreadable(why), Some(uid)) => {
            return Decoded::Answered(fail_closed(uid, endpoint, &why));
        }
        (Target::Workload(kind, object), _) => (kind, object),
    };
    let Some(uid) = request.uid else {
        return Decoded::Answered(bad_request("request.uid is missing"));
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
        operation: request.operation,
        name: request.name,
        namespace: request.namespace,
        user: request.user_info.and_then(|u| u.username),
        kind,
        workload,
        object,
    })
}

/// Judges a decoded review against `set`, reading image signature verdicts from `images`
/// (what was verified for this review), and encodes the answer.
pub fn answer(judgement: Judgement<'_>, set: &PolicySet, images: &dyn ImageVerdicts) -> Answer {
    let Some(pod) = judgement.pod() else {
        return allow(&judgement.uid);
    };
    let request = judgement.request();
    let verdict = engine::evaluate_with(set, &request, pod, images);
    let endpoint = judgement.endpoint;
    // Policies that pin verified image tags to digests on /mutate, whatever the verdict.
    let pinning: Vec<usize> = if endpoint == Endpoint::Mutate {
        mutation::pinning_policies(set, &request)
    } else {
        Vec::new()
    };
    if verdict.is_clean() && pinning.is_empty() {
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
        operation: judgement.operation.as_deref().unwrap_or("").to_owned(),
        kind: request.kind.as_str(),
        namespace: request.namespace.to_owned(),
        name: judgement
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

/// What a request asks portier to judge.
enum Target<'a> {
    NotJudged,
    Unreadable(String),
    /// The kind, and the raw object unless it was decoded already.
    Workload(WorkloadKind, Option<&'a RawValue>),
}

/// The kind of workload to judge, whatever the object: `Ok(None)` when the request is not
/// judged (another operation, kind or subresource).
fn judged_kind(request: &RequestIn<'_>) -> Result<Option<WorkloadKind>, String> {
    let operation = request.operation.as_deref().unwrap_or("");
    if operation != "CREATE" && operation != "UPDATE" {
        return Ok(None);
    }
    let Some(gvk) = &request.kind else {
        return Err("request.kind is missing".into());
    };
    let group = gvk.group.as_deref().unwrap_or("");
    let Some(kind) = WorkloadKind::from_group_kind(group, gvk.kind.as_deref().unwrap_or("")) else {
        return Ok(None);
    };
    // Subresources carry other objects (status, scale, binding...). The one that changes what
    // runs is pods/ephemeralcontainers, whose object is the whole Pod.
    match request.sub_resource.as_deref() {
        None | Some("") => {}
        Some("ephemeralcontainers") if kind == WorkloadKind::Pod => {}
        Some(_) => return Ok(None),
    }
    Ok(Some(kind))
}

fn target<'a>(request: &RequestIn<'a>, decoded: bool) -> Target<'a> {
    let kind = match judged_kind(request) {
        Ok(Some(kind)) => kind,
        Ok(None) => return Target::NotJudged,
        Err(why) => return Target::Unreadable(why),
    };
    match request.object {
        Some(object) => Target::Workload(kind, Some(object)),
        None if decoded => Target::Workload(kind, None),
        None => {
            let operation = request.operation.as_deref().unwrap_or("");
            Target::Unreadable(format!("request.object is missing for {operation} {kind}"))
        }
    }
}

/// Decodes a review in one pass, reading `request.object` straight into the pod view when the
/// fields before it (the API server writes `kind`, `subResource` and `operation` first) say
/// it will be judged. Fails on anything [`review`]'s general path must explain instead:
/// errors, escaped keys, duplicate fields, a review that is not a JSON object, a body that is
/// not UTF-8 (serde_json tolerates that inside strings it skips).
fn decode_one_pass(
    body: &[u8],
    endpoint: Endpoint,
) -> Result<(ReviewIn<'_>, Option<Workload<'_>>), serde_json::Error> {
    // Validating the body's UTF-8 once, up front, is cheaper than serde_json's check of every
    // key and string it reads from a byte slice (callgrind: 10% of an 8 KB review).
    let text = std::str::from_utf8(body).map_err(|_| de::Error::custom("not UTF-8"))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let decoded = de::Deserializer::deserialize_map(&mut de, OnePass { endpoint })?;
    de.end()?;
    Ok(decoded)
}

struct OnePass {
    endpoint: Endpoint,
}

fn set_once<'de, T, A: de::MapAccess<'de>>(
    slot: &mut Option<T>,
    seen: &mut bool,
    name: &'static str,
    map: &mut A,
) -> Result<(), A::Error>
where
    Option<T>: Deserialize<'de>,
{
    if std::mem::replace(seen, true) {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = map.next_value()?;
    Ok(())
}

impl<'de> de::Visitor<'de> for OnePass {
    type Value = (ReviewIn<'de>, Option<Workload<'de>>);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an AdmissionReview object")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut review = ReviewIn {
            api_version: None,
            kind: None,
            request: None,
        };
        let mut workload = None;
        let mut seen = [false; 3];
        while let Some(key) = map.next_key::<&'de str>()? {
            match key {
                "apiVersion" => set_once(
                    &mut review.api_version,
                    &mut seen[0],
                    "apiVersion",
                    &mut map,
                )?,
                "kind" => set_once(&mut review.kind, &mut seen[1], "kind", &mut map)?,
                "request" => {
                    if std::mem::replace(&mut seen[2], true) {
                        return Err(de::Error::duplicate_field("request"));
                    }
                    let (request, w) = map.next_value_seed(RequestPass {
                        endpoint: self.endpoint,
                    })?;
                    review.request = request;
                    workload = w;
                }
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok((review, workload))
    }
}

struct RequestPass {
    endpoint: Endpoint,
}

impl<'de> de::DeserializeSeed<'de> for RequestPass {
    type Value = (Option<RequestIn<'de>>, Option<Workload<'de>>);

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_option(self)
    }
}

impl<'de> de::Visitor<'de> for RequestPass {
    type Value = (Option<RequestIn<'de>>, Option<Workload<'de>>);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an AdmissionRequest object")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok((None, None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok((None, None))
    }

    fn visit_some<D: de::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_map(self)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut r = RequestIn {
            uid: None,
            kind: None,
            sub_resource: None,
            name: None,
            namespace: None,
            operation: None,
            user_info: None,
            object: None,
        };
        let mut workload = None;
        let mut seen = [false; 8];
        while let Some(key) = map.next_key::<&'de str>()? {
            match key {
                "uid" => set_once(&mut r.uid, &mut seen[0], "uid", &mut map)?,
                "kind" => set_once(&mut r.kind, &mut seen[1], "kind", &mut map)?,
                "subResource" => {
                    set_once(&mut r.sub_resource, &mut seen[2], "subResource", &mut map)?
                }
                "namespace" => set_once(&mut r.namespace, &mut seen[3], "namespace", &mut map)?,
                "operation" => set_once(&mut r.operation, &mut seen[4], "operation", &mut map)?,
                "userInfo" => set_once(&mut r.user_info, &mut seen[5], "userInfo", &mut map)?,
                "name" => set_once(&mut r.name, &mut seen[7], "name", &mut map)?,
                "object" => {
                    if std::mem::replace(&mut seen[6], true) {
                        return Err(de::Error::duplicate_field("object"));
                    }
                    match judged_kind(&r) {
                        Ok(Some(kind)) if self.endpoint == Endpoint::Validate => {
                            workload = map.next_value_seed(pod::WorkloadSeed(kind))?;
                        }
                        _ => r.object = map.next_value()?,
                    }
                }
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok((Some(r), workload))
    }
}

fn read_uid(body: &[u8]) -> Option<&str> {
    let probe: UidOnly<'_> = serde_json::from_slice(body).ok()?;
    let uid = probe.request?.uid?;
    match uid.0 {
        std::borrow::Cow::Borrowed(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'a str,
    kind: &'static str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "as_map")]
    audit_annotations: Vec<(&'a str, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    /// Standard base64 of the JSON Patch (kube-rs's own type writes an array of numbers).
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
}

/// A `metav1.Status`, as both AdmissionResponse.status and HTTP error bodies use it.
#[derive(Serialize)]
struct StatusOut<'a> {
    status: &'static str,
    message: &'a str,
    reason: &'static str,
    code: u16,
}

fn as_map<S: Serializer>(pairs: &[(&str, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

fn write_review(response: ResponseOut<'_>) -> Vec<u8> {
    let out = ReviewOut {
        api_version: API_VERSION,
        kind: KIND,
        response,
    };
    // Encode into a buffer this thread keeps, then copy out exactly the bytes written: one
    // allocation of the right size, never a regrowth (an allowed answer is ~140 bytes, a
    // denial several hundred).
    ENCODE_BUFFER.with_borrow_mut(|buffer| {
        buffer.clear();
        // Serializing plain structs of strings into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *buffer, &out);
        let body = buffer.as_slice().to_vec();
        if buffer.capacity() > MAX_KEPT_BUFFER {
            *buffer = Vec::new();
        }
        body
    })
}

/// A buffer grown past this by an unusually long answer is not kept.
const MAX_KEPT_BUFFER: usize = 64 * 1024;

thread_local! {
    static ENCODE_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn allow(uid: &str) -> Answer {
    Answer {
        http_status: 200,
        body: write_review(ResponseOut {
            uid,
            allowed: true,
            status: None,
            warnings: Vec::new(),
            audit_annotations: Vec::new(),
            patch_type: None,
            patch: None,
        }),
        outcome: Outcome::Allowed,
        subject: None,
        decisions: Vec::new(),
        mutated: Vec::new(),
    }
}

fn fail_closed(uid: &str, endpoint: Endpoint, why: &str) -> Answer {
    if endpoint == Endpoint::Mutate {
        return Answer {
            outcome: Outcome::Invalid,
            ..allow(uid)
        };
    }
    let message = format!("portier cannot judge this request: {why}");
    Answer {
        http_status: 200,
        body: write_review(ResponseOut {
            uid,
            allowed: false,
            status: Some(StatusOut {
                status: "Failure",
                message: &message,
                reason: "BadRequest",
                code: 400,
            }),
            warnings: Vec::new(),
            audit_annotations: Vec::new(),
            patch_type: None,
            patch: None,
        }),
        outcome: Outcome::Invalid,
        subject: None,
        decisions: Vec::new(),
        mutated: Vec::new(),
    }
}

fn patched(uid: &str, mutation: Mutation) -> Answer {
    use base64::Engine as _;
    // Serializing a JSON Patch into a Vec cannot fail.
    let json = serde_json::to_vec(&mutation.patch).unwrap_or_default();
    let encoded = base64::engine::general_purpose::STANDARD.encode(json);
    Answer {
        http_status: 200,
        body: write_review(ResponseOut {
            uid,
            allowed: true,
            status: None,
            warnings: Vec::new(),
            audit_annotations: Vec::new(),
            patch_type: Some("JSONPatch"),
            patch: Some(encoded),
        }),
        outcome: Outcome::Allowed,
        subject: None,
        decisions: Vec::new(),
        mutated: mutation.policies,
    }
}

/// An HTTP 400 with a `metav1.Status` body, for requests that carry no answerable review.
pub fn bad_request(message: &str) -> Answer {
    Answer {
        http_status: 400,
        body: status_body(400, "BadRequest", message),
        outcome: Outcome::Invalid,
        subject: None,
        decisions: Vec::new(),
        mutated: Vec::new(),
    }
}

/// A `metav1.Status` JSON body for an HTTP error.
pub fn status_body(code: u16, reason: &'static str, message: &str) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct HttpStatus<'a> {
        kind: &'static str,
        api_version: &'static str,
        #[serde(flatten)]
        status: StatusOut<'a>,
    }
    let body = HttpStatus {
        kind: "Status",
        api_version: "v1",
        status: StatusOut {
            status: "Failure",
            message,
            reason,
            code,
        },
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

fn encode_verdict(subject: Subject, verdict: &Verdict<'_, '_>, pod_spec_path: &str) -> Answer {
    let decisions: Vec<Decision> = verdict
        .violations
        .iter()
        .map(|v| Decision {
            policy_index: v.policy_index,
            policy: v.policy.name.clone(),
            check: v.policy.check.id(),
            mode: v.mode,
            audited: v.audited,
            message: v.message(pod_spec_path),
        })
        .collect();
    let denied = verdict.denies();
    let mut deny_message = String::new();
    let mut warnings = Vec::new();
    let mut audit_annotations: Vec<(&str, String)> = Vec::new();
    for d in &decisions {
        match d.mode {
            Mode::Enforce => {
                if !deny_message.is_empty() {
                    deny_message.push_str("; ");
                }
                deny_message.push_str(&d.message);
            }
            Mode::Warn => warnings.push(truncate_chars(d.message.clone(), MAX_WARNING_CHARS)),
            Mode::Audit => {}
        }
        if d.mode == Mode::Audit || d.audited {
            // One annotation per policy. The API server prefixes the key with the webhook
            // name and accepts a single '/', so the key is the bare policy name.
            match audit_annotations
                .iter_mut()
                .find(|(name, _)| *name == d.policy)
            {
                Some((_, value)) => {
                    let _ = write!(value, "; {}", d.message);
                }
                None => audit_annotations.push((&d.policy, d.message.clone())),
            }
        }
    }
    let status = denied.then(|| StatusOut {
        status: "Failure",
        message: &deny_message,
        reason: "Forbidden",
        code: 403,
    });
    let body = write_review(ResponseOut {
        uid: &subject.uid,
        allowed: !denied,
        status,
        warnings,
        audit_annotations,
        patch_type: None,
        patch: None,
    });
    Answer {
        http_status: 200,
        body,
        outcome: if denied {
            Outcome::Denied
        } else {
            Outcome::Allowed
        },
        subject: Some(subject),
        decisions,
        mutated: Vec::new(),
    }
}

/// Cuts `s` to at most `max` characters, marking the cut with an ellipsis.
fn truncate_chars(mut s: String, max: usize) -> String {
    if let Some((cut, _)) = s.char_indices().nth(max.saturating_sub(1))
        && s[cut..].chars().count() > 1
    {
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const SET: &str = r#"
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: no-privileged}
spec: {check: privileged, mode: enforce}
---
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: non-root}
spec: {check: run-as-non-root, mode: warn}
---
apiVersion: portier.dev/v1
kind: Policy
metadata: {name: limits}
spec: {check: resource-limits, mode: audit, params: {require: {limits: [memory]}}}
"#;

    fn set() -> PolicySet {
        PolicySet::from_yaml("set.yaml", SET).unwrap()
    }

    fn review_of(kind: (&str, &str), operation: &str, object: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": kind.0, "version": "v1", "kind": kind.1},
                "resource": {"group": kind.0, "version": "v1", "resource": "pods"},
                "namespace": "shop",
                "operation": operation,
                "userInfo": {"username": "alice"},
                "object": object,
                "oldObject": null,
                "dryRun": false
            }
        }))
        .unwrap()
    }

    fn response(answer: &Answer) -> Value {
        let v: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(v["kind"], "AdmissionReview");
        v["response"].clone()
    }

    fn pod(containers: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    #[test]
    fn compliant_pod_is_allowed_with_nothing_else() {
        let body = review_of(
            ("", "Pod"),
            "CREATE",
            pod(
                json!([{"name": "a", "securityContext": {"runAsNonRoot": true},
                "resources": {"limits": {"memory": "1Gi"}}}]),
            ),
        );
        let answer = review(&body, &set(), Endpoint::Validate);
        assert_eq!(answer.http_status, 200);
        assert_eq!(answer.outcome, Outcome::Allowed);
        assert_eq!(
            response(&answer),
            json!({"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": true})
        );
    }

    #[test]
    fn modes_decide_deny_warning_and_audit_annotation() {
        let body = review_of(
            ("", "Pod"),
            "CREATE",
            pod(json!([{"name": "a", "securityContext": {"privileged": true}}])),
        );
        let answer = review(&body, &set(), Endpoint::Validate);
        let r = response(&answer);
        assert_eq!(r["allowed"], false);
        assert_eq!(r["status"]["code"], 403);
        assert_eq!(r["status"]["reason"], "Forbidden");
        let message = r["status"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("no-privileged/privileged: container \"a\" spec.containers[0].securityContext.privileged: is true"),
            "{message}"
        );
        let warnings = r["warnings"].as_array().unwrap();
        assert_eq!(warnings.len(), 1);
        let warning = warnings[0].as_str().unwrap();
        assert!(
            warning.starts_with("non-root/run-as-non-root: container \"a\""),
            "{warning}"
        );
        assert!(warning.chars().count() <= MAX_WARNING_CHARS);
        let audit = r["auditAnnotations"]["limits"].as_str().unwrap();
        assert!(audit.contains("resources.limits.memory"), "{audit}");
        assert_eq!(answer.outcome, Outcome::Denied);
        let decided: Vec<_> = answer
            .decisions
            .iter()
            .map(|d| (d.policy_index, d.policy.as_str(), d.check, d.mode))
            .collect();
        assert_eq!(
            decided,
            vec![
                (0, "no-privileged", "privileged", Mode::Enforce),
                (1, "non-root", "run-as-non-root", Mode::Warn),
                (2, "limits", "resource-limits", Mode::Audit),
            ]
        );
        let subject = answer.subject.unwrap();
        assert_eq!(subject.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(
            (subject.operation.as_str(), subject.kind),
            ("CREATE", "Pod")
        );
        assert_eq!(
            (subject.namespace.as_str(), subject.name.as_str()),
            ("shop", "p")
        );
        assert_eq!(subject.user, "alice");
    }

    #[test]
    fn deployment_paths_point_into_the_template() {
        let object = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"hostNetwork": true,
                "containers": [{"name": "web", "securityContext": {"privileged": true}}]}}}});
        let body = review_of(("apps", "Deployment"), "CREATE", object);
        let r = response(&review(&body, &set(), Endpoint::Validate));
        let message = r["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("spec.template.spec.containers[0].securityContext.privileged"),
            "{message}"
        );
    }

    #[test]
    fn unjudged_kinds_operations_and_subresources_are_allowed() {
        let privileged = pod(json!([{"name": "a", "securityContext": {"privileged": true}}]));
        for (kind, op) in [
            (("", "ConfigMap"), "CREATE"),
            (("", "Pod"), "DELETE"),
            (("", "Pod"), "CONNECT"),
        ] {
            let body = review_of(kind, op, privileged.clone());
            assert_eq!(
                response(&review(&body, &set(), Endpoint::Validate))["allowed"],
                true
            );
        }
        let mut status_update: Value =
            serde_json::from_slice(&review_of(("", "Pod"), "UPDATE", privileged.clone())).unwrap();
        status_update["request"]["subResource"] = json!("status");
        let body = serde_json::to_vec(&status_update).unwrap();
        assert_eq!(
            response(&review(&body, &set(), Endpoint::Validate))["allowed"],
            true
        );
        status_update["request"]["subResource"] = json!("ephemeralcontainers");
        let body = serde_json::to_vec(&status_update).unwrap();
        assert_eq!(
            response(&review(&body, &set(), Endpoint::Validate))["allowed"],
            false
        );
    }

    #[test]
    fn malformed_json_is_http_400_with_a_status_body() {
        for body in [&b"{not json"[..], b"", b"\xff\xfe", b"[1,2"] {
            let answer = review(body, &set(), Endpoint::Validate);
            assert_eq!(answer.http_status, 400);
            let status: Value = serde_json::from_slice(&answer.body).unwrap();
            assert_eq!(status["kind"], "Status");
            assert_eq!(status["code"], 400);
            assert!(
                status["message"]
                    .as_str()
                    .unwrap()
                    .contains("not valid JSON")
            );
        }
    }

    #[test]
    fn wrong_shape_with_a_uid_fails_closed() {
        let mut v: Value =
            serde_json::from_slice(&review_of(("", "Pod"), "CREATE", json!({}))).unwrap();
        v["request"]["object"] = json!({"spec": {"containers": "not-a-list"}});
        let answer = review(&serde_json::to_vec(&v).unwrap(), &set(), Endpoint::Validate);
        let r = response(&answer);
        assert_eq!(r["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(r["allowed"], false);
        assert_eq!(r["status"]["code"], 400);
        let message = r["status"]["message"].as_str().unwrap();
        assert!(message.contains("spec.containers"), "{message}");
        assert_eq!(answer.outcome, Outcome::Invalid);

        v["request"]["object"] = json!("a string");
        let r = response(&review(
            &serde_json::to_vec(&v).unwrap(),
            &set(),
            Endpoint::Validate,
        ));
        assert_eq!(r["allowed"], false);

        // The request itself of the wrong shape, uid still readable.
        v["request"]["operation"] = json!(42);
        let r = response(&review(
            &serde_json::to_vec(&v).unwrap(),
            &set(),
            Endpoint::Validate,
        ));
        assert_eq!(r["allowed"], false);
        assert_eq!(r["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");

        // Mutation never denies.
        let r = response(&review(
            &serde_json::to_vec(&v).unwrap(),
            &set(),
            Endpoint::Mutate,
        ));
        assert_eq!(r["allowed"], true);
    }

    #[test]
    fn reviews_without_a_uid_or_of_another_kind_are_rejected() {
        let answer = review(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}"#, &set(), Endpoint::Validate);
        assert_eq!(answer.http_status, 400);
        let answer = review(
            br#"{"apiVersion":"v1","kind":"ConfigMap"}"#,
            &set(),
            Endpoint::Validate,
        );
        assert_eq!(answer.http_status, 400);
        let answer = review(
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
            &set(),
            Endpoint::Validate,
        );
        assert_eq!(answer.http_status, 400);
        let answer = review(b"42", &set(), Endpoint::Validate);
        assert_eq!(answer.http_status, 400);
        let positional =
            br#"["admission.k8s.io/v1","AdmissionReview",{"uid":"u","operation":"CREATE"}]"#;
        let answer = review(positional, &set(), Endpoint::Validate);
        assert_eq!(answer.http_status, 400);
        assert!(String::from_utf8_lossy(&answer.body).contains("must be a JSON object"));
    }

    #[test]
    fn create_without_object_fails_closed() {
        let mut v: Value =
            serde_json::from_slice(&review_of(("", "Pod"), "CREATE", json!(null))).unwrap();
        v["request"].as_object_mut().unwrap().remove("object");
        let r = response(&review(
            &serde_json::to_vec(&v).unwrap(),
            &set(),
            Endpoint::Validate,
        ));
        assert_eq!(r["allowed"], false);
        assert!(
            r["status"]["message"]
                .as_str()
                .unwrap()
                .contains("request.object is missing")
        );
    }

    #[test]
    fn truncation_counts_characters_not_bytes() {
        let s = "é".repeat(130);
        let t = truncate_chars(s, 120);
        assert_eq!(t.chars().count(), 120);
        assert!(t.ends_with('…'));
        assert_eq!(truncate_chars("short".into(), 120), "short");
        assert_eq!(truncate_chars("x".repeat(120), 120), "x".repeat(120));
    }

    #[test]
    fn the_one_pass_decoder_answers_exactly_as_the_general_path() {
        let privileged = pod(json!([{"name": "a", "securityContext": {"privileged": true}}]));
        let compliant = pod(
            json!([{"name": "a", "securityContext": {"runAsNonRoot": true},
            "resources": {"limits": {"memory": "1Gi"}}}]),
        );
        let mut bodies = vec![
            review_of(("", "Pod"), "CREATE", privileged.clone()),
            review_of(("", "Pod"), "UPDATE", compliant.clone()),
            review_of(("", "Pod"), "DELETE", privileged.clone()),
            review_of(("", "ConfigMap"), "CREATE", json!({"data": {}})),
            review_of(("", "Pod"), "CREATE", json!(null)),
            review_of(("", "Pod"), "CREATE", json!([1, 2])),
            review_of(("", "Pod"), "CREATE", json!({"spec": {"containers": {}}})),
            review_of(
                ("apps", "Deployment"),
                "CREATE",
                json!({"spec": {"template": {
                "spec": {"hostPID": true, "containers": [{"name": "x"}]}}}}),
            ),
        ];
        // Object before kind and operation (not the API server's order), escaped keys,
        // duplicate fields, a subresource, a review that is not an object, trailing garbage.
        let reordered = br#"{"request":{"object":{"spec":{"containers":[{"name":"a","securityContext":{"privileged":true}}]}},"operation":"CREATE","uid":"u1","kind":{"group":"","kind":"Pod"}},"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}"#;
        let escaped = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u2","kind":{"group":"","kind":"Pod"},"operation":"CREATE","obj\u0065ct":{"spec":{"containers":[{"name":"a","securityContext":{"privileged":true}}]}}}}"#;
        let duplicate = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u3","kind":{"group":"","kind":"Pod"},"operation":"CREATE","object":{"spec":{}},"object":{"spec":{"containers":[{"name":"a","securityContext":{"privileged":true}}]}}}}"#;
        let subresource = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u4","kind":{"group":"","kind":"Pod"},"subResource":"status","operation":"UPDATE","object":{"spec":{"containers":[{"name":"a","securityContext":{"privileged":true}}]}}}}"#;
        let ephemeral = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u5","kind":{"group":"","kind":"Pod"},"subResource":"ephemeralcontainers","operation":"UPDATE","object":{"spec":{"containers":[{"name":"a","securityContext":{"privileged":true}}]}}}}"#;
        let trailing = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u6","kind":{"group":"","kind":"Pod"},"operation":"CREATE","object":{"spec":{}}}} x"#;
        // Invalid UTF-8 in a string that is read (the user) and in one that is skipped.
        for needle in [&b"alice"[..], b"authenticated"] {
            let mut not_utf8 =
                include_bytes!("../tests/fixtures/review-privileged-pod.json").to_vec();
            let at = not_utf8
                .windows(needle.len())
                .position(|w| w == needle)
                .unwrap();
            not_utf8[at] = 0xff;
            bodies.push(not_utf8);
        }
        for extra in [
            &reordered[..],
            escaped,
            duplicate,
            subresource,
            ephemeral,
            trailing,
            b"[]",
            b"{}",
        ] {
            bodies.push(extra.to_vec());
        }
        for fixture in [
            &include_bytes!("../tests/fixtures/review-deployment-8k.json")[..],
            include_bytes!("../tests/fixtures/review-privileged-pod.json"),
            include_bytes!("../tests/fixtures/review-pod-2k.json"),
            include_bytes!("../tests/fixtures/review-deployment-64k.json"),
        ] {
            bodies.push(fixture.to_vec());
        }
        let set = set();
        for body in &bodies {
            for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
                let fast = review(body, &set, endpoint);
                let general = match decode_general(body, endpoint) {
                    Decoded::Answered(answer) => answer,
                    Decoded::Judge(judgement) => answer(judgement, &set, &Unverified),
                };
                let text = String::from_utf8_lossy(body);
                assert_eq!(fast.http_status, general.http_status, "{text}");
                assert_eq!(fast.outcome, general.outcome, "{text}");
                assert_eq!(fast.decisions, general.decisions, "{text}");
                assert_eq!(
                    String::from_utf8_lossy(&fast.body),
                    String::from_utf8_lossy(&general.body),
                    "{text}"
                );
            }
        }
        // The API server's order (the fixtures') takes the one pass and decodes the object in
        // it. (json! sorts keys, putting operation after object: those take the raw path.)
        let api_server_order = include_bytes!("../tests/fixtures/review-privileged-pod.json");
        let (_, workload) = decode_one_pass(api_server_order, Endpoint::Validate).unwrap();
        assert!(workload.is_some());
        assert!(
            decode_one_pass(reordered, Endpoint::Validate)
                .unwrap()
                .1
                .is_none()
        );
    }
}
