//! A differential test: [`parse`] against the distribution reference library's own regular
//! expressions (regexp.go, commit 0965666) with `ParseNormalizedNamed`'s steps around them.

use super::*;

/// The library's grammar, as its regexp.go builds it, with ParseNormalizedNamed's steps
/// around it: an oracle for any input.
mod library {
    use regex::Regex;
    use std::sync::LazyLock;

    const ALNUM: &str = r"[a-z0-9]+";
    const SEPARATOR: &str = r"(?:[._]|__|[-]+)";
    const DOMAIN_COMPONENT: &str = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    const PORT: &str = r"(?::[0-9]+)?";
    const TAG: &str = r"[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}";
    const DIGEST: &str = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}";
    const IPV6: &str = r"\[(?:[a-fA-F0-9:]+)\]";

    fn domain_and_port() -> String {
        let domain_name = format!("{DOMAIN_COMPONENT}(?:\\.{DOMAIN_COMPONENT})*");
        format!("(?:{domain_name}|{IPV6}){PORT}")
    }

    fn remote_name() -> String {
        let component = format!("{ALNUM}(?:{SEPARATOR}{ALNUM})*");
        format!("{component}(?:/{component})*")
    }

    static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
        let name = format!("(?:{}/)?{}", domain_and_port(), remote_name());
        Regex::new(&format!("^({name})(?::({TAG}))?(?:@({DIGEST}))?$")).unwrap()
    });
    static NAME: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(&format!(
            "^(?:({})/)?({})$",
            domain_and_port(),
            remote_name()
        ))
        .unwrap()
    });

    /// ParseNormalizedNamed + TagNameOnly: (canonical, domain, path), or None for an error.
    pub fn normalize(s: &str) -> Option<(String, String, String)> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let (domain, remainder) = match s.split_once('/') {
            None => ("docker.io".to_owned(), format!("library/{s}")),
            Some((first, rest)) => {
                let (mut d, r) = if first == "localhost"
                    || first.contains(['.', ':'])
                    || first.to_lowercase() != first
                {
                    (first.to_owned(), rest.to_owned())
                } else {
                    ("docker.io".to_owned(), s.to_owned())
                };
                if d == "index.docker.io" {
                    d = "docker.io".to_owned();
                }
                if d == "docker.io" && !r.contains('/') {
                    (d, format!("library/{r}"))
                } else {
                    (d, r)
                }
            }
        };
        let remote = remainder.split(':').next().unwrap_or(&remainder);
        if remote.to_lowercase() != remote {
            return None;
        }
        let full = format!("{domain}/{remainder}");
        let caps = REFERENCE.captures(&full)?;
        let name = caps.get(1)?.as_str();
        let tag = caps.get(2).map(|m| m.as_str());
        let digest = caps.get(3).map(|m| m.as_str());
        let name_caps = NAME.captures(name)?;
        let domain = name_caps.get(1).map_or("", |m| m.as_str()).to_owned();
        let path = name_caps.get(2)?.as_str().to_owned();
        if path.len() > 255 {
            return None;
        }
        if let Some(digest) = digest {
            let (algorithm, hex) = digest.split_once(':')?;
            let want = match algorithm {
                "sha256" => 64,
                "sha384" => 96,
                "sha512" => 128,
                _ => return None,
            };
            if hex.len() != want || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return None;
            }
        }
        let mut canonical = name.to_owned();
        match (tag, digest) {
            (None, None) => canonical.push_str(":latest"),
            _ => {
                if let Some(tag) = tag {
                    canonical.push(':');
                    canonical.push_str(tag);
                }
                if let Some(digest) = digest {
                    canonical.push('@');
                    canonical.push_str(digest);
                }
            }
        }
        Some((canonical, domain, path))
    }
}

fn agrees_with_oracle(input: &str) {
    let ours = parse(input).ok().map(|r| {
        (
            r.as_str().to_owned(),
            r.domain().to_owned(),
            r.path().to_owned(),
        )
    });
    assert_eq!(ours, library::normalize(input), "{input:?}");
}

#[test]
fn agrees_with_the_library_regexps_on_every_table_input() {
    for input in [
        "a_b.c/foo",
        "a__b.c/foo:1",
        "Foo_bar/x",
        "foo.bar_baz:1/x",
        "-a.b/x",
        "a..b/x",
        "[::1]x/y",
        "[::1]:/y",
        "a:1:2/b",
        "docker.io//x",
        "/x",
        "x/",
        "x@",
        "x:@sha256:aa",
        "x:t@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "UPPER.example.com/x",
        "localhost:5000",
        "index.docker.io",
        "index.docker.io/x/y",
    ] {
        agrees_with_oracle(input);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

    /// Random references over the characters that matter to the grammar.
    #[test]
    fn agrees_with_the_library_regexps(
        input in "[a-cA-C0-9._:/@\\[\\]-]{0,24}(sha256:[0-9a-f]{64})?"
    ) {
        agrees_with_oracle(&input);
    }

    /// Near-valid references: hosts, ports, paths, tags and digests in their places.
    #[test]
    fn agrees_on_near_valid_references(
        host in "(localhost|index\\.docker\\.io|docker\\.io|[a-z]{1,3}(\\.[a-z_]{1,3})?|\\[[0-9a-f:]{1,6}\\]|[A-Z]{1,3})(:[0-9]{1,4})?",
        path in "[a-z0-9][a-z0-9._-]{0,6}(/[a-z0-9][a-z0-9._-]{0,6}){0,2}",
        tag in "(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,5})?",
        digest in "(@sha256:[0-9a-f]{64})?",
        with_host in proptest::bool::ANY,
    ) {
        let input = if with_host {
            format!("{host}/{path}{tag}{digest}")
        } else {
            format!("{path}{tag}{digest}")
        };
        agrees_with_oracle(&input);
    }
}

#[test]
fn globs_that_can_never_match_are_named() {
    for never in [
        "nginx",
        "library/nginx:*",
        "team/app*",
        "index.docker.io/library/*",
        "docker.io/nginx:*",
        "docker.io/nginx",
        "docker.io/nginx@sha256:*",
    ] {
        assert!(unmatchable_glob(never).is_some(), "{never}");
    }
    for fine in [
        "docker.io/library/*",
        "docker.io/*",
        "docker.io/nginx/*",
        "docker.io/ngin*",
        "registry.k8s.io/pause:*",
        "localhost/*",
        "127.0.0.1:5000/team/*",
        "*",
        "*/nginx:*",
        "nginx:*",
        "ghcr.io/acme/*",
    ] {
        assert_eq!(unmatchable_glob(fine), None, "{fine}");
    }
    let why = unmatchable_glob("library/nginx:1.27").unwrap();
    assert!(why.contains("\"docker.io/library/nginx:1.27\""), "{why}");
}
