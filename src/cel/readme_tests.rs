//! The README's "Your own rules" examples, as written: each `# own-rules/<name>.yaml` block
//! loads, denies (or warns, or audits) what it is meant to catch, and lets the rest pass.

use super::policy_tests::{check, rows, set};

const README: &str = include_str!("../../README.md");

/// The blocks of the README whose first line is `# own-rules/<name>.yaml`, by name.
fn own_rules() -> Vec<(&'static str, &'static str)> {
    README
        .split("```yaml\n")
        .skip(1)
        .filter_map(|block| {
            let block = block.split("```").next()?;
            let name = block.lines().next()?.strip_prefix("# own-rules/")?;
            Some((name, block))
        })
        .collect()
}

fn deployment(image: &str, labels: &str, probes: bool) -> String {
    let probes = match probes {
        true => ", readinessProbe: {httpGet: {port: 80}}, livenessProbe: {httpGet: {port: 80}}",
        false => "",
    };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: shop, labels: {labels}}}\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers: [{{name: app, image: \"{image}\"{probes}}}]\n---\n"
    )
}

const GOOD_LABELS: &str = "{team: shop, cost-center: '42'}";
const SERVICE_LB: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: edge, namespace: shop, labels: {team: shop, cost-center: '42'}}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n---\n";
const SERVICE_CLUSTER_IP: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop, labels: {team: shop, cost-center: '42'}}\nspec: {ports: [{port: 80}]}\n---\n";

#[test]
fn every_readme_rule_loads_and_catches_what_it_says() {
    let rules = own_rules();
    let names: Vec<&str> = rules.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        [
            "allowed-registries.yaml",
            "no-latest.yaml",
            "required-labels.yaml",
            "probes-required.yaml",
            "no-load-balancers.yaml"
        ]
    );
    let compliant = format!(
        "{}{SERVICE_CLUSTER_IP}",
        deployment("registry.acme.example/shop/web:1.4", GOOD_LABELS, true)
    );
    for (name, yaml) in &rules {
        let set = set(yaml);
        let report = check(&set, &compliant);
        assert!(report.rows.is_empty(), "{name}: {:?}", rows(&report));
        let (bad, mode, message) = match *name {
            "allowed-registries.yaml" => (
                deployment("docker.io/nginx:1.27", GOOD_LABELS, true),
                "enforce",
                "image docker.io/nginx:1.27 is not from registry.acme.example",
            ),
            "no-latest.yaml" => (
                deployment("registry.acme.example/shop/web:latest", GOOD_LABELS, true),
                "warn",
                "images must name a tag other than latest (or a digest)",
            ),
            "required-labels.yaml" => (
                deployment("registry.acme.example/shop/web:1.4", "{team: shop}", true),
                "enforce",
                "Deployment web needs the labels team and cost-center",
            ),
            "probes-required.yaml" => (
                deployment("registry.acme.example/shop/web:1.4", GOOD_LABELS, false),
                "audit",
                "every container needs a readinessProbe and a livenessProbe",
            ),
            "no-load-balancers.yaml" => (
                SERVICE_LB.to_owned(),
                "enforce",
                "Services of type LoadBalancer are not allowed; use the shared Ingress",
            ),
            other => panic!("no case for {other}"),
        };
        let report = check(&set, &bad);
        let rows = rows(&report);
        assert_eq!(rows.len(), 1, "{name}: {rows:?}");
        assert_eq!(rows[0].2, mode, "{name}: {rows:?}");
        assert!(rows[0].3.ends_with(message), "{name}: {rows:?}");
    }
}
