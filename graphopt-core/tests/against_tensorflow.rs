//! graphopt against TensorFlow's own answers, recorded by tests/fixtures/generate.py:
//! summarize_graph's findings and the node lists TensorFlow's Graph Transform Tool writes.

mod common;

use std::collections::BTreeMap;

use graphopt_core::summary;
use graphopt_core::transforms::{self, Registry};
use serde_json::{json, Value};

/// TensorFlow's Python dtype name for a graphopt/summarize_graph name.
fn python_dtype(name: &str) -> &str {
    match name {
        "float" => "float32",
        "double" => "float64",
        "half" => "float16",
        other => other,
    }
}

#[test]
fn summary_agrees_with_tensorflow() {
    for name in common::MODELS {
        let graph = common::load(name);
        let ours = summary::summarize(&graph, None);
        let expected = &common::expected(name)["summary"];

        assert_eq!(
            json!(ours.node_count),
            expected["node_count"],
            "{name}: node count"
        );
        let inputs: Vec<Value> = ours
            .inputs
            .iter()
            .map(|d| json!({"name": d.name, "dtype": python_dtype(&d.dtype), "shape": d.shape}))
            .collect();
        assert_eq!(Value::Array(inputs), expected["inputs"], "{name}: inputs");
        let outputs: Vec<Value> = ours
            .outputs
            .iter()
            .map(|o| json!({"name": o.name, "op": o.op}))
            .collect();
        assert_eq!(
            Value::Array(outputs),
            expected["outputs"],
            "{name}: outputs"
        );
        assert_eq!(
            json!(ours.const_parameters),
            expected["const_parameters"],
            "{name}: const parameters"
        );
        assert_eq!(
            json!(ours.control_edges),
            expected["control_edges"],
            "{name}: control edges"
        );
        let op_counts: BTreeMap<&str, usize> = ours
            .op_counts
            .iter()
            .map(|c| (c.op.as_str(), c.count))
            .collect();
        assert_eq!(json!(op_counts), expected["op_counts"], "{name}: op counts");
    }
}

fn signature(node: &graphopt_core::proto::NodeDef) -> Value {
    json!({
        "name": node.name,
        "op": node.op,
        "input": node.input,
        "device": node.device,
        "attrs": node.attr.keys().collect::<Vec<_>>(),
    })
}

#[test]
fn structural_transforms_match_the_graph_transform_tool() {
    let registry = Registry::with_builtins();
    let mut compared = 0;
    let mut recorded = 0;
    for name in common::MODELS {
        let expected = common::expected(name);
        recorded += expected["gtt"].as_object().map_or(0, |g| g.len());
        let inputs: Vec<String> = expected["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect();
        let outputs: Vec<String> = expected["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_string())
            .collect();
        for (key, result) in expected["gtt"].as_object().unwrap() {
            let transform_string = result["transforms"].as_str().unwrap();
            let specs = transforms::parse(transform_string).unwrap();
            let mut graph = common::load(name);
            transforms::run(&registry, &mut graph, &specs, &inputs, &outputs)
                .unwrap_or_else(|e| panic!("{name} {key}: {e}"));
            let mut ours: Vec<Value> = graph.node.iter().map(signature).collect();
            let theirs = result["nodes"].as_array().unwrap();
            if key == "remove_control_dependencies" {
                if result["tensorflow_runs_it"] == false {
                    // TensorFlow's output no longer runs (loop constants lose their frame); ours
                    // keeps those edges on purpose, and structural_transforms.rs checks it runs.
                    // The one difference: graphopt keeps control inputs TensorFlow dropped.
                    let kept: usize = ours
                        .iter()
                        .map(|n| {
                            n["input"].as_array().map_or(0, |inputs| {
                                inputs
                                    .iter()
                                    .filter(|i| i.as_str().is_some_and(|i| i.starts_with('^')))
                                    .count()
                            })
                        })
                        .sum();
                    assert!(kept > 0, "{name}: expected frame-anchoring control inputs");
                    for node in &mut ours {
                        if let Some(inputs) = node["input"].as_array() {
                            let data: Vec<Value> = inputs
                                .iter()
                                .filter(|i| !i.as_str().is_some_and(|i| i.starts_with('^')))
                                .cloned()
                                .collect();
                            node["input"] = Value::Array(data);
                        }
                    }
                    assert_eq!(&ours, theirs, "{name}: differs beyond control inputs");
                    compared += 1;
                    continue;
                }
                // Otherwise the only difference allowed is the branch anchors graphopt keeps on
                // source nodes (nodes with only control inputs).
                for node in &mut ours {
                    let inputs = node["input"].as_array().unwrap();
                    if inputs.iter().all(|i| i.as_str().unwrap().starts_with('^')) {
                        node["input"] = json!([]);
                    }
                }
            }
            assert_eq!(ours.len(), theirs.len(), "{name} {key}: node count");
            for (a, b) in ours.iter().zip(theirs) {
                assert_eq!(
                    a, b,
                    "{name} `{transform_string}`: node differs from TensorFlow's"
                );
            }
            compared += 1;
        }
    }
    // Every result TensorFlow's tool recorded is compared, none skipped.
    assert_eq!(
        compared, recorded,
        "compared {compared} of {recorded} transform results"
    );
    assert!(recorded > 0);
}
