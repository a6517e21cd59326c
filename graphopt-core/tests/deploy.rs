//! The recommended pipeline `@deploy` on every fixture: TensorFlow's outputs kept, graphs no
//! larger than Grappler's (its arithmetic, constant-folding, dependency, shape, loop, common
//! subexpression and pruning optimizers, recorded by tests/fixtures/record_grappler.py), and
//! none of the leftovers it promises to remove. Grappler's record must be of the committed
//! fixture bytes (its SHA-256 per fixture).

mod common;

use std::collections::HashSet;

use graphopt_core::graph::edit::const_value;
use graphopt_core::proto::GraphDef;

/// Main-graph node counts of `@deploy` per fixture. A change to the pipeline that moves one
/// must update it here and in the README's table.
const DEPLOY_NODES: &[(&str, usize)] = &[
    ("atrous_conv", 24),
    ("bert_encoder", 151),
    ("bn_patterns", 39),
    ("dense_mlp", 10),
    ("densenet_block", 40),
    ("efficientnet_block", 69),
    ("function_calls", 6),
    ("keras_cnn", 22),
    ("resize_pad_conv", 26),
    ("tf1_conv_bn", 11),
    ("training_leftovers", 4),
    ("transformer_block", 65),
    ("while_rnn", 54),
];

fn deploy(model: &str) -> GraphDef {
    common::apply(model, "@deploy")
}

fn grappler() -> serde_json::Value {
    let path = common::fixtures().join("expected/grappler.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_fixture_is_listed() {
    let mut listed: Vec<String> = common::MODELS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(listed, common::fixture_files());
    let mut counted: Vec<&str> = DEPLOY_NODES.iter().map(|(n, _)| *n).collect();
    counted.sort();
    assert_eq!(counted, listed);
}

#[test]
fn grappler_record_is_of_the_committed_fixture_bytes() {
    // Grappler's counts are only an anchor for the graph they were recorded on: a fixture
    // regenerated (or edited) without rerunning the recorder must fail here, not pass against
    // a stale count.
    const RERUN: &str = "rerun /tmp/tfvenv/bin/python tests/fixtures/record_grappler.py";
    let grappler = grappler();
    let recorded = grappler["fixtures"]
        .as_object()
        .expect("expected/grappler.json: no fixtures");
    let files = common::fixture_files();
    let mut stale = Vec::new();
    for name in &files {
        let bytes = std::fs::read(common::model_path(name, "pb")).unwrap();
        let actual = common::sha256_hex(&bytes);
        match recorded
            .get(name)
            .and_then(|r| r["original"]["sha256"].as_str())
        {
            Some(want) if want == actual => {}
            Some(want) => stale.push(format!(
                "tests/fixtures/models/{name}.pb: SHA-256 {actual}, recorded {want}"
            )),
            None => stale.push(format!(
                "tests/fixtures/models/{name}.pb has no SHA-256 in Grappler's record"
            )),
        }
    }
    for name in recorded.keys().filter(|n| !files.contains(n)) {
        stale.push(format!(
            "Grappler's record has {name}, tests/fixtures/models/{name}.pb does not exist"
        ));
    }
    assert!(
        stale.is_empty(),
        "tests/fixtures/expected/grappler.json is stale ({RERUN}):\n{}",
        stale.join("\n")
    );
}

#[test]
fn deploy_keeps_outputs_and_is_no_larger_than_grappler() {
    let grappler = grappler();
    let mut report = Vec::new();
    for &(model, expected_nodes) in DEPLOY_NODES {
        let graph = deploy(model);
        common::assert_matches_tensorflow(model, &graph, 1e-5, 1e-6);
        let ours = graph.node.len();
        let theirs = grappler["fixtures"][model]["grappler"]["node_count"]
            .as_u64()
            .unwrap_or_else(|| panic!("{model}: no Grappler count recorded"))
            as usize;
        assert!(
            ours <= theirs,
            "{model}: @deploy {ours} nodes, Grappler {theirs}"
        );
        // Function bodies, counted apart as the recorder counts them.
        let our_bodies: usize = graph
            .library
            .iter()
            .flat_map(|l| &l.function)
            .map(|f| f.node_def.len())
            .sum();
        let their_bodies = grappler["fixtures"][model]["grappler"]["function_node_count"]
            .as_u64()
            .unwrap_or_else(|| panic!("{model}: no Grappler function count recorded"))
            as usize;
        assert!(
            our_bodies <= their_bodies,
            "{model}: @deploy {our_bodies} function body nodes, Grappler {their_bodies}"
        );
        report.push(format!(
            "{model}: {ours} (Grappler {theirs}), function bodies {our_bodies} ({their_bodies})"
        ));
        assert_eq!(ours, expected_nodes, "{model}: @deploy node count changed");
    }
    println!("{}", report.join("\n"));
}

#[test]
fn deploy_of_its_own_output_changes_nothing() {
    // A step that opens work for an earlier one (a merged bias before a fused batch norm, two
    // constants made identical by a removed NoOp) must not leave it for a second run.
    use graphopt_core::transforms::{self, Registry};
    for &(model, _) in DEPLOY_NODES {
        let (inputs, outputs) = common::io_names(model);
        let once = deploy(model);
        let mut twice = once.clone();
        let specs = transforms::parse("@deploy").unwrap();
        transforms::run(
            &Registry::with_builtins(),
            &mut twice,
            &specs,
            &inputs,
            &outputs,
        )
        .unwrap_or_else(|e| panic!("{model}: second @deploy: {e}"));
        assert_eq!(
            twice.node.len(),
            once.node.len(),
            "{model}: a second @deploy removed more"
        );
        // The order may differ (ties in the execution order follow the input's order); the
        // nodes may not.
        let by_name = |graph: &GraphDef| {
            let mut nodes = graph.node.clone();
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            nodes
        };
        assert!(
            by_name(&twice) == by_name(&once),
            "{model}: a second @deploy changed the graph"
        );
    }
}

#[test]
fn pre_activation_batch_norms_leave_no_multiply() {
    // DenseNet's BN -> ReLU -> Conv with positive scales: each norm becomes one add.
    let graph = deploy("densenet_block");
    let muls: Vec<&str> = graph
        .node
        .iter()
        .filter(|n| n.op == "Mul")
        .map(|n| n.name.as_str())
        .collect();
    assert!(muls.is_empty(), "Muls left: {muls:?}");
}

#[test]
fn deploy_leaves_no_leftovers_and_no_duplicate_constants() {
    for &(model, _) in DEPLOY_NODES {
        let (_, outputs) = common::io_names(model);
        let outputs: HashSet<&str> = outputs.iter().map(String::as_str).collect();
        let graph = deploy(model);
        // Inside a loop or branch, Identities and NoOps pin nodes to their frame: not leftovers.
        let framed = graphopt_core::graph::inside_control_flow(&graph);
        for node in &graph.node {
            let leftover = match node.op.as_str() {
                "IdentityN" | "StopGradient" | "Snapshot" | "PreventGradient" | "CheckNumerics" => {
                    true
                }
                "NoOp" => !framed.contains(&node.name),
                "Identity" => !outputs.contains(node.name.as_str()) && !framed.contains(&node.name),
                _ => false,
            };
            assert!(!leftover, "{model}: {} ({}) left", node.name, node.op);
        }
        assert_no_identical_constants(model, &graph.node);
        // Function bodies (a call kept, or a loop's body) the same: no leftover op, no two
        // identical Consts within one body.
        for function in graph.library.iter().flat_map(|l| &l.function) {
            let name = &function.signature.as_ref().unwrap().name;
            let scope = format!("{model}: function {name}");
            for node in &function.node_def {
                let leftover = matches!(
                    node.op.as_str(),
                    "IdentityN" | "StopGradient" | "Snapshot" | "PreventGradient" | "CheckNumerics"
                );
                assert!(!leftover, "{scope}: {} ({}) left", node.name, node.op);
            }
            assert_no_identical_constants(&scope, &function.node_def);
        }
    }
}

/// Consts pinned to different loop frames (by their control inputs) are different nodes.
fn assert_no_identical_constants(scope: &str, nodes: &[graphopt_core::proto::NodeDef]) {
    let mut constants: Vec<(&str, Vec<u8>)> = Vec::new();
    for node in nodes.iter().filter(|n| n.op == "Const") {
        let value = const_value(node).unwrap().to_proto();
        let mut key = prost::Message::encode_to_vec(&value);
        key.extend(node.input.join(",").as_bytes());
        key.extend(node.device.as_bytes());
        if let Some((other, _)) = constants.iter().find(|(_, k)| *k == key) {
            panic!("{scope}: Consts {other} and {} are identical", node.name);
        }
        constants.push((node.name.as_str(), key));
    }
}

/// A Const named in --inputs holds what is fed: with no --outputs (nothing cut, so it stays a
/// Const), `@deploy` merged an identical Const into it, and TensorFlow 2.21 fed with
/// `a = [10, 20]` computed `x * a + a` = [20, 40] where the graph says `x * b + a` = [11, 22].
#[test]
fn deploy_never_merges_a_constant_into_a_fed_input() {
    let constant = |name: &str| {
        format!(
            r#"node {{ name: "{name}" op: "Const" attr {{ key: "dtype" value {{ type: DT_FLOAT }} }}
  attr {{ key: "value" value {{ tensor {{ dtype: DT_FLOAT tensor_shape {{ dim {{ size: 2 }} }} float_val: 1 float_val: 2 }} }} }} }}"#
        )
    };
    let text = format!(
        r#"{}
{}
node {{ name: "x" op: "Placeholder" attr {{ key: "dtype" value {{ type: DT_FLOAT }} }}
  attr {{ key: "shape" value {{ shape {{ dim {{ size: 2 }} }} }} }} }}
node {{ name: "m" op: "Mul" input: "x" input: "b" attr {{ key: "T" value {{ type: DT_FLOAT }} }} }}
node {{ name: "y" op: "AddV2" input: "m" input: "a" attr {{ key: "T" value {{ type: DT_FLOAT }} }} }}
"#,
        constant("a"),
        constant("b")
    );
    let mut graph = graphopt_core::text_format::parse(&text).unwrap();
    let specs = graphopt_core::transforms::parse("@deploy").unwrap();
    let inputs = ["a".to_string(), "x".to_string()];
    graphopt_core::transforms::run(
        &graphopt_core::transforms::Registry::with_builtins(),
        &mut graph,
        &specs,
        &inputs,
        &[],
    )
    .unwrap();
    let mul = graph.node.iter().find(|n| n.name == "m").unwrap();
    assert_eq!(mul.input, ["x", "b"], "{graph:?}");
}
