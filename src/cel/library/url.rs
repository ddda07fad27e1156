//! Kubernetes' URL library (`k8s.io/apiserver/pkg/cel/library/urls.go`): `url`, `isURL`,
//! `getScheme`, `getHost`, `getHostname`, `getPort`, `getEscapedPath`, `getQuery`.
//!
//! URLs are read as Go's `net/url` reads them, since that is what the API server runs: `url()`
//! and `isURL()` accept what `url.ParseRequestURI` accepts (an absolute URI or an absolute
//! path, no control characters, a numeric port), and the accessors read `url.Parse`'s result
//! (which sets a `#fragment` apart). This is a port of the parts of `net/url` they use.

use super::sig::*;
// Types of signatures are values (`String` the CEL type); in type position `String` is Rust's.
use super::{Call, Registry};
use crate::cel::eval::EvalError;
use crate::cel::value::{TypeName, Value};
use std::string::String;

/// A URL as Go's `url.URL` holds it (the fields the accessors read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    scheme: String,
    opaque: String,
    host: String,
    path: String,
    raw_path: String,
    raw_query: String,
}

pub(crate) fn register(r: &mut Registry) {
    let url = || opaque(TypeName::Url);
    r.global("url", to_url, &[(&[String], url())]);
    r.global("isURL", is_url, &[(&[String], Bool)]);
    for name in [
        "getScheme",
        "getHost",
        "getHostname",
        "getPort",
        "getEscapedPath",
    ] {
        r.member(name, accessor, &[(&[url()], String)]);
    }
    r.member(
        "getQuery",
        get_query,
        &[(&[url()], map(String, list(String)))],
    );
}

fn to_url<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let Value::String(s) = &args[0] else {
        return call.no_overload(args);
    };
    call.charge_traversal(s.len())?;
    let fail = |e: std::string::String| {
        EvalError::message(format!(
            "URL parse error during conversion from string: parse {s:?}: {e}"
        ))
    };
    parse(s, true).map_err(fail)?;
    let without_fragment = s.split_once('#').map_or(&**s, |(u, _)| u);
    let url = parse(without_fragment, false).map_err(fail)?;
    Ok(Value::Url(std::rc::Rc::new(url)))
}

fn is_url<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let Value::String(s) = &args[0] else {
        return call.no_overload(args);
    };
    call.charge_traversal(s.len())?;
    Ok(Value::Bool(parse(s, true).is_ok()))
}

fn accessor<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let Value::Url(url) = &args[0] else {
        return call.no_overload(args);
    };
    let text = match call.function {
        "getScheme" => url.scheme.clone(),
        "getHost" => url.host.clone(),
        "getHostname" => split_host_port(&url.host).0.to_owned(),
        "getPort" => split_host_port(&url.host).1.to_owned(),
        "getEscapedPath" => url.escaped_path(),
        _ => return call.no_overload(args),
    };
    Ok(Value::string(text))
}

fn get_query<'a>(call: &mut Call<'_>, args: &mut [Value<'a>]) -> Result<Value<'a>, EvalError> {
    let Value::Url(url) = &args[0] else {
        return call.no_overload(args);
    };
    let mut entries: Vec<(Value<'a>, Vec<Value<'a>>)> = Vec::new();
    for (key, value) in parse_query(&url.raw_query) {
        let key = Value::string(key);
        match entries.iter_mut().find(|(k, _)| k.equals(&key)) {
            Some((_, values)) => values.push(Value::string(value)),
            None => entries.push((key, vec![Value::string(value)])),
        }
    }
    Ok(Value::map(
        entries
            .into_iter()
            .map(|(k, v)| (k, Value::list(v)))
            .collect(),
    ))
}

/// Whether Go's `url.ParseRequestURI` accepts `s`, and why not.
pub(crate) fn parse_request_uri(s: &str) -> Result<(), String> {
    parse(s, true).map(|_| ())
}

/// Go's `url.ParseRequestURI` (`via_request`) or `url.Parse` without the fragment.
fn parse(raw: &str, via_request: bool) -> Result<Url, String> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL".into());
    }
    if raw.is_empty() && via_request {
        return Err("empty url".into());
    }
    let mut url = Url {
        scheme: String::new(),
        opaque: String::new(),
        host: String::new(),
        path: String::new(),
        raw_path: String::new(),
        raw_query: String::new(),
    };
    if raw == "*" {
        url.path = "*".into();
        return Ok(url);
    }
    let (scheme, mut rest) = get_scheme(raw)?;
    url.scheme = scheme.to_ascii_lowercase();
    if rest.ends_with('?') && rest.matches('?').count() == 1 {
        rest = &rest[..rest.len() - 1];
    } else if let Some((before, query)) = rest.split_once('?') {
        url.raw_query = query.to_owned();
        rest = before;
    }
    if !rest.starts_with('/') {
        if !url.scheme.is_empty() {
            url.opaque = rest.to_owned();
            return Ok(url);
        }
        if via_request {
            return Err("invalid URI for request".into());
        }
        if let Some(colon) = rest.find(':')
            && !rest[..colon].contains('/')
        {
            return Err("first path segment in URL cannot contain colon".into());
        }
    }
    if (!url.scheme.is_empty() || (!via_request && !rest.starts_with("///")))
        && rest.starts_with("//")
    {
        let authority_and_path = &rest[2..];
        let (authority, path) = match authority_and_path.find('/') {
            Some(i) => (&authority_and_path[..i], &authority_and_path[i..]),
            None => (authority_and_path, ""),
        };
        url.host = parse_authority(authority)?;
        rest = path;
    }
    url.path = unescape(rest, Mode::Path)?;
    url.raw_path = if escape_path(&url.path) == rest {
        String::new()
    } else {
        rest.to_owned()
    };
    Ok(url)
}

fn get_scheme(raw: &str) -> Result<(&str, &str), String> {
    for (i, c) in raw.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' => {
                if i == 0 {
                    return Ok(("", raw));
                }
            }
            b':' => {
                if i == 0 {
                    return Err("missing protocol scheme".into());
                }
                return Ok((&raw[..i], &raw[i + 1..]));
            }
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

fn parse_authority(authority: &str) -> Result<String, String> {
    let (userinfo, host) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let host = parse_host(host)?;
    if let Some(userinfo) = userinfo
        && !userinfo
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&b))
    {
        return Err("net/url: invalid userinfo".into());
    }
    Ok(host)
}

fn valid_optional_port(port: &str) -> bool {
    match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(digits) => digits.bytes().all(|b| b.is_ascii_digit()),
    }
}

fn parse_host(host: &str) -> Result<String, String> {
    if host.starts_with('[') {
        let Some(close) = host.rfind(']') else {
            return Err("missing ']' in host".into());
        };
        let colon_port = &host[close + 1..];
        if !valid_optional_port(colon_port) {
            return Err(format!("invalid port {colon_port:?} after host"));
        }
    } else if let Some(i) = host.rfind(':') {
        let colon_port = &host[i..];
        if !valid_optional_port(colon_port) {
            return Err(format!("invalid port {colon_port:?} after host"));
        }
    }
    unescape(host, Mode::Host)
}

/// Go's `url.splitHostPort`: the host without brackets, and the port.
fn split_host_port(host_port: &str) -> (&str, &str) {
    let (mut host, mut port) = (host_port, "");
    if let Some(colon) = host_port.rfind(':')
        && valid_optional_port(&host_port[colon..])
    {
        host = &host_port[..colon];
        port = &host_port[colon + 1..];
    }
    if host.starts_with('[') && host.ends_with(']') && host.len() >= 2 {
        host = &host[1..host.len() - 1];
    }
    (host, port)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Path,
    Host,
    QueryComponent,
}

/// Whether Go's `shouldEscape` escapes `c` in `mode`.
fn should_escape(c: u8, mode: Mode) -> bool {
    if c.is_ascii_alphanumeric() || b"-_.~".contains(&c) {
        return false;
    }
    match mode {
        Mode::Host => !b"!$&'()*+,;=:[]<>\"".contains(&c),
        Mode::Path => !b"$&+,/:;=@".contains(&c),
        Mode::QueryComponent => true,
    }
}

fn unhex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Go's `url.unescape`: `%XX` escapes decoded (and `+` as a space in query components).
fn unescape(s: &str, mode: Mode) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).copied().and_then(unhex),
                    bytes.get(i + 2).copied().and_then(unhex),
                ) else {
                    let end = (i + 3).min(s.len());
                    return Err(format!(
                        "invalid URL escape {:?}",
                        s.get(i..end).unwrap_or("%")
                    ));
                };
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if mode == Mode::QueryComponent => {
                out.push(b' ');
                i += 1;
            }
            c => {
                if mode == Mode::Host && c < 0x80 && should_escape(c, mode) {
                    return Err(format!("invalid character {:?} in host name", c as char));
                }
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "invalid UTF-8 in URL".to_owned())
}

fn escape_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if should_escape(b, Mode::Path) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

impl Url {
    /// Go's `URL.EscapedPath`.
    fn escaped_path(&self) -> String {
        if !self.raw_path.is_empty()
            && unescape(&self.raw_path, Mode::Path).as_deref() == Ok(&self.path)
            && self.raw_path.bytes().all(|b| {
                b == b'%' || b"!$&'()*+,;=:@[]".contains(&b) || !should_escape(b, Mode::Path)
            })
        {
            return self.raw_path.clone();
        }
        if self.path == "*" {
            return "*".into();
        }
        escape_path(&self.path)
    }

    /// The opaque part of a URL such as `mailto:user@example.com`.
    pub fn opaque(&self) -> &str {
        &self.opaque
    }
}

/// Go's `url.ParseQuery`, dropping the pairs it would report an error for.
fn parse_query(query: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pair in query.split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if let (Ok(k), Ok(v)) = (
            unescape(key, Mode::QueryComponent),
            unescape(value, Mode::QueryComponent),
        ) {
            out.push((k, v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> (String, String, String, String, String) {
        let without_fragment = s.split_once('#').map_or(s, |(u, _)| u);
        let u = parse(without_fragment, false).unwrap();
        let (host, port) = split_host_port(&u.host);
        (
            u.scheme.clone(),
            u.host.clone(),
            host.into(),
            port.into(),
            u.escaped_path(),
        )
    }

    #[test]
    fn reads_urls_as_go_does() {
        assert_eq!(
            parts("https://user:pw@example.com:8080/a%20b/c?x=1#frag"),
            (
                "https".into(),
                "example.com:8080".into(),
                "example.com".into(),
                "8080".into(),
                "/a%20b/c".into()
            )
        );
        assert_eq!(
            parts("https://[::1]:80/"),
            (
                "https".into(),
                "[::1]:80".into(),
                "::1".into(),
                "80".into(),
                "/".into()
            )
        );
        assert_eq!(parts("/absolute/path").4, "/absolute/path");
        assert_eq!(parts("HTTP://Example.com").0, "http");
    }

    #[test]
    fn request_uris_must_be_absolute() {
        for ok in [
            "https://example.com",
            "/path",
            "mailto:someone@example.com",
            "*",
            "http://example.com:",
        ] {
            assert!(parse(ok, true).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "example.com",
            "relative/path",
            "://missing",
            "http://host:port/",
            "http://exa mple.com/",
            "https://[::1/",
            "http://example.com/\n",
            "http://example.com/%zz",
        ] {
            assert!(parse(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn queries_keep_every_value() {
        assert_eq!(
            parse_query("a=1&b=2&a=3&c&d=%20x+y&bad=%z"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "2".into()),
                ("a".into(), "3".into()),
                ("c".into(), "".into()),
                ("d".into(), " x y".into()),
            ]
        );
    }
}
