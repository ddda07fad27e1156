//! The trust of a keyless or Notation rule, compiled from its YAML: the trusted root and the
//! identities, or the trust stores and the trusted identities. Every error names its field.

use std::path::PathBuf;

use serde::Deserialize;

use crate::images::keyless::{Identity, Keyless, Matcher, TrustedRoot};
use crate::images::notation::{NotationTrust, TrustedIdentity};
use crate::policy::ParamError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct NotationDoc {
    /// Trust store of type `ca`, for `notary.x509` signatures.
    #[serde(default)]
    pub trust_store: Vec<PathBuf>,
    /// Trust store of type `signingAuthority`, for `notary.x509.signingAuthority` ones.
    #[serde(default)]
    pub signing_authority_store: Vec<PathBuf>,
    trusted_identities: Vec<String>,
}

pub(super) fn compile_notation(at: &str, doc: NotationDoc) -> Result<NotationTrust, ParamError> {
    if doc.trust_store.is_empty() && doc.signing_authority_store.is_empty() {
        return Err(ParamError::new(
            format!("{at}.trustStore"),
            "needs at least one PEM file of trusted certificates (or signingAuthorityStore)",
        ));
    }
    if doc.trusted_identities.is_empty() {
        return Err(ParamError::new(
            format!("{at}.trustedIdentities"),
            "needs at least one identity (\"x509.subject: C=..., O=..., CN=...\" or \"*\")",
        ));
    }
    let mut identities = Vec::with_capacity(doc.trusted_identities.len());
    for (i, text) in doc.trusted_identities.iter().enumerate() {
        identities.push(
            TrustedIdentity::parse(text)
                .map_err(|e| ParamError::new(format!("{at}.trustedIdentities[{i}]"), e))?,
        );
    }
    // notation's trust policy validation: "*" stands alone, and no two identities overlap
    // (one whose attributes are a subset of another's would make the other pointless).
    if identities.len() > 1
        && let Some(i) = identities.iter().position(|i| *i == TrustedIdentity::Any)
    {
        return Err(ParamError::new(
            format!("{at}.trustedIdentities[{i}]"),
            "\"*\" trusts every signer of the store: it cannot be given with other identities",
        ));
    }
    for (i, narrow) in identities.iter().enumerate() {
        let TrustedIdentity::Subject(narrow_attributes) = narrow else {
            continue;
        };
        let wider = identities.iter().enumerate().find(|(j, wide)| {
            *j != i
                && matches!(wide, TrustedIdentity::Subject(attributes)
                    if attributes.iter().all(|a| narrow_attributes.contains(a)))
        });
        if let Some((j, _)) = wider {
            return Err(ParamError::new(
                format!("{at}.trustedIdentities[{i}]"),
                format!(
                    "overlaps trustedIdentities[{j}], which matches every certificate this one does (notation refuses overlapping identities)"
                ),
            ));
        }
    }
    NotationTrust::new(&doc.trust_store, &doc.signing_authority_store, identities)
        .map_err(|e| ParamError::new(format!("{at}.trustStore"), e))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct KeylessDoc {
    pub trusted_root: PathBuf,
    identities: Vec<IdentityDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityDoc {
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default, rename = "issuerRegExp")]
    issuer_regexp: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default, rename = "subjectRegExp")]
    subject_regexp: Option<String>,
}

/// One of an exact value and a regular expression, as `field` (`issuer`, `subject`) names
/// them.
fn matcher(
    at: &str,
    field: &str,
    exact: Option<String>,
    regexp: Option<String>,
) -> Result<Matcher, ParamError> {
    match (exact, regexp) {
        (Some(exact), None) => Ok(Matcher::Exact(exact)),
        (None, Some(pattern)) => regex::Regex::new(&pattern)
            .map(Matcher::Regex)
            .map_err(|e| ParamError::new(format!("{at}.{field}RegExp"), e.to_string())),
        _ => Err(ParamError::new(
            at.to_owned(),
            format!("give exactly one of {field} and {field}RegExp"),
        )),
    }
}

pub(super) fn compile_keyless(at: &str, doc: KeylessDoc) -> Result<Keyless, ParamError> {
    let trusted_root = TrustedRoot::from_file(&doc.trusted_root)
        .map_err(|e| ParamError::new(format!("{at}.trustedRoot"), e.to_string()))?;
    if doc.identities.is_empty() {
        return Err(ParamError::new(
            format!("{at}.identities"),
            "needs at least one identity (issuer and subject or subjectRegExp)",
        ));
    }
    let mut identities = Vec::with_capacity(doc.identities.len());
    for (i, id) in doc.identities.into_iter().enumerate() {
        let at = format!("{at}.identities[{i}]");
        identities.push(Identity {
            issuer: matcher(&at, "issuer", id.issuer, id.issuer_regexp)?,
            subject: matcher(&at, "subject", id.subject, id.subject_regexp)?,
        });
    }
    Ok(Keyless {
        trusted_root,
        trusted_root_path: doc.trusted_root,
        identities,
    })
}
