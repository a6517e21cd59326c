//! graphopt against TensorFlow's own answers, recorded by tests/fixtures/generate.py:
//! summarize_graph's findings and the node lists TensorFlow's Graph Transform Tool writes, with
//! the values of every node's attributes (tests/fixtures/record_gtt_attrs.py), for the README's
//! "node-for-node equal to TF's GTT on the fixtures".

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
        "attr_values": attr_digest(node),
    })
}

/// The attribute values of a node, as tests/fixtures/record_gtt_attrs.py digests TensorFlow's:
/// sha256 over the attributes in key order (the map is a BTreeMap, so already in key order),
/// each as the key, a 0 byte, the encoded AttrValue's length (u64 little-endian) and the
/// encoded AttrValue; the first 16 hex digits.
fn attr_digest(node: &graphopt_core::proto::NodeDef) -> String {
    use prost::Message;
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (key, value) in &node.attr {
        let bytes = value.encode_to_vec();
        hasher.update(key.as_bytes());
        hasher.update([0u8]);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The only nodes allowed to differ from TensorFlow's `remove_control_dependencies`, per
/// fixture: graphopt's deliberate difference (documented in
/// graphopt-core/src/transforms/remove_control_dependencies.rs) keeps the control inputs of a
/// node without data inputs inside a while loop or `tf.cond` branch, which place it in the
/// loop's frame or the branch, where TensorFlow drops them (on `while_rnn` TensorFlow's output
/// no longer runs). Such a node must have only control inputs in ours and none in TensorFlow's;
/// everything else about it, and every other node, is equal. Every other fixture: no exception.
const KEPT_CONTROL_ANCHORS: &[(&str, usize)] = &[("training_leftovers", 5), ("while_rnn", 12)];

/// graphopt's deliberate difference in colocations: a `loc:@NODE` entry follows a renamed
/// node, where TensorFlow's transforms leave it naming the old one (a graph TensorFlow's
/// importer refuses: "expects to be colocated with unknown node"). The entries are put back as
/// TensorFlow writes them before comparing; nothing else about the node may differ.
fn colocate_as_tensorflow_does(
    graph: &mut graphopt_core::proto::GraphDef,
    outcomes: &[transforms::TransformOutcome],
) {
    use graphopt_core::proto::attr_value::Value as AttrKind;
    let renamed_back: BTreeMap<String, String> = outcomes
        .iter()
        .flat_map(|o| &o.renames)
        .map(|(old, new)| (format!("loc:@{new}"), format!("loc:@{old}")))
        .collect();
    for node in &mut graph.node {
        let Some(AttrKind::List(list)) = node.attr.get_mut("_class").and_then(|a| a.value.as_mut())
        else {
            continue;
        };
        for entry in &mut list.s {
            let old = std::str::from_utf8(entry)
                .ok()
                .and_then(|e| renamed_back.get(e));
            if let Some(old) = old {
                *entry = old.clone().into_bytes().into();
            }
        }
    }
}

#[test]
fn structural_transforms_match_the_graph_transform_tool() {
    let registry = Registry::with_builtins();
    let attr_values: Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixtures().join("expected/gtt_attrs.json")).unwrap(),
    )
    .unwrap();
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
            let outcomes = transforms::run(&registry, &mut graph, &specs, &inputs, &outputs)
                .unwrap_or_else(|e| panic!("{name} {key}: {e}"));
            colocate_as_tensorflow_does(&mut graph, &outcomes);
            let mut ours: Vec<Value> = graph.node.iter().map(signature).collect();
            // TensorFlow's node signatures (generate.py) with its attribute values
            // (record_gtt_attrs.py).
            let digests = attr_values["fixtures"][*name][key.as_str()]
                .as_array()
                .unwrap_or_else(|| {
                    panic!("{name} {key}: no attribute values in expected/gtt_attrs.json")
                });
            let mut theirs = result["nodes"].as_array().unwrap().clone();
            assert_eq!(
                digests.len(),
                theirs.len(),
                "{name} {key}: expected/gtt_attrs.json is stale (rerun record_gtt_attrs.py)"
            );
            for (node, digest) in theirs.iter_mut().zip(digests) {
                node["attr_values"] = digest.clone();
            }
            if key == "remove_control_dependencies" {
                let allowed = KEPT_CONTROL_ANCHORS
                    .iter()
                    .find(|(fixture, _)| fixture == name)
                    .map_or(0, |&(_, count)| count);
                let mut kept = Vec::new();
                for (a, b) in ours.iter_mut().zip(&theirs) {
                    let inputs = a["input"].as_array().unwrap();
                    let anchors_only = !inputs.is_empty()
                        && inputs.iter().all(|i| i.as_str().unwrap().starts_with('^'));
                    if anchors_only && b["input"] == json!([]) {
                        kept.push(a["name"].as_str().unwrap().to_string());
                        a["input"] = json!([]);
                    }
                }
                assert_eq!(
                    kept.len(),
                    allowed,
                    "{name}: nodes keeping control inputs TensorFlow drops: {kept:?}"
                );
                assert_eq!(
                    result["tensorflow_runs_it"] == false,
                    *name == "while_rnn",
                    "{name}: whether TensorFlow's remove_control_dependencies output runs"
                );
            }
            assert_eq!(ours.len(), theirs.len(), "{name} {key}: node count");
            for (a, b) in ours.iter().zip(&theirs) {
                assert_eq!(
                    a, b,
                    "{name} `{transform_string}`: node differs from TensorFlow's"
                );
            }
            compared += 1;
        }
    }
    // The README's figure: "(17 nodes on two fixtures)".
    let kept: usize = KEPT_CONTROL_ANCHORS.iter().map(|(_, n)| n).sum();
    let readme = common::readme::figures(
        "inside a while loop or `tf.cond` branch ({} nodes on two fixtures), where TF's drops them",
    );
    assert_eq!(
        (readme, KEPT_CONTROL_ANCHORS.len()),
        (vec![kept.to_string()], 2)
    );
    // Every result TensorFlow's tool recorded is compared, none skipped.
    assert_eq!(
        compared, recorded,
        "compared {compared} of {recorded} transform results"
    );
    assert!(recorded > 0);
    let with_values: usize = attr_values["fixtures"]
        .as_object()
        .unwrap()
        .values()
        .map(|g| g.as_object().unwrap().len())
        .sum();
    assert_eq!(
        with_values, recorded,
        "expected/gtt_attrs.json holds results generate.py did not record"
    );
}
