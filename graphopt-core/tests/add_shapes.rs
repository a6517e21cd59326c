//! `add_shapes` against TensorFlow's own shape inference: on every fixture, the `_output_shapes`
//! graphopt writes are compared, node by node and output by output, with what TensorFlow's
//! `as_graph_def(add_shapes=True)` writes (tests/fixtures/expected/output_shapes.json, from
//! tests/fixtures/record_output_shapes.py).
//!
//! Where TensorFlow knows a rank or a dimension, graphopt must know the same one; it may know
//! less only on the nodes counted in [`EXPECTED`], each for a reason listed in [`KNOWN_GAPS`],
//! and never something different. Graphopt knowing more than TensorFlow is allowed (its rules
//! may be sharper than TensorFlow's), but counted too, so that it is noticed. Both counts are
//! asserted exactly per fixture: an improvement fails here as a regression does, and the table
//! is updated with it.

mod common;

use std::collections::BTreeMap;

use graphopt_core::proto::{attr_value, GraphDef, NodeDef};

/// Per fixture: how many nodes graphopt knows less about than TensorFlow (some rank or dim
/// TensorFlow knows is unknown to graphopt), and how many it knows more about.
///
/// Where graphopt knows more (each checked by hand to be what the graph computes):
/// - `efficientnet_block`, 12: the squeeze-excite Dense layers' Tensordot. Its shape arithmetic
///   (`Shape`, `GatherV2` of the free and contracted axes, `Prod`, `Pack`, `ConcatV2`) is
///   followed element by element, so the Reshapes know [-1, 64] and [-1, 1, 1, 4] where
///   TensorFlow, which does not read a `GatherV2` of a partly known `Shape`, has [-1, -1] and
///   [-1, -1, -1, 4]; the nodes after them follow.
/// - `while_rnn`, 6: the loop's `Enter` nodes, which pass their input on unchanged; TensorFlow
///   leaves a non-constant `Enter` unknown (its shape may change across iterations, which is
///   the `Merge`'s business; graphopt's `Merge`s are as unknown as TensorFlow's).
const EXPECTED: &[(&str, usize, usize)] = &[
    ("atrous_conv", 0, 0),
    ("bert_encoder", 0, 0),
    ("bn_patterns", 0, 0),
    ("dense_mlp", 0, 0),
    ("densenet_block", 0, 0),
    ("efficientnet_block", 0, 12),
    ("function_calls", 0, 0),
    ("keras_cnn", 0, 0),
    ("resize_pad_conv", 0, 0),
    ("tf1_conv_bn", 0, 0),
    ("training_leftovers", 0, 0),
    ("transformer_block", 0, 0),
    ("while_rnn", 0, 6),
];

/// Ops on which graphopt may know less than TensorFlow, and why: (op, reason). A less specific
/// node whose op is not listed fails the test whatever the counts. None today: every rank and
/// dim TensorFlow infers on the fixtures, graphopt infers too.
const KNOWN_GAPS: &[(&str, &str)] = &[];

/// An output shape: `None` for an unknown rank, -1 for an unknown dim.
type Shape = Option<Vec<i64>>;

/// What `record_output_shapes.py` recorded of one fixture.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Recorded {
    /// The SHA-256 of the fixture's bytes that TensorFlow shaped.
    sha256: String,
    nodes: BTreeMap<String, Vec<Shape>>,
}

fn recorded() -> BTreeMap<String, Recorded> {
    let path = common::fixtures().join("expected/output_shapes.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// TensorFlow's output shapes of every fixture, by node.
fn tensorflow_shapes() -> BTreeMap<String, BTreeMap<String, Vec<Shape>>> {
    recorded().into_iter().map(|(k, r)| (k, r.nodes)).collect()
}

#[test]
fn tensorflow_shapes_are_of_the_committed_fixture_bytes() {
    // A fixture regenerated without rerunning the recorder must fail here, not be compared
    // with the shapes of the graph it replaced.
    let mut stale = Vec::new();
    for (name, recorded) in recorded() {
        let bytes = std::fs::read(common::model_path(&name, "pb")).unwrap();
        if common::sha256_hex(&bytes) != recorded.sha256 {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?}: rerun /tmp/tfvenv/bin/python tests/fixtures/record_output_shapes.py"
    );
}

/// The `_output_shapes` graphopt wrote on `node`, if any.
fn written(node: &NodeDef) -> Option<Vec<Shape>> {
    let Some(attr_value::Value::List(list)) = node.attr.get("_output_shapes")?.value.as_ref()
    else {
        panic!("{}: _output_shapes is not a list", node.name);
    };
    Some(
        list.shape
            .iter()
            .map(|s| (!s.unknown_rank).then(|| s.dim.iter().map(|d| d.size).collect()))
            .collect(),
    )
}

/// How graphopt's shape of one output compares with TensorFlow's.
#[derive(Debug, Default, Clone, Copy)]
struct Comparison {
    less: bool,
    more: bool,
}

/// Compares one output; panics on a conflict (a different rank or a different known dim).
fn compare(what: &str, ours: &Shape, theirs: &Shape) -> Comparison {
    match (ours, theirs) {
        (None, None) => Comparison::default(),
        (None, Some(_)) => Comparison {
            less: true,
            more: false,
        },
        (Some(_), None) => Comparison {
            less: false,
            more: true,
        },
        (Some(a), Some(b)) => {
            assert_eq!(
                a.len(),
                b.len(),
                "{what}: graphopt writes {a:?}, TensorFlow {b:?}"
            );
            let mut c = Comparison::default();
            for (&x, &y) in a.iter().zip(b) {
                match (x, y) {
                    (x, y) if x == y => {}
                    (-1, _) => c.less = true,
                    (_, -1) => c.more = true,
                    _ => panic!("{what}: graphopt writes {a:?}, TensorFlow {b:?}"),
                }
            }
            c
        }
    }
}

/// The fixture after `add_shapes`.
fn shaped(name: &str) -> GraphDef {
    common::apply(name, "add_shapes")
}

#[test]
fn every_fixture_has_tensorflow_shapes_and_a_row() {
    let recorded: Vec<String> = tensorflow_shapes().into_keys().collect();
    assert_eq!(
        recorded,
        common::fixture_files(),
        "rerun record_output_shapes.py"
    );
    let rows: Vec<&str> = EXPECTED.iter().map(|r| r.0).collect();
    assert_eq!(rows, recorded, "one row per fixture, sorted");
}

#[test]
fn add_shapes_matches_tensorflow_where_tensorflow_knows() {
    let expected = tensorflow_shapes();
    let mut failures = Vec::new();
    for &(name, less_expected, more_expected) in EXPECTED {
        let theirs = &expected[name];
        let graph = shaped(name);
        assert_eq!(
            graph.node.len(),
            theirs.len(),
            "{name}: add_shapes keeps every node"
        );
        let (mut less, mut more) = (Vec::new(), Vec::new());
        for node in &graph.node {
            let tf = theirs
                .get(&node.name)
                .unwrap_or_else(|| panic!("{name}: TensorFlow has no node {}", node.name));
            let ours = written(node).unwrap_or_else(|| vec![None; tf.len()]);
            assert_eq!(
                ours.len(),
                tf.len(),
                "{name}/{}: output count; graphopt {ours:?}, TensorFlow {tf:?}",
                node.name
            );
            let mut c = Comparison::default();
            for (k, (a, b)) in ours.iter().zip(tf).enumerate() {
                let one = compare(&format!("{name}/{}:{k} ({})", node.name, node.op), a, b);
                c.less |= one.less;
                c.more |= one.more;
            }
            let line = format!(
                "{} ({}): graphopt {ours:?}, TensorFlow {tf:?}",
                node.name, node.op
            );
            if c.less {
                if !KNOWN_GAPS.iter().any(|(op, _)| *op == node.op) {
                    failures.push(format!("{name}: undocumented gap: {line}"));
                }
                less.push(line.clone());
            }
            if c.more {
                more.push(line);
            }
        }
        if (less.len(), more.len()) != (less_expected, more_expected) {
            failures.push(format!(
                "{name}: {} less specific (expected {less_expected}), {} more specific (expected {more_expected})\n  less: {}\n  more: {}",
                less.len(),
                more.len(),
                less.join("\n        "),
                more.join("\n        "),
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_partly_known_input_keeps_its_known_dims() {
    let graph = shaped("efficientnet_block");
    let input = graph
        .node
        .iter()
        .find(|n| n.op == "Placeholder")
        .expect("the input");
    assert_eq!(written(input), Some(vec![Some(vec![-1, 32, 32, 3])]));
    let conv = graph
        .node
        .iter()
        .find(|n| n.op == "Conv2D")
        .expect("the stem conv");
    assert_eq!(written(conv), Some(vec![Some(vec![-1, 16, 16, 16])]));
}

/// `add_shapes` on a graph in text format, with no inputs or outputs named.
fn add_shapes_to(text: &str) -> GraphDef {
    use graphopt_core::transforms::{self, Registry};
    let mut graph: GraphDef = graphopt_core::text_format::parse(text).unwrap();
    let specs = transforms::parse("add_shapes").unwrap();
    transforms::run(&Registry::with_builtins(), &mut graph, &specs, &[], &[]).unwrap();
    graph
}

fn written_by_name(graph: &GraphDef, name: &str) -> Option<Vec<Shape>> {
    written(graph.node.iter().find(|n| n.name == name).expect(name))
}

const CALLS: &str = r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } }
       attr { key: "shape" value { shape { dim { size: -1 } dim { size: 3 } } } } }
node { name: "relu" op: "PartitionedCall" input: "x"
       attr { key: "f" value { func { name: "relu" } } }
       attr { key: "Tin" value { list { type: DT_FLOAT } } }
       attr { key: "Tout" value { list { type: DT_FLOAT } } } }
node { name: "forever" op: "PartitionedCall" input: "x"
       attr { key: "f" value { func { name: "forever" } } }
       attr { key: "Tin" value { list { type: DT_FLOAT } } }
       attr { key: "Tout" value { list { type: DT_FLOAT } } } }
node { name: "grow" op: "PartitionedCall" input: "x"
       attr { key: "f" value { func { name: "grow" } } }
       attr { key: "Tin" value { list { type: DT_FLOAT } } }
       attr { key: "Tout" value { list { type: DT_FLOAT } } } }
library {
  function {
    signature { name: "grow" input_arg { name: "a" type: DT_FLOAT } output_arg { name: "r" type: DT_FLOAT } }
    node_def { name: "axis" op: "Const" attr { key: "dtype" value { type: DT_INT32 } }
               attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape { } int_val: 0 } } } }
    node_def { name: "e" op: "ExpandDims" input: "a" input: "axis:output:0"
               attr { key: "T" value { type: DT_FLOAT } } attr { key: "Tdim" value { type: DT_INT32 } } }
    node_def { name: "once" op: "PartitionedCall" input: "e:output:0"
               attr { key: "f" value { func { name: "grow" } } }
               attr { key: "Tin" value { list { type: DT_FLOAT } } }
               attr { key: "Tout" value { list { type: DT_FLOAT } } } }
    node_def { name: "twice" op: "PartitionedCall" input: "e:output:0"
               attr { key: "f" value { func { name: "grow" } } }
               attr { key: "Tin" value { list { type: DT_FLOAT } } }
               attr { key: "Tout" value { list { type: DT_FLOAT } } } }
    ret { key: "r" value: "once:output:0" }
  }
  function {
    signature { name: "relu" input_arg { name: "a" type: DT_FLOAT } output_arg { name: "r" type: DT_FLOAT } }
    node_def { name: "y" op: "Relu" input: "a" attr { key: "T" value { type: DT_FLOAT } } }
    ret { key: "r" value: "y:activations:0" }
  }
  function {
    signature { name: "forever" input_arg { name: "a" type: DT_FLOAT } output_arg { name: "r" type: DT_FLOAT } }
    node_def { name: "once" op: "PartitionedCall" input: "a"
               attr { key: "f" value { func { name: "forever" } } }
               attr { key: "Tin" value { list { type: DT_FLOAT } } }
               attr { key: "Tout" value { list { type: DT_FLOAT } } } }
    node_def { name: "twice" op: "PartitionedCall" input: "a"
               attr { key: "f" value { func { name: "forever" } } }
               attr { key: "Tin" value { list { type: DT_FLOAT } } }
               attr { key: "Tout" value { list { type: DT_FLOAT } } } }
    ret { key: "r" value: "once:output:0" }
  }
}
"#;

#[test]
fn calls_get_their_bodies_shapes_and_recursion_stays_bounded() {
    let graph = add_shapes_to(CALLS);
    assert_eq!(
        written_by_name(&graph, "relu"),
        Some(vec![Some(vec![-1, 3])])
    );
    // Functions calling themselves twice at every level, with the same shapes or growing
    // ones: their calls stay unknown, in bounded time.
    assert_eq!(written_by_name(&graph, "forever"), Some(vec![None]));
    assert_eq!(written_by_name(&graph, "grow"), Some(vec![None]));
}

const CONDITIONAL: &str = r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } }
       attr { key: "shape" value { shape { dim { size: -1 } dim { size: 3 } } } } }
node { name: "flag" op: "Placeholder" attr { key: "dtype" value { type: DT_BOOL } }
       attr { key: "shape" value { shape { } } } }
node { name: "merge" op: "Merge" input: "switch:1" input: "twice"
       attr { key: "T" value { type: DT_FLOAT } } attr { key: "N" value { i: 2 } } }
node { name: "switch" op: "Switch" input: "x" input: "flag" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "twice" op: "Mul" input: "switch" input: "two" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "two" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
       attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 1 } dim { size: 3 } } float_val: 2 } } } }
"#;

#[test]
fn a_conditional_merge_waits_for_both_branches() {
    let graph = add_shapes_to(CONDITIONAL);
    assert_eq!(
        written_by_name(&graph, "switch"),
        Some(vec![Some(vec![-1, 3]), Some(vec![-1, 3])])
    );
    assert_eq!(
        written_by_name(&graph, "merge"),
        Some(vec![Some(vec![-1, 3]), Some(vec![])])
    );
}
