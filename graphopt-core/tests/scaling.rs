//! Transforms touch each node a bounded number of times: big synthetic graphs that made
//! super-linear transforms hang (issue 11, class 8) finish in well under a second in release and
//! a few seconds in the dev profile. The time limits here catch a quadratic regression (which
//! takes minutes on these sizes), not a slow machine.

use std::time::{Duration, Instant};

use graphopt_core::proto::{attr_value, AttrValue, DataType, GraphDef, NodeDef, TensorProto};
use graphopt_core::transforms::{self, Registry};

const LIMIT: Duration = Duration::from_secs(20);

fn node(name: &str, op: &str, inputs: Vec<String>) -> NodeDef {
    NodeDef {
        name: name.into(),
        op: op.into(),
        input: inputs,
        attr: [(
            "T".to_string(),
            AttrValue {
                value: Some(attr_value::Value::Type(DataType::DtFloat as i32)),
            },
        )]
        .into(),
        ..Default::default()
    }
}

fn constant(name: &str) -> NodeDef {
    let mut n = node(name, "Const", Vec::new());
    n.attr.insert(
        "value".into(),
        AttrValue {
            value: Some(attr_value::Value::Tensor(Box::new(TensorProto {
                dtype: DataType::DtFloat as i32,
                tensor_shape: Some(Default::default()),
                float_val: vec![1.0],
                ..Default::default()
            }))),
        },
    );
    n.attr.insert(
        "dtype".into(),
        AttrValue {
            value: Some(attr_value::Value::Type(DataType::DtFloat as i32)),
        },
    );
    n.attr.remove("T");
    n
}

fn run(graph: &mut GraphDef, transforms: &str) -> Duration {
    let specs = transforms::parse(transforms).expect("parses");
    let start = Instant::now();
    transforms::run(
        &Registry::with_builtins(),
        graph,
        &specs,
        &[],
        &["out".to_string()],
    )
    .expect("runs");
    let elapsed = start.elapsed();
    eprintln!("{transforms}: {} nodes, {elapsed:?}", graph.node.len());
    elapsed
}

/// A Merge of `n` Switch outputs: loop-membership tests per consumer edge read the Merge's
/// whole input list per input.
fn merge_of(n: usize) -> GraphDef {
    let mut nodes = vec![constant("x"), {
        let mut p = node("p", "Placeholder", Vec::new());
        p.attr.insert(
            "dtype".into(),
            AttrValue {
                value: Some(attr_value::Value::Type(DataType::DtBool as i32)),
            },
        );
        p
    }];
    let mut inputs = Vec::new();
    for i in 0..n {
        let mut s = node(&format!("s{i}"), "Switch", vec!["x".into(), "p".into()]);
        s.input.push("^x".into());
        nodes.push(s);
        inputs.push(format!("s{i}:1"));
    }
    let mut merge = node("out", "Merge", inputs);
    merge.attr.insert(
        "N".into(),
        AttrValue {
            value: Some(attr_value::Value::I(n as i64)),
        },
    );
    nodes.push(merge);
    GraphDef {
        node: nodes,
        ..Default::default()
    }
}

#[test]
fn control_flow_transforms_on_a_merge_of_5000_inputs() {
    for transform in ["remove_control_dependencies", "remove_training_nodes"] {
        let mut graph = merge_of(5000);
        assert!(run(&mut graph, transform) < LIMIT, "{transform}");
    }
}

#[test]
fn inside_control_flow_on_a_merge_of_20000_inputs() {
    let graph = merge_of(20_000);
    let start = Instant::now();
    let framed = graphopt_core::graph::inside_control_flow(&graph);
    assert!(start.elapsed() < LIMIT, "{:?}", start.elapsed());
    assert!(framed.contains("s0") && !framed.contains("out"));
}

#[test]
fn remove_nodes_on_an_add_n_of_60000_identities() {
    let n = 60_000;
    let mut nodes = vec![constant("x")];
    let mut inputs = Vec::new();
    for i in 0..n {
        nodes.push(node(&format!("i{i}"), "Identity", vec!["x".into()]));
        inputs.push(format!("i{i}"));
    }
    let mut add = node("out", "AddN", inputs);
    add.attr.insert(
        "N".into(),
        AttrValue {
            value: Some(attr_value::Value::I(n as i64)),
        },
    );
    nodes.push(add);
    let mut graph = GraphDef {
        node: nodes,
        ..Default::default()
    };
    assert!(run(&mut graph, "remove_nodes(op=Identity)") < LIMIT);
    assert_eq!(graph.node.len(), 2);
    let out = graph.node.iter().find(|n| n.name == "out").expect("out");
    assert!(out.input.iter().all(|i| i == "x"));
    assert_eq!(out.input.len(), n);
}
