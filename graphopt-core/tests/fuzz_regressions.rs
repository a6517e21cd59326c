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

// ---------------------------------------------------------------------------------------------
// Memory the budget did not see (audit of shorthand expansion, gathers and insert_logging).
// Each case checks the clean error under a low budget; the gathers also check, with a
// per-thread count of the heap, that no memory is allocated per index beyond what is charged.
// ---------------------------------------------------------------------------------------------

/// The heap this thread holds, counted by the test binary's allocator: what a kernel
/// allocates besides what it asks the budget for shows up here.
mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    pub struct Counting;

    thread_local! {
        static LIVE: Cell<usize> = const { Cell::new(0) };
        static PEAK: Cell<usize> = const { Cell::new(0) };
    }

    fn grow(bytes: usize) {
        let _ = LIVE.try_with(|live| {
            let now = live.get().saturating_add(bytes);
            live.set(now);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
        });
    }

    fn shrink(bytes: usize) {
        let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(bytes)));
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                grow(layout.size());
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { System.alloc_zeroed(layout) };
            if !p.is_null() {
                grow(layout.size());
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) };
            shrink(layout.size());
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                shrink(layout.size());
                grow(new_size);
            }
            p
        }
    }

    /// Runs `f`, and the most heap this thread held at once during it beyond what it held
    /// before.
    pub fn peak<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let base = LIVE.with(Cell::get);
        PEAK.with(|peak| peak.set(base));
        let out = f();
        (out, PEAK.with(Cell::get).saturating_sub(base))
    }
}

#[global_allocator]
static HEAP: heap::Counting = heap::Counting;

/// `count` float Consts `c0`, `c1`, ... of `elements` each in TensorFlow's shorthand (two
/// values, the last repeated: a few bytes), read with a placeholder by one IdentityN.
fn shorthand_constants(count: usize, elements: usize) -> GraphDef {
    let mut text = String::from(
        r#"node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
"#,
    );
    let mut inputs = String::from(r#"input: "x""#);
    let mut types = String::from("type: DT_FLOAT");
    for k in 0..count {
        text.push_str(&format!(
            r#"node {{ name: "c{k}" op: "Const" attr {{ key: "dtype" value {{ type: DT_FLOAT }} }}
  attr {{ key: "value" value {{ tensor {{ dtype: DT_FLOAT tensor_shape {{ dim {{ size: {elements} }} }}
    float_val: 1 float_val: 2 }} }} }} }}
"#
        ));
        inputs.push_str(&format!(r#" input: "c{k}""#));
        types.push_str(" type: DT_FLOAT");
    }
    text.push_str(&format!(
        r#"node {{ name: "out" op: "IdentityN" {inputs} attr {{ key: "T" value {{ list {{ {types} }} }} }} }}"#
    ));
    parse(&text)
}

/// `transform`, under a budget of `memory` bytes.
fn transform_within(
    graph: &GraphDef,
    transforms: &str,
    outputs: &[&str],
    memory: u64,
) -> Result<GraphDef, String> {
    let specs = transforms::parse(transforms).map_err(|e| e.to_string())?;
    let registry = transforms::Registry::with_builtins();
    let outputs: Vec<String> = outputs.iter().map(|s| s.to_string()).collect();
    let mut graph = graph.clone();
    Budget::new(memory, 1 << 27)
        .enter(|| transforms::run(&registry, &mut graph, &specs, &[], &outputs))
        .map_err(|e| e.to_string())?;
    Ok(graph)
}

/// audit: legalize(target=opencv) spelled every shorthand Const out into `tensor_content`
/// (and target=tract into explicit values) without asking the budget for what the graph then
/// keeps: nine Consts of 2^23 floats, 2 KB of text, made it peak at 1.19 GB. Each value spelled
/// out is now charged for good, and a graph whose values do not fit fails naming the Const.
#[test]
fn legalize_charges_the_values_it_spells_out() {
    // 2^18 floats (1 MiB) each. opencv decodes one (1 MiB) and encodes it twice (2 MiB), tract
    // once: one Const fits in 4 MiB, or 3, and the second does not fit beside the first one's
    // content, which the graph keeps.
    const ELEMENTS: usize = 1 << 18;
    let one = shorthand_constants(1, ELEMENTS);
    let two = shorthand_constants(2, ELEMENTS);
    for (target, memory) in [("opencv", 4 << 20), ("tract", 3 << 20)] {
        let transforms = format!("legalize(target={target})");
        let spelled = transform_within(&one, &transforms, &["out"], memory).unwrap();
        let c0 = spelled.node.iter().find(|n| n.name == "c0").unwrap();
        let value = graph::attrs::tensor(c0, "value").unwrap();
        assert_eq!(value.tensor_content.len(), ELEMENTS * 4, "{target}");
        let error = transform_within(&two, &transforms, &["out"], memory)
            .map(|_| "spelled out".to_string())
            .unwrap_or_else(|e| e);
        assert!(
            error.starts_with("transform 'legalize': node 'c1': "),
            "{target}: {error}"
        );
        assert!(error.contains("memory budget"), "{target}: {error}");
        // Enough memory for both: both spelled out.
        transform_within(&two, &transforms, &["out"], 2 * memory).unwrap();
    }
}

/// The same through the rewrite itself: the error names the Const, under any budget entered.
#[test]
fn explicit_values_are_asked_of_the_budget() {
    use graphopt_core::rewrite::legalize::constants_with_explicit_values;
    let mut graph = shorthand_constants(1, 1 << 20);
    let error = Budget::new(1 << 20, 1 << 27)
        .enter(|| constants_with_explicit_values(&mut graph))
        .unwrap_err();
    assert!(error.to_string().starts_with("node 'c0': "), "{error}");
    let count = Budget::new(32 << 20, 1 << 27)
        .enter(|| constants_with_explicit_values(&mut graph))
        .unwrap();
    assert_eq!(count, 1);
}

/// Evaluates `fetch` of `graph` under `budget`, with the most heap the evaluation held at once.
fn evaluate_measured(
    graph: &GraphDef,
    fetch: &str,
    budget: Budget,
) -> (
    Result<Vec<graphopt_core::tensor::Tensor>, graphopt_core::eval::EvalError>,
    usize,
) {
    heap::peak(|| {
        budget.enter(|| {
            graphopt_core::eval::evaluate(
                graph,
                &Default::default(),
                &[fetch.to_string()],
                graphopt_core::eval::Options::default(),
            )
        })
    })
}

/// A [2, 1] float Const `params` ([1], [2]) and `gather`, an op of `params` and an int32
/// Const `indices` of `index_dims`, all zeros (TensorFlow's shorthand: no values).
fn gather_graph(op: &str, index_dims: &[usize]) -> GraphDef {
    let dims: String = index_dims
        .iter()
        .map(|d| format!("dim {{ size: {d} }} "))
        .collect();
    let (axis, extra) = match op {
        "GatherV2" => (
            r#"node { name: "axis" op: "Const" attr { key: "dtype" value { type: DT_INT32 } }
  attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape {} int_val: 0 } } } }"#,
            r#"input: "axis" attr { key: "Taxis" value { type: DT_INT32 } }"#,
        ),
        _ => ("", ""),
    };
    parse(&format!(
        r#"
node {{ name: "params" op: "Const" attr {{ key: "dtype" value {{ type: DT_FLOAT }} }}
  attr {{ key: "value" value {{ tensor {{ dtype: DT_FLOAT tensor_shape {{ dim {{ size: 2 }} dim {{ size: 1 }} }}
    float_val: 1 float_val: 2 }} }} }} }}
node {{ name: "indices" op: "Const" attr {{ key: "dtype" value {{ type: DT_INT32 }} }}
  attr {{ key: "value" value {{ tensor {{ dtype: DT_INT32 tensor_shape {{ {dims}}} }} }} }} }}
{axis}
node {{ name: "gather" op: "{op}" input: "params" input: "indices" {extra}
  attr {{ key: "Tparams" value {{ type: DT_FLOAT }} }}
  attr {{ key: "Tindices" value {{ type: DT_INT32 }} }} }}
"#
    ))
}

/// audit: GatherV2 and GatherNd picked rows with ndarray's `select`, which makes a view of
/// the whole array per index (~100 bytes) while the budget was asked for 8-16: `verify` of a
/// GatherV2 of 12 million zeros into a [2, 1] tensor peaked at 1.34 GB. Rows are now copied
/// into one output, and every list sized by the indices is charged.
#[test]
fn gathers_allocate_nothing_per_index_beyond_what_they_charge() {
    const N: usize = 1 << 16;
    for (op, index_dims) in [("GatherV2", vec![N]), ("GatherNd", vec![N, 0])] {
        let graph = gather_graph(op, &index_dims);
        let (values, peak) = evaluate_measured(&graph, "gather", Budget::new(64 << 20, 1 << 27));
        let values = values.unwrap();
        let rows = values[0].floats().unwrap();
        // GatherV2 picks row 0 ([1]) each time; GatherNd with empty index tuples the whole
        // params ([[1], [2]]) each time.
        match op {
            "GatherV2" => {
                assert_eq!(values[0].shape(), [N, 1]);
                assert!(rows.iter().all(|&v| v == 1.0));
            }
            _ => {
                assert_eq!(values[0].shape(), [N, 2, 1]);
                assert!(rows.chunks(2).all(|r| r == [1.0, 2.0]));
            }
        }
        // The index Const (4 bytes per index), its i64 and usize lists (8 each) and the output
        // (4 or 8): well under 64 bytes an index. `select` took over 100.
        assert!(peak < 64 * N, "{op}: {peak} bytes for {N} indices");
        // Under a budget below that, a clean error naming the node.
        let (refused, _) = evaluate_measured(&graph, "gather", Budget::new(16 * N as u64, 1 << 27));
        let error = refused.unwrap_err().to_string();
        assert!(error.contains("memory budget"), "{op}: {error}");
    }
}

/// audit: insert_logging adds a Print per logged node, doubling the graph, without asking the
/// budget (357 MB on a 3.3 MB model). Every Print is now charged as it is made; a refusal
/// names the node it would log and leaves the graph as it was.
#[test]
fn insert_logging_charges_its_prints() {
    let mut text = String::from(
        r#"node { name: "n0" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
"#,
    );
    for k in 1..2000 {
        text.push_str(&format!(
            r#"node {{ name: "n{k}" op: "Relu" input: "n{}" attr {{ key: "T" value {{ type: DT_FLOAT }} }} }}
"#,
            k - 1
        ));
    }
    let graph = parse(&text);
    // 1999 Prints of about 1 KiB each do not fit in 1 MiB.
    let error = transform_within(&graph, "insert_logging", &["n1999"], 1 << 20).unwrap_err();
    assert!(
        error.starts_with("transform 'insert_logging': node 'n"),
        "{error}"
    );
    assert!(error.contains("memory budget"), "{error}");
    // Ignored, the error leaves the graph as it was.
    let kept = transform_within(
        &graph,
        "insert_logging(ignore_errors=true)",
        &["n1999"],
        1 << 20,
    )
    .unwrap();
    assert_eq!(kept, graph);
    let logged = transform_within(&graph, "insert_logging", &["n1999"], 64 << 20).unwrap();
    assert_eq!(logged.node.len(), 2 * 2000 - 1);
}

/// Audit of decoding and writing (docs/robustness.md): the size estimate that decoding asks of
/// the budget gave up on a group (wire types 3 and 4, which no TensorFlow message uses), and
/// decoding then ran without the node-count cap and the memory check, while prost skipped the
/// group: four bytes in front of 10^7 empty nodes aborted on a 2.4 GB allocation. Groups are
/// skipped by the estimate now, and bytes it cannot size are refused, never decoded unchecked.
mod decode_limits {
    use std::path::Path;

    use graphopt_core::budget::{Budget, Settings};
    use graphopt_core::io;
    use graphopt_core::proto::{GraphDef, MetaGraphDef, NodeDef, SavedModel};
    use prost::Message;

    /// Field 99 as an empty group: prost skips it.
    const GROUP: [u8; 4] = [0x9b, 0x06, 0x9c, 0x06];

    fn empty_nodes(prefix: &[u8], count: usize) -> Vec<u8> {
        let mut bytes = prefix.to_vec();
        bytes.reserve(2 * count);
        for _ in 0..count {
            bytes.extend_from_slice(&[0x0a, 0x00]);
        }
        bytes
    }

    fn read(path: &Path, budget: &Budget) -> Result<io::LoadedGraph, String> {
        budget
            .enter(|| io::read_graph(path))
            .map_err(|e| e.to_string())
    }

    /// The node-count cap and the memory check are one check of the estimate: a group in
    /// front of the nodes used to skip both. The memory check is cheaper to reach.
    #[test]
    fn a_group_does_not_turn_off_the_decode_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("group.pb");
        // 100 KB of empty nodes: some 50 MB decoded and processed, over a 16 MiB budget,
        // refused as it is without the group.
        for (name, prefix) in [("plain.pb", &[][..]), ("group.pb", &GROUP[..])] {
            let path = dir.path().join(name);
            std::fs::write(&path, empty_nodes(prefix, 50_000)).unwrap();
            let error = read(&path, &Budget::new(16 << 20, u64::MAX)).unwrap_err();
            assert!(
                error.contains(&format!("{name}: decoding 50000 nodes")),
                "{error}"
            );
        }
        // Within the budget, the graph loads with the group reported as dropped.
        let loaded = read(&path, &Budget::new(256 << 20, u64::MAX)).unwrap();
        assert_eq!(loaded.graph.node.len(), 50_000);
        assert!(
            loaded.warnings[0]
                .contains("4 byte(s) of fields unknown to graphopt (first: GraphDef field 99)"),
            "{:?}",
            loaded.warnings
        );
    }

    #[test]
    fn bytes_the_estimate_cannot_size_are_refused_with_the_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        for (bytes, expected) in [
            (
                empty_nodes(&[], 3)
                    .into_iter()
                    .chain([0x9c, 0x06])
                    .collect::<Vec<u8>>(),
                "at byte 6: an end-group tag with no group open",
            ),
            (
                empty_nodes(&[0x9b, 0x06, 0x08, 0x01, 0x0c], 3),
                "at byte 4: an end-group tag of field 1 inside the group of field 99",
            ),
            (
                empty_nodes(&[0x9b, 0x06, 0x08, 0x01], 3),
                "at byte 0: the group of field 99 never ends",
            ),
            (
                vec![0x0a, 0x00, 0x0a, 0x07, 0x0a],
                "at byte 2: the data ends",
            ),
        ] {
            let path = dir.path().join("bad.pb");
            std::fs::write(&path, &bytes).unwrap();
            let error = read(&path, &Budget::unlimited()).unwrap_err();
            assert!(error.contains("bad.pb: not a GraphDef"), "{error}");
            assert!(error.contains(expected), "{error}");
        }
    }

    /// The SavedModel reader decodes `saved_model.pb` (and every function of its library) the
    /// same way.
    #[test]
    fn a_group_does_not_turn_off_the_saved_model_checks() {
        let model = SavedModel {
            meta_graphs: vec![MetaGraphDef {
                graph_def: Some(GraphDef {
                    node: vec![NodeDef::default(); 50_000],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = GROUP.to_vec();
        bytes.extend(model.encode_to_vec());
        std::fs::write(dir.path().join("saved_model.pb"), &bytes).unwrap();
        let budget = Budget::new(16 << 20, u64::MAX);
        let error = budget
            .enter(|| graphopt_core::freeze::saved_model::read_saved_model(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("saved_model.pb: decoding 50000 nodes"),
            "{error}"
        );
        let error = budget
            .enter(|| graphopt_core::freeze::freeze_saved_model(dir.path(), &Default::default()))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("saved_model.pb: decoding 50000 nodes"),
            "{error}"
        );
        // A stray end-group tag: refused, naming the file and where.
        bytes.extend([0xa4, 0x06]);
        std::fs::write(dir.path().join("saved_model.pb"), &bytes).unwrap();
        let error = Budget::unlimited()
            .enter(|| graphopt_core::freeze::saved_model::read_saved_model(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("saved_model.pb: not a SavedModel"),
            "{error}"
        );
        assert!(
            error.contains(&format!("at byte {}: an end-group tag", bytes.len() - 2)),
            "{error}"
        );
    }

    /// A sparse file's length was neither capped nor charged (the budget scales with the
    /// space a file occupies on disk): 3.5 GB of holes took 31 s and 3.5 GB resident before a
    /// refusal. Its length is asked of the budget before it is mapped or read now.
    #[test]
    fn a_sparse_file_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse.pb");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(3_500 << 20).unwrap();
        drop(file);
        let budget = Settings::default().budget_for(io::input_size(&path));
        let started = std::time::Instant::now();
        let error = read(&path, &budget).unwrap_err();
        assert!(
            error.contains("sparse.pb: the file is 3.4 GiB long"),
            "{error}"
        );
        assert!(error.contains("over the memory budget"), "{error}");
        if io::input_size(&path) < 1 << 20 {
            assert!(error.contains("(a sparse file?)"), "{error}");
        }
        // No budget entered: read_graph enters the default one for the file.
        let error = io::read_graph(&path).unwrap_err().to_string();
        assert!(
            error.contains("sparse.pb: the file is 3.4 GiB long"),
            "{error}"
        );
        // The plain readers charge the length too.
        for error in [
            budget.enter(|| io::map_regular(&path)).unwrap_err(),
            budget.enter(|| io::read_regular(&path)).unwrap_err(),
        ] {
            assert!(error.to_string().contains("3.4 GiB long"), "{error}");
        }
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    }

    /// Text output was built whole, uncharged: escaped `tensor_content` takes up to four
    /// characters a byte, and the writer first copies the graph into a dynamic message (a
    /// value of some 50 bytes per element). It is sized and charged before it is built now.
    #[test]
    fn text_output_is_charged_before_it_is_built() {
        let tensor = graphopt_core::proto::TensorProto {
            dtype: graphopt_core::proto::DataType::DtFloat as i32,
            tensor_shape: Some(graphopt_core::proto::TensorShapeProto {
                dim: vec![graphopt_core::proto::tensor_shape_proto::Dim {
                    size: 1 << 18,
                    name: String::new(),
                }],
                unknown_rank: false,
            }),
            tensor_content: vec![0xff; 1 << 20].into(),
            ..Default::default()
        };
        let graph = GraphDef {
            node: vec![NodeDef {
                name: "w".into(),
                op: "Const".into(),
                attr: [(
                    "value".to_string(),
                    graphopt_core::proto::AttrValue {
                        value: Some(graphopt_core::proto::attr_value::Value::Tensor(Box::new(
                            tensor,
                        ))),
                    },
                )]
                .into_iter()
                .collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.pbtxt");
        // 4 MiB of text from 1 MiB of weights: over a budget of 4 MiB.
        let small = Budget::new(4 << 20, u64::MAX);
        let error = small
            .enter(|| io::graph_to_text(&graph))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("GraphDef as text: the text would take up to 4.0 MiB"),
            "{error}"
        );
        let error = small
            .enter(|| io::write_graph(&out, &graph, io::GraphFormat::Text))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("out.pbtxt: cannot write the graph as text"),
            "{error}"
        );
        assert!(!out.exists());
        // Within the budget it is written, and what it took was counted.
        let enough = Budget::new(64 << 20, u64::MAX);
        let text = enough.enter(|| io::graph_to_text(&graph)).unwrap();
        assert!(text.len() > 4 << 20);
        assert!(
            enough.peak() >= 2 * text.len() as u64,
            "{} for {}",
            enough.peak(),
            text.len()
        );
        enough
            .enter(|| io::write_graph(&out, &graph, io::GraphFormat::Text))
            .unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
    }
}

/// pipeline (2026-12-04 run): a constant cond whose dead branch feeds an output. The dead
/// nodes were removed but the protected output kept, reading a node that no longer existed
/// (an invalid graph after remove_training_nodes). Such a cond now stays as it is.
#[test]
fn a_constant_cond_whose_dead_branch_feeds_an_output_stays() {
    let graph = parse(
        r#"
node { name: "p" op: "Const" attr { key: "dtype" value { type: DT_BOOL } }
  attr { key: "value" value { tensor { dtype: DT_BOOL tensor_shape {} bool_val: false } } } }
node { name: "x" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape {} float_val: 2 } } } }
node { name: "s" op: "Switch" input: "x" input: "p" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "dead" op: "Neg" input: "s:1" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "out" op: "Neg" input: "dead" attr { key: "T" value { type: DT_FLOAT } } }
"#,
    );
    let after = transform(&graph, "remove_training_nodes", &["out"]).unwrap();
    graph::validate(&after).unwrap();
    assert!(after.node.iter().any(|n| n.name == "dead"));
}

/// Decodes `text` as a graph file under an unlimited budget: the result, the most heap the
/// thread held at once and the most the budget was charged.
fn decode_text_measured(text: &str) -> (Result<GraphDef, String>, usize, u64) {
    let budget = Budget::new(u64::MAX / 4, u64::MAX / 4);
    let data = bytes::Bytes::from(text.as_bytes().to_vec());
    let (result, peak) = heap::peak(|| {
        budget.enter(|| graphopt_core::io::decode_graph(data, std::path::Path::new("t.pbtxt")))
    });
    let result = result.map(|(graph, _)| graph).map_err(|e| e.to_string());
    (result, peak, budget.peak())
}

/// Text format is charged what parsing it takes, whatever its shape: list syntax of empty
/// messages, one-field messages, numbers, strings, maps. Parsing had been charged 24 bytes
/// per byte, and the graph only checked once decoded: `args: [{i:0},...]` (a FullTypeDef's
/// arguments) took 135 bytes per byte, `node: [{},...]` 118.
#[test]
fn text_parsing_is_charged_what_it_takes() {
    let n = 100_000;
    let list = |item: &str| vec![item; n].join(",");
    let cases = [
        ("empty nodes", "node{}".repeat(n)),
        ("a list of empty nodes", format!("node:[{}]", list("{}"))),
        (
            "a list of floats",
            format!(
                "node{{attr{{key:'v' value{{tensor{{float_val:[{}]}}}}}}}}",
                list("0")
            ),
        ),
        (
            "ints",
            format!(
                "node{{attr{{key:'v' value{{tensor{{{}}}}}}}}}",
                "int_val:0 ".repeat(n)
            ),
        ),
        (
            "one-field messages",
            format!("node{{experimental_type{{args:[{}]}}}}", list("{i:0}")),
        ),
        (
            "a list of strings",
            format!(
                "node{{attr{{key:'v' value{{list{{s:[{}]}}}}}}}}",
                list("'a'")
            ),
        ),
        (
            "attributes",
            format!(
                "node{{{}}}",
                (0..n / 4)
                    .map(|i| format!("attr{{key:'{i}'value{{}}}}"))
                    .collect::<String>()
            ),
        ),
        (
            "dims",
            format!(
                "node{{attr{{key:'v' value{{shape{{dim:[{}]}}}}}}}}",
                list("{size:1}")
            ),
        ),
        ("inputs", format!("node{{input:[{}]}}", list("'x'"))),
    ];
    for (what, text) in cases {
        let (result, peak, charged) = decode_text_measured(&text);
        assert!(result.is_ok(), "{what}: {result:?}");
        assert!(
            peak as u64 <= charged,
            "{what}: {peak} bytes of heap ({:.1} per byte of text), {charged} charged",
            peak as f64 / text.len() as f64
        );
    }
}

/// Messages nested to the limit parse on a test thread's 2 MiB stack in the unoptimized
/// build (prost-reflect's parser takes about 25 KiB a level there: 90 levels overflowed),
/// and one level more is refused before parsing.
#[test]
fn text_nested_to_the_limit_parses_on_a_small_stack() {
    let nested = |levels: usize| {
        format!(
            "node{{name:'a' op:'NoOp' experimental_type{{{}{}}}}}",
            "args{".repeat(levels),
            "}".repeat(levels)
        )
    };
    let deepest = text_format::MAX_NESTING - 2;
    let (result, _, _) = decode_text_measured(&nested(deepest));
    let graph = result.unwrap();
    let (again, _, _) = decode_text_measured(&graphopt_core::io::graph_to_text(&graph).unwrap());
    assert_eq!(again.unwrap(), graph);
    let (result, _, _) = decode_text_measured(&nested(deepest + 1));
    let error = result.unwrap_err();
    assert!(error.contains("nested more than 100 deep"), "{error}");
}

/// `summary::report_memory` bounds what a summary and its reports (text, JSON, the structure
/// listing) hold at once, for names of control characters (escaped at up to six times their
/// size) and shapes of many dimensions. Summaries were built uncharged: a 50 MB graph of
/// such names took `summarize --print_structure` to 894 MB, `--json` to 1.3 GB.
#[test]
fn summaries_are_bounded_by_their_report_memory() {
    use graphopt_core::proto::{attr_value, AttrValue, NodeDef, TensorShapeProto};
    use graphopt_core::summary;
    let shape = |dims: usize| AttrValue {
        value: Some(attr_value::Value::Shape(TensorShapeProto {
            dim: vec![Default::default(); dims],
            ..Default::default()
        })),
    };
    let graphs = [
        // Long names of control characters, nothing consumed: all outputs.
        GraphDef {
            node: (0..200)
                .map(|i| NodeDef {
                    name: format!("{}{i}", "\u{1}".repeat(5000)),
                    op: "NoOp".into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        },
        // A chain reading names of line separators.
        GraphDef {
            node: (0..200)
                .map(|i| NodeDef {
                    name: format!("{}{i}", "\u{2028}".repeat(2000)),
                    op: "Identity".into(),
                    input: vec![format!("{}{}", "\u{2028}".repeat(2000), i + 1); 3],
                    device: "\u{7}".repeat(100),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        },
        // A placeholder of 400000 dimensions.
        GraphDef {
            node: vec![NodeDef {
                name: "x".into(),
                op: "Placeholder".into(),
                attr: [("shape".to_string(), shape(400_000))]
                    .into_iter()
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        },
    ];
    for (i, graph) in graphs.iter().enumerate() {
        for structure in [false, true] {
            let bound = summary::report_memory(graph, structure);
            let ((), peak) = heap::peak(|| {
                let report = summary::summarize(graph, Some(1));
                let text = report.to_text("g.pb");
                let listing = structure.then(|| summary::structure(graph));
                let json = serde_json::to_string_pretty(&report).unwrap();
                drop((report, text, listing, json));
            });
            assert!(
                peak as u64 <= bound,
                "graph {i}, structure {structure}: {peak} bytes of heap, bound {bound}"
            );
        }
    }
}
