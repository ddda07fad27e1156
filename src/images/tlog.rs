//! Rekor transparency log entries as a Sigstore bundle carries them, checked offline against
//! the log keys of a trusted root: the signed entry timestamp (SET), the Merkle inclusion
//! proof (RFC 6962) up to a checkpoint signed by the log (a signed note), and that the logged
//! body is this bundle's signature, key and content. Pure: no network.

use base64::Engine as _;

use super::bundle::TlogEntry;
use super::keys::PublicKey;

/// Why a log entry does not vouch for the signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlogError {
    #[error("the bundle has no transparency log entry")]
    NoEntry,
    #[error("the log entry names log {0}, which the trusted root does not list")]
    UnknownLog(String),
    #[error("the log entry's {0} is not base64")]
    Base64(&'static str),
    #[error(
        "the log entry has no signed entry timestamp, so its integrated time is not authenticated"
    )]
    NoPromise,
    #[error("the log entry's signed entry timestamp does not verify with the log's key")]
    BadPromise,
    #[error("the log entry's inclusion proof does not lead to its root hash: {0}")]
    BadProof(String),
    #[error("the log's checkpoint does not verify: {0}")]
    BadCheckpoint(String),
    #[error("the log key was not valid at the entry's integrated time")]
    KeyNotValid,
    #[error("the logged entry is not this bundle's: {0}")]
    BodyMismatch(String),
    #[error("log entries of kind {0} are not supported (hashedrekord 0.0.1 and dsse 0.0.1 are)")]
    Kind(String),
}

/// A log key from a trusted root: its id (SHA-256 of its DER SubjectPublicKeyInfo), key and
/// validity (Unix seconds).
#[derive(Debug)]
pub struct LogKey {
    pub id: Vec<u8>,
    pub key: PublicKey,
    pub start: i64,
    pub end: Option<i64>,
}

impl LogKey {
    pub fn valid_at(&self, time: i64) -> bool {
        self.start <= time && self.end.is_none_or(|end| time <= end)
    }
}

fn b64(field: &'static str, text: &str) -> Result<Vec<u8>, TlogError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| TlogError::Base64(field))
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 6962's leaf hash: SHA-256(0x00 || leaf).
pub fn leaf_hash(leaf: &[u8]) -> [u8; 32] {
    sha256(&[&[0u8], leaf])
}

/// RFC 6962's interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &[u8], right: &[u8]) -> [u8; 32] {
    sha256(&[&[1u8], left, right])
}

/// The root an inclusion proof leads to (RFC 9162 section 2.1.3.2), or why it cannot.
pub fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf: [u8; 32],
    proof: &[[u8; 32]],
) -> Result<[u8; 32], String> {
    if size == 0 || index >= size {
        return Err(format!("index {index} is outside a tree of {size}"));
    }
    // The levels below the point where the paths to `index` and to the last leaf part.
    let inner = (64 - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = index.checked_shr(inner as u32).unwrap_or(0).count_ones() as usize;
    if proof.len() != inner + border {
        return Err(format!(
            "{} hashes where a tree of {size} needs {}",
            proof.len(),
            inner + border
        ));
    }
    let mut hash = leaf;
    for (level, sibling) in proof[..inner].iter().enumerate() {
        hash = if (index >> level) & 1 == 0 {
            node_hash(&hash, sibling)
        } else {
            node_hash(sibling, &hash)
        };
    }
    for sibling in &proof[inner..] {
        hash = node_hash(sibling, &hash);
    }
    Ok(hash)
}

/// A checkpoint (a signed note): origin, tree size, root hash, then signature lines.
struct Checkpoint {
    size: u64,
    root: Vec<u8>,
}

/// Verifies a signed note with `log`: the text up to the blank line is signed; a signature
/// line is `— <name> <base64(key hint (4 bytes) || signature)>`.
fn verify_checkpoint(envelope: &str, log: &LogKey) -> Result<Checkpoint, TlogError> {
    let bad = |why: &str| TlogError::BadCheckpoint(why.to_owned());
    let (body, signatures) = envelope
        .split_once("\n\n")
        .ok_or_else(|| bad("no blank line before its signatures"))?;
    let signed = format!("{body}\n");
    let mut lines = body.lines();
    let _origin = lines.next().ok_or_else(|| bad("empty"))?;
    let size: u64 = lines
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| bad("no tree size"))?;
    let root = lines
        .next()
        .and_then(|l| base64::engine::general_purpose::STANDARD.decode(l).ok())
        .ok_or_else(|| bad("no root hash"))?;
    let hint = log.id.get(..4).ok_or_else(|| bad("log id too short"))?;
    let mut seen = false;
    for line in signatures.lines() {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            continue;
        };
        let Some((_, sig)) = rest.rsplit_once(' ') else {
            continue;
        };
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(sig) else {
            continue;
        };
        if sig.len() < 5 || &sig[..4] != hint {
            continue;
        }
        seen = true;
        if log.key.verifies(signed.as_bytes(), &sig[4..]) {
            return Ok(Checkpoint { size, root });
        }
    }
    Err(bad(if seen {
        "its signature by the log's key does not verify"
    } else {
        "it carries no signature by the log's key"
    }))
}

/// The canonical JSON a signed entry timestamp signs (keys sorted, no spaces).
fn promise_payload(entry: &TlogEntry, integrated_time: i64) -> Result<Vec<u8>, TlogError> {
    let log_id = b64("logId.keyId", &entry.log_id.key_id)?;
    Ok(format!(
        r#"{{"body":{},"integratedTime":{},"logID":"{}","logIndex":{}}}"#,
        serde_json::to_string(&entry.canonicalized_body).unwrap_or_default(),
        integrated_time,
        hex(&log_id),
        entry.log_index
    )
    .into_bytes())
}

/// What the entry's body must record for it to be this bundle's.
pub struct Expected<'a> {
    /// The signature bytes.
    pub signature: &'a [u8],
    /// The DER of the certificate (or key) that made it.
    pub verifier_der: &'a [u8],
    /// hashedrekord: the SHA-256 of the signed artifact. dsse: of the DSSE payload.
    pub content_sha256: [u8; 32],
}

/// Checks `entry` against `logs`: its log, SET (required: it authenticates the integrated
/// time), inclusion proof and checkpoint (when present), and that its body is `expected`.
/// Returns the authenticated integrated time (Unix seconds).
pub fn verify_entry(
    entry: &TlogEntry,
    logs: &[LogKey],
    expected: &Expected<'_>,
) -> Result<i64, TlogError> {
    let log_id = b64("logId.keyId", &entry.log_id.key_id)?;
    let log = logs
        .iter()
        .find(|l| l.id == log_id)
        .ok_or_else(|| TlogError::UnknownLog(entry.log_id.key_id.clone()))?;
    let body = b64("canonicalizedBody", &entry.canonicalized_body)?;
    check_body(
        &body,
        &entry.kind_version.kind,
        &entry.kind_version.version,
        expected,
    )?;
    let integrated_time = entry.integrated_time.ok_or(TlogError::NoPromise)?;
    if !log.valid_at(integrated_time) {
        return Err(TlogError::KeyNotValid);
    }
    let promise = entry
        .inclusion_promise
        .as_ref()
        .ok_or(TlogError::NoPromise)?;
    let set = b64("signedEntryTimestamp", &promise.signed_entry_timestamp)?;
    if !log
        .key
        .verifies(&promise_payload(entry, integrated_time)?, &set)
    {
        return Err(TlogError::BadPromise);
    }
    if let Some(proof) = &entry.inclusion_proof {
        let hashes = proof
            .hashes
            .iter()
            .map(|h| {
                b64("inclusionProof.hashes", h).and_then(|b| {
                    <[u8; 32]>::try_from(b.as_slice())
                        .map_err(|_| TlogError::BadProof("a hash is not 32 bytes".into()))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let root = b64("inclusionProof.rootHash", &proof.root_hash)?;
        let index = u64::try_from(proof.log_index)
            .map_err(|_| TlogError::BadProof("negative index".into()))?;
        let size = u64::try_from(proof.tree_size)
            .map_err(|_| TlogError::BadProof("negative tree size".into()))?;
        let computed = root_from_inclusion_proof(index, size, leaf_hash(&body), &hashes)
            .map_err(TlogError::BadProof)?;
        if computed[..] != root[..] {
            return Err(TlogError::BadProof(
                "the computed root differs from the stated one".into(),
            ));
        }
        let checkpoint = proof
            .checkpoint
            .as_ref()
            .ok_or_else(|| TlogError::BadCheckpoint("the proof has none".into()))?;
        let checkpoint = verify_checkpoint(&checkpoint.envelope, log)?;
        if checkpoint.size != size || checkpoint.root != root {
            return Err(TlogError::BadCheckpoint(
                "it is for another tree than the proof".into(),
            ));
        }
    }
    Ok(integrated_time)
}

/// The DER inside a PEM text (what Rekor records as a verifier), or the bytes themselves.
fn pem_or_der(bytes: &[u8]) -> Vec<u8> {
    match x509_parser::pem::parse_x509_pem(bytes) {
        Ok((_, pem)) => pem.contents,
        Err(_) => bytes.to_vec(),
    }
}

fn check_body(
    body: &[u8],
    kind: &str,
    version: &str,
    expected: &Expected<'_>,
) -> Result<(), TlogError> {
    let mismatch = |why: &str| TlogError::BodyMismatch(why.to_owned());
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| mismatch("its body is not JSON"))?;
    if json["kind"] != kind || json["apiVersion"] != version {
        return Err(mismatch("its kind differs from the bundle's"));
    }
    let spec = &json["spec"];
    let decode = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
    };
    let content_hex = hex(&expected.content_sha256);
    match (kind, version) {
        ("hashedrekord", "0.0.1") => {
            if decode(&spec["signature"]["content"]).as_deref() != Some(expected.signature) {
                return Err(mismatch("it logs another signature"));
            }
            let verifier = decode(&spec["signature"]["publicKey"]["content"])
                .map(|v| pem_or_der(&v))
                .ok_or_else(|| mismatch("it logs no key"))?;
            if verifier != expected.verifier_der {
                return Err(mismatch("it logs another certificate or key"));
            }
            if spec["data"]["hash"]["algorithm"] != "sha256"
                || spec["data"]["hash"]["value"] != content_hex.as_str()
            {
                return Err(mismatch("it logs a signature over other content"));
            }
            Ok(())
        }
        ("dsse", "0.0.1") => {
            if spec["payloadHash"]["algorithm"] != "sha256"
                || spec["payloadHash"]["value"] != content_hex.as_str()
            {
                return Err(mismatch("it logs another DSSE payload"));
            }
            let signatures = spec["signatures"].as_array().cloned().unwrap_or_default();
            let logged = signatures.iter().any(|s| {
                decode(&s["signature"]).as_deref() == Some(expected.signature)
                    && decode(&s["verifier"]).map(|v| pem_or_der(&v)).as_deref()
                        == Some(expected.verifier_der)
            });
            if !logged {
                return Err(mismatch("it logs another signature or verifier"));
            }
            Ok(())
        }
        _ => Err(TlogError::Kind(format!("{kind} {version}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The audit path RFC 6962 defines, computed recursively from the leaves.
    fn path(index: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
        fn mth(l: &[[u8; 32]]) -> [u8; 32] {
            if l.len() == 1 {
                return l[0];
            }
            let k = l.len().next_power_of_two() / 2;
            node_hash(&mth(&l[..k]), &mth(&l[k..]))
        }
        if leaves.len() <= 1 {
            return vec![];
        }
        let k = leaves.len().next_power_of_two() / 2;
        if index < k {
            let mut p = path(index, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(index - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    #[test]
    fn inclusion_proofs_lead_to_the_root_for_every_leaf_and_size() {
        for size in 1..=17usize {
            let data: Vec<Vec<u8>> = (0..size).map(|i| vec![i as u8]).collect();
            let leaves: Vec<[u8; 32]> = data.iter().map(|d| leaf_hash(d)).collect();
            let root = {
                let p = path(0, &leaves);
                root_from_inclusion_proof(0, size as u64, leaves[0], &p).unwrap()
            };
            for index in 0..size {
                let p = path(index, &leaves);
                assert_eq!(
                    root_from_inclusion_proof(index as u64, size as u64, leaves[index], &p),
                    Ok(root),
                    "leaf {index} of {size}"
                );
                if !p.is_empty() {
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert_ne!(
                        root_from_inclusion_proof(index as u64, size as u64, leaves[index], &bad),
                        Ok(root)
                    );
                }
            }
        }
        assert!(root_from_inclusion_proof(5, 5, [0; 32], &[]).is_err());
    }
}
