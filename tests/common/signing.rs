//! Signers for every format portier verifies, made by the test, written out after the real
//! tools' wire formats (cosign v3, Fulcio, Rekor, RFC 6962 CT, Notation), never through
//! portier's own code:
//!
//! - [`FulcioCa`]: a Fulcio-like CA (root + intermediate) issuing short-lived code-signing
//!   certificates with an identity (SAN + OIDC issuer extension) and an embedded SCT from a
//!   [`CtLog`];
//! - [`RekorLog`]: a Rekor-like transparency log that keeps a real RFC 6962 Merkle tree of the
//!   entries it logs and answers with a signed entry timestamp, an inclusion proof and a
//!   checkpoint (a signed note) for the tree at that size;
//! - [`Sigstore`]: the three together, writing a `trusted_root.json` in the real format and
//!   cosign v3 bundles (DSSE in-toto statement, `https://sigstore.dev/cosign/sign/v1`);
//!
//! Notation's signer is `notation_signing.rs`.

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair,
};
use serde_json::{Value, json};

use super::registry::{TestSigner, sha256_digest};

pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An ECDSA P-256 key (log keys, CT keys): PKCS#8 for ring, the SPKI DER for the root.
pub struct EcKey {
    key: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    pub spki_der: Vec<u8>,
    rng: SystemRandom,
}

impl EcKey {
    pub fn new() -> EcKey {
        let generated = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let rng = SystemRandom::new();
        let pkcs8 = generated.serialized_der().to_vec();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &rng).unwrap();
        EcKey {
            key,
            pkcs8,
            spki_der: rcgen::PublicKeyData::subject_public_key_info(&generated),
            rng,
        }
    }

    /// ASN.1 DER ECDSA-P256-SHA256 signature.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(&self.rng, message).unwrap().as_ref().to_vec()
    }

    /// JOSE's fixed-size r||s ECDSA-P256-SHA256 signature (ES256).
    pub fn sign_fixed(&self, message: &[u8]) -> Vec<u8> {
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.pkcs8, &self.rng)
                .unwrap();
        key.sign(&self.rng, message).unwrap().as_ref().to_vec()
    }

    /// The log id: SHA-256 of the DER SubjectPublicKeyInfo.
    pub fn id(&self) -> [u8; 32] {
        sha256(&self.spki_der)
    }

    pub fn rcgen(&self) -> KeyPair {
        KeyPair::try_from(self.pkcs8.as_slice()).unwrap()
    }
}

impl Default for EcKey {
    fn default() -> Self {
        Self::new()
    }
}

/// A CT log: signs SCTs over precertificates (RFC 6962 section 3.2).
pub struct CtLog {
    pub key: EcKey,
}

impl CtLog {
    pub fn new() -> CtLog {
        CtLog { key: EcKey::new() }
    }

    /// A TLS-encoded SignedCertificateTimestampList holding one SCT for the precertificate
    /// `tbs` issued by the key `issuer_spki`.
    fn sct_list(&self, tbs: &[u8], issuer_spki: &[u8], timestamp_ms: u64, forge: bool) -> Vec<u8> {
        let mut signed = vec![0u8, 0u8];
        signed.extend_from_slice(&timestamp_ms.to_be_bytes());
        signed.extend_from_slice(&1u16.to_be_bytes());
        signed.extend_from_slice(&sha256(issuer_spki));
        signed.extend_from_slice(&(tbs.len() as u32).to_be_bytes()[1..]);
        signed.extend_from_slice(tbs);
        signed.extend_from_slice(&0u16.to_be_bytes());
        if forge {
            // Signed over something else: the SCT does not vouch for this certificate.
            signed.push(0);
        }
        let signature = self.key.sign(&signed);
        let mut sct = vec![0u8];
        sct.extend_from_slice(&self.key.id());
        sct.extend_from_slice(&timestamp_ms.to_be_bytes());
        sct.extend_from_slice(&0u16.to_be_bytes());
        sct.extend_from_slice(&[4, 3]); // sha256, ecdsa
        sct.extend_from_slice(&(signature.len() as u16).to_be_bytes());
        sct.extend_from_slice(&signature);
        let mut list = ((sct.len() + 2) as u16).to_be_bytes().to_vec();
        list.extend_from_slice(&(sct.len() as u16).to_be_bytes());
        list.extend_from_slice(&sct);
        list
    }
}

impl Default for CtLog {
    fn default() -> Self {
        Self::new()
    }
}

/// DER of `content` as an OCTET STRING.
fn octet_string(content: &[u8]) -> Vec<u8> {
    let mut out = vec![0x04];
    if content.len() < 0x80 {
        out.push(content.len() as u8);
    } else if content.len() < 0x100 {
        out.extend_from_slice(&[0x81, content.len() as u8]);
    } else {
        out.extend_from_slice(&[0x82, (content.len() >> 8) as u8, content.len() as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn utf8_string(text: &str) -> Vec<u8> {
    let mut out = vec![0x0c, text.len() as u8];
    out.extend_from_slice(text.as_bytes());
    out
}

/// The TBSCertificate of a DER certificate (the first element of its SEQUENCE).
fn tbs_of(cert_der: &[u8]) -> Vec<u8> {
    let header = |b: &[u8]| -> (usize, usize) {
        if b[1] < 0x80 {
            (2, b[1] as usize)
        } else {
            let n = (b[1] & 0x7f) as usize;
            (
                2 + n,
                b[2..2 + n]
                    .iter()
                    .fold(0usize, |a, x| (a << 8) | *x as usize),
            )
        }
    };
    let (h, _) = header(cert_der);
    let inner = &cert_der[h..];
    let (th, tl) = header(inner);
    inner[..th + tl].to_vec()
}

/// A certificate's validity: (year, month, day) from and to.
pub type Validity = ((i32, u8, u8), (i32, u8, u8));

/// What a Fulcio certificate should say and how it may be wrong.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    /// The SAN: an email address, or a URI when it has a scheme.
    pub subject: String,
    pub issuer: String,
    /// `None` for 2020-01-01 to 2099-01-01.
    pub validity: Option<Validity>,
    /// An SCT that does not verify.
    pub forged_sct: bool,
}

impl LeafSpec {
    pub fn new(subject: &str, issuer: &str) -> LeafSpec {
        LeafSpec {
            subject: subject.into(),
            issuer: issuer.into(),
            validity: None,
            forged_sct: false,
        }
    }
}

/// A Fulcio-like CA: a root and an intermediate; leaves carry the identity and an SCT.
pub struct FulcioCa {
    pub root_der: Vec<u8>,
    pub intermediate_der: Vec<u8>,
    intermediate: Issuer<'static, KeyPair>,
    intermediate_spki: Vec<u8>,
}

impl FulcioCa {
    pub fn new(name: &str) -> FulcioCa {
        let root_key = KeyPair::generate().unwrap();
        let mut root = CertificateParams::new(Vec::<String>::new()).unwrap();
        root.distinguished_name = DistinguishedName::new();
        root.distinguished_name
            .push(DnType::OrganizationName, "sigstore.test");
        root.distinguished_name
            .push(DnType::CommonName, format!("{name} root"));
        root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        root.not_before = rcgen::date_time_ymd(2020, 1, 1);
        root.not_after = rcgen::date_time_ymd(2099, 1, 1);
        let root_cert = root.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root, root_key);
        let intermediate_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "sigstore.test");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} intermediate"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2099, 1, 1);
        let intermediate_cert = params.signed_by(&intermediate_key, &root_issuer).unwrap();
        let intermediate_spki = rcgen::PublicKeyData::subject_public_key_info(&intermediate_key);
        FulcioCa {
            root_der: root_cert.der().to_vec(),
            intermediate_der: intermediate_cert.der().to_vec(),
            intermediate: Issuer::new(params, intermediate_key),
            intermediate_spki,
        }
    }

    /// Issues a code-signing certificate for `key` naming `spec`'s identity, with an SCT by
    /// `ct` embedded (the SCT signs the certificate without the SCT extension: the
    /// precertificate, which is the same certificate issued first without it).
    pub fn issue(&self, key: &EcKey, spec: &LeafSpec, ct: &CtLog) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.serial_number = Some(SerialNumber::from(vec![0x42, 0x17, 0x01]));
        let (from, to) = spec.validity.unwrap_or(((2020, 1, 1), (2099, 1, 1)));
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
        params.subject_alt_names = vec![if spec.subject.contains("://") {
            SanType::URI(spec.subject.clone().try_into().unwrap())
        } else {
            SanType::Rfc822Name(spec.subject.clone().try_into().unwrap())
        }];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        params.use_authority_key_identifier_extension = true;
        // Fulcio's OIDC issuer (v2: a DER UTF8String).
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 57264, 1, 8],
            utf8_string(&spec.issuer),
        )];
        let subject_key = key.rcgen();
        let precert = params.signed_by(&subject_key, &self.intermediate).unwrap();
        let list = ct.sct_list(
            &tbs_of(precert.der()),
            &self.intermediate_spki,
            (now() as u64) * 1000,
            spec.forged_sct,
        );
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2],
                octet_string(&list),
            ));
        params
            .signed_by(&subject_key, &self.intermediate)
            .unwrap()
            .der()
            .to_vec()
    }
}

/// RFC 6962 hashes.
fn leaf_hash(leaf: &[u8]) -> [u8; 32] {
    let mut data = vec![0u8];
    data.extend_from_slice(leaf);
    sha256(&data)
}

fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut data = vec![1u8];
    data.extend_from_slice(left);
    data.extend_from_slice(right);
    sha256(&data)
}

/// The Merkle tree hash of `leaves` (RFC 6962 section 2.1).
fn tree_hash(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => sha256(b""),
        1 => leaves[0],
        n => {
            let k = n.next_power_of_two() / 2;
            node_hash(&tree_hash(&leaves[..k]), &tree_hash(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index` (RFC 6962 section 2.1.1).
fn audit_path(index: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
    if leaves.len() <= 1 {
        return Vec::new();
    }
    let k = leaves.len().next_power_of_two() / 2;
    if index < k {
        let mut path = audit_path(index, &leaves[..k]);
        path.push(tree_hash(&leaves[k..]));
        path
    } else {
        let mut path = audit_path(index - k, &leaves[k..]);
        path.push(tree_hash(&leaves[..k]));
        path
    }
}

/// A Rekor-like log: a Merkle tree of canonicalized entry bodies.
pub struct RekorLog {
    pub key: EcKey,
    pub origin: String,
    leaves: Mutex<Vec<[u8; 32]>>,
}

/// A logged entry as a bundle carries it (`tlogEntries[]`).
pub struct LoggedEntry(pub Value);

impl RekorLog {
    pub fn new() -> RekorLog {
        let log = RekorLog {
            key: EcKey::new(),
            origin: "rekor.test - 1234567890".into(),
            leaves: Mutex::new(Vec::new()),
        };
        // Entries logged before ours, so proofs have a path to walk.
        for i in 0..5u8 {
            log.append(&[b'x', i]);
        }
        log
    }

    fn append(&self, body: &[u8]) -> usize {
        let mut leaves = self.leaves.lock().unwrap();
        leaves.push(leaf_hash(body));
        leaves.len() - 1
    }

    /// A signed note: the checkpoint body and one signature line by this log.
    fn checkpoint(&self, size: usize, root: &[u8; 32]) -> String {
        let body = format!("{}\n{size}\n{}\n", self.origin, STANDARD.encode(root));
        let mut sig = self.key.id()[..4].to_vec();
        sig.extend_from_slice(&self.key.sign(body.as_bytes()));
        format!("{body}\n\u{2014} rekor.test {}\n", STANDARD.encode(sig))
    }

    /// Logs `body` (a Rekor entry's JSON) at `integrated_time`; returns the bundle's entry
    /// with SET, inclusion proof and checkpoint for the tree right after it.
    pub fn log(&self, kind: &str, body: &Value, integrated_time: i64) -> LoggedEntry {
        let body = serde_json::to_vec(body).unwrap();
        let index = self.append(&body);
        // More entries after ours: the proof's tree is larger than the entry's position.
        self.append(format!("after {index}").as_bytes());
        let leaves = self.leaves.lock().unwrap().clone();
        let root = tree_hash(&leaves);
        let path = audit_path(index, &leaves);
        let body_b64 = STANDARD.encode(&body);
        let promise = format!(
            r#"{{"body":"{body_b64}","integratedTime":{integrated_time},"logID":"{}","logIndex":{index}}}"#,
            hex(&self.key.id())
        );
        LoggedEntry(json!({
            "logIndex": index.to_string(),
            "logId": {"keyId": STANDARD.encode(self.key.id())},
            "kindVersion": {"kind": kind, "version": "0.0.1"},
            "integratedTime": integrated_time.to_string(),
            "inclusionPromise": {"signedEntryTimestamp": STANDARD.encode(self.key.sign(promise.as_bytes()))},
            "inclusionProof": {
                "logIndex": index.to_string(),
                "rootHash": STANDARD.encode(root),
                "treeSize": leaves.len().to_string(),
                "hashes": path.iter().map(|h| STANDARD.encode(h)).collect::<Vec<_>>(),
                "checkpoint": {"envelope": self.checkpoint(leaves.len(), &root)}
            },
            "canonicalizedBody": body_b64
        }))
    }
}

impl Default for RekorLog {
    fn default() -> Self {
        Self::new()
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// The in-toto statement `cosign sign` (v3) signs for an image digest.
pub fn cosign_statement(repository: &str, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": repository, "digest": {"sha256": hex}}],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {}
    }))
    .unwrap()
}

/// DSSE's pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// How a keyless bundle should be made, and how it may be wrong.
pub struct BundleSpec {
    pub leaf: LeafSpec,
    /// Sign a statement for this digest instead of the image's.
    pub statement_digest: Option<String>,
    /// Edit the logged entry after logging (tampering).
    pub tamper_entry: Option<fn(&mut Value)>,
}

/// A Sigstore instance made for one test: Fulcio, Rekor, a CT log.
pub struct Sigstore {
    pub fulcio: FulcioCa,
    pub rekor: RekorLog,
    pub ct: CtLog,
}

impl Sigstore {
    pub fn new() -> Sigstore {
        Sigstore {
            fulcio: FulcioCa::new("fulcio.test"),
            rekor: RekorLog::new(),
            ct: CtLog::new(),
        }
    }

    /// The trusted root in the real `trusted_root.json` format (as `sigstore-go`, cosign's
    /// `--trusted-root` and the public-good TUF repository write it).
    pub fn trusted_root(&self) -> Value {
        let log = |key: &EcKey, url: &str| {
            json!({
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": STANDARD.encode(&key.spki_der),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": "2020-01-01T00:00:00Z"}
                },
                "logId": {"keyId": STANDARD.encode(key.id())}
            })
        };
        json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(&self.rekor.key, "https://rekor.test")],
            "certificateAuthorities": [{
                "subject": {"organization": "sigstore.test", "commonName": "fulcio.test"},
                "uri": "https://fulcio.test",
                "certChain": {"certificates": [
                    {"rawBytes": STANDARD.encode(&self.fulcio.intermediate_der)},
                    {"rawBytes": STANDARD.encode(&self.fulcio.root_der)}
                ]},
                "validFor": {"start": "2020-01-01T00:00:00Z"}
            }],
            "ctlogs": [log(&self.ct.key, "https://ctfe.test")],
            "timestampAuthorities": []
        })
    }

    pub fn write_trusted_root(&self, path: &Path) {
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&self.trusted_root()).unwrap(),
        )
        .unwrap();
    }

    /// A cosign v3 keyless bundle for `digest` in `repository`: a DSSE envelope over cosign's
    /// signing statement, a Fulcio certificate per `spec`, a Rekor `dsse` entry.
    pub fn keyless_bundle(&self, repository: &str, digest: &str, spec: &BundleSpec) -> Vec<u8> {
        let key = EcKey::new();
        let cert = self.fulcio.issue(&key, &spec.leaf, &self.ct);
        let statement = cosign_statement(
            repository,
            spec.statement_digest.as_deref().unwrap_or(digest),
        );
        let signature = key.sign(&pae(IN_TOTO, &statement));
        let cert_pem = pem("CERTIFICATE", &cert);
        let body = json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": hex(&sha256(&statement))},
                "payloadHash": {"algorithm": "sha256", "value": hex(&sha256(&statement))},
                "signatures": [{
                    "signature": STANDARD.encode(&signature),
                    "verifier": STANDARD.encode(cert_pem.as_bytes())
                }]
            }
        });
        let LoggedEntry(mut entry) = self.rekor.log("dsse", &body, now());
        if let Some(tamper) = spec.tamper_entry {
            tamper(&mut entry);
        }
        serde_json::to_vec(&json!({
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {
                "certificate": {"rawBytes": STANDARD.encode(&cert)},
                "tlogEntries": [entry]
            },
            "dsseEnvelope": {
                "payload": STANDARD.encode(&statement),
                "payloadType": IN_TOTO,
                "signatures": [{"sig": STANDARD.encode(&signature), "keyid": ""}]
            }
        }))
        .unwrap()
    }
}

impl Default for Sigstore {
    fn default() -> Self {
        Self::new()
    }
}

impl Sigstore {
    /// A keyless signature in cosign's legacy layout (cosign < 3): the simple-signing payload
    /// for `digest` in `repository`, signed with a Fulcio certificate's key, logged in Rekor
    /// as a `hashedrekord`; returned as (payload, layer annotations: signature, certificate,
    /// Rekor bundle).
    pub fn legacy_keyless_layer(
        &self,
        repository: &str,
        digest: &str,
        leaf: &LeafSpec,
    ) -> super::registry::AnnotatedLayer {
        let key = EcKey::new();
        let cert = self.fulcio.issue(&key, leaf, &self.ct);
        let payload = super::registry::simple_signing_payload(repository, digest);
        let signature = key.sign(&payload);
        let cert_pem = pem("CERTIFICATE", &cert);
        let body = json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": hex(&sha256(&payload))}},
                "signature": {
                    "content": STANDARD.encode(&signature),
                    "publicKey": {"content": STANDARD.encode(cert_pem.as_bytes())}
                }
            }
        });
        let time = now();
        let LoggedEntry(entry) = self.rekor.log("hashedrekord", &body, time);
        let rekor_bundle = json!({
            "SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
            "Payload": {
                "body": entry["canonicalizedBody"],
                "integratedTime": time,
                "logIndex": entry["logIndex"].as_str().unwrap().parse::<i64>().unwrap(),
                "logID": hex(&self.rekor.key.id())
            }
        });
        let annotations = vec![
            (
                "dev.cosignproject.cosign/signature".to_owned(),
                STANDARD.encode(&signature),
            ),
            ("dev.sigstore.cosign/certificate".to_owned(), cert_pem),
            (
                "dev.sigstore.cosign/bundle".to_owned(),
                rekor_bundle.to_string(),
            ),
        ];
        (payload, annotations)
    }
}

/// A cosign v3 `sign --key` bundle: DSSE over cosign's statement, signed by `signer`,
/// verification material naming the key by hint (no certificate).
pub fn key_bundle(signer: &TestSigner, repository: &str, digest: &str) -> Vec<u8> {
    let statement = cosign_statement(repository, digest);
    let signature = STANDARD
        .decode(signer.sign(&pae(IN_TOTO, &statement)))
        .unwrap();
    serde_json::to_vec(&json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": STANDARD.encode(sha256(signer.public_key_pem().as_bytes()))},
            "tlogEntries": []
        },
        "dsseEnvelope": {
            "payload": STANDARD.encode(&statement),
            "payloadType": IN_TOTO,
            "signatures": [{"sig": STANDARD.encode(&signature), "keyid": ""}]
        }
    }))
    .unwrap()
}

/// A key-signed message-signature bundle over the manifest bytes (as `cosign sign-blob
/// --new-bundle-format` signs a blob).
pub fn key_message_bundle(signer: &TestSigner, manifest: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": []},
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": STANDARD.encode(sha256(manifest))},
            "signature": signer.sign(manifest)
        }
    }))
    .unwrap()
}

/// "sha256:<hex>" of a blob, re-exported for tests that build artifacts.
pub fn digest_of(bytes: &[u8]) -> String {
    sha256_digest(bytes)
}
