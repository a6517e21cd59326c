//! `legalize(target=tract)`'s own rewrites, each checked for exactness with graphopt's
//! evaluator (whose Pad, PadV2, ConcatV2, convolution and pooling kernels are checked against
//! TensorFlow's vectors in op_vectors.rs): the graph computes the same values before and after,
//! and on the fixtures tract judges, the legalized graph still matches TensorFlow's outputs.

mod common;

use std::collections::HashSet;

use graphopt_core::proto::{attr_value, DataType, GraphDef, NodeDef};
use graphopt_core::rewrite::legalize::{
    constants_with_explicit_values, dilated_convolutions_as_space_to_batch, non_negative_axes,
    pads_as_concats, pads_into_convolutions, space_to_batch_paddings_apart, unpacks_as_slices,
};
use graphopt_core::transforms::{self, Registry};

use common::graphs::*;

fn pad(name: &str, input: &str, paddings: &str) -> NodeDef {
    let mut n = node(name, "Pad", &[input, paddings], &[]);
    n.attr
        .insert("Tpaddings".into(), attr(dtype(DataType::DtInt32)));
    n
}

fn conv(name: &str, op: &str, input: &str, filter: &str, stride: i64) -> NodeDef {
    node(
        name,
        op,
        &[input, filter],
        &[
            ("strides", ints(&[1, stride, stride, 1])),
            ("padding", s("VALID")),
            ("data_format", s("NHWC")),
            ("dilations", ints(&[1, 1, 1, 1])),
        ],
    )
}

fn ops(g: &GraphDef) -> Vec<&str> {
    g.node.iter().map(|n| n.op.as_str()).collect()
}

fn protected(names: &[&str]) -> HashSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// MobileNet/EfficientNet's stride-2 stage: ZeroPadding2D as Keras' `correct_pad` computes it,
/// then a VALID depthwise and a VALID conv. Odd and even sizes pad differently.
fn keras_stride_two(h: i64, w: i64, pads: [i32; 8]) -> GraphDef {
    graph(vec![
        placeholder("x", &[1, h, w, 4]),
        int32s("paddings", &[4, 2], &pads),
        pad("pad", "x", "paddings"),
        floats("dw_filter", &[3, 3, 4, 1], 1),
        conv("dw", "DepthwiseConv2dNative", "pad", "dw_filter", 2),
        floats("filter", &[3, 3, 4, 5], 2),
        conv("conv", "Conv2D", "pad", "filter", 2),
        node("out", "AddV2", &["conv", "dw_sum"], &[]),
        floats("project", &[1, 1, 4, 5], 3),
        conv("dw_sum", "Conv2D", "dw", "project", 1),
    ])
}

#[test]
fn zero_pad_before_strided_convolutions_becomes_same_padding() {
    for (h, w, pads) in [
        (8, 8, [0, 0, 0, 1, 0, 1, 0, 0]),
        (7, 9, [0, 0, 1, 1, 1, 1, 0, 0]),
        (7, 8, [0, 0, 1, 1, 0, 1, 0, 0]),
    ] {
        let before = keras_stride_two(h, w, pads);
        let mut after = before.clone();
        assert_eq!(pads_into_convolutions(&mut after, &protected(&["out"])), 1);
        assert!(!ops(&after).contains(&"Pad"), "{:?}", ops(&after));
        assert!(after.node.iter().all(|n| n.name != "paddings"));
        for name in ["dw", "conv"] {
            let n = after.node.iter().find(|n| n.name == name).unwrap();
            assert_eq!(n.input[0], "x");
            assert_eq!(
                graphopt_core::graph::attrs::string(n, "padding").as_deref(),
                Some("SAME")
            );
        }
        let x = input(&[1, h as usize, w as usize, 4], 7);
        assert_eq!(
            evaluate(&before, &x, &["out"]),
            evaluate(&after, &x, &["out"]),
            "{h}x{w}"
        );
    }
}

#[test]
fn pads_that_same_padding_would_not_add_stay_for_the_concat_rewrite() {
    // ResNet's stem: 3 zeros each side before a 7x7/2 VALID conv, where SAME pads (2, 3).
    let mut g = graph(vec![
        placeholder("x", &[1, 16, 16, 3]),
        int32s("paddings", &[4, 2], &[0, 0, 3, 3, 3, 3, 0, 0]),
        pad("pad", "x", "paddings"),
        floats("filter", &[7, 7, 3, 4], 4),
        conv("out", "Conv2D", "pad", "filter", 2),
    ]);
    assert_eq!(pads_into_convolutions(&mut g, &protected(&["out"])), 0);
    // Also read by something other than a convolution: kept.
    let mut g = keras_stride_two(8, 8, [0, 0, 0, 1, 0, 1, 0, 0]);
    g.node.push(node("relu", "Relu", &["pad"], &[]));
    assert_eq!(pads_into_convolutions(&mut g, &protected(&["out"])), 0);
    // A protected pad (a graph output) is kept.
    let mut g = keras_stride_two(8, 8, [0, 0, 0, 1, 0, 1, 0, 0]);
    assert_eq!(
        pads_into_convolutions(&mut g, &protected(&["out", "pad"])),
        0
    );
    // Unknown spatial size: SAME's amounts are unknown.
    let mut g = keras_stride_two(-1, 8, [0, 0, 0, 1, 0, 1, 0, 0]);
    assert_eq!(pads_into_convolutions(&mut g, &protected(&["out"])), 0);
}

#[test]
fn pads_become_concats_of_constant_blocks() {
    // Zero pad before a max pool (not the same as SAME pooling), int64 paddings on every
    // dimension, and PadV2 with a nonzero value; chained.
    let mut pad_v2 = node("pad_v2", "PadV2", &["pool", "paddings_v2", "value"], &[]);
    pad_v2
        .attr
        .insert("Tpaddings".into(), attr(dtype(DataType::DtInt32)));
    let mut pad64 = pad("pad", "x", "paddings");
    pad64
        .attr
        .insert("Tpaddings".into(), attr(dtype(DataType::DtInt64)));
    let before = graph(vec![
        placeholder("x", &[1, 5, 6, 2]),
        int64s("paddings", &[4, 2], &[1, 0, 1, 1, 0, 2, 1, 1]),
        pad64,
        node(
            "pool",
            "MaxPool",
            &["pad"],
            &[
                ("ksize", ints(&[1, 3, 3, 1])),
                ("strides", ints(&[1, 2, 2, 1])),
                ("padding", s("VALID")),
            ],
        ),
        int32s("paddings_v2", &[4, 2], &[0, 0, 2, 0, 0, 1, 0, 0]),
        floats("value", &[], 9),
        pad_v2,
        node("out", "Relu", &["pad_v2"], &[]),
    ]);
    let mut after = before.clone();
    assert_eq!(pads_as_concats(&mut after, &protected(&["out"])), 2);
    let ops = ops(&after);
    assert!(!ops.contains(&"Pad") && !ops.contains(&"PadV2"), "{ops:?}");
    assert_eq!(ops.iter().filter(|&&o| o == "ConcatV2").count(), 4 + 2);
    assert!(after
        .node
        .iter()
        .all(|n| !matches!(n.name.as_str(), "paddings" | "paddings_v2" | "value")));
    let x = input(&[1, 5, 6, 2], 11);
    assert_eq!(
        evaluate(&before, &x, &["out", "pad", "pad_v2"]),
        evaluate(&after, &x, &["out", "pad", "pad_v2"])
    );
    graphopt_core::graph::validate(&after).unwrap();
}

#[test]
fn pads_of_unknown_shape_or_value_are_left() {
    let mut g = graph(vec![
        placeholder("x", &[-1, 5, 6, 2]),
        int32s("paddings", &[4, 2], &[0, 0, 1, 1, 1, 1, 0, 0]),
        pad("out", "x", "paddings"),
    ]);
    assert_eq!(pads_as_concats(&mut g, &protected(&["out"])), 0);
    let mut g = graph(vec![
        placeholder("x", &[1, 5, 6, 2]),
        placeholder("paddings", &[4, 2]),
        pad("out", "x", "paddings"),
    ]);
    assert_eq!(pads_as_concats(&mut g, &protected(&["out"])), 0);
}

#[test]
fn negative_concat_and_pack_axes_count_from_the_front() {
    let mut pack = node(
        "pack",
        "Pack",
        &["x", "x"],
        &[("axis", attr_value::Value::I(-2))],
    );
    pack.attr.insert("N".into(), attr(attr_value::Value::I(2)));
    let concat = |name: &str, a: &str, b: &str| {
        let mut n = node(name, "ConcatV2", &[a, b, "axis"], &[]);
        n.attr.insert("N".into(), attr(attr_value::Value::I(2)));
        n.attr.insert("Tidx".into(), attr(dtype(DataType::DtInt32)));
        n
    };
    let before = graph(vec![
        placeholder("x", &[2, 3, 4]),
        int32s("axis", &[], &[-1]),
        concat("c1", "x", "x"),
        concat("c2", "c1", "c1"),
        pack,
    ]);
    let mut after = before.clone();
    assert_eq!(
        non_negative_axes(&mut after, &protected(&[]), &protected(&[])),
        3
    );
    for n in &after.node {
        if n.op == "ConcatV2" {
            let axis = after
                .node
                .iter()
                .find(|c| c.name == n.input[2])
                .and_then(graphopt_core::graph::edit::const_value)
                .and_then(|v| v.integers())
                .unwrap();
            assert_eq!(axis, vec![2], "{}", n.name);
        }
    }
    let pack = after.node.iter().find(|n| n.name == "pack").unwrap();
    assert_eq!(graphopt_core::graph::attrs::int(pack, "axis"), Some(2));
    let x = input(&[2, 3, 4], 3);
    assert_eq!(
        evaluate(&before, &x, &["c2", "pack"]),
        evaluate(&after, &x, &["c2", "pack"])
    );
    // Already non-negative, or of unknown rank: unchanged.
    assert_eq!(
        non_negative_axes(&mut after, &protected(&[]), &protected(&[])),
        0
    );
}

#[test]
fn space_to_batch_paddings_and_crops_are_spelled_apart() {
    let mut s2b = node("s2b", "SpaceToBatchND", &["x", "block", "paddings"], &[]);
    s2b.attr
        .insert("Tpaddings".into(), attr(dtype(DataType::DtInt64)));
    s2b.attr
        .insert("Tblock_shape".into(), attr(dtype(DataType::DtInt32)));
    let mut b2s = node("out", "BatchToSpaceND", &["conv", "block", "crops"], &[]);
    b2s.attr
        .insert("Tcrops".into(), attr(dtype(DataType::DtInt32)));
    b2s.attr
        .insert("Tblock_shape".into(), attr(dtype(DataType::DtInt32)));
    let before = graph(vec![
        placeholder("x", &[1, 7, 6, 2]),
        int32s("block", &[2], &[2, 2]),
        int64s("paddings", &[2, 2], &[1, 2, 0, 2]),
        s2b,
        floats("filter", &[3, 3, 2, 3], 5),
        conv("conv", "Conv2D", "s2b", "filter", 1),
        int32s("crops", &[2, 2], &[1, 0, 0, 1]),
        b2s,
    ]);
    let mut after = before.clone();
    assert_eq!(
        space_to_batch_paddings_apart(&mut after, &protected(&["out"])),
        2
    );
    let out = after.node.iter().find(|n| n.name == "out").unwrap();
    assert_eq!(out.op, "StridedSlice");
    assert!(after
        .node
        .iter()
        .all(|n| n.name != "paddings" && n.name != "crops"));
    for n in after
        .node
        .iter()
        .filter(|n| matches!(n.op.as_str(), "SpaceToBatchND" | "BatchToSpaceND"))
    {
        let amounts = after
            .node
            .iter()
            .find(|c| c.name == n.input[2])
            .and_then(graphopt_core::graph::edit::const_value)
            .and_then(|v| v.integers())
            .unwrap();
        assert!(amounts.iter().all(|&v| v == 0), "{}: {amounts:?}", n.name);
    }
    graphopt_core::graph::validate(&after).unwrap();
    let x = input(&[1, 7, 6, 2], 13);
    assert_eq!(
        evaluate(&before, &x, &["out"]),
        evaluate(&after, &x, &["out"])
    );
    // Then the new Pad becomes concats, as legalize(target=tract) does.
    assert_eq!(pads_as_concats(&mut after, &protected(&["out"])), 1);
    assert!(!ops(&after).contains(&"Pad"));
    assert_eq!(
        evaluate(&before, &x, &["out"]),
        evaluate(&after, &x, &["out"])
    );
}

#[test]
fn unpack_becomes_one_slice_per_output() {
    let mut unpack = node(
        "unpack",
        "Unpack",
        &["x"],
        &[
            ("axis", attr_value::Value::I(-2)),
            ("num", attr_value::Value::I(3)),
        ],
    );
    unpack.input.push("^x".into());
    let second = node(
        "inner",
        "Unpack",
        &["unpack:2"],
        &[
            ("axis", attr_value::Value::I(0)),
            ("num", attr_value::Value::I(2)),
        ],
    );
    let before = graph(vec![
        placeholder("x", &[2, 3, 4]),
        unpack,
        second,
        node("sum", "AddV2", &["unpack:1", "unpack"], &[]),
        node("out", "Mul", &["sum", "inner:1"], &[]),
    ]);
    let mut after = before.clone();
    assert_eq!(unpacks_as_slices(&mut after), 2);
    assert!(!ops(&after).contains(&"Unpack"), "{:?}", ops(&after));
    graphopt_core::graph::validate(&after).unwrap();
    let x = input(&[2, 3, 4], 17);
    let fetch = ["out", "sum"];
    assert_eq!(evaluate(&before, &x, &fetch), evaluate(&after, &x, &fetch));
    // Readers of the other outputs were rewired; output 0 kept the name.
    let before_values = evaluate(&before, &x, &["unpack:2", "inner:1"]);
    let after_values = evaluate(&after, &x, &["unpack/2", "inner/1"]);
    assert_eq!(before_values, after_values);
}

#[test]
fn shorthand_constants_spell_their_values_out() {
    use graphopt_core::proto::{tensor_shape_proto::Dim, TensorProto, TensorShapeProto};
    let shaped = |dims: &[i64]| TensorShapeProto {
        dim: dims
            .iter()
            .map(|&size| Dim {
                size,
                name: String::new(),
            })
            .collect(),
        unknown_rank: false,
    };
    let constant = |name: &str, proto: TensorProto| {
        let mut n = NodeDef {
            name: name.into(),
            op: "Const".into(),
            ..Default::default()
        };
        n.attr
            .insert("dtype".into(), attr(attr_value::Value::Type(proto.dtype)));
        n.attr.insert(
            "value".into(),
            attr(attr_value::Value::Tensor(Box::new(proto))),
        );
        n
    };
    let before = graph(vec![
        // A scalar zero as TensorFlow writes it: no value at all.
        constant(
            "zero",
            TensorProto {
                dtype: DataType::DtInt32 as i32,
                tensor_shape: Some(shaped(&[])),
                ..Default::default()
            },
        ),
        // Zeros of shape [1, 6], no values.
        constant(
            "zeros",
            TensorProto {
                dtype: DataType::DtFloat as i32,
                tensor_shape: Some(shaped(&[1, 6])),
                ..Default::default()
            },
        ),
        // Three values for five elements: the last repeats.
        constant(
            "partial",
            TensorProto {
                dtype: DataType::DtInt64 as i32,
                tensor_shape: Some(shaped(&[5])),
                int64_val: vec![1, 2, 3],
                ..Default::default()
            },
        ),
        // Already explicit: one value for all, and every value.
        constant(
            "ones",
            TensorProto {
                dtype: DataType::DtFloat as i32,
                tensor_shape: Some(shaped(&[3])),
                float_val: vec![1.0],
                ..Default::default()
            },
        ),
        int32s("listed", &[2], &[4, 5]),
    ]);
    let mut after = before.clone();
    assert_eq!(constants_with_explicit_values(&mut after).unwrap(), 3);
    let proto = |g: &GraphDef, name: &str| {
        graphopt_core::graph::attrs::tensor(
            g.node.iter().find(|n| n.name == name).unwrap(),
            "value",
        )
        .unwrap()
        .clone()
    };
    assert_eq!(proto(&after, "zero").int_val, vec![0]);
    assert_eq!(proto(&after, "zeros").float_val, vec![0.0]);
    assert_eq!(proto(&after, "partial").tensor_content.len(), 5 * 8);
    for name in ["ones", "listed"] {
        assert_eq!(proto(&after, name), proto(&before, name));
    }
    for n in &before.node {
        let value = |g: &GraphDef| {
            graphopt_core::graph::edit::const_value(
                g.node.iter().find(|m| m.name == n.name).unwrap(),
            )
        };
        assert_eq!(value(&before), value(&after), "{}", n.name);
    }
    assert_eq!(constants_with_explicit_values(&mut after).unwrap(), 0);
}

#[test]
fn dilated_convolutions_become_space_to_batch() {
    for (padding, h, w, dilations) in [
        ("SAME", 7, 9, [1, 2, 2, 1]),
        ("SAME", 8, 5, [1, 3, 2, 1]),
        ("VALID", 11, 9, [1, 2, 3, 1]),
    ] {
        let mut conv = conv("out", "Conv2D", "x", "filter", 1);
        conv.attr.insert("padding".into(), attr(s(padding)));
        conv.attr.insert("dilations".into(), attr(ints(&dilations)));
        let before = graph(vec![
            placeholder("x", &[1, h, w, 2]),
            floats("filter", &[3, 3, 2, 4], 6),
            conv,
        ]);
        let mut after = before.clone();
        assert_eq!(dilated_convolutions_as_space_to_batch(&mut after), 1);
        let ops = ops(&after);
        assert!(ops.contains(&"SpaceToBatchND") && ops.contains(&"BatchToSpaceND"));
        for n in after.node.iter().filter(|n| n.op == "Conv2D") {
            assert_eq!(
                graphopt_core::graph::attrs::ints(n, "dilations"),
                Some(vec![1, 1, 1, 1])
            );
        }
        graphopt_core::graph::validate(&after).unwrap();
        let x = input(&[1, h as usize, w as usize, 2], 19);
        let want = evaluate(&before, &x, &["out"]);
        assert_eq!(want, evaluate(&after, &x, &["out"]), "{padding} {h}x{w}");
        // And as legalize(target=tract) leaves it: no paddings or crops in the atrous ops.
        let legal = legalize_for_tract(before.clone(), &["out"]);
        assert!(!legal.node.iter().any(|n| n.op == "Pad"));
        assert_eq!(want, evaluate(&legal, &x, &["out"]), "{padding} {h}x{w}");
    }
}

fn legalize_for_tract(mut g: GraphDef, outputs: &[&str]) -> GraphDef {
    let specs = transforms::parse("legalize(target=tract)").unwrap();
    let outputs: Vec<String> = outputs.iter().map(|s| s.to_string()).collect();
    transforms::run(
        &Registry::with_builtins(),
        &mut g,
        &specs,
        &["x".to_string()],
        &outputs,
    )
    .unwrap();
    g
}

#[test]
fn legalize_for_tract_leaves_no_pad() {
    let mut before = keras_stride_two(7, 8, [0, 0, 1, 1, 0, 1, 0, 0]);
    before.node.extend([
        int32s("more", &[4, 2], &[0, 0, 1, 1, 1, 1, 0, 0]),
        pad("padded", "out", "more"),
        node(
            "pooled",
            "MaxPool",
            &["padded"],
            &[
                ("ksize", ints(&[1, 2, 2, 1])),
                ("strides", ints(&[1, 2, 2, 1])),
                ("padding", s("VALID")),
            ],
        ),
    ]);
    let after = legalize_for_tract(before.clone(), &["pooled"]);
    let ops = ops(&after);
    assert!(!ops.contains(&"Pad"), "{ops:?}");
    assert!(ops.contains(&"ConcatV2"), "{ops:?}");
    let x = input(&[1, 7, 8, 4], 5);
    assert_eq!(
        evaluate(&before, &x, &["pooled"]),
        evaluate(&after, &x, &["pooled"])
    );
}

/// What legalize cannot rewrite it reports, node by node as `check` names it, and says how to get
/// further: a Pad of an input whose batch is unknown cannot become concats.
#[test]
fn legalize_reports_what_it_leaves_for_the_target() {
    let mut g = keras_stride_two(7, 8, [0, 0, 1, 1, 0, 1, 0, 0]);
    g.node.extend([
        int32s("more", &[4, 2], &[0, 0, 2, 1, 1, 1, 0, 0]),
        pad("padded", "out", "more"),
    ]);
    let dynamic = |mut g: GraphDef| {
        let x = g.node.iter_mut().find(|n| n.name == "x").unwrap();
        *x = placeholder("x", &[-1, 7, 8, 4]);
        g
    };
    let run = |mut g: GraphDef| {
        let specs = transforms::parse("legalize(target=tract)").unwrap();
        let outcomes = transforms::run(
            &Registry::with_builtins(),
            &mut g,
            &specs,
            &["x".to_string()],
            &["padded".to_string()],
        )
        .unwrap();
        let problems = graphopt_core::targets::check_target(&g, "tract").unwrap();
        (outcomes[0].warnings.clone(), problems)
    };
    let (warnings, problems) = run(dynamic(g.clone()));
    let left: Vec<_> = problems.iter().filter(|p| p.blocking).collect();
    assert!(
        !left.is_empty() && left.iter().any(|p| p.op == "Pad"),
        "{left:?}"
    );
    for problem in &left {
        assert!(
            warnings.contains(&format!("left for tract: {problem}")),
            "{problem} not reported: {warnings:#?}"
        );
    }
    let last = warnings.last().unwrap();
    assert!(
        last.starts_with(&format!("{} node(s) that tract ", left.len()))
            && last.contains("inputs of unknown shape (x)")
            && last.contains("fix_input_shapes"),
        "{last}"
    );
    // With the batch known, the Pad becomes concats, and nothing is left to report.
    let (warnings, problems) = run(g);
    assert!(problems.iter().all(|p| !p.blocking), "{problems:?}");
    assert!(warnings.is_empty(), "{warnings:?}");
}

/// The pipelines tract judges (consumers/tract) keep TensorFlow's outputs on the fixtures.
#[test]
fn legalized_fixtures_match_tensorflow() {
    const STANDARD: &str = "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) \
        fold_constants(ignore_errors=true) fold_batch_norms fold_old_batch_norms \
        sort_by_execution_order";
    let fix = r#"fix_input_shapes(shape="1,32,32,3")"#;
    for (model, pipeline) in [
        ("keras_cnn", format!("{STANDARD} legalize(target=tract)")),
        ("tf1_conv_bn", format!("{STANDARD} legalize(target=tract)")),
        (
            "efficientnet_block",
            format!("{fix} {STANDARD} legalize(target=tract)"),
        ),
        (
            "efficientnet_block",
            format!("@deploy {fix} @deploy legalize(target=tract)"),
        ),
        ("bn_patterns", format!("{STANDARD} legalize(target=tract)")),
        ("atrous_conv", format!("{STANDARD} legalize(target=tract)")),
        (
            "atrous_conv",
            format!("{STANDARD} flatten_atrous_conv legalize(target=tract)"),
        ),
        (
            "densenet_block",
            format!("{STANDARD} legalize(target=tract)"),
        ),
        ("densenet_block", "@deploy legalize(target=tract)".into()),
    ] {
        let g = common::apply(model, &pipeline);
        for op in [
            "Pad",
            "FusedBatchNorm",
            "FusedBatchNormV3",
            "PlaceholderWithDefault",
        ] {
            assert!(g.node.iter().all(|n| n.op != op), "{model}: {op} left");
        }
        common::assert_matches_tensorflow(model, &g, 1e-5, 1e-6);
    }
}

#[test]
fn an_input_with_a_default_stays_an_input_when_legalize_folds_constants() {
    // `rate` is a PlaceholderWithDefault of a constant: legalize folds constants first, but an
    // input the app may feed (declared in --inputs) is not a constant; tract gets it as a
    // Placeholder. (Left out of --inputs, it keeps its default: see the next test.)
    let mut g = graph(vec![
        placeholder("x", &[2]),
        floats("default", &[], 1),
        node(
            "rate",
            "PlaceholderWithDefault",
            &["default"],
            &[
                ("dtype", dtype(DataType::DtFloat)),
                ("shape", attr_value::Value::Shape(Default::default())),
            ],
        ),
        node(
            "y",
            "Mul",
            &["x", "rate"],
            &[("T", dtype(DataType::DtFloat))],
        ),
    ]);
    let specs = transforms::parse("legalize(target=tract)").unwrap();
    transforms::run(
        &Registry::with_builtins(),
        &mut g,
        &specs,
        &["x".to_string(), "rate".to_string()],
        &["y".to_string()],
    )
    .unwrap();
    let after = g;
    let rate = after
        .node
        .iter()
        .find(|n| n.name == "rate")
        .expect("rate kept");
    assert_eq!(rate.op, "Placeholder");
    assert!(rate.input.is_empty());
}

/// A PlaceholderWithDefault that --inputs leave out is never fed: legalize made it a
/// Placeholder all the same, so the graph asked for a value it had never needed (graphopt
/// verify: "is an input of the graph and was not fed"; tract would want it fed too). It now
/// keeps its default; a declared one becomes a Placeholder, keeping its control inputs.
#[test]
fn a_placeholder_with_default_left_out_of_the_inputs_keeps_its_default() {
    let mut scale_node = node("scale", "PlaceholderWithDefault", &["two", "^gate"], &[]);
    scale_node.attr.remove("T");
    scale_node
        .attr
        .insert("dtype".into(), attr(dtype(DataType::DtFloat)));
    scale_node.attr.insert(
        "shape".into(),
        attr(attr_value::Value::Shape(Default::default())),
    );
    let before = graph(vec![
        placeholder("x", &[1, 4]),
        node("gate", "NoOp", &["^x"], &[]),
        {
            let mut two = floats("two", &[], 0);
            graphopt_core::graph::edit::set_const_value(
                &mut two,
                &graphopt_core::tensor::Tensor::from_data(graphopt_core::tensor::Data::F32(
                    ndarray::arr0(2.0f32).into_dyn(),
                )),
            );
            two
        },
        scale_node,
        node("out", "Mul", &["x", "scale"], &[]),
    ]);
    let x = input(&[1, 4], 3);
    let want = evaluate(&before, &x, &["out"]);

    let legal = legalize_for_tract(before.clone(), &["out"]);
    assert!(
        !legal
            .node
            .iter()
            .any(|n| n.name == "scale" && n.op == "Placeholder"),
        "{:?}",
        ops(&legal)
    );
    assert!(!ops(&legal).contains(&"PlaceholderWithDefault"));
    assert_eq!(want, evaluate(&legal, &x, &["out"]));

    // Declared as an input: a Placeholder the app feeds, its control input kept.
    let specs = transforms::parse("legalize(target=tract)").unwrap();
    let mut fed = before.clone();
    transforms::run(
        &Registry::with_builtins(),
        &mut fed,
        &specs,
        &["x".to_string(), "scale".to_string()],
        &["out".to_string()],
    )
    .unwrap();
    let scale = fed.node.iter().find(|n| n.name == "scale").unwrap();
    assert_eq!(scale.op, "Placeholder");
    assert!(
        scale.input.iter().all(|i| i.starts_with('^')),
        "{:?}",
        scale.input
    );
}

/// A Pad folded into the convolutions after it took its control inputs with it: the
/// convolutions no longer waited for what the Pad waited for. Its readers now get them (as
/// the concat rewrite gives them to its first concat).
#[test]
fn a_pad_folded_into_convolutions_leaves_its_control_inputs_to_them() {
    let mut g = keras_stride_two(8, 8, [0, 0, 0, 1, 0, 1, 0, 0]);
    g.node.insert(1, node("gate", "NoOp", &["^x"], &[]));
    let pad_node = g.node.iter_mut().find(|n| n.name == "pad").unwrap();
    pad_node.input.push("^gate".into());
    assert_eq!(pads_into_convolutions(&mut g, &protected(&["out"])), 1);
    for name in ["dw", "conv"] {
        let n = g.node.iter().find(|n| n.name == name).unwrap();
        assert_eq!(n.input, ["x", n.input[1].as_str(), "^gate"], "{name}");
    }
    graphopt_core::graph::validate(&g).unwrap();
}

/// legalize(target=tract) wrote a negative ConcatV2 axis Const in place when only the concat
/// read it, even when the Const was a declared output (`graphopt verify`: output 'axis'
/// DIFFERENT) or a fed input. A declared output now keeps its value (the concat gets a new
/// Const) and a fed one is no constant axis at all.
#[test]
fn axes_named_as_outputs_or_inputs_are_not_rewritten_in_place() {
    let concat = || {
        let mut c = node("c", "ConcatV2", &["x", "x", "axis"], &[]);
        c.attr.insert("N".into(), attr(attr_value::Value::I(2)));
        c.attr.insert("Tidx".into(), attr(dtype(DataType::DtInt32)));
        c
    };
    let before = graph(vec![
        placeholder("x", &[1, 4]),
        int32s("axis", &[], &[-1]),
        concat(),
    ]);
    let axis_of = |g: &GraphDef| {
        let a = g.node.iter().find(|n| n.name == "axis").unwrap();
        graphopt_core::graph::edit::const_value(a)
            .unwrap()
            .integers()
            .unwrap()
    };
    // A declared output: its value stays, the concat reads a new Const of the fixed axis.
    let mut out = before.clone();
    assert_eq!(
        non_negative_axes(&mut out, &protected(&["c", "axis"]), &protected(&["x"])),
        1
    );
    assert_eq!(axis_of(&out), [-1]);
    let c = out.node.iter().find(|n| n.name == "c").unwrap();
    assert_ne!(c.input[2], "axis");
    let x = input(&[1, 4], 2);
    assert_eq!(
        evaluate(&before, &x, &["c", "axis"]),
        evaluate(&out, &x, &["c", "axis"])
    );
    // A fed input: left as it is.
    let mut fed = before.clone();
    assert_eq!(
        non_negative_axes(
            &mut fed,
            &protected(&["c", "axis", "x"]),
            &protected(&["x", "axis"])
        ),
        0
    );
    assert_eq!(fed, before);
}

/// A Const named in --inputs holds what the app feeds, but legalize's rewrites read it as a
/// constant: tract's batch-norm decomposition folded a fed gamma's default into the scale
/// (`graphopt verify` feeding gamma: relative error 1.3). The fed Const now stands as a
/// Placeholder while the rewrites run: the norm is left for the check to report, the Const
/// comes back unchanged, and the graph computes what the original does for any fed value.
#[test]
fn a_const_named_as_an_input_is_no_constant_to_legalize() {
    let bn = node(
        "bn",
        "FusedBatchNormV3",
        &["x", "gamma", "beta", "mean", "var"],
        &[
            ("U", dtype(DataType::DtFloat)),
            ("is_training", attr_value::Value::B(false)),
            ("data_format", s("NHWC")),
            ("epsilon", attr_value::Value::F(0.001)),
        ],
    );
    let before = graph(vec![
        placeholder("x", &[1, 2, 2, 3]),
        floats("gamma", &[3], 1),
        floats("beta", &[3], 2),
        floats("mean", &[3], 3),
        graphopt_core::graph::edit::const_node(
            "var".into(),
            String::new(),
            &graphopt_core::tensor::Tensor::from_data(graphopt_core::tensor::Data::F32(
                ndarray::arr1(&[0.5f32, 1.0, 2.0]).into_dyn(),
            )),
        ),
        bn,
    ]);
    let specs = transforms::parse("legalize(target=tract)").unwrap();
    let mut after = before.clone();
    transforms::run(
        &Registry::with_builtins(),
        &mut after,
        &specs,
        &["x".to_string(), "gamma".to_string()],
        &["bn".to_string()],
    )
    .unwrap();
    let find = |g: &GraphDef, name: &str| g.node.iter().find(|n| n.name == name).cloned();
    assert_eq!(find(&after, "gamma"), find(&before, "gamma"));
    let feeds = std::collections::BTreeMap::from([
        ("x".to_string(), input(&[1, 2, 2, 3], 5)),
        ("gamma".to_string(), input(&[3], 6)),
    ]);
    let run = |g: &GraphDef| {
        graphopt_core::eval::evaluate(g, &feeds, &["bn".to_string()], Default::default()).unwrap()
    };
    assert_eq!(run(&before), run(&after));
}
