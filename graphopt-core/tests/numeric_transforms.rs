//! fold_constants and the batch-norm folds: outputs stay TensorFlow's, graphs get smaller.

mod common;

use graphopt_core::transforms::{self, Registry};

use common::apply;

fn assert_matches_tensorflow(model: &str, graph: &graphopt_core::proto::GraphDef, tolerance: f64) {
    common::assert_matches_tensorflow(model, graph, tolerance, 1e-6);
}

fn count(graph: &graphopt_core::proto::GraphDef, op: &str) -> usize {
    graph.node.iter().filter(|n| n.op == op).count()
}

#[test]
fn fold_constants_keeps_outputs_and_shrinks_graphs() {
    for name in common::MODELS {
        let before = common::load(name);
        let after = apply(name, "fold_constants");
        assert_matches_tensorflow(name, &after, 1e-5);
        assert!(
            after.node.len() <= before.node.len(),
            "{name}: {} -> {}",
            before.node.len(),
            after.node.len()
        );
        println!(
            "{name}: {} -> {} nodes",
            before.node.len(),
            after.node.len()
        );
    }
}

fn graph_from_text(text: &str) -> graphopt_core::proto::GraphDef {
    graphopt_core::text_format::parse(text).unwrap()
}

fn run_on(
    graph: &mut graphopt_core::proto::GraphDef,
    transform_string: &str,
    outputs: &[&str],
) -> graphopt_core::Result<()> {
    let specs = transforms::parse(transform_string).unwrap();
    let outputs: Vec<String> = outputs.iter().map(|s| s.to_string()).collect();
    transforms::run(&Registry::with_builtins(), graph, &specs, &[], &outputs).map(|_| ())
}

const SHAPE_ARITHMETIC: &str = r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } }
       attr { key: "shape" value { shape { dim { size: 2 } dim { size: 3 } dim { size: 4 } } } } }
node { name: "shape" op: "Shape" input: "x" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "two" op: "Const" attr { key: "dtype" value { type: DT_INT32 } }
       attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape {} int_val: 2 } } } }
node { name: "doubled" op: "Mul" input: "shape" input: "two" attr { key: "T" value { type: DT_INT32 } } }
node { name: "rank" op: "Rank" input: "x" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "t" op: "Transpose" input: "x" input: "perm" attr { key: "T" value { type: DT_FLOAT } } attr { key: "Tperm" value { type: DT_INT32 } } }
node { name: "perm" op: "Const" attr { key: "dtype" value { type: DT_INT32 } }
       attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape { dim { size: 3 } } tensor_content: "\002\000\000\000\000\000\000\000\001\000\000\000" } } } }
node { name: "t_size" op: "Size" input: "t" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "split_dim" op: "Const" attr { key: "dtype" value { type: DT_INT32 } }
       attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape {} int_val: 0 } } } }
node { name: "split" op: "Split" input: "split_dim" input: "doubled" attr { key: "T" value { type: DT_INT32 } } attr { key: "num_split" value { i: 3 } } }
node { name: "use_second" op: "Squeeze" input: "split:1" input: "^rank" attr { key: "T" value { type: DT_INT32 } } }
node { name: "out" op: "Pack" input: "use_second" input: "t_size_i" attr { key: "T" value { type: DT_INT32 } } attr { key: "N" value { i: 2 } } }
node { name: "t_size_i" op: "Identity" input: "t_size" attr { key: "T" value { type: DT_INT32 } } }
"#;

#[test]
fn shapes_known_statically_fold_and_names_survive() {
    let mut graph = graph_from_text(SHAPE_ARITHMETIC);
    run_on(&mut graph, "fold_constants", &["out"]).unwrap();
    let names: Vec<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
    // Everything derived from x's static shape folds into the output constant.
    let out = graph.node.iter().find(|n| n.name == "out").unwrap();
    assert_eq!(out.op, "Const", "{names:?}");
    let value = graphopt_core::tensor::Tensor::from_proto(
        graphopt_core::graph::attrs::tensor(out, "value").unwrap(),
    )
    .unwrap();
    // shape*2 = [4, 6, 8]; split -> second = [6]; Size(transpose(x)) = 24.
    let expected = graphopt_core::tensor::Data::I32(ndarray::arr1(&[6, 24]).into_dyn());
    assert_eq!(value.data(), &expected);
    assert!(
        !names.contains(&"shape") && !names.contains(&"split"),
        "{names:?}"
    );
    // x and the transpose are not constant and stay.
    assert!(names.contains(&"x") && names.contains(&"t"), "{names:?}");
}

const HOSTILE_FILL: &str = r#"
node { name: "dims" op: "Const" attr { key: "dtype" value { type: DT_INT64 } }
       attr { key: "value" value { tensor { dtype: DT_INT64 tensor_shape { dim { size: 2 } } int64_val: 1000000000 int64_val: 1000000 } } } }
node { name: "v" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
       attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape {} float_val: 1 } } } }
node { name: "huge" op: "Fill" input: "dims" input: "v" attr { key: "T" value { type: DT_FLOAT } } attr { key: "index_type" value { type: DT_INT64 } } }
node { name: "axes" op: "Const" attr { key: "dtype" value { type: DT_INT32 } }
       attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape { dim { size: 2 } } int_val: 0 int_val: 1 } } } }
node { name: "total" op: "Sum" input: "huge" input: "axes" attr { key: "T" value { type: DT_FLOAT } } attr { key: "Tidx" value { type: DT_INT32 } } }
"#;

#[test]
fn a_hostile_fill_is_left_alone_without_allocating() {
    let mut graph = graph_from_text(HOSTILE_FILL);
    run_on(&mut graph, "fold_constants", &["total"]).unwrap();
    let ops: Vec<(&str, &str)> = graph
        .node
        .iter()
        .map(|n| (n.name.as_str(), n.op.as_str()))
        .collect();
    assert!(
        ops.contains(&("huge", "Fill")) && ops.contains(&("total", "Sum")),
        "{ops:?}"
    );
    // And the evaluator refuses it outright.
    let error = graphopt_core::eval::evaluate(
        &graph,
        &Default::default(),
        &["total".into()],
        Default::default(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("'huge' (Fill)"), "{error}");
}

#[test]
fn excluded_ops_and_nodes_stay() {
    let mut graph = graph_from_text(SHAPE_ARITHMETIC);
    run_on(
        &mut graph,
        "fold_constants(exclude_op=Mul, exclude_node=rank)",
        &["out"],
    )
    .unwrap();
    let ops: Vec<(&str, &str)> = graph
        .node
        .iter()
        .map(|n| (n.name.as_str(), n.op.as_str()))
        .collect();
    assert!(
        ops.contains(&("doubled", "Mul")) && ops.contains(&("rank", "Rank")),
        "{ops:?}"
    );
    assert!(ops.contains(&("shape", "Const")), "{ops:?}");
}

#[test]
fn fold_batch_norms_removes_keras3_decomposed_batch_norm() {
    let graph = apply("keras_cnn", "fold_constants fold_batch_norms");
    assert_matches_tensorflow("keras_cnn", &graph, 1e-5);
    for op in ["Mul", "AddV2", "Rsqrt", "Sub", "FusedBatchNormV3"] {
        assert_eq!(
            count(&graph, op),
            0,
            "{op} left: {:?}",
            graph
                .node
                .iter()
                .map(|n| (&n.name, &n.op))
                .collect::<Vec<_>>()
        );
    }
    // Conv -> BiasAdd -> activation, three times, plus the dense layer's BiasAdd.
    assert_eq!(count(&graph, "BiasAdd"), 4);
}

#[test]
fn fold_old_batch_norms_folds_fused_v3_after_conv_and_bias() {
    let graph = apply("tf1_conv_bn", "fold_constants fold_old_batch_norms");
    assert_matches_tensorflow("tf1_conv_bn", &graph, 1e-5);
    assert_eq!(count(&graph, "FusedBatchNormV3"), 0);
    // Conv2D -> BiasAdd -> BatchNorm became Conv2D -> one BiasAdd named after the norm.
    assert_eq!(count(&graph, "BiasAdd"), 1);
    let bias_add = graph.node.iter().find(|n| n.op == "BiasAdd").unwrap();
    assert_eq!(bias_add.name, "bn/FusedBatchNormV3");
    assert_eq!(bias_add.input[0], "conv/Conv2D");
}

/// The CNN fixtures with batch norms, on which graphopt must beat the Graph Transform Tool.
const CNNS_WITH_BATCH_NORM: &[&str] = &["keras_cnn", "tf1_conv_bn", "bn_patterns"];

/// Node counts of the standard pipeline per fixture, as the README's table gives them.
const STANDARD_NODES: &[(&str, usize)] = &[
    ("keras_cnn", 25),
    ("transformer_block", 91),
    ("while_rnn", 72),
    ("tf1_conv_bn", 12),
    ("bn_patterns", 53),
    ("training_leftovers", 4),
    ("resize_pad_conv", 29),
    ("atrous_conv", 33),
    ("dense_mlp", 17),
    ("function_calls", 6),
    ("efficientnet_block", 97),
    ("densenet_block", 48),
    ("bert_encoder", 179),
];

#[test]
fn standard_pipeline_keeps_outputs_and_beats_the_graph_transform_tool() {
    for name in common::MODELS {
        let expected = common::expected(name);
        let pipeline = expected["gtt_pipeline"]["transforms"].as_str().unwrap();
        let gtt_nodes = expected["gtt_pipeline"]["node_count"].as_u64().unwrap() as usize;
        // On the tf.cond fixture TensorFlow's count comes from splicing the Identities that pin
        // the branch constants (so the untaken dropout branch would run its RandomUniform);
        // graphopt keeps those and removes the whole resolved cond with remove_training_nodes.
        let pipeline = if *name == "training_leftovers" {
            format!("remove_training_nodes {pipeline}")
        } else {
            pipeline.to_string()
        };
        let graph = apply(name, &pipeline);
        assert_matches_tensorflow(name, &graph, 1e-5);
        println!(
            "{name}: graphopt {} nodes, TensorFlow's GTT {gtt_nodes}",
            graph.node.len()
        );
        let recorded = STANDARD_NODES
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| *c);
        assert_eq!(
            Some(graph.node.len()),
            recorded,
            "{name}: node count changed (update the README's table)"
        );
        if *name != "bn_patterns" {
            // Only bn_patterns shares weights between layers; elsewhere no weight is copied
            // (control edges to a weight do not count as readers).
            assert!(
                !graph.node.iter().any(|n| n.name.ends_with("_bn_folded")),
                "{name}: weights were copied"
            );
        }
        if CNNS_WITH_BATCH_NORM.contains(name) {
            assert!(
                graph.node.len() < gtt_nodes,
                "{name}: {} nodes, GTT {gtt_nodes}",
                graph.node.len()
            );
            for op in [
                "Rsqrt",
                "FusedBatchNorm",
                "FusedBatchNormV2",
                "FusedBatchNormV3",
                "BatchNormWithGlobalNormalization",
            ] {
                assert_eq!(count(&graph, op), 0, "{name}: {op} left");
            }
            // No Mul or Add is left reading a convolution or matrix product.
            for node in &graph.node {
                if matches!(node.op.as_str(), "Mul" | "Add" | "AddV2" | "Sub") {
                    for input in &node.input {
                        let producer = graph
                            .node
                            .iter()
                            .find(|n| n.name == graphopt_core::graph::node_name(input))
                            .unwrap();
                        assert!(
                            !matches!(
                                producer.op.as_str(),
                                "Conv2D" | "DepthwiseConv2dNative" | "MatMul" | "BiasAdd"
                            ),
                            "{name}: {} ({}) still follows {} ({})",
                            node.name,
                            node.op,
                            producer.name,
                            producer.op
                        );
                    }
                }
            }
        } else {
            assert!(
                graph.node.len() <= gtt_nodes,
                "{name}: {} nodes, GTT {gtt_nodes}",
                graph.node.len()
            );
        }
    }
}

#[test]
fn shared_weights_are_copied_not_scaled_twice() {
    // bn_patterns' `shared/weights` feed two convolutions with different batch norms.
    let graph = apply(
        "bn_patterns",
        "fold_constants fold_batch_norms fold_old_batch_norms",
    );
    let a = graph.node.iter().find(|n| n.name == "a/bn").unwrap();
    let b_conv = graph
        .node
        .iter()
        .find(|n| n.op == "Conv2D" && n.input[0].starts_with("mul"))
        .unwrap();
    let a_conv = graph.node.iter().find(|n| n.name == a.input[0]).unwrap();
    assert_ne!(
        a_conv.input[1], b_conv.input[1],
        "both convolutions read the same scaled weights"
    );
    assert_matches_tensorflow("bn_patterns", &graph, 1e-5);
}

/// A convolution read by an Add of a Const and by something else: the Add is not made the
/// convolution's BiasAdd (nothing folds, and OpenCV fuses a BiasAdd into the convolution for
/// every reader: DenseNet's stem convolution feeds a batch norm and a concatenation).
const SHARED_CONV_ADD: &str = r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } }
       attr { key: "shape" value { shape { dim { size: 1 } dim { size: 2 } dim { size: 2 } dim { size: 1 } } } } }
node { name: "w" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
       attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 1 } dim { size: 1 } dim { size: 1 } dim { size: 2 } } float_val: 1.0 float_val: 2.0 } } } }
node { name: "conv" op: "Conv2D" input: "x" input: "w" attr { key: "T" value { type: DT_FLOAT } }
       attr { key: "strides" value { list { i: 1 i: 1 i: 1 i: 1 } } } attr { key: "padding" value { s: "SAME" } } }
node { name: "c" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
       attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 2 } } float_val: 0.5 float_val: -1.0 } } } }
node { name: "add" op: "AddV2" input: "conv" input: "c" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "other" op: "Relu" input: "conv" attr { key: "T" value { type: DT_FLOAT } } }
"#;

#[test]
fn an_add_after_a_shared_convolution_stays_an_add() {
    for transforms in ["fold_batch_norms", "@deploy"] {
        let mut graph = graph_from_text(SHARED_CONV_ADD);
        run_on(&mut graph, transforms, &["add", "other"]).unwrap();
        let add = graph.node.iter().find(|n| n.name == "add").unwrap();
        assert_eq!(add.op, "AddV2", "{transforms}");
        assert_eq!(add.input[0], "conv", "{transforms}");
    }
    // With the add the convolution's one reader, it becomes the convolution's bias.
    let mut graph = graph_from_text(SHARED_CONV_ADD);
    graph.node.retain(|n| n.name != "other");
    run_on(&mut graph, "fold_batch_norms", &["add"]).unwrap();
    let add = graph.node.iter().find(|n| n.name == "add").unwrap();
    assert_eq!(add.op, "BiasAdd");
}

#[test]
fn flatten_atrous_conv_makes_one_dilated_convolution() {
    let graph = apply("atrous_conv", "fold_constants flatten_atrous_conv");
    assert_matches_tensorflow("atrous_conv", &graph, 1e-5);
    assert_eq!(count(&graph, "SpaceToBatchND"), 0);
    assert_eq!(count(&graph, "BatchToSpaceND"), 0);
    let paddings: Vec<String> = graph
        .node
        .iter()
        .filter(|n| n.op.contains("Conv"))
        .map(|n| graphopt_core::graph::attrs::string(n, "padding").unwrap())
        .collect();
    assert!(
        paddings.contains(&"SAME".to_string()) && paddings.contains(&"VALID".to_string()),
        "{paddings:?}"
    );
}

#[test]
fn flatten_atrous_conv_rewrites_the_output_shapes_it_changes() {
    // The convolution that becomes dilated outputs the whole image now, not the blocks:
    // TensorFlow refuses a graph whose `_output_shapes` say otherwise.
    let graph = apply(
        "atrous_conv",
        "fold_constants add_shapes flatten_atrous_conv",
    );
    assert_eq!(count(&graph, "SpaceToBatchND"), 0);
    assert_output_shapes_hold("atrous_conv", &graph, false);
}

#[test]
fn constants_written_in_place_keep_their_output_shapes_true() {
    // fold_scale_axis divides a scalar shift by a per-channel scale in place: the Const
    // becomes [2], and TensorFlow 2.21 refused the graph while its `_output_shapes` said [].
    let mut graph = graph_from_text(
        r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "shape" value { shape { dim { size: 1 } dim { size: 4 } dim { size: 4 } dim { size: 2 } } } } }
node { name: "s" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 2 } } float_val: 2 float_val: 4 } } } }
node { name: "m" op: "Mul" input: "x" input: "s" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "b" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { } float_val: 1 } } }
  attr { key: "_output_shapes" value { list { shape { } } } } }
node { name: "a" op: "AddV2" input: "m" input: "b" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "r" op: "Relu" input: "a" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "w" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 1 } dim { size: 1 } dim { size: 2 } dim { size: 1 } } float_val: 1 float_val: 2 } } } }
node { name: "y" op: "Conv2D" input: "r" input: "w" attr { key: "T" value { type: DT_FLOAT } }
  attr { key: "strides" value { list { i: 1 i: 1 i: 1 i: 1 } } } attr { key: "padding" value { s: "VALID" } } }
"#,
    );
    run_on(&mut graph, "fold_scale_axis", &["y"]).unwrap();
    assert_eq!(count(&graph, "Mul"), 0);
    let b = graph.node.iter().find(|n| n.name == "b").unwrap();
    let value = graphopt_core::graph::attrs::tensor(b, "value").unwrap();
    let Some(graphopt_core::proto::attr_value::Value::List(list)) =
        b.attr.get("_output_shapes").and_then(|a| a.value.as_ref())
    else {
        panic!("b lost its _output_shapes");
    };
    assert_eq!(list.shape, [value.tensor_shape.clone().unwrap()]);
    assert_eq!(list.shape[0].dim.len(), 1);
}

#[test]
fn scales_that_would_overflow_a_half_shift_stay() {
    // Relu(x * [1e-3, 1] + [100, 1]) in half: moving the scale divides the shift to 1e5, past
    // half's largest 65504; TensorFlow 2.21 then gave infinities where the graph gives 214.8.
    let half = |name: &str, values: &[f32], dims: &[usize]| {
        let values: Vec<half::f16> = values.iter().map(|&v| half::f16::from_f32(v)).collect();
        let array = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(dims), values).unwrap();
        let t = graphopt_core::tensor::Tensor::from_data(graphopt_core::tensor::Data::F16(array));
        graphopt_core::graph::edit::const_node(name.into(), String::new(), &t)
    };
    use synthetic::{conv, graph, node};
    let mut x = synthetic::placeholder("x", &[1, 4, 4, 2]);
    let f16 = || graphopt_core::proto::AttrValue {
        value: Some(graphopt_core::proto::attr_value::Value::Type(
            graphopt_core::proto::DataType::DtHalf as i32,
        )),
    };
    x.attr.insert("dtype".into(), f16());
    let mut nodes = vec![
        x,
        half("s", &[1e-3, 1.0], &[2]),
        half("b", &[100.0, 1.0], &[2]),
        half("w", &[1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 2]),
        node("m", "Mul", &["x", "s"], &[]),
        node("a", "AddV2", &["m", "b"], &[]),
        node("r", "Relu", &["a"], &[]),
        conv("y", "r", "w", "VALID"),
    ];
    for n in nodes.iter_mut().filter(|n| n.attr.contains_key("T")) {
        n.attr.insert("T".into(), f16());
    }
    let mut folded = graph(nodes);
    run_on(&mut folded, "fold_scale_axis", &["y"]).unwrap();
    assert_eq!(count(&folded, "Mul"), 1);
}

#[test]
fn batch_norms_whose_fold_would_overflow_half_stay() {
    // A half convolution near the norm's mean of 100, scaled by 1000 in float32 inside the
    // norm: folded, the bias `-mean * scale` is -1e5, past half's 65504, and TensorFlow 2.21
    // gave NaN where the graph gives numbers up to 3062.
    let f32s = |name: &str, values: &str| {
        format!(
            r#"node {{ name: "{name}" op: "Const" attr {{ key: "dtype" value {{ type: DT_FLOAT }} }}
  attr {{ key: "value" value {{ tensor {{ dtype: DT_FLOAT tensor_shape {{ dim {{ size: 2 }} }} {values} }} }} }} }}"#
        )
    };
    let text = format!(
        r#"
node {{ name: "x" op: "Placeholder" attr {{ key: "dtype" value {{ type: DT_HALF }} }}
  attr {{ key: "shape" value {{ shape {{ dim {{ size: 1 }} dim {{ size: 4 }} dim {{ size: 4 }} dim {{ size: 2 }} }} }} }} }}
node {{ name: "w" op: "Const" attr {{ key: "dtype" value {{ type: DT_HALF }} }}
  attr {{ key: "value" value {{ tensor {{ dtype: DT_HALF tensor_shape {{ dim {{ size: 1 }} dim {{ size: 1 }} dim {{ size: 2 }} dim {{ size: 2 }} }}
    half_val: 15360 half_val: 16384 half_val: 16896 half_val: 17408 }} }} }} }}
node {{ name: "c" op: "Conv2D" input: "x" input: "w" attr {{ key: "T" value {{ type: DT_HALF }} }}
  attr {{ key: "strides" value {{ list {{ i: 1 i: 1 i: 1 i: 1 }} }} }} attr {{ key: "padding" value {{ s: "VALID" }} }} }}
{}
{}
{}
{}
node {{ name: "y" op: "FusedBatchNormV3" input: "c" input: "scale" input: "offset" input: "mean" input: "variance"
  attr {{ key: "T" value {{ type: DT_HALF }} }} attr {{ key: "U" value {{ type: DT_FLOAT }} }}
  attr {{ key: "epsilon" value {{ f: 0 }} }} attr {{ key: "is_training" value {{ b: false }} }} }}
"#,
        f32s("scale", "float_val: 1000 float_val: 1"),
        f32s("offset", "float_val: 0 float_val: 0"),
        f32s("mean", "float_val: 100 float_val: 0"),
        f32s("variance", "float_val: 1 float_val: 1"),
    );
    let mut graph = graph_from_text(&text);
    run_on(&mut graph, "fold_old_batch_norms", &["y"]).unwrap();
    assert_eq!(count(&graph, "FusedBatchNormV3"), 1);
}

mod synthetic {
    //! Forms TensorFlow's CPU build cannot run (NCHW convolutions, the deprecated
    //! BatchNormWithGlobalNormalization): checked against graphopt's own evaluation of the
    //! unfolded graph, whose kernels the TensorFlow vectors cover in NHWC.

    use graphopt_core::graph::edit::const_node;
    use graphopt_core::proto::NodeDef;
    pub use graphopt_core::tensor::{Data, Tensor};
    pub use ndarray::{ArrayD, IxDyn};

    pub use crate::common::graphs::{graph, ints, node, placeholder, s};

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32
                    / 500.0
                    - 1.0
            })
            .collect()
    }

    /// A Const holding `data` as it is.
    pub fn exact(name: &str, data: Data) -> NodeDef {
        const_node(name.into(), String::new(), &Tensor::from_data(data))
    }

    /// An NHWC Conv2D with unit strides.
    pub fn conv(name: &str, input: &str, filter: &str, padding: &str) -> NodeDef {
        node(
            name,
            "Conv2D",
            &[input, filter],
            &[("strides", ints(&[1, 1, 1, 1])), ("padding", s(padding))],
        )
    }

    /// A 2x2 NHWC pooling (`op` is MaxPool or AvgPool) with unit strides.
    pub fn pool(name: &str, op: &str, input: &str, padding: &str) -> NodeDef {
        node(
            name,
            op,
            &[input],
            &[
                ("ksize", ints(&[1, 2, 2, 1])),
                ("strides", ints(&[1, 1, 1, 1])),
                ("padding", s(padding)),
            ],
        )
    }

    pub fn constant(name: &str, dims: &[usize], seed: u32, positive: bool) -> NodeDef {
        let n = dims.iter().product();
        let mut v = values(n, seed);
        if positive {
            v.iter_mut().for_each(|x| *x = x.abs() + 0.5);
        }
        let t = Tensor::from_data(Data::F32(ArrayD::from_shape_vec(IxDyn(dims), v).unwrap()));
        const_node(name.into(), String::new(), &t)
    }
}

fn fold_and_compare(graph: graphopt_core::proto::GraphDef, output: &str, removed_op: &str) {
    let mut folded = graph.clone();
    run_on(
        &mut folded,
        "fold_constants fold_batch_norms fold_old_batch_norms",
        &[output],
    )
    .unwrap();
    assert_eq!(
        count(&folded, removed_op),
        0,
        "{removed_op} left: {:?}",
        folded
            .node
            .iter()
            .map(|n| (&n.name, &n.op))
            .collect::<Vec<_>>()
    );
    let options = graphopt_core::verify::VerifyOptions {
        outputs: vec![output.to_string()],
        seed: 3,
        unknown_dim: 1,
        ..Default::default()
    };
    let report = graphopt_core::verify::compare(&graph, &folded, &options).unwrap();
    assert!(report.worst() < 1e-5, "{report:?}");
}

#[test]
fn a_mul_after_a_bias_add_of_another_data_format_stays() {
    // An NCHW BiasAdd after an NHWC convolution adds b[h] (H = C = 4 here); the Mul scales
    // channel c. Folding made the bias b[h] * m[h] (TensorFlow 2.21, Grappler off: rows
    // 1, 20, 300, 4000 where the original has 1, 2, 3, 4 times 10^h).
    let graph = graph_from_text(
        r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "shape" value { shape { dim { size: 1 } dim { size: 4 } dim { size: 4 } dim { size: 2 } } } } }
node { name: "w" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 1 } dim { size: 1 } dim { size: 2 } dim { size: 4 } }
    float_val: 1 float_val: 2 float_val: 3 float_val: 4 float_val: 5 float_val: 6 float_val: 7 float_val: 8 } } } }
node { name: "c" op: "Conv2D" input: "x" input: "w" attr { key: "T" value { type: DT_FLOAT } }
  attr { key: "strides" value { list { i: 1 i: 1 i: 1 i: 1 } } } attr { key: "padding" value { s: "VALID" } } }
node { name: "b" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 4 } } float_val: 1 float_val: 10 float_val: 100 float_val: 1000 } } } }
node { name: "ba" op: "BiasAdd" input: "c" input: "b" attr { key: "T" value { type: DT_FLOAT } }
  attr { key: "data_format" value { s: "NCHW" } } }
node { name: "m" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 4 } } float_val: 1 float_val: 2 float_val: 3 float_val: 4 } } } }
node { name: "y" op: "Mul" input: "ba" input: "m" attr { key: "T" value { type: DT_FLOAT } } }
"#,
    );
    let mut folded = graph.clone();
    run_on(&mut folded, "fold_batch_norms", &["y"]).unwrap();
    let options = graphopt_core::verify::VerifyOptions {
        outputs: vec!["y".to_string()],
        seed: 3,
        ..Default::default()
    };
    let report = graphopt_core::verify::compare(&graph, &folded, &options).unwrap();
    assert!(report.worst() < 1e-5, "{report:?}");
    assert_eq!(count(&folded, "Mul"), 1);
}

#[test]
fn constants_named_as_inputs_are_never_folded_into_weights() {
    // `mv` fed with ones: TensorFlow 2.21 gave [6, 8, 10, 12] for the graph, [6, 16, 30, 48]
    // for what fold_batch_norms made of it (the default of `mv` folded into `w`).
    let text = r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "shape" value { shape { dim { size: 1 } dim { size: 4 } dim { size: 4 } dim { size: 2 } } } } }
node { name: "w" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 1 } dim { size: 1 } dim { size: 2 } dim { size: 4 } }
    float_val: 1 float_val: 2 float_val: 3 float_val: 4 float_val: 5 float_val: 6 float_val: 7 float_val: 8 } } } }
node { name: "c" op: "Conv2D" input: "x" input: "w" attr { key: "T" value { type: DT_FLOAT } }
  attr { key: "strides" value { list { i: 1 i: 1 i: 1 i: 1 } } } attr { key: "padding" value { s: "VALID" } } }
node { name: "b" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 4 } } float_val: 1 float_val: 2 float_val: 3 float_val: 4 } } } }
node { name: "ba" op: "BiasAdd" input: "c" input: "b" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "mv" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 4 } } float_val: 1 float_val: 2 float_val: 3 float_val: 4 } } } }
node { name: "y" op: "Mul" input: "ba" input: "mv" attr { key: "T" value { type: DT_FLOAT } } }
"#;
    let specs = transforms::parse("fold_batch_norms").unwrap();
    for fed in ["none", "mv", "w", "b"] {
        let mut graph = graph_from_text(text);
        let original = graph.clone();
        let inputs = ["x".to_string(), fed.to_string()];
        transforms::run(
            &Registry::with_builtins(),
            &mut graph,
            &specs,
            &inputs,
            &["y".to_string()],
        )
        .unwrap();
        assert_eq!(
            count(&graph, "Mul"),
            usize::from(fed != "none"),
            "fed {fed}"
        );
        let value = |g: &graphopt_core::proto::GraphDef, name: &str| {
            g.node
                .iter()
                .find(|n| n.name == name)
                .map(|n| n.attr.get("value").cloned())
        };
        if fed != "none" {
            assert_eq!(value(&graph, fed), value(&original, fed), "fed {fed}");
        }
    }
}

#[test]
fn nchw_fused_batch_norm_after_conv_folds() {
    use graphopt_core::proto::attr_value;
    use synthetic::*;
    let nchw = s("NCHW");
    let g = graph(vec![
        placeholder("x", &[1, 3, 7, 6]),
        constant("w", &[3, 3, 3, 4], 1, false),
        node(
            "conv",
            "Conv2D",
            &["x", "w"],
            &[
                ("data_format", nchw.clone()),
                ("strides", ints(&[1, 1, 2, 1])),
                ("padding", s("SAME")),
            ],
        ),
        constant("bias", &[4], 2, false),
        node(
            "bias_add",
            "BiasAdd",
            &["conv", "bias"],
            &[("data_format", nchw.clone())],
        ),
        constant("gamma", &[4], 3, true),
        constant("beta", &[4], 4, false),
        constant("mean", &[4], 5, false),
        constant("var", &[4], 6, true),
        node(
            "bn",
            "FusedBatchNormV3",
            &["bias_add", "gamma", "beta", "mean", "var"],
            &[
                ("data_format", nchw),
                ("epsilon", attr_value::Value::F(1e-3)),
                ("is_training", attr_value::Value::B(false)),
                ("U", attr_value::Value::Type(1)),
            ],
        ),
        node("relu", "Relu", &["bn"], &[]),
    ]);
    fold_and_compare(g, "relu", "FusedBatchNormV3");
}

#[test]
fn batch_norm_with_global_normalization_folds() {
    use graphopt_core::proto::attr_value;
    use synthetic::*;
    let g = graph(vec![
        placeholder("x", &[1, 5, 5, 2]),
        constant("w", &[3, 3, 2, 3], 7, false),
        node(
            "conv",
            "DepthwiseConv2dNative",
            &["x", "w"],
            &[("strides", ints(&[1, 1, 1, 1])), ("padding", s("VALID"))],
        ),
        constant("mean", &[6], 8, false),
        constant("var", &[6], 9, true),
        constant("beta", &[6], 10, false),
        constant("gamma", &[6], 11, true),
        node(
            "bn",
            "BatchNormWithGlobalNormalization",
            &["conv", "mean", "var", "beta", "gamma"],
            &[
                ("variance_epsilon", attr_value::Value::F(1e-3)),
                ("scale_after_normalization", attr_value::Value::B(true)),
            ],
        ),
    ]);
    fold_and_compare(g, "bn", "BatchNormWithGlobalNormalization");
}

#[test]
fn matmul_transpose_b_with_per_channel_mul_and_add_folds() {
    use graphopt_core::proto::attr_value;
    use synthetic::*;
    let g = graph(vec![
        placeholder("x", &[2, 6]),
        constant("w", &[4, 6], 12, false),
        node(
            "mm",
            "MatMul",
            &["x", "w"],
            &[("transpose_b", attr_value::Value::B(true))],
        ),
        constant("scale", &[4], 13, true),
        node("mul", "Mul", &["scale", "mm"], &[]),
        constant("shift", &[1, 4], 14, false),
        node("sub", "Sub", &["mul", "shift"], &[]),
    ]);
    fold_and_compare(g, "sub", "Mul");
}

const HOSTILE_OUTER_PRODUCT: &str = r#"
node { name: "column" op: "Fill" input: "column_dims" input: "one" attr { key: "T" value { type: DT_FLOAT } } attr { key: "index_type" value { type: DT_INT32 } } }
node { name: "row" op: "Fill" input: "row_dims" input: "one" attr { key: "T" value { type: DT_FLOAT } } attr { key: "index_type" value { type: DT_INT32 } } }
node { name: "column_dims" op: "Const" attr { key: "dtype" value { type: DT_INT32 } }
       attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape { dim { size: 2 } } int_val: 200000 int_val: 1 } } } }
node { name: "row_dims" op: "Const" attr { key: "dtype" value { type: DT_INT32 } }
       attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape { dim { size: 2 } } int_val: 1 int_val: 200000 } } } }
node { name: "one" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
       attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape {} float_val: 1 } } } }
node { name: "outer" op: "Mul" input: "column" input: "row" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "matrix" op: "MatMul" input: "column" input: "row" attr { key: "T" value { type: DT_FLOAT } } }
"#;

#[test]
fn broadcasting_and_matmul_blowups_are_refused_before_allocating() {
    // 200000 x 200000 floats would be 160 GB.
    let mut graph = graph_from_text(HOSTILE_OUTER_PRODUCT);
    run_on(&mut graph, "fold_constants", &["outer", "matrix"]).unwrap();
    let ops: Vec<(&str, &str)> = graph
        .node
        .iter()
        .map(|n| (n.name.as_str(), n.op.as_str()))
        .collect();
    assert!(
        ops.contains(&("outer", "Mul")) && ops.contains(&("matrix", "MatMul")),
        "{ops:?}"
    );
    for fetch in ["outer", "matrix"] {
        let error = graphopt_core::eval::evaluate(
            &graph,
            &Default::default(),
            &[fetch.into()],
            Default::default(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("over the limit"), "{error}");
    }
}

/// `Mul(x, s) -> AddV2(b) -> ACT -> Conv2D` with per-channel `s` (positive or not).
fn pre_activation(act: &str, positive_scale: bool) -> graphopt_core::proto::GraphDef {
    use synthetic::*;
    let mut scale = constant("s", &[4], 11, positive_scale);
    if !positive_scale {
        // One negative channel is enough to forbid the move.
        let value = graphopt_core::graph::edit::const_value(&scale).unwrap();
        let mut v = value.floats().unwrap();
        v[2] = -0.75;
        let t = graphopt_core::rewrite::weights::vector(&v, value.dtype()).unwrap();
        graphopt_core::graph::edit::set_const_value(&mut scale, &t);
    }
    graph(vec![
        placeholder("x", &[1, 6, 6, 4]),
        scale,
        constant("b", &[4], 12, false),
        constant("w", &[3, 3, 4, 5], 13, false),
        node("mul", "Mul", &["x", "s"], &[]),
        node("add", "AddV2", &["mul", "b"], &[]),
        node("act", act, &["add"], &[]),
        node(
            "conv",
            "Conv2D",
            &["act", "w"],
            &[("strides", ints(&[1, 1, 1, 1])), ("padding", s("SAME"))],
        ),
    ])
}

#[test]
fn positive_scales_move_through_relu_into_the_next_convolution() {
    for act in ["Relu", "LeakyRelu"] {
        let graph = pre_activation(act, true);
        let mut folded = graph.clone();
        run_on(&mut folded, "fold_scale_axis", &["conv"]).unwrap();
        assert_eq!(count(&folded, "Mul"), 0, "{act}: the scale is still a Mul");
        assert_eq!(count(&folded, "AddV2"), 1);
        let options = graphopt_core::verify::VerifyOptions {
            outputs: vec!["conv".into()],
            seed: 5,
            ..Default::default()
        };
        let report = graphopt_core::verify::compare(&graph, &folded, &options).unwrap();
        assert!(report.worst() < 1e-6, "{act}: {report:?}");
    }
}

/// `Mul(x, s) -> AddV2(b) -> Relu -> <layers> -> Conv2D`, positive `s`.
fn pre_activation_through(
    layers: Vec<graphopt_core::proto::NodeDef>,
) -> graphopt_core::proto::GraphDef {
    use synthetic::*;
    let last = layers.last().map_or("relu".to_string(), |n| n.name.clone());
    let mut nodes = vec![
        placeholder("x", &[1, 6, 6, 4]),
        constant("s", &[4], 11, true),
        constant("b", &[4], 12, false),
        constant("w", &[3, 3, 4, 5], 13, false),
        common::graphs::int32s("paddings", &[4, 2], &[0, 0, 1, 1, 2, 0, 0, 0]),
        node("mul", "Mul", &["x", "s"], &[]),
        node("add", "AddV2", &["mul", "b"], &[]),
        node("relu", "Relu", &["add"], &[]),
    ];
    nodes.extend(layers);
    nodes.push(node(
        "conv",
        "Conv2D",
        &[last.as_str(), "w"],
        &[("strides", ints(&[1, 1, 1, 1])), ("padding", s("SAME"))],
    ));
    graph(nodes)
}

#[test]
fn positive_scales_move_through_pooling_and_zero_padding() {
    use synthetic::*;
    let pad = |name: &str, input: &str| {
        let mut n = node(name, "Pad", &[input, "paddings"], &[]);
        n.attr.insert(
            "Tpaddings".into(),
            common::graphs::attr(common::graphs::dtype(
                graphopt_core::proto::DataType::DtInt32,
            )),
        );
        n
    };
    let chains = [
        ("MaxPool", vec![pool("p", "MaxPool", "relu", "VALID")]),
        ("AvgPool", vec![pool("p", "AvgPool", "relu", "VALID")]),
        ("Pad", vec![pad("p", "relu")]),
        (
            "Pad, MaxPool",
            vec![pad("p", "relu"), pool("q", "MaxPool", "p", "VALID")],
        ),
    ];
    for (what, layers) in chains {
        let graph = pre_activation_through(layers);
        let mut folded = graph.clone();
        run_on(&mut folded, "fold_scale_axis", &["conv"]).unwrap();
        assert_eq!(count(&folded, "Mul"), 0, "{what}: the scale is still a Mul");
        let options = graphopt_core::verify::VerifyOptions {
            outputs: vec!["conv".into()],
            seed: 5,
            ..Default::default()
        };
        let report = graphopt_core::verify::compare(&graph, &folded, &options).unwrap();
        assert!(report.worst() < 1e-6, "{what}: {report:?}");
    }
    // Padding the channels would put unscaled zeros among scaled channels.
    let mut channel_pad = pre_activation_through(vec![pad("p", "relu")]);
    channel_pad.node[3] = constant("w", &[3, 3, 5, 5], 13, false);
    channel_pad.node[4] = common::graphs::int32s("paddings", &[4, 2], &[0, 0, 1, 1, 1, 1, 0, 1]);
    run_on(&mut channel_pad, "fold_scale_axis", &["conv"]).unwrap();
    assert_eq!(
        count(&channel_pad, "Mul"),
        1,
        "a channel pad let the scale through"
    );
}

/// A float Const of `dims` holding `values`, as protobuf text.
fn float_const_text(name: &str, dims: &[usize], values: &[f32]) -> String {
    let dims: String = dims
        .iter()
        .map(|d| format!("dim {{ size: {d} }} "))
        .collect();
    let values: String = values
        .iter()
        .map(|v| format!("float_val: {v:?} "))
        .collect();
    format!(
        r#"node {{ name: "{name}" op: "Const" attr {{ key: "dtype" value {{ type: DT_FLOAT }} }}
            attr {{ key: "value" value {{ tensor {{ dtype: DT_FLOAT tensor_shape {{ {dims} }} {values} }} }} }} }}
        "#
    )
}

/// What graphopt's verify makes of `original` against `folded` on seeded inputs.
fn assert_same_results(
    original: &graphopt_core::proto::GraphDef,
    folded: &graphopt_core::proto::GraphDef,
    output: &str,
    what: &str,
) {
    let options = graphopt_core::verify::VerifyOptions {
        outputs: vec![output.into()],
        seed: 5,
        ..Default::default()
    };
    let report = graphopt_core::verify::compare(original, folded, &options)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(report.worst() < 1e-5, "{what}: {report:?}");
}

#[test]
fn adds_that_are_not_per_channel_biases_are_not_folded_as_biases() {
    let header = r#"node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } }
        attr { key: "shape" value { shape { dim { size: 1 } dim { size: 2 } dim { size: 2 } dim { size: 2 } } } } }
    "#;
    let float = r#"attr { key: "T" value { type: DT_FLOAT } }"#;
    // Conv2D + an Add varying along the height ([2, 1, 1] against NHWC) + a batch norm.
    let between = [
        header.to_string(),
        float_const_text("w", &[1, 1, 2, 2], &[0.5, -1.0, 2.0, 0.25]),
        format!(
            r#"node {{ name: "conv" op: "Conv2D" input: "x" input: "w" {float}
                attr {{ key: "strides" value {{ list {{ i: 1 i: 1 i: 1 i: 1 }} }} }}
                attr {{ key: "padding" value {{ s: "SAME" }} }} }}
            "#
        ),
        float_const_text("c", &[2, 1, 1], &[3.0, -7.0]),
        format!(r#"node {{ name: "add" op: "AddV2" input: "conv" input: "c" {float} }}"#),
        float_const_text("gamma", &[2], &[1.5, 0.5]),
        float_const_text("beta", &[2], &[0.1, -0.2]),
        float_const_text("mean", &[2], &[0.3, 0.4]),
        float_const_text("var", &[2], &[2.0, 0.5]),
        format!(
            r#"node {{ name: "bn" op: "FusedBatchNormV3" input: "add" input: "gamma" input: "beta"
                input: "mean" input: "var" {float} attr {{ key: "U" value {{ type: DT_FLOAT }} }}
                attr {{ key: "epsilon" value {{ f: 0.001 }} }}
                attr {{ key: "is_training" value {{ b: false }} }} }}
            "#
        ),
    ]
    .concat();
    let original = graph_from_text(&between);
    let mut folded = original.clone();
    run_on(&mut folded, "fold_old_batch_norms", &["bn"]).unwrap();
    assert_same_results(
        &original,
        &folded,
        "bn",
        "an Add along the height before a norm",
    );

    // BiasAdd + an Add of higher rank: the sum is rank 5.
    let higher = [
        header.to_string(),
        float_const_text("b", &[2], &[0.5, -0.5]),
        format!(r#"node {{ name: "biased" op: "BiasAdd" input: "x" input: "b" {float} }}"#),
        float_const_text("c", &[1, 1, 1, 1, 2], &[1.0, 2.0]),
        format!(r#"node {{ name: "add" op: "AddV2" input: "biased" input: "c" {float} }}"#),
    ]
    .concat();
    let original = graph_from_text(&higher);
    let mut folded = original.clone();
    run_on(&mut folded, "fold_batch_norms", &["add"]).unwrap();
    assert_same_results(
        &original,
        &folded,
        "add",
        "an Add of higher rank after a BiasAdd",
    );
}

#[test]
fn a_multiply_that_widens_its_input_stays() {
    use synthetic::*;
    // A one-channel image times four per-channel factors (a grayscale image normalized with
    // RGB statistics) is four channels only after the multiply.
    let mut one_channel = pre_activation("Relu", true);
    one_channel.node[0] = placeholder("x", &[1, 6, 6, 1]);
    // A scale of higher rank than the input makes the product rank 5.
    let mut higher_rank = pre_activation("Relu", true);
    higher_rank.node[0] = placeholder("x", &[6, 6, 4]);
    higher_rank.node[1] = constant("s", &[1, 1, 1, 4], 11, true);
    // A shift that widens, after a scale that does not.
    let mut wide_shift = pre_activation("Relu", true);
    wide_shift.node[0] = placeholder("x", &[1, 6, 6, 1]);
    wide_shift.node[1] = constant("s", &[1], 11, true);
    for (what, mut graph) in [
        ("one channel", one_channel),
        ("higher rank", higher_rank),
        ("widening shift", wide_shift),
    ] {
        run_on(&mut graph, "fold_scale_axis", &["conv"]).unwrap();
        assert_eq!(count(&graph, "Mul"), 1, "{what}: the multiply moved");
    }
}

#[test]
fn negative_scales_and_relu6_stop_the_move() {
    for (act, positive) in [("Relu", false), ("Relu6", true)] {
        let mut graph = pre_activation(act, positive);
        run_on(&mut graph, "fold_scale_axis", &["conv"]).unwrap();
        assert_eq!(
            count(&graph, "Mul"),
            1,
            "{act} (positive scale: {positive}) moved"
        );
    }
}

/// Every fixture with its inputs fixed to the shapes of TensorFlow's recorded inputs, alone
/// and inside the recommended pipeline, computes what TensorFlow does; its inputs are left
/// with exactly those dims.
#[test]
fn fixed_input_shapes_keep_every_fixtures_outputs() {
    for name in common::MODELS {
        let (inputs, _) = common::io_names(name);
        let shapes: Vec<(String, Vec<i64>)> = inputs
            .iter()
            .enumerate()
            .map(|(k, input)| {
                let recorded = common::tensor(name, &format!("input_{k}.pb"));
                let dims = recorded.shape().iter().map(|&d| d as i64).collect();
                (graphopt_core::graph::node_name(input).to_string(), dims)
            })
            .collect();
        let fix = shapes
            .iter()
            .map(|(input, dims)| {
                let dims: Vec<String> = dims.iter().map(i64::to_string).collect();
                format!(r#"name={input}, shape="{}""#, dims.join(","))
            })
            .collect::<Vec<_>>()
            .join(", ");
        for pipeline in [
            format!("fix_input_shapes({fix})"),
            format!("@deploy fix_input_shapes({fix}) @deploy"),
        ] {
            let graph = apply(name, &pipeline);
            assert_matches_tensorflow(name, &graph, 1e-5);
            for (input, dims) in &shapes {
                let node = graph.node.iter().find(|n| &n.name == input).unwrap();
                let shape = graphopt_core::graph::attrs::shape(node, "shape").unwrap();
                let fixed: Vec<i64> = shape.dim.iter().map(|d| d.size).collect();
                assert_eq!(&fixed, dims, "{name}: {pipeline}: {input}");
            }
        }
    }
}

#[test]
fn fixed_input_shapes_fold_the_shape_arithmetic() {
    // The EfficientNet-style fixture has a batch of -1: its Tensordot shape arithmetic
    // (Shape, GatherV2, Prod, Pack) stays until the batch is fixed.
    let before = apply("efficientnet_block", "@deploy");
    assert!(count(&before, "Shape") > 0);
    let graph = apply(
        "efficientnet_block",
        "@deploy fix_input_shapes(shape=\"1,32,32,3\") @deploy",
    );
    for op in ["Shape", "GatherV2", "Prod", "Pack", "ConcatV2"] {
        assert_eq!(
            count(&graph, op),
            0,
            "{op} left after fixing the input shape"
        );
    }
    assert!(graph.node.len() < before.node.len());
    assert_matches_tensorflow("efficientnet_block", &graph, 1e-5);
    let input = graph.node.iter().find(|n| n.name == "input").unwrap();
    let shape = graphopt_core::graph::attrs::shape(input, "shape").unwrap();
    let dims: Vec<i64> = shape.dim.iter().map(|d| d.size).collect();
    assert_eq!(dims, [1, 32, 32, 3]);
}

#[test]
fn fixing_input_shapes_refuses_what_contradicts_the_graph() {
    let cases = [
        (
            "fix_input_shapes(shape=\"1,32,32\")",
            "has rank 4, but 3 dimensions were given",
        ),
        (
            "fix_input_shapes(shape=\"1,31,32,3\")",
            "dimension 1 is 32; it cannot become 31",
        ),
        (
            "fix_input_shapes(name=Identity, shape=\"1,10\")",
            "'Identity' is a Identity, not a Placeholder",
        ),
        (
            "fix_input_shapes(name=input)",
            "give name and shape once per input",
        ),
    ];
    for (transform, message) in cases {
        let mut graph = common::load("efficientnet_block");
        let specs = transforms::parse(transform).unwrap();
        let error = transforms::run(
            &Registry::with_builtins(),
            &mut graph,
            &specs,
            &["input".to_string()],
            &["Identity".to_string()],
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains(message), "{transform}: {error}");
    }
}

/// A PlaceholderWithDefault's shape must fit its default: TensorFlow 2.21 refused to import
/// the graph fix_input_shapes made of `[?, 3]` defaulting to a `[2, 3]` Const when given
/// `5,3` ("Dimension 0 in both shapes must be equal, but are 2 and 5").
#[test]
fn fixing_input_shapes_keeps_a_default_that_fits() {
    let text = r#"
node { name: "d" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
       attr { key: "value" value { tensor { dtype: DT_FLOAT
              tensor_shape { dim { size: 2 } dim { size: 3 } } float_val: 1 } } } }
node { name: "x" op: "PlaceholderWithDefault" input: "d"
       attr { key: "dtype" value { type: DT_FLOAT } }
       attr { key: "shape" value { shape { dim { size: -1 } dim { size: 3 } } } } }
node { name: "y" op: "Identity" input: "x" attr { key: "T" value { type: DT_FLOAT } } }
"#;
    let mut graph = graph_from_text(text);
    let error = run_on(
        &mut graph,
        r#"fix_input_shapes(name=x, shape="5,3")"#,
        &["y"],
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("'x' defaults to a tensor of shape [2, 3]"),
        "{error}"
    );
    for fits in ["2,3", "-1,3"] {
        let mut graph = graph_from_text(text);
        let spec = format!(r#"fix_input_shapes(name=x, shape="{fits}")"#);
        run_on(&mut graph, &spec, &["y"]).unwrap();
    }
}

#[test]
fn add_shapes_writes_the_shapes_the_evaluator_computes() {
    let graph = apply("keras_cnn", "@deploy add_shapes");
    assert_output_shapes_hold("keras_cnn", &graph, true);
}

/// convert_to_nchw after add_shapes left the converted nodes' `_output_shapes` in NHWC, and
/// TensorFlow 2.21 refused to import the graph ("Node 'Conv2D' has an _output_shapes attribute
/// inconsistent with the GraphDef"): they are rewritten with the shapes inferred afterwards.
#[test]
fn nchw_conversion_rewrites_the_output_shapes_it_changes() {
    let graph = apply("keras_cnn", "@deploy add_shapes convert_to_nchw");
    let converted = graph
        .node
        .iter()
        .filter(|n| {
            graphopt_core::graph::attrs::string(n, "data_format").is_some_and(|f| f == "NCHW")
                && n.attr.contains_key("_output_shapes")
        })
        .count();
    assert!(converted > 0);
    assert_output_shapes_hold("keras_cnn", &graph, false);
}

/// legalize turns a dilated convolution into SpaceToBatchND -> Conv2D -> BatchToSpaceND
/// (tract) or OpenCV's atrous form: the Conv2D kept the `_output_shapes` of the dilated one,
/// and TensorFlow 2.21 refused to import the graph ("Node 'Conv2D/conv' has an _output_shapes
/// attribute inconsistent with the GraphDef").
#[test]
fn legalize_rewrites_the_output_shapes_it_changes() {
    use synthetic::*;
    let dilated = node(
        "conv",
        "Conv2D",
        &["x", "w"],
        &[
            ("strides", ints(&[1, 1, 1, 1])),
            ("dilations", ints(&[1, 2, 3, 1])),
            ("padding", s("SAME")),
        ],
    );
    let g = graph(vec![
        placeholder("x", &[1, 7, 6, 2]),
        constant("w", &[3, 3, 2, 3], 1, false),
        dilated,
        node("out", "Relu", &["conv"], &[]),
    ]);
    let x = constant("x", &[1, 7, 6, 2], 2, false);
    let x = graphopt_core::graph::edit::const_value(&x).unwrap();
    let feeds = std::collections::BTreeMap::from([("x".to_string(), x)]);
    for target in ["opencv", "tract"] {
        let mut legal = g.clone();
        let pipeline = format!("add_shapes legalize(target={target})");
        run_on(&mut legal, &pipeline, &["out"]).unwrap();
        assert!(count(&legal, "SpaceToBatchND") > 0, "{target}");
        let mut checked = 0;
        for node in &legal.node {
            let Some(graphopt_core::proto::attr_value::Value::List(list)) = node
                .attr
                .get("_output_shapes")
                .and_then(|a| a.value.as_ref())
            else {
                continue;
            };
            let Some(first) = list.shape.first().filter(|s| !s.unknown_rank) else {
                continue;
            };
            let names = std::slice::from_ref(&node.name);
            let value =
                graphopt_core::eval::evaluate(&legal, &feeds, names, Default::default()).unwrap();
            let dims: Vec<i64> = first.dim.iter().map(|d| d.size).collect();
            let actual: Vec<i64> = value[0].shape().iter().map(|&d| d as i64).collect();
            assert_eq!(dims, actual, "{target}: {}", node.name);
            checked += 1;
        }
        assert!(checked > 0, "{target}");
    }
}

/// Every known `_output_shapes` of `graph` (made from `fixture`) is what the evaluator
/// computes on the fixture's inputs; with `everywhere`, every node has one.
fn assert_output_shapes_hold(
    fixture: &str,
    graph: &graphopt_core::proto::GraphDef,
    everywhere: bool,
) {
    let (inputs, _) = common::io_names(fixture);
    let feeds = inputs
        .iter()
        .enumerate()
        .map(|(k, name)| {
            (
                name.clone(),
                common::tensor(fixture, &format!("input_{k}.pb")),
            )
        })
        .collect();
    let mut checked = 0;
    for node in &graph.node {
        let Some(graphopt_core::proto::attr_value::Value::List(list)) = node
            .attr
            .get("_output_shapes")
            .and_then(|a| a.value.as_ref())
        else {
            assert!(!everywhere, "{} has no _output_shapes", node.name);
            continue;
        };
        let Some(first) = list.shape.first() else {
            continue; // no outputs
        };
        if first.unknown_rank {
            continue;
        }
        let value = graphopt_core::eval::evaluate(
            graph,
            &feeds,
            std::slice::from_ref(&node.name),
            Default::default(),
        )
        .unwrap();
        let dims: Vec<i64> = first.dim.iter().map(|d| d.size).collect();
        let actual: Vec<i64> = value[0].shape().iter().map(|&d| d as i64).collect();
        assert_eq!(dims, actual, "{}", node.name);
        checked += 1;
    }
    if everywhere {
        assert_eq!(checked, graph.node.len(), "every node's shape is known");
    }
    assert!(checked > 0);
}

#[test]
fn nchw_conversion_keeps_outputs_and_one_transpose() {
    // tf1_conv_bn flattens its convolution into a dense layer: the weights' rows take NCHW
    // order instead of a Transpose before the Reshape.
    for name in ["keras_cnn", "densenet_block", "tf1_conv_bn"] {
        let graph = apply(name, "@deploy convert_to_nchw");
        assert_matches_tensorflow(name, &graph, 1e-5);
        // The input's Transpose is all that is left; global pooling leaves 4-D in both layouts.
        assert_eq!(count(&graph, "Transpose"), 1, "{name}");
        for node in graph.node.iter().filter(|n| {
            matches!(
                n.op.as_str(),
                "Conv2D" | "DepthwiseConv2dNative" | "AvgPool" | "MaxPool"
            )
        }) {
            let format = graphopt_core::graph::attrs::string(node, "data_format");
            assert_eq!(format.as_deref(), Some("NCHW"), "{name} {}", node.name);
        }
    }
}

/// Every fixture, its batch fixed or not, computes what TensorFlow does after the conversion
/// (inputs and outputs keep their layout).
#[test]
fn nchw_conversion_keeps_every_fixtures_outputs() {
    for name in common::MODELS {
        for pipeline in ["convert_to_nchw", "@deploy convert_to_nchw @deploy"] {
            let graph = apply(name, pipeline);
            assert_matches_tensorflow(name, &graph, 1e-5);
        }
    }
}

/// A squeeze-excite block's pooling keeps its dims and its dense layers reshape `[N, 1, 1, C]`
/// (with the batch unknown, from Shape arithmetic): the Transposes cancel through both, so the
/// EfficientNet-style block keeps only its input's, batch fixed or not.
#[test]
fn nchw_conversion_passes_squeeze_excite_reshapes() {
    for pipeline in [
        r#"fix_input_shapes(shape="1,32,32,3") @deploy convert_to_nchw @deploy"#,
        "@deploy convert_to_nchw @deploy",
    ] {
        let graph = apply("efficientnet_block", pipeline);
        assert_matches_tensorflow("efficientnet_block", &graph, 1e-5);
        assert_eq!(count(&graph, "Transpose"), 1, "{pipeline}");
    }
    // The conversion alone leaves nothing unread: the shape arithmetic a Reshape no longer
    // reads goes with it.
    let graph = apply("efficientnet_block", "@deploy convert_to_nchw");
    let read: std::collections::HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter())
        .map(|i| i.trim_start_matches('^').split(':').next().unwrap())
        .collect();
    let (_, outputs) = common::io_names("efficientnet_block");
    let unread: Vec<&str> = graph
        .node
        .iter()
        .map(|n| n.name.as_str())
        .filter(|n| !read.contains(n) && !outputs.iter().any(|o| o == n))
        .collect();
    assert!(unread.is_empty(), "{unread:?}");
}

/// A convolution flattened into dense layers: when only a MatMul reads the flattening, its
/// weights' rows (columns, with `transpose_b`) take NCHW order and no Transpose is left before
/// it, the batch unknown, the weights shared with another MatMul or not; a flattening read by
/// anything else keeps its Transpose.
#[test]
fn nchw_conversion_flattens_into_dense_weights() {
    use graphopt_core::proto::attr_value::Value;
    use synthetic::*;
    let flatten_shape = |name: &str, dims: &[i32]| {
        let values = dims.to_vec();
        exact(
            name,
            Data::I32(ArrayD::from_shape_vec(IxDyn(&[2]), values).unwrap()),
        )
    };
    let build = |shape: &[i32], extra_reader: bool| {
        let mut nodes = vec![
            placeholder("x", &[-1, 5, 4, 3]),
            constant("w", &[3, 3, 3, 6], 1, false),
            conv("conv", "x", "w", "SAME"),
            node("relu", "Relu", &["conv"], &[]),
            flatten_shape("shape", shape),
            node("flat", "Reshape", &["relu", "shape"], &[]),
            constant("dense_w", &[7, 120], 2, false),
            node(
                "out",
                "MatMul",
                &["flat", "dense_w"],
                &[("transpose_b", Value::B(true))],
            ),
            // The same weights read by a second layer, on other inputs.
            placeholder("y", &[-1, 120]),
            node(
                "other",
                "MatMul",
                &["y", "dense_w"],
                &[("transpose_b", Value::B(true))],
            ),
        ];
        if extra_reader {
            nodes.push(node("flat_out", "Relu", &["flat"], &[]));
        }
        graph(nodes)
    };
    for (shape, extra_reader, transposes) in [
        (&[-1, 120][..], false, 1),
        (&[1, -1][..], false, 1),
        (&[-1, 120][..], true, 2),
    ] {
        let g = build(shape, extra_reader);
        let mut outputs = vec!["out", "other"];
        if extra_reader {
            outputs.push("flat_out");
        }
        let mut converted = g.clone();
        run_on(&mut converted, "convert_to_nchw", &outputs).unwrap();
        assert_eq!(
            count(&converted, "Transpose"),
            transposes,
            "{shape:?} {extra_reader}"
        );
        let options = graphopt_core::verify::VerifyOptions {
            outputs: outputs.iter().map(|o| o.to_string()).collect(),
            seed: 9,
            unknown_dim: 1,
            ..Default::default()
        };
        let report = graphopt_core::verify::compare(&g, &converted, &options).unwrap();
        assert!(
            report.worst() < 1e-6,
            "{shape:?} {extra_reader}: {report:?}"
        );
        // The shared weights stay as they were for the other layer.
        let other = converted.node.iter().find(|n| n.name == "other").unwrap();
        assert_eq!(other.input[1], "dense_w");
    }
}

/// Two flattenings into dense layers that share weights share one reordered Const, which keeps
/// the weights' control input; weights named as a graph input are left alone, Transpose and
/// all.
#[test]
fn nchw_flattening_shares_reordered_weights_and_keeps_inputs() {
    use synthetic::*;
    let branch = |p: &str| {
        vec![
            placeholder(&format!("{p}x"), &[1, 3, 4, 2]),
            conv(&format!("{p}conv"), &format!("{p}x"), "w", "SAME"),
            node(
                &format!("{p}flat"),
                "Reshape",
                &[&format!("{p}conv"), "shape"],
                &[],
            ),
            node(
                &format!("{p}out"),
                "MatMul",
                &[&format!("{p}flat"), "dense_w"],
                &[],
            ),
        ]
    };
    let mut nodes = vec![
        constant("w", &[3, 3, 2, 5], 1, false),
        exact(
            "shape",
            Data::I32(ArrayD::from_shape_vec(IxDyn(&[2]), vec![-1, 60]).unwrap()),
        ),
        node("gate", "NoOp", &[], &[]),
    ];
    let mut dense = constant("dense_w", &[60, 7], 2, false);
    dense.input.push("^gate".into());
    nodes.push(dense);
    nodes.extend(branch("a/"));
    nodes.extend(branch("b/"));
    let g = graph(nodes);
    let outputs = ["a/out", "b/out"];
    let mut converted = g.clone();
    run_on(&mut converted, "convert_to_nchw", &outputs).unwrap();
    assert_eq!(
        count(&converted, "Transpose"),
        2,
        "one into each convolution"
    );
    let reordered: Vec<_> = converted
        .node
        .iter()
        .filter(|n| n.name.starts_with("dense_w"))
        .collect();
    assert_eq!(reordered.len(), 1, "{reordered:?}");
    assert_eq!(reordered[0].input, ["^gate"]);
    let options = graphopt_core::verify::VerifyOptions {
        outputs: outputs.iter().map(|o| o.to_string()).collect(),
        seed: 4,
        ..Default::default()
    };
    let report = graphopt_core::verify::compare(&g, &converted, &options).unwrap();
    assert!(report.worst() < 1e-6, "{report:?}");
    // Weights fed as an input keep the MatMuls reading them, through Transposes back to NHWC.
    let mut converted = g.clone();
    let registry = graphopt_core::transforms::Registry::with_builtins();
    let specs = graphopt_core::transforms::parse("convert_to_nchw").unwrap();
    let inputs = ["a/x".to_string(), "b/x".to_string(), "dense_w".to_string()];
    let outputs: Vec<String> = outputs.iter().map(|o| o.to_string()).collect();
    graphopt_core::transforms::run(&registry, &mut converted, &specs, &inputs, &outputs).unwrap();
    assert_eq!(count(&converted, "Transpose"), 4);
    for out in ["a/out", "b/out"] {
        let node = converted.node.iter().find(|n| n.name == out).unwrap();
        assert_eq!(node.input[1], "dense_w");
    }
}

/// MirrorPad and PadV2 between convolutions pad NCHW's spatial axes instead; no Transpose
/// stays between them.
#[test]
fn nchw_conversion_sinks_through_mirror_pad_and_pad_v2() {
    use synthetic::*;
    let paddings = |name: &str| {
        let values = vec![0, 0, 2, 1, 1, 2, 0, 0];
        exact(
            name,
            Data::I32(ArrayD::from_shape_vec(IxDyn(&[4, 2]), values).unwrap()),
        )
    };
    let conv = |name: &str, input: &str, w: &str| conv(name, input, w, "VALID");
    let g = graph(vec![
        placeholder("x", &[1, 6, 7, 3]),
        constant("w1", &[2, 2, 3, 4], 1, false),
        conv("conv1", "x", "w1"),
        paddings("p1"),
        node(
            "mirror",
            "MirrorPad",
            &["conv1", "p1"],
            &[("mode", s("SYMMETRIC"))],
        ),
        constant("w2", &[3, 3, 4, 4], 2, false),
        conv("conv2", "mirror", "w2"),
        paddings("p2"),
        constant("fill", &[], 3, false),
        node("pad", "PadV2", &["conv2", "p2", "fill"], &[]),
        constant("w3", &[3, 3, 4, 2], 4, false),
        conv("conv3", "pad", "w3"),
        node("out", "Relu", &["conv3"], &[]),
    ]);
    let mut converted = g.clone();
    run_on(&mut converted, "convert_to_nchw", &["out"]).unwrap();
    assert_eq!(count(&converted, "Transpose"), 2, "one in, one out");
    // TensorFlow's paddings are [4, 2], in the type the node declares.
    for name in ["mirror", "pad"] {
        let node = converted.node.iter().find(|n| n.name == name).unwrap();
        let paddings = converted
            .node
            .iter()
            .find(|n| n.name == node.input[1])
            .unwrap();
        let value = graphopt_core::graph::edit::const_value(paddings).unwrap();
        assert_eq!(value.shape(), [4, 2], "{name}");
    }
    for name in ["mirror", "pad"] {
        let node = converted.node.iter().find(|n| n.name == name).unwrap();
        let from = converted
            .node
            .iter()
            .find(|n| n.name == node.input[0])
            .unwrap();
        assert_eq!(from.op, "Conv2D", "{name} reads the NCHW convolution");
    }
    let options = graphopt_core::verify::VerifyOptions {
        outputs: vec!["out".to_string()],
        seed: 5,
        ..Default::default()
    };
    let report = graphopt_core::verify::compare(&g, &converted, &options).unwrap();
    assert!(report.worst() < 1e-5, "{report:?}");
}

/// Keras 3 exports MaxPool without its `T` (float, the OpDef's default): the pool converts
/// like any other, so a ResNet-50 keeps one Transpose instead of three and an Inception-v3
/// one instead of thirteen.
#[test]
fn nchw_conversion_converts_a_max_pool_without_its_type() {
    use synthetic::*;
    let conv = |name: &str, input: &str, w: &str| conv(name, input, w, "SAME");
    let mut pool = node(
        "pool",
        "MaxPool",
        &["relu1"],
        &[
            ("ksize", ints(&[1, 3, 3, 1])),
            ("strides", ints(&[1, 2, 2, 1])),
            ("padding", s("VALID")),
        ],
    );
    pool.attr.remove("T");
    let g = graph(vec![
        placeholder("x", &[1, 9, 9, 3]),
        constant("w1", &[3, 3, 3, 4], 1, false),
        conv("conv1", "x", "w1"),
        node("relu1", "Relu", &["conv1"], &[]),
        pool,
        constant("w2", &[1, 1, 4, 2], 2, false),
        conv("conv2", "pool", "w2"),
        node("out", "Relu", &["conv2"], &[]),
    ]);
    let mut converted = g.clone();
    run_on(&mut converted, "convert_to_nchw", &["out"]).unwrap();
    assert_eq!(count(&converted, "Transpose"), 2, "one in, one out");
    let pool = converted.node.iter().find(|n| n.name == "pool").unwrap();
    assert_eq!(
        graphopt_core::graph::attrs::string(pool, "data_format").as_deref(),
        Some("NCHW")
    );
    let options = graphopt_core::verify::VerifyOptions {
        outputs: vec!["out".to_string()],
        seed: 3,
        ..Default::default()
    };
    let report = graphopt_core::verify::compare(&g, &converted, &options).unwrap();
    assert!(report.worst() < 1e-5, "{report:?}");
}

/// The Consts the conversion builds are int32: a reduction or padding that declares int64
/// indices keeps its layout (and its Transposes) rather than get a Const of the wrong type.
#[test]
fn nchw_conversion_leaves_int64_indices_alone() {
    use graphopt_core::proto::attr_value::Value;
    use synthetic::*;
    let int64 = || Value::Type(graphopt_core::proto::DataType::DtInt64 as i32);
    let i64_const = |name: &str, values: &[i64], dims: &[usize]| {
        let values = values.to_vec();
        exact(
            name,
            Data::I64(ArrayD::from_shape_vec(IxDyn(dims), values).unwrap()),
        )
    };
    let conv = |name: &str, input: &str, w: &str| conv(name, input, w, "SAME");
    let g = graph(vec![
        placeholder("x", &[1, 6, 7, 3]),
        constant("w1", &[1, 1, 3, 4], 1, false),
        conv("conv1", "x", "w1"),
        i64_const("p", &[0, 0, 1, 1, 1, 1, 0, 0], &[4, 2]),
        node(
            "pad",
            "MirrorPad",
            &["conv1", "p"],
            &[("mode", s("REFLECT")), ("Tpaddings", int64())],
        ),
        i64_const("axes", &[1, 2], &[2]),
        node(
            "mean",
            "Mean",
            &["pad", "axes"],
            &[("keep_dims", Value::B(true)), ("Tidx", int64())],
        ),
        constant("w2", &[1, 1, 4, 2], 2, false),
        conv("out", "mean", "w2"),
    ]);
    let mut converted = g.clone();
    run_on(&mut converted, "convert_to_nchw", &["out"]).unwrap();
    for (name, index_input) in [("pad", 1), ("mean", 1)] {
        let node = converted.node.iter().find(|n| n.name == name).unwrap();
        let index = converted
            .node
            .iter()
            .find(|n| n.name == node.input[index_input])
            .unwrap();
        let value = graphopt_core::graph::edit::const_value(index).unwrap();
        assert_eq!(
            value.dtype(),
            graphopt_core::proto::DataType::DtInt64,
            "{name} reads int64 indices"
        );
    }
    let options = graphopt_core::verify::VerifyOptions {
        outputs: vec!["out".to_string()],
        seed: 7,
        ..Default::default()
    };
    let report = graphopt_core::verify::compare(&g, &converted, &options).unwrap();
    assert!(report.worst() < 1e-5, "{report:?}");
}

/// The fixtures whose input is a 4-D image, NHWC.
const IMAGE_FIXTURES: [&str; 7] = [
    "atrous_conv",
    "bn_patterns",
    "densenet_block",
    "efficientnet_block",
    "keras_cnn",
    "resize_pad_conv",
    "tf1_conv_bn",
];

/// With `keep_io_layout=false` every image fixture takes its input NCHW (no Transpose left
/// where it enters), and TensorFlow's NHWC input, transposed as declared, gives TensorFlow's
/// outputs (all 2-D, so they keep their layout).
#[test]
fn nchw_inputs_when_asked() {
    use graphopt_core::tensor::{Data, Tensor};
    let mut images: Vec<&str> = common::MODELS
        .iter()
        .copied()
        .filter(|name| common::tensor(name, "input_0.pb").shape().len() == 4)
        .collect();
    images.sort_unstable();
    assert_eq!(images, IMAGE_FIXTURES, "the fixtures with a 4-D input");
    for name in IMAGE_FIXTURES {
        for pipeline in [
            "convert_to_nchw(keep_io_layout=false)",
            "@deploy convert_to_nchw(keep_io_layout=false) @deploy",
        ] {
            let graph = apply(name, pipeline);
            let nhwc = common::tensor(name, "input_0.pb");
            let Data::F32(x) = nhwc.data() else {
                panic!("{name}: a float input")
            };
            let [n, h, w, c] = *nhwc.shape() else {
                panic!("{name}: a 4-D input")
            };
            let input_dims = |g: &graphopt_core::proto::GraphDef| -> Vec<i64> {
                let input = g.node.iter().find(|n| n.name == "input").unwrap();
                let shape = graphopt_core::graph::attrs::shape(input, "shape").unwrap();
                shape.dim.iter().map(|d| d.size).collect()
            };
            let dims = input_dims(&graph);
            let fixed = |d: usize, declared: i64| if declared < 0 { -1 } else { d as i64 };
            let declared = input_dims(&common::load(name));
            assert_eq!(
                dims,
                [
                    fixed(n, declared[0]),
                    fixed(c, declared[3]),
                    fixed(h, declared[1]),
                    fixed(w, declared[2])
                ],
                "{name}: {pipeline}: the input is NCHW"
            );
            // Nothing transposes the NCHW input into NCHW again; readers that stayed NHWC (the
            // TF1 atrous convolution's SpaceToBatchND, ResizeBilinear) read it transposed back.
            let perm_of = |transpose: &graphopt_core::proto::NodeDef| -> Vec<i64> {
                let perm = graph.node.iter().find(|n| n.name == transpose.input[1]);
                let perm = perm
                    .and_then(graphopt_core::graph::edit::const_value)
                    .unwrap();
                let Data::I32(perm) = perm.data() else {
                    panic!("an int32 permutation")
                };
                perm.iter().map(|&p| i64::from(p)).collect()
            };
            for reader in graph
                .node
                .iter()
                .filter(|r| r.input.iter().any(|i| i == "input"))
            {
                if reader.op == "Transpose" {
                    assert_eq!(
                        perm_of(reader),
                        [0, 2, 3, 1],
                        "{name}: {pipeline}: the input is still transposed into NCHW"
                    );
                }
            }
            let x_nchw = x.view().permuted_axes(vec![0, 3, 1, 2]);
            let x_nchw = Tensor::from_data(Data::F32(x_nchw.as_standard_layout().into_owned()));
            let feeds = [("input".to_string(), x_nchw)].into_iter().collect();
            let (_, outputs) = common::io_names(name);
            let ours = graphopt_core::eval::evaluate(&graph, &feeds, &outputs, Default::default())
                .unwrap_or_else(|e| panic!("{name}: {pipeline}: {e}"));
            common::assert_outputs_match(&format!("{name}: {pipeline}"), name, &ours, 1e-5, 1e-6);
        }
    }
}

/// A 4-D input the conversion never reaches (a mask applied after the convolution) keeps its
/// layout with `keep_io_layout=false`; the image input takes NCHW.
#[test]
fn nchw_inputs_leave_an_unconverted_mask_alone() {
    use synthetic::*;
    let mut g = graph(vec![
        placeholder("image", &[1, 4, 4, 2]),
        placeholder("mask", &[1, 4, 4, 3]),
        constant("w", &[1, 1, 2, 3], 1, false),
        conv("conv", "image", "w", "SAME"),
        node("out", "Mul", &["conv", "mask"], &[]),
    ]);
    let original = g.clone();
    run_on(&mut g, "convert_to_nchw(keep_io_layout=false)", &["out"]).unwrap();
    let dims = |name: &str| -> Vec<i64> {
        let node = g.node.iter().find(|n| n.name == name).unwrap();
        let shape = graphopt_core::graph::attrs::shape(node, "shape").unwrap();
        shape.dim.iter().map(|d| d.size).collect()
    };
    assert_eq!(dims("image"), [1, 2, 4, 4]);
    assert_eq!(dims("mask"), [1, 4, 4, 3]);
    let ramp = |dims: &[usize]| {
        let n = dims.iter().product::<usize>();
        let v: Vec<f32> = (0..n).map(|i| i as f32 / n as f32 - 0.5).collect();
        ArrayD::from_shape_vec(IxDyn(dims), v).unwrap()
    };
    let (image, mask) = (ramp(&[1, 4, 4, 2]), ramp(&[1, 4, 4, 3]));
    let run = |graph: &graphopt_core::proto::GraphDef, image: ArrayD<f32>| {
        let feeds = [
            ("image".to_string(), Tensor::from_data(Data::F32(image))),
            (
                "mask".to_string(),
                Tensor::from_data(Data::F32(mask.clone())),
            ),
        ]
        .into_iter()
        .collect();
        graphopt_core::eval::evaluate(graph, &feeds, &["out".into()], Default::default())
            .unwrap()
            .remove(0)
    };
    let nchw = image.view().permuted_axes(vec![0, 3, 1, 2]);
    let ours = run(&g, nchw.as_standard_layout().into_owned());
    let theirs = run(&original, image);
    assert_eq!(common::first_not_close(&ours, &theirs, 1e-6, 1e-7), None);
}

/// Per-channel scales of both signs: only linear steps may take them.
const MIXED: [f32; 4] = [1.5, -0.5, 2.0, -1.25];
const POSITIVE: [f32; 4] = [1.5, 0.5, 2.0, 1.25];

/// A float Const of `dims` holding `values`.
fn values_const(name: &str, dims: &[usize], values: &[f32]) -> graphopt_core::proto::NodeDef {
    let t = graphopt_core::tensor::Tensor::from_data(graphopt_core::tensor::Data::F32(
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(dims), values.to_vec()).unwrap(),
    ));
    graphopt_core::graph::edit::const_node(name.into(), String::new(), &t)
}

/// `fold_scale_axis` with `outputs`: the folded graph, its outputs checked against graphopt's
/// evaluation of the unfolded one (unknown dims as 2).
fn fold_scale_axis_checked(
    graph: &graphopt_core::proto::GraphDef,
    outputs: &[&str],
    what: &str,
) -> graphopt_core::proto::GraphDef {
    let mut folded = graph.clone();
    run_on(&mut folded, "fold_scale_axis", outputs).unwrap();
    let options = graphopt_core::verify::VerifyOptions {
        outputs: outputs.iter().map(|s| s.to_string()).collect(),
        seed: 7,
        unknown_dim: 2,
        ..Default::default()
    };
    let report = graphopt_core::verify::compare(graph, &folded, &options).unwrap();
    assert!(report.worst() < 1e-6, "{what}: {report:?}");
    folded
}

fn conv2d(name: &str, input: &str, weights: &str, padding: &str) -> graphopt_core::proto::NodeDef {
    synthetic::node(
        name,
        "Conv2D",
        &[input, weights],
        &[
            ("strides", synthetic::ints(&[1, 1, 1, 1])),
            ("padding", synthetic::s(padding)),
        ],
    )
}

fn mean(name: &str, input: &str, axes: &str, keep_dims: bool) -> graphopt_core::proto::NodeDef {
    use graphopt_core::proto::attr_value::Value;
    synthetic::node(
        name,
        "Mean",
        &[input, axes],
        &[
            ("keep_dims", Value::B(keep_dims)),
            (
                "Tidx",
                common::graphs::dtype(graphopt_core::proto::DataType::DtInt32),
            ),
        ],
    )
}

/// DenseNet's head: `Mul(x, s) -> AddV2(b) -> [Relu] -> Mean(axes) -> Dense` (MatMul and
/// BiasAdd without `keep_dims`, a 1x1 Conv2D with it), `x` of `dims`.
fn pooled_head(
    dims: &[i64],
    scale: &[f32],
    relu: bool,
    axes: &[i32],
    keep_dims: bool,
) -> graphopt_core::proto::GraphDef {
    use synthetic::*;
    let c = *dims.last().unwrap() as usize;
    let mut nodes = vec![
        placeholder("x", dims),
        values_const("s", &[scale.len()], scale),
        constant("b", &[c], 12, false),
        common::graphs::int32s("axes", &[axes.len()], axes),
        node("mul", "Mul", &["x", "s"], &[]),
        node("add", "AddV2", &["mul", "b"], &[]),
    ];
    let mut last = "add";
    if relu {
        nodes.push(node("relu", "Relu", &["add"], &[]));
        last = "relu";
    }
    nodes.push(mean("gap", last, "axes", keep_dims));
    if keep_dims {
        nodes.push(constant("w", &[1, 1, c, 5], 13, false));
        nodes.push(conv2d("logits", "gap", "w", "VALID"));
    } else {
        nodes.push(constant("w", &[c, 3], 13, false));
        nodes.push(constant("bias", &[3], 14, false));
        nodes.push(node("dense", "MatMul", &["gap", "w"], &[]));
        nodes.push(node("logits", "BiasAdd", &["dense", "bias"], &[]));
    }
    graph(nodes)
}

#[test]
fn scales_move_through_global_average_pooling_into_the_dense_layer() {
    // Positive scales through ReLU, any sign without it; the channel axis stays the last one
    // whether the mean keeps its dims or not, written as positive or negative axes.
    for (scale, relu) in [(POSITIVE, true), (MIXED, false)] {
        for (axes, keep_dims) in [
            (&[1, 2][..], false),
            (&[-3, -2][..], false),
            (&[2, 1][..], true),
            (&[0, 1, 2][..], true),
        ] {
            let what = format!("relu {relu}, axes {axes:?}, keep_dims {keep_dims}");
            let graph = pooled_head(&[1, 6, 6, 4], &scale, relu, axes, keep_dims);
            let folded = fold_scale_axis_checked(&graph, &["logits"], &what);
            assert_eq!(count(&folded, "Mul"), 0, "{what}: the scale is still a Mul");
            assert_eq!(count(&folded, "AddV2"), 1, "{what}");
        }
    }
    // Over the batch too (rank 4 down to rank 2 with the batch gone), and an unknown batch.
    let graph = pooled_head(&[2, 6, 6, 4], &POSITIVE, true, &[0, 1], false);
    // [2,6,6,4] -> mean over [0,1] -> [6,4]: still channels last.
    let folded = fold_scale_axis_checked(&graph, &["logits"], "mean over the batch");
    assert_eq!(count(&folded, "Mul"), 0);
    let graph = pooled_head(&[-1, 6, 6, 4], &POSITIVE, true, &[1, 2], false);
    let folded = fold_scale_axis_checked(&graph, &["logits"], "unknown batch");
    assert_eq!(count(&folded, "Mul"), 0);
}

#[test]
fn a_mean_over_the_channels_or_mixed_signs_through_relu_stop_the_move() {
    // [1,4,6,4] -> mean over [2,3] -> [1,4]: the dense layer's inputs are rows, not channels
    // (the counts agree, so only the axes tell).
    let graph = pooled_head(&[1, 4, 6, 4], &POSITIVE, true, &[2, 3], false);
    let folded = fold_scale_axis_checked(&graph, &["logits"], "channel mean");
    assert_eq!(
        count(&folded, "Mul"),
        1,
        "a mean over the channels let the scale through"
    );
    let graph = pooled_head(&[1, 4, 6, 4], &POSITIVE, true, &[-1, 2], false);
    let folded = fold_scale_axis_checked(&graph, &["logits"], "channel mean, axis -1");
    assert_eq!(count(&folded, "Mul"), 1);
    let graph = pooled_head(&[1, 6, 6, 4], &MIXED, true, &[1, 2], false);
    let folded = fold_scale_axis_checked(&graph, &["logits"], "mixed signs, relu");
    assert_eq!(
        count(&folded, "Mul"),
        1,
        "a mixed-sign scale moved through ReLU"
    );
}

/// `a = Conv2D(x, wa)` (3 channels) and `Mul(x, s) -> AddV2(b) -> [Relu]` joined by ConcatV2
/// on `axis` (the scaled part `first` or second), then `after` ops, then a 3x3 Conv2D.
fn concat_graph(
    dims: &[i64],
    scale: &[f32],
    relu: bool,
    first: bool,
    axis: i32,
    after: &[&str],
) -> graphopt_core::proto::GraphDef {
    use synthetic::*;
    let mut nodes = vec![
        placeholder("x", dims),
        values_const("s", &[scale.len()], scale),
        constant("b", &[4], 12, false),
        constant("wa", &[1, 1, 4, 3], 15, false),
        constant("w", &[3, 3, 7, 5], 13, false),
        common::graphs::int32s("axis", &[], &[axis]),
        conv2d("a", "x", "wa", "SAME"),
        node("mul", "Mul", &["x", "s"], &[]),
        node("add", "AddV2", &["mul", "b"], &[]),
    ];
    let mut part = "add";
    if relu {
        nodes.push(node("relu", "Relu", &["add"], &[]));
        part = "relu";
    }
    let parts = if first { [part, "a"] } else { ["a", part] };
    let mut concat = node("concat", "ConcatV2", &[parts[0], parts[1], "axis"], &[]);
    concat.attr.insert(
        "N".into(),
        common::graphs::attr(graphopt_core::proto::attr_value::Value::I(2)),
    );
    nodes.push(concat);
    let mut last = "concat".to_string();
    for (k, op) in after.iter().enumerate() {
        let name = format!("after{k}");
        nodes.push(if *op == "MaxPool" {
            pool(&name, op, &last, "SAME")
        } else {
            node(&name, op, &[&last], &[])
        });
        last = name;
    }
    nodes.push(conv2d("conv", &last, "w", "SAME"));
    graph(nodes)
}

#[test]
fn a_scale_on_one_part_moves_past_the_concatenation() {
    // The concatenated scale is the parts' scales end to end, the other part's channels 1.
    for first in [true, false] {
        for axis in [3, -1] {
            for after in [&[][..], &["Relu"][..], &["MaxPool", "Relu"][..]] {
                let what = format!("first {first}, axis {axis}, then {after:?}");
                let graph = concat_graph(&[1, 6, 6, 4], &POSITIVE, true, first, axis, after);
                let folded = fold_scale_axis_checked(&graph, &["conv"], &what);
                assert_eq!(count(&folded, "Mul"), 0, "{what}: the scale is still a Mul");
                assert_eq!(count(&folded, "ConcatV2"), 1, "{what}");
            }
        }
    }
    // A batch the graph leaves unknown: the other part's channels come from its weights.
    let graph = concat_graph(&[-1, 6, 6, 4], &POSITIVE, true, false, 3, &[]);
    let folded = fold_scale_axis_checked(&graph, &["conv"], "unknown batch");
    assert_eq!(count(&folded, "Mul"), 0);
    // A concatenation is linear: without ReLU any sign moves, and a scalar scale too.
    let graph = concat_graph(&[1, 6, 6, 4], &MIXED, false, true, 3, &[]);
    let folded = fold_scale_axis_checked(&graph, &["conv"], "mixed signs, no relu");
    assert_eq!(count(&folded, "Mul"), 0);
    let graph = concat_graph(&[1, 6, 6, 4], &[-0.75], false, false, -1, &[]);
    let folded = fold_scale_axis_checked(&graph, &["conv"], "a negative scalar");
    assert_eq!(count(&folded, "Mul"), 0);
    // Both parts scaled (the other part a Mul too): each moves, one per sweep.
    let mut graph = concat_graph(&[1, 6, 6, 4], &POSITIVE, true, true, 3, &[]);
    graph.node.push(values_const("t", &[3], &[0.5, 2.0, 3.0]));
    graph
        .node
        .push(synthetic::node("mul_a", "Mul", &["a", "t"], &[]));
    let concat = graph.node.iter_mut().find(|n| n.name == "concat").unwrap();
    concat.input[1] = "mul_a".into();
    let folded = fold_scale_axis_checked(&graph, &["conv"], "both parts");
    assert_eq!(count(&folded, "Mul"), 0);
}

#[test]
fn concatenations_that_cannot_carry_the_scale_stop_it() {
    // Mixed signs through ReLU, before or after the concatenation.
    for (relu, after) in [
        (true, &[][..]),
        (false, &["Relu"][..]),
        (false, &["MaxPool"][..]),
    ] {
        let what = format!("relu before {relu}, then {after:?}");
        let graph = concat_graph(&[1, 6, 6, 4], &MIXED, relu, true, 3, after);
        let folded = fold_scale_axis_checked(&graph, &["conv"], &what);
        assert_eq!(count(&folded, "Mul"), 1, "{what}: a mixed-sign scale moved");
    }
    // The concatenation read by something other than a layer.
    let mut graph = concat_graph(&[1, 6, 6, 4], &POSITIVE, true, true, 3, &[]);
    graph
        .node
        .push(synthetic::node("other", "Relu", &["concat"], &[]));
    let folded = fold_scale_axis_checked(&graph, &["conv", "other"], "another reader");
    assert_eq!(count(&folded, "Mul"), 1);
    // The scaled part concatenated twice.
    let mut graph = concat_graph(&[1, 6, 6, 4], &POSITIVE, true, true, 3, &[]);
    graph.node[4] = synthetic::constant("w", &[3, 3, 8, 5], 13, false);
    let concat = graph.node.iter_mut().find(|n| n.name == "concat").unwrap();
    concat.input[1] = "relu".into();
    let folded = fold_scale_axis_checked(&graph, &["conv"], "the part twice");
    assert_eq!(count(&folded, "Mul"), 1);
}

#[test]
fn any_non_zero_scale_moves_into_a_linear_layer_directly_or_through_linear_steps() {
    use synthetic::*;
    let x = || placeholder("x", &[1, 6, 6, 4]);
    let scale = || values_const("s", &[4], &MIXED);
    let mut pad = node("pad", "Pad", &["avg", "paddings"], &[]);
    pad.attr.insert(
        "Tpaddings".into(),
        common::graphs::attr(common::graphs::dtype(
            graphopt_core::proto::DataType::DtInt32,
        )),
    );
    let mut transpose_b = node("layer", "MatMul", &["mul", "w"], &[]);
    transpose_b.attr.insert(
        "transpose_b".into(),
        common::graphs::attr(graphopt_core::proto::attr_value::Value::B(true)),
    );
    let cases = vec![
        (
            "Conv2D",
            graph(vec![
                x(),
                scale(),
                constant("w", &[3, 3, 4, 5], 13, false),
                conv2d("layer", "mul", "w", "SAME"),
                node("mul", "Mul", &["x", "s"], &[]),
            ]),
        ),
        (
            "DepthwiseConv2dNative",
            graph(vec![
                x(),
                scale(),
                constant("w", &[3, 3, 4, 2], 13, false),
                node("mul", "Mul", &["s", "x"], &[]),
                node(
                    "layer",
                    "DepthwiseConv2dNative",
                    &["mul", "w"],
                    &[("strides", ints(&[1, 1, 1, 1])), ("padding", s("VALID"))],
                ),
            ]),
        ),
        (
            "MatMul",
            graph(vec![
                placeholder("x", &[3, 4]),
                scale(),
                constant("w", &[4, 3], 13, false),
                node("mul", "Mul", &["x", "s"], &[]),
                node("layer", "MatMul", &["mul", "w"], &[]),
            ]),
        ),
        (
            "MatMul, transpose_b",
            graph(vec![
                placeholder("x", &[3, 4]),
                scale(),
                constant("w", &[3, 4], 13, false),
                node("mul", "Mul", &["x", "s"], &[]),
                transpose_b,
            ]),
        ),
        (
            "shift, AvgPool, zero Pad",
            graph(vec![
                x(),
                scale(),
                constant("b", &[4], 12, false),
                constant("w", &[3, 3, 4, 5], 13, false),
                common::graphs::int32s("paddings", &[4, 2], &[0, 0, 1, 1, 2, 0, 0, 0]),
                node("mul", "Mul", &["x", "s"], &[]),
                node("add", "AddV2", &["mul", "b"], &[]),
                pool("avg", "AvgPool", "add", "SAME"),
                pad,
                conv2d("layer", "pad", "w", "VALID"),
            ]),
        ),
    ];
    for (what, graph) in cases {
        let folded = fold_scale_axis_checked(&graph, &["layer"], what);
        assert_eq!(count(&folded, "Mul"), 0, "{what}: the scale is still a Mul");
    }
}

#[test]
fn mixed_or_zero_scales_stop_at_non_linear_steps() {
    use synthetic::*;
    let chains: Vec<(&str, &[f32], Vec<graphopt_core::proto::NodeDef>)> = vec![
        ("Relu", &MIXED, vec![node("act", "Relu", &["add"], &[])]),
        (
            "LeakyRelu",
            &MIXED,
            vec![node("act", "LeakyRelu", &["add"], &[])],
        ),
        (
            "MaxPool",
            &MIXED,
            vec![pool("act", "MaxPool", "add", "VALID")],
        ),
        (
            "AvgPool, Relu",
            &MIXED,
            vec![
                pool("avg", "AvgPool", "add", "VALID"),
                node("act", "Relu", &["avg"], &[]),
            ],
        ),
        (
            "negative scalar, Relu",
            &[-2.0],
            vec![node("act", "Relu", &["add"], &[])],
        ),
        (
            "a zero channel",
            &[1.0, 0.0, 2.0, 1.0],
            vec![pool("act", "AvgPool", "add", "VALID")],
        ),
    ];
    for (what, scale, layers) in chains {
        let mut nodes = vec![
            placeholder("x", &[1, 6, 6, 4]),
            values_const("s", &[scale.len()], scale),
            constant("b", &[4], 12, false),
            constant("w", &[3, 3, 4, 5], 13, false),
            node("mul", "Mul", &["x", "s"], &[]),
            node("add", "AddV2", &["mul", "b"], &[]),
        ];
        nodes.extend(layers);
        nodes.push(conv2d("conv", "act", "w", "SAME"));
        let folded = fold_scale_axis_checked(&graph(nodes), &["conv"], what);
        assert_eq!(count(&folded, "Mul"), 1, "{what}: the scale moved");
    }
    // A zero scale straight into a convolution stays too (it is no per-channel scale to move).
    let zero = graph(vec![
        placeholder("x", &[1, 6, 6, 4]),
        values_const("s", &[4], &[1.0, 0.0, 2.0, 1.0]),
        constant("w", &[3, 3, 4, 5], 13, false),
        node("mul", "Mul", &["x", "s"], &[]),
        conv2d("conv", "mul", "w", "SAME"),
    ]);
    let folded = fold_scale_axis_checked(&zero, &["conv"], "zero into conv");
    assert_eq!(count(&folded, "Mul"), 1);
}

/// Folded values are the same bits on every machine: transcendental functions are the libm
/// crate's, not the C library's, which differ by system and version (on the inputs below
/// this machine's glibc gives 0x3e2df04a, 0xc0d1b1c9, 0x3c380067 and 0x2ea0a859, one ulp
/// from these), and a NaN is written as the positive quiet NaN whichever sign the CPU gave it
/// (x86 makes 0/0 0xffc00000, ARM 0x7fc00000).
#[test]
fn folded_values_do_not_depend_on_the_machine() {
    let scalar = |name: &str, value: f32| {
        format!(
            r#"node {{ name: "{name}" op: "Const" attr {{ key: "dtype" value {{ type: DT_FLOAT }} }}
                attr {{ key: "value" value {{ tensor {{ dtype: DT_FLOAT tensor_shape {{}} float_val: {value:?} }} }} }} }}
            "#
        )
    };
    let node = |name: &str, op: &str, inputs: &[&str]| {
        let inputs: String = inputs.iter().map(|i| format!(r#"input: "{i}" "#)).collect();
        format!(
            r#"node {{ name: "{name}" op: "{op}" {inputs} attr {{ key: "T" value {{ type: DT_FLOAT }} }} }}
            "#
        )
    };
    let text = [
        scalar("a", 0.171_524_5),
        scalar("b", 0.001_425_9),
        scalar("c", 0.011_230_8),
        scalar("d", 8.82e-5),
        scalar("e", 2.5),
        scalar("zero", 0.0),
        node("tanh", "Tanh", &["a"]),
        node("log", "Log", &["b"]),
        node("sin", "Sin", &["c"]),
        node("pow", "Pow", &["d", "e"]),
        node("nan", "RealDiv", &["zero", "zero"]),
    ]
    .concat();
    let mut graph = graph_from_text(&text);
    run_on(
        &mut graph,
        "fold_constants",
        &["tanh", "log", "sin", "pow", "nan"],
    )
    .unwrap();
    let bits = |name: &str| {
        let node = graph.node.iter().find(|n| n.name == name).unwrap();
        assert_eq!(node.op, "Const", "{name} folded");
        let value = graphopt_core::graph::attrs::tensor(node, "value").unwrap();
        let tensor = graphopt_core::tensor::Tensor::from_proto(value).unwrap();
        match tensor.data() {
            graphopt_core::tensor::Data::F32(values) => values.iter().next().unwrap().to_bits(),
            other => panic!("{name}: {other:?}"),
        }
    };
    assert_eq!(bits("tanh"), 0x3e2d_f049);
    assert_eq!(bits("log"), 0xc0d1_b1c8);
    assert_eq!(bits("sin"), 0x3c38_0066);
    assert_eq!(bits("pow"), 0x2ea0_a85a);
    assert_eq!(bits("nan"), 0x7fc0_0000);
}

/// A node named in --inputs holds what is fed: a Const there is no constant to fold or scale
/// with, and a fed node is never merged with the node it duplicates (its readers would get
/// the fed value, or the duplicate's readers would).
#[test]
fn fed_nodes_are_neither_constants_nor_duplicates() {
    let float = r#"attr { key: "T" value { type: DT_FLOAT } }"#;
    let header = r#"node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } }
        attr { key: "shape" value { shape { dim { size: 1 } dim { size: 2 } dim { size: 2 } dim { size: 2 } } } } }
    "#;
    let run = |text: &str, transform: &str, inputs: &[&str], output: &str| {
        let mut graph = graph_from_text(text);
        let specs = transforms::parse(transform).unwrap();
        let inputs: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
        transforms::run(
            &Registry::with_builtins(),
            &mut graph,
            &specs,
            &inputs,
            &[output.to_string()],
        )
        .unwrap();
        graph
    };
    // x * one, `one` fed.
    let times_one = [
        header.to_string(),
        float_const_text("one", &[], &[1.0]),
        format!(r#"node {{ name: "m" op: "Mul" input: "x" input: "one" {float} }}"#),
        format!(r#"node {{ name: "y" op: "Relu" input: "m" {float} }}"#),
    ]
    .concat();
    let graph = run(&times_one, "simplify_arithmetic", &["x"], "y");
    assert_eq!(count(&graph, "Mul"), 0, "x * one, nothing fed, is x");
    let graph = run(&times_one, "simplify_arithmetic", &["x", "one"], "y");
    assert_eq!(count(&graph, "Mul"), 1, "x * one folded with `one` fed");
    // A scale into a convolution, the scale fed.
    let scaled = [
        header.to_string(),
        float_const_text("s", &[2], &[2.0, 3.0]),
        float_const_text("w", &[1, 1, 2, 2], &[0.5, -1.0, 2.0, 0.25]),
        format!(r#"node {{ name: "m" op: "Mul" input: "x" input: "s" {float} }}"#),
        format!(
            r#"node {{ name: "y" op: "Conv2D" input: "m" input: "w" {float}
                attr {{ key: "strides" value {{ list {{ i: 1 i: 1 i: 1 i: 1 }} }} }}
                attr {{ key: "padding" value {{ s: "SAME" }} }} }}"#
        ),
    ]
    .concat();
    let graph = run(&scaled, "fold_scale_axis", &["x", "s"], "y");
    assert_eq!(
        count(&graph, "Mul"),
        1,
        "the fed scale moved into the weights"
    );
    let graph = run(&scaled, "fold_scale_axis", &["x", "w"], "y");
    assert_eq!(count(&graph, "Mul"), 1, "a scale moved into fed weights");
    // a = Identity(x), fed; b = Identity(x): y = a + b must keep reading both.
    let duplicates = [
        header.to_string(),
        format!(r#"node {{ name: "a" op: "Identity" input: "x" {float} }}"#),
        format!(r#"node {{ name: "b" op: "Identity" input: "x" {float} }}"#),
        format!(r#"node {{ name: "y" op: "AddV2" input: "a" input: "b" {float} }}"#),
    ]
    .concat();
    let graph = run(&duplicates, "merge_duplicate_nodes", &["a"], "y");
    let y = graph.node.iter().find(|n| n.name == "y").unwrap();
    assert_eq!(y.input, ["a", "b"], "merged into the fed node");
}

/// Rewrites keep what the nodes they bypass waited for: the control inputs of an inner Neg, of
/// a chain's inner node and constants, of a neutral constant, of the inner node of a
/// cancelling Transpose pair, of a batch-norm Mul folded into the weights and of a scale moved
/// into them reach the rewritten node or the readers of the value.
#[test]
fn bypassed_nodes_pass_their_control_inputs_on() {
    let float = r#"attr { key: "T" value { type: DT_FLOAT } }"#;
    let header = r#"node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } }
        attr { key: "shape" value { shape { dim { size: 3 } } } } }
    node { name: "ok" op: "Const" attr { key: "dtype" value { type: DT_BOOL } }
        attr { key: "value" value { tensor { dtype: DT_BOOL tensor_shape {} bool_val: true } } } }
    node { name: "check" op: "Assert" input: "ok" input: "x"
        attr { key: "T" value { list { type: DT_FLOAT } } } attr { key: "summarize" value { i: 3 } } }
    "#;
    let cases = [
        (
            "Neg(Neg(x))",
            vec![
                format!(r#"node {{ name: "inner" op: "Neg" input: "x" input: "^check" {float} }}"#),
                format!(r#"node {{ name: "outer" op: "Neg" input: "inner" {float} }}"#),
            ],
        ),
        (
            "(x * 2) * 3",
            vec![
                float_const_text("two", &[], &[2.0]),
                float_const_text("three", &[], &[3.0]),
                format!(
                    r#"node {{ name: "inner" op: "Mul" input: "x" input: "two" input: "^check" {float} }}"#
                ),
                format!(
                    r#"node {{ name: "outer" op: "Mul" input: "inner" input: "three" {float} }}"#
                ),
            ],
        ),
        (
            "x * 1, the 1 waiting",
            vec![
                float_const_text("one", &[], &[1.0])
                    .replace(r#"op: "Const""#, r#"op: "Const" input: "^check""#),
                format!(r#"node {{ name: "outer" op: "Mul" input: "x" input: "one" {float} }}"#),
            ],
        ),
    ];
    let perm = r#"node { name: "perm" op: "Const" attr { key: "dtype" value { type: DT_INT32 } }
        attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape { dim { size: 1 } } int_val: 0 } } } }
    "#;
    let transpose = |name: &str, input: &str, extra: &str| {
        format!(
            r#"node {{ name: "{name}" op: "Transpose" input: "{input}" input: "perm" {extra} {float}
                attr {{ key: "Tperm" value {{ type: DT_INT32 }} }} }}
            "#
        )
    };
    let transposes = vec![
        perm.to_string(),
        transpose("inner", "x", r#"input: "^check""#),
        transpose("outer", "inner", ""),
    ];
    let image = r#"node { name: "x4" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } }
        attr { key: "shape" value { shape { dim { size: 1 } dim { size: 2 } dim { size: 2 } dim { size: 2 } } } } }
    "#;
    let conv = |name: &str, input: &str| {
        format!(
            r#"node {{ name: "{name}" op: "Conv2D" input: "{input}" input: "w" {float}
                attr {{ key: "strides" value {{ list {{ i: 1 i: 1 i: 1 i: 1 }} }} }}
                attr {{ key: "padding" value {{ s: "SAME" }} }} }}
            "#
        )
    };
    let weights = float_const_text("w", &[1, 1, 2, 2], &[0.5, -1.0, 2.0, 0.25]);
    // Conv2D * m, the Mul waiting: folded into the weights, the Mul's readers keep waiting.
    let batch_norm = vec![
        image.to_string(),
        weights.clone(),
        float_const_text("m", &[2], &[1.5, 0.5]),
        conv("conv", "x4"),
        format!(
            r#"node {{ name: "outer" op: "Mul" input: "conv" input: "m" input: "^check" {float} }}"#
        ),
    ];
    // x4 * s into a Conv2D, the scale Const waiting: moved into the weights.
    let scale = vec![
        image.to_string(),
        weights,
        float_const_text("s", &[2], &[1.5, 0.5])
            .replace(r#"op: "Const""#, r#"op: "Const" input: "^check""#),
        format!(r#"node {{ name: "scaled" op: "Mul" input: "x4" input: "s" {float} }}"#),
        conv("outer", "scaled"),
    ];
    let cases = cases
        .into_iter()
        .map(|(what, nodes)| (what, "simplify_arithmetic", nodes))
        .chain([
            (
                "a cancelling Transpose pair",
                "remove_leftovers",
                transposes,
            ),
            (
                "a batch-norm scale after Conv2D",
                "fold_batch_norms",
                batch_norm,
            ),
            ("a scale before Conv2D", "fold_scale_axis", scale),
        ]);
    for (what, transform, nodes) in cases {
        let text = [
            vec![header.to_string()],
            nodes,
            vec![format!(
                r#"node {{ name: "y" op: "Relu" input: "outer" {float} }}"#
            )],
        ]
        .concat()
        .concat();
        let mut graph = graph_from_text(&text);
        run_on(&mut graph, transform, &["y"]).unwrap();
        // `check` is still an ancestor of y.
        let mut pending = vec!["y".to_string()];
        let mut seen = std::collections::HashSet::new();
        while let Some(name) = pending.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let node = graph.node.iter().find(|n| n.name == name).unwrap();
            pending.extend(
                node.input
                    .iter()
                    .map(|i| graphopt_core::graph::node_name(i).to_string()),
            );
        }
        assert!(
            seen.contains("check"),
            "{what}: y no longer waits for check"
        );
        let simplified = if what.starts_with("x * 1") || what.contains("Conv2D") {
            count(&graph, "Mul") == 0
        } else {
            !seen.contains("inner")
        };
        assert!(simplified, "{what}: nothing was simplified");
    }
}

/// Without declared outputs the graph's ends are its outputs: leftover removal and `@deploy`
/// keep the final Identity a reader fetches by name.
#[test]
fn without_outputs_the_ends_of_the_graph_stay() {
    let float = r#"attr { key: "T" value { type: DT_FLOAT } }"#;
    let text = [
        r#"node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } }
            attr { key: "shape" value { shape { dim { size: 3 } } } } }"#
            .to_string(),
        format!(r#"node {{ name: "r" op: "Relu" input: "x" {float} }}"#),
        format!(r#"node {{ name: "y" op: "Identity" input: "r" {float} }}"#),
    ]
    .concat();
    for transform in ["remove_leftovers", "@deploy"] {
        let mut graph = graph_from_text(&text);
        let specs = transforms::parse(transform).unwrap();
        transforms::run(&Registry::with_builtins(), &mut graph, &specs, &[], &[]).unwrap();
        assert!(
            graph.node.iter().any(|n| n.name == "y"),
            "{transform} removed the graph's end"
        );
        // Declared, another output lets the Identity go.
        let mut graph = graph_from_text(&text);
        transforms::run(
            &Registry::with_builtins(),
            &mut graph,
            &specs,
            &[],
            &["r".into()],
        )
        .unwrap();
        assert!(!graph.node.iter().any(|n| n.name == "y"), "{transform}");
    }
}

/// A ClipByValue whose bounds have the tensor's shape clips each element by its own bound,
/// in NHWC order: the Transpose cannot sink through it (it did, and each element was clipped
/// by another's bound: TensorFlow 2.21 ran the CLI's output of such a graph 1.25 away from
/// the original). With scalar bounds it still sinks.
#[test]
fn nchw_conversion_keeps_per_element_clip_bounds_in_their_layout() {
    use synthetic::*;
    let conv = |name: &str, input: &str, w: &str| conv(name, input, w, "VALID");
    let clipped = |bound_dims: &[usize]| {
        graph(vec![
            placeholder("x", &[1, 2, 2, 2]),
            constant("w1", &[1, 1, 2, 2], 1, false),
            conv("conv1", "x", "w1"),
            constant("low", bound_dims, 2, false),
            constant("high", &[], 3, true),
            node("clip", "ClipByValue", &["conv1", "low", "high"], &[]),
            constant("w2", &[1, 1, 2, 2], 4, false),
            conv("conv2", "clip", "w2"),
            node("out", "Relu", &["conv2"], &[]),
        ])
    };
    // graphopt's evaluator has no ClipByValue kernel: what the clip reads is checked.
    for (bound_dims, transposes, reads) in
        [(&[1, 2, 2, 2][..], 4, "Transpose"), (&[][..], 2, "Conv2D")]
    {
        let mut converted = clipped(bound_dims);
        run_on(&mut converted, "convert_to_nchw", &["out"]).unwrap();
        assert_eq!(count(&converted, "Transpose"), transposes, "{bound_dims:?}");
        let clip = converted.node.iter().find(|n| n.name == "clip").unwrap();
        let from = converted
            .node
            .iter()
            .find(|n| n.name == clip.input[0])
            .unwrap();
        assert_eq!(from.op, reads, "{bound_dims:?}");
        assert_eq!(clip.input[1], "low", "{bound_dims:?}");
    }
}
