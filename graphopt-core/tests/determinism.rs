//! Output bytes are fixed: the SHA-256 of every pipeline's output on every fixture is committed
//! (tests/fixtures/expected/output_sha256.json), so a different machine, compiler, hash seed or
//! dependency version that changes one byte fails here, not in a user's cache.
//!
//! After an intended change to a transform, regenerate the file with
//! `GRAPHOPT_BLESS=1 cargo test -p graphopt-core --test determinism` and commit it.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use graphopt_core::io;

const STANDARD: &str = "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) fold_constants(ignore_errors=true) fold_batch_norms fold_old_batch_norms sort_by_execution_order";

/// The pipelines whose outputs are pinned: the standard pipeline, `@deploy`, every
/// registered transform on its own (with parameters where it needs them), but those
/// [`NOT_PINNED_ALONE`] gives a reason for, and each target's legalize after the standard
/// pipeline. `every_registered_transform_is_pinned_alone` holds this list to the registry.
const PIPELINES: &[&str] = &[
    STANDARD,
    "@deploy",
    "quantize_weights(minimum_size=16)",
    "round_weights(num_steps=256)",
    "merge_duplicate_nodes sort_by_execution_order",
    "obfuscate_names",
    "add_default_attributes",
    "add_shapes",
    "backport_concatv2",
    "backport_tensor_array_v3",
    "convert_to_nchw",
    "convert_to_nchw(keep_io_layout=false)",
    "flatten_atrous_conv",
    "fold_constants",
    "fold_batch_norms",
    "fold_old_batch_norms",
    "fold_scale_axis",
    "fuse_resize_pad_and_conv fuse_resize_and_conv fuse_pad_and_conv",
    "inline_partitionedcall",
    "insert_logging(op=Relu)",
    "remove_control_dependencies",
    "remove_device",
    "remove_leftovers",
    "remove_nodes(op=Identity)",
    "remove_training_nodes",
    "rename_op(old_op_name=Relu, new_op_name=Relu6)",
    "strip_unused_nodes",
    "merge_duplicate_nodes",
    "fuse_pad_and_conv",
    "fuse_resize_and_conv",
    "fuse_resize_pad_and_conv",
    "simplify_arithmetic",
    "set_device(device=/device:CPU:0)",
    "remove_attribute(op_name=Placeholder, attribute_name=shape)",
    "rename_attribute(op_name=Placeholder, old_attribute_name=shape, new_attribute_name=_input_shape)",
    // Every fixture's input is called `input`.
    "rename_node(old_node_name=input, new_node_name=image)",
    "sort_by_execution_order",
];

/// Registered transforms with no pipeline of their own in [`PIPELINES`], each with the reason.
const NOT_PINNED_ALONE: &[(&str, &str)] = &[
    (
        "fix_input_shapes",
        "needs each fixture's own input shapes; pinned through the consumers' records \
         (tests/fixtures/expected/opencv.json, tract.json)",
    ),
    (
        "legalize",
        "needs a target; pinned for each of TARGETS after the standard pipeline",
    ),
];

/// The targets whose legalize is pinned, each after the standard pipeline.
const TARGETS: &[&str] = &["opencv", "tract", "tvm", "tensorrt", "ascend", "graphopt"];

/// The SavedModel and checkpoint fixtures whose frozen graphs are pinned.
const SAVED: &[&str] = &[
    "keras_cnn",
    "keras_normalization",
    "tf1_saved_model",
    "while_embedding",
];

/// The digest of `pipeline`'s output on fixture `name`, or of its error's text: an error is an
/// output too, and must not change silently either.
fn digest_of(name: &str, pipeline: &str) -> (String, Option<graphopt_core::proto::GraphDef>) {
    use graphopt_core::transforms::{self, Registry};
    let (inputs, outputs) = common::io_names(name);
    let mut graph = common::load(name);
    let specs = transforms::parse(pipeline).unwrap();
    match transforms::run(
        &Registry::with_builtins(),
        &mut graph,
        &specs,
        &inputs,
        &outputs,
    ) {
        Ok(_) => (common::sha256_hex(&io::encode_graph(&graph)), Some(graph)),
        Err(error) => (
            format!("error {}", common::sha256_hex(error.to_string().as_bytes())),
            None,
        ),
    }
}

fn digests() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let legalized: Vec<String> = TARGETS
        .iter()
        .map(|t| format!("{STANDARD} legalize(target={t})"))
        .collect();
    for name in common::MODELS {
        for pipeline in PIPELINES
            .iter()
            .copied()
            .chain(legalized.iter().map(String::as_str))
        {
            let (digest, graph) = digest_of(name, pipeline);
            out.insert(format!("{name} | {pipeline}"), digest);
            if let (true, Some(graph)) = (pipeline == "@deploy", graph) {
                let text = graphopt_core::text_format::to_text(&graph).unwrap();
                out.insert(
                    format!("{name} | {pipeline} | text"),
                    common::sha256_hex(text.as_bytes()),
                );
            }
        }
    }
    let saved = common::fixtures().join("saved");
    for name in SAVED {
        let frozen =
            graphopt_core::freeze::freeze_saved_model(&saved.join(name), &Default::default())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        out.insert(
            format!("saved/{name} | freeze"),
            common::sha256_hex(&io::encode_graph(&frozen.graph)),
        );
    }
    out
}

#[test]
fn pipeline_outputs_have_the_committed_digests() {
    let path = common::fixtures().join("expected/output_sha256.json");
    let ours = digests();
    if std::env::var("GRAPHOPT_BLESS").is_ok_and(|v| !v.is_empty() && v != "0") {
        let text = serde_json::to_string_pretty(&ours).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
    }
    let committed: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let differing: Vec<&String> = ours
        .keys()
        .filter(|k| committed.get(*k) != ours.get(*k))
        .collect();
    assert_eq!(
        committed.len(),
        ours.len(),
        "the committed digests cover other pipelines or fixtures; bless them again"
    );
    assert!(
        differing.is_empty(),
        "{} outputs changed bytes (GRAPHOPT_BLESS=1 after an intended change):\n{}",
        differing.len(),
        differing
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// What breaks "every registered transform is pinned on its own": a registered transform with
/// neither a one-transform pipeline in `pipelines` nor a reason in `not_alone`, an empty
/// reason, a reason for a transform that is pinned alone after all, and a name in either list
/// that is not registered.
fn pin_problems(
    registered: &BTreeSet<String>,
    pipelines: &[&str],
    not_alone: &[(&str, &str)],
) -> Vec<String> {
    let alone: BTreeSet<String> = pipelines
        .iter()
        .filter_map(|pipeline| {
            let specs = graphopt_core::transforms::parse(pipeline)
                .unwrap_or_else(|e| panic!("{pipeline}: {e}"));
            match specs.as_slice() {
                [spec] => Some(spec.name.clone()),
                _ => None,
            }
        })
        .collect();
    let excused: BTreeMap<&str, &str> = not_alone.iter().copied().collect();
    let mut problems = Vec::new();
    for name in registered {
        match (alone.contains(name), excused.get(name.as_str())) {
            (false, None) => problems.push(format!(
                "'{name}' is registered but has no pipeline of its own in PIPELINES and no \
                 reason in NOT_PINNED_ALONE"
            )),
            (true, Some(_)) => problems.push(format!(
                "'{name}' is pinned alone, yet NOT_PINNED_ALONE gives a reason for not pinning it"
            )),
            (false, Some(reason)) if reason.trim().is_empty() => {
                problems.push(format!("'{name}' has an empty reason in NOT_PINNED_ALONE"))
            }
            _ => {}
        }
    }
    for name in alone
        .iter()
        .map(String::as_str)
        .chain(excused.keys().copied())
    {
        if !registered.contains(name) {
            problems.push(format!("'{name}' is not a registered transform"));
        }
    }
    problems
}

fn builtin_names() -> BTreeSet<String> {
    graphopt_core::transforms::Registry::with_builtins()
        .iter()
        .map(|t| t.name().to_string())
        .collect()
}

#[test]
fn every_registered_transform_is_pinned_alone() {
    let registered = builtin_names();
    assert!(registered.len() > 30, "{registered:?}");
    let problems = pin_problems(&registered, PIPELINES, NOT_PINNED_ALONE);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_pin_check_fails_on_a_gap() {
    // A new transform with no pin and no reason.
    let mut registered = builtin_names();
    registered.insert("new_transform".into());
    assert_eq!(
        pin_problems(&registered, PIPELINES, NOT_PINNED_ALONE),
        [
            "'new_transform' is registered but has no pipeline of its own in PIPELINES and no \
          reason in NOT_PINNED_ALONE"
        ]
    );
    let registered = builtin_names();
    // A pin dropped: a transform only run together with others is not pinned alone.
    let without: Vec<&str> = PIPELINES
        .iter()
        .copied()
        .filter(|p| *p != "sort_by_execution_order")
        .collect();
    assert_eq!(
        pin_problems(&registered, &without, NOT_PINNED_ALONE).len(),
        1
    );
    // A reason removed, emptied, or given for a transform that is pinned.
    assert_eq!(
        pin_problems(&registered, PIPELINES, &NOT_PINNED_ALONE[1..]).len(),
        1
    );
    assert_eq!(
        pin_problems(
            &registered,
            PIPELINES,
            &[("fix_input_shapes", " "), NOT_PINNED_ALONE[1]]
        ),
        ["'fix_input_shapes' has an empty reason in NOT_PINNED_ALONE"]
    );
    let mut extra = NOT_PINNED_ALONE.to_vec();
    extra.push(("obfuscate_names", "no reason"));
    assert_eq!(pin_problems(&registered, PIPELINES, &extra).len(), 1);
    // A pin or reason for a transform that is not registered.
    let mut stale = PIPELINES.to_vec();
    stale.push("removed_transform");
    assert_eq!(
        pin_problems(&registered, &stale, NOT_PINNED_ALONE),
        ["'removed_transform' is not a registered transform"]
    );
}
