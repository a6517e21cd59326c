//! Constants a rewrite adds inside a TF1 while loop's body stay in the loop's frame.
//!
//! TensorFlow places a Const without inputs in the outermost frame: one read inside a loop
//! body makes the graph fail ("inputs from different frames"). The graphs in `loops/`
//! (written by `loops/generate.py` with TensorFlow 2.21) anchor every body Const with
//! `^while/Identity`, as TensorFlow does; the Consts the rewrites add must be anchored too.
//! TensorFlow itself ran the CLI's output of each case below after the fix (2026-12-04, with
//! `tf.import_graph_def` and a session with its own rewrites off) and matched its outputs.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use graphopt_core::proto::GraphDef;
use graphopt_core::tensor::{Data, Tensor};
use graphopt_core::transforms::{self, Registry};
use ndarray::{ArrayD, IxDyn};

fn loops_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/loops")
}

fn load(name: &str) -> GraphDef {
    let text = std::fs::read_to_string(loops_dir().join(format!("{name}.pbtxt"))).unwrap();
    graphopt_core::text_format::parse(&text).unwrap()
}

fn expected(name: &str) -> (Tensor, Vec<f32>) {
    let text = std::fs::read_to_string(loops_dir().join("expected.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let case = &json[name];
    let flat = |v: &serde_json::Value| -> Vec<f32> {
        let mut out = Vec::new();
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            match v {
                serde_json::Value::Array(items) => stack.extend(items.iter().rev()),
                other => out.push(other.as_f64().unwrap() as f32),
            }
        }
        out
    };
    let shape: Vec<usize> = case["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let x = ArrayD::from_shape_vec(IxDyn(&shape), flat(&case["x"])).unwrap();
    (Tensor::from_data(Data::F32(x)), flat(&case["y"]))
}

fn run(graph: &GraphDef, x: &Tensor) -> Vec<f32> {
    let feeds = BTreeMap::from([("x".to_string(), x.clone())]);
    let y = graphopt_core::eval::evaluate(graph, &feeds, &["y".to_string()], Default::default())
        .unwrap();
    match y[0].data() {
        Data::F32(values) => values.iter().copied().collect(),
        other => panic!("{other:?}"),
    }
}

/// Every Const read by a node inside the loop (past its Enter) has an input (its anchor), and
/// the anchor is a node inside the loop.
fn assert_body_constants_anchored(graph: &GraphDef, case: &str) {
    let framed = graphopt_core::graph::inside_control_flow(graph);
    let by_name: BTreeMap<&str, &graphopt_core::proto::NodeDef> =
        graph.node.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut checked = HashSet::new();
    // An Enter reads from outside the loop.
    let in_body = |n: &&graphopt_core::proto::NodeDef| {
        framed.contains(&n.name) && !matches!(n.op.as_str(), "Enter" | "RefEnter")
    };
    for reader in graph.node.iter().filter(in_body) {
        for input in &reader.input {
            let source = input.trim_start_matches('^').split(':').next().unwrap();
            let Some(node) = by_name.get(source) else {
                continue;
            };
            if node.op != "Const" || !checked.insert(source) {
                continue;
            }
            let anchor = node.input.first().unwrap_or_else(|| {
                panic!(
                    "{case}: Const {source} read by {} has no anchor",
                    reader.name
                )
            });
            assert!(
                framed.contains(anchor.trim_start_matches('^')),
                "{case}: {source} is anchored to {anchor}, outside the loop"
            );
        }
    }
    assert!(!checked.is_empty(), "{case}: no Const read in the loop");
}

fn assert_close(graphopt: &[f32], tensorflow: &[f32], case: &str) {
    assert_eq!(graphopt.len(), tensorflow.len(), "{case}");
    for (a, b) in graphopt.iter().zip(tensorflow) {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{case}: {a} vs {b}"
        );
    }
}

#[test]
fn constants_added_in_a_loop_body_keep_its_frame() {
    for (name, transform, added) in [
        ("chain", "simplify_arithmetic", "folded_constant"),
        ("chain", "@deploy", "folded_constant"),
        ("bias", "fold_batch_norms", "bias"),
        ("bias", "@deploy", "bias"),
    ] {
        let case = format!("{name} / {transform}");
        let mut graph = load(name);
        let (x, tensorflow) = expected(name);
        assert_close(
            &run(&graph, &x),
            &tensorflow,
            &format!("{case}: the original"),
        );
        let names: HashSet<String> = graph.node.iter().map(|n| n.name.clone()).collect();
        let specs = transforms::parse(transform).unwrap();
        transforms::run(
            &Registry::with_builtins(),
            &mut graph,
            &specs,
            &["x".to_string()],
            &["y".to_string()],
        )
        .unwrap();
        // The rewrite did add a Const in the body (else this tests nothing).
        assert!(
            graph
                .node
                .iter()
                .any(|n| n.op == "Const" && !names.contains(&n.name) && n.name.contains(added)),
            "{case}: no new Const"
        );
        assert_body_constants_anchored(&graph, &case);
        assert_close(&run(&graph, &x), &tensorflow, &case);
    }
}

/// convert_to_nchw shares its permutation Consts among all the Transposes it adds: a
/// convolution inside a loop body read one of the outermost frame, and TensorFlow refused the
/// graph ("has inputs from different frames", checked with TF 2.21 on the CLI's output). The
/// convolution before the loop is still converted; the body keeps its layout.
#[test]
fn nchw_conversion_leaves_loop_bodies_in_their_frame() {
    let mut graph = load("conv");
    let (x, tensorflow) = expected("conv");
    assert_close(&run(&graph, &x), &tensorflow, "conv: the original");
    let specs = transforms::parse("convert_to_nchw").unwrap();
    transforms::run(
        &Registry::with_builtins(),
        &mut graph,
        &specs,
        &["x".to_string()],
        &["y".to_string()],
    )
    .unwrap();
    let framed = graphopt_core::graph::inside_control_flow(&graph);
    let formats: Vec<(bool, bool)> = graph
        .node
        .iter()
        .filter(|n| n.op == "Conv2D")
        .map(|n| {
            let nchw =
                graphopt_core::graph::attrs::string(n, "data_format").is_some_and(|f| f == "NCHW");
            (framed.contains(&n.name), nchw)
        })
        .collect();
    assert!(formats.contains(&(false, true)), "{formats:?}");
    assert_body_constants_anchored(&graph, "conv / convert_to_nchw");
    assert_close(&run(&graph, &x), &tensorflow, "conv / convert_to_nchw");
}
