//! Notation trusted identities (`x509.subject: <DN>` or `*`), read and matched as the Notary
//! Project trust policy specification and notation-go do: the identity's DN is parsed after
//! RFC 4514 (`\,` `\;` `\\` and `\XX` escapes; `S` is another spelling of `ST`); multi-valued
//! RDNs, repeated attributes and `#`-encoded values are refused; and an identity matches when
//! each of its attributes has the same value in the signing certificate's subject ("a full
//! and partial list of all the attribute types present in subject DN").
//!
//! The certificate's subject is read as notation-go reads it (Go's `pkix.Name.String()` parsed
//! again): the attributes Go names (C, ST, L, O, OU, CN, STREET, POSTALCODE, SERIALNUMBER)
//! once each. A subject with another attribute (an e-mail address, ...) or a repeated one
//! matches no `x509.subject` identity in notation-go, and so not here either.

/// A trusted identity of a Notation rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedIdentity {
    /// `*`: any signer the trust store vouches for.
    Any,
    /// `x509.subject: C=US, ST=WA, O=Acme, CN=release`: every attribute given must be in the
    /// signing certificate's subject with that value.
    Subject(Vec<(String, String)>),
}

impl TrustedIdentity {
    /// Reads `*` or `x509.subject: <DN>`.
    pub fn parse(text: &str) -> Result<TrustedIdentity, String> {
        if text.trim() == "*" {
            return Ok(TrustedIdentity::Any);
        }
        // Only leading blanks: a trailing one may be an escaped part of the last value.
        let dn = text
            .trim_start()
            .strip_prefix("x509.subject:")
            .ok_or("must be \"*\" or \"x509.subject: <distinguished name>\"")?;
        let attributes = parse_dn(dn)?;
        if attributes.is_empty() {
            return Err("the distinguished name is empty".into());
        }
        Ok(TrustedIdentity::Subject(attributes))
    }

    /// Whether a signer of `subject` is this identity.
    pub fn matches(&self, subject: &Subject) -> bool {
        match self {
            TrustedIdentity::Any => true,
            TrustedIdentity::Subject(wanted) => {
                subject.unmatchable.is_none()
                    && wanted
                        .iter()
                        .all(|(k, v)| subject.attributes.iter().any(|(sk, sv)| sk == k && sv == v))
            }
        }
    }
}

/// The canonical name of an attribute type as an identity spells it.
fn attribute_name(text: &str) -> String {
    let upper = text.trim().to_ascii_uppercase();
    if upper == "S" { "ST".into() } else { upper }
}

/// `C=US, ST=WA, O=Acme\, Inc., CN=release` as (attribute, value) pairs (RFC 4514).
pub fn parse_dn(dn: &str) -> Result<Vec<(String, String)>, String> {
    // Each RDN as (text before the first unescaped '=', raw value bytes, whether each value
    // byte was escaped — an escaped space is kept where an unescaped one is trimmed).
    let mut rdns: Vec<(String, Vec<(u8, bool)>)> = Vec::new();
    let mut key = String::new();
    let mut value: Vec<(u8, bool)> = Vec::new();
    let mut in_value = false;
    let bytes = dn.as_bytes();
    let mut i = 0;
    let mut finish = |key: &mut String, value: &mut Vec<(u8, bool)>, in_value: &mut bool| {
        rdns.push((std::mem::take(key), std::mem::take(value)));
        *in_value = false;
    };
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\\' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                let (byte, used) = match (hex, bytes.get(i + 1)) {
                    (Some(b), _) => (b, 3),
                    (None, Some(&b)) => (b, 2),
                    (None, None) => return Err(format!("{dn:?} ends with a lone backslash")),
                };
                if in_value {
                    value.push((byte, true));
                } else {
                    key.push(byte as char);
                }
                i += used;
                continue;
            }
            b',' | b';' => finish(&mut key, &mut value, &mut in_value),
            b'+' => {
                return Err(format!(
                    "{dn:?} has a multi-valued RDN, which Notation does not support"
                ));
            }
            b'=' if !in_value => in_value = true,
            _ if in_value => value.push((c, false)),
            _ => key.push(c as char),
        }
        i += 1;
    }
    finish(&mut key, &mut value, &mut in_value);
    let mut out: Vec<(String, String)> = Vec::new();
    for (key, value) in rdns {
        if key.trim().is_empty() && value.is_empty() {
            continue;
        }
        let name = attribute_name(&key);
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.') {
            return Err(format!(
                "{key:?} is not an attribute type (write ATTRIBUTE=value)"
            ));
        }
        // Unescaped spaces around the value are not part of it.
        let start = value
            .iter()
            .position(|&(b, escaped)| escaped || b != b' ')
            .unwrap_or(value.len());
        let end = value
            .iter()
            .rposition(|&(b, escaped)| escaped || b != b' ')
            .map_or(start, |p| p + 1);
        let raw: Vec<u8> = value[start..end].iter().map(|&(b, _)| b).collect();
        if value
            .get(start)
            .is_some_and(|&(b, escaped)| b == b'#' && !escaped)
        {
            return Err(format!(
                "{name}: a #-encoded value, which Notation does not support in x509.subject"
            ));
        }
        let text = String::from_utf8(raw).map_err(|_| format!("{name}: the value is not UTF-8"))?;
        if out.iter().any(|(k, _)| *k == name) {
            return Err(format!(
                "{name} is given twice (a distinguished name names each attribute once)"
            ));
        }
        out.push((name, text));
    }
    Ok(out)
}

/// A signing certificate's subject as identities are matched against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// (attribute, value) in the certificate's order.
    pub attributes: Vec<(String, String)>,
    /// Why no `x509.subject` identity can match it, when so.
    pub unmatchable: Option<String>,
}

impl Subject {
    /// The subject of `cert`, read as notation-go reads it.
    pub fn of(cert: &x509_parser::prelude::X509Certificate<'_>) -> Subject {
        let mut attributes: Vec<(String, String)> = Vec::new();
        let mut unmatchable = None;
        for rdn in cert.subject().iter_rdn() {
            for attr in rdn.iter() {
                let oid = attr.attr_type().to_id_string();
                let name = match oid.as_str() {
                    "2.5.4.6" => "C",
                    "2.5.4.8" => "ST",
                    "2.5.4.7" => "L",
                    "2.5.4.10" => "O",
                    "2.5.4.11" => "OU",
                    "2.5.4.3" => "CN",
                    "2.5.4.9" => "STREET",
                    "2.5.4.17" => "POSTALCODE",
                    "2.5.4.5" => "SERIALNUMBER",
                    other => {
                        unmatchable.get_or_insert(format!(
                            "its subject holds attribute {other}, which x509.subject identities cannot name"
                        ));
                        attributes.push((other.to_owned(), "#…".to_owned()));
                        continue;
                    }
                };
                let Ok(value) = attr.as_str() else {
                    unmatchable.get_or_insert(format!("its subject's {name} is not a string"));
                    continue;
                };
                if attributes.iter().any(|(k, _)| k == name) {
                    unmatchable.get_or_insert(format!(
                        "its subject names {name} twice, which x509.subject identities cannot match"
                    ));
                }
                attributes.push((name.to_owned(), value.to_owned()));
            }
        }
        Subject {
            attributes,
            unmatchable,
        }
    }

    /// `C=US, O=Acme, CN=release`.
    pub fn show(&self) -> String {
        self.attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(pairs: &[(&str, &str)]) -> Subject {
        Subject {
            attributes: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            unmatchable: None,
        }
    }

    #[test]
    fn identities_parse_as_rfc_4514_writes_them() {
        assert_eq!(TrustedIdentity::parse("*"), Ok(TrustedIdentity::Any));
        let pairs = |p: &[(&str, &str)]| {
            TrustedIdentity::Subject(
                p.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            )
        };
        assert_eq!(
            TrustedIdentity::parse("x509.subject: C=US, O=Acme\\, Inc., CN=release"),
            Ok(pairs(&[
                ("C", "US"),
                ("O", "Acme, Inc."),
                ("CN", "release")
            ]))
        );
        // Every spelling of one DN reads the same.
        for spelling in [
            "x509.subject: C=US, ST=WA, O=Acme",
            "x509.subject:C=US,S=WA,O=Acme",
            "x509.subject: c=US; st=WA; o=Acme",
            "x509.subject:  C = US ,  ST=\\57A , O=Acme",
        ] {
            assert_eq!(
                TrustedIdentity::parse(spelling),
                Ok(pairs(&[("C", "US"), ("ST", "WA"), ("O", "Acme")])),
                "{spelling}"
            );
        }
        assert_eq!(
            TrustedIdentity::parse("x509.subject: C=US, CN=\\ padded\\ "),
            Ok(pairs(&[("C", "US"), ("CN", " padded ")]))
        );
        for refused in [
            "CN=release",
            "x509.subject: ",
            "x509.subject: C=US, C=CA",
            "x509.subject: C=US, ST=WA+O=Acme",
            "x509.subject: C=US, O=#0403414243",
            "x509.subject: C=US, \\",
            "x509.subject: C=US, =nameless",
        ] {
            assert!(TrustedIdentity::parse(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn an_identity_matches_when_each_of_its_attributes_does() {
        let signer = subject(&[("C", "US"), ("ST", "WA"), ("O", "Acme"), ("CN", "release")]);
        let matches = |text: &str| TrustedIdentity::parse(text).unwrap().matches(&signer);
        assert!(matches("x509.subject: C=US, ST=WA, O=Acme, CN=release"));
        assert!(matches("x509.subject: CN=release, O=Acme, ST=WA, C=US"));
        assert!(matches("x509.subject: C=US, S=WA, O=Acme"));
        assert!(!matches("x509.subject: C=US, ST=WA, O=Acme, CN=intern"));
        assert!(!matches("x509.subject: C=US, ST=WA, O=acme"));
        assert!(!matches("x509.subject: C=US, ST=WA, O=Acme, OU=Finance"));
        let mut odd = signer.clone();
        odd.unmatchable = Some("its subject holds attribute 1.2.840.113549.1.9.1".into());
        assert!(
            !TrustedIdentity::parse("x509.subject: C=US")
                .unwrap()
                .matches(&odd)
        );
        assert!(TrustedIdentity::Any.matches(&odd));
    }
}
