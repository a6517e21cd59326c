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

/// The pipelines whose outputs are pinned.
const PIPELINES: &[&str] = &[
    STANDARD,
    "@deploy",
    "quantize_weights(minimum_size=16)",
    "round_weights(num_steps=256)",
    "merge_duplicate_nodes sort_by_execution_order",
    "obfuscate_names",
];

fn digests() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in common::MODELS {
        for pipeline in PIPELINES {
            let graph = common::apply(name, pipeline);
            out.insert(
                format!("{name} | {pipeline}"),
                common::sha256_hex(&io::encode_graph(&graph)),
            );
            if *pipeline == "@deploy" {
                let text = graphopt_core::text_format::to_text(&graph).unwrap();
                out.insert(
                    format!("{name} | {pipeline} | text"),
                    common::sha256_hex(text.as_bytes()),
                );
            }
        }
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
