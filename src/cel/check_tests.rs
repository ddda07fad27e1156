//! What is refused at load (with the column), the parser's bounds, the checker's types, lazy
//! variables and the cost limit.

use super::tests::*;
use super::*;

#[test]
fn load_errors_name_the_column() {
    check_compile_errors(&[
        ("object.spec.replicas >", "Syntax error", Some(23)),
        (
            "[1].join() == ''",
            "found no matching overload for 'join' applied to 'list(int).()'",
            None,
        ),
        (
            "[?1].size() == 1",
            "expected type 'optional_type(dyn)' but found 'int'",
            Some(3),
        ),
        ("object.spec.replicas > > 1", "Syntax error", None),
        ("foo(1)", "undeclared reference to 'foo'", Some(4)),
        (
            "object.name.bogusFunction()",
            "undeclared reference to 'bogusFunction'",
            None,
        ),
        (
            "size(1) > 0",
            "found no matching overload for 'size' applied to '(int)'",
            None,
        ),
        (
            "'a' + 1 == 'b'",
            "found no matching overload for '_+_' applied to '(string, int)'",
            None,
        ),
        (
            "object.metadata.name.startsWith(1)",
            "found no matching overload for 'startsWith' applied to 'dyn.(int)'",
            None,
        ),
        (
            "[1, 'a'].size() == 2",
            "expected type 'int' but found 'string'",
            Some(5),
        ),
        (
            "request.operaton == 'CREATE'",
            "undefined field 'operaton'",
            Some(8),
        ),
        (
            "request.userInfo.usrname == ''",
            "undefined field 'usrname'",
            None,
        ),
        ("nope.x == 1", "undeclared reference to 'nope'", Some(1)),
        (
            "object.x.matches('(') ",
            "invalid regular expression",
            Some(18),
        ),
        (
            "duration('1x') > duration('1s')",
            "invalid duration literal",
            None,
        ),
        (
            "timestamp('yesterday') > timestamp(0)",
            "invalid timestamp literal",
            None,
        ),
        (
            "authorizer.group('').resource('pods').check('get').allowed()",
            "authorizer is not supported",
            None,
        ),
        (
            "namespaceObject.metadata.labelz == {}",
            "undefined field 'labelz'",
            Some(25),
        ),
        ("variables.missing == 1", "undefined field 'missing'", None),
        ("[1].all(x, x)", "must be a bool", None),
        (
            "[1].all(1, true)",
            "argument must be a simple name",
            Some(9),
        ),
        (
            "[1].map(x, y, z, w)",
            "wrong number of arguments to the map macro",
            None,
        ),
        ("1.all(x, true)", "cannot be range of a comprehension", None),
        (
            "sets.contains([1], [1.0])",
            "found no matching overload for 'sets.contains' applied to '(list(int), list(double))'",
            None,
        ),
        ("has(object)", "invalid argument to has() macro", None),
        // Not in the API server's environment for admission expressions.
        (
            "math.abs(-1) == 1",
            "undeclared reference to 'math.abs'",
            None,
        ),
        (
            "cel.bind(x, 1, x) == 1",
            "undeclared reference to 'cel.bind'",
            None,
        ),
        (
            "base64.encode(b'a') == ''",
            "undeclared reference to 'base64.encode'",
            None,
        ),
        (
            "'abc'.reverse() == 'cba'",
            "found no matching overload for 'reverse'",
            None,
        ),
        ("{[1]: 2}.size() == 1", "unsupported map key type", None),
        (
            "[1].first().value().startsWith('a')",
            "found no matching overload for 'startsWith' applied to 'int.(string)'",
            None,
        ),
        (
            "true ? 1 : 'a'",
            "found no matching overload for '_?_:_'",
            None,
        ),
        ("'x' && true", "found no matching overload for '_&&_'", None),
    ]);
    let no_params = Declarations::default();
    let e = compile("params.x == 1", &no_params).unwrap_err();
    assert!(
        e.message.contains("undeclared reference to 'params'"),
        "{e}"
    );
}

#[test]
fn load_errors_bound_the_parser() {
    let long = format!("'{}' == ''", "a".repeat(MAX_SOURCE_CHARS));
    let e = compile(&long, &decls()).unwrap_err();
    assert!(e.message.contains("at most 100000"), "{e}");
    let deep = format!("{}1", "1 + ".repeat(MAX_DEPTH + 10));
    let e = compile(&deep, &decls()).unwrap_err();
    assert!(e.message.contains("nests more than 250 levels"), "{e}");
    let parens = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(compile(&parens, &decls()).is_err());
    // Nesting the API server accepts compiles.
    let fine = format!("{}1 > 0", "1 + ".repeat(100));
    compile(&fine, &decls()).unwrap();
}

#[test]
fn checked_types_are_cel_go_s() {
    let t = |e: &str| compile(e, &decls()).unwrap().output().to_string();
    assert_eq!(t("object.spec.replicas"), "dyn");
    assert_eq!(t("object.spec.replicas > 1"), "bool");
    assert_eq!(t("request.userInfo.groups"), "list(string)");
    assert_eq!(t("[1, 2].map(x, x > 1)"), "list(bool)");
    assert_eq!(t("{'a': 1}"), "map(string, int)");
    assert_eq!(t("object.spec.?replicas"), "optional_type(dyn)");
    assert_eq!(t("object.spec.?x.orValue([])"), "dyn");
    assert_eq!(t("request.userInfo.?groups.orValue([])"), "list(string)");
    assert_eq!(t("quantity('1')"), "kubernetes.Quantity");
    assert_eq!(t("'a'.split(',')"), "list(string)");
    assert_eq!(t("size(object)"), "int");
    // cel-go keeps the more general type of the branches.
    assert_eq!(t("true ? 1 : dyn(2)"), "dyn");
    assert_eq!(t("true ? dyn(1) : 2"), "dyn");
    assert_eq!(t("true ? [1] : []"), "list(int)");
    assert_eq!(t("[1].sortBy(x, x)"), "list(int)");
}

#[test]
fn variables_are_evaluated_once_and_lazily() {
    let object = Json::parse(OBJECT).unwrap();
    let activation = Activation {
        object: Value::from_json(&object),
        ..Activation::default()
    };
    let d0 = Declarations::default();
    let containers = compile("object.spec.template.spec.containers", &d0).unwrap();
    let d1 = Declarations {
        variables: vec![("containers".into(), containers.output().clone())],
        ..Declarations::default()
    };
    let failing = compile("1 / 0 == 0", &d1).unwrap();
    let variables = vec![containers, failing];
    let d2 = Declarations {
        variables: vec![
            ("containers".into(), Type::Dyn),
            ("failing".into(), Type::Bool),
        ],
        ..Declarations::default()
    };
    let uses = compile(
        "variables.containers.size() == 2 && variables.containers[0].name == 'app'",
        &d2,
    )
    .unwrap();
    let scope = Scope::new(&activation, &variables);
    assert!(
        uses.evaluate(&scope)
            .value
            .unwrap()
            .equals(&Value::Bool(true))
    );
    let first = scope.take_variables_cost();
    assert!(first > 0);
    uses.evaluate(&scope).value.unwrap();
    assert_eq!(
        scope.take_variables_cost(),
        0,
        "the variable was remembered"
    );
    let fails = compile("variables.failing", &d2).unwrap();
    assert_eq!(
        fails.evaluate(&scope).value.unwrap_err(),
        EvalError::DivisionByZero
    );
}

#[test]
fn the_cost_limit_stops_a_hostile_expression() {
    let hostile = "lists.range(2000).all(i, lists.range(2000).all(j, i + j >= 0)) || true";
    let program = compile(hostile, &decls()).unwrap();
    let activation = Activation::default();
    let scope = Scope::new(&activation, &[]);
    let evaluated = program.evaluate(&scope);
    assert_eq!(evaluated.value.unwrap_err(), EvalError::CostLimitExceeded);
    assert!(evaluated.cost > PER_CALL_LIMIT);
    assert!(
        evaluated.cost < PER_CALL_LIMIT + 10_000,
        "{}",
        evaluated.cost
    );

    let big_strings = "lists.range(100).map(i, 'x' + 'y').map(s, s + s).size() > 0";
    let program = compile(big_strings, &decls()).unwrap();
    let evaluated = program.evaluate(&scope);
    assert!(evaluated.value.is_ok());
    assert!(evaluated.cost < 10_000, "{}", evaluated.cost);

    // Matching costs the text's length times the pattern's: 2,000 matches of a 10,000
    // character text pass the limit.
    let text = compile("lists.range(5000).map(i, 'ab').join()", &decls()).unwrap();
    let variables = vec![text];
    let with_text = Declarations {
        variables: vec![("text".into(), Type::String)],
        ..decls()
    };
    let regex = "lists.range(2000).all(i, !variables.text.matches('(a|b)*c'))";
    let program = compile(regex, &with_text).unwrap();
    let scope = Scope::new(&activation, &variables);
    assert_eq!(
        program.evaluate(&scope).value.unwrap_err(),
        EvalError::CostLimitExceeded
    );
}
