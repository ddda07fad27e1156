//! CEL at `/validate`, bytes in to bytes out, on the ~8 KB Deployment review
//! (`tests/fixtures/review-deployment-8k.json`, allowed): a ValidatingAdmissionPolicy of one
//! expression and one of ten validations, alone and added to the shipped policy set, beside
//! the shipped set alone. What CEL adds to a review is the difference: the review is indexed
//! for expressions, which decode the objects they read, then each expression runs over it.
//! Budget: the ten validations add at most 25 µs per review.

mod common;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use portier::admission::{self, Endpoint};
use portier::policy::PolicySet;

const BINDING: &str = r#"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: bench}
spec: {policyName: bench, validationActions: [Deny]}
"#;

const HEAD: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: bench}
spec:
  matchConstraints:
    resourceRules:
      - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}
"#;

fn one_expression() -> String {
    format!("{HEAD}  validations:\n    - expression: \"object.spec.replicas <= 10\"\n{BINDING}")
}

/// Ten validations of the kinds teams write: registries, tags, labels, probes, resources,
/// security settings, replicas.
fn ten_validations() -> String {
    let validations = [
        "variables.containers.all(c, c.image.startsWith('registry.example.com/'))",
        "variables.containers.all(c, !c.image.endsWith(':latest') && c.image.contains(':'))",
        "has(object.metadata.labels) && 'team' in object.metadata.labels",
        "object.spec.template.spec.containers.all(c, has(c.readinessProbe) && has(c.livenessProbe))",
        "variables.containers.all(c, has(c.resources.limits) && 'memory' in c.resources.limits)",
        "object.spec.template.spec.?securityContext.?runAsNonRoot.orValue(false) == true",
        "variables.containers.all(c, c.?securityContext.?allowPrivilegeEscalation.orValue(true) == false)",
        "object.spec.replicas <= 10",
        "!object.spec.template.spec.?hostNetwork.orValue(false)",
        "variables.containers.all(c, !has(c.ports) || c.ports.all(p, !has(p.hostPort)))",
    ];
    let mut yaml = format!(
        "{HEAD}  variables:\n    - name: containers\n      expression: \"object.spec.template.spec.containers + object.spec.template.spec.?initContainers.orValue([])\"\n  validations:\n"
    );
    for v in validations {
        yaml.push_str(&format!("    - expression: \"{v}\"\n"));
    }
    yaml.push_str(BINDING);
    yaml
}

fn set(yaml: &str, with_shipped: bool) -> PolicySet {
    let mut files = Vec::new();
    if with_shipped {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .expect("policies/")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        paths.sort();
        for p in paths {
            let text = std::fs::read_to_string(&p).expect("policy file");
            files.push((p.display().to_string(), text));
        }
    }
    if !yaml.is_empty() {
        files.push(("cel.yaml".to_owned(), yaml.to_owned()));
    }
    portier::policy::Sources::from_files(files)
        .compile()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn cel(c: &mut Criterion<common::Clock>) {
    let body = common::read("review-deployment-8k.json");
    let sets = [
        ("shipped", set("", true)),
        ("shipped+one-expression", set(&one_expression(), true)),
        ("shipped+ten-validations", set(&ten_validations(), true)),
        ("one-expression", set(&one_expression(), false)),
        ("ten-validations", set(&ten_validations(), false)),
    ];
    let mut group = c.benchmark_group("cel/deployment-8k");
    for (name, set) in &sets {
        let answer = admission::review(&body, set, Endpoint::Validate);
        let parsed: serde_json::Value =
            serde_json::from_slice(&answer.body).expect("answer is JSON");
        assert_eq!(parsed["response"]["allowed"], true, "{name}: {parsed}");
        group.bench_function(*name, |b| {
            b.iter(|| black_box(admission::review(black_box(&body), set, Endpoint::Validate)))
        });
    }
    // What every CEL review pays before any expression runs: the review indexed, where its
    // objects and arrays close (`cel::deferred`). Beside it, the whole tree decoded at once,
    // as reviews were before levels were decoded on first read.
    let text = std::str::from_utf8(&body).expect("UTF-8");
    group.bench_function("index-only", |b| {
        b.iter(|| {
            black_box(portier::cel::deferred::Document::index(black_box(text)).expect("JSON"))
        })
    });
    group.bench_function("decode-whole-tree", |b| {
        b.iter(|| black_box(portier::cel::Json::parse(black_box(text)).expect("JSON")))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = cel
}
criterion_main!(benches);
