//! `legalize(target=opencv)`'s own rewrites, each checked for exactness with graphopt's
//! evaluator (the graph computes the same values before and after), plus what makes them right
//! for OpenCV 4.10: its Conv2D ignores `dilations` and its atrous fusion reads
//! `SpaceToBatchND -> conv -> BatchToSpaceND` as one dilated convolution padded on both sides by
//! the paddings before, ignoring the crops; its MirrorPad always reflects. On the fixtures real
//! OpenCV judges (tests/consumers/check_opencv.py), the legalized graph still matches
//! TensorFlow's outputs and `check --target=opencv` finds nothing blocking.

mod common;

use std::collections::HashSet;

use graphopt_core::graph::attrs;
use graphopt_core::graph::edit::const_value;
use graphopt_core::proto::{attr_value, DataType, GraphDef, NodeDef};
use graphopt_core::rewrite::legalize::{
    constants_private_to_packs, dilated_convolutions_as_symmetric_atrous, explicit_data_formats,
    symmetric_mirror_pads_as_slices,
};
use graphopt_core::targets;
use graphopt_core::transforms::{self, Registry};

use common::graphs::*;

fn by_name<'a>(g: &'a GraphDef, name: &str) -> &'a NodeDef {
    g.node.iter().find(|n| n.name == name).unwrap()
}

fn const_ints(g: &GraphDef, input: &str) -> Vec<i64> {
    const_value(by_name(g, input)).unwrap().integers().unwrap()
}

fn opencv_blocking(g: &GraphDef) -> Vec<targets::Problem> {
    targets::check_target(g, "opencv")
        .unwrap()
        .into_iter()
        .filter(|p| p.blocking)
        .collect()
}

/// The blocking problems other than how Consts are stored and what layout the inputs get
/// (which the rewrites tested here leave to `legalize`'s last steps: every Const's values to
/// tensor_content, every default `data_format` written out; the small graphs here have no
/// node with a `data_format`).
fn opencv_blocking_ops(g: &GraphDef) -> Vec<targets::Problem> {
    opencv_blocking(g)
        .into_iter()
        .filter(|p| {
            p.kind != targets::ProblemKind::ConstEncoding
                && p.kind != targets::ProblemKind::UnknownInputLayout
        })
        .collect()
}

/// What OpenCV 4.10 computes for `SpaceToBatchND(x, block, paddings) -> Conv2D ->
/// BatchToSpaceND`: one convolution of x dilated by the block, padded on both sides by the
/// paddings before (tf_importer.cpp's parseConvolution: `pad_h`, `pad_w` from paddings[0] and
/// paddings[2]), crops ignored; written as a TensorFlow Conv2D with EXPLICIT padding so that
/// graphopt's evaluator runs it.
fn as_opencv_reads_it(g: &GraphDef) -> GraphDef {
    let mut out = g.clone();
    let s2b = g.node.iter().find(|n| n.op == "SpaceToBatchND").unwrap();
    let block = const_ints(g, &s2b.input[1]);
    let pads = const_ints(g, &s2b.input[2]);
    let conv = g
        .node
        .iter()
        .find(|n| n.input.first() == Some(&s2b.name))
        .unwrap();
    let b2s = g
        .node
        .iter()
        .find(|n| n.input.first() == Some(&conv.name))
        .unwrap();
    let mut fused = conv.clone();
    fused.name = b2s.name.clone();
    fused.input[0] = s2b.input[0].clone();
    fused
        .attr
        .insert("dilations".into(), attr(ints(&[1, block[0], block[1], 1])));
    fused.attr.insert("padding".into(), attr(s("EXPLICIT")));
    fused.attr.insert(
        "explicit_paddings".into(),
        attr(ints(&[0, 0, pads[0], pads[0], pads[2], pads[2], 0, 0])),
    );
    let at = out.node.iter().position(|n| n.name == b2s.name).unwrap();
    out.node[at] = fused;
    out
}

#[test]
fn dilated_convolutions_become_the_atrous_pattern_opencv_reads_right() {
    // (op, padding, explicit paddings, input h x w, dilations, kernel h x w): symmetric SAME
    // (odd dilated kernels), asymmetric SAME (even ones), VALID, EXPLICIT, depthwise.
    for (op, padding, explicit, h, w, dilations, (kh, kw)) in [
        // Types for the literals below.
        (
            "Conv2D",
            "VALID",
            None::<[i64; 8]>,
            5i64,
            5i64,
            [1i64, 2, 1, 1],
            (1usize, 2usize),
        ),
        ("Conv2D", "SAME", None, 12, 11, [1, 2, 2, 1], (3, 3)),
        ("Conv2D", "SAME", None, 12, 11, [1, 3, 2, 1], (2, 3)),
        ("Conv2D", "SAME", None, 7, 9, [1, 2, 3, 1], (4, 2)),
        ("Conv2D", "VALID", None, 11, 9, [1, 2, 3, 1], (3, 3)),
        (
            "Conv2D",
            "EXPLICIT",
            Some([0, 0, 1, 3, 2, 2, 0, 0]),
            8,
            7,
            [1, 2, 2, 1],
            (3, 2),
        ),
        (
            "DepthwiseConv2dNative",
            "SAME",
            None,
            9,
            10,
            [1, 2, 2, 1],
            (3, 3),
        ),
        (
            "DepthwiseConv2dNative",
            "SAME",
            None,
            9,
            10,
            [1, 3, 3, 1],
            (2, 2),
        ),
    ] {
        let case = format!("{op} {padding} {h}x{w} {dilations:?} {kh}x{kw}");
        let mut conv = node(
            "out",
            op,
            &["x", "filter"],
            &[
                ("strides", ints(&[1, 1, 1, 1])),
                ("padding", s(padding)),
                ("data_format", s("NHWC")),
                ("dilations", ints(&dilations)),
            ],
        );
        if let Some(e) = explicit {
            conv.attr.insert("explicit_paddings".into(), attr(ints(&e)));
        }
        let before = graph(vec![
            placeholder("x", &[1, h, w, 2]),
            floats("filter", &[kh, kw, 2, 3], 6),
            conv,
        ]);
        assert!(
            opencv_blocking(&before)
                .iter()
                .any(|p| p.node == "out" && p.why.contains("dilations")),
            "{case}: a dilated {op} is blocking for OpenCV"
        );
        let mut after = before.clone();
        assert_eq!(
            dilated_convolutions_as_symmetric_atrous(&mut after),
            1,
            "{case}"
        );
        graphopt_core::graph::validate(&after).unwrap();
        for n in after.node.iter().filter(|n| n.op == op) {
            assert_eq!(
                attrs::ints(n, "dilations"),
                Some(vec![1, 1, 1, 1]),
                "{case}"
            );
            assert_eq!(
                attrs::string(n, "padding").as_deref(),
                Some("VALID"),
                "{case}"
            );
        }
        assert_eq!(by_name(&after, "out").op, "BatchToSpaceND", "{case}");
        let left = opencv_blocking_ops(&after);
        assert!(left.is_empty(), "{case}: {left:#?}");
        let x = input(&[1, h as usize, w as usize, 2], 19);
        let want = evaluate(&before, &x, &["out"]);
        assert_eq!(want, evaluate(&after, &x, &["out"]), "{case}: not exact");
        // The asymmetric paddings went into a Pad in front, the symmetric ones stayed.
        let in_front = after.node.iter().any(|n| n.op == "Pad");
        let symmetric_same = ((kh - 1) * dilations[1] as usize) % 2 == 0
            && ((kw - 1) * dilations[2] as usize) % 2 == 0;
        assert_eq!(
            in_front,
            padding == "EXPLICIT" || (padding == "SAME" && !symmetric_same),
            "{case}"
        );
        // OpenCV's reading of the pattern computes the same values (the conv ops OpenCV reads
        // as a dilated convolution only when they are Conv2D; for DepthwiseConv2dNative its
        // parse takes the same path).
        if op == "Conv2D" {
            let read = as_opencv_reads_it(&after);
            let got = evaluate(&read, &x, &["out"]);
            assert_eq!(want[0].shape(), got[0].shape(), "{case}");
            let (a, b) = (want[0].floats().unwrap(), got[0].floats().unwrap());
            let worst = a
                .iter()
                .zip(&b)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-5, "{case}: OpenCV's reading differs by {worst}");
        }
    }
}

#[test]
fn undilated_or_unknown_shape_convolutions_are_left() {
    let conv = |name: &str, dilations: [i64; 4]| {
        node(
            name,
            "Conv2D",
            &["x", "filter"],
            &[
                ("strides", ints(&[1, 1, 1, 1])),
                ("padding", s("SAME")),
                ("dilations", ints(&dilations)),
            ],
        )
    };
    let mut g = graph(vec![
        placeholder("x", &[1, -1, 8, 2]),
        floats("filter", &[3, 3, 2, 3], 6),
        conv("plain", [1, 1, 1, 1]),
        conv("unknown_height", [1, 2, 2, 1]),
    ]);
    let before = g.clone();
    assert_eq!(dilated_convolutions_as_symmetric_atrous(&mut g), 0);
    assert_eq!(g, before);
    // What stays dilated is what `check` blocks on.
    let blocking = opencv_blocking(&g);
    assert_eq!(
        blocking.iter().map(|p| p.node.as_str()).collect::<Vec<_>>(),
        ["unknown_height"],
        "{blocking:#?}"
    );
}

fn mirror_pad(name: &str, input: &str, paddings: &str, mode: &str) -> NodeDef {
    let mut n = node(name, "MirrorPad", &[input, paddings], &[("mode", s(mode))]);
    n.attr.insert(
        "Tpaddings".into(),
        attr(attr_value::Value::Type(DataType::DtInt32 as i32)),
    );
    n
}

#[test]
fn symmetric_mirror_pads_become_slices_and_concats() {
    for (dims, pads) in [
        ([1usize, 6, 7, 3], [0, 0, 2, 1, 1, 2, 0, 0]),
        ([1, 4, 5, 2], [0, 0, 4, 0, 0, 5, 0, 0]),
        ([2, 3, 3, 2], [1, 0, 1, 1, 0, 0, 0, 2]),
    ] {
        let shape: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        let before = graph(vec![
            placeholder("x", &shape),
            int32s("paddings", &[4, 2], &pads),
            mirror_pad("padded", "x", "paddings", "SYMMETRIC"),
            node("out", "Relu", &["padded"], &[]),
        ]);
        assert!(
            opencv_blocking(&before)
                .iter()
                .any(|p| p.node == "padded" && p.why.contains("SYMMETRIC")),
            "{pads:?}: a SYMMETRIC MirrorPad is blocking for OpenCV"
        );
        let mut after = before.clone();
        let protected: HashSet<String> = ["out".to_string()].into();
        assert_eq!(symmetric_mirror_pads_as_slices(&mut after, &protected), 1);
        graphopt_core::graph::validate(&after).unwrap();
        assert!(after.node.iter().all(|n| n.op != "MirrorPad"));
        assert!(after.node.iter().all(|n| n.name != "paddings"));
        assert_eq!(by_name(&after, "padded").op, "ConcatV2");
        let left = opencv_blocking_ops(&after);
        assert!(left.is_empty(), "{pads:?}: {left:#?}");
        let x = input(&dims, 3);
        assert_eq!(
            evaluate(&before, &x, &["out"]),
            evaluate(&after, &x, &["out"]),
            "{pads:?}"
        );
    }
}

#[test]
fn reflect_and_unknown_shape_mirror_pads_are_left() {
    let mut g = graph(vec![
        placeholder("x", &[1, 6, 7, 3]),
        placeholder("y", &[1, -1, 7, 3]),
        int32s("paddings", &[4, 2], &[0, 0, 2, 1, 1, 2, 0, 0]),
        mirror_pad("reflect", "x", "paddings", "REFLECT"),
        mirror_pad("unknown", "y", "paddings", "SYMMETRIC"),
    ]);
    let before = g.clone();
    assert_eq!(symmetric_mirror_pads_as_slices(&mut g, &HashSet::new()), 0);
    assert_eq!(g, before);
    let blocking = opencv_blocking_ops(&g);
    assert_eq!(
        blocking.iter().map(|p| p.node.as_str()).collect::<Vec<_>>(),
        ["unknown"],
        "{blocking:#?}"
    );
}

fn kinds(g: &GraphDef, kind: targets::ProblemKind) -> Vec<String> {
    opencv_blocking(g)
        .into_iter()
        .filter(|p| p.kind == kind)
        .map(|p| p.node)
        .collect()
}

/// `Pack(Size(x), consts...)` as int32.
fn pack(name: &str, inputs: &[&str]) -> NodeDef {
    node(
        name,
        "Pack",
        inputs,
        &[
            ("T", dtype(DataType::DtInt32)),
            ("N", attr_value::Value::I(inputs.len() as i64)),
            ("axis", attr_value::Value::I(0)),
        ],
    )
}

/// Squeeze-and-excite reshape shapes as `@deploy` leaves them once merge_duplicate_nodes has
/// shared their Consts: `one` read only by Packs (twice each), `four` by Packs and a Neg.
fn packs_sharing_constants() -> GraphDef {
    graph(vec![
        placeholder("x", &[-1, 4]),
        node(
            "batch",
            "Size",
            &["x"],
            &[("out_type", dtype(DataType::DtInt32))],
        ),
        int32s("one", &[], &[1]),
        int32s("four", &[], &[4]),
        pack("p1", &["batch", "one", "one", "four"]),
        pack("p2", &["batch", "one", "one", "four"]),
        node("neg", "Neg", &["four"], &[("T", dtype(DataType::DtInt32))]),
    ])
}

/// A Const with a control input (as inside a TF1 cond branch) and one of 4 KiB, both shared
/// by a Pack and a Neg: the copies keep the control input, the large one is copied too, and
/// `check` finds nothing left.
#[test]
fn copies_keep_control_inputs_and_large_constants_are_copied_too() {
    let mut gated = int32s("gated", &[], &[2]);
    gated.input.push("^gate".into());
    let before = graph(vec![
        placeholder("x", &[-1, 4]),
        node(
            "batch",
            "Size",
            &["x"],
            &[("out_type", dtype(DataType::DtInt32))],
        ),
        node("gate", "NoOp", &["^x"], &[]),
        gated,
        int32s("large", &[1024], &[7; 1024]),
        pack("p", &["batch", "gated"]),
        pack("q", &["large", "large"]),
        node(
            "neg_gated",
            "Neg",
            &["gated"],
            &[("T", dtype(DataType::DtInt32))],
        ),
        node(
            "neg_large",
            "Neg",
            &["large"],
            &[("T", dtype(DataType::DtInt32))],
        ),
    ]);
    assert_eq!(
        kinds(&before, targets::ProblemKind::SharedConst),
        ["p", "q"]
    );
    let mut after = before.clone();
    assert_eq!(constants_private_to_packs(&mut after).unwrap(), 2);
    graphopt_core::graph::validate(&after).unwrap();
    assert_eq!(by_name(&after, "gated/private").input, ["^gate"]);
    assert_eq!(by_name(&after, "p").input, ["batch", "gated/private"]);
    assert_eq!(
        by_name(&after, "q").input,
        ["large/private", "large/private"]
    );
    assert!(kinds(&after, targets::ProblemKind::SharedConst).is_empty());
    let x = input(&[3, 4], 1);
    let fetches = ["p", "q", "neg_gated", "neg_large"];
    assert_eq!(
        evaluate(&before, &x, &fetches),
        evaluate(&after, &x, &fetches)
    );
}

#[test]
fn packs_get_constants_of_their_own_and_check_sees_the_shared_ones() {
    let before = packs_sharing_constants();
    assert_eq!(
        kinds(&before, targets::ProblemKind::SharedConst),
        ["p1", "p1", "p2", "p2"],
        "every Const a Pack shares is named once per Pack"
    );
    let mut after = before.clone();
    // `one`: p1 keeps it, p2 gets a copy; `four`: each Pack gets a copy, Neg keeps it.
    assert_eq!(constants_private_to_packs(&mut after).unwrap(), 3);
    graphopt_core::graph::validate(&after).unwrap();
    let inputs = |name: &str| by_name(&after, name).input.clone();
    assert_eq!(inputs("p1"), ["batch", "one", "one", "four/private"]);
    assert_eq!(
        inputs("p2"),
        ["batch", "one/private", "one/private", "four/private_1"]
    );
    assert_eq!(inputs("neg"), ["four"]);
    assert!(kinds(&after, targets::ProblemKind::SharedConst).is_empty());
    let x = input(&[3, 4], 1);
    let fetches = ["p1", "p2", "neg"];
    assert_eq!(
        evaluate(&before, &x, &fetches),
        evaluate(&after, &x, &fetches)
    );
    // Nothing left to do: the second run copies nothing.
    let again = after.clone();
    assert_eq!(constants_private_to_packs(&mut after).unwrap(), 0);
    assert_eq!(after, again);
}

/// `x -> Pad -> Conv2D`, the convolution's `data_format` left to its default (as Keras 3's
/// exports leave it) and no BiasAdd after it to say NHWC.
fn convolution_without_data_format(input_dims: &[i64], data_format: Option<&str>) -> GraphDef {
    let mut conv = node(
        "conv",
        "Conv2D",
        &["padded", "w"],
        &[("strides", ints(&[1, 2, 2, 1])), ("padding", s("VALID"))],
    );
    if let Some(format) = data_format {
        conv.attr.insert("data_format".into(), attr(s(format)));
    }
    graph(vec![
        placeholder("x", input_dims),
        int32s("paddings", &[4, 2], &[0, 0, 0, 1, 0, 1, 0, 0]),
        node(
            "padded",
            "Pad",
            &["x", "paddings"],
            &[("Tpaddings", dtype(DataType::DtInt32))],
        ),
        floats("w", &[3, 3, 3, 4], 7),
        conv,
    ])
}

#[test]
fn default_data_formats_are_written_out_so_opencv_knows_the_input_layout() {
    let before = convolution_without_data_format(&[1, 8, 8, 3], None);
    assert_eq!(
        kinds(&before, targets::ProblemKind::UnknownInputLayout),
        ["x"]
    );
    let mut after = before.clone();
    assert_eq!(explicit_data_formats(&mut after), 1);
    assert_eq!(
        attrs::string(by_name(&after, "conv"), "data_format").as_deref(),
        Some("NHWC")
    );
    assert!(kinds(&after, targets::ProblemKind::UnknownInputLayout).is_empty());
    let x = input(&[1, 8, 8, 3], 2);
    assert_eq!(
        evaluate(&before, &x, &["conv"]),
        evaluate(&after, &x, &["conv"])
    );
    assert_eq!(explicit_data_formats(&mut after), 0);

    // A declared layout, either one, is enough; an input of unknown shape is not permuted at
    // all, so it needs none.
    for declared in ["NHWC", "NCHW"] {
        let g = convolution_without_data_format(&[1, 8, 8, 3], Some(declared));
        assert!(kinds(&g, targets::ProblemKind::UnknownInputLayout).is_empty());
    }
    let dynamic = convolution_without_data_format(&[-1, 8, 8, 3], None);
    assert!(kinds(&dynamic, targets::ProblemKind::UnknownInputLayout).is_empty());
    // Read as NCHW, a 6x6x3 input has 6 channels, which filters of 3 input channels accept:
    // OpenCV loads it (computing on the transposed reading), so the problem is advice.
    let loads = convolution_without_data_format(&[1, 6, 6, 3], None);
    assert!(kinds(&loads, targets::ProblemKind::UnknownInputLayout).is_empty());
    let advice: Vec<targets::Problem> = targets::check_target(&loads, "opencv")
        .unwrap()
        .into_iter()
        .filter(|p| p.kind == targets::ProblemKind::UnknownInputLayout)
        .collect();
    assert_eq!(advice.len(), 1, "{advice:#?}");
    assert!(!advice[0].blocking && advice[0].why.contains("computes on that reading"));
}

#[test]
fn legalize_for_opencv_leaves_no_shared_pack_constant_or_unknown_input_layout() {
    for (before, outputs) in [
        (packs_sharing_constants(), ["p1", "p2", "neg"].as_slice()),
        (
            convolution_without_data_format(&[1, 8, 8, 3], None),
            ["conv"].as_slice(),
        ),
    ] {
        let mut g = before.clone();
        let outputs: Vec<String> = outputs.iter().map(|o| o.to_string()).collect();
        let specs = transforms::parse("legalize(target=opencv)").unwrap();
        transforms::run(&Registry::with_builtins(), &mut g, &specs, &[], &outputs).unwrap();
        for kind in [
            targets::ProblemKind::SharedConst,
            targets::ProblemKind::UnknownInputLayout,
        ] {
            assert!(kinds(&g, kind).is_empty(), "{kind:?}: {g:#?}");
        }
    }
}

const STANDARD: &str = "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) \
    fold_constants(ignore_errors=true) fold_batch_norms fold_old_batch_norms \
    sort_by_execution_order";

fn run(model: &str, pipeline: &str) -> GraphDef {
    let (inputs, outputs) = common::io_names(model);
    let mut g = common::load(model);
    let specs = transforms::parse(pipeline).unwrap();
    transforms::run(
        &Registry::with_builtins(),
        &mut g,
        &specs,
        &inputs,
        &outputs,
    )
    .unwrap_or_else(|e| panic!("{model} `{pipeline}`: {e}"));
    g
}

/// The two fixtures OpenCV 4.10 loaded but computed wrong before these rewrites: without
/// legalization `check` names the nodes it computes wrong (b/pad, a SYMMETRIC MirrorPad; the
/// atrous pattern whose SAME padding is asymmetric; once flattened, the dilated Conv2Ds);
/// legalized, nothing blocks and the graph still matches TensorFlow.
#[test]
fn legalized_fixtures_have_nothing_opencv_computes_wrong() {
    for (model, unlegalized, wrong) in [
        ("resize_pad_conv", STANDARD.to_string(), vec!["b/pad"]),
        (
            "atrous_conv",
            STANDARD.to_string(),
            vec!["BatchToSpaceND_2"],
        ),
        (
            "atrous_conv",
            format!("{STANDARD} flatten_atrous_conv"),
            vec!["BatchToSpaceND_2", "BatchToSpaceND"],
        ),
    ] {
        let blocking: Vec<String> = opencv_blocking_ops(&run(model, &unlegalized))
            .into_iter()
            .map(|p| p.node)
            .collect();
        assert_eq!(blocking, wrong, "{model} `{unlegalized}`");
        let g = run(model, &format!("{STANDARD} legalize(target=opencv)"));
        let left = opencv_blocking(&g);
        assert!(left.is_empty(), "{model}: {left:#?}");
        for n in &g.node {
            assert!(
                !(n.op == "MirrorPad" && attrs::string(n, "mode").as_deref() == Some("SYMMETRIC")),
                "{model}: {}",
                n.name
            );
            assert!(
                attrs::ints(n, "dilations").is_none_or(|d| d.iter().all(|&v| v == 1)),
                "{model}: {}",
                n.name
            );
        }
        common::assert_matches_tensorflow(model, &g, 1e-5, 1e-6);
    }
}

/// The EfficientNet-style block with its batch left unknown (OpenCV does not load the result:
/// the record's `efficientnet_block@nofix`): legalize says what remains and that fixing the
/// input's shape first lets it fold.
#[test]
fn legalize_says_to_fix_an_unknown_input_shape_first() {
    let mut graph = common::load("efficientnet_block");
    let (inputs, outputs) = common::io_names("efficientnet_block");
    let specs = transforms::parse(
        "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) \
         fold_constants(ignore_errors=true) fold_batch_norms fold_old_batch_norms \
         sort_by_execution_order legalize(target=opencv)",
    )
    .unwrap();
    let outcomes = transforms::run(
        &Registry::with_builtins(),
        &mut graph,
        &specs,
        &inputs,
        &outputs,
    )
    .unwrap();
    let warnings = &outcomes.last().unwrap().warnings;
    // One line per node left, then the summary with the way out.
    assert_eq!(warnings.len(), 11, "{warnings:#?}");
    assert!(warnings[..10]
        .iter()
        .all(|w| w.starts_with("left for opencv: functional_1/se_")));
    assert_eq!(
        &warnings[10..],
        ["10 node(s) that opencv 4.10.0 cannot load remain, which no rewrite of legalize handles; \
          inputs of unknown shape (input) keep shape arithmetic and padding that fix_input_shapes \
          before legalize lets fold"]
    );
    assert_eq!(opencv_blocking(&graph).len(), 10);
}

/// OpenCV reads an ExpandDims, Split, Concat or ConcatV2 axis as `int_val().Get(0)`. An
/// ExpandDims axis of shape [1] in `int_val` loaded; legalize moved it to tensor_content (as
/// every Const of rank 1 or more), and its own check then refused the graph. A scalar axis
/// stored in tensor_content was refused and left so. Both now end with every value in int_val.
#[test]
fn axes_opencv_reads_from_int_val_keep_their_values_there() {
    let mut scalar_in_content = int32s("concat_axis", &[], &[1]);
    if let Some(attr_value::Value::Tensor(t)) = scalar_in_content
        .attr
        .get_mut("value")
        .and_then(|v| v.value.as_mut())
    {
        t.int_val.clear();
        t.tensor_content = 1i32.to_le_bytes().to_vec().into();
    }
    let mut expand = node("e", "ExpandDims", &["x", "expand_axis"], &[]);
    expand
        .attr
        .insert("Tdim".into(), attr(dtype(DataType::DtInt32)));
    let mut concat = node("out", "ConcatV2", &["e", "e", "concat_axis"], &[]);
    concat
        .attr
        .insert("N".into(), attr(attr_value::Value::I(2)));
    concat
        .attr
        .insert("Tidx".into(), attr(dtype(DataType::DtInt32)));
    let before = graph(vec![
        placeholder("x", &[1, 4]),
        int32s("expand_axis", &[1], &[1]),
        scalar_in_content,
        expand,
        concat,
    ]);
    let blocking_nodes = |g: &GraphDef| {
        opencv_blocking(g)
            .into_iter()
            .map(|p| p.node)
            .collect::<Vec<_>>()
    };
    assert_eq!(blocking_nodes(&before), ["out"]);
    let specs = transforms::parse("legalize(target=opencv)").unwrap();
    let mut after = before.clone();
    transforms::run(
        &Registry::with_builtins(),
        &mut after,
        &specs,
        &["x".to_string()],
        &["out".to_string()],
    )
    .unwrap();
    assert_eq!(blocking_nodes(&after), Vec::<String>::new());
    for (name, want) in [("expand_axis", vec![1]), ("concat_axis", vec![1])] {
        let value = attrs::tensor(by_name(&after, name), "value").unwrap();
        assert!(value.tensor_content.is_empty(), "{name}");
        assert_eq!(value.int_val, want, "{name}");
    }
    let x = input(&[1, 4], 5);
    assert_eq!(
        evaluate(&before, &x, &["out"]),
        evaluate(&after, &x, &["out"])
    );
}
