//! Image references in the one canonical form every image comparison uses.
//!
//! Container runtimes (containerd, CRI-O) normalize a pod's `image` with the distribution
//! reference library before they pull, so `nginx`, `docker.io/nginx:latest` and
//! `index.docker.io/library/nginx:latest` are the same image to them. A policy that compared
//! spellings instead would let anyone who may create a pod walk around it. [`parse`] computes
//! exactly what `reference.ParseNormalizedNamed` followed by `reference.TagNameOnly` compute
//! (github.com/distribution/reference, normalize.go, reference.go, regexp.go):
//!
//! - `docker.io` is the default domain and `index.docker.io` is `docker.io`;
//! - a Docker Hub repository of one path segment gets `library/`;
//! - `:latest` is added when there is neither tag nor digest;
//! - a reference with both a tag and a digest keeps both (the runtime pulls the digest).
//!
//! A text that is already canonical is returned borrowed: comparing it allocates nothing.

use std::borrow::Cow;
use std::fmt;

/// The domain of Docker Hub in canonical references.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Docker Hub's legacy domain: the same registry as [`DEFAULT_DOMAIN`].
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Official Docker Hub images live under `library/`.
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
/// The longest repository path the library accepts (`RepositoryNameTotalLengthMax`).
pub const MAX_PATH_LEN: usize = 255;

/// Why a text is not an image reference, in the library's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error("repository name must have at least one component")]
    Empty,
    #[error("invalid reference format")]
    InvalidFormat,
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexIdentifier(String),
    #[error("repository name must not be more than {MAX_PATH_LEN} characters")]
    NameTooLong,
    #[error("invalid checksum digest format")]
    DigestFormat,
    #[error("invalid checksum digest length")]
    DigestLength,
    #[error("unsupported digest algorithm")]
    DigestUnsupported,
}

/// A parsed image reference in canonical form: `domain/path[:tag][@digest]`.
///
/// The domain may be empty in one corner the library keeps: a first segment that holds a `.`
/// but is not a valid host (`a_b.c/x`) is read as part of the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef<'a> {
    text: Cow<'a, str>,
    /// Bytes of `text` up to the end of the domain (0 without one).
    domain_end: usize,
    /// Bytes of `text` up to the end of the name (`domain/path`).
    name_end: usize,
    /// Where the tag starts (after `:`), when there is one.
    tag_start: Option<usize>,
    /// Where the digest starts (after `@`), when there is one.
    digest_start: Option<usize>,
}

impl fmt::Display for ImageRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'a> ImageRef<'a> {
    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the input was canonical already (nothing was allocated).
    pub fn is_borrowed(&self) -> bool {
        matches!(self.text, Cow::Borrowed(_))
    }

    /// `docker.io`, `registry.example.com:5000`, `[::1]:5000`, or empty (see the type's note).
    pub fn domain(&self) -> &str {
        &self.text[..self.domain_end]
    }

    /// The repository path below the domain: `library/nginx`.
    pub fn path(&self) -> &str {
        let start = if self.domain_end == 0 {
            0
        } else {
            self.domain_end + 1
        };
        &self.text[start..self.name_end]
    }

    /// `domain/path`: the repository, as signatures name it.
    pub fn name(&self) -> &str {
        &self.text[..self.name_end]
    }

    pub fn tag(&self) -> Option<&str> {
        let start = self.tag_start?;
        let end = self.digest_start.map_or(self.text.len(), |d| d - 1);
        Some(&self.text[start..end])
    }

    /// `sha256:<hex>`, when the reference pins one.
    pub fn digest(&self) -> Option<&str> {
        Some(&self.text[self.digest_start?..])
    }

    /// The same reference pinned to `digest` (which replaces any digest it had), keeping the
    /// tag: `docker.io/library/nginx:1.27@sha256:...`.
    pub fn pinned(&self, digest: &str) -> String {
        let end = self.digest_start.map_or(self.text.len(), |d| d - 1);
        let mut out = String::with_capacity(end + 1 + digest.len());
        out.push_str(&self.text[..end]);
        out.push('@');
        out.push_str(digest);
        out
    }

    pub fn into_owned(self) -> ImageRef<'static> {
        ImageRef {
            text: Cow::Owned(self.text.into_owned()),
            domain_end: self.domain_end,
            name_end: self.name_end,
            tag_start: self.tag_start,
            digest_start: self.digest_start,
        }
    }
}

/// Parses `image` as `ParseNormalizedNamed` + `TagNameOnly` do and returns its canonical form,
/// borrowed when `image` is canonical already.
pub fn parse(image: &str) -> Result<ImageRef<'_>, RefError> {
    if is_hex_identifier(image) {
        return Err(RefError::HexIdentifier(image.to_owned()));
    }
    let (domain, remainder) = split_docker_domain(image);
    // The library checks the text before the first ':' (which may be inside a digest).
    let remote = &remainder[..position(remainder.as_bytes(), b':').unwrap_or(remainder.len())];
    if has_upper(remote.as_bytes()) {
        return Err(RefError::Uppercase(remote.to_owned()));
    }
    let parts = parse_parts(domain, &remainder)?;
    let needs_tag = parts.tag.is_none() && parts.digest.is_none();
    // `split_docker_domain` borrows the remainder exactly when the input already names its
    // domain as the canonical form does.
    let unchanged = !needs_tag
        && matches!(remainder, Cow::Borrowed(_))
        && domain.len() + 1 + remainder.len() == image.len();
    let text: Cow<'_, str> = if unchanged {
        Cow::Borrowed(image)
    } else {
        let mut out = String::with_capacity(domain.len() + remainder.len() + 8);
        out.push_str(domain);
        out.push('/');
        out.push_str(&remainder);
        if needs_tag {
            out.push(':');
            out.push_str(DEFAULT_TAG);
        }
        Cow::Owned(out)
    };
    let base = domain.len() + 1;
    let name_end = base + parts.path_end;
    let tag_start = match parts.tag {
        Some(start) => Some(base + start),
        None if needs_tag => Some(name_end + 1),
        None => None,
    };
    Ok(ImageRef {
        text,
        domain_end: if parts.domain_is_path {
            0
        } else {
            domain.len()
        },
        name_end,
        tag_start,
        digest_start: parts.digest.map(|start| base + start),
    })
}

// The scans below work on bytes: every character the grammar accepts is ASCII, and
// `str::find`/`split` with char patterns cost more than the whole check on texts this short
// (this runs for every container a signed-images policy judges).

fn position(bytes: &[u8], byte: u8) -> Option<usize> {
    memchr::memchr(byte, bytes)
}

/// Character classes of the grammar, one table lookup per byte.
const LOWER_ALNUM: u8 = 1; // [a-z0-9]
const UPPER: u8 = 2; // [A-Z]
const LOWER_HEX: u8 = 4; // [a-f0-9]
const ALNUM: u8 = 8; // [A-Za-z0-9]
const HEX: u8 = 16; // [[:xdigit:]]

static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut class = 0;
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            class |= LOWER_ALNUM | ALNUM;
        }
        if c.is_ascii_uppercase() {
            class |= UPPER | ALNUM;
        }
        if c.is_ascii_digit() || matches!(c, b'a'..=b'f') {
            class |= LOWER_HEX | HEX;
        }
        if matches!(c, b'A'..=b'F') {
            class |= HEX;
        }
        table[b] = class;
        b += 1;
    }
    table
};

fn is(b: u8, class: u8) -> bool {
    CLASS[usize::from(b)] & class != 0
}

fn has_upper(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| is(b, UPPER))
}

/// `^[a-f0-9]{64}$`: an image id, which the library refuses as a name.
fn is_hex_identifier(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `splitDockerDomain`: the domain the reference names (or Docker Hub's) and the rest, with
/// `library/` added to a one-segment Docker Hub path. The rest is borrowed unless `library/`
/// was added; [`parse`] tells from the lengths whether the input began with this domain.
fn split_docker_domain(name: &str) -> (&str, Cow<'_, str>) {
    let Some(slash) = position(name.as_bytes(), b'/') else {
        // A single segment ("nginx", "nginx:1.27") is a Docker Hub official image.
        return (
            DEFAULT_DOMAIN,
            Cow::Owned(format!("{OFFICIAL_REPO_PREFIX}{name}")),
        );
    };
    let (first, rest) = (&name[..slash], &name[slash + 1..]);
    let names_domain = first == "localhost"
        || first
            .bytes()
            .any(|b| b == b'.' || b == b':' || b.is_ascii_uppercase());
    if !names_domain {
        return (DEFAULT_DOMAIN, Cow::Borrowed(name));
    }
    let domain = if first == LEGACY_DEFAULT_DOMAIN {
        DEFAULT_DOMAIN
    } else {
        first
    };
    if domain == DEFAULT_DOMAIN && position(rest.as_bytes(), b'/').is_none() {
        return (domain, Cow::Owned(format!("{OFFICIAL_REPO_PREFIX}{rest}")));
    }
    (domain, Cow::Borrowed(rest))
}

/// What `Parse(domain + "/" + remainder)` found, as offsets into the remainder.
struct Parts {
    /// The path ends here (the tag or digest, if any, follow).
    path_end: usize,
    tag: Option<usize>,
    digest: Option<usize>,
    /// The library's regexp did not accept the domain as a host and read it as the first path
    /// segment instead (`a_b.c/x`): the reference then has no domain.
    domain_is_path: bool,
}

/// The library's `referenceRegexp` over `domain/remainder`:
/// `^((?:domainAndPort/)?remoteName)(?::(tag))?(?:@(digest))?$`, then `anchoredNameRegexp`
/// to split the name. No part but the name may hold `/`, and neither a tag nor a path
/// segment may hold `:`, so the splits below are the only ones the regexps can make.
fn parse_parts(domain: &str, remainder: &str) -> Result<Parts, RefError> {
    let (before_digest, digest) = match position(remainder.as_bytes(), b'@') {
        Some(at) => (&remainder[..at], Some(&remainder[at + 1..])),
        None => (remainder, None),
    };
    // A tag can only follow the last path segment.
    let last_segment_start = before_digest
        .as_bytes()
        .iter()
        .rposition(|&b| b == b'/')
        .map_or(0, |i| i + 1);
    let (path, tag) = match position(&before_digest.as_bytes()[last_segment_start..], b':') {
        Some(i) => (
            &before_digest[..last_segment_start + i],
            Some(&before_digest[last_segment_start + i + 1..]),
        ),
        None => (before_digest, None),
    };
    let name_ok = is_remote_name(path);
    // The optional domain group is tried first; without a valid host the whole name must be a
    // path (`a_b.c/x`), which only a first segment that is itself a path component allows.
    let domain_is_path = !is_domain_and_port(domain);
    let whole_is_path = domain_is_path && is_path_component(domain.as_bytes()) && name_ok;
    // The digest nearly every pinned reference carries, checked in one pass.
    let plain_sha256 = digest.is_some_and(is_lowercase_sha256);
    let syntax_ok = name_ok
        && (!domain_is_path || whole_is_path)
        && tag.is_none_or(is_tag)
        && (plain_sha256 || digest.is_none_or(is_digest_syntax));
    if !syntax_ok {
        // As the library says it: a reference that only its capitals spoil.
        let (lower_domain, lower_remainder) = (domain.to_lowercase(), remainder.to_lowercase());
        if (lower_domain != domain || lower_remainder != remainder)
            && parse_parts(&lower_domain, &lower_remainder).is_ok()
        {
            return Err(RefError::Uppercase(format!("{domain}/{remainder}")));
        }
        return Err(RefError::InvalidFormat);
    }
    // The path length is checked on the path the regexp split off.
    let path_len = if domain_is_path {
        domain.len() + 1 + path.len()
    } else {
        path.len()
    };
    if path_len > MAX_PATH_LEN {
        return Err(RefError::NameTooLong);
    }
    if let Some(digest) = digest
        && !plain_sha256
    {
        validate_digest(digest)?;
    }
    Ok(Parts {
        path_end: path.len(),
        tag: tag.map(|_| path.len() + 1),
        digest: digest.map(|d| remainder.len() - d.len()),
        domain_is_path,
    })
}

/// `sha256:` and 64 lowercase hex digits: what both the syntax and go-digest accept.
fn is_lowercase_sha256(digest: &str) -> bool {
    let bytes = digest.as_bytes();
    bytes.len() == 71
        && bytes.starts_with(b"sha256:")
        && bytes[7..].iter().all(|&b| is(b, LOWER_HEX))
}

/// `remoteName`: path components separated by single `/`.
fn is_remote_name(path: &str) -> bool {
    !path.is_empty() && all_separated(path.as_bytes(), b'/', is_path_component)
}

/// Whether every piece of `bytes` between `separator`s satisfies `piece`.
fn all_separated(bytes: &[u8], separator: u8, piece: impl Fn(&[u8]) -> bool) -> bool {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == separator {
            if !piece(&bytes[start..i]) {
                return false;
            }
            start = i + 1;
        }
    }
    piece(&bytes[start..])
}

/// `pathComponent`: `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
fn is_path_component(bytes: &[u8]) -> bool {
    let alnum = |b: u8| is(b, LOWER_ALNUM);
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        // A separator: one '.', one or two '_', or any number of '-'.
        let sep_start = i;
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < bytes.len() && bytes[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        debug_assert!(i > sep_start);
    }
}

/// `domainAndPort`: a host (`domainName` or a bracketed IPv6 address) and an optional port.
fn is_domain_and_port(domain: &str) -> bool {
    let bytes = domain.as_bytes();
    let port = if bytes.first() == Some(&b'[') {
        let Some(close) = position(bytes, b']') else {
            return false;
        };
        let inner = &bytes[1..close];
        if inner.is_empty() || !inner.iter().all(|&b| is(b, HEX) || b == b':') {
            return false;
        }
        &bytes[close + 1..]
    } else {
        let host_end = position(bytes, b':').unwrap_or(bytes.len());
        if !all_separated(&bytes[..host_end], b'.', is_domain_component) {
            return false;
        }
        &bytes[host_end..]
    };
    match port.split_first() {
        None => true,
        Some((b':', digits)) => !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// `domainNameComponent`: `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_domain_component(bytes: &[u8]) -> bool {
    match (bytes.first().copied(), bytes.last().copied()) {
        (Some(first), Some(last)) => {
            is(first, ALNUM) && is(last, ALNUM) && bytes.iter().all(|&b| is(b, ALNUM) || b == b'-')
        }
        _ => false,
    }
}

/// `tag`: `[\w][\w.-]{0,127}` (ASCII word characters).
fn is_tag(tag: &str) -> bool {
    let word = |b: u8| is(b, ALNUM) || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes[1..]
            .iter()
            .all(|&b| word(b) || b == b'.' || b == b'-')
}

/// `digestPat`: `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}`.
fn is_digest_syntax(digest: &str) -> bool {
    let bytes = digest.as_bytes();
    let Some(colon) = position(bytes, b':') else {
        return false;
    };
    let (algorithm, encoded) = (&bytes[..colon], &bytes[colon + 1..]);
    // Components start with a letter, and are joined by one of - _ + .
    let mut at_start = true;
    let algorithm_ok = algorithm.iter().all(|&b| {
        let ok = if at_start {
            b.is_ascii_alphabetic()
        } else {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'.')
        };
        at_start = matches!(b, b'-' | b'_' | b'+' | b'.');
        ok
    }) && !at_start;
    algorithm_ok && encoded.len() >= 32 && encoded.iter().all(u8::is_ascii_hexdigit)
}

/// go-digest's `Digest.Validate` with the algorithms containerd registers: sha256, sha384
/// and sha512, each as lowercase hex of the hash's length.
fn validate_digest(digest: &str) -> Result<(), RefError> {
    let colon = position(digest.as_bytes(), b':').ok_or(RefError::DigestFormat)?;
    let (algorithm, encoded) = (&digest[..colon], &digest[colon + 1..]);
    let hex_len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(RefError::DigestUnsupported),
    };
    if encoded.len() != hex_len {
        return Err(RefError::DigestLength);
    }
    if !encoded.bytes().all(|b| is(b, LOWER_HEX)) {
        return Err(RefError::DigestFormat);
    }
    Ok(())
}

#[cfg(test)]
mod oracle;
#[cfg(test)]
mod reference_table;
#[cfg(test)]
mod tests;

/// Why an image glob can never match a canonical reference, when that is certain: globs see
/// [`parse`]'s form, which always begins with the registry host, so `nginx:*` or
/// `library/nginx` match nothing, however the image is spelled in a pod.
pub fn unmatchable_glob(pattern: &str) -> Option<String> {
    let is_meta = |c: char| matches!(c, '*' | '?' | '[' | '{' | '\\');
    let first_end = pattern.find('/').unwrap_or(pattern.len());
    let first = &pattern[..first_end];
    if first.contains(is_meta) {
        return None;
    }
    let names_host = first == "localhost"
        || first.contains(['.', ':'])
        || first.bytes().any(|b| b.is_ascii_uppercase());
    let example = match parse(pattern) {
        Ok(canonical) if !pattern.contains(is_meta) => format!("{canonical:?}"),
        _ => "\"docker.io/library/nginx:*\" for nginx".to_owned(),
    };
    if first_end == pattern.len() || !names_host {
        return Some(format!(
            "can never match: image globs see the canonical reference, which begins with the registry host; write e.g. {example}"
        ));
    }
    if first == LEGACY_DEFAULT_DOMAIN {
        return Some(format!(
            "can never match: canonical references write Docker Hub as {DEFAULT_DOMAIN}, not {LEGACY_DEFAULT_DOMAIN}; write e.g. {example}"
        ));
    }
    if first == DEFAULT_DOMAIN {
        // `docker.io/nginx...`: a one-segment Docker Hub path is always under `library/`.
        let rest = &pattern[first_end + 1..];
        let literal = &rest[..rest.find(is_meta).unwrap_or(rest.len())];
        let path_end = literal.find([':', '@']);
        let whole_literal = literal.len() == rest.len();
        let one_segment = match path_end {
            Some(end) => !literal[..end].contains('/'),
            None => whole_literal && !rest.contains('/'),
        };
        if one_segment {
            return Some(format!(
                "can never match: a Docker Hub repository of one segment is canonical under library/; write e.g. {example}"
            ));
        }
    }
    None
}

/// Whether `host` is a registry host (`domainAndPort`): `docker.io`, `localhost:5000`,
/// `[::1]:5000`.
pub fn is_registry_host(host: &str) -> bool {
    is_domain_and_port(host)
}

/// Whether `digest` is a digest a reference may pin (`sha256:<64 hex>`, sha384, sha512).
pub fn is_digest(digest: &str) -> bool {
    is_digest_syntax(digest) && validate_digest(digest).is_ok()
}
