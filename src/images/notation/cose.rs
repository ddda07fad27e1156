//! Notation's COSE envelope (`application/cose`, a tagged COSE_Sign1 per RFC 9052 and the
//! Notary Project's COSE envelope specification), read with Google's `coset` into the
//! envelope-neutral [`Signed`] the verifier judges. The protected header carries `alg` (an
//! IANA algorithm number), `crit`, the content type and the Notary Project's text labels, with
//! times as CBOR epoch dates (tag 1); `x5chain` (label 33) is unprotected, or protected. What
//! the signature covers is the `Sig_structure` ("Signature1", the protected header as sent,
//! empty external AAD, the payload).

use coset::cbor::value::Value;
use coset::iana::{self, EnumI64};
use coset::{
    CborSerializable as _, CoseSign1, Label, RegisteredLabel, RegisteredLabelWithPrivate,
    TaggedCborSerializable as _,
};

use super::{NotationError, Signed};

/// COSE's `x5chain` header label (RFC 9360).
const X5CHAIN: i64 = 33;

fn envelope(why: impl Into<String>) -> NotationError {
    NotationError::Envelope(why.into())
}

/// An epoch date/time (RFC 8949 tag 1 around an integer), as Unix seconds.
fn epoch(name: &str, value: &Value) -> Result<i64, NotationError> {
    match value {
        Value::Tag(1, inner) => match inner.as_ref() {
            Value::Integer(n) => {
                i64::try_from(*n).map_err(|_| envelope(format!("{name} is out of range")))
            }
            _ => Err(envelope(format!("{name} is not an integer epoch time"))),
        },
        _ => Err(envelope(format!("{name} is not a CBOR epoch date (tag 1)"))),
    }
}

/// The JWS name of a COSE algorithm the Notary Project allows.
fn algorithm_name(alg: &coset::Algorithm) -> String {
    match alg {
        RegisteredLabelWithPrivate::Assigned(iana::Algorithm::PS256) => "PS256".into(),
        RegisteredLabelWithPrivate::Assigned(iana::Algorithm::PS384) => "PS384".into(),
        RegisteredLabelWithPrivate::Assigned(iana::Algorithm::PS512) => "PS512".into(),
        RegisteredLabelWithPrivate::Assigned(iana::Algorithm::ES256) => "ES256".into(),
        RegisteredLabelWithPrivate::Assigned(iana::Algorithm::ES384) => "ES384".into(),
        RegisteredLabelWithPrivate::Assigned(other) => {
            format!("COSE algorithm {}", other.to_i64())
        }
        RegisteredLabelWithPrivate::PrivateUse(n) => format!("COSE algorithm {n}"),
        RegisteredLabelWithPrivate::Text(text) => format!("COSE algorithm {text:?}"),
    }
}

fn label_name(label: &Label) -> String {
    match label {
        Label::Text(text) => text.clone(),
        Label::Int(n) => format!("label {n}"),
    }
}

/// The certificates of an `x5chain` value: one byte string, or an array of them.
fn certificates(value: &Value) -> Result<Vec<Vec<u8>>, NotationError> {
    match value {
        Value::Bytes(der) => Ok(vec![der.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Bytes(der) => Ok(der.clone()),
                _ => Err(envelope("x5chain holds something other than a certificate")),
            })
            .collect(),
        _ => Err(envelope(
            "x5chain is neither a certificate nor a list of them",
        )),
    }
}

/// Reads a COSE_Sign1 envelope.
pub(super) fn parse(bytes: &[u8]) -> Result<Signed, NotationError> {
    let sign1 = CoseSign1::from_tagged_slice(bytes)
        .or_else(|_| CoseSign1::from_slice(bytes))
        .map_err(|e| envelope(format!("not a COSE_Sign1: {e}")))?;
    let protected = &sign1.protected.header;
    let find = |name: &str| {
        protected
            .rest
            .iter()
            .find(|(label, _)| *label == Label::Text(name.to_owned()))
            .map(|(_, value)| value)
    };
    let text = |name: &str| -> Result<Option<String>, NotationError> {
        find(name)
            .map(|value| {
                value
                    .as_text()
                    .map(str::to_owned)
                    .ok_or_else(|| envelope(format!("{name} is not text")))
            })
            .transpose()
    };
    let time = |name: &str| find(name).map(|value| epoch(name, value)).transpose();
    let x5chain = protected
        .rest
        .iter()
        .chain(&sign1.unprotected.rest)
        .find(|(label, _)| *label == Label::Int(X5CHAIN))
        .map(|(_, value)| certificates(value))
        .transpose()?
        .unwrap_or_default();
    let content_type = match &protected.content_type {
        Some(RegisteredLabel::Text(text)) => Some(text.clone()),
        Some(RegisteredLabel::Assigned(other)) => {
            Some(format!("CoAP content format {}", other.to_i64()))
        }
        None => None,
    };
    let mut present: Vec<String> = protected.rest.iter().map(|(l, _)| label_name(l)).collect();
    if protected.alg.is_some() {
        present.push("label 1".into());
    }
    let payload = sign1
        .payload
        .clone()
        .ok_or_else(|| envelope("the payload is detached"))?;
    Ok(Signed {
        scheme: text(super::SIGNING_SCHEME)?,
        present,
        crit: protected
            .crit
            .iter()
            .map(|label| match label {
                RegisteredLabelWithPrivate::Text(text) => text.clone(),
                RegisteredLabelWithPrivate::Assigned(header) => {
                    format!("label {}", header.to_i64())
                }
                RegisteredLabelWithPrivate::PrivateUse(n) => format!("label {n}"),
            })
            .collect(),
        plugin: text(super::VERIFICATION_PLUGIN)?,
        content_type,
        alg: protected.alg.as_ref().map(algorithm_name),
        signing_time: time(super::SIGNING_TIME)?,
        authentic_signing_time: time(super::AUTHENTIC_SIGNING_TIME)?,
        expiry: time(super::EXPIRY)?,
        x5c: x5chain,
        payload,
        signed_bytes: sign1.tbs_data(b""),
        signature: sign1.signature.clone(),
    })
}
