//! strip_unused_nodes and remove_nodes on the cases where TensorFlow's versions break graphs.

mod common;

use graphopt_core::graph::attrs;
use graphopt_core::proto::GraphDef;
use graphopt_core::transforms::{self, Registry, TransformOutcome};

fn run(
    graph: &mut GraphDef,
    transform_string: &str,
    inputs: &[&str],
    outputs: &[&str],
) -> graphopt_core::Result<Vec<TransformOutcome>> {
    let specs = transforms::parse(transform_string).unwrap();
    let inputs: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
    let outputs: Vec<String> = outputs.iter().map(|s| s.to_string()).collect();
    transforms::run(&Registry::with_builtins(), graph, &specs, &inputs, &outputs)
}

fn text(t: &str) -> GraphDef {
    graphopt_core::text_format::parse(t).unwrap()
}

fn names(graph: &GraphDef) -> Vec<&str> {
    graph.node.iter().map(|n| n.name.as_str()).collect()
}

fn node<'a>(graph: &'a GraphDef, name: &str) -> &'a graphopt_core::proto::NodeDef {
    graph
        .node
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node {name}: {:?}", names(graph)))
}

#[test]
fn remove_nodes_keeps_the_while_loop_fixture_correct() {
    let (inputs, outputs) = common::io_names("while_rnn");
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    let mut graph = common::load("while_rnn");
    let before = graph.node.len();
    run(
        &mut graph,
        "remove_nodes(op=Identity, op=CheckNumerics)",
        &inputs,
        &outputs,
    )
    .unwrap();
    assert!(graph.node.len() < before);
    common::assert_matches_tensorflow("while_rnn", &graph, 1e-6, 1e-6);
}

const COND: &str = r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } attr { key: "shape" value { shape {} } } }
node { name: "p" op: "Placeholder" attr { key: "dtype" value { type: DT_BOOL } } attr { key: "shape" value { shape {} } } }
node { name: "switch" op: "Switch" input: "x" input: "p" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "switch_t" op: "Identity" input: "switch:1" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "switch_f" op: "Identity" input: "switch:0" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "ten" op: "Const" input: "^switch_t" attr { key: "dtype" value { type: DT_FLOAT } }
       attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape {} float_val: 10 } } } }
node { name: "then" op: "Mul" input: "switch_t" input: "ten" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "else" op: "Neg" input: "switch_f" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "merge" op: "Merge" input: "then" input: "else" attr { key: "T" value { type: DT_FLOAT } } attr { key: "N" value { i: 2 } } }
node { name: "out" op: "Identity" input: "merge" attr { key: "T" value { type: DT_FLOAT } } }
"#;

fn run_cond(graph: &GraphDef, p: bool) -> f32 {
    use graphopt_core::tensor::{Data, Tensor};
    let feeds = [
        (
            "x".to_string(),
            Tensor::from_data(Data::F32(ndarray::arr0(3.0f32).into_dyn())),
        ),
        (
            "p".to_string(),
            Tensor::from_data(Data::Bool(ndarray::arr0(p).into_dyn())),
        ),
    ]
    .into_iter()
    .collect();
    let out =
        graphopt_core::eval::evaluate(graph, &feeds, &["out".into()], Default::default()).unwrap();
    match out[0].data() {
        Data::F32(a) => a.iter().copied().next().unwrap(),
        _ => panic!(),
    }
}

#[test]
fn remove_nodes_keeps_the_identity_that_anchors_a_cond_branch() {
    let original = text(COND);
    assert_eq!(
        (run_cond(&original, true), run_cond(&original, false)),
        (30.0, -3.0)
    );
    let mut graph = original.clone();
    run(
        &mut graph,
        "remove_nodes(op=Identity)",
        &["x", "p"],
        &["out"],
    )
    .unwrap();
    // switch_t pins `ten` to the true branch; moving that control edge onto the Switch would
    // make `ten` live on both branches. switch_f is a plain data hop and goes.
    let kept = names(&graph);
    assert!(
        kept.contains(&"switch_t") && !kept.contains(&"switch_f"),
        "{kept:?}"
    );
    assert_eq!(node(&graph, "else").input, ["switch:0"]);
    assert_eq!(
        (run_cond(&graph, true), run_cond(&graph, false)),
        (30.0, -3.0)
    );
}

#[test]
fn remove_nodes_moves_control_inputs_to_consumers() {
    let mut graph = text(
        r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "init" op: "NoOp" }
node { name: "id" op: "Identity" input: "x" input: "^init" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "y" op: "Relu" input: "id" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "z" op: "Relu" input: "x" input: "^id" attr { key: "T" value { type: DT_FLOAT } } }
"#,
    );
    run(&mut graph, "remove_nodes(op=Identity)", &[], &["y", "z"]).unwrap();
    assert!(!names(&graph).contains(&"id"));
    assert_eq!(node(&graph, "y").input, ["x", "^init"]);
    // ^id became ^x, which duplicates the data input x and is dropped; ^init moves over.
    assert_eq!(node(&graph, "z").input, ["x", "^init"]);
}

#[test]
fn outputs_are_protected_however_they_are_spelled() {
    let mut graph = text(
        r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "Mul" op: "Identity" input: "x" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "check" op: "CheckNumerics" input: "Mul" attr { key: "T" value { type: DT_FLOAT } } attr { key: "message" value { s: "m" } } }
"#,
    );
    run(
        &mut graph,
        "remove_nodes(op=Identity, op=CheckNumerics)",
        &["x:0"],
        &["Mul:0", "check:0"],
    )
    .unwrap();
    assert_eq!(names(&graph), ["x", "Mul", "check"]);
}

const STRIP: &str = r#"
node { name: "image" op: "Placeholder" attr { key: "dtype" value { type: DT_UINT8 } } attr { key: "shape" value { shape { dim { size: -1 } dim { size: 4 } } } } }
node { name: "decoded" op: "Cast" input: "image" attr { key: "SrcT" value { type: DT_UINT8 } } attr { key: "DstT" value { type: DT_FLOAT } }
       attr { key: "_output_shapes" value { list { shape { dim { size: -1 } dim { size: 4 } } } } } }
node { name: "scaled" op: "Mul" input: "decoded" input: "scale" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "scale" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } } attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape {} float_val: 2 } } } }
node { name: "mask" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } attr { key: "shape" value { shape { dim { size: -1 } dim { size: 4 } } } } }
node { name: "out" op: "Add" input: "scaled" input: "mask" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "unused" op: "Relu" input: "mask" attr { key: "T" value { type: DT_FLOAT } } }
"#;

#[test]
fn strip_unused_nodes_never_invents_a_scalar_shape() {
    let mut graph = text(STRIP);
    let outcomes = run(
        &mut graph,
        "strip_unused_nodes",
        &["decoded", "mask"],
        &["out"],
    )
    .unwrap();
    assert_eq!(names(&graph), ["decoded", "scaled", "scale", "mask", "out"]);
    let decoded = node(&graph, "decoded");
    assert_eq!(decoded.op, "Placeholder");
    // The replaced input keeps its dtype and its recorded shape; TensorFlow's would be a
    // float scalar.
    assert_eq!(
        attrs::dtype(decoded, "dtype"),
        Some(graphopt_core::proto::DataType::DtFloat)
    );
    let dims: Vec<i64> = attrs::shape(decoded, "shape")
        .unwrap()
        .dim
        .iter()
        .map(|d| d.size)
        .collect();
    assert_eq!(dims, [-1, 4]);
    assert!(outcomes[0].warnings.is_empty());
}

#[test]
fn strip_unused_nodes_refines_compatible_shapes_and_warns_on_conflicts() {
    let mut graph = text(STRIP);
    run(
        &mut graph,
        r#"strip_unused_nodes(type=float, shape="1,4")"#,
        &["decoded", "mask"],
        &["out"],
    )
    .unwrap();
    let dims = |name: &str, g: &GraphDef| -> Vec<i64> {
        attrs::shape(node(g, name), "shape")
            .unwrap()
            .dim
            .iter()
            .map(|d| d.size)
            .collect()
    };
    assert_eq!(dims("mask", &graph), [1, 4]);
    assert_eq!(dims("decoded", &graph), [1, 4]);

    let mut graph = text(STRIP);
    let outcomes = run(
        &mut graph,
        r#"strip_unused_nodes(shape="1,3")"#,
        &["decoded", "mask"],
        &["out"],
    )
    .unwrap();
    assert_eq!(
        dims("mask", &graph),
        [-1, 4],
        "a conflicting shape must not be applied silently"
    );
    assert!(
        outcomes[0]
            .warnings
            .iter()
            .any(|w| w.contains("'mask' keeps its shape [?,4]; shape=[1,3] disagrees")),
        "{:?}",
        outcomes[0].warnings
    );

    let mut graph = text(STRIP);
    let outcomes = run(
        &mut graph,
        r#"strip_unused_nodes(name=mask, type_for_name=half, shape_for_name="2,4")"#,
        &["decoded", "mask"],
        &["out"],
    )
    .unwrap();
    assert_eq!(dims("mask", &graph), [2, 4]);
    assert_eq!(
        attrs::dtype(node(&graph, "mask"), "dtype"),
        Some(graphopt_core::proto::DataType::DtHalf)
    );
    assert!(
        outcomes[0]
            .warnings
            .iter()
            .any(|w| w.contains("changes type")),
        "{:?}",
        outcomes[0].warnings
    );
}

#[test]
fn strip_unused_nodes_reports_bad_names_and_ports() {
    let mut graph = text(STRIP);
    let error = run(&mut graph, "strip_unused_nodes", &["nope"], &["out"]).unwrap_err();
    assert!(error.to_string().contains("'nope'"), "{error}");
    let mut graph = text(STRIP);
    let error = run(&mut graph, "strip_unused_nodes", &["mask"], &[]).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("needs the outputs to know what to keep (--outputs, or Model::outputs)"),
        "{error}"
    );
    let mut graph = text(STRIP);
    let error = run(
        &mut graph,
        r#"strip_unused_nodes(name=out)"#,
        &["mask"],
        &["out"],
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("name=out is not one of the declared inputs"),
        "{error}"
    );
}

/// The transform strings run on every fixture by
/// [`structural_transforms_keep_every_fixtures_outputs`].
const CHECKED_ON_EVERY_FIXTURE: &[&str] = &[
    "remove_nodes(op=Identity, op=CheckNumerics, op=StopGradient, op=Snapshot)",
    "strip_unused_nodes",
    "merge_duplicate_nodes",
    "obfuscate_names",
    "remove_control_dependencies",
    "remove_device",
    "sort_by_execution_order",
    "fold_constants merge_duplicate_nodes obfuscate_names",
    "backport_concatv2",
    "insert_logging(op=Conv2D, op=MatMul, show_name=true, message=\"value:\")",
    "insert_logging(prefix=functional)",
    "add_default_attributes",
    "set_device(device=\"/device:CPU:0\")",
    "fuse_resize_pad_and_conv fuse_resize_and_conv fuse_pad_and_conv",
    "remove_training_nodes",
    "inline_partitionedcall",
    "backport_tensor_array_v3",
];

#[test]
fn structural_transforms_keep_every_fixtures_outputs() {
    for name in common::MODELS {
        let (inputs, outputs) = common::io_names(name);
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
        for transform_string in CHECKED_ON_EVERY_FIXTURE {
            let mut graph = common::load(name);
            let before = graph.node.len();
            run(&mut graph, transform_string, &inputs, &outputs)
                .unwrap_or_else(|e| panic!("{name} `{transform_string}`: {e}"));
            // Element-wise within the evaluator's own tolerance against TensorFlow.
            common::assert_outputs_match_with(
                &format!("{name} `{transform_string}`"),
                name,
                &common::run_fixture(name, &graph),
                1e-6,
                1e-5,
                1e-6,
            );
            println!(
                "{name} `{transform_string}`: {before} -> {} nodes",
                graph.node.len()
            );
        }
    }
}

#[test]
fn merge_duplicate_nodes_merges_in_full_and_never_merges_placeholders() {
    let mut graph = text(
        r#"
node { name: "a" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "b" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "c1" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } } attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape {} float_val: 2 } } } }
node { name: "c2" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } } attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape {} float_val: 2 } } } }
node { name: "c3" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } } attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape {} float_val: 3 } } } }
node { name: "m1" op: "Mul" input: "a" input: "c1" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "m2" op: "Mul" input: "a" input: "c2" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "m3" op: "Mul" input: "a" input: "c3" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "out" op: "AddN" input: "m1" input: "m2" input: "m3" input: "b" attr { key: "T" value { type: DT_FLOAT } } attr { key: "N" value { i: 4 } } }
"#,
    );
    run(&mut graph, "merge_duplicate_nodes", &["a", "b"], &["out"]).unwrap();
    assert_eq!(names(&graph), ["a", "b", "c1", "c3", "m1", "m3", "out"]);
    assert_eq!(node(&graph, "out").input, ["m1", "m1", "m3", "b"]);
}

#[test]
fn obfuscate_names_keeps_inputs_and_outputs_with_ports() {
    let mut graph = common::load("tf1_conv_bn");
    run(&mut graph, "obfuscate_names", &["input:0"], &["probs:0"]).unwrap();
    let kept = names(&graph);
    assert!(kept.contains(&"input") && kept.contains(&"probs"));
    assert!(
        kept.iter()
            .filter(|n| **n != "input" && **n != "probs")
            .all(|n| n.len() <= 2),
        "{kept:?}"
    );
    graphopt_core::graph::validate(&graph).unwrap();
}

#[test]
fn inline_partitionedcall_inlines_nested_calls_and_keeps_outputs() {
    let (inputs, outputs) = common::io_names("function_calls");
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    let mut graph = common::load("function_calls");
    assert!(graph.node.iter().any(|n| n.op == "PartitionedCall"));
    run(&mut graph, "inline_partitionedcall", &inputs, &outputs).unwrap();
    assert!(
        !graph.node.iter().any(|n| n.op.ends_with("PartitionedCall")),
        "{:?}",
        names(&graph)
    );
    common::assert_matches_tensorflow("function_calls", &graph, 1e-6, 1e-6);
    // The seams go away with the usual cleanup, and the result still matches.
    run(
        &mut graph,
        "remove_nodes(op=Identity, op=IdentityN) fold_constants sort_by_execution_order",
        &inputs,
        &outputs,
    )
    .unwrap();
    common::assert_matches_tensorflow("function_calls", &graph, 1e-6, 1e-6);
}

#[test]
fn inline_partitionedcall_keeps_control_edges_valid() {
    let mut graph = common::load("function_calls");
    let call = graph
        .node
        .iter()
        .position(|n| n.op == "PartitionedCall")
        .unwrap();
    let call_name = graph.node[call].name.clone();
    graph
        .node
        .push(text(r#"node { name: "before" op: "NoOp" }"#).node.remove(0));
    graph.node[call].input.push("^before".into());
    let mut after = text(r#"node { name: "after" op: "NoOp" }"#).node.remove(0);
    after.input.push(format!("^{call_name}"));
    graph.node.push(after);
    run(
        &mut graph,
        "inline_partitionedcall",
        &["input"],
        &["Identity", "after"],
    )
    .unwrap();
    graphopt_core::graph::validate(&graph).unwrap();
    let control = node(&graph, &format!("{call_name}/input_control_node"));
    assert_eq!(control.input, ["^before"]);
    assert_eq!(node(&graph, "after").input, [format!("^{call_name}")]);
    assert_eq!(node(&graph, &call_name).op, "IdentityN");
}

#[test]
fn remove_training_nodes_resolves_the_learning_phase_cond_and_asserts() {
    let (inputs, outputs) = common::io_names("training_leftovers");
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    let mut graph = common::load("training_leftovers");
    run(
        &mut graph,
        "remove_training_nodes strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) fold_constants",
        &inputs,
        &outputs,
    )
    .unwrap();
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op.as_str()).collect();
    assert_eq!(
        ops,
        ["Placeholder", "Const", "MatMul", "Relu"],
        "{:?}",
        names(&graph)
    );
    common::assert_matches_tensorflow("training_leftovers", &graph, 1e-6, 1e-6);
}

#[test]
fn fuse_convolutions_fold_resize_and_pad_and_keep_outputs() {
    let (inputs, outputs) = common::io_names("resize_pad_conv");
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    let mut graph = common::load("resize_pad_conv");
    let outcomes = run(
        &mut graph,
        "fuse_resize_pad_and_conv fuse_resize_and_conv fuse_pad_and_conv",
        &inputs,
        &outputs,
    )
    .unwrap();
    let count = |op: &str| graph.node.iter().filter(|n| n.op == op).count();
    assert_eq!(
        (
            count("FusedResizeAndPadConv2D"),
            count("FusedPadConv2D"),
            count("Conv2D")
        ),
        (2, 1, 1),
        "{:?}",
        names(&graph)
    );
    // The half-pixel-centers resize is not fused, and says why.
    assert!(
        outcomes[1]
            .warnings
            .iter()
            .any(|w| w.contains("'d/conv' not fused") && w.contains("half_pixel_centers")),
        "{outcomes:?}"
    );
    // Fusing reorders sums: element-wise within the evaluator's own tolerance against TF.
    common::assert_outputs_match_with(
        "resize_pad_conv",
        "resize_pad_conv",
        &common::run_fixture("resize_pad_conv", &graph),
        1e-6,
        1e-5,
        1e-6,
    );
}

#[test]
fn fuse_convolutions_leave_batches_other_than_one_alone() {
    // TensorFlow's fused kernels compute wrong values for every image after the first
    // (tests/fixtures/generate_ops.py), so only a batch statically 1 is fused.
    let (inputs, outputs) = common::io_names("resize_pad_conv");
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    for batch in [2, -1] {
        let mut graph = common::load("resize_pad_conv");
        let placeholder = graph
            .node
            .iter_mut()
            .find(|n| n.op == "Placeholder")
            .expect("the fixture's input");
        let Some(graphopt_core::proto::attr_value::Value::Shape(shape)) = placeholder
            .attr
            .get_mut("shape")
            .and_then(|a| a.value.as_mut())
        else {
            panic!("the input has a shape attribute");
        };
        shape.dim[0].size = batch;
        let outcomes = run(
            &mut graph,
            "fuse_resize_pad_and_conv fuse_resize_and_conv fuse_pad_and_conv",
            &inputs,
            &outputs,
        )
        .unwrap();
        let fused = graph
            .node
            .iter()
            .filter(|n| n.op.starts_with("Fused"))
            .count();
        assert_eq!(fused, 0, "batch {batch}: {:?}", names(&graph));
        assert!(
            outcomes
                .iter()
                .flat_map(|o| &o.warnings)
                .any(|w| w.contains("the batch is not statically 1")),
            "batch {batch}: {outcomes:?}"
        );
    }
}

/// A MirrorPad before a Conv2D of a batch of 1, with int32 or int64 paddings, the Conv2D's
/// type and padding (and explicit paddings) as given.
fn pad_conv(t: &str, paddings: &str, padding: &str) -> GraphDef {
    let values = "0 0 1 1 1 1 0 0"
        .split(' ')
        .map(|v| {
            format!(
                "{}_val: {v}",
                if paddings == "DT_INT64" {
                    "int64"
                } else {
                    "int"
                }
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    let explicit = if padding == "EXPLICIT" {
        r#"attr { key: "explicit_paddings" value { list { i: 0 i: 0 i: 1 i: 1 i: 0 i: 0 i: 0 i: 0 } } }"#
    } else {
        ""
    };
    text(&format!(
        r#"
node {{ name: "x" op: "Placeholder" attr {{ key: "dtype" value {{ type: {t} }} }}
  attr {{ key: "shape" value {{ shape {{ dim {{ size: 1 }} dim {{ size: 5 }} dim {{ size: 5 }} dim {{ size: 2 }} }} }} }} }}
node {{ name: "p" op: "Const" attr {{ key: "dtype" value {{ type: {paddings} }} }}
  attr {{ key: "value" value {{ tensor {{ dtype: {paddings} tensor_shape {{ dim {{ size: 4 }} dim {{ size: 2 }} }} {values} }} }} }} }}
node {{ name: "mp" op: "MirrorPad" input: "x" input: "p" attr {{ key: "T" value {{ type: {t} }} }}
  attr {{ key: "Tpaddings" value {{ type: {paddings} }} }} attr {{ key: "mode" value {{ s: "REFLECT" }} }} }}
node {{ name: "w" op: "Const" attr {{ key: "dtype" value {{ type: {t} }} }}
  attr {{ key: "value" value {{ tensor {{ dtype: {t} tensor_shape {{ dim {{ size: 1 }} dim {{ size: 1 }} dim {{ size: 2 }} dim {{ size: 1 }} }} {v}_val: 1 {v}_val: 2 }} }} }} }}
node {{ name: "y" op: "Conv2D" input: "mp" input: "w" attr {{ key: "T" value {{ type: {t} }} }}
  attr {{ key: "strides" value {{ list {{ i: 1 i: 1 i: 1 i: 1 }} }} }} attr {{ key: "padding" value {{ s: "{padding}" }} }} {explicit} }}
"#,
        v = if t == "DT_INT32" { "int" } else { "float" },
    ))
}

#[test]
fn fuse_pad_and_conv_leaves_what_the_fused_op_cannot_take() {
    // TensorFlow 2.21 refuses FusedPadConv2D reading int64 paddings ("expected int32"), with
    // padding EXPLICIT ("not in the list of allowed values") or of type int32.
    let cases = [
        ("DT_FLOAT", "DT_INT32", "VALID", true),
        ("DT_FLOAT", "DT_INT64", "VALID", false),
        ("DT_FLOAT", "DT_INT32", "EXPLICIT", false),
        ("DT_INT32", "DT_INT32", "VALID", false),
    ];
    for (t, paddings, padding, fuses) in cases {
        let mut graph = pad_conv(t, paddings, padding);
        let outcomes = run(&mut graph, "fuse_pad_and_conv", &["x"], &["y"]).unwrap();
        let fused = node(&graph, "y").op == "FusedPadConv2D";
        assert_eq!(fused, fuses, "{t} {paddings} {padding}: {graph:?}");
        let warned = outcomes
            .iter()
            .flat_map(|o| &o.warnings)
            .any(|w| w.contains("'y' not fused"));
        assert_eq!(warned, !fuses, "{t} {paddings} {padding}: {outcomes:?}");
    }
}

#[test]
fn backport_tensor_array_v3_rewires_the_flow_output() {
    let mut graph = text(
        r#"
node { name: "size" op: "Const" attr { key: "dtype" value { type: DT_INT32 } } attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape {} int_val: 2 } } } }
node { name: "ta" op: "TensorArrayV3" input: "size" attr { key: "dtype" value { type: DT_FLOAT } } attr { key: "identical_element_shapes" value { b: true } } }
node { name: "index" op: "Const" attr { key: "dtype" value { type: DT_INT32 } } attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape {} int_val: 0 } } } }
node { name: "read" op: "TensorArrayReadV3" input: "ta" input: "index" input: "ta:1" attr { key: "dtype" value { type: DT_FLOAT } } }
"#,
    );
    run(&mut graph, "backport_tensor_array_v3", &[], &["read"]).unwrap();
    assert_eq!(node(&graph, "ta").op, "TensorArrayV2");
    assert!(!node(&graph, "ta")
        .attr
        .contains_key("identical_element_shapes"));
    assert_eq!(node(&graph, "read").op, "TensorArrayReadV2");
    assert_eq!(
        node(&graph, "read").input,
        ["ta", "index", "ta/replacement_flow_node"]
    );
    assert_eq!(node(&graph, "ta/replacement_flow_node").op, "Const");
}

/// The flow's Const takes a free name when the graph already has `NODE/replacement_flow_node`
/// (it had been added beside it, and the graph refused as naming a node twice).
#[test]
fn backport_tensor_array_v3_names_the_flow_const_apart_from_existing_nodes() {
    let mut graph = text(
        r#"
node { name: "size" op: "Const" attr { key: "dtype" value { type: DT_INT32 } } attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape {} int_val: 3 } } } }
node { name: "ta" op: "TensorArrayV3" input: "size" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "ta/replacement_flow_node" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } } attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape {} float_val: 7 } } } }
node { name: "size_out" op: "TensorArraySizeV3" input: "ta" input: "ta:1" }
node { name: "other" op: "Identity" input: "ta/replacement_flow_node" attr { key: "T" value { type: DT_FLOAT } } }
"#,
    );
    run(
        &mut graph,
        "backport_tensor_array_v3",
        &[],
        &["size_out", "other"],
    )
    .unwrap();
    assert_eq!(
        node(&graph, "size_out").input,
        ["ta", "ta/replacement_flow_node_1"]
    );
    assert_eq!(node(&graph, "other").input, ["ta/replacement_flow_node"]);
}

#[test]
fn strip_unused_nodes_cuts_a_queue_input_pipeline_at_the_inputs() {
    let mut graph = text(
        r#"
node { name: "queue" op: "FIFOQueueV2" attr { key: "component_types" value { list { type: DT_FLOAT } } } }
node { name: "batch" op: "QueueDequeueV2" input: "queue" attr { key: "component_types" value { list { type: DT_FLOAT } } } }
node { name: "images" op: "Identity" input: "batch" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "out" op: "Relu" input: "images" attr { key: "T" value { type: DT_FLOAT } } }
"#,
    );
    run(
        &mut graph,
        r#"strip_unused_nodes(type=float, shape="1,8")"#,
        &["images"],
        &["out"],
    )
    .unwrap();
    assert_eq!(names(&graph), ["images", "out"]);
    assert_eq!(node(&graph, "images").op, "Placeholder");
}

#[test]
fn every_transform_writes_the_same_bytes_every_time() {
    let pipelines = [
        "remove_training_nodes strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) fold_constants(ignore_errors=true) fold_batch_norms fold_old_batch_norms merge_duplicate_nodes sort_by_execution_order",
        "inline_partitionedcall add_default_attributes insert_logging(op=Relu) obfuscate_names",
        "quantize_weights(minimum_size=16) round_weights remove_control_dependencies backport_concatv2",
        "fuse_resize_pad_and_conv fuse_resize_and_conv fuse_pad_and_conv flatten_atrous_conv",
    ];
    for name in common::MODELS
        .iter()
        .chain(&["function_calls", "atrous_conv", "dense_mlp"])
    {
        let (inputs, outputs) = common::io_names(name);
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
        for pipeline in pipelines {
            let encode = || {
                let mut graph = common::load(name);
                run(&mut graph, pipeline, &inputs, &outputs)
                    .unwrap_or_else(|e| panic!("{name} `{pipeline}`: {e}"));
                graphopt_core::io::encode_graph(&graph)
            };
            assert!(
                encode() == encode(),
                "{name} `{pipeline}`: output differs between runs"
            );
        }
    }
}

#[test]
fn attribute_edits_never_lose_a_value_or_a_required_attribute() {
    let graph = text(
        r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "y" op: "Relu" input: "x" attr { key: "T" value { type: DT_FLOAT } }
       attr { key: "_a" value { i: 1 } } attr { key: "_b" value { i: 2 } } }
"#,
    );
    // Both names on one node: TensorFlow keeps one value silently; graphopt refuses.
    let error = run(
        &mut graph.clone(),
        "rename_attribute(old_attribute_name=_a, new_attribute_name=_b)",
        &[],
        &["y"],
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("node 'y' already has an attribute '_b'"),
        "{error}"
    );
    let mut renamed = graph.clone();
    run(
        &mut renamed,
        "rename_attribute(old_attribute_name=_a, new_attribute_name=_c)",
        &[],
        &["y"],
    )
    .unwrap();
    let y = node(&renamed, "y");
    assert!(y.attr.contains_key("_c") && !y.attr.contains_key("_a"));
    // Relu requires T: removing it leaves a node TensorFlow cannot load.
    let error = run(
        &mut graph.clone(),
        "remove_attribute(attribute_name=T)",
        &[],
        &["y"],
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("remove_attribute") && error.contains("'T'"),
        "{error}"
    );
}

/// A declared output that rename_node renames is followed: the transforms after it keep the
/// node under its new name, and the outcome says what was renamed.
#[test]
fn declared_outputs_follow_rename_node() {
    let mut graph = text(
        r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } attr { key: "shape" value { shape { dim { size: 2 } } } } }
node { name: "a/b" op: "Relu" input: "x" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "a_b" op: "Neg" input: "x" attr { key: "T" value { type: DT_FLOAT } } }
"#,
    );
    let outcomes = run(
        &mut graph,
        "rename_node(old_node_name=a_b, new_node_name=a_b_2) strip_unused_nodes",
        &["x"],
        &["a/b", "a_b:0"],
    )
    .unwrap();
    assert_eq!(names(&graph), ["x", "a/b", "a_b_2"]);
    assert_eq!(
        outcomes[0].renames,
        [("a_b".to_string(), "a_b_2".to_string())]
    );
    assert!(outcomes[1].renames.is_empty());
    let renames = &outcomes[0].renames;
    assert_eq!(transforms::renamed_tensor("a_b:0", renames), "a_b_2:0");
    assert_eq!(transforms::renamed_tensor("a_b", renames), "a_b_2");
    assert_eq!(transforms::renamed_tensor("^a_b", renames), "^a_b_2");
    assert_eq!(transforms::renamed_tensor("a/b:1", renames), "a/b:1");
}

/// The `loc:@NODE` colocations of a node's `_class`: TensorFlow's importer refuses a graph
/// where one names a node it lacks ("expects to be colocated with unknown node"), which
/// renaming or removing the node it names used to leave (TensorFlow's own transforms too).
fn colocations(graph: &GraphDef, name: &str) -> Vec<String> {
    use graphopt_core::proto::attr_value::Value;
    match node(graph, name)
        .attr
        .get("_class")
        .and_then(|a| a.value.as_ref())
    {
        Some(Value::List(l)) => {
            l.s.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        }
        _ => Vec::new(),
    }
}

#[test]
fn colocations_follow_renamed_nodes_and_go_with_removed_ones() {
    let colocated = text(
        r#"
        node { name: "input" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
        node { name: "w" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
               attr { key: "value" value { tensor { dtype: DT_FLOAT float_val: 2 } } } }
        node { name: "wread" op: "Identity" input: "w"
               attr { key: "T" value { type: DT_FLOAT } }
               attr { key: "_class" value { list { s: "loc:@w" } } } }
        node { name: "out" op: "AddV2" input: "input" input: "wread"
               attr { key: "T" value { type: DT_FLOAT } }
               attr { key: "_class" value { list { s: "loc:@w" s: "loc:@input" } } } }
        "#,
    );
    let mut graph = colocated.clone();
    run(
        &mut graph,
        "rename_node(old_node_name=w, new_node_name=weights)",
        &["input"],
        &["out"],
    )
    .unwrap();
    assert_eq!(colocations(&graph, "wread"), ["loc:@weights"]);
    assert_eq!(colocations(&graph, "out"), ["loc:@weights", "loc:@input"]);

    let mut graph = colocated.clone();
    run(&mut graph, "obfuscate_names", &["input"], &["out"]).unwrap();
    let w = graph
        .node
        .iter()
        .find(|n| n.op == "Const")
        .map(|n| n.name.clone())
        .unwrap();
    assert_eq!(
        colocations(&graph, "out"),
        [format!("loc:@{w}"), "loc:@input".into()]
    );

    // Folding removes `w` and `wread`: `out` keeps only the colocation that still names a node.
    let mut graph = colocated;
    run(&mut graph, "fold_constants", &["input"], &["out"]).unwrap();
    assert_eq!(colocations(&graph, "out"), ["loc:@input"]);
}

/// rename_node refuses a new name TensorFlow's importer would refuse the graph for ("Node name
/// contains invalid characters", checked with TensorFlow 2.21), naming it, and leaves the graph.
#[test]
fn rename_node_refuses_names_tensorflow_refuses() {
    let original = common::load("tf1_conv_bn");
    for bad in ["a b", "_x", "-a", "a>_b", "probs:1", "^p", "é", ""] {
        let mut graph = original.clone();
        let spec = format!("rename_node(old_node_name=probs, new_node_name=\"{bad}\")");
        let error = run(&mut graph, &spec, &["input"], &["probs"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a valid node name"), "{bad:?}: {error}");
    }
    for good in ["a>b", "a-b/c.d_e", ".x", "0"] {
        let mut graph = original.clone();
        let spec = format!("rename_node(old_node_name=probs, new_node_name=\"{good}\")");
        run(&mut graph, &spec, &["input"], &["probs"]).unwrap();
        assert!(names(&graph).contains(&good));
    }
}

/// A cut input becomes a Placeholder of the type its readers get, which is not always its `T`:
/// Equal's output is bool, Shape's its `out_type`, Cast's its `DstT`. With the `T` (float),
/// TensorFlow 2.21 refused the graph ("Input 0 of node out was passed float from eq:0
/// incompatible with expected bool"); TensorFlow's own transform makes the same float.
#[test]
fn strip_unused_nodes_gives_a_cut_input_the_type_it_outputs() {
    let mut graph = text(
        r#"
        node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
        node { name: "eq" op: "Equal" input: "x" input: "x" attr { key: "T" value { type: DT_FLOAT } } }
        node { name: "shp" op: "Shape" input: "x" attr { key: "T" value { type: DT_FLOAT } }
               attr { key: "out_type" value { type: DT_INT64 } } }
        node { name: "cast" op: "Cast" input: "x" attr { key: "SrcT" value { type: DT_FLOAT } }
               attr { key: "DstT" value { type: DT_HALF } } }
        node { name: "out" op: "LogicalNot" input: "eq" }
        node { name: "out2" op: "Identity" input: "shp" attr { key: "T" value { type: DT_INT64 } } }
        node { name: "out3" op: "Identity" input: "cast" attr { key: "T" value { type: DT_HALF } } }
        "#,
    );
    let original = graph.clone();
    run(
        &mut graph,
        "strip_unused_nodes",
        &["eq", "shp", "cast"],
        &["out", "out2", "out3"],
    )
    .unwrap();
    use graphopt_core::proto::DataType;
    let expected = [
        ("eq", DataType::DtBool),
        ("shp", DataType::DtInt64),
        ("cast", DataType::DtHalf),
    ];
    for (name, dtype) in expected {
        assert_eq!(node(&graph, name).op, "Placeholder");
        assert_eq!(
            attrs::dtype(node(&graph, name), "dtype"),
            Some(dtype),
            "{name}"
        );
    }
    // A global type= (for inputs of unknown type) does not override a known one: it warns.
    let mut graph = original;
    let outcomes = run(
        &mut graph,
        "strip_unused_nodes(type=float)",
        &["eq", "shp", "cast"],
        &["out", "out2", "out3"],
    )
    .unwrap();
    for (name, dtype) in expected {
        assert_eq!(
            attrs::dtype(node(&graph, name), "dtype"),
            Some(dtype),
            "{name}"
        );
    }
    assert_eq!(outcomes[0].warnings.len(), 3, "{:?}", outcomes[0].warnings);
}

/// The README's status row "`strip_unused_nodes` (...), `remove_nodes` (...), ... | done; each
/// checked on every fixture": every transform it names is run on every fixture above.
#[test]
fn the_readmes_every_fixture_row_is_the_checked_list() {
    let rows = common::readme::table_rows("| feature | status |");
    let row = rows
        .iter()
        .find(|r| r.starts_with("| `strip_unused_nodes` "))
        .expect("README.md: the status row that starts with `strip_unused_nodes`");
    let (feature, status) = row.trim_matches('|').rsplit_once('|').expect("two cells");
    assert!(
        status.contains("each checked on every fixture"),
        "the row no longer says each is checked on every fixture: {status}"
    );
    let registry = Registry::with_builtins();
    let named: Vec<&str> = feature
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| registry.get(w).is_some())
        .collect();
    assert!(named.len() >= 10, "{named:?}");
    let checked: Vec<String> = CHECKED_ON_EVERY_FIXTURE
        .iter()
        .flat_map(|s| transforms::parse(s).unwrap())
        .map(|spec| spec.name)
        .collect();
    for name in named {
        assert!(
            checked.iter().any(|c| c == name),
            "the README says {name} is checked on every fixture; it is not in CHECKED_ON_EVERY_FIXTURE"
        );
    }
}
