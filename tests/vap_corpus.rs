//! Compatibility with a public corpus of real ValidatingAdmissionPolicies and their expected
//! verdicts: Kubescape's CEL admission library (github.com/kubescape/cel-admission-library,
//! Apache-2.0, commit fc2fb67f3def145dc74d182f0e2ae676a03c05c5), vendored in
//! `tests/fixtures/vap-corpus/kubescape/`: 60 policies (`controls/*/policy.yaml`), each with
//! the test cases its project runs against a real API server (`controls/*/tests.json`: a
//! template object from `test-resources/`, field changes, and "pass", "fail" or "warn").
//!
//! Each case is run as the library's own runner runs it (`scripts/run-control-tests.py`): the
//! policy, a binding made from `test-resources/policy-binding.yaml` (or the case's template)
//! naming the policy and its params, the params from `default-control-configuration.yaml` (or
//! the case's template), and the changed object, created in the `default` namespace. portier
//! judges the object with `portier check`'s engine; "fail" must be a denial by the policy,
//! "pass" no finding, "warn" a warning. Every disagreement is listed below with its reason; the
//! test fails on any other disagreement, and on a listed one that no longer disagrees.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use portier::offline::{Images, Mutate, Report, check_text};
use portier::policy::PolicySet;
use serde_json::Value;

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/vap-corpus/kubescape"
);

/// The cases where portier and the API server disagree, and why (control, case name, why).
/// None today: the one there was (C-0075's `\w` patterns, Unicode in Rust's regex and ASCII
/// in RE2) is fixed.
const KNOWN_DISAGREEMENTS: &[(&str, &str, &str)] = &[];

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    template: String,
    expected: String,
    #[serde(default)]
    field_change_list: Vec<String>,
    #[serde(default)]
    binding_template: Option<String>,
    #[serde(default)]
    param_template: Option<String>,
}

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The library's `change-yaml-field.py`: `a.b.[0].c=value`, the value read as JSON when it is
/// JSON, containers created on the way.
fn change_field(doc: &mut Value, change: &str) {
    let (path, raw) = change.split_once('=').unwrap_or((change, ""));
    let value: Value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
    let fields: Vec<&str> = path.split('.').collect();
    let index = |f: &str| {
        f.strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|n| n.parse::<usize>().ok())
    };
    let mut node = doc;
    for (i, field) in fields.iter().enumerate() {
        let last = i + 1 == fields.len();
        let missing = || match fields.get(i + 1).and_then(|f| index(f)) {
            Some(_) => Value::Array(Vec::new()),
            None => Value::Object(Default::default()),
        };
        match index(field) {
            Some(n) => {
                let list = node
                    .as_array_mut()
                    .unwrap_or_else(|| panic!("{change}: not a list"));
                while list.len() <= n {
                    list.push(Value::Null);
                }
                if last {
                    list[n] = value.clone();
                    return;
                }
                if list[n].is_null() {
                    list[n] = missing();
                }
                node = &mut list[n];
            }
            None => {
                let map = node
                    .as_object_mut()
                    .unwrap_or_else(|| panic!("{change}: not a map"));
                if last {
                    map.insert((*field).to_owned(), value.clone());
                    return;
                }
                if map.get(*field).is_none_or(Value::is_null) {
                    map.insert((*field).to_owned(), missing());
                }
                node = map.get_mut(*field).unwrap_or_else(|| unreachable!());
            }
        }
    }
}

fn yaml_text(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Runs one case: `Ok(())` when portier agrees, `Err(what it found)` otherwise.
fn run(control: &Path, policy: &Value, case: &Case) -> Result<(), String> {
    let resources = Path::new(CORPUS).join("test-resources");
    let policy_name = policy["metadata"]["name"].as_str().unwrap_or("").to_owned();
    let mut binding = read_yaml(
        &resources.join(
            case.binding_template
                .as_deref()
                .unwrap_or("policy-binding.yaml"),
        ),
    );
    change_field(&mut binding, &format!("spec.policyName={policy_name}"));
    change_field(
        &mut binding,
        &format!("metadata.name={policy_name}-binding"),
    );
    change_field(
        &mut binding,
        &format!("spec.paramRef.name={policy_name}-params"),
    );
    let mut files = vec![yaml_text(policy), yaml_text(&binding)];
    if policy["spec"].get("paramKind").is_some() {
        let mut params = read_yaml(
            &resources.join(
                case.param_template
                    .as_deref()
                    .unwrap_or("default-control-configuration.yaml"),
            ),
        );
        change_field(&mut params, &format!("metadata.name={policy_name}-params"));
        files.push(yaml_text(&params));
    }
    let set = PolicySet::from_yaml(&control.display().to_string(), &files.join("\n---\n"))
        .map_err(|e| format!("load error: {e}"))?;
    let mut object = read_yaml(&resources.join(&case.template));
    for change in &case.field_change_list {
        change_field(&mut object, change);
    }
    let mut report = Report::default();
    check_text(
        &case.template,
        &yaml_text(&object),
        &set,
        Mutate::No,
        Images::Offline,
        &mut report,
    )
    .map_err(|e| format!("check error: {e}"))?;
    let binding_name = format!("{policy_name}-binding");
    let found: Vec<&str> = report
        .rows
        .iter()
        .filter(|r| r.policy == binding_name)
        .map(|r| r.mode.as_str())
        .collect();
    let verdict = match found.as_slice() {
        [] => "pass",
        modes if modes.contains(&"enforce") => "fail",
        _ => "warn",
    };
    if verdict == case.expected {
        Ok(())
    } else {
        let messages: Vec<&str> = report.rows.iter().map(|r| r.message.as_str()).collect();
        Err(format!("portier says {verdict}: {messages:?}"))
    }
}

fn controls() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(Path::new(CORPUS).join("controls"))
        .expect("the corpus is vendored")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("policy.yaml").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn portier_agrees_with_the_api_server_on_the_kubescape_library() {
    let mut disagreements: BTreeMap<(String, String), String> = BTreeMap::new();
    let (mut policies, mut cases) = (0, 0);
    for control in controls() {
        let id = control
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        let policy = read_yaml(&control.join("policy.yaml"));
        let tests: Vec<Case> = serde_json::from_str(
            &std::fs::read_to_string(control.join("tests.json")).unwrap_or_default(),
        )
        .unwrap_or_else(|e| panic!("{id}/tests.json: {e}"));
        policies += 1;
        for case in &tests {
            cases += 1;
            if let Err(found) = run(&control, &policy, case) {
                disagreements.insert(
                    (id.clone(), case.name.clone()),
                    format!("expected {}, {found}", case.expected),
                );
            }
        }
    }
    eprintln!(
        "{policies} policies, {cases} cases, {} disagreement(s)",
        disagreements.len()
    );
    assert!(policies >= 30, "the corpus has {policies} policies");
    let known: BTreeMap<(String, String), &str> = KNOWN_DISAGREEMENTS
        .iter()
        .map(|(c, n, why)| (((*c).to_owned(), (*n).to_owned()), *why))
        .collect();
    let unexplained: Vec<String> = disagreements
        .iter()
        .filter(|(k, _)| !known.contains_key(*k))
        .map(|((c, n), found)| format!("{c} / {n}: {found}"))
        .collect();
    let resolved: Vec<String> = known
        .keys()
        .filter(|k| !disagreements.contains_key(*k))
        .map(|(c, n)| format!("{c} / {n}"))
        .collect();
    assert!(
        unexplained.is_empty() && resolved.is_empty(),
        "unexplained disagreements:\n{}\n\nlisted disagreements that now agree:\n{}",
        unexplained.join("\n"),
        resolved.join("\n")
    );
}
