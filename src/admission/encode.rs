//! Writing the answer: AdmissionReview responses (allow, deny with every violation, warnings,
//! audit annotations, a JSON patch) and `metav1.Status` bodies for HTTP errors.

use std::borrow::Cow;

use serde::{Serialize, Serializer};

use super::{API_VERSION, Answer, Decision, Endpoint, KIND, MAX_WARNING_CHARS, Outcome, Subject};
use crate::engine::Verdict;
use crate::mutation::Mutation;
use crate::policy::Mode;

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
    audit_annotations: Vec<(Cow<'a, str>, String)>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<DetailsOut<'a>>,
}

/// `metav1.StatusDetails` of an `Invalid` refusal (upstream's `apierrors.NewInvalid`).
#[derive(Serialize)]
struct DetailsOut<'a> {
    name: &'a str,
    kind: &'static str,
    causes: Vec<CauseOut<'a>>,
}

#[derive(Serialize)]
struct CauseOut<'a> {
    reason: &'static str,
    message: &'a str,
    field: &'a str,
}

fn as_map<S: Serializer>(pairs: &[(Cow<'_, str>, String)], s: S) -> Result<S::Ok, S::Error> {
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

pub(super) fn allow(uid: &str) -> Answer {
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

pub(super) fn fail_closed(uid: &str, endpoint: Endpoint, why: &str) -> Answer {
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
                details: None,
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

pub(super) fn patched(uid: &str, mutation: Mutation) -> Answer {
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
            details: None,
        },
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

pub(super) fn encode_verdict(
    subject: Subject,
    verdict: &Verdict<'_, '_>,
    pod_spec_path: &str,
) -> Answer {
    encode_findings(subject, findings(verdict, pod_spec_path))
}

/// What a verdict tells the API server, before it is written as a response: so that a
/// Namespace write judged both as Pod Security admission does and by CEL policies can give
/// one answer with the words of both.
pub(super) struct Findings<'v> {
    /// The refusal's message and status reason, when the verdict denies.
    pub denial: Option<(String, &'static str)>,
    pub warnings: Vec<String>,
    pub audit_annotations: Vec<(Cow<'v, str>, String)>,
    pub decisions: Vec<Decision>,
}

pub(super) fn findings<'v>(verdict: &'v Verdict<'_, '_>, pod_spec_path: &str) -> Findings<'v> {
    let verbatim: Vec<bool> = verdict.violations.iter().map(|v| v.verbatim).collect();
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
    // The status reason of the first denial: Forbidden, or a CEL validation's own reason.
    let reason = verdict
        .in_mode(Mode::Enforce)
        .next()
        .and_then(|v| v.finding.reason)
        .unwrap_or("Forbidden");
    let mut deny_message = String::new();
    let mut warnings = Vec::new();
    let mut audit_annotations: Vec<(Cow<'_, str>, String)> = Vec::new();
    // The API server reports the first ValidatingAdmissionPolicy denial only, and its
    // warnings whole; portier's own policies are joined, and their warnings shortened.
    let mut vap_denied = false;
    for ((d, verbatim), violation) in decisions.iter().zip(verbatim).zip(&verdict.violations) {
        let vap = d.check == crate::policy::VAP_ID;
        match d.mode {
            Mode::Enforce if vap && std::mem::replace(&mut vap_denied, true) => {}
            Mode::Enforce => {
                if !deny_message.is_empty() {
                    deny_message.push_str("; ");
                }
                deny_message.push_str(&d.message);
            }
            // Pod Security admission's and ValidatingAdmissionPolicies' words are returned
            // whole, as the API server returns them.
            Mode::Warn if verbatim || vap => warnings.push(d.message.clone()),
            Mode::Warn => warnings.push(truncate_chars(d.message.clone(), MAX_WARNING_CHARS)),
            Mode::Audit => {}
        }
        if d.mode == Mode::Audit && verbatim {
            // PSA's key; the API server prefixes it with the webhook's name.
            add_annotation(
                &mut audit_annotations,
                "audit-violations",
                &d.policy,
                d.message.clone(),
            );
        } else if d.mode == Mode::Audit || d.audited {
            // One annotation per policy. The API server prefixes the key with the webhook
            // name and accepts a single '/', so the key is the bare policy name.
            join_annotation(
                &mut audit_annotations,
                Cow::Borrowed(violation.policy.name.as_str()),
                &d.message,
            );
        }
    }
    for a in &verdict.annotations {
        add_annotation(
            &mut audit_annotations,
            a.key,
            &a.policy.name,
            a.value.to_string(),
        );
    }
    // CEL policies' audit annotations, keyed `<policy>/<key>` as the API server forms them;
    // a webhook's keys may not hold a '/' (the API server prefixes the webhook's name), so
    // they become `<policy>.<key>`.
    for (key, value) in &verdict.cel_annotations {
        audit_annotations.push((Cow::Owned(key.replacen('/', ".", 1)), value.clone()));
    }
    Findings {
        denial: denied.then_some((deny_message, reason)),
        warnings,
        audit_annotations,
        decisions,
    }
}

pub(super) fn encode_findings(subject: Subject, findings: Findings<'_>) -> Answer {
    let Findings {
        denial,
        warnings,
        audit_annotations,
        decisions,
    } = findings;
    let denied = denial.is_some();
    let status = denial.as_ref().map(|(message, reason)| StatusOut {
        status: "Failure",
        message,
        reason,
        code: match *reason {
            "Unauthorized" => 401,
            "RequestEntityTooLarge" => 413,
            "Invalid" => 422,
            _ => 403,
        },
        details: None,
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
    judged(body, denied, Some(subject), decisions)
}

/// The answer to a judged request: its encoded body, whether it denies, and what was judged.
fn judged(
    body: Vec<u8>,
    denied: bool,
    subject: Option<Subject>,
    decisions: Vec<Decision>,
) -> Answer {
    Answer {
        http_status: 200,
        body,
        outcome: if denied {
            Outcome::Denied
        } else {
            Outcome::Allowed
        },
        subject,
        decisions,
        mutated: Vec::new(),
    }
}

/// A Namespace write refused for invalid Pod Security labels: upstream's `invalidResponse`.
pub(super) struct NamespaceRefusal {
    /// `Namespace "x" is invalid: ...`.
    pub message: String,
    pub name: String,
    /// Each invalid label's field and error body.
    pub causes: Vec<(String, String)>,
}

/// The answer to a Namespace write.
pub(super) fn namespace_answer(
    subject: Subject,
    refusal: Option<NamespaceRefusal>,
    warnings: Vec<String>,
    audit_annotations: Vec<(Cow<'_, str>, String)>,
    decisions: Vec<Decision>,
) -> Answer {
    let status = refusal.as_ref().map(|r| StatusOut {
        status: "Failure",
        message: &r.message,
        reason: "Invalid",
        code: 422,
        details: Some(DetailsOut {
            name: &r.name,
            kind: "Namespace",
            causes: r
                .causes
                .iter()
                .map(|(field, message)| CauseOut {
                    reason: "FieldValueInvalid",
                    message,
                    field,
                })
                .collect(),
        }),
    });
    let denied = refusal.is_some();
    // Refused requests carry no warnings (as the pod path: upstream says nothing more).
    let warnings = if denied { Vec::new() } else { warnings };
    let body = write_review(ResponseOut {
        uid: &subject.uid,
        allowed: !denied,
        status,
        warnings,
        audit_annotations,
        patch_type: None,
        patch: None,
    });
    let subject = (!decisions.is_empty()).then_some(subject);
    judged(body, denied, subject, decisions)
}

/// Adds `value` under `key`, after the value the key has already (joined with "; ").
pub(super) fn join_annotation<'a>(
    annotations: &mut Vec<(Cow<'a, str>, String)>,
    key: Cow<'a, str>,
    value: &str,
) {
    match annotations.iter_mut().find(|(k, _)| *k == key) {
        Some((_, joined)) => {
            joined.push_str("; ");
            joined.push_str(value);
        }
        None => annotations.push((key, value.to_owned())),
    }
}

/// Adds `key: value`; a key another policy took already becomes `<policy>.<key>`.
fn add_annotation<'a>(
    annotations: &mut Vec<(Cow<'a, str>, String)>,
    key: &'static str,
    policy: &str,
    value: String,
) {
    if annotations.iter().any(|(k, _)| k == key) {
        annotations.push((Cow::Owned(format!("{policy}.{key}")), value));
    } else {
        annotations.push((Cow::Borrowed(key), value));
    }
}

/// Cuts `s` to at most `max` characters, marking the cut with an ellipsis.
pub(super) fn truncate_chars(mut s: String, max: usize) -> String {
    if let Some((cut, _)) = s.char_indices().nth(max.saturating_sub(1))
        && s[cut..].chars().count() > 1
    {
        s.truncate(cut);
        s.push('…');
    }
    s
}
