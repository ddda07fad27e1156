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
