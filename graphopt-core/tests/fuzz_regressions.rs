//! What the `cargo fuzz` targets in `fuzz/` found, one case each, as small as the minimized
//! input allowed: each must end in an `Err` or an `Ok`, never a panic, an abort or a runaway
//! allocation. docs/robustness.md lists the findings and their fixes.

use graphopt_core::budget::Budget;
use graphopt_core::proto::GraphDef;
use graphopt_core::{graph, text_format, transforms};

/// The budget the fuzz targets run under.
fn budget() -> Budget {
    Budget::new(512 << 20, 1 << 27)
}

fn parse(text: &str) -> GraphDef {
    let graph: GraphDef = text_format::parse(text).expect("the case parses");
    graph::validate(&graph).expect("the case is a valid graph");
    graph
}

/// Runs `transforms` on `graph` as `graphopt transform` does, under the fuzz targets' budget.
fn transform(graph: &GraphDef, transforms: &str, outputs: &[&str]) -> Result<GraphDef, String> {
    let specs = transforms::parse(transforms).map_err(|e| e.to_string())?;
    let registry = transforms::Registry::with_builtins();
    let outputs: Vec<String> = outputs.iter().map(|s| s.to_string()).collect();
    let mut graph = graph.clone();
    budget()
        .enter(|| transforms::run(&registry, &mut graph, &specs, &[], &outputs))
        .map_err(|e| e.to_string())?;
    Ok(graph)
}

const HUGE_SPLIT: &str = r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "axis" op: "Const"
  attr { key: "dtype" value { type: DT_INT32 } }
  attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape {} int_val: 0 } } } }
node { name: "split" op: "Split" input: "axis" input: "x"
  attr { key: "T" value { type: DT_FLOAT } }
  attr { key: "num_split" value { i: 1099511627776 } } }
"#;

/// pipeline: `add_shapes` wrote one `_output_shapes` entry per output, and a Split's output
/// count is its `num_split` attribute: 2^40 entries were allocated before anything was asked
/// (an abort on a 35 TB allocation). The list is now asked of the budget.
#[test]
fn add_shapes_of_a_split_into_2_40_parts_is_refused() {
    let graph = parse(HUGE_SPLIT);
    for transforms in ["add_shapes", "legalize(target=tvm)"] {
        let error = transform(&graph, transforms, &["split"]).unwrap_err();
        assert!(error.contains("'split'"), "{transforms}: {error}");
    }
    // A Split into a few parts still gets its shapes.
    let few = HUGE_SPLIT.replace("1099511627776", "2");
    let shaped = transform(&parse(&few), "add_shapes", &["split"]).unwrap();
    assert!(shaped.node[2].attr.contains_key("_output_shapes"));
}

/// pipeline: fold_constants kept a folded Const that other constants feed only through a
/// control input with that input, and dropped the constant it named: the graph it left failed
/// validation (`has input '^a', but there is no node 'a'`). A folded Const keeps no control
/// inputs now.
#[test]
fn fold_constants_leaves_no_control_input_to_a_dropped_constant() {
    let graph = parse(
        r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "a" op: "Const"
  attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape {} float_val: 1 } } } }
node { name: "b" op: "Const" input: "^a"
  attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape {} float_val: 2 } } } }
node { name: "sum" op: "AddV2" input: "x" input: "b" attr { key: "T" value { type: DT_FLOAT } } }
"#,
    );
    for transforms in ["fold_constants", "@deploy"] {
        let folded = transform(&graph, transforms, &["sum"]).unwrap();
        graph::validate(&folded).unwrap();
        let b = folded.node.iter().find(|n| n.name == "b").unwrap();
        assert!(b.input.is_empty(), "{transforms}: {:?}", b.input);
    }
}

/// pipeline: a second insert_logging named its Prints like the first one's (`x__print__`), two
/// nodes of one name. Names already taken get a suffix.
#[test]
fn insert_logging_twice_gives_every_print_its_own_name() {
    let graph = parse(
        r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "y" op: "Relu" input: "x" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "z" op: "Relu" input: "y" attr { key: "T" value { type: DT_FLOAT } } }
"#,
    );
    let logged = transform(&graph, "insert_logging insert_logging", &["z"]).unwrap();
    graph::validate(&logged).unwrap();
    // Two Prints from the first run (after x and y), four from the second (after x, y and
    // their Prints, which are read now).
    let prints = logged.node.iter().filter(|n| n.op == "Print").count();
    assert_eq!(prints, 6);
}

/// pipeline: convert_to_nchw gave the Transpose that reads a sunk op's output back the op's
/// `T`, which a Cast does not have (and a comparison's output is bool whatever its `T`): the
/// graph failed validation. The Transpose now takes the output's type from the op's OpDef.
#[test]
fn convert_to_nchw_types_the_transpose_after_a_cast() {
    let graph = parse(
        r#"
node { name: "x" op: "Placeholder"
  attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "shape" value { shape { dim { size: 1 } dim { size: 3 } dim { size: 3 } dim { size: 2 } } } } }
node { name: "w" op: "Const"
  attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "value" value { tensor { dtype: DT_FLOAT
    tensor_shape { dim { size: 1 } dim { size: 1 } dim { size: 2 } dim { size: 2 } }
    float_val: 1 float_val: 2 float_val: 3 float_val: 4 } } } }
node { name: "conv" op: "Conv2D" input: "x" input: "w"
  attr { key: "T" value { type: DT_FLOAT } }
  attr { key: "strides" value { list { i: 1 i: 1 i: 1 i: 1 } } }
  attr { key: "padding" value { s: "VALID" } } }
node { name: "cast" op: "Cast" input: "conv"
  attr { key: "SrcT" value { type: DT_FLOAT } }
  attr { key: "DstT" value { type: DT_INT32 } } }
node { name: "out" op: "Identity" input: "cast" attr { key: "T" value { type: DT_INT32 } } }
"#,
    );
    let converted = transform(&graph, "convert_to_nchw", &["out"]).unwrap();
    graph::validate(&converted).unwrap();
    assert!(converted.node.iter().any(|n| n.op == "Transpose"));
    let options = graphopt_core::verify::VerifyOptions {
        outputs: vec!["out".into()],
        ..Default::default()
    };
    let report = graphopt_core::verify::compare(&graph, &converted, &options).unwrap();
    assert_eq!(report.worst(), 0.0);
}

/// eval: Pack checked its axis against the first input's rank and then inserted the new axis
/// into every input's dims: an input of lower rank panicked (`insertion index (is 1) should be
/// <= len (is 0)`), from `verify` and from constant folding alike. Inputs of different shapes
/// are an error now, as in TensorFlow.
#[test]
fn pack_of_inputs_of_different_ranks_is_an_error() {
    let graph = parse(
        r#"
node { name: "a" op: "Const"
  attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 2 } }
    float_val: 1 float_val: 2 } } } }
node { name: "b" op: "Const"
  attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape {} float_val: 3 } } } }
node { name: "pack" op: "Pack" input: "a" input: "b"
  attr { key: "T" value { type: DT_FLOAT } }
  attr { key: "N" value { i: 2 } }
  attr { key: "axis" value { i: 1 } } }
"#,
    );
    let fetches = ["pack".to_string()];
    let result = budget().enter(|| {
        graphopt_core::eval::evaluate(
            &graph,
            &Default::default(),
            &fetches,
            graphopt_core::eval::Options::default(),
        )
    });
    let error = result.unwrap_err().to_string();
    assert!(error.contains("one shape"), "{error}");
    // Folding leaves the node alone.
    let folded = transform(&graph, "fold_constants", &["pack"]).unwrap();
    assert_eq!(
        folded.node.iter().find(|n| n.name == "pack").unwrap().op,
        "Pack"
    );
}

/// Folds `graph` as fold_constants does (the rewrite layer: no validation around it), with
/// `outputs` protected.
fn fold_directly(graph: &GraphDef, outputs: &[&str]) -> GraphDef {
    use graphopt_core::rewrite::constants::{fold, FoldOptions};
    let options = FoldOptions {
        limits: graphopt_core::tensor::Limits {
            max_bytes: 10 << 20,
        },
        exclude_ops: Default::default(),
        exclude_nodes: Default::default(),
        inputs: Default::default(),
        protected: outputs
            .iter()
            .map(|s| graph::node_name(s).to_string())
            .collect(),
        outputs: outputs.iter().map(|s| s.to_string()).collect(),
    };
    let mut folded = graph.clone();
    budget().enter(|| fold(&mut folded, &options)).unwrap();
    folded
}

fn op_of<'g>(graph: &'g GraphDef, name: &str) -> &'g str {
    &graph.node.iter().find(|n| n.name == name).unwrap().op
}

/// Verifies that `after` computes `outputs` as `before` does.
fn same_outputs(before: &GraphDef, after: &GraphDef, outputs: &[&str]) {
    let options = graphopt_core::verify::VerifyOptions {
        outputs: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let report = graphopt_core::verify::compare(before, after, &options).unwrap();
    assert_eq!(report.worst(), 0.0);
}

const UNPACK: &str = r#"
node { name: "x" op: "Placeholder"
  attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "shape" value { shape { dim { size: 1 } } } } }
node { name: "c" op: "Const"
  attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 1 } dim { size: 1 } }
    float_val: 5 } } } }
node { name: "u" op: "Unpack" input: "c"
  attr { key: "T" value { type: DT_FLOAT } }
  attr { key: "num" value { i: 2 } }
  attr { key: "axis" value { i: 0 } } }
node { name: "out" op: "AddV2" input: "x" input: "u:1" attr { key: "T" value { type: DT_FLOAT } } }
"#;

/// pipeline (`fold_constants fold_constants`): the Unpack kernel made one output per entry of
/// the unpacked dimension whatever the node's `num`; an Unpack with `num: 2` of a dimension of
/// 1 folded into one value, and the folding, finding no value for the `u:1` its reader uses,
/// dropped the node and left the reader dangling (`has input 'u:1', but there is no node
/// 'u'`). TensorFlow fails such an Unpack: the kernel does now, so folding leaves it alone; a
/// kernel whose outputs disagree with the node's count is an error in general, and folding
/// never folds a node short of a value for an output that is read, nor one fetched through an
/// output other than 0.
#[test]
fn fold_constants_leaves_an_unpack_whose_num_is_not_its_dimension() {
    let graph = parse(UNPACK);
    for transforms in ["fold_constants fold_constants", "@deploy"] {
        let folded = transform(&graph, transforms, &["out"]).unwrap();
        graph::validate(&folded).unwrap();
        assert_eq!(op_of(&folded, "u"), "Unpack", "{transforms}");
    }
    // The evaluator fails on it as TensorFlow does.
    let error = budget()
        .enter(|| {
            graphopt_core::eval::evaluate(
                &graph,
                &Default::default(),
                &["u".to_string()],
                graphopt_core::eval::Options::default(),
            )
        })
        .unwrap_err()
        .to_string();
    assert!(error.contains("must equal num"), "{error}");

    // With a dimension of 2, output 1 folds into a Const of its own, read in its place.
    let two = UNPACK.replace(
        "dim { size: 1 } dim { size: 1 } }\n    float_val: 5",
        "dim { size: 2 } dim { size: 1 } }\n    float_val: 5 float_val: 6",
    );
    let graph = parse(&two);
    let folded = transform(&graph, "fold_constants", &["out"]).unwrap();
    graph::validate(&folded).unwrap();
    assert!(folded.node.iter().all(|n| n.op != "Unpack"));
    let out = folded.node.iter().find(|n| n.name == "out").unwrap();
    assert_eq!(out.input, ["x", "u/folded_1"]);
    same_outputs(&graph, &folded, &["out"]);
    // Fetched as `u:1`, it stays: a Const named `u` would have no output 1.
    for transforms in ["fold_constants", "@deploy"] {
        let folded = transform(&graph, transforms, &["u:1"]).unwrap();
        assert_eq!(op_of(&folded, "u"), "Unpack", "{transforms}");
        same_outputs(&graph, &folded, &["u:1"]);
    }
}

const PARTITION: &str = r#"
node { name: "x" op: "Placeholder"
  attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "shape" value { shape { dim { size: 1 } } } } }
node { name: "data" op: "Const"
  attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 2 } }
    float_val: 1 float_val: 2 } } } }
node { name: "which" op: "Const"
  attr { key: "dtype" value { type: DT_INT32 } }
  attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape { dim { size: 2 } }
    int_val: 1 int_val: 0 } } } }
node { name: "p" op: "DynamicPartition" input: "data" input: "which"
  attr { key: "T" value { type: DT_FLOAT } }
  attr { key: "num_partitions" value { i: 2 } } }
node { name: "a" op: "Sub" input: "p:1" input: "x" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "out" op: "AddV2" input: "a" input: "p" attr { key: "T" value { type: DT_FLOAT } } }
"#;

/// pipeline (`@deploy(ignore_errors=true)`): a DynamicPartition with `num_partitions: 1` read
/// at `p:1`. TensorFlow rejects that graph, but graph::validate did not know DynamicPartition's
/// output count (not in graphopt's op table, no bundled OpDef) and let it through; folding then
/// made `p` a Const and left `p:1` reading an output a Const does not have. Validation knows
/// the op now (and takes the output count of every op with a bundled OpDef from it); folding
/// leaves a node whose readers use outputs it has no value for as it is.
#[test]
fn a_dynamic_partition_read_past_its_partitions_is_invalid_and_not_folded() {
    let one = PARTITION.replace(
        "i: 2 } } }\nnode { name: \"a\"",
        "i: 1 } } }\nnode { name: \"a\"",
    );
    let graph: GraphDef = text_format::parse(&one).unwrap();
    let error = graph::validate(&graph).unwrap_err().to_string();
    assert!(
        error.contains("'p:1', but 'p' (DynamicPartition) has only 1 output(s)"),
        "{error}"
    );
    // Folding makes it no worse: `p` stays, the graph fails validation as it did.
    let folded = fold_directly(&graph, &["out"]);
    assert_eq!(op_of(&folded, "p"), "DynamicPartition");
    assert_eq!(graph::validate(&folded).unwrap_err().to_string(), error);

    // With two partitions, both outputs fold, each into a Const, `p:1` read as `p/folded_1`.
    let graph = parse(PARTITION);
    for transforms in ["fold_constants", "@deploy"] {
        let folded = transform(&graph, transforms, &["out"]).unwrap();
        graph::validate(&folded).unwrap();
        assert!(folded.node.iter().all(|n| n.op != "DynamicPartition"));
        assert!(folded.node.iter().any(|n| n.name == "p/folded_1"));
        same_outputs(&graph, &folded, &["out"]);
    }
}

/// pipeline (`convert_to_nchw convert_to_nchw convert_to_nchw fold_constants`, the layout
/// passes changing nothing): the same DynamicPartition of one partition read at `:1`, here
/// by a BatchToSpaceND whose other inputs read output 0, and DynamicPartitions of zero
/// partitions read at `:1`. Validation rejects the graph up front, naming the first read past
/// the outputs; folding leaves every DynamicPartition as it is.
#[test]
fn dynamic_partitions_read_past_their_outputs_are_rejected_before_any_transform() {
    let graph: GraphDef = text_format::parse(
        r#"
node { name: "n1" op: "Const"
  attr { key: "dtype" value { type: DT_INT32 } }
  attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape { dim { size: 1 } } int_val: -1 } } } }
node { name: "n2" op: "Const"
  attr { key: "dtype" value { type: DT_INT32 } }
  attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape { dim { } dim { } } } } } }
node { name: "n4" op: "DynamicPartition" input: "n2" input: "n2"
  attr { key: "T" value { type: DT_INT32 } }
  attr { key: "num_partitions" value { i: 1 } } }
node { name: "n5" op: "BatchToSpaceND" input: "n4" input: "n4" input: "n4"
  attr { key: "T" value { type: DT_INT32 } }
  attr { key: "Tblock_shape" value { type: DT_INT32 } }
  attr { key: "Tcrops" value { type: DT_INT32 } } }
node { name: "n6" op: "BatchToSpaceND" input: "n4:1" input: "n4:1" input: "n5"
  attr { key: "T" value { type: DT_INT32 } }
  attr { key: "Tblock_shape" value { type: DT_INT32 } }
  attr { key: "Tcrops" value { type: DT_INT32 } } }
node { name: "n8" op: "Const"
  attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "value" value { tensor { dtype: DT_FLOAT
    tensor_shape { dim { } dim { } dim { } dim { } } } } } }
node { name: "n9" op: "DynamicPartition" input: "n8" input: "n1"
  attr { key: "T" value { type: DT_FLOAT } }
  attr { key: "num_partitions" value { i: 0 } } }
node { name: "n10" op: "DynamicPartition" input: "n9:1" input: "n1"
  attr { key: "T" value { type: DT_FLOAT } }
  attr { key: "num_partitions" value { i: 0 } } }
"#,
    )
    .unwrap();
    let error = graph::validate(&graph).unwrap_err().to_string();
    assert!(
        error.contains("'n4:1', but 'n4' (DynamicPartition) has only 1 output(s)"),
        "{error}"
    );
    let folded = fold_directly(&graph, &["n10:1"]);
    for name in ["n4", "n9", "n10"] {
        assert_eq!(op_of(&folded, name), "DynamicPartition", "{name}");
    }
    assert_eq!(graph::validate(&folded).unwrap_err().to_string(), error);
}

/// fuzz/eval: FloorDiv of i32::MIN by -1 tested its remainder with `%`, which panics on that
/// pair in every profile. It now gives what graphopt's Div gives for it (the quotient wraps
/// to i32::MIN; FloorMod and TruncateMod give 0), and still rounds toward -inf elsewhere.
#[test]
fn floor_division_of_the_minimum_by_minus_one_wraps() {
    let graph = parse(
        r#"
node { name: "x" op: "Const"
  attr { key: "dtype" value { type: DT_INT32 } }
  attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape { dim { size: 3 } }
    int_val: -2147483648 int_val: -7 int_val: 7 } } } }
node { name: "y" op: "Const"
  attr { key: "dtype" value { type: DT_INT32 } }
  attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape { dim { size: 3 } }
    int_val: -1 int_val: 2 int_val: -2 } } } }
node { name: "div" op: "FloorDiv" input: "x" input: "y" attr { key: "T" value { type: DT_INT32 } } }
node { name: "mod" op: "FloorMod" input: "x" input: "y" attr { key: "T" value { type: DT_INT32 } } }
node { name: "tmod" op: "TruncateMod" input: "x" input: "y" attr { key: "T" value { type: DT_INT32 } } }
"#,
    );
    let fetches = ["div".to_string(), "mod".to_string(), "tmod".to_string()];
    let values = budget()
        .enter(|| {
            graphopt_core::eval::evaluate(
                &graph,
                &Default::default(),
                &fetches,
                graphopt_core::eval::Options::default(),
            )
        })
        .unwrap();
    let ints = |t: &graphopt_core::tensor::Tensor| match t.data() {
        graphopt_core::tensor::Data::I32(a) => a.iter().copied().collect::<Vec<i32>>(),
        other => panic!("expected int32, got {other:?}"),
    };
    assert_eq!(ints(&values[0]), [i32::MIN, -4, -4]);
    assert_eq!(ints(&values[1]), [0, 1, -1]);
    assert_eq!(ints(&values[2]), [0, -1, 1]);
    // Folding gives the same values instead of a panic.
    transform(&graph, "fold_constants", &["div", "mod", "tmod"]).unwrap();
}

/// A call whose function body holds a nested call without its `f` attribute. The graph only
/// checks its own nodes' attributes, so it was valid; inlining copied the nested call into it,
/// and `inline_partitionedcall` left an invalid graph. Inlining now refuses such a body,
/// naming the function, the node and the attribute.
const CALL_OF_A_BODY_MISSING_AN_ATTRIBUTE: &str = r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "call" op: "StatefulPartitionedCall" input: "x"
  attr { key: "Tin" value { list { type: DT_FLOAT } } }
  attr { key: "Tout" value { list { type: DT_FLOAT } } }
  attr { key: "f" value { func { name: "outer" } } } }
library {
  function {
    signature {
      name: "outer"
      input_arg { name: "x0" type: DT_FLOAT }
      output_arg { name: "y" type: DT_FLOAT }
    }
    node_def { name: "nested" op: "StatefulPartitionedCall" input: "x0"
      attr { key: "Tin" value { list { type: DT_FLOAT } } }
      attr { key: "Tout" value { list { type: DT_FLOAT } } } }
    ret { key: "y" value: "x0" }
  }
}
"#;

#[test]
fn inlining_refuses_a_body_node_missing_a_required_attribute() {
    let graph = parse(CALL_OF_A_BODY_MISSING_AN_ATTRIBUTE);
    let error = transform(&graph, "inline_partitionedcall", &["call"]).unwrap_err();
    assert!(
        error.contains("node 'nested' (StatefulPartitionedCall) of function 'outer' is missing required attribute 'f'"),
        "{error}"
    );
    assert!(!error.contains("left an invalid graph"), "{error}");
}

/// The same for the two other checks the graph makes of its own nodes and not of the bodies:
/// a body reading an output its producer does not have, and a data input after a control one.
#[test]
fn inlining_refuses_body_references_the_graph_would_reject() {
    let reads_a_missing_output = CALL_OF_A_BODY_MISSING_AN_ATTRIBUTE.replace(
        r#"ret { key: "y" value: "x0" }"#,
        r#"node_def { name: "negated" op: "Neg" input: "x0" attr { key: "T" value { type: DT_FLOAT } } }
    ret { key: "y" value: "negated:3" }"#,
    );
    let data_after_control = CALL_OF_A_BODY_MISSING_AN_ATTRIBUTE.replace(
        r#"ret { key: "y" value: "x0" }"#,
        r#"node_def { name: "added" op: "AddV2" input: "^x0" input: "x0" input: "x0" attr { key: "T" value { type: DT_FLOAT } } }
    ret { key: "y" value: "added" }"#,
    );
    for (case, expected) in [
        (
            &reads_a_missing_output,
            "'negated:3' in 'outer' names no output",
        ),
        (
            &data_after_control,
            "node 'added' of function 'outer' lists a data input after a control input",
        ),
    ] {
        // Without the nested call that lacks `f`, so that these checks are the ones that fail.
        let case = case.replace(
            r#"    node_def { name: "nested" op: "StatefulPartitionedCall" input: "x0"
      attr { key: "Tin" value { list { type: DT_FLOAT } } }
      attr { key: "Tout" value { list { type: DT_FLOAT } } } }
"#,
            "",
        );
        assert!(!case.contains("nested"), "the nested call was removed");
        let error = transform(&parse(&case), "inline_partitionedcall", &["call"]).unwrap_err();
        assert!(error.contains(expected), "{error}");
    }
}
