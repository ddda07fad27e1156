//! The Sigstore trusted root (`trusted_root.json`, media type
//! `application/vnd.dev.sigstore.trustedroot+json;version=0.1`): Fulcio CAs, Rekor log keys and
//! CT log keys with their validity windows, read from a file so verification works offline.

use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;

use crate::images::bundle;
use crate::images::keys::PublicKey;
use crate::images::tlog::{self, LogKey};

/// Why a keyless rule's trust could not be read (a policy load error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustedRootError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{origin} is not a Sigstore trusted root: {reason}")]
    Format { origin: String, reason: String },
    #[error("{origin}: {reason}")]
    Content { origin: String, reason: String },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrustedRootDoc {
    media_type: String,
    #[serde(default)]
    tlogs: Vec<LogDoc>,
    #[serde(default)]
    certificate_authorities: Vec<CaDoc>,
    #[serde(default)]
    ctlogs: Vec<LogDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogDoc {
    #[serde(default)]
    base_url: String,
    public_key: PublicKeyDoc,
    log_id: bundle::LogId,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublicKeyDoc {
    #[serde(default)]
    raw_bytes: Option<String>,
    #[serde(default)]
    valid_for: Option<ValidFor>,
}

#[derive(Debug, Deserialize)]
struct ValidFor {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaDoc {
    cert_chain: bundle::CertificateChain,
    #[serde(default)]
    valid_for: Option<ValidFor>,
}

/// A Fulcio CA of the trusted root: its chain (DER, the issuing certificate first, the root
/// last) and when it may have issued (Unix seconds).
#[derive(Debug)]
pub struct CertificateAuthority {
    pub chain: Vec<Vec<u8>>,
    pub start: i64,
    pub end: Option<i64>,
}

/// A Sigstore trusted root: Fulcio CAs, Rekor log keys, CT log keys.
#[derive(Debug)]
pub struct TrustedRoot {
    pub cas: Vec<CertificateAuthority>,
    pub tlogs: Vec<LogKey>,
    pub ctlogs: Vec<LogKey>,
    /// SHA-256 of the file, so a changed root never reuses a verdict.
    pub fingerprint: String,
}

fn time_of(text: Option<&str>, origin: &str) -> Result<Option<i64>, TrustedRootError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let parsed = humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
        .or_else(|_| humantime::parse_rfc3339(text))
        .map_err(|e| TrustedRootError::Content {
            origin: origin.to_owned(),
            reason: format!("{text:?} is not an RFC 3339 time: {e}"),
        })?;
    let secs = parsed
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(Some(secs))
}

pub(super) fn b64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

impl TrustedRoot {
    pub fn from_file(path: &Path) -> Result<TrustedRoot, TrustedRootError> {
        let bytes = std::fs::read(path).map_err(|e| TrustedRootError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        TrustedRoot::from_json(&bytes, &path.display().to_string())
    }

    pub fn from_json(bytes: &[u8], origin: &str) -> Result<TrustedRoot, TrustedRootError> {
        let doc: TrustedRootDoc =
            serde_json::from_slice(bytes).map_err(|e| TrustedRootError::Format {
                origin: origin.to_owned(),
                reason: e.to_string(),
            })?;
        let content = |reason: String| TrustedRootError::Content {
            origin: origin.to_owned(),
            reason,
        };
        if !doc
            .media_type
            .starts_with("application/vnd.dev.sigstore.trustedroot")
        {
            return Err(content(format!("unknown mediaType {:?}", doc.media_type)));
        }
        let logs = |docs: &[LogDoc], what: &str| -> Result<Vec<LogKey>, TrustedRootError> {
            let mut out = Vec::new();
            for (i, log) in docs.iter().enumerate() {
                let Some(raw) = log.public_key.raw_bytes.as_deref() else {
                    continue;
                };
                let der =
                    b64(raw).ok_or_else(|| content(format!("{what}[{i}] key is not base64")))?;
                let key = PublicKey::from_spki_der(&der, format!("{what}[{i}] {}", log.base_url))
                    .map_err(|e| content(e.to_string()))?;
                let id = b64(&log.log_id.key_id)
                    .ok_or_else(|| content(format!("{what}[{i}] logId is not base64")))?;
                let valid = log.public_key.valid_for.as_ref();
                out.push(LogKey {
                    id,
                    key,
                    start: time_of(valid.and_then(|v| v.start.as_deref()), origin)?.unwrap_or(0),
                    end: time_of(valid.and_then(|v| v.end.as_deref()), origin)?,
                });
            }
            Ok(out)
        };
        let tlogs = logs(&doc.tlogs, "tlogs")?;
        let ctlogs = logs(&doc.ctlogs, "ctlogs")?;
        let mut cas = Vec::new();
        for (i, ca) in doc.certificate_authorities.iter().enumerate() {
            let chain = ca
                .cert_chain
                .certificates
                .iter()
                .map(|c| b64(&c.raw_bytes))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| content(format!("certificateAuthorities[{i}] is not base64")))?;
            if chain.is_empty() {
                continue;
            }
            let valid = ca.valid_for.as_ref();
            cas.push(CertificateAuthority {
                chain,
                start: time_of(valid.and_then(|v| v.start.as_deref()), origin)?.unwrap_or(0),
                end: time_of(valid.and_then(|v| v.end.as_deref()), origin)?,
            });
        }
        if cas.is_empty() || tlogs.is_empty() || ctlogs.is_empty() {
            return Err(content(
                "needs certificate authorities, transparency logs and CT logs".into(),
            ));
        }
        Ok(TrustedRoot {
            cas,
            tlogs,
            ctlogs,
            fingerprint: tlog::hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref()),
        })
    }
}
