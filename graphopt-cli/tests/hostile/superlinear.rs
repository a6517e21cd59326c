//! Class 8 of the corpus, continued: graphs a few hundred KB long on which a transform or
//! `check` once took quadratic or cubic time (a chain walked once per node, a fixpoint that
//! rewrites one node per round).

use super::*;

const F: DataType = DataType::DtFloat;

/// Short node names (`{prefix}{i}`), so that chains of thousands of nodes stay under 1 MB.
fn name(prefix: &str, i: usize) -> String {
    format!("{prefix}{i}")
}

/// `n` nodes of `op` (type attribute `T` = float), each reading the one before, the first
/// reading `first`; returns the nodes and the last one's name.
fn unary_chain(prefix: &str, op: &str, first: &str, n: usize) -> (Vec<NodeDef>, String) {
    let mut nodes = Vec::with_capacity(n);
    let mut last = first.to_string();
    for i in 0..n {
        let current = name(prefix, i);
        nodes.push(node(&current, op, &[&last], vec![t(F)]));
        last = current;
    }
    (nodes, last)
}

/// A 1x1 stride-1 VALID Conv2D of `input` by `weights`.
fn conv(name: &str, input: &str, weights: &str) -> NodeDef {
    node(
        name,
        "Conv2D",
        &[input, weights],
        vec![
            t(F),
            ("strides", ints(&[1, 1, 1, 1])),
            ("padding", string("VALID")),
        ],
    )
}

/// A 2-channel NHWC image and the shared Consts of the convolution chains: 1x1 weights `w`
/// and a positive per-channel scale `s`.
fn conv_chain_start() -> Vec<NodeDef> {
    vec![
        placeholder("x", F, &[1, 4, 4, 2]),
        floats("w", &[1, 1, 2, 2], &[1.0, 0.5, 0.25, 1.0]),
        floats("s", &[2], &[1.5, 2.0]),
    ]
}

/// `Conv2D -> [Relu ->] Mul(s) -> Conv2D -> ...`: `links` convolutions, each but the last
/// followed by (a Relu and) a Mul by the shared per-channel scale. Returns the graph and the
/// output's name.
fn conv_mul_chain(links: usize, relu: bool) -> (GraphDef, String) {
    let mut nodes = conv_chain_start();
    let mut last = "x".to_string();
    for i in 0..links {
        let c = name("c", i);
        nodes.push(conv(&c, &last, "w"));
        last = c;
        if i + 1 == links {
            break;
        }
        if relu {
            let r = name("r", i);
            nodes.push(node(&r, "Relu", &[&last], vec![t(F)]));
            last = r;
        }
        let m = name("m", i);
        nodes.push(node(&m, "Mul", &[&last, "s"], vec![t(F)]));
        last = m;
    }
    (graph(nodes), last)
}

/// `links` pairs of Transposes by `[0, 3, 1, 2]` and back after a 4-D placeholder.
fn transpose_pairs(links: usize) -> (GraphDef, String) {
    let mut nodes = vec![
        placeholder("x", F, &[1, 2, 3, 4]),
        int32s("a", &[4], &[0, 3, 1, 2]),
        int32s("b", &[4], &[0, 2, 3, 1]),
    ];
    let mut last = "x".to_string();
    for i in 0..2 * links {
        let current = name("t", i);
        let perm = if i % 2 == 0 { "a" } else { "b" };
        nodes.push(node(&current, "Transpose", &[&last, perm], vec![t(F)]));
        last = current;
    }
    (graph(nodes), last)
}

pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();

    // `check`: the source of every Identity's input was resolved by walking the chain.
    let mut nodes = vec![placeholder("d", DataType::DtInt32, &[])];
    let (chain, end) = unary_chain("i", "Identity", "d", 20_000);
    for mut n in chain {
        n.attr.insert("T".into(), dtype(DataType::DtInt32));
        nodes.push(n);
    }
    nodes.push(placeholder("x", F, &[2]));
    nodes.push(node(
        "out",
        "ExpandDims",
        &["x", &end],
        vec![t(F), ("Tdim", dtype(DataType::DtInt32))],
    ));
    cases.push(model_case(
        "c08_check_identity_chain",
        8,
        "check --target=opencv on 20000 Identities between a Placeholder and an ExpandDims axis \
         (OpenCV needs a Const there)",
        graph(nodes),
        vec![
            "check".into(),
            "--target=opencv".into(),
            "{dir}/model.pb".into(),
        ],
        Expect::Error,
    ));

    // simplify_arithmetic folded one link of a constant chain per round.
    let mut nodes = vec![placeholder("x", F, &[2]), floats("c", &[], &[1.0001])];
    let (chain, end) = unary_chain("m", "Mul", "x", 15_000);
    for mut n in chain {
        n.input.push("c".into());
        nodes.push(n);
    }
    cases.push(model_case(
        "c08_simplify_mul_chain",
        8,
        "simplify_arithmetic on x * c * c * ... (15000 Muls by one scalar Const)",
        graph(nodes),
        transform("simplify_arithmetic", &end),
        Expect::Success,
    ));
    let (chain, end) = unary_chain("n", "Neg", "x", 20_000);
    cases.push(model_case(
        "c08_simplify_neg_chain",
        8,
        "simplify_arithmetic on Neg(Neg(...(x))) 20000 deep",
        graph([vec![placeholder("x", F, &[2])], chain].concat()),
        transform("simplify_arithmetic", &end),
        Expect::Success,
    ));

    // fold_scale_axis: one move per sweep, each sweep scanning for readers per node.
    let (g, end) = conv_mul_chain(1200, false);
    cases.push(model_case(
        "c08_fold_scale_axis_conv_mul_chain",
        8,
        "fold_scale_axis on Conv2D -> Mul(per-channel Const) -> Conv2D ... (1200 links)",
        g,
        transform("fold_scale_axis", &end),
        Expect::Success,
    ));
    let (g, end) = conv_mul_chain(1000, true);
    cases.push(model_case(
        "c08_fold_scale_axis_conv_relu_mul_chain",
        8,
        "fold_scale_axis on Conv2D -> Relu -> Mul(per-channel Const) -> Conv2D ... (1000 links)",
        g,
        transform("fold_scale_axis", &end),
        Expect::Success,
    ));

    // fold_batch_norms: shared weights and scale let one Mul fold per sweep.
    let (g, end) = conv_mul_chain(6000, false);
    cases.push(model_case(
        "c08_fold_batch_norms_conv_mul_chain",
        8,
        "fold_batch_norms on Conv2D -> Mul -> Conv2D ... (6000 links sharing weights and scale)",
        g,
        transform("fold_batch_norms", &end),
        Expect::Success,
    ));

    // convert_to_nchw: the Transpose sank one Relu per step, each step a full rescan.
    let mut nodes = conv_chain_start();
    nodes.push(conv("c", "x", "w"));
    let (chain, end) = unary_chain("r", "Relu", "c", 20_000);
    nodes.extend(chain);
    cases.push(model_case(
        "c08_nchw_relu_chain",
        8,
        "convert_to_nchw on an NHWC Conv2D followed by 20000 Relus",
        graph(nodes),
        transform("convert_to_nchw", &end),
        Expect::Success,
    ));

    // merge_duplicate_nodes on many identical readers of one input.
    let n = 28_000;
    let mut nodes = vec![placeholder("x", F, &[2])];
    let names: Vec<String> = (0..n).map(|i| name("r", i)).collect();
    for r in &names {
        nodes.push(node(r, "Relu", &["x"], vec![t(F)]));
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    nodes.push(node("out", "AddN", &refs, vec![t(F), ("N", int(n as i64))]));
    cases.push(model_case(
        "c08_merge_identical_relus",
        8,
        "merge_duplicate_nodes on 28000 identical Relus of one input, all read by one AddN",
        graph(nodes),
        transform("merge_duplicate_nodes", "out"),
        Expect::Success,
    ));

    // remove_training_nodes followed the Identity chain to the predicate once per Switch.
    let mut nodes = vec![
        floats("x", &[], &[1.0]),
        typed_const("p", DataType::DtBool, &[], |t| t.bool_val = vec![true]),
    ];
    let (chain, pred) = unary_chain("i", "Identity", "p", 12_500);
    for mut n in chain {
        n.attr.insert("T".into(), dtype(DataType::DtBool));
        nodes.push(n);
    }
    let mut last = "x".to_string();
    for i in 0..12_500 {
        let s = name("s", i);
        nodes.push(node(&s, "Switch", &[&last, &pred], vec![t(F)]));
        last = format!("{s}:1");
    }
    nodes.push(node("out", "Identity", &[&last], vec![t(F)]));
    cases.push(model_case(
        "c08_switch_predicate_identity_chain",
        8,
        "remove_training_nodes on 12500 Switches whose predicate is a Const behind 12500 Identities",
        graph(nodes),
        transform("remove_training_nodes", "out"),
        Expect::Success,
    ));

    // remove_leftovers and legalize: cancelling Transposes spliced out one pair per round.
    for (case, transforms, about) in [
        (
            "c08_remove_leftovers_transpose_pairs",
            "remove_leftovers",
            "remove_leftovers on 12000 pairs of cancelling Transposes",
        ),
        (
            "c08_legalize_transpose_pairs",
            "legalize(target=opencv)",
            "legalize(target=opencv) on 12000 pairs of cancelling Transposes",
        ),
    ] {
        let (g, end) = transpose_pairs(12_000);
        cases.push(model_case(
            case,
            8,
            about,
            g,
            transform(transforms, &end),
            Expect::Success,
        ));
    }

    // legalize: the norm's parameters were removed by rescanning the graph once per layer of
    // what they alone read (here a chain of 20000 Relus under a control edge).
    let mut nodes = vec![placeholder("x", F, &[1, 2, 2, 2])];
    let (chain, end) = unary_chain("r", "Relu", "x", 20_000);
    nodes.extend(chain);
    let mut mean = floats("m", &[2], &[0.0, 0.5]);
    mean.input.push(format!("^{end}"));
    nodes.extend([
        floats("g", &[2], &[1.0, 2.0]),
        floats("b", &[2], &[0.0, 1.0]),
        mean,
        floats("v", &[2], &[1.0, 4.0]),
        node(
            "out",
            "FusedBatchNormV3",
            &["x", "g", "b", "m", "v"],
            vec![
                t(F),
                ("U", dtype(F)),
                ("epsilon", attr(attr_value::Value::F(0.001))),
                ("is_training", attr(attr_value::Value::B(false))),
                ("data_format", string("NHWC")),
            ],
        ),
    ]);
    cases.push(model_case(
        "c08_legalize_unread_chain",
        8,
        "legalize(target=tract) on a FusedBatchNormV3 whose mean waits on 20000 Relus that \
         nothing else reads",
        graph(nodes),
        transform("legalize(target=tract)", "out"),
        Expect::Success,
    ));

    // fold_scale_axis: finding a Mul's only reader scanned that reader's whole input list.
    let n = 20_000;
    let mut nodes = conv_chain_start();
    let names: Vec<String> = (0..n).map(|i| name("m", i)).collect();
    for m in &names {
        nodes.push(node(m, "Mul", &["x", "s"], vec![t(F)]));
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    nodes.push(node("out", "AddN", &refs, vec![t(F), ("N", int(n as i64))]));
    cases.push(model_case(
        "c08_fold_scale_axis_wide_reader",
        8,
        "fold_scale_axis on 20000 Muls by one per-channel Const, all read by one AddN",
        graph(nodes),
        transform("fold_scale_axis", "out"),
        Expect::Success,
    ));

    // fold_scale_axis: consecutive Muls before one Conv2D moved one Mul per sweep.
    let mut nodes = conv_chain_start();
    let (chain, end) = unary_chain("m", "Mul", "x", 10_000);
    for mut n in chain {
        n.input.push("s".into());
        nodes.push(n);
    }
    nodes.push(conv("out", &end, "w"));
    cases.push(model_case(
        "c08_fold_scale_axis_mul_run",
        8,
        "fold_scale_axis on 10000 consecutive Muls by one per-channel Const before one Conv2D",
        graph(nodes),
        transform("fold_scale_axis", "out"),
        Expect::Success,
    ));

    // fold_scale_axis: a Mul waits for the Mul after its activation to move first, so a
    // Mul -> Relu run before one Conv2D moved one Mul per sweep.
    let mut nodes = conv_chain_start();
    let mut last = "x".to_string();
    for i in 0..5_000 {
        let (m, r) = (name("m", i), name("r", i));
        nodes.push(node(&m, "Mul", &[&last, "s"], vec![t(F)]));
        nodes.push(node(&r, "Relu", &[&m], vec![t(F)]));
        last = r;
    }
    nodes.push(conv("out", &last, "w"));
    cases.push(model_case(
        "c08_fold_scale_axis_mul_relu_run",
        8,
        "fold_scale_axis on 5000 Mul -> Relu pairs by one per-channel Const before one Conv2D",
        graph(nodes),
        transform("fold_scale_axis", "out"),
        Expect::Success,
    ));

    // freeze: each signature input was renamed by a pass over the whole graph.
    let n = 10_000;
    let mut nodes: Vec<NodeDef> = (0..n).map(|i| placeholder(&name("p", i), F, &[])).collect();
    let refs: Vec<String> = (0..n).map(|i| name("p", i)).collect();
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    nodes.push(node("out", "AddN", &refs, vec![t(F), ("N", int(n as i64))]));
    let inputs: Vec<(String, String)> = (0..n).map(|i| (name("k", i), name("p", i))).collect();
    cases.push(Case {
        name: "c08_freeze_many_signature_inputs",
        class: 8,
        about: "freezing a SavedModel whose signature takes 10000 inputs, each renamed to its key",
        files: vec![
            (
                "model/saved_model.pb",
                saved_model_with_inputs(graph(nodes), &inputs, "out"),
            ),
            (
                "model/variables/variables.index",
                index_file(&[header_entry()]),
            ),
            ("model/variables/variables.data-00000-of-00001", Vec::new()),
        ],
        special: Vec::new(),
        args: freeze_saved_model(),
        expect: Expect::Success,
    });
    cases
}
