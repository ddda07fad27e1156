//! The CEL environment against Kubernetes' semantics: each case is an expression and the
//! expression it must equal (both evaluated, compared with CEL equality), an error it must
//! produce, or a load error it must be. Cases marked with a source are ported from the upstream
//! documentation and tests: `k8s.io/apiserver/pkg/cel/library/*.go` (function docs and
//! `*_test.go`), cel-go's `ext/*.go` docs, and the cel-spec conformance suites
//! (`tests/simple/testdata/*.textproto`).

use super::*;

pub(super) const OBJECT: &str = r#"{
  "apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web", "team": "a"}},
  "spec": {"replicas": 3, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
    "containers": [
      {"name": "app", "image": "registry.acme.example/app:1.2", "ports": [{"containerPort": 8080}],
       "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}},
      {"name": "sidecar", "image": "nginx:latest", "nullable": null}
    ]}}}}"#;
pub(super) const REQUEST: &str = r#"{
  "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
  "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
  "name": "web", "namespace": "shop", "operation": "CREATE",
  "userInfo": {"username": "alice", "groups": ["dev", "system:authenticated"]},
  "dryRun": false}"#;
pub(super) const PARAMS: &str =
    r#"{"maxReplicas": 5, "registries": ["registry.acme.example/"], "ratio": 0.5}"#;

pub(super) fn decls() -> Declarations {
    Declarations {
        params: true,
        ..Declarations::default()
    }
}

/// Compiles and evaluates `expr` and `expected` over the fixture and compares them.
pub(super) fn same(expr: &str, expected: &str) -> Result<bool, String> {
    let object = Json::parse(OBJECT).unwrap();
    let request = Json::parse(REQUEST).unwrap();
    let params = Json::parse(PARAMS).unwrap();
    let activation = Activation {
        object: Value::from_json(&object),
        old_object: Value::Null,
        request: Value::from_json(&request),
        params: Value::from_json(&params),
        namespace_object: Value::Null,
    };
    let program = compile(expr, &decls()).map_err(|e| format!("compile: {e}"))?;
    let want = compile(expected, &decls()).map_err(|e| format!("compile expected: {e}"))?;
    let scope = Scope::new(&activation, &[]);
    let got = program.evaluate(&scope).value.map_err(|e| e.to_string())?;
    let want = want
        .evaluate(&scope)
        .value
        .map_err(|e| format!("expected: {e}"))?;
    if got.equals(&want) {
        Ok(true)
    } else {
        Err(format!("got {got:?}, want {want:?}"))
    }
}

pub(super) fn check(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (expr, expected) in cases {
        if let Err(e) = same(expr, expected) {
            failures.push(format!("{expr}  =>  {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Each expression compiles and its evaluation fails with a message containing the text.
pub(super) fn check_errors(cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (expr, want) in cases {
        match same(expr, "true") {
            Err(e) if e.contains(want) && !e.starts_with("compile") => {}
            other => failures.push(format!(
                "{expr}  =>  {other:?}, want error containing {want:?}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Each expression is a load error containing the text, at the given column when one is given.
pub(super) fn check_compile_errors(cases: &[(&str, &str, Option<usize>)]) {
    let mut failures = Vec::new();
    for (expr, want, column) in cases {
        match compile(expr, &decls()) {
            Err(e) if e.message.contains(want) && column.is_none_or(|c| c == e.column) => {}
            Err(e) => failures.push(format!(
                "{expr}  =>  {e}, want {want:?} at column {column:?}"
            )),
            Ok(_) => failures.push(format!("{expr}  =>  compiled, want {want:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn object_fields_and_the_request() {
    check(&[
        ("object.metadata.name", "'web'"),
        ("object.spec.replicas", "3"),
        ("object.spec.replicas <= params.maxReplicas", "true"),
        ("params.ratio", "0.5"),
        ("object.spec.template.spec.containers.size()", "2"),
        ("size(object.metadata.labels)", "2"),
        ("object.metadata.labels['team']", "'a'"),
        ("request.operation == 'CREATE'", "true"),
        ("request.userInfo.groups.exists(g, g == 'dev')", "true"),
        (
            "request.kind.group + '/' + request.kind.kind",
            "'apps/Deployment'",
        ),
        ("oldObject == null", "true"),
        ("object.spec.template.spec.containers[1].nullable", "null"),
        ("'team' in object.metadata.labels", "true"),
        ("'x' in object.metadata.labels", "false"),
        (
            "'sidecar' in object.spec.template.spec.containers.map(c, c.name)",
            "true",
        ),
    ]);
}

#[test]
fn has_tests_the_last_field_only() {
    check(&[
        ("has(object.spec.replicas)", "true"),
        ("has(object.spec.paused)", "false"),
        ("has(object.metadata.labels.app)", "true"),
        (
            "has(object.spec.template.spec.containers[1].nullable)",
            "true",
        ),
        (
            "!has(object.spec.strategy) || object.spec.strategy.type == 'x'",
            "true",
        ),
        ("has(request.name)", "true"),
    ]);
    check_errors(&[
        // The API server errors too: `spec.strategy` is missing before `has` tests `type`.
        ("has(object.spec.strategy.type)", "no such key: strategy"),
        (
            "has(object.metadata.name.x)",
            "invalid type for field selection",
        ),
    ]);
}

#[test]
fn evaluation_errors_are_the_api_server_s() {
    check_errors(&[
        ("object.spec.paused", "no such key: paused"),
        ("object.metadata.labels['x'] == 'y'", "no such key: x"),
        (
            "object.spec.template.spec.containers[5].name == ''",
            "index '5' out of range in list size '2'",
        ),
        ("object.spec.replicas + 'x' == ''", "no such overload"),
        (
            "dyn(1) + dyn('a') == 2",
            "no such overload: _+_(int, string)",
        ),
        ("9223372036854775807 + 1 > 0", "integer overflow"),
        ("-9223372036854775807 - 2 < 0", "integer overflow"),
        ("9223372036854775807 * 2 > 0", "integer overflow"),
        ("-(-9223372036854775807 - 1) > 0", "integer overflow"),
        ("(-9223372036854775807 - 1) / -1 > 0", "integer overflow"),
        ("1 / 0 == 0", "division by zero"),
        ("1 % 0 == 0", "modulus by zero"),
        ("0u - 1u > 0u", "unsigned integer overflow"),
        ("int(1e19) > 0", "integer overflow"),
        ("uint(-1) > 0u", "unsigned integer overflow"),
        ("int('12a') > 0", "type conversion error"),
        (
            "object.metadata.name.startsWith(object.spec.replicas)",
            "no such overload: startsWith(string, int)",
        ),
        ("{'a': 1, 'a': 2}.size() == 1", "repeated key"),
    ]);
}

#[test]
fn logic_absorbs_errors_where_the_api_server_does() {
    // cel-spec: logic.textproto (the commutative error absorption of && and ||).
    check(&[
        ("object.spec.paused || true", "true"),
        ("true || object.spec.paused", "true"),
        ("object.spec.paused && false", "false"),
        ("false && object.spec.paused", "false"),
        ("[0, -1].all(x, 1 / x > 0)", "false"),
        ("[0, 1].exists(x, 1 / x > 0)", "true"),
        ("true ? 1 : 1 / 0", "1"),
    ]);
    check_errors(&[
        ("object.spec.paused || false", "no such key"),
        ("true && object.spec.paused", "no such key"),
        (
            "[1, 0].all(x, 1 / x > 0 || x == 0) && [0].all(x, 1 / x > 0)",
            "division by zero",
        ),
        ("[0, 1].exists_one(x, 1 / x > 0)", "division by zero"),
        ("[0, 1].map(x, 1 / x).size() == 2", "division by zero"),
    ]);
}

#[test]
fn numbers_and_equality() {
    // cel-spec: comparisons.textproto, with the API server's cross-type numeric comparisons.
    check(&[
        ("1 < 1.5", "true"),
        ("2u > 1", "true"),
        ("1.0 <= 1", "true"),
        ("dyn(1) == 1.0", "true"),
        ("dyn(1u) == 1", "true"),
        ("dyn('1') == 1", "false"),
        ("[1, 2] == [1, 2]", "true"),
        ("{'a': [1]} == {'a': [1]}", "true"),
        ("dyn({'a': 1}) == {'a': 1.0}", "true"),
        ("0.0 / 0.0 == 0.0 / 0.0", "false"),
        ("7 / 2", "3"),
        ("-7 / 2", "-3"),
        ("-7 % 3", "-1"),
        ("7u % 3u", "1u"),
        ("2.5 * 2.0", "5.0"),
        ("int(2.9)", "2"),
        ("int(-2.9)", "-2"),
        ("uint(3)", "3u"),
        ("double(3)", "3.0"),
        ("double('1.5')", "1.5"),
        ("int('-42')", "-42"),
        ("string(1.5)", "'1.5'"),
        ("string(1e20)", "'1e+20'"),
        ("string(100.0)", "'100'"),
        ("string(true)", "'true'"),
        ("string(b'abc')", "'abc'"),
        ("bytes('é').size()", "2"),
        ("bool('true') && !bool('F')", "true"),
        ("type(1) == int", "true"),
        (
            "type('a') == string && type([]) == list && type({}) == map",
            "true",
        ),
        ("type(null) == null_type", "true"),
        ("type(type(1)) == type", "true"),
        ("size('héllo')", "5"),
        ("'abc' < 'abd'", "true"),
        ("b'a' < b'b'", "true"),
        ("false < true", "true"),
    ]);
}

#[test]
fn strings_of_the_standard_library() {
    check(&[
        ("'hello'.contains('ell')", "true"),
        ("'hello'.startsWith('he') && 'hello'.endsWith('lo')", "true"),
        (
            "'registry.acme.example/app'.matches('^registry\\\\.acme\\\\.example/')",
            "true",
        ),
        ("matches('abc', 'b')", "true"),
        (
            "object.metadata.name.matches(params.registries[0].substring(0, 1))",
            "false",
        ),
        ("'a' + 'b'", "'ab'"),
    ]);
}

#[test]
fn strings_extension() {
    // cel-go ext/strings.go, the examples of each function (version 2, as Kubernetes enables it).
    check(&[
        ("'hello'.charAt(4)", "'o'"),
        ("'hello'.charAt(5)", "''"),
        ("'hello mellow'.indexOf('')", "0"),
        ("'hello mellow'.indexOf('ello')", "1"),
        ("'hello mellow'.indexOf('jello')", "-1"),
        ("'hello mellow'.indexOf('', 2)", "2"),
        ("'hello mellow'.indexOf('ello', 2)", "7"),
        ("'hello mellow'.indexOf('ello', 12)", "-1"),
        ("['hello', 'mellow'].join()", "'hellomellow'"),
        ("['hello', 'mellow'].join(' ')", "'hello mellow'"),
        ("[].join()", "''"),
        ("[].join('/')", "''"),
        ("'hello mellow'.lastIndexOf('')", "12"),
        ("'hello mellow'.lastIndexOf('ello')", "7"),
        ("'hello mellow'.lastIndexOf('jello')", "-1"),
        ("'hello mellow'.lastIndexOf('ello', 6)", "1"),
        ("'TacoCat'.lowerAscii()", "'tacocat'"),
        ("'TacoCÆt Xii'.lowerAscii()", "'tacocÆt xii'"),
        (
            "strings.quote('single-quote with \"double quote\"')",
            "'\"single-quote with \\\\\"double quote\\\\\"\"'",
        ),
        (
            "strings.quote(\"two escape sequences \\a\\n\")",
            "'\"two escape sequences \\\\a\\\\n\"'",
        ),
        ("'hello hello'.replace('he', 'we')", "'wello wello'"),
        ("'hello hello'.replace('he', 'we', -1)", "'wello wello'"),
        ("'hello hello'.replace('he', 'we', 1)", "'wello hello'"),
        ("'hello hello'.replace('he', 'we', 0)", "'hello hello'"),
        (
            "'hello hello'.replace('', '_')",
            "'_h_e_l_l_o_ _h_e_l_l_o_'",
        ),
        ("'hello hello'.replace('h', '')", "'ello ello'"),
        (
            "'hello hello hello'.split(' ')",
            "['hello', 'hello', 'hello']",
        ),
        ("'hello hello hello'.split(' ', 0)", "[]"),
        ("'hello hello hello'.split(' ', 1)", "['hello hello hello']"),
        (
            "'hello hello hello'.split(' ', 2)",
            "['hello', 'hello hello']",
        ),
        (
            "'hello hello hello'.split(' ', -1)",
            "['hello', 'hello', 'hello']",
        ),
        ("'abc'.split('')", "['a', 'b', 'c']"),
        ("'tacocat'.substring(4)", "'cat'"),
        ("'tacocat'.substring(0, 4)", "'taco'"),
        ("'héllo'.substring(1, 2)", "'é'"),
        ("'  \\ttrim\\n    '.trim()", "'trim'"),
        ("'TacoCat'.upperAscii()", "'TACOCAT'"),
        ("'TacoCÆt Xii'.upperAscii()", "'TACOCÆT XII'"),
    ]);
    check_errors(&[
        ("'hello'.charAt(-1) == ''", "index out of range: -1"),
        (
            "'hello mellow'.indexOf('ello', -1) == 0",
            "index out of range: -1",
        ),
        (
            "'hello mellow'.lastIndexOf('ello', -1) == 0",
            "index out of range: -1",
        ),
        ("'tacocat'.substring(-1) == ''", "index out of range: -1"),
        ("'tacocat'.substring(2, 1) == ''", "invalid substring range"),
        ("dyn([1]).join() == ''", "no such overload: join(list)"),
    ]);
}

#[test]
fn format_extension() {
    // cel-go ext/strings.go and formatting.go (the format clauses before version 4).
    check(&[
        // Kubernetes checks list literals for one element type (HomogeneousAggregateLiterals):
        // cel-go's examples mixing types need dyn() there.
        (
            "'this is a string: %s\\nand an integer: %d'.format(['str', dyn(42)])",
            "'this is a string: str\\nand an integer: 42'",
        ),
        (
            "'a double substituted with %%s: %s'.format([64.2])",
            "'a double substituted with %s: 64.2'",
        ),
        (
            "'string type: %s'.format([string])",
            "'string type: string'",
        ),
        (
            "'timestamp: %s'.format([timestamp('2023-02-03T23:31:20+00:00')])",
            "'timestamp: 2023-02-03T23:31:20Z'",
        ),
        (
            "'duration: %s'.format([duration('1h45m47s')])",
            "'duration: 6347s'",
        ),
        ("'%f'.format([3.14])", "'3.140000'"),
        ("'%.2f'.format([1234.5])", "'1,234.50'"),
        ("'5 in binary: %b'.format([5])", "'5 in binary: 101'"),
        ("'26 in hex: %x'.format([26])", "'26 in hex: 1a'"),
        (
            "'26 in hex (uppercase): %X'.format([26])",
            "'26 in hex (uppercase): 1A'",
        ),
        ("'30 in octal: %o'.format([30])", "'30 in octal: 36'"),
        (
            "'a list: %s'.format([[1, dyn('two'), dyn(3.0)]])",
            "'a list: [1, \"two\", 3.000000]'",
        ),
        (
            "'a map: %s'.format([{'b': dyn(1), 'a': 'x'}])",
            "'a map: {\"a\":\"x\", \"b\":1}'",
        ),
        (
            "'true bool: %s - false bool: %s\\nbinary bool: %b'.format([true, false, true])",
            "'true bool: true - false bool: false\\nbinary bool: 1'",
        ),
        ("'%s'.format([null])", "'null'"),
        ("'%x'.format(['Hi'])", "'4869'"),
    ]);
    check_errors(&[
        ("'%d %d'.format([1]) == ''", "index 1 out of range"),
        ("'%b'.format(['a']) == ''", "binary clause"),
        ("'%y'.format([1]) == ''", "unrecognized formatting clause"),
    ]);
}

#[test]
fn optional_types() {
    // cel-spec: optionals.textproto; cel-go: cel/library.go (optional library, latest version).
    check(&[
        ("object.spec.?paused.orValue(false)", "false"),
        ("object.spec.?replicas.orValue(1)", "3"),
        ("object.spec.?replicas.hasValue()", "true"),
        ("object.spec.?strategy.type.hasValue()", "false"),
        (
            "object.spec.?strategy.?type.orValue('RollingUpdate')",
            "'RollingUpdate'",
        ),
        (
            "object.spec.template.spec.containers[?5].hasValue()",
            "false",
        ),
        (
            "object.spec.template.spec.containers[?0].name.value()",
            "'app'",
        ),
        ("object.metadata.labels[?'team']", "optional.of('a')"),
        ("object.metadata.labels[?'x']", "optional.none()"),
        (
            "object.spec.template.spec.containers + object.spec.template.spec.?initContainers.orValue([])",
            "object.spec.template.spec.containers",
        ),
        ("optional.of(1).value()", "1"),
        ("optional.none().hasValue()", "false"),
        ("optional.ofNonZeroValue(0).hasValue()", "false"),
        (
            "optional.ofNonZeroValue('').hasValue() || optional.ofNonZeroValue([]).hasValue()",
            "false",
        ),
        ("optional.ofNonZeroValue(1).hasValue()", "true"),
        ("optional.none().or(optional.of(2))", "optional.of(2)"),
        ("optional.of(1).or(optional.of(2))", "optional.of(1)"),
        ("optional.of(1).orValue(1 / 0)", "1"),
        ("[?optional.of(1), ?optional.none(), 3]", "[1, 3]"),
        ("{?'a': optional.of(1), ?'b': optional.none()}", "{'a': 1}"),
        ("optional.of(2).optMap(x, x * 2)", "optional.of(4)"),
        ("optional.none().optMap(x, x * 2)", "optional.none()"),
        (
            "optional.of(2).optFlatMap(x, x > 1 ? optional.of(x) : optional.none())",
            "optional.of(2)",
        ),
        ("[1, 2, 3].first()", "optional.of(1)"),
        ("[1, 2, 3].last()", "optional.of(3)"),
        ("[].first()", "optional.none()"),
        (
            "optional.unwrap([optional.of(1), optional.none(), optional.of(3)])",
            "[1, 3]",
        ),
        ("[optional.of('a'), optional.none()].unwrapOpt()", "['a']"),
        (
            "optional.of(1) == optional.of(1) && optional.none() == optional.none()",
            "true",
        ),
    ]);
    check_errors(&[
        (
            "optional.none().value() == 1",
            "optional.none() dereference",
        ),
        ("[?dyn(1)].size() == 1", "non-optional"),
    ]);
}

#[test]
fn macros() {
    // cel-spec: macros.textproto and macros2.textproto (two-variable comprehensions); cel-go
    // ext/comprehensions.go and ext/lists.go (sortBy).
    check(&[
        (
            "object.spec.template.spec.containers.all(c, c.name != '')",
            "true",
        ),
        (
            "object.spec.template.spec.containers.exists(c, c.image.endsWith(':latest'))",
            "true",
        ),
        (
            "object.spec.template.spec.containers.exists_one(c, c.name == 'app')",
            "true",
        ),
        ("[1, 1].existsOne(x, x == 1)", "false"),
        ("[1, 2, 3].map(x, x * 2)", "[2, 4, 6]"),
        ("[1, 2, 3].map(x, x > 1, x * 2)", "[4, 6]"),
        ("[1, 2, 3].filter(x, x > 1)", "[2, 3]"),
        ("{'a': 1, 'b': 2}.map(k, k)", "['a', 'b']"),
        ("{'a': 1, 'b': 2}.filter(k, k == 'b')", "['b']"),
        ("{'a': 1, 'b': 2}.all(k, k != '')", "true"),
        ("[].all(x, false)", "true"),
        ("[].exists(x, true)", "false"),
        ("[10, 20].all(i, v, v == (i + 1) * 10)", "true"),
        ("{'a': 1, 'b': 2}.exists(k, v, k == 'b' && v == 2)", "true"),
        ("{'a': 1, 'b': 2}.existsOne(k, v, v > 1)", "true"),
        ("[1, 2].transformList(i, v, i + v)", "[1, 3]"),
        ("[1, 2, 3].transformList(i, v, v > 1, v * 10)", "[20, 30]"),
        (
            "{'a': 1, 'b': 2}.transformMap(k, v, v * 2)",
            "{'a': 2, 'b': 4}",
        ),
        ("[5, 6].transformMap(i, v, v)", "{0: 5, 1: 6}"),
        ("{'a': 1}.transformMapEntry(k, v, {v: k})", "{1: 'a'}"),
        ("['b', 'c', 'a'].sortBy(x, x)", "['a', 'b', 'c']"),
        ("[{'n': 2}, {'n': 1}].sortBy(e, e.n).map(e, e.n)", "[1, 2]"),
        ("[[1, 2], [3]].map(l, l.map(x, x + 1))", "[[2, 3], [4]]"),
        ("[1, 2].map(x, [3, 4].map(y, x * y))", "[[3, 4], [6, 8]]"),
        ("[1, 2].exists(x, [3].exists(x, x == 3))", "true"),
    ]);
    check_errors(&[
        (
            "{'a': 1}.transformMapEntry(k, v, {'x': v}).size() == 1 && [1, 2].transformMapEntry(i, v, {'x': v}).size() == 1",
            "already exists",
        ),
        ("[dyn(1), 'a'].sortBy(x, x).size() == 2", "same type"),
        ("dyn(1).all(x, true)", "cannot iterate"),
    ]);
}

#[test]
fn lists_libraries() {
    // k8s.io/apiserver/pkg/cel/library/lists.go and cel-go ext/lists.go (version 3).
    check(&[
        ("[1, 2, 3].isSorted()", "true"),
        ("['a', 'b', 'b', 'c'].isSorted()", "true"),
        ("[2.0, 1.0].isSorted()", "false"),
        ("[1].isSorted() && [].isSorted()", "true"),
        ("[1, 3].sum()", "4"),
        ("[1.0, 3.0].sum()", "4.0"),
        ("[duration('1m'), duration('1s')].sum()", "duration('1m1s')"),
        ("[].sum()", "0"),
        ("[1, 3].min()", "1"),
        ("[1, 3].max()", "3"),
        ("[1].min()", "1"),
        ("[1, 2, 2, 3].indexOf(2)", "1"),
        ("['a', 'b', 'b', 'c'].lastIndexOf('b')", "2"),
        ("[1.0].indexOf(1.1)", "-1"),
        ("[].indexOf('string')", "-1"),
        ("[1, 2, 3].includes(2)", "true"),
        ("[1, 2, 3].includes(4)", "false"),
        ("'model-a'.includes('model-a')", "true"),
        ("[1, 2, 2, 3, 3, 3].distinct()", "[1, 2, 3]"),
        ("['b', 'b', 'c', 'a', 'c'].distinct()", "['b', 'c', 'a']"),
        ("lists.range(5)", "[0, 1, 2, 3, 4]"),
        ("[5, 3, 1, 2].reverse()", "[2, 1, 3, 5]"),
        ("[1, 2, 3, 4].slice(1, 3)", "[2, 3]"),
        ("[1, 2, 3, 4].slice(2, 4)", "[3, 4]"),
        ("[dyn(1), [2, 3], [4]].flatten()", "[1, 2, 3, 4]"),
        (
            "[dyn(1), [dyn(2), [3, 4]]].flatten()",
            "[1, 2, dyn([3, 4])]",
        ),
        ("[dyn(1), 2, [], [], [3, 4]].flatten()", "[1, 2, 3, 4]"),
        (
            "[dyn(1), [dyn(2), [dyn(3), [4]]]].flatten(2)",
            "[1, 2, 3, dyn([4])]",
        ),
        ("[3, 2, 1].sort()", "[1, 2, 3]"),
        ("['b', 'c', 'a'].sort()", "['a', 'b', 'c']"),
    ]);
    check_errors(&[
        ("[].min() == 0", "min called on empty list"),
        (
            "[1, 2].slice(-1, 1) == []",
            "negative indexes not supported",
        ),
        (
            "[1, 2].slice(2, 1) == []",
            "start index must be less than or equal to end index",
        ),
        ("[1, 2].slice(0, 3) == []", "list is length 2"),
        ("[[1], [2]].flatten(-1) == []", "level must be non-negative"),
        ("dyn([1, dyn('b')]).sort() == []", "same type"),
        ("dyn([[1, 2, 3]]).sort() == []", "comparable"),
    ]);
}
