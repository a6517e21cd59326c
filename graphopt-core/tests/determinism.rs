//! Output bytes are fixed: the SHA-256 of every pipeline's output on every fixture is committed
//! (tests/fixtures/expected/output_sha256.json), so a different machine, compiler, hash seed or
//! dependency version that changes one byte fails here, not in a user's cache.
//!
//! After an intended change to a transform, regenerate the file with
//! `GRAPHOPT_BLESS=1 cargo test -p graphopt-core --test determinism` and commit it.

mod common;

use std::collections::BTreeMap;

use graphopt_core::io;

const STANDARD: &str = "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) fold_constants(ignore_errors=true) fold_batch_norms fold_old_batch_norms sort_by_execution_order";

/// The pipelines whose outputs are pinned: the standard pipeline, `@deploy`, every
/// registered transform on its own (with parameters where it needs them; `fix_input_shapes`
/// needs each fixture's shapes, and is pinned through the consumers' records), and each
/// target's legalize after the standard pipeline.
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
