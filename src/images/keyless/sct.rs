//! The certificate parts of a keyless verification that need DER by hand: Fulcio's
//! UTF8String extensions, and the RFC 6962 SCTs embedded in the certificate, verified over the
//! precertificate (the TBS without its SCT list) with a CT log key of the trusted root.

use x509_parser::prelude::X509Certificate;

use super::KeylessError;
use crate::images::tlog::LogKey;

/// RFC 6962's embedded SCT list extension, as DER (tag, length, value).
const SCT_LIST_OID_DER: &[u8] = &[
    0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x02,
];
const OID_SCT_LIST: &str = "1.3.6.1.4.1.11129.2.4.2";

/// The text of a DER UTF8String (or of one inside an explicit `[0]`).
pub(super) fn der_utf8(bytes: &[u8]) -> Option<String> {
    let (tag, header, len) = der_header(bytes)?;
    let content = bytes.get(header..header + len)?;
    match tag {
        0xa0 => der_utf8(content),
        0x0c | 0x16 | 0x13 => std::str::from_utf8(content).ok().map(str::to_owned),
        _ => None,
    }
}

/// (tag, header length, content length) of the DER element at the start of `bytes`.
fn der_header(bytes: &[u8]) -> Option<(u8, usize, usize)> {
    let tag = *bytes.first()?;
    let first = *bytes.get(1)? as usize;
    if first < 0x80 {
        return Some((tag, 2, first));
    }
    let n = first & 0x7f;
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | *bytes.get(2 + i)? as usize;
    }
    Some((tag, 2 + n, len))
}

fn der_element(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

/// The DER elements inside a constructed element's content.
fn der_children(mut content: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (_, header, len) = der_header(content)?;
        let end = header.checked_add(len)?;
        out.push(content.get(..end)?);
        content = &content[end..];
    }
    Some(out)
}

/// The TBSCertificate without its embedded SCT list extension: what the CT log signed for
/// the precertificate (RFC 6962 section 3.2).
pub(super) fn tbs_without_scts(tbs: &[u8]) -> Option<Vec<u8>> {
    let (tag, header, len) = der_header(tbs)?;
    if tag != 0x30 {
        return None;
    }
    let mut fields = Vec::new();
    for field in der_children(tbs.get(header..header + len)?)? {
        let (ftag, fheader, flen) = der_header(field)?;
        if ftag != 0xa3 {
            fields.extend_from_slice(field);
            continue;
        }
        let extensions = field.get(fheader..fheader + flen)?;
        let (_, eheader, elen) = der_header(extensions)?;
        let mut kept = Vec::new();
        for ext in der_children(extensions.get(eheader..eheader + elen)?)? {
            let (_, xheader, _) = der_header(ext)?;
            if !ext.get(xheader..)?.starts_with(SCT_LIST_OID_DER) {
                kept.extend_from_slice(ext);
            }
        }
        fields.extend_from_slice(&der_element(0xa3, &der_element(0x30, &kept)));
    }
    Some(der_element(0x30, &fields))
}

/// One SCT of an embedded list.
pub(super) struct Sct<'a> {
    log_id: &'a [u8],
    timestamp_ms: u64,
    extensions: &'a [u8],
    signature: &'a [u8],
}

fn read_u16(bytes: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]) as usize)
}

/// The SCTs of an embedded SignedCertificateTimestampList (TLS encoding).
pub(super) fn parse_scts(list: &[u8]) -> Option<Vec<Sct<'_>>> {
    let total = read_u16(list, 0)?;
    let mut rest = list.get(2..2 + total)?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len = read_u16(rest, 0)?;
        let sct = rest.get(2..2 + len)?;
        rest = &rest[2 + len..];
        if *sct.first()? != 0 {
            continue; // only v1 SCTs exist
        }
        let log_id = sct.get(1..33)?;
        let timestamp_ms = u64::from_be_bytes(sct.get(33..41)?.try_into().ok()?);
        let ext_len = read_u16(sct, 41)?;
        let extensions = sct.get(43..43 + ext_len)?;
        let at = 43 + ext_len;
        // hash and signature algorithm (2 bytes), then the signature.
        let sig_len = read_u16(sct, at + 2)?;
        let signature = sct.get(at + 4..at + 4 + sig_len)?;
        out.push(Sct {
            log_id,
            timestamp_ms,
            extensions,
            signature,
        });
    }
    Some(out)
}

/// Verifies the SCTs embedded in `leaf` (issued by `issuer`) against `ctlogs`: one valid
/// SCT from a log of the trusted root suffices, as in cosign.
pub(super) fn verify_sct(
    leaf: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
    ctlogs: &[LogKey],
) -> Result<(), KeylessError> {
    let ext = leaf
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == OID_SCT_LIST)
        .ok_or(KeylessError::NoSct)?;
    let bad = |why: &str| KeylessError::Sct(why.to_owned());
    // The extension's value is an OCTET STRING holding the TLS-encoded list.
    let (tag, header, len) = der_header(ext.value).ok_or_else(|| bad("malformed extension"))?;
    if tag != 0x04 {
        return Err(bad("malformed extension"));
    }
    let list = ext
        .value
        .get(header..header + len)
        .ok_or_else(|| bad("malformed extension"))?;
    let scts = parse_scts(list).ok_or_else(|| bad("malformed SCT list"))?;
    let tbs = tbs_without_scts(leaf.tbs_certificate.as_ref())
        .ok_or_else(|| bad("the certificate's TBS does not parse"))?;
    let issuer_key_hash = ring::digest::digest(&ring::digest::SHA256, issuer.public_key().raw);
    let mut why = "no SCT is from a CT log of the trusted root";
    for sct in &scts {
        let Some(log) = ctlogs.iter().find(|l| l.id == sct.log_id) else {
            continue;
        };
        let tbs_len = tbs.len();
        if tbs_len >= 1 << 24 {
            return Err(bad("the certificate is too large"));
        }
        let mut signed = Vec::with_capacity(tbs_len + 64);
        signed.push(0); // v1
        signed.push(0); // certificate_timestamp
        signed.extend_from_slice(&sct.timestamp_ms.to_be_bytes());
        signed.extend_from_slice(&1u16.to_be_bytes()); // precert_entry
        signed.extend_from_slice(issuer_key_hash.as_ref());
        signed.extend_from_slice(&(tbs_len as u32).to_be_bytes()[1..]);
        signed.extend_from_slice(&tbs);
        signed.extend_from_slice(&(sct.extensions.len() as u16).to_be_bytes());
        signed.extend_from_slice(sct.extensions);
        if !log.valid_at((sct.timestamp_ms / 1000) as i64) {
            why = "the CT log key was not valid at the SCT's time";
            continue;
        }
        if log.key.verifies(&signed, sct.signature) {
            return Ok(());
        }
        why = "the SCT's signature does not verify";
    }
    Err(bad(why))
}
