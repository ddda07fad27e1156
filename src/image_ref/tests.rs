//! The test tables of github.com/distribution/reference (commit 0965666, files
//! normalize_test.go and reference_test.go), run through [`parse`], and a differential test
//! against the library's own regular expressions (regexp.go) with its normalization steps.

use super::*;

const D: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

fn canonical(image: &str) -> String {
    match parse(image) {
        Ok(r) => r.as_str().to_owned(),
        Err(e) => panic!("{image:?} should parse: {e}"),
    }
}

/// normalize_test.go, TestValidateReferenceName.
#[test]
fn upstream_valid_and_invalid_reference_names() {
    let valid = [
        "docker/docker",
        "library/debian",
        "debian",
        "localhost/library/debian",
        "localhost/debian",
        "LOCALDOMAIN/library/debian",
        "LOCALDOMAIN/debian",
        "docker.io/docker/docker",
        "docker.io/library/debian",
        "docker.io/debian",
        "index.docker.io/docker/docker",
        "index.docker.io/library/debian",
        "index.docker.io/debian",
        "127.0.0.1:5000/docker/docker",
        "127.0.0.1:5000/library/debian",
        "127.0.0.1:5000/debian",
        "192.168.0.1",
        "192.168.0.1:80",
        "192.168.0.1:8/debian",
        "192.168.0.2:25000/debian",
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "[fc00::1]:5000/docker",
        "[fc00::1]:5000/docker/docker",
        "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
        "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
        "Docker/docker",
        "DOCKER/docker",
    ];
    let invalid = [
        "https://github.com/docker/docker",
        "docker/Docker",
        "-docker",
        "-docker/docker",
        "-docker.io/docker/docker",
        "docker///docker",
        "docker.io/docker/Docker",
        "docker.io/docker///docker",
        "[fc00::1]",
        "[fc00::1]:5000",
        "fc00::1:5000/debian",
        "[fe80::1%eth0]:5000/debian",
        "[2001:db8:3:4::192.0.2.33]:5000/debian",
        "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
    ];
    for name in valid {
        assert!(parse(name).is_ok(), "{name:?}: {:?}", parse(name));
    }
    for name in invalid {
        assert!(parse(name).is_err(), "{name:?} parsed as {:?}", parse(name));
    }
}

/// normalize_test.go, TestValidateRemoteName.
#[test]
fn upstream_remote_names() {
    let valid = [
        "docker/docker",
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "docker-rules/docker",
        "docker---rules/docker",
        "doc/docker",
        "d/docker",
        "jess/t",
        "dock__er/docker",
    ];
    let too_long = format!(
        "{}/docker",
        ["this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255"; 4].join("_")
    );
    let invalid = [
        "docker/Docker",
        "docker///docker",
        "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
        "-docker/docker",
        "docker-/docker",
        "-docker-/docker",
        "____/____",
        "_docker/_docker",
        "dock..er/docker",
        "dock_.er/docker",
        "dock-.er/docker",
        "docker/",
        too_long.as_str(),
    ];
    for name in valid {
        assert!(parse(name).is_ok(), "{name:?}: {:?}", parse(name));
    }
    for name in invalid {
        assert!(parse(name).is_err(), "{name:?} parsed as {:?}", parse(name));
    }
    assert_eq!(parse(&too_long), Err(RefError::NameTooLong));
}

/// normalize_test.go, TestParseRepositoryInfo: every spelling (familiar, full, ambiguous)
/// gives the full name, domain and path.
#[test]
fn upstream_repository_info() {
    // (remote name, familiar, full, ambiguous, domain)
    let cases = [
        (
            "fooo",
            "localhost/fooo",
            "localhost/fooo",
            "localhost/fooo",
            "localhost",
        ),
        (
            "fooo/bar",
            "localhost/fooo/bar",
            "localhost/fooo/bar",
            "localhost/fooo/bar",
            "localhost",
        ),
        (
            "fooo",
            "LOCALDOMAIN/fooo",
            "LOCALDOMAIN/fooo",
            "LOCALDOMAIN/fooo",
            "LOCALDOMAIN",
        ),
        (
            "fooo/bar",
            "LOCALDOMAIN/fooo/bar",
            "LOCALDOMAIN/fooo/bar",
            "LOCALDOMAIN/fooo/bar",
            "LOCALDOMAIN",
        ),
        (
            "fooo/bar",
            "fooo/bar",
            "docker.io/fooo/bar",
            "index.docker.io/fooo/bar",
            "docker.io",
        ),
        (
            "library/ubuntu",
            "ubuntu",
            "docker.io/library/ubuntu",
            "library/ubuntu",
            "docker.io",
        ),
        (
            "nonlibrary/ubuntu",
            "nonlibrary/ubuntu",
            "docker.io/nonlibrary/ubuntu",
            "",
            "docker.io",
        ),
        (
            "other/library",
            "other/library",
            "docker.io/other/library",
            "",
            "docker.io",
        ),
        (
            "private/moonbase",
            "127.0.0.1:8000/private/moonbase",
            "127.0.0.1:8000/private/moonbase",
            "",
            "127.0.0.1:8000",
        ),
        (
            "privatebase",
            "127.0.0.1:8000/privatebase",
            "127.0.0.1:8000/privatebase",
            "",
            "127.0.0.1:8000",
        ),
        (
            "private/moonbase",
            "example.com/private/moonbase",
            "example.com/private/moonbase",
            "",
            "example.com",
        ),
        (
            "privatebase",
            "example.com/privatebase",
            "example.com/privatebase",
            "",
            "example.com",
        ),
        (
            "private/moonbase",
            "example.com:8000/private/moonbase",
            "example.com:8000/private/moonbase",
            "",
            "example.com:8000",
        ),
        (
            "privatebasee",
            "example.com:8000/privatebasee",
            "example.com:8000/privatebasee",
            "",
            "example.com:8000",
        ),
        (
            "library/ubuntu-12.04-base",
            "ubuntu-12.04-base",
            "docker.io/library/ubuntu-12.04-base",
            "index.docker.io/library/ubuntu-12.04-base",
            "docker.io",
        ),
        (
            "library/foo",
            "foo",
            "docker.io/library/foo",
            "docker.io/foo",
            "docker.io",
        ),
        (
            "library/foo/bar",
            "library/foo/bar",
            "docker.io/library/foo/bar",
            "",
            "docker.io",
        ),
        (
            "store/foo/bar",
            "store/foo/bar",
            "docker.io/store/foo/bar",
            "",
            "docker.io",
        ),
        ("bar", "Foo/bar", "Foo/bar", "", "Foo"),
        ("bar", "FOO/bar", "FOO/bar", "", "FOO"),
    ];
    for (remote, familiar, full, ambiguous, domain) in cases {
        for spelling in [familiar, full, ambiguous] {
            if spelling.is_empty() {
                continue;
            }
            let r = parse(spelling).unwrap_or_else(|e| panic!("{spelling}: {e}"));
            assert_eq!(r.name(), full, "{spelling}");
            assert_eq!(r.domain(), domain, "{spelling}");
            assert_eq!(r.path(), remote, "{spelling}");
            assert_eq!(r.as_str(), format!("{full}:latest"), "{spelling}");
        }
    }
}

/// normalize_test.go, TestParseReferenceWithTagAndDigest: both are kept.
#[test]
fn upstream_tag_and_digest_are_both_kept() {
    let short =
        "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";
    let r = parse(short).unwrap();
    assert_eq!(r.as_str(), format!("docker.io/library/{short}"));
    assert_eq!(r.tag(), Some("latest"));
    assert_eq!(
        r.digest(),
        Some("sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa")
    );
    assert_eq!(r.name(), "docker.io/library/busybox");
}

/// normalize_test.go, TestNormalizedSplitHostname and TestParseAnyReference (named cases), and
/// TestParseDockerRef where it does not drop a tag (TagNameOnly keeps tag and digest).
#[test]
fn upstream_normalized_names() {
    let split = [
        ("test.com/foo", "test.com", "foo"),
        ("test_com/foo", "docker.io", "test_com/foo"),
        ("docker/migrator", "docker.io", "docker/migrator"),
        ("test.com:8080/foo", "test.com:8080", "foo"),
        ("test-com:8080/foo", "test-com:8080", "foo"),
        ("foo", "docker.io", "library/foo"),
        ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
        ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
        ("docker.io/foo", "docker.io", "library/foo"),
        ("docker.io/library/foo", "docker.io", "library/foo"),
        ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
    ];
    for (input, domain, path) in split {
        let r = parse(input).unwrap();
        assert_eq!((r.domain(), r.path()), (domain, path), "{input}");
    }
    let dbcc = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";
    let any = [
        ("redis", "docker.io/library/redis:latest".to_owned()),
        ("redis:latest", "docker.io/library/redis:latest".to_owned()),
        ("docker.io/library/redis:latest", "docker.io/library/redis:latest".to_owned()),
        ("dmcgowan/myapp", "docker.io/dmcgowan/myapp:latest".to_owned()),
        ("dmcgowan/myapp:latest", "docker.io/dmcgowan/myapp:latest".to_owned()),
        ("docker.io/mcgowan/myapp:latest", "docker.io/mcgowan/myapp:latest".to_owned()),
        (
            "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9",
            "docker.io/library/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9:latest".to_owned(),
        ),
        ("dbcc1", "docker.io/library/dbcc1:latest".to_owned()),
    ];
    for (input, expected) in any {
        assert_eq!(canonical(input), expected, "{input}");
    }
    for (input, expected) in [
        ("redis@", "docker.io/library/redis@"),
        ("docker.io/library/redis@", "docker.io/library/redis@"),
        ("dmcgowan/myapp@", "docker.io/dmcgowan/myapp@"),
        ("docker.io/dmcgowan/myapp@", "docker.io/dmcgowan/myapp@"),
    ] {
        let input = format!("{input}{dbcc}");
        assert_eq!(canonical(&input), format!("{expected}{dbcc}"), "{input}");
    }
    let e669 = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582";
    let docker_ref = [
        ("busybox", "docker.io/library/busybox:latest".to_owned()),
        (
            "busybox:latest",
            "docker.io/library/busybox:latest".to_owned(),
        ),
        (
            &*format!("busybox@{e669}"),
            format!("docker.io/library/busybox@{e669}"),
        ),
        (
            "library/busybox",
            "docker.io/library/busybox:latest".to_owned(),
        ),
        (
            "docker.io/busybox",
            "docker.io/library/busybox:latest".to_owned(),
        ),
        (
            "docker.io/library/busybox",
            "docker.io/library/busybox:latest".to_owned(),
        ),
        (
            "docker.io/busybox:latest",
            "docker.io/library/busybox:latest".to_owned(),
        ),
        (
            "library/busybox:latest",
            "docker.io/library/busybox:latest".to_owned(),
        ),
        (
            "docker.io/library/busybox:latest",
            "docker.io/library/busybox:latest".to_owned(),
        ),
        (
            "gcr.io/library/busybox",
            "gcr.io/library/busybox:latest".to_owned(),
        ),
    ];
    for (input, expected) in docker_ref {
        assert_eq!(canonical(input), expected, "{input}");
    }
}

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

/// The spellings of issue 18: all are the one Docker Hub image.
#[test]
fn docker_hub_spellings_are_one_reference() {
    for spelling in [
        "nginx:1.27",
        "library/nginx:1.27",
        "docker.io/library/nginx:1.27",
        "docker.io/nginx:1.27",
        "index.docker.io/library/nginx:1.27",
        "index.docker.io/nginx:1.27",
    ] {
        assert_eq!(
            canonical(spelling),
            "docker.io/library/nginx:1.27",
            "{spelling}"
        );
    }
    for spelling in [
        "nginx",
        "docker.io/nginx",
        "index.docker.io/nginx",
        "library/nginx",
    ] {
        assert_eq!(
            canonical(spelling),
            "docker.io/library/nginx:latest",
            "{spelling}"
        );
    }
    // Hosts the library does not know are other registries.
    assert_eq!(
        canonical("registry-1.docker.io/library/nginx:1.27"),
        "registry-1.docker.io/library/nginx:1.27"
    );
    assert_eq!(canonical("DOCKER.IO/nginx"), "DOCKER.IO/nginx:latest");
    assert_eq!(
        canonical("docker.io:443/nginx"),
        "docker.io:443/nginx:latest"
    );
    // localhost is a host; a bare "localhost" is a Docker Hub name.
    assert_eq!(canonical("localhost/app"), "localhost/app:latest");
    assert_eq!(canonical("localhost:5000/app"), "localhost:5000/app:latest");
    assert_eq!(canonical("localhost"), "docker.io/library/localhost:latest");
    // A first segment with a '.' that is no host reads as a path: no domain.
    let odd = parse("a_b.c/foo").unwrap();
    assert_eq!(
        (odd.as_str(), odd.domain(), odd.path()),
        ("a_b.c/foo:latest", "", "a_b.c/foo")
    );
    for bad in [
        "NGINX",
        "nginx:",
        "nginx@sha256:abc",
        " nginx",
        "nginx ",
        "docker.io/Library/nginx",
        "nginx:1.27\n",
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn canonical_text_is_borrowed_and_pinning_keeps_the_tag() {
    let r = parse("registry.example.com/team/app:v1").unwrap();
    assert!(r.is_borrowed());
    assert_eq!(r.pinned(D), format!("registry.example.com/team/app:v1@{D}"));
    let r = parse("nginx").unwrap();
    assert!(!r.is_borrowed());
    assert_eq!(r.pinned(D), format!("docker.io/library/nginx:latest@{D}"));
    let other = format!("sha256:{}", "a".repeat(64));
    let text = format!("nginx:1@{D}");
    let r = parse(&text).unwrap();
    assert_eq!(
        r.pinned(&other),
        format!("docker.io/library/nginx:1@{other}")
    );
}

/// The library's grammar, as its regexp.go builds it, with ParseNormalizedNamed's steps
/// around it: an oracle for any input.
mod oracle {
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
    assert_eq!(ours, oracle::normalize(input), "{input:?}");
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
