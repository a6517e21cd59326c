//! The transform-string grammar: every example in TensorFlow's Graph Transform Tool
//! documentation parses as TensorFlow parses it, and malformed strings fail with a position.

use std::collections::BTreeMap;

use graphopt_core::transforms::spec::{canonical, parse};
use graphopt_core::transforms::Registry;

fn params(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
        .collect()
}

/// The `--transforms` values of the GTT README, as the shell passes them (a backslash-newline
/// inside single quotes stays in the string).
const DOC_EXAMPLES: &[&str] = &[
    "\\\nstrip_unused_nodes(type=float, shape=\"1,299,299,3\") \\\nremove_nodes(op=Identity, op=CheckNumerics) \\\nfold_old_batch_norms \\\n",
    "\\\nstrip_unused_nodes(type=float, shape=\"1,299,299,3\") \\\nremove_nodes(op=Identity, op=CheckNumerics) \\\nfold_constants(ignore_errors=true) \\\nfold_batch_norms \\\nfold_old_batch_norms\\\n",
    "\\\nstrip_unused_nodes(type=float, shape=\"1,299,299,3\") \\\nfold_constants(ignore_errors=true) \\\nfold_batch_norms \\\nfold_old_batch_norms\\\n",
    "\\\nround_weights(num_steps=256) \\\n",
    "\\\nquantize_weights \\\n",
    "\\\nobsfucate_names \\\n",
    "\n add_default_attributes\n strip_unused_nodes(type=float, shape=\"1,299,299,3\")\n remove_nodes(op=Identity, op=CheckNumerics)\n fold_old_batch_norms\n quantize_weights\n quantize_nodes\n strip_unused_nodes",
    "\\\ninsert_logging(op=RequantizationRange, show_name=true, message=\"__requant_min_max:\")\\\n",
    "strip_unused_nodes(name=in1,\ntype_for_name=int32, shape_for_name=\"2,3\", name=in2, type_for_name=float,\nshape_for_name=\"1,10,10,3\")",
    "some_transform(foo=a, foo=b, bar=2, bob=\"1,2,3\")",
    "rename_op(old_op_name=Mul, new_op_name=Multiply)",
    "fold_constants(ignore_errors=true)",
    "freeze_requantization_ranges(min_max_log_file=\"/tmp/min_max_log_small.txt\")",
];

#[test]
fn every_documentation_example_parses() {
    let names: Vec<Vec<String>> = DOC_EXAMPLES
        .iter()
        .map(|s| {
            parse(s)
                .unwrap_or_else(|e| panic!("{s:?}: {e}"))
                .into_iter()
                .map(|t| t.name)
                .collect()
        })
        .collect();
    assert_eq!(
        names[0],
        ["strip_unused_nodes", "remove_nodes", "fold_old_batch_norms"]
    );
    assert_eq!(
        names[1].last().map(String::as_str),
        Some("fold_old_batch_norms")
    );
    assert_eq!(names[6].len(), 7);
    assert_eq!(names[7], ["insert_logging"]);
}

#[test]
fn parameters_parse_as_tensorflow_parses_them() {
    let specs = parse(DOC_EXAMPLES[0]).unwrap();
    assert_eq!(
        specs[0].params,
        params(&[("shape", &["1,299,299,3"]), ("type", &["float"])])
    );
    assert_eq!(
        specs[1].params,
        params(&[("op", &["Identity", "CheckNumerics"])])
    );
    let logging = &parse(DOC_EXAMPLES[7]).unwrap()[0];
    assert_eq!(
        logging.params,
        params(&[
            ("message", &["__requant_min_max:"]),
            ("op", &["RequantizationRange"]),
            ("show_name", &["true"]),
        ])
    );
    let strip = &parse(DOC_EXAMPLES[8]).unwrap()[0];
    assert_eq!(
        strip.params,
        params(&[
            ("name", &["in1", "in2"]),
            ("shape_for_name", &["2,3", "1,10,10,3"]),
            ("type_for_name", &["int32", "float"]),
        ])
    );
    let hypothetical = &parse(DOC_EXAMPLES[9]).unwrap()[0];
    assert_eq!(
        hypothetical.params,
        params(&[("bar", &["2"]), ("bob", &["1,2,3"]), ("foo", &["a", "b"])])
    );
}

#[test]
fn tensorflow_corner_cases() {
    // Empty parentheses, a leading comma, quoted values with spaces and escaped quotes.
    let specs = parse("a() b(,x=1) c(msg=\"hello, world\") d(q=\"say \\\"hi\\\"\")").unwrap();
    assert_eq!(specs.len(), 4);
    assert!(specs[0].params.is_empty());
    assert_eq!(specs[1].params, params(&[("x", &["1"])]));
    assert_eq!(specs[2].params, params(&[("msg", &["hello, world"])]));
    assert_eq!(specs[3].params, params(&[("q", &["say \\\"hi\\\""])]));
    assert!(parse("").unwrap().is_empty());
    assert!(parse("  \n\t ").unwrap().is_empty());
    // Values TensorFlow accepts unquoted.
    let specs = parse("set_device(device=/cpu-0.x)").unwrap();
    assert_eq!(specs[0].params, params(&[("device", &["/cpu-0.x"])]));
    // Lenient white space around '=' and before ')'.
    let specs = parse("f( a = 1 , b=2 )").unwrap();
    assert_eq!(specs[0].params, params(&[("a", &["1"]), ("b", &["2"])]));
}

#[test]
fn columns_are_recorded_and_canonical_form_round_trips() {
    let specs =
        parse("  remove_device   set_device(device=\"/device:CPU:0\", if_default=true)").unwrap();
    assert_eq!(specs[0].column, 3);
    assert_eq!(specs[1].column, 19);
    let text = canonical(&specs);
    assert_eq!(
        text,
        "remove_device set_device(device=\"/device:CPU:0\", if_default=true)"
    );
    let reparsed = parse(&text).unwrap();
    assert_eq!(reparsed.len(), specs.len());
    for (a, b) in reparsed.iter().zip(&specs) {
        assert_eq!((&a.name, &a.params), (&b.name, &b.params));
    }
}

#[test]
fn malformed_strings_fail_with_a_position() {
    let cases: &[(&str, usize, &str)] = &[
        ("fold_constants, fold_batch_norms", 15, "not commas"),
        ("strip_unused_nodes(type=float", 30, "not closed"),
        ("f(shape=\"1,2)", 9, "not closed"),
        ("f(a)", 4, "expected '='"),
        ("f(a=)", 5, "expected a value"),
        ("f(=1)", 3, "expected a parameter name"),
        ("f(a=1 b=2)", 7, "expected ',' or ')'"),
        ("f(a=1))", 7, "expected a transform name"),
        ("f-g", 2, "expected '('"),
        ("(a=1)", 1, "expected a transform name"),
        ("a \\ b", 3, "expected a transform name"),
    ];
    for (text, column, message) in cases {
        let error = parse(text).expect_err(text);
        assert_eq!(error.column, *column, "{text:?}: {error}");
        assert!(error.to_string().contains(message), "{text:?}: {error}");
        assert!(
            error.to_string().contains(&format!("column {column}")),
            "{error}"
        );
    }
}

#[test]
fn unknown_transforms_and_parameters_are_rejected_before_running() {
    let registry = Registry::with_builtins();
    let error = registry
        .check(&parse("remove_device frobnicate").unwrap())
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("'frobnicate': not a known transform (column 15)"),
        "{error}"
    );
    let error = registry
        .check(&parse("set_device(devcie=x)").unwrap())
        .unwrap_err();
    assert!(
        error.to_string().contains("unknown parameter 'devcie'"),
        "{error}"
    );
    assert!(
        error.to_string().contains("it takes: device, if_default"),
        "{error}"
    );
    let error = registry
        .check(&parse("remove_device(ignore_errors=maybe)").unwrap())
        .unwrap_err();
    assert!(error.to_string().contains("true or false"), "{error}");
    assert!(registry
        .check(&parse("remove_device(ignore_errors=TRUE)").unwrap())
        .is_ok());
}
