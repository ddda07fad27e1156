//! Finding an image's signatures that are not in cosign's legacy `.sig` tag: OCI 1.1
//! referrers (artifact manifests whose `subject` is the image), listed by the referrers API
//! (`GET /v2/<repo>/referrers/<digest>`) or, where a registry answers that with 404 (it has no
//! such API, as distribution 2.8), by the referrers tag schema (an image index tagged
//! `sha256-<hex>`). Pure: the listing and the artifact manifests as the registry sends them,
//! and which of them a format reads. Fetching is `registry.rs`'s.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The artifact type of a Sigstore bundle, as cosign v3 attaches it (`cosign sign`,
/// `cosign attest`). Older bundle versions are spelled `...bundle+json;version=0.x`.
pub const SIGSTORE_BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The prefix every Sigstore bundle media type shares (v0.1 to v0.3).
pub const SIGSTORE_BUNDLE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// The artifact type of a Notation (Notary Project) signature.
pub const NOTATION_SIGNATURE: &str = "application/vnd.cncf.notary.signature";
/// Notation's JWS envelope, the layer of its signature manifest.
pub const JWS_ENVELOPE: &str = "application/jose+json";
/// Notation's COSE envelope (a COSE_Sign1, `notation sign --signature-format cose`).
pub const COSE_ENVELOPE: &str = "application/cose";

/// More referrers of one kind than this is not what a signing pipeline leaves; the rest are
/// not read, so a flood of referrers cannot make one verification fetch without end.
pub const MAX_REFERRERS: usize = 32;
/// A bundle with a certificate chain and a log entry is a few KB; a Notation envelope too.
pub const MAX_ARTIFACT_BYTES: u64 = 256 * 1024;

/// Which signatures a rule reads, by the trust it places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// Sigstore bundles (cosign v3), keys or keyless.
    Bundles,
    /// Notation signatures.
    Notation,
}

impl Wanted {
    /// The `artifactType` the referrers API is asked to filter by.
    pub fn artifact_type(self) -> &'static str {
        match self {
            Wanted::Bundles => SIGSTORE_BUNDLE_V03,
            Wanted::Notation => NOTATION_SIGNATURE,
        }
    }

    /// Whether a referrer of `artifact_type` is one this reads. A registry may ignore the
    /// filter (the specification lets it), and the tag schema has none: filtered here too.
    pub fn accepts(self, artifact_type: &str) -> bool {
        match self {
            Wanted::Bundles => artifact_type.starts_with(SIGSTORE_BUNDLE_PREFIX),
            Wanted::Notation => artifact_type == NOTATION_SIGNATURE,
        }
    }

    /// The layer media types this reads in a referrer's manifest.
    pub fn accepts_layer(self, media_type: &str) -> bool {
        match self {
            Wanted::Bundles => media_type.starts_with(SIGSTORE_BUNDLE_PREFIX),
            Wanted::Notation => media_type == JWS_ENVELOPE || media_type == COSE_ENVELOPE,
        }
    }

    /// How the format is named in messages.
    pub fn name(self) -> &'static str {
        match self {
            Wanted::Bundles => "Sigstore bundle",
            Wanted::Notation => "Notation signature",
        }
    }
}

/// A referrer as an index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// The digest of the referrer's manifest.
    pub digest: String,
    pub artifact_type: String,
}

/// The referrers `wanted` reads among an index's entries, at most [`MAX_REFERRERS`], in the
/// index's order. An entry without `artifactType` is an image manifest whose `config`
/// media type would tell; OCI 1.1 writers set `artifactType`, so it is skipped.
pub fn select<'a>(
    entries: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    wanted: Wanted,
) -> Vec<Referrer> {
    entries
        .into_iter()
        .filter_map(|(digest, artifact_type)| {
            let artifact_type = artifact_type?;
            wanted.accepts(artifact_type).then(|| Referrer {
                digest: digest.to_owned(),
                artifact_type: artifact_type.to_owned(),
            })
        })
        .take(MAX_REFERRERS)
        .collect()
}

/// The parts of a referrer's manifest this reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactManifest {
    #[serde(default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub subject: Option<Descriptor>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// One signature artifact fetched: the referrer's manifest and its envelope (the layer).
#[derive(Debug)]
pub struct Artifact {
    /// The digest of the referrer's manifest (named in messages).
    pub digest: String,
    pub manifest: ArtifactManifest,
    /// The layer's media type (`application/jose+json`, a bundle type).
    pub media_type: String,
    pub blob: Vec<u8>,
}

impl ArtifactManifest {
    /// The layer that carries `wanted`'s envelope, or why there is none to read.
    pub fn envelope_layer(&self, wanted: Wanted) -> Result<&Descriptor, String> {
        let layer = self
            .layers
            .iter()
            .find(|l| wanted.accepts_layer(&l.media_type))
            .ok_or_else(|| format!("the {} manifest has no layer to read", wanted.name()))?;
        if layer.size > MAX_ARTIFACT_BYTES {
            return Err(format!(
                "the {} is {} bytes (at most {MAX_ARTIFACT_BYTES} are read)",
                wanted.name(),
                layer.size
            ));
        }
        Ok(layer)
    }
}

/// `sha256-<hex>`: the referrers tag schema's tag for `digest`.
pub fn fallback_tag(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    Some(format!("sha256-{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_by_artifact_type_and_bounds_the_list() {
        let entries = vec![
            ("sha256:a", Some(SIGSTORE_BUNDLE_V03)),
            (
                "sha256:b",
                Some("application/vnd.dev.sigstore.bundle+json;version=0.2"),
            ),
            ("sha256:c", Some(NOTATION_SIGNATURE)),
            ("sha256:d", None),
            ("sha256:e", Some("application/spdx+json")),
        ];
        let bundles = select(entries.clone(), Wanted::Bundles);
        assert_eq!(
            bundles
                .iter()
                .map(|r| r.digest.as_str())
                .collect::<Vec<_>>(),
            ["sha256:a", "sha256:b"]
        );
        let notation = select(entries, Wanted::Notation);
        assert_eq!(notation.len(), 1);
        assert_eq!(notation[0].digest, "sha256:c");
        let many: Vec<(String, Option<&str>)> = (0..100)
            .map(|i| (format!("sha256:{i}"), Some(NOTATION_SIGNATURE)))
            .collect();
        let many = select(many.iter().map(|(d, t)| (d.as_str(), *t)), Wanted::Notation);
        assert_eq!(many.len(), MAX_REFERRERS);
    }

    #[test]
    fn a_manifest_without_the_envelope_layer_or_with_a_huge_one_is_named() {
        let manifest: ArtifactManifest = serde_json::from_str(
            r#"{"artifactType":"application/vnd.cncf.notary.signature","layers":[{"mediaType":"application/jose+json","digest":"sha256:x","size":999999999}]}"#,
        )
        .unwrap();
        let err = manifest.envelope_layer(Wanted::Notation).unwrap_err();
        assert!(err.contains("at most"), "{err}");
        let err = manifest.envelope_layer(Wanted::Bundles).unwrap_err();
        assert!(err.contains("no layer"), "{err}");
        assert_eq!(fallback_tag("sha256:ab").as_deref(), Some("sha256-ab"));
        assert_eq!(fallback_tag("sha512:ab"), None);
    }
}
