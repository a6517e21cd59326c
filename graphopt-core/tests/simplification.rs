//! `simplify_arithmetic` and `remove_leftovers`, one rewrite at a time on small graphs: each
//! rewrite happens where it is exact, keeps the outputs (bit for bit where nothing is
//! recomputed), and does not happen where it would change a shape, a sign or a shared value.

mod common;

use common::graphs::{attr, dtype, graph, input, int32s, ints, node, placeholder};
use graphopt_core::proto::{attr_value, DataType, GraphDef, NodeDef};
use graphopt_core::tensor::Tensor;
use graphopt_core::transforms::{self, Registry};

fn run(graph: &GraphDef, transform: &str, outputs: &[&str]) -> GraphDef {
    let mut out = graph.clone();
    let specs = transforms::parse(transform).unwrap();
    let outputs: Vec<String> = outputs.iter().map(|s| s.to_string()).collect();
    transforms::run(&Registry::with_builtins(), &mut out, &specs, &[], &outputs).unwrap();
    out
}

fn ops(graph: &GraphDef) -> Vec<&str> {
    graph.node.iter().map(|n| n.op.as_str()).collect()
}

fn count(graph: &GraphDef, op: &str) -> usize {
    graph.node.iter().filter(|n| n.op == op).count()
}

fn scalar(name: &str, value: f32) -> NodeDef {
    let t = Tensor::from_data(graphopt_core::tensor::Data::F32(
        ndarray::ArrayD::from_elem(ndarray::IxDyn(&[]), value),
    ));
    graphopt_core::graph::edit::const_node(name.into(), String::new(), &t)
}

fn filled(name: &str, dims: &[usize], value: f32) -> NodeDef {
    let t = Tensor::from_data(graphopt_core::tensor::Data::F32(
        ndarray::ArrayD::from_elem(ndarray::IxDyn(dims), value),
    ));
    graphopt_core::graph::edit::const_node(name.into(), String::new(), &t)
}

/// `x` ([2, 3, 4]), then `nodes`, then `y = Relu(last)` so the rewritten node is not an output.
fn around(last: &str, nodes: Vec<NodeDef>) -> GraphDef {
    let mut all = vec![placeholder("x", &[2, 3, 4])];
    all.extend(nodes);
    all.push(node("y", "Relu", &[last], &[]));
    graph(all)
}

fn outputs(graph: &GraphDef) -> Vec<f64> {
    let x = input(&[2, 3, 4], 7);
    common::graphs::evaluate(graph, &x, &["y"])[0]
        .floats()
        .unwrap()
}

/// `transform` leaves none of `gone` and computes the same `y`; exact when `exact`.
fn removes(graph: &GraphDef, transform: &str, gone: &[&str], exact: bool) -> GraphDef {
    let after = run(graph, transform, &["y"]);
    for op in gone {
        assert_eq!(
            count(&after, op),
            0,
            "{op} left by {transform}: {:?}",
            ops(&after)
        );
    }
    let (want, got) = (outputs(graph), outputs(&after));
    if exact {
        assert_eq!(want, got, "{transform} changed the values");
    } else {
        for (w, g) in want.iter().zip(&got) {
            assert!((w - g).abs() <= 1e-6 * w.abs().max(1.0), "{w} vs {g}");
        }
    }
    after
}

/// `transform` changes nothing in `graph` (node for node).
fn keeps(graph: &GraphDef, transform: &str, why: &str) {
    let after = run(graph, transform, &["y"]);
    assert_eq!(ops(&after), ops(graph), "{transform}: {why}");
}

#[test]
fn neutral_operands_become_the_other_operand() {
    let cases: &[(&str, &str, f32, bool)] = &[
        ("AddV2", "x + 0", 0.0, true),
        ("AddV2", "0 + x", 0.0, false),
        ("Add", "x + 0", 0.0, true),
        ("Sub", "x - 0", 0.0, true),
        ("Mul", "x * 1", 1.0, true),
        ("Mul", "1 * x", 1.0, false),
        ("RealDiv", "x / 1", 1.0, true),
        ("Div", "x / 1", 1.0, true),
    ];
    for &(op, what, value, constant_second) in cases {
        let inputs = if constant_second {
            ["x", "c"]
        } else {
            ["c", "x"]
        };
        let g = around("a", vec![scalar("c", value), node("a", op, &inputs, &[])]);
        let after = removes(&g, "simplify_arithmetic remove_leftovers", &[op], true);
        assert_eq!(ops(&after), ["Placeholder", "Relu"], "{what}");
    }
    // A zero bias, and the same constant as a whole tensor of x's shape.
    let bias = around(
        "b",
        vec![
            filled("zero", &[4], 0.0),
            node("b", "BiasAdd", &["x", "zero"], &[]),
        ],
    );
    removes(&bias, "simplify_arithmetic", &["BiasAdd"], true);
    let same_shape = around(
        "m",
        vec![
            filled("ones", &[2, 3, 4], 1.0),
            node("m", "Mul", &["x", "ones"], &[]),
        ],
    );
    removes(&same_shape, "simplify_arithmetic", &["Mul"], true);
}

/// [`around`] with `x` declared of `dims` (fed [2, 3, 4] all the same).
fn around_declared(dims: &[i64], last: &str, nodes: Vec<NodeDef>) -> GraphDef {
    let mut g = around(last, nodes);
    g.node[0] = placeholder("x", dims);
    g
}

#[test]
fn neutral_per_channel_constants_go_when_only_the_batch_is_unknown() {
    // Keras' Normalization with zero mean and unit variance: `(x - zeros) / ones`, both of
    // shape [1, 1, C], on an input whose batch is unknown.
    let g = around_declared(
        &[-1, 3, 4],
        "d",
        vec![
            filled("zeros", &[1, 1, 4], 0.0),
            filled("ones", &[1, 1, 4], 1.0),
            node("s", "Sub", &["x", "zeros"], &[]),
            node("d", "RealDiv", &["s", "ones"], &[]),
        ],
    );
    let after = removes(
        &g,
        "simplify_arithmetic remove_leftovers",
        &["Sub", "RealDiv"],
        true,
    );
    assert_eq!(ops(&after), ["Placeholder", "Relu"]);
    // Where an unknown dimension meets a constant dimension other than 1, or the constant
    // has more dimensions, broadcasting could change the shape: kept.
    for (dims, constant, why) in [
        (
            &[-1i64, 3, -1][..],
            &[1usize, 1, 4][..],
            "the channel count is unknown",
        ),
        (&[-1, 3, 4], &[2, 1, 1], "a batch of 1 would broadcast to 2"),
        (&[-1, 3, 4], &[1, 1, 1, 4], "the constant adds a dimension"),
    ] {
        let g = around_declared(
            dims,
            "d",
            vec![
                filled("ones", constant, 1.0),
                node("d", "RealDiv", &["x", "ones"], &[]),
            ],
        );
        keeps(&g, "simplify_arithmetic", why);
    }
}

#[test]
fn neutral_operands_that_would_change_the_shape_or_sign_stay() {
    // x [2,3,4] + zeros [5,2,3,4] broadcasts to a larger shape.
    let broadcast = around(
        "a",
        vec![
            filled("zeros", &[5, 2, 3, 4], 0.0),
            node("a", "AddV2", &["x", "zeros"], &[]),
        ],
    );
    keeps(
        &broadcast,
        "simplify_arithmetic",
        "a broadcasting zero widens x",
    );
    let cases: &[(&str, f32, &str)] = &[
        ("Sub", 0.0, "0 - x is -x"),
        ("RealDiv", 1.0, "1 / x is a reciprocal"),
    ];
    for &(op, value, why) in cases {
        let g = around(
            "a",
            vec![scalar("c", value), node("a", op, &["c", "x"], &[])],
        );
        keeps(&g, "simplify_arithmetic", why);
    }
    let almost = around(
        "a",
        vec![scalar("c", 1.0 + 1e-6), node("a", "Mul", &["x", "c"], &[])],
    );
    keeps(&almost, "simplify_arithmetic", "a scale near 1 is not 1");
    // The output itself keeps its op (it is protected).
    let g = graph(vec![
        placeholder("x", &[2, 3, 4]),
        scalar("c", 1.0),
        node("y", "Mul", &["x", "c"], &[]),
    ]);
    keeps(&g, "simplify_arithmetic", "an output keeps its op");
}

#[test]
fn double_negation_and_identity_transposes_go() {
    let neg = around(
        "n2",
        vec![
            node("n1", "Neg", &["x"], &[]),
            node("n2", "Neg", &["n1"], &[]),
        ],
    );
    let after = removes(&neg, "simplify_arithmetic remove_leftovers", &["Neg"], true);
    assert_eq!(ops(&after), ["Placeholder", "Relu"]);
    // The inner Neg read elsewhere too: -x is still needed, so nothing is gained.
    let mut shared = neg.clone();
    shared.node.push(node("z", "Relu", &["n1"], &[]));
    let after = run(&shared, "simplify_arithmetic", &["y", "z"]);
    assert_eq!(count(&after, "Neg"), 2, "{:?}", ops(&after));

    let transpose = |perm: &[i32]| {
        around(
            "t",
            vec![
                int32s("perm", &[3], perm),
                node(
                    "t",
                    "Transpose",
                    &["x", "perm"],
                    &[("Tperm", dtype(DataType::DtInt32))],
                ),
            ],
        )
    };
    removes(
        &transpose(&[0, 1, 2]),
        "simplify_arithmetic",
        &["Transpose"],
        true,
    );
    keeps(
        &transpose(&[0, 2, 1]),
        "simplify_arithmetic",
        "a real permutation",
    );
}

#[test]
fn chains_of_constant_operands_fold_into_one() {
    let chain = |inner: &str, outer: &str| {
        around(
            "o",
            vec![
                common::graphs::floats("c1", &[4], 3),
                common::graphs::floats("c2", &[4], 4),
                node("i", inner, &["x", "c1"], &[]),
                node("o", outer, &["i", "c2"], &[]),
            ],
        )
    };
    let after = removes(&chain("Mul", "Mul"), "simplify_arithmetic", &[], false);
    assert_eq!(count(&after, "Mul"), 1, "{:?}", ops(&after));
    for (inner, outer) in [
        ("AddV2", "Sub"),
        ("Sub", "AddV2"),
        ("Sub", "Sub"),
        ("Add", "Add"),
    ] {
        let after = removes(
            &chain(inner, outer),
            "simplify_arithmetic",
            &["Sub", "Add"],
            false,
        );
        assert_eq!(
            count(&after, "AddV2"),
            1,
            "{inner} then {outer}: {:?}",
            ops(&after)
        );
    }
    // Mixed families and a shared inner node stay.
    keeps(
        &chain("Mul", "AddV2"),
        "simplify_arithmetic",
        "x*c1 + c2 is not one op",
    );
    let mut shared = chain("Mul", "Mul");
    shared.node.push(node("z", "Relu", &["i"], &[]));
    let after = run(&shared, "simplify_arithmetic", &["y", "z"]);
    assert_eq!(
        count(&after, "Mul"),
        2,
        "the inner product is read elsewhere"
    );
    // c1 - x: folding would lose the sign of x.
    let flipped = around(
        "o",
        vec![
            common::graphs::floats("c1", &[4], 3),
            common::graphs::floats("c2", &[4], 4),
            node("i", "Sub", &["c1", "x"], &[]),
            node("o", "AddV2", &["i", "c2"], &[]),
        ],
    );
    keeps(&flipped, "simplify_arithmetic", "c1 - x then + c2");
}

fn identity_like(op: &str) -> NodeDef {
    let mut n = node("l", op, &["x"], &[]);
    if op == "IdentityN" {
        n.attr.insert(
            "T".into(),
            attr(attr_value::Value::List(Box::new(attr_value::ListValue {
                r#type: vec![DataType::DtFloat as i32],
                ..Default::default()
            }))),
        );
    }
    n
}

#[test]
fn identity_like_leftovers_go() {
    for op in [
        "Identity",
        "IdentityN",
        "StopGradient",
        "Snapshot",
        "PreventGradient",
    ] {
        let after = removes(
            &around("l", vec![identity_like(op)]),
            "remove_leftovers",
            &[op],
            true,
        );
        assert_eq!(ops(&after), ["Placeholder", "Relu"], "{op}");
    }
    let cast = |to: DataType| {
        node(
            "l",
            "Cast",
            &["x"],
            &[
                ("SrcT", dtype(DataType::DtFloat)),
                ("DstT", dtype(to)),
                ("Truncate", attr_value::Value::B(false)),
            ],
        )
    };
    removes(
        &around("l", vec![cast(DataType::DtFloat)]),
        "remove_leftovers",
        &["Cast"],
        true,
    );
    let mut to_half = around("l", vec![cast(DataType::DtHalf)]);
    // y reads a half now.
    let y = to_half.node.last_mut().unwrap();
    y.attr.insert("T".into(), attr(dtype(DataType::DtHalf)));
    let after = run(&to_half, "remove_leftovers", &["y"]);
    assert_eq!(count(&after, "Cast"), 1, "a real conversion stays");
}

#[test]
fn shape_no_ops_go_and_real_reshapes_stay() {
    let reshape = |dims: &[i32]| {
        around(
            "r",
            vec![
                int32s("shape", &[dims.len()], dims),
                node(
                    "r",
                    "Reshape",
                    &["x", "shape"],
                    &[("Tshape", dtype(DataType::DtInt32))],
                ),
            ],
        )
    };
    removes(&reshape(&[2, 3, 4]), "remove_leftovers", &["Reshape"], true);
    removes(
        &reshape(&[2, -1, 4]),
        "remove_leftovers",
        &["Reshape"],
        true,
    );
    keeps(
        &reshape(&[6, 4]),
        "remove_leftovers",
        "a reshape to another shape",
    );

    let expand_then_squeeze = |expand_at: i32, squeeze_at: i64| {
        around(
            "s",
            vec![
                int32s("axis", &[], &[expand_at]),
                node(
                    "e",
                    "ExpandDims",
                    &["x", "axis"],
                    &[("Tdim", dtype(DataType::DtInt32))],
                ),
                node(
                    "s",
                    "Squeeze",
                    &["e"],
                    &[("squeeze_dims", ints(&[squeeze_at]))],
                ),
            ],
        )
    };
    removes(
        &expand_then_squeeze(1, 1),
        "remove_leftovers",
        &["ExpandDims", "Squeeze"],
        true,
    );
    removes(
        &expand_then_squeeze(-1, 3),
        "remove_leftovers",
        &["ExpandDims", "Squeeze"],
        true,
    );
    let mut squeeze_then_expand = graph(vec![
        placeholder("x", &[2, 1, 4]),
        node("s", "Squeeze", &["x"], &[("squeeze_dims", ints(&[1]))]),
        int32s("axis", &[], &[1]),
        node(
            "e",
            "ExpandDims",
            &["s", "axis"],
            &[("Tdim", dtype(DataType::DtInt32))],
        ),
        node("y", "Relu", &["e"], &[]),
    ]);
    let after = run(&squeeze_then_expand, "remove_leftovers", &["y"]);
    assert_eq!(
        ops(&after),
        ["Placeholder", "Relu"],
        "squeeze undone by expand"
    );
    squeeze_then_expand.node[2] = int32s("axis", &[], &[2]);
    let after = run(&squeeze_then_expand, "remove_leftovers", &["y"]);
    assert_eq!(
        count(&after, "Squeeze"),
        1,
        "expanding elsewhere moves the axis"
    );

    let transposes = |second: &[i32]| {
        around(
            "t2",
            vec![
                int32s("p1", &[3], &[1, 2, 0]),
                int32s("p2", &[3], second),
                node(
                    "t1",
                    "Transpose",
                    &["x", "p1"],
                    &[("Tperm", dtype(DataType::DtInt32))],
                ),
                node(
                    "t2",
                    "Transpose",
                    &["t1", "p2"],
                    &[("Tperm", dtype(DataType::DtInt32))],
                ),
            ],
        )
    };
    // [1,2,0] then its inverse [2,0,1] is the identity.
    removes(
        &transposes(&[2, 0, 1]),
        "remove_leftovers",
        &["Transpose"],
        true,
    );
    let after = run(&transposes(&[1, 2, 0]), "remove_leftovers", &["y"]);
    assert_eq!(count(&after, "Transpose"), 2, "two rotations do not cancel");
}

/// A Const named in --inputs holds what is fed: a Transpose pair or nested concatenation is
/// judged by its permutations or axes only where they are not fed.
#[test]
fn fed_permutations_and_axes_are_no_constants() {
    let run_fed = |g: &GraphDef, transform: &str, fed: &str| {
        let mut out = g.clone();
        let specs = transforms::parse(transform).unwrap();
        let inputs = ["x".to_string(), fed.to_string()];
        transforms::run(
            &Registry::with_builtins(),
            &mut out,
            &specs,
            &inputs,
            &["y".into()],
        )
        .unwrap();
        out
    };
    let tperm = || [("Tperm", dtype(DataType::DtInt32))];
    let transposes = around(
        "t2",
        vec![
            int32s("p1", &[3], &[1, 2, 0]),
            int32s("p2", &[3], &[2, 0, 1]),
            node("t1", "Transpose", &["x", "p1"], &tperm()),
            node("t2", "Transpose", &["t1", "p2"], &tperm()),
        ],
    );
    for fed in ["p1", "p2"] {
        let after = run_fed(&transposes, "remove_leftovers", fed);
        assert_eq!(count(&after, "Transpose"), 2, "{fed} fed");
    }
    let concat = |name: &str, inputs: &[&str]| {
        node(
            name,
            "ConcatV2",
            inputs,
            &[
                ("N", attr_value::Value::I(2)),
                ("Tidx", dtype(DataType::DtInt32)),
            ],
        )
    };
    let nested = around(
        "outer",
        vec![
            int32s("a1", &[], &[0]),
            int32s("a2", &[], &[0]),
            concat("inner", &["x", "x", "a1"]),
            concat("outer", &["inner", "x", "a2"]),
        ],
    );
    assert_eq!(
        count(&run(&nested, "simplify_arithmetic", &["y"]), "ConcatV2"),
        1
    );
    for fed in ["a1", "a2"] {
        let after = run_fed(&nested, "simplify_arithmetic", fed);
        assert_eq!(count(&after, "ConcatV2"), 2, "{fed} fed");
    }
}

#[test]
fn control_anchors_that_order_nothing_go() {
    let mut g = around("a", vec![node("a", "Relu", &["x"], &[])]);
    g.node.push(NodeDef {
        name: "anchor".into(),
        op: "NoOp".into(),
        input: vec!["^a".into()],
        ..Default::default()
    });
    let y = g.node.iter_mut().find(|n| n.name == "y").unwrap();
    y.input.push("^anchor".into());
    let after = removes(&g, "remove_leftovers", &["NoOp"], true);
    assert!(after
        .node
        .iter()
        .all(|n| n.input.iter().all(|i| !i.starts_with('^'))));
}

/// `node(name, "AddN", inputs)` with its `N`.
fn add_n(name: &str, inputs: &[&str]) -> NodeDef {
    node(
        name,
        "AddN",
        inputs,
        &[("N", attr_value::Value::I(inputs.len() as i64))],
    )
}

#[test]
fn common_factors_are_hoisted_out_of_sums() {
    use common::graphs::floats;
    // x*c1 + x*c2 -> x*(c1 + c2): the constant factors summed into one constant.
    for (op, first, second) in [
        ("Add", ["x", "c1"], ["x", "c2"]),
        ("AddV2", ["c1", "x"], ["x", "c2"]),
        ("AddV2", ["x", "c1"], ["c2", "x"]),
    ] {
        let g = around(
            "s",
            vec![
                floats("c1", &[4], 3),
                floats("c2", &[4], 4),
                node("m1", "Mul", &first, &[]),
                node("m2", "Mul", &second, &[]),
                node("s", op, &["m1", "m2"], &[]),
            ],
        );
        let after = removes(&g, "simplify_arithmetic", &[op], false);
        assert_eq!(count(&after, "Mul"), 1, "{op}: {:?}", ops(&after));
        assert_eq!(count(&after, "Const"), 1, "{op}: {:?}", ops(&after));
    }
    // An AddN of three, a scalar among the factors of one shape ([] and [] and []).
    let g = around(
        "s",
        vec![
            scalar("c1", 0.5),
            scalar("c2", -2.0),
            scalar("c3", 0.25),
            node("m1", "Mul", &["x", "c1"], &[]),
            node("m2", "Mul", &["x", "c2"], &[]),
            node("m3", "Mul", &["c3", "x"], &[]),
            add_n("s", &["m1", "m2", "m3"]),
        ],
    );
    let after = removes(&g, "simplify_arithmetic", &["AddN"], false);
    assert_eq!(ops(&after), ["Placeholder", "Const", "Mul", "Relu"]);
    // Other factors computed at run time, of one static shape: a new sum of them.
    let g = around(
        "s",
        vec![
            floats("k", &[4], 5),
            node("u", "Relu", &["x"], &[]),
            node("v", "Tanh", &["x"], &[]),
            node("m1", "Mul", &["u", "k"], &[]),
            node("m2", "Mul", &["k", "v"], &[]),
            node("s", "AddV2", &["m1", "m2"], &[]),
        ],
    );
    let after = removes(&g, "simplify_arithmetic", &[], false);
    assert_eq!(count(&after, "Mul"), 1, "{:?}", ops(&after));
    assert_eq!(count(&after, "AddV2"), 1, "{:?}", ops(&after));
    let g = around(
        "s",
        vec![
            node("u", "Relu", &["x"], &[]),
            node("v", "Tanh", &["x"], &[]),
            node("w", "Sigmoid", &["x"], &[]),
            node("m1", "Mul", &["x", "u"], &[]),
            node("m2", "Mul", &["v", "x"], &[]),
            node("m3", "Mul", &["x", "w"], &[]),
            add_n("s", &["m1", "m2", "m3"]),
        ],
    );
    let after = removes(&g, "simplify_arithmetic", &[], false);
    assert_eq!(count(&after, "Mul"), 1, "{:?}", ops(&after));
    assert_eq!(count(&after, "AddN"), 1, "{:?}", ops(&after));
    // a/d + b/d -> (a + b)/d, for both division ops.
    for op in ["RealDiv", "Div"] {
        let g = around(
            "s",
            vec![
                floats("d", &[4], 6),
                node("u", "Relu", &["x"], &[]),
                node("q1", op, &["x", "d"], &[]),
                node("q2", op, &["u", "d"], &[]),
                node("s", "AddV2", &["q1", "q2"], &[]),
            ],
        );
        let after = removes(&g, "simplify_arithmetic", &[], false);
        assert_eq!(count(&after, op), 1, "{op}: {:?}", ops(&after));
        let div = after.node.iter().find(|n| n.op == op).unwrap();
        assert_eq!(div.name, "s", "the sum keeps its name");
        let g = around(
            "s",
            vec![
                floats("c1", &[4], 3),
                floats("c2", &[4], 4),
                node("e", "Exp", &["x"], &[]),
                node("q1", op, &["c1", "e"], &[]),
                node("q2", op, &["c2", "e"], &[]),
                node("s", "Add", &["q1", "q2"], &[]),
            ],
        );
        let after = removes(&g, "simplify_arithmetic", &["Add"], false);
        assert_eq!(count(&after, op), 1, "{op}: {:?}", ops(&after));
        assert_eq!(count(&after, "Const"), 1, "{op}: {:?}", ops(&after));
    }
    // The terms' control inputs are kept, on the rewritten sum.
    let mut g = around(
        "s",
        vec![
            floats("c1", &[4], 3),
            floats("c2", &[4], 4),
            node("anchor", "Relu", &["x"], &[]),
            node("m1", "Mul", &["x", "c1", "^anchor"], &[]),
            node("m2", "Mul", &["x", "c2"], &[]),
            node("s", "AddV2", &["m1", "m2"], &[]),
        ],
    );
    g.node.push(node("z", "Relu", &["anchor"], &[]));
    let after = run(&g, "simplify_arithmetic", &["y", "z"]);
    let s = after.node.iter().find(|n| n.name == "s").unwrap();
    assert_eq!(s.op, "Mul");
    assert!(s.input.contains(&"^anchor".to_string()), "{:?}", s.input);
}

#[test]
fn common_factors_that_are_shared_unequal_or_not_distributive_stay() {
    use common::graphs::floats;
    let sum_of = |first: [&str; 2], second: [&str; 2], op: &str, consts: Vec<NodeDef>| {
        let mut nodes = consts;
        nodes.push(node("t1", op, &first, &[]));
        nodes.push(node("t2", op, &second, &[]));
        nodes.push(node("s", "AddV2", &["t1", "t2"], &[]));
        around("s", nodes)
    };
    let two = || vec![floats("c1", &[4], 3), floats("c2", &[4], 4)];
    // A term read elsewhere too: it stays, so nothing is gained.
    let mut shared = sum_of(["x", "c1"], ["x", "c2"], "Mul", two());
    shared.node.push(node("z", "Relu", &["t1"], &[]));
    let after = run(&shared, "simplify_arithmetic", &["y", "z"]);
    assert_eq!(ops(&after), ops(&shared), "a term with another reader");
    // Other factors of different static shapes ([4] and [3, 4]).
    keeps(
        &sum_of(
            ["x", "c1"],
            ["x", "c2"],
            "Mul",
            vec![floats("c1", &[4], 3), floats("c2", &[3, 4], 4)],
        ),
        "simplify_arithmetic",
        "other factors of different shapes",
    );
    // No common factor, one whose other factors differ in shape, a Mul with a Div, a common
    // numerator (x/a + x/b is not x/(a + b)).
    keeps(
        &sum_of(["x", "c1"], ["c2", "c2"], "Mul", two()),
        "simplify_arithmetic",
        "x*c1 + c2*c2: no common factor",
    );
    keeps(
        &sum_of(["x", "c1"], ["c2", "c1"], "Mul", two()),
        "simplify_arithmetic",
        "x*c1 + c2*c1: c1 is common, but x and c2 differ in shape",
    );
    keeps(
        &around(
            "s",
            vec![
                floats("c1", &[4], 3),
                floats("c2", &[4], 4),
                node("t1", "Mul", &["x", "c1"], &[]),
                node("t2", "RealDiv", &["c2", "c1"], &[]),
                node("s", "AddV2", &["t1", "t2"], &[]),
            ],
        ),
        "simplify_arithmetic",
        "a product and a quotient",
    );
    keeps(
        &sum_of(["x", "c1"], ["x", "c2"], "RealDiv", two()),
        "simplify_arithmetic",
        "a common numerator",
    );
    // Only sums: a difference, a product or a quotient of two such terms is no aggregation.
    for op in ["Sub", "Mul", "RealDiv", "BiasAdd"] {
        let g = around(
            "s",
            vec![
                floats("c1", &[4], 3),
                floats("c2", &[4], 4),
                node("t1", "Mul", &["x", "c1"], &[]),
                node("t2", "Mul", &["x", "c2"], &[]),
                node("s", op, &["t1", "t2"], &[]),
            ],
        );
        keeps(&g, "simplify_arithmetic", op);
    }
    // Both factors common (x*c1 + x*c1): Grappler leaves it, and so does this.
    keeps(
        &sum_of(["x", "c1"], ["c1", "x"], "Mul", two()),
        "simplify_arithmetic",
        "two common factors",
    );
    // An output keeps its op.
    let g = graph(vec![
        placeholder("x", &[2, 3, 4]),
        floats("c1", &[4], 3),
        floats("c2", &[4], 4),
        node("t1", "Mul", &["x", "c1"], &[]),
        node("t2", "Mul", &["x", "c2"], &[]),
        node("y", "AddV2", &["t1", "t2"], &[]),
    ]);
    keeps(&g, "simplify_arithmetic", "an output keeps its op");
    // Integer division does not distribute: (7 + 7) / 2 = 7, 7/2 + 7/2 = 6.
    let int = |name: &str, op: &str, inputs: &[&str]| {
        node(name, op, inputs, &[("T", dtype(DataType::DtInt32))])
    };
    let cast = |name: &str, input: &str, from: DataType, to: DataType| {
        node(
            name,
            "Cast",
            &[input],
            &[("SrcT", dtype(from)), ("DstT", dtype(to))],
        )
    };
    let g = around(
        "back",
        vec![
            int32s("d", &[], &[2]),
            int32s("k", &[], &[7]),
            cast("xi", "x", DataType::DtFloat, DataType::DtInt32),
            int("n1", "AddV2", &["xi", "k"]),
            int("n2", "AddV2", &["k", "xi"]),
            int("q1", "Div", &["n1", "d"]),
            int("q2", "Div", &["n2", "d"]),
            int("s", "AddV2", &["q1", "q2"]),
            cast("back", "s", DataType::DtInt32, DataType::DtFloat),
        ],
    );
    let after = removes(&g, "simplify_arithmetic", &[], true);
    assert_eq!(count(&after, "Div"), 2, "integer division hoisted");
}

#[test]
fn control_edges_that_order_a_variable_read_before_a_write_stay() {
    // In a function body the variable is a resource argument, not a VarHandleOp: the read
    // itself is what the write must wait for (tf.function's automatic control dependencies).
    let mut resource = placeholder("v", &[]);
    resource
        .attr
        .insert("dtype".into(), attr(dtype(DataType::DtResource)));
    let g = graph(vec![
        resource,
        placeholder("x", &[2]),
        node(
            "read",
            "ReadVariableOp",
            &["v"],
            &[("dtype", dtype(DataType::DtFloat))],
        ),
        node("y", "Neg", &["read"], &[("T", dtype(DataType::DtFloat))]),
        node(
            "assign",
            "AssignVariableOp",
            &["v", "x", "^read"],
            &[("dtype", dtype(DataType::DtFloat))],
        ),
        // A pure node's control edge still goes.
        node("w", "Neg", &["x"], &[("T", dtype(DataType::DtFloat))]),
        node("z", "Neg", &["x", "^w"], &[("T", dtype(DataType::DtFloat))]),
    ]);
    let after = run(&g, "remove_leftovers", &["y", "assign", "z", "w"]);
    let inputs = |name: &str| {
        after
            .node
            .iter()
            .find(|n| n.name == name)
            .map(|n| n.input.clone())
            .unwrap_or_default()
    };
    assert_eq!(inputs("assign"), ["v", "x", "^read"]);
    assert_eq!(inputs("z"), ["x"]);
}

#[test]
fn deploy_keeps_what_a_function_body_returns_and_its_control_returns() {
    use graphopt_core::proto::op_def::ArgDef;
    use graphopt_core::proto::{FunctionDef, FunctionDefLibrary, NameAttrList, OpDef};
    let float = || dtype(DataType::DtFloat);
    let arg = |name: &str| ArgDef {
        name: name.into(),
        r#type: DataType::DtFloat as i32,
        ..Default::default()
    };
    // y = x * (c + c2), returned through an Identity; `c` is also a control return.
    let mut body = FunctionDef {
        signature: Some(OpDef {
            name: "scale".into(),
            input_arg: vec![arg("x")],
            output_arg: vec![arg("y")],
            ..Default::default()
        }),
        node_def: vec![
            scalar("c", 2.0),
            scalar("c2", 3.0),
            node(
                "s",
                "AddV2",
                &["c:output:0", "c2:output:0"],
                &[("T", float())],
            ),
            node("m", "Mul", &["x", "s:z:0"], &[("T", float())]),
            node("Identity", "Identity", &["m:z:0"], &[("T", float())]),
        ],
        ..Default::default()
    };
    body.ret.insert("y".into(), "Identity:output:0".into());
    body.control_ret.insert("k".into(), "c".into());
    let list = |values: Vec<i32>| {
        attr_value::Value::List(Box::new(attr_value::ListValue {
            r#type: values,
            ..Default::default()
        }))
    };
    let mut g = graph(vec![
        placeholder("x", &[2]),
        node(
            "call",
            "PartitionedCall",
            &["x"],
            &[
                ("Tin", list(vec![DataType::DtFloat as i32])),
                ("Tout", list(vec![DataType::DtFloat as i32])),
                (
                    "f",
                    attr_value::Value::Func(NameAttrList {
                        name: "scale".into(),
                        ..Default::default()
                    }),
                ),
            ],
        ),
    ]);
    g.library = Some(FunctionDefLibrary {
        function: vec![body],
        ..Default::default()
    });
    let after = run(&g, "@deploy", &["call"]);
    let function = &after.library.as_ref().expect("library").function[0];
    let names: Vec<&str> = function.node_def.iter().map(|n| n.name.as_str()).collect();
    // s folded into one constant; the Identity skipped; `c` kept for its control return.
    assert!(names.contains(&"c"), "{names:?}");
    assert!(
        !names.contains(&"Identity") && !names.contains(&"c2"),
        "{names:?}"
    );
    assert_eq!(function.ret.get("y").map(String::as_str), Some("m:z:0"));
    assert_eq!(function.control_ret.get("k").map(String::as_str), Some("c"));
    let feeds = [(
        "x".to_string(),
        Tensor::from_data(graphopt_core::tensor::Data::F32(
            ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[2]), vec![1.0, -2.0]).unwrap(),
        )),
    )]
    .into_iter()
    .collect();
    let out = graphopt_core::eval::evaluate(&after, &feeds, &["call".into()], Default::default())
        .unwrap();
    assert_eq!(out[0].floats().unwrap(), vec![5.0, -10.0]);
}

fn concat(name: &str, parts: &[&str], axis: &str) -> NodeDef {
    let mut inputs = parts.to_vec();
    inputs.push(axis);
    node(
        name,
        "ConcatV2",
        &inputs,
        &[
            ("N", attr_value::Value::I(parts.len() as i64)),
            ("Tidx", dtype(DataType::DtInt32)),
        ],
    )
}

fn axis(name: &str, value: i32) -> NodeDef {
    int32s(name, &[], &[value])
}

#[test]
fn an_activation_on_every_part_of_a_concat_moves_after_it() {
    // An Inception block's branches, each ending in a Relu, concatenated on the channels.
    let block = around(
        "c",
        vec![
            node("neg", "Neg", &["x"], &[]),
            node("r1", "Relu", &["x"], &[]),
            node("r2", "Relu", &["neg"], &[]),
            node("r3", "Relu", &["x"], &[]),
            axis("axis", 2),
            concat("c", &["r1", "r2", "r3"], "axis"),
        ],
    );
    let after = removes(&block, "simplify_arithmetic", &[], true);
    assert_eq!(count(&after, "Relu"), 2, "{:?}", ops(&after)); // the hoisted one and `y`
    let c = after.node.iter().find(|n| n.name == "c").unwrap();
    assert_eq!(c.op, "Relu");
    // Annotations are no part of what a node computes: parts whose `_output_shapes` differ
    // are hoisted too, and the hoisted op keeps the concatenation's.
    let annotated = |mut g: GraphDef| {
        for (name, dims) in [("r1", 1), ("r2", 2), ("r3", 3), ("c", 6)] {
            let n = g.node.iter_mut().find(|n| n.name == name).unwrap();
            n.attr.insert("_output_shapes".into(), attr(ints(&[dims])));
        }
        g
    };
    let after = removes(&annotated(block.clone()), "simplify_arithmetic", &[], true);
    let c = after.node.iter().find(|n| n.name == "c").unwrap();
    assert_eq!(
        (c.op.as_str(), &c.attr["_output_shapes"]),
        ("Relu", &attr(ints(&[6])))
    );
    // Not when a part is read elsewhere, differs in op or attributes, or repeats.
    let mut shared = block.clone();
    shared.node.push(node("z", "Relu", &["r2"], &[]));
    let after = run(&shared, "simplify_arithmetic", &["y", "z"]);
    assert_eq!(count(&after, "ConcatV2"), 1);
    assert_eq!(count(&after, "Relu"), 5, "{:?}", ops(&after));
    let mut mixed = block.clone();
    mixed.node.iter_mut().find(|n| n.name == "r3").unwrap().op = "Relu6".into();
    keeps(&mixed, "simplify_arithmetic", "a Relu6 among Relus");
    let leaky = |alpha: f32| {
        node(
            "",
            "LeakyRelu",
            &["x"],
            &[("alpha", attr_value::Value::F(alpha))],
        )
    };
    let leaky_block = |second: f32| {
        let mut a = leaky(0.2);
        a.name = "l1".into();
        let mut b = leaky(second);
        b.name = "l2".into();
        around(
            "c",
            vec![a, b, axis("axis", 1), concat("c", &["l1", "l2"], "axis")],
        )
    };
    keeps(&leaky_block(0.3), "simplify_arithmetic", "unequal alphas");
    let after = removes(&leaky_block(0.2), "simplify_arithmetic", &[], true);
    assert_eq!(count(&after, "LeakyRelu"), 1, "{:?}", ops(&after));
    let twice = around(
        "c",
        vec![
            node("r1", "Relu", &["x"], &[]),
            axis("axis", 0),
            concat("c", &["r1", "r1"], "axis"),
        ],
    );
    keeps(&twice, "simplify_arithmetic", "one Relu read twice");
}

#[test]
fn a_concat_read_only_by_a_concat_on_the_same_axis_merges_into_it() {
    let nested = around(
        "outer",
        vec![
            node("a", "Neg", &["x"], &[]),
            node("b", "Abs", &["x"], &[]),
            axis("axis", 1),
            concat("inner", &["a", "b"], "axis"),
            concat("outer", &["x", "inner", "a"], "axis"),
        ],
    );
    let after = removes(&nested, "simplify_arithmetic", &[], true);
    assert_eq!(count(&after, "ConcatV2"), 1, "{:?}", ops(&after));
    let outer = after.node.iter().find(|n| n.name == "outer").unwrap();
    assert_eq!(outer.input, ["x", "a", "b", "a", "axis"]);
    assert_eq!(
        outer.attr["N"].value,
        Some(attr_value::Value::I(4)),
        "the part count follows"
    );
    // Another axis, or another reader of the inner concat: both stay.
    let mut other_axis = nested.clone();
    other_axis.node.push(axis("axis0", 0));
    other_axis
        .node
        .iter_mut()
        .find(|n| n.name == "inner")
        .unwrap()
        .input[2] = "axis0".into();
    // [2, 3, 4] and [2, 3, 4] on axis 0, then on axis 1 with [2, 3, 4]: shapes differ, so
    // only the graph's structure is compared.
    let after = run(&other_axis, "simplify_arithmetic", &["y"]);
    assert_eq!(count(&after, "ConcatV2"), 2);
    let mut shared = nested.clone();
    shared.node.push(node("z", "Relu", &["inner"], &[]));
    let after = run(&shared, "simplify_arithmetic", &["y", "z"]);
    assert_eq!(count(&after, "ConcatV2"), 2);
}
