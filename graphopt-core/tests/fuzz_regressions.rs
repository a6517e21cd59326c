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
