//! Deployment-target checks on the fixtures: the raw while loop is what OpenCV cannot load,
//! and graphopt's own evaluator (which runs every fixture in `evaluator.rs`) can load them all.

mod common;

use graphopt_core::targets::{self, ProblemKind, Target};

#[test]
fn opencv_names_the_loop_ops_of_the_raw_while_loop() {
    let graph = common::load("while_rnn");
    let problems = targets::check(&graph, Target::by_name("opencv").unwrap());
    assert!(targets::any_blocking(&problems));
    let loop_ops: Vec<&str> = problems
        .iter()
        .filter(|p| p.kind == ProblemKind::RejectedOp)
        .map(|p| p.op.as_str())
        .collect();
    for op in ["Enter", "Exit", "NextIteration", "LoopCond"] {
        assert!(loop_ops.contains(&op), "{op} not reported: {problems:#?}");
    }
    // Every reported node is a node of the graph.
    for p in &problems {
        assert!(
            graph.node.iter().any(|n| n.name == p.node && n.op == p.op),
            "{p:?}"
        );
    }
}

#[test]
fn graphopt_evaluator_loads_every_inference_fixture() {
    let target = Target::by_name(targets::GRAPHOPT).unwrap();
    for name in common::MODELS {
        let graph = common::load(name);
        let problems = targets::check(&graph, target);
        if *name == "training_leftovers" {
            // Training-only ops the inference path never runs; remove_training_nodes strips them.
            let ops: Vec<&str> = problems.iter().map(|p| p.op.as_str()).collect();
            assert!(
                ops.contains(&"Assert") && ops.contains(&"RandomUniform"),
                "{ops:?}"
            );
            continue;
        }
        assert!(problems.is_empty(), "{name}: {problems:#?}");
    }
}

#[test]
fn functional_control_flow_is_refused_by_name_where_the_target_lacks_it() {
    // function_calls keeps PartitionedCall and functional While/If: tract and OpenCV refuse
    // them by name, graphopt's evaluator runs them.
    let graph = common::load("function_calls");
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op.as_str()).collect();
    for name in ["tract", "opencv"] {
        let problems = targets::check(&graph, Target::by_name(name).unwrap());
        let rejected: Vec<&str> = problems
            .iter()
            .filter(|p| p.kind == ProblemKind::RejectedOp)
            .map(|p| p.op.as_str())
            .collect();
        for op in [
            "PartitionedCall",
            "StatefulPartitionedCall",
            "While",
            "StatelessWhile",
            "If",
            "StatelessIf",
        ] {
            if ops.contains(&op) {
                assert!(
                    rejected.contains(&op),
                    "{name} does not reject {op}: {problems:#?}"
                );
            }
        }
    }
}

/// The graphs real OpenCV 4.10 judged (tests/fixtures/expected/opencv.json, recorded by
/// tests/consumers/check_opencv.py for exactly these bytes): `check` passes exactly those that
/// loaded and matched TensorFlow (it also blocks on what loads but computes wrong).
#[test]
fn opencv_check_agrees_with_real_opencv_on_every_judged_graph() {
    let path = common::fixtures().join("expected/opencv.json");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let target = Target::by_name("opencv").unwrap();
    let cases = report["cases"].as_object().unwrap();
    assert_eq!(cases.len(), 21, "OpenCV cases recorded");
    // The EfficientNet-style block without its batch fixed: legalize leaves the shape
    // arithmetic with a hint to fix the input shape, OpenCV does not load it, and `check` says
    // so (below).
    assert_eq!(cases["efficientnet_block@nofix"]["loaded"], false);
    // The README quotes OpenCV's message.
    let error = cases["efficientnet_block@nofix"]["error"].as_str().unwrap();
    assert!(
        error.contains("Tensor's data type is not supported"),
        "{error}"
    );
    assert!(common::readme::text().contains("(\"Tensor's data type is not supported\")"));
    let mut raw_loaded = Vec::new();
    for (case, judged) in cases {
        let name = case.split('@').next().unwrap();
        let graph = common::apply(name, judged["pipeline"].as_str().unwrap());
        assert_eq!(
            common::sha256_hex(&graphopt_core::io::encode_graph(&graph)),
            judged["sha256"].as_str().unwrap(),
            "{case}: not the judged graph"
        );
        let problems = targets::check(&graph, target);
        let right = judged["loaded"].as_bool().unwrap()
            && judged["matches_tensorflow"].as_bool() == Some(true);
        if case.ends_with("@raw") && right {
            raw_loaded.push(case.as_str());
        }
        assert_eq!(
            !targets::any_blocking(&problems),
            right,
            "{case}: check disagrees with OpenCV: {problems:#?}"
        );
    }
    // The README: of the seven fixtures as they are, OpenCV loads and matches these two.
    assert_eq!(raw_loaded, ["densenet_block@raw", "keras_cnn@raw"]);
    assert_eq!(cases.keys().filter(|c| c.ends_with("@raw")).count(), 7);
}

/// The graphs on the edges of OpenCV's subgraph fusion that real OpenCV 4.10 judged
/// (tests/consumers/opencv_subgraph_probes.py): a batch norm fused or failing its epsilon
/// check, a control input after a fusion, ResizeBilinearSubgraphDown's factors. `check`
/// blocks exactly those OpenCV did not load.
#[test]
fn opencv_check_agrees_with_real_opencv_on_the_fusion_probes() {
    let path = common::fixtures().join("expected/opencv_probes.json");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let probes = report["probes"].as_object().unwrap();
    assert_eq!(probes.len(), 7, "probes recorded");
    let target = Target::by_name("opencv").unwrap();
    for (name, judged) in probes {
        let file = common::fixtures().join(format!("opencv_probes/{name}.pb"));
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(
            common::sha256_hex(&bytes),
            judged["sha256"].as_str().unwrap(),
            "{name}: not the judged bytes"
        );
        let graph = graphopt_core::io::read_graph(&file).unwrap().graph;
        let problems = targets::check(&graph, target);
        assert_eq!(
            !targets::any_blocking(&problems),
            judged["loaded"].as_bool().unwrap(),
            "{name}: check disagrees with OpenCV: {problems:#?}"
        );
    }
}

/// A FusedBatchNormV3 graph fails the TensorRT check and passes once legalized for it; tract's
/// legalized CNN fixtures pass tract's check.
#[test]
fn legalized_fixtures_pass_their_targets_check() {
    const STANDARD: &str = "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) fold_constants(ignore_errors=true) fold_batch_norms fold_old_batch_norms sort_by_execution_order";
    let legalized = |name: &str, target: &str| {
        common::apply(name, &format!("{STANDARD} legalize(target={target})"))
    };
    let raw = targets::check_target(&common::load("tf1_conv_bn"), "tensorrt").unwrap();
    assert!(
        raw.iter().any(|p| p.op == "FusedBatchNormV3" && p.blocking),
        "{raw:#?}"
    );
    for (name, target) in [
        ("tf1_conv_bn", "tensorrt"),
        ("keras_cnn", "tract"),
        ("tf1_conv_bn", "tract"),
        ("keras_cnn", "opencv"),
        ("resize_pad_conv", "opencv"),
        ("atrous_conv", "opencv"),
    ] {
        let problems = targets::check_target(&legalized(name, target), target).unwrap();
        assert!(
            !targets::any_blocking(&problems),
            "{name} for {target}: {problems:#?}"
        );
    }
}

/// The ops of `graph`, each once.
fn ops_of(graph: &graphopt_core::proto::GraphDef) -> std::collections::BTreeSet<&str> {
    graph.node.iter().map(|n| n.op.as_str()).collect()
}

/// `legalize(target=tensorrt)` alone, on the raw TF1 graph (no folding first: the batch norm's
/// parameters arrive through Identities, and a CheckNumerics guards the ReLU): the
/// FusedBatchNormV3 becomes a FusedBatchNorm, the CheckNumerics goes, TensorRT's check passes and
/// the outputs are still TensorFlow's. The same for tract.
#[test]
fn tensorrt_legalize_alone_loads_the_raw_batch_norm_graph() {
    let raw = common::load("tf1_conv_bn");
    let blocking_ops = |problems: &[targets::Problem]| -> Vec<String> {
        problems
            .iter()
            .filter(|p| p.blocking)
            .map(|p| p.op.clone())
            .collect()
    };
    let before = blocking_ops(&targets::check_target(&raw, "tensorrt").unwrap());
    assert!(
        before.iter().any(|op| op == "FusedBatchNormV3")
            && before.iter().any(|op| op == "CheckNumerics"),
        "{before:?}"
    );
    let graph = common::apply("tf1_conv_bn", "legalize(target=tensorrt)");
    let ops = ops_of(&graph);
    assert!(
        ops.contains("FusedBatchNorm")
            && !ops.contains("FusedBatchNormV3")
            && !ops.contains("CheckNumerics"),
        "{ops:?}"
    );
    let norm = graph
        .node
        .iter()
        .find(|n| n.op == "FusedBatchNorm")
        .unwrap();
    for attr in ["U", "exponential_avg_factor"] {
        assert!(!norm.attr.contains_key(attr), "{attr} kept: {norm:?}");
    }
    let problems = targets::check_target(&graph, "tensorrt").unwrap();
    assert!(!targets::any_blocking(&problems), "{problems:#?}");
    common::assert_matches_tensorflow("tf1_conv_bn", &graph, 1e-5, 1e-6);
    // tract (no FusedBatchNormV3 either) gets the norm as Mul and Add, its parameters read
    // through the same Identities.
    let graph = common::apply("tf1_conv_bn", "legalize(target=tract)");
    let ops = ops_of(&graph);
    assert!(
        !ops.iter().any(|op| op.starts_with("FusedBatchNorm")) && !ops.contains("CheckNumerics"),
        "{ops:?}"
    );
    let problems = targets::check_target(&graph, "tract").unwrap();
    assert!(!targets::any_blocking(&problems), "{problems:#?}");
    common::assert_matches_tensorflow("tf1_conv_bn", &graph, 1e-5, 1e-6);
}

/// TVM rejects FusedBatchNormV3's `exponential_avg_factor`: `legalize(target=tvm)` strips it
/// (it holds its default, and TensorFlow reads it only in training), alone on the raw graph and
/// after the standard pipeline without batch-norm folding, and TVM's check then passes.
#[test]
fn tvm_legalize_strips_the_rejected_attribute() {
    let raw = common::load("tf1_conv_bn");
    let rejected = |graph: &graphopt_core::proto::GraphDef| -> Vec<String> {
        targets::check_target(graph, "tvm")
            .unwrap()
            .into_iter()
            .filter(|p| p.kind == ProblemKind::RejectedAttr)
            .map(|p| p.node)
            .collect()
    };
    assert_eq!(rejected(&raw), ["bn/FusedBatchNormV3"]);
    for pipeline in [
        "legalize(target=tvm)",
        "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) fold_constants(ignore_errors=true) sort_by_execution_order legalize(target=tvm)",
    ] {
        let graph = common::apply("tf1_conv_bn", pipeline);
        let norm = graph
            .node
            .iter()
            .find(|n| n.op == "FusedBatchNormV3")
            .unwrap_or_else(|| panic!("{pipeline}: the batch norm is gone"));
        assert!(!norm.attr.contains_key("exponential_avg_factor"), "{pipeline}");
        let problems = targets::check_target(&graph, "tvm").unwrap();
        assert!(
            !targets::any_blocking(&problems),
            "{pipeline}: {problems:#?}"
        );
        common::assert_matches_tensorflow("tf1_conv_bn", &graph, 1e-5, 1e-6);
    }
}

/// A rejected attribute that differs from its default stays (removing it would change the node)
/// and legalize says so; one holding its default goes.
#[test]
fn rejected_attributes_are_stripped_only_where_that_keeps_the_node() {
    use graphopt_core::proto::{attr_value, AttrValue};
    use graphopt_core::transforms::{self, Registry};
    let with_factor = |factor: f32, training: bool| {
        let mut graph = common::load("tf1_conv_bn");
        let norm = graph
            .node
            .iter_mut()
            .find(|n| n.op == "FusedBatchNormV3")
            .unwrap();
        norm.attr.insert(
            "exponential_avg_factor".into(),
            AttrValue {
                value: Some(attr_value::Value::F(factor)),
            },
        );
        norm.attr.insert(
            "is_training".into(),
            AttrValue {
                value: Some(attr_value::Value::B(training)),
            },
        );
        graph
    };
    let legalize = |mut graph: graphopt_core::proto::GraphDef| {
        let specs = transforms::parse("legalize(target=tvm)").unwrap();
        let (inputs, outputs) = common::io_names("tf1_conv_bn");
        let outcomes = transforms::run(
            &Registry::with_builtins(),
            &mut graph,
            &specs,
            &inputs,
            &outputs,
        )
        .unwrap();
        let kept = graph
            .node
            .iter()
            .any(|n| n.attr.contains_key("exponential_avg_factor"));
        let warnings: Vec<String> = outcomes.into_iter().flat_map(|o| o.warnings).collect();
        (kept, warnings)
    };
    // Training with a running-average factor: the factor matters, so it stays, with a warning.
    let (kept, warnings) = legalize(with_factor(0.5, true));
    assert!(kept);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("bn/FusedBatchNormV3") && w.contains("exponential_avg_factor")),
        "{warnings:?}"
    );
    // The default, in training too: removing it changes nothing.
    let (kept, warnings) = legalize(with_factor(1.0, true));
    assert!(
        !kept
            && warnings
                .iter()
                .all(|w| !w.contains("exponential_avg_factor"))
    );
    // In inference TensorFlow never reads it, whatever its value.
    let (kept, _) = legalize(with_factor(0.5, false));
    assert!(!kept);
}

/// The length of the op list `list` of `target`, checked against the count its profile records.
fn op_list_len(target: &Target, list: &str) -> usize {
    let found = target
        .op_lists
        .iter()
        .find(|l| l.name == list)
        .unwrap_or_else(|| panic!("{}: no op list '{list}'", target.name));
    assert_eq!(
        found.count,
        found.ops.len(),
        "{}/{list}: recorded count",
        target.name
    );
    found.ops.len()
}

/// The README's targets table: one row per profile, and each version and op-list count in it
/// is the profile's.
#[test]
fn readme_targets_table_matches_the_profiles() {
    let target = |name: &str| Target::by_name(name).unwrap();
    let count = |figure: &String| -> usize {
        figure
            .parse()
            .unwrap_or_else(|_| panic!("README: '{figure}' is not a count"))
    };

    // Exactly the targets there are, each once.
    let table = common::readme::table_rows("| target | version read | op lists |");
    let mut rows: Vec<&str> = table
        .iter()
        .map(|row| {
            let cell = row
                .trim_start_matches('|')
                .split('|')
                .next()
                .unwrap()
                .trim();
            cell.trim_matches('`')
        })
        .collect();
    rows.sort_unstable();
    let mut names: Vec<&str> = targets::all()
        .unwrap()
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(rows, names, "README's targets table vs the profiles");

    let opencv = common::readme::figures(
        "| `opencv` | OpenCV {} dnn TensorFlow importer | {}-op dispatch table, ops its graph \
         simplifier removes, {} ops loaded through same-name OpenCV layers |",
    );
    assert_eq!(opencv[0], target("opencv").version, "opencv version");
    assert_eq!(
        count(&opencv[1]),
        op_list_len(target("opencv"), "dispatch"),
        "opencv dispatch table"
    );
    assert!(op_list_len(target("opencv"), "removed_before_import") > 0);
    assert_eq!(
        count(&opencv[2]),
        op_list_len(target("opencv"), "layer_registry"),
        "opencv same-name layers"
    );

    let tract = common::readme::figures("| `tract` | tract-tensorflow {} | {} registered ops |");
    assert_eq!(tract[0], target("tract").version, "tract version");
    assert_eq!(
        count(&tract[1]),
        op_list_len(target("tract"), "registered"),
        "tract registered ops"
    );

    let tvm = common::readme::figures(
        "| `tvm` | TVM {}, the last release with the Relay TensorFlow frontend | {}-entry \
         `_convert_map`, plus what `tensorflow.py` converts itself |",
    );
    assert_eq!(tvm[0], target("tvm").version, "tvm version");
    assert_eq!(
        count(&tvm[1]),
        op_list_len(target("tvm"), "convert_map"),
        "tvm _convert_map"
    );
    assert!(op_list_len(target("tvm"), "outside_convert_map") > 0);

    let tensorrt = common::readme::figures(
        "| `tensorrt` | uff {} (TensorRT's UFF converter) | {} converter functions |",
    );
    assert!(
        target("tensorrt")
            .version
            .starts_with(&format!("uff {} ", tensorrt[0])),
        "tensorrt version: README uff {}, profile {}",
        tensorrt[0],
        target("tensorrt").version
    );
    assert_eq!(
        count(&tensorrt[1]),
        op_list_len(target("tensorrt"), "registered"),
        "tensorrt converter functions"
    );

    let ascend = common::readme::figures(
        "| `ascend` | Ascend ATC's TensorFlow parser (`op_map.cc`) and canndev's built-in \
         `tf_plugin` registrations | {} ops in `op_map.cc`, {} TensorFlow op types from \
         `tf_plugin`, a partial list: other ops are reported as unverified, not as failures |",
    );
    assert!(target("ascend")
        .sources
        .iter()
        .any(|s| s.path.ends_with("/op_map.cc")));
    assert!(target("ascend")
        .sources
        .iter()
        .any(|s| s.path.starts_with("ops/built-in/framework/tf_plugin/")));
    assert_eq!(
        count(&ascend[0]),
        op_list_len(target("ascend"), "tensorflow_op_map"),
        "ascend op map"
    );
    assert_eq!(
        count(&ascend[1]),
        op_list_len(target("ascend"), "tf_plugin_origin_op_types"),
        "ascend tf_plugin op types"
    );
    assert!(!target("ascend").ops_complete, "ascend's list is partial");
}

/// The README reader takes figures whole, across line breaks, and refuses a sentence that is
/// not there.
#[test]
fn readme_figures_are_read_exactly() {
    let text = "a 4.10.0 b 62-op c 1.1e-6 relative at most, 0.267x. d 5 e";
    assert_eq!(
        common::readme::figures_in(text, "a {} b {}-op c"),
        ["4.10.0", "62"]
    );
    assert_eq!(
        common::readme::figures_in(text, "c {} relative at\n most, {}x."),
        ["1.1e-6", "0.267"]
    );
    assert!(std::panic::catch_unwind(|| common::readme::figures_in(text, "d {} f")).is_err());
    assert!(std::panic::catch_unwind(|| common::readme::figures_in(text, "a {}x")).is_err());
}

/// The graphs real tract-tensorflow judged (tests/fixtures/expected/tract.json, recorded by
/// consumers/tract for exactly these bytes): `check --target=tract` passes exactly those tract
/// loaded (and each of them also ran and matched TensorFlow), and blocks on every other.
#[test]
fn tract_check_agrees_with_real_tract_on_every_judged_graph() {
    let path = common::fixtures().join("expected/tract.json");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let target = Target::by_name("tract").unwrap();
    let cases = report["cases"].as_object().unwrap();
    assert_eq!(cases.len(), 18, "tract cases recorded");
    let mut refused = 0;
    for (case, judged) in cases {
        let name = case.split('@').next().unwrap();
        let graph = common::apply(name, judged["pipeline"].as_str().unwrap());
        assert_eq!(
            common::sha256_hex(&graphopt_core::io::encode_graph(&graph)),
            judged["sha256"].as_str().unwrap(),
            "{case}: not the judged graph"
        );
        let loaded = judged["loaded"].as_bool().unwrap();
        if loaded {
            assert_eq!(judged["matches_tensorflow"], true, "{case}: {judged}");
        } else {
            refused += 1;
        }
        let problems = targets::check(&graph, target);
        assert_eq!(
            !targets::any_blocking(&problems),
            loaded,
            "{case}: check disagrees with tract ({}): {problems:#?}",
            judged["errors"]
        );
    }
    assert!(refused >= 4, "the record has {refused} refused graphs");
}

/// The blocking problems of `graph` for `target`, as (node, op) pairs.
fn blocking_nodes(graph: &graphopt_core::proto::GraphDef, target: &str) -> Vec<(String, String)> {
    targets::check_target(graph, target)
        .unwrap()
        .into_iter()
        .filter(|p| p.blocking)
        .map(|p| (p.node, p.op))
        .collect()
}

/// tract cannot run a TF1 while loop: every NextIteration fails its analysis (the record's
/// "-Sink" error) and the loop gates have no typed form; the raw fixture and the one
/// legalized for tract both fail its check, naming the loop ops.
#[test]
fn tract_refuses_the_while_loop_raw_and_legalized() {
    const STANDARD: &str = "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) fold_constants(ignore_errors=true) fold_batch_norms fold_old_batch_norms sort_by_execution_order";
    for graph in [
        common::load("while_rnn"),
        common::apply("while_rnn", &format!("{STANDARD} legalize(target=tract)")),
    ] {
        let problems = targets::check_target(&graph, "tract").unwrap();
        assert!(targets::any_blocking(&problems));
        let refused: Vec<(&str, ProblemKind)> = problems
            .iter()
            .filter(|p| p.blocking)
            .map(|p| (p.op.as_str(), p.kind))
            .collect();
        for op in ["NextIteration", "Enter", "Exit", "LoopCond"] {
            assert!(
                refused.contains(&(op, ProblemKind::RejectedOp)),
                "{op} not refused: {problems:#?}"
            );
        }
        // The loop's Switches test LoopCond, not a constant; its Merges join no dead branch.
        assert!(refused.contains(&("Switch", ProblemKind::NonConstInput)));
        assert!(refused.contains(&("Merge", ProblemKind::FusedOnly)));
        let sink = problems
            .iter()
            .find(|p| p.node == "while/next_iteration/_34")
            .expect("the NextIteration tract failed on");
        assert!(
            sink.why.contains("Wrong number of outputs") && sink.why.contains("model.rs"),
            "{}",
            sink.why
        );
    }
}

/// resize_pad_conv has ops tract cannot express: MirrorPad (not registered) and
/// ResizeBilinear, the half-pixel one included (no Resize op registered); `check` names each
/// node, raw and after `legalize(target=tract)`, which has no rewrite for them.
#[test]
fn tract_names_mirror_pad_and_half_pixel_resize_bilinear() {
    let raw = common::load("resize_pad_conv");
    let half_pixel: Vec<&str> = raw
        .node
        .iter()
        .filter(|n| {
            n.op == "ResizeBilinear"
                && graphopt_core::graph::attrs::bool(n, "half_pixel_centers") == Some(true)
        })
        .map(|n| n.name.as_str())
        .collect();
    assert!(
        !half_pixel.is_empty(),
        "the fixture has a half-pixel resize"
    );
    let legalized = common::apply(
        "resize_pad_conv",
        "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) fold_constants(ignore_errors=true) fold_batch_norms fold_old_batch_norms sort_by_execution_order legalize(target=tract)",
    );
    for graph in [&raw, &legalized] {
        let refused = blocking_nodes(graph, "tract");
        for node in graph
            .node
            .iter()
            .filter(|n| n.op == "MirrorPad" || n.op == "ResizeBilinear")
        {
            assert!(
                refused.contains(&(node.name.clone(), node.op.clone())),
                "{} ({}) not named: {refused:?}",
                node.name,
                node.op
            );
        }
        for name in &half_pixel {
            assert!(
                refused.iter().any(|(n, _)| n == name),
                "{name}: {refused:?}"
            );
        }
        assert!(
            refused.iter().any(|(_, op)| op == "MirrorPad"),
            "{refused:?}"
        );
        // Every one named with why: neither op is in tract's registry.
        let problems = targets::check_target(graph, "tract").unwrap();
        for op in ["ResizeBilinear", "MirrorPad"] {
            let named: Vec<_> = problems.iter().filter(|p| p.op == op).collect();
            assert!(!named.is_empty(), "{op} not named");
            for problem in named {
                assert!(
                    problem
                        .why
                        .starts_with("not registered in tract-tensorflow 0.23"),
                    "{op}: {}",
                    problem.why
                );
            }
        }
    }
}

/// `legalize(target=tvm)`: a ResourceGather of a frozen table (TVM's "Graph is not frozen")
/// becomes GatherV2 on axis 0, TVM's check passes, and the gathered rows are the same.
#[test]
fn tvm_legalize_turns_resource_gather_into_gather_v2() {
    use graphopt_core::proto::{GraphDef, TensorProto};
    use graphopt_core::transforms::{self, Registry};
    let text = r#"
node {
  name: "table"
  op: "Const"
  attr { key: "dtype" value { type: DT_FLOAT } }
  attr {
    key: "value"
    value {
      tensor {
        dtype: DT_FLOAT
        tensor_shape { dim { size: 3 } dim { size: 2 } }
        float_val: [1, 2, 3, 4, 5, 6]
      }
    }
  }
}
node {
  name: "ids"
  op: "Placeholder"
  attr { key: "dtype" value { type: DT_INT32 } }
  attr { key: "shape" value { shape { dim { size: 2 } } } }
}
node {
  name: "rows"
  op: "ResourceGather"
  input: "table"
  input: "ids"
  attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "Tindices" value { type: DT_INT32 } }
}
"#;
    let mut graph: GraphDef = graphopt_core::text_format::parse(text).unwrap();
    let before = blocking_nodes(&graph, "tvm");
    assert_eq!(before, [("rows".to_string(), "ResourceGather".to_string())]);
    let specs = transforms::parse("legalize(target=tvm)").unwrap();
    transforms::run(
        &Registry::with_builtins(),
        &mut graph,
        &specs,
        &["ids".to_string()],
        &["rows".to_string()],
    )
    .unwrap();
    let rows = graph.node.iter().find(|n| n.name == "rows").unwrap();
    assert_eq!(rows.op, "GatherV2");
    assert_eq!(rows.input.len(), 3, "{:?}", rows.input);
    assert_eq!(rows.input[..2], ["table", "ids"]);
    let axis = graph.node.iter().find(|n| n.name == rows.input[2]).unwrap();
    assert_eq!(axis.op, "Const");
    let axis_value = graphopt_core::graph::edit::const_value(axis).unwrap();
    assert_eq!(axis_value.integers(), Some(vec![0]));
    assert!(!graph.node.iter().any(|n| n.op == "ResourceGather"));
    assert_eq!(blocking_nodes(&graph, "tvm"), []);
    let ids = TensorProto {
        dtype: graphopt_core::proto::DataType::DtInt32 as i32,
        tensor_shape: Some(graphopt_core::proto::TensorShapeProto {
            dim: vec![graphopt_core::proto::tensor_shape_proto::Dim {
                size: 2,
                name: String::new(),
            }],
            unknown_rank: false,
        }),
        int_val: vec![2, 0],
        ..Default::default()
    };
    let feeds = [(
        "ids".to_string(),
        graphopt_core::tensor::Tensor::from_proto(&ids).unwrap(),
    )]
    .into_iter()
    .collect();
    let out =
        graphopt_core::eval::evaluate(&graph, &feeds, &["rows".to_string()], Default::default())
            .unwrap();
    assert_eq!(out[0].shape(), [2, 2]);
    assert_eq!(out[0].floats(), Some(vec![5.0, 6.0, 1.0, 2.0]));
}

/// A ResourceGather of a Const table with one data input (validation checks no op's arity)
/// panicked legalize (the axis was inserted at position 2 of one input); with a control input
/// after its two data inputs, the axis must go before the control input.
#[test]
fn legalize_rewrites_resource_gathers_of_any_input_list_without_panicking() {
    use graphopt_core::proto::GraphDef;
    use graphopt_core::transforms::{self, Registry};
    let table = r#"
node {
  name: "table"
  op: "Const"
  attr { key: "dtype" value { type: DT_FLOAT } }
  attr {
    key: "value"
    value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 3 } } float_val: [1, 2, 3] } }
  }
}
node {
  name: "ids"
  op: "Placeholder"
  attr { key: "dtype" value { type: DT_INT32 } }
  attr { key: "shape" value { shape { dim { size: 2 } } } }
}
node { name: "first" op: "Relu" input: "ids" attr { key: "T" value { type: DT_INT32 } } }
"#;
    let gather = |inputs: &str| {
        format!(
            r#"{table}
node {{
  name: "rows"
  op: "ResourceGather"
  {inputs}
  attr {{ key: "dtype" value {{ type: DT_FLOAT }} }}
  attr {{ key: "Tindices" value {{ type: DT_INT32 }} }}
}}"#
        )
    };
    for target in ["tvm", "tract"] {
        let specs = transforms::parse(&format!("legalize(target={target})")).unwrap();
        // One data input: left as it is, and the target's check still names it.
        let mut graph: GraphDef =
            graphopt_core::text_format::parse(&gather(r#"input: "table""#)).unwrap();
        transforms::run(&Registry::with_builtins(), &mut graph, &specs, &[], &[]).unwrap();
        let rows = graph.node.iter().find(|n| n.name == "rows").unwrap();
        assert_eq!(rows.op, "ResourceGather", "{target}");
        assert_eq!(rows.input, ["table"], "{target}");
    }
    // A control input after the data inputs: the axis goes between them.
    let mut graph: GraphDef = graphopt_core::text_format::parse(&gather(
        r#"input: "table" input: "ids" input: "^first""#,
    ))
    .unwrap();
    assert_eq!(
        graphopt_core::rewrite::legalize::resource_gathers_to_gather_v2(&mut graph),
        1
    );
    let rows = graph.node.iter().find(|n| n.name == "rows").unwrap();
    assert_eq!(rows.op, "GatherV2");
    assert_eq!(rows.input.len(), 4, "{:?}", rows.input);
    assert_eq!(rows.input[..2], ["table", "ids"]);
    assert_eq!(rows.input[3], "^first");
    graphopt_core::graph::validate(&graph).unwrap();
}

/// Legalizing a legalized graph gives the same nodes: on training_leftovers every target's
/// second run removed one more Identity (a TF1 cond's `control_dependency`, kept for its
/// control input until the control-edge pass dropped that input). Their order may differ: on
/// atrous_conv, OpenCV's second run flattens the atrous pattern with a Pad in front and
/// rebuilds it with that Pad before the pattern's Consts rather than after (OpenCV judged the
/// first order; see docs/robustness.md).
#[test]
fn legalize_is_a_fixed_point_on_every_fixture() {
    use graphopt_core::transforms::{self, Registry};
    use prost::Message as _;
    let registry = Registry::with_builtins();
    for model in common::fixture_files() {
        for target in ["opencv", "tract", "tvm", "tensorrt", "ascend", "graphopt"] {
            let specs = transforms::parse(&format!("legalize(target={target})")).unwrap();
            let mut once = common::load(&model);
            if transforms::run(&registry, &mut once, &specs, &[], &[]).is_err() {
                continue;
            }
            let mut twice = once.clone();
            transforms::run(&registry, &mut twice, &specs, &[], &[])
                .unwrap_or_else(|e| panic!("{model} {target}: second run: {e}"));
            let nodes = |g: &graphopt_core::proto::GraphDef| {
                let mut nodes: Vec<Vec<u8>> = g.node.iter().map(|n| n.encode_to_vec()).collect();
                nodes.sort();
                nodes
            };
            assert!(
                nodes(&once) == nodes(&twice) && once.library == twice.library,
                "{model} {target}: {} nodes after one run, {} after two",
                once.node.len(),
                twice.node.len()
            );
        }
    }
}
