//! reference_test.go's TestReferenceParse table (github.com/distribution/reference, commit
//! 0965666), run through [`parse`]: normalization adds `docker.io/library/` and `:latest`
//! where the library's `ParseNormalizedNamed` and `TagNameOnly` add them.

use super::*;

const D: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

/// (input, canonical, domain, name, tag, digest)
type Expected = (
    String,
    String,
    &'static str,
    String,
    Option<&'static str>,
    Option<&'static str>,
);

/// reference_test.go, TestReferenceParse: the cases whose verdict normalization does not
/// change (an explicit host, or an error either way), and the single-segment ones with the
/// `docker.io/library/` normalization puts in front.
#[test]
fn upstream_reference_parse_table() {
    let long_path = format!("{}a", "a/".repeat(127));
    // (input, canonical, domain, name, tag, digest)
    let ok: Vec<Expected> = vec![
        (
            "test_com".into(),
            "docker.io/library/test_com:latest".into(),
            "docker.io",
            "docker.io/library/test_com".into(),
            Some("latest"),
            None,
        ),
        (
            "test.com:tag".into(),
            "docker.io/library/test.com:tag".into(),
            "docker.io",
            "docker.io/library/test.com".into(),
            Some("tag"),
            None,
        ),
        (
            "test.com:5000".into(),
            "docker.io/library/test.com:5000".into(),
            "docker.io",
            "docker.io/library/test.com".into(),
            Some("5000"),
            None,
        ),
        (
            "test.com/repo:tag".into(),
            "test.com/repo:tag".into(),
            "test.com",
            "test.com/repo".into(),
            Some("tag"),
            None,
        ),
        (
            "test:5000/repo".into(),
            "test:5000/repo:latest".into(),
            "test:5000",
            "test:5000/repo".into(),
            Some("latest"),
            None,
        ),
        (
            "test:5000/repo:tag".into(),
            "test:5000/repo:tag".into(),
            "test:5000",
            "test:5000/repo".into(),
            Some("tag"),
            None,
        ),
        (
            format!("test:5000/repo@{D}"),
            format!("test:5000/repo@{D}"),
            "test:5000",
            "test:5000/repo".into(),
            None,
            Some(D),
        ),
        (
            format!("test:5000/repo:tag@{D}"),
            format!("test:5000/repo:tag@{D}"),
            "test:5000",
            "test:5000/repo".into(),
            Some("tag"),
            Some(D),
        ),
        (
            "lowercase:Uppercase".into(),
            "docker.io/library/lowercase:Uppercase".into(),
            "docker.io",
            "docker.io/library/lowercase".into(),
            Some("Uppercase"),
            None,
        ),
        (
            format!("{long_path}:tag-puts-this-over-max"),
            format!("docker.io/{long_path}:tag-puts-this-over-max"),
            "docker.io",
            format!("docker.io/{long_path}"),
            Some("tag-puts-this-over-max"),
            None,
        ),
        (
            "sub-dom1.foo.com/bar/baz/quux".into(),
            "sub-dom1.foo.com/bar/baz/quux:latest".into(),
            "sub-dom1.foo.com",
            "sub-dom1.foo.com/bar/baz/quux".into(),
            Some("latest"),
            None,
        ),
        (
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag".into(),
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag".into(),
            "sub-dom1.foo.com",
            "sub-dom1.foo.com/bar/baz/quux".into(),
            Some("some-long-tag"),
            None,
        ),
        (
            "b.gcr.io/test.example.com/my-app:test.example.com".into(),
            "b.gcr.io/test.example.com/my-app:test.example.com".into(),
            "b.gcr.io",
            "b.gcr.io/test.example.com/my-app".into(),
            Some("test.example.com"),
            None,
        ),
        (
            "xn--n3h.com/myimage:xn--n3h.com".into(),
            "xn--n3h.com/myimage:xn--n3h.com".into(),
            "xn--n3h.com",
            "xn--n3h.com/myimage".into(),
            Some("xn--n3h.com"),
            None,
        ),
        (
            format!("xn--7o8h.com/myimage:xn--7o8h.com@{D}"),
            format!("xn--7o8h.com/myimage:xn--7o8h.com@{D}"),
            "xn--7o8h.com",
            "xn--7o8h.com/myimage".into(),
            Some("xn--7o8h.com"),
            Some(D),
        ),
        (
            "foo_bar.com:8080".into(),
            "docker.io/library/foo_bar.com:8080".into(),
            "docker.io",
            "docker.io/library/foo_bar.com".into(),
            Some("8080"),
            None,
        ),
        (
            "foo/foo_bar.com:8080".into(),
            "docker.io/foo/foo_bar.com:8080".into(),
            "docker.io",
            "docker.io/foo/foo_bar.com".into(),
            Some("8080"),
            None,
        ),
        (
            "192.168.1.1".into(),
            "docker.io/library/192.168.1.1:latest".into(),
            "docker.io",
            "docker.io/library/192.168.1.1".into(),
            Some("latest"),
            None,
        ),
        (
            "192.168.1.1:tag".into(),
            "docker.io/library/192.168.1.1:tag".into(),
            "docker.io",
            "docker.io/library/192.168.1.1".into(),
            Some("tag"),
            None,
        ),
        (
            "192.168.1.1:5000".into(),
            "docker.io/library/192.168.1.1:5000".into(),
            "docker.io",
            "docker.io/library/192.168.1.1".into(),
            Some("5000"),
            None,
        ),
        (
            "192.168.1.1/repo".into(),
            "192.168.1.1/repo:latest".into(),
            "192.168.1.1",
            "192.168.1.1/repo".into(),
            Some("latest"),
            None,
        ),
        (
            "192.168.1.1:5000/repo".into(),
            "192.168.1.1:5000/repo:latest".into(),
            "192.168.1.1:5000",
            "192.168.1.1:5000/repo".into(),
            Some("latest"),
            None,
        ),
        (
            "192.168.1.1:5000/repo:5050".into(),
            "192.168.1.1:5000/repo:5050".into(),
            "192.168.1.1:5000",
            "192.168.1.1:5000/repo".into(),
            Some("5050"),
            None,
        ),
        (
            "[2001:db8::1]/repo".into(),
            "[2001:db8::1]/repo:latest".into(),
            "[2001:db8::1]",
            "[2001:db8::1]/repo".into(),
            Some("latest"),
            None,
        ),
        (
            "[2001:db8:1:2:3:4:5:6]/repo:tag".into(),
            "[2001:db8:1:2:3:4:5:6]/repo:tag".into(),
            "[2001:db8:1:2:3:4:5:6]",
            "[2001:db8:1:2:3:4:5:6]/repo".into(),
            Some("tag"),
            None,
        ),
        (
            "[2001:db8::1]:5000/repo".into(),
            "[2001:db8::1]:5000/repo:latest".into(),
            "[2001:db8::1]:5000",
            "[2001:db8::1]:5000/repo".into(),
            Some("latest"),
            None,
        ),
        (
            "[2001:db8::1]:5000/repo:tag".into(),
            "[2001:db8::1]:5000/repo:tag".into(),
            "[2001:db8::1]:5000",
            "[2001:db8::1]:5000/repo".into(),
            Some("tag"),
            None,
        ),
        (
            format!("[2001:db8::1]:5000/repo@{D}"),
            format!("[2001:db8::1]:5000/repo@{D}"),
            "[2001:db8::1]:5000",
            "[2001:db8::1]:5000/repo".into(),
            None,
            Some(D),
        ),
        (
            format!("[2001:db8::1]:5000/repo:tag@{D}"),
            format!("[2001:db8::1]:5000/repo:tag@{D}"),
            "[2001:db8::1]:5000",
            "[2001:db8::1]:5000/repo".into(),
            Some("tag"),
            Some(D),
        ),
        (
            "[2001:db8::]:5000/repo".into(),
            "[2001:db8::]:5000/repo:latest".into(),
            "[2001:db8::]:5000",
            "[2001:db8::]:5000/repo".into(),
            Some("latest"),
            None,
        ),
        (
            "[::1]:5000/repo".into(),
            "[::1]:5000/repo:latest".into(),
            "[::1]:5000",
            "[::1]:5000/repo".into(),
            Some("latest"),
            None,
        ),
        (
            format!("example.com/{}:tag", "a".repeat(255)),
            format!("example.com/{}:tag", "a".repeat(255)),
            "example.com",
            format!("example.com/{}", "a".repeat(255)),
            Some("tag"),
            None,
        ),
    ];
    for (input, canonical, domain, name, tag, digest) in &ok {
        let r = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.as_str(), canonical, "{input}");
        assert_eq!(r.domain(), *domain, "{input}");
        assert_eq!(r.name(), name, "{input}");
        assert_eq!(r.tag(), *tag, "{input}");
        assert_eq!(r.digest(), *digest, "{input}");
        assert_eq!(r.is_borrowed(), input == canonical, "{input}");
    }
    let sha512 = format!("validname@sha512:{}", "f".repeat(128));
    let errors: Vec<(String, Option<RefError>)> = vec![
        (String::new(), None),
        (":justtag".into(), None),
        (format!("@{D}"), None),
        (
            "repo@sha256:ffffffffffffffffffffffffffffffffff".into(),
            Some(RefError::DigestLength),
        ),
        (
            format!("validname@invaliddigest:{}", "f".repeat(64)),
            Some(RefError::DigestUnsupported),
        ),
        ("Uppercase:tag".into(), None),
        ("test:5000/Uppercase/lowercase:tag".into(), None),
        (
            format!("domain/{}:tag", "a".repeat(256)),
            Some(RefError::NameTooLong),
        ),
        ("aa/asdf$$^/aa".into(), Some(RefError::InvalidFormat)),
        ("[2001:db8::1]".into(), None),
        ("[2001:db8::1]:5000".into(), None),
        ("[2001:db8::1]:tag".into(), None),
        (
            "[fe80::1%eth0]:5000/repo".into(),
            Some(RefError::InvalidFormat),
        ),
        ("[fe80::1%@invalidzone]:5000/repo".into(), None),
    ];
    for (input, expected) in &errors {
        match (parse(input), expected) {
            (Ok(r), _) => panic!("{input:?} should not parse, got {r}"),
            (Err(e), Some(expected)) => assert_eq!(&e, expected, "{input:?}"),
            (Err(_), None) => {}
        }
    }
    // containerd registers sha512 (the upstream table's process does not): a valid digest here.
    assert!(parse(&sha512).is_ok());
}
