//! Notation's JWS envelope (`application/jose+json`, the JWS JSON serialization): read into the
//! envelope-neutral [`Signed`] the verifier judges.

use base64::Engine as _;
use serde::Deserialize;

use super::{NotationError, Signed, parse_rfc3339};

#[derive(Debug, Deserialize)]
struct Jws {
    payload: String,
    protected: String,
    #[serde(default)]
    header: UnprotectedHeader,
    signature: String,
}

#[derive(Debug, Default, Deserialize)]
struct UnprotectedHeader {
    #[serde(default)]
    x5c: Vec<String>,
}

pub(super) fn b64url(field: &str, text: &str) -> Result<Vec<u8>, NotationError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| NotationError::Envelope(format!("{field} is not base64url")))
}

/// Reads a JWS envelope: its protected header, `x5c`, payload and what the signature covers
/// (`BASE64URL(protected) || '.' || BASE64URL(payload)`).
pub(super) fn parse(envelope: &[u8]) -> Result<Signed, NotationError> {
    let jws: Jws =
        serde_json::from_slice(envelope).map_err(|e| NotationError::Envelope(e.to_string()))?;
    let protected_bytes = b64url("protected", &jws.protected)?;
    let protected: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&protected_bytes)
            .map_err(|e| NotationError::Envelope(format!("protected header: {e}")))?;
    let text = |name: &str| {
        protected
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let time = |name: &str| match protected.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_str()
            .and_then(parse_rfc3339)
            .map(Some)
            .ok_or_else(|| NotationError::Envelope(format!("{name} is not an RFC 3339 time"))),
    };
    let crit = match protected.get("crit") {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| NotationError::Critical("crit holds a non-string".into()))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(NotationError::Critical("crit is not a list".into())),
        None => Vec::new(),
    };
    let x5c = jws
        .header
        .x5c
        .iter()
        .map(|c| base64::engine::general_purpose::STANDARD.decode(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            NotationError::Envelope("x5c holds a certificate that is not base64".into())
        })?;
    Ok(Signed {
        scheme: text(super::SIGNING_SCHEME),
        present: protected.keys().cloned().collect(),
        crit,
        plugin: text(super::VERIFICATION_PLUGIN),
        content_type: text("cty"),
        alg: text("alg"),
        signing_time: time(super::SIGNING_TIME)?,
        authentic_signing_time: time(super::AUTHENTIC_SIGNING_TIME)?,
        expiry: time(super::EXPIRY)?,
        x5c,
        payload: b64url("payload", &jws.payload)?,
        signed_bytes: format!("{}.{}", jws.protected, jws.payload).into_bytes(),
        signature: b64url("signature", &jws.signature)?,
    })
}
