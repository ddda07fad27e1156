use super::*;
use crate::images::Rejection;

use crate::policy::Check;

#[test]
fn params_name_the_field_they_refuse() {
    let compile = |yaml: &str| {
        let doc: ParamsDoc = serde_saphyr::from_str(yaml).unwrap();
        Params::compile(doc, 0).map(|_| ()).unwrap_err()
    };
    let e = compile("rules: []");
    assert_eq!(e.field, "spec.params.rules");
    let e = compile("rules: [{images: ['*']}]");
    assert!(e.message.contains("needs a trust"), "{}", e.message);
    let e = compile("rules: [{images: ['*'], keys: ['not a key']}]");
    assert_eq!(e.field, "spec.params.rules[0].keys[0]");
    let e = compile(
        "rules: [{images: ['*'], keyless: {trustedRoot: /nonexistent/root.json, identities: []}}]",
    );
    assert_eq!(e.field, "spec.params.rules[0].keyless.trustedRoot");
    assert!(e.message.contains("cannot read"), "{}", e.message);
    let e = compile(
        "rules: [{images: ['*'], keys: [x], keyless: {trustedRoot: /r.json, identities: []}}]",
    );
    assert!(
        e.message.contains("one trust model per rule"),
        "{}",
        e.message
    );
    let e = compile(
        "rules: [{images: ['*'], notation: {trustStore: [/nonexistent/ca.pem], trustedIdentities: ['*']}}]",
    );
    assert_eq!(e.field, "spec.params.rules[0].notation.trustStore");
    let e = compile(
        "rules: [{images: ['*'], notation: {trustStore: [/ca.pem], trustedIdentities: ['CN=x']}}]",
    );
    assert_eq!(
        e.field,
        "spec.params.rules[0].notation.trustedIdentities[0]"
    );
    let e = compile("rules: [{images: ['*'], notation: {trustedIdentities: ['*']}}]");
    assert_eq!(e.field, "spec.params.rules[0].notation.trustStore");
    assert!(e.message.contains("signingAuthorityStore"), "{}", e.message);
    let e = compile(
        "rules: [{images: ['*'], notation: {signingAuthorityStore: [/nonexistent/sa.pem], trustedIdentities: ['*']}}]",
    );
    assert!(e.message.contains("/nonexistent/sa.pem"), "{}", e.message);
    let e = compile(
        "rules: [{images: ['*'], notation: {trustStore: [/ca.pem], trustedIdentities: ['x509.subject: C=US', '*']}}]",
    );
    assert_eq!(
        e.field,
        "spec.params.rules[0].notation.trustedIdentities[1]"
    );
    let e = compile(
        "rules: [{images: ['*'], notation: {trustStore: [/ca.pem], trustedIdentities: ['x509.subject: C=US, ST=WA, O=Acme, OU=Finance', 'x509.subject: S=WA, O=Acme, C=US']}}]",
    );
    assert_eq!(
        e.field,
        "spec.params.rules[0].notation.trustedIdentities[0]"
    );
    assert!(
        e.message.contains("overlaps trustedIdentities[1]"),
        "{}",
        e.message
    );
    let e = compile("rules: [{images: ['*'], keyFiles: [/nonexistent/cosign.pub]}]");
    assert!(e.message.contains("cannot read"), "{}", e.message);
    let e = compile("timeout: soon\nrules: [{images: ['*'], keys: [x]}]");
    assert_eq!(e.field, "spec.params.timeout");
}

/// Verdicts from a table, for the check alone: (canonical reference, verdict).
struct Table {
    verdicts: Vec<(String, ImageVerdict)>,
    before_mutation: bool,
    running: Vec<(String, String)>,
}

impl ImageVerdicts for Table {
    fn verdict(&self, _: &Arc<Requirement>, reference: &str) -> Option<Arc<ImageVerdict>> {
        self.verdicts
            .iter()
            .find(|(r, _)| r == reference)
            .map(|(_, v)| Arc::new(v.clone()))
    }
    fn before_mutation(&self) -> bool {
        self.before_mutation
    }
    fn running_digest(&self, container: &str) -> Option<&str> {
        self.running
            .iter()
            .find(|(c, _)| c == container)
            .map(|(_, d)| d.as_str())
    }
}

const KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEA9oFvTJJuu0cszKBsiuqfFYN3NLV
meleaASYW5l+nqDxoUg4f8177owlgVD89pZQ9jUxP8dbibmDJpvcjBo9RQ==
-----END PUBLIC KEY-----";

fn set(params: &str) -> crate::policy::PolicySet {
    let key: String = KEY.lines().map(|l| format!("\n        {l}")).collect();
    crate::policy::testing::policy_set(&format!(
        "check: signed-images\nparams:\n  rules:\n    - images: [\"docker.io/library/*\"]\n      keys:\n      - |{key}\n{params}"
    ))
}

fn verified(digest: &str) -> ImageVerdict {
    ImageVerdict::Verified {
        digest: digest.to_owned(),
        key: "k".into(),
    }
}

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// The messages the check gives for a pod with these images.
fn judge(set: &crate::policy::PolicySet, images: &[&str], table: &Table) -> Vec<String> {
    let containers: Vec<serde_json::Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| serde_json::json!({"name": format!("c{i}"), "image": image}))
        .collect();
    let json = serde_json::json!({"spec": {"containers": containers}}).to_string();
    let workload = crate::pod::decode_workload(crate::pod::WorkloadKind::Pod, &json).unwrap();
    let pod = workload.pod().unwrap();
    let mut out = Vec::new();
    for (index, policy) in set.policies().iter().enumerate() {
        let request = crate::engine::Request::new(crate::pod::WorkloadKind::Pod, "default", None);
        policy.check.evaluate(
            pod,
            &request,
            table,
            &mut Sink::new(policy, index, &mut out),
        );
    }
    out.iter()
        .map(|v| format!("{} {}", v.mode.as_str(), v.message("spec")))
        .collect()
}

fn table(verdicts: &[(&str, ImageVerdict)]) -> Table {
    Table {
        verdicts: verdicts
            .iter()
            .map(|(r, v)| ((*r).to_owned(), v.clone()))
            .collect(),
        before_mutation: false,
        running: Vec::new(),
    }
}

#[test]
fn every_spelling_is_judged_under_its_canonical_name() {
    let set = set("  requireDigest: false");
    let t = table(&[
        ("docker.io/library/nginx:1.27", verified(D1)),
        (
            "docker.io/library/evil:1",
            ImageVerdict::Rejected {
                digest: Some(D2.into()),
                rejection: Rejection::NoSignature {
                    looked_for: "cosign signature",
                },
            },
        ),
    ]);
    for spelling in [
        "nginx:1.27",
        "docker.io/nginx:1.27",
        "index.docker.io/library/nginx:1.27",
        "index.docker.io/nginx:1.27",
    ] {
        assert!(judge(&set, &[spelling], &t).is_empty(), "{spelling}");
    }
    for spelling in ["evil:1", "docker.io/evil:1", "index.docker.io/evil:1"] {
        let got = judge(&set, &[spelling], &t);
        assert_eq!(got.len(), 1, "{spelling}: {got:?}");
        assert!(
            got[0].contains("image docker.io/library/evil:1 (sha256:2222"),
            "{got:?}"
        );
    }
    // A rule's globs are canonical: a host it does not name is another image.
    assert!(judge(&set, &["registry-1.docker.io/library/evil:1"], &t).is_empty());
}

#[test]
fn a_text_that_is_no_reference_is_denied_whatever_the_rules() {
    let set = set("  requireDigest: false");
    let t = table(&[]);
    for bad in [
        "NGINX:1.27",
        "nginx:1.27 ",
        "nginx@sha256:abc",
        "docker.io/library/x:",
    ] {
        let got = judge(&set, &[bad], &t);
        assert_eq!(got.len(), 1, "{bad}: {got:?}");
        assert!(got[0].starts_with("enforce "), "{got:?}");
        assert!(got[0].contains("is not a valid image reference"), "{got:?}");
    }
}

#[test]
fn unmatched_images_deny_turns_the_rules_into_an_allow_list() {
    let t = table(&[("docker.io/library/nginx:1.27", verified(D1))]);
    let open = set("  requireDigest: false");
    assert!(judge(&open, &["quay.io/x/y:1"], &t).is_empty());
    let closed = set("  requireDigest: false\n  unmatchedImages: deny");
    let got = judge(&closed, &["quay.io/x/y:1", "nginx:1.27"], &t);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("quay.io/x/y:1 is judged by no rule"),
        "{got:?}"
    );
}

#[test]
fn require_digest_follows_mutate_digest_and_the_pass() {
    let pinned = format!("docker.io/library/nginx:1.27@{D1}");
    let t = table(&[
        ("docker.io/library/nginx:1.27", verified(D1)),
        (pinned.as_str(), verified(D1)),
    ]);
    // Defaults: mutateDigest and requireDigest on. At /validate a tag is refused...
    let defaults = set("");
    let got = judge(&defaults, &["nginx:1.27"], &t);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("is not pinned to a digest"), "{got:?}");
    // ...a pinned reference is not...
    assert!(judge(&defaults, &[&pinned], &t).is_empty());
    // ...and offline, where /mutate has not run yet, the tag counts as pinned.
    let offline = Table {
        before_mutation: true,
        ..table(&[("docker.io/library/nginx:1.27", verified(D1))])
    };
    assert!(judge(&defaults, &["nginx:1.27"], &offline).is_empty());
    // Without mutation, nothing would pin it: offline says so too.
    let no_mutation = set("  mutateDigest: false\n  requireDigest: true");
    assert_eq!(judge(&no_mutation, &["nginx:1.27"], &offline).len(), 1);
    let neither = set("  mutateDigest: false");
    assert!(judge(&neither, &["nginx:1.27"], &t).is_empty());
    // A rejection speaks for itself; the missing digest is not piled on it.
    let rejected = table(&[(
        "docker.io/library/nginx:1.27",
        ImageVerdict::Rejected {
            digest: Some(D1.into()),
            rejection: Rejection::NoSignature {
                looked_for: "cosign signature",
            },
        },
    )]);
    let got = judge(&defaults, &["nginx:1.27"], &rejected);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("has no cosign signature"), "{got:?}");
}

#[test]
fn a_running_digest_is_what_is_verified() {
    let set = set("");
    let t = Table {
        before_mutation: true,
        running: vec![("c0".into(), D2.into())],
        ..table(&[
            ("docker.io/library/nginx:1.27", verified(D1)),
            (
                &format!("docker.io/library/nginx:1.27@{D2}"),
                ImageVerdict::Rejected {
                    digest: Some(D2.into()),
                    rejection: Rejection::NoSignature {
                        looked_for: "cosign signature",
                    },
                },
            ),
        ])
    };
    let got = judge(&set, &["nginx:1.27"], &t);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("the digest it runs"), "{got:?}");
    assert!(got[0].contains(D2), "{got:?}");
}

#[test]
fn pins_in_canonical_form_and_refuses_bad_mirrors() {
    let set = set("");
    let policy = &set.policies()[0];
    let Check::SignedImages(params) = &policy.check else {
        panic!()
    };
    let t = table(&[("docker.io/library/nginx:1.27", verified(D1))]);
    let mut spec: Object = serde_json::from_str(
        r#"{"containers":[{"name":"a","image":"index.docker.io/nginx:1.27"},{"name":"b","image":"Bad Image"}]}"#,
    )
    .unwrap();
    assert!(pin_digests(params, &policy.selector, &mut spec, &t));
    assert_eq!(
        spec["containers"][0]["image"],
        format!("docker.io/library/nginx:1.27@{D1}")
    );
    assert_eq!(spec["containers"][1]["image"], "Bad Image");

    let compile = |yaml: &str| {
        let doc: ParamsDoc = serde_saphyr::from_str(yaml).unwrap();
        Params::compile(doc, 0).map(|_| ()).unwrap_err()
    };
    let e = compile(
        "registryMirrors: {index.docker.io: m.example.com}\nrules: [{images: ['*'], keys: [x]}]",
    );
    assert!(
        e.field.starts_with("spec.params.registryMirrors"),
        "{}",
        e.field
    );
    let e =
        compile("registryMirrors: {docker.io: 'http://m'}\nrules: [{images: ['*'], keys: [x]}]");
    assert!(e.message.contains("not a registry host"), "{}", e.message);
    let e = compile("rules: [{images: ['library/nginx:*'], keys: [x]}]");
    assert_eq!(e.field, "spec.params.rules[0].images", "{}", e.message);
}
