//! The README's "Why": what TensorFlow's own legacy tools do with Keras 3 graphs, as
//! `tests/fixtures/record_tf_tools.py` recorded it with TF 2.21 (`expected/tf_tools.json`),
//! against what graphopt does with the same fixtures.

mod common;

fn ops(record: &serde_json::Value, op: &str) -> u64 {
    record["ops"][op].as_u64().unwrap_or(0)
}

fn record() -> serde_json::Value {
    let path = common::fixtures().join("expected/tf_tools.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The per-fixture records.
fn recorded() -> Vec<(String, serde_json::Value)> {
    let fixtures: Vec<_> = record()
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| {
            !matches!(
                name.as_str(),
                "fused_kernels_batch_2" | "tensorflow_version"
            )
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    assert_eq!(
        fixtures.len(),
        3,
        "the three Keras 3 fixtures with batch norms"
    );
    fixtures
}

/// The README's "measured with TF 2.21 on three Keras 3 fixtures" is the record's.
#[test]
fn the_readme_names_the_recorded_tensorflow_and_fixture_count() {
    let version = record()["tensorflow_version"]
        .as_str()
        .expect("the record's tensorflow_version")
        .to_string();
    let words = ["no", "one", "two", "three", "four", "five", "six"];
    let count = words[recorded().len()];
    let minor: Vec<&str> = version.split('.').take(2).collect();
    let sentence = format!(
        "measured with TF {} on {count} Keras 3 fixtures",
        minor.join(".")
    );
    let readme = std::fs::read_to_string(common::fixtures().join("../../README.md")).unwrap();
    assert!(
        readme.replace('\n', " ").contains(&sentence),
        "README.md does not say \"{sentence}\""
    );
}

#[test]
fn optimize_for_inference_changes_nothing_on_keras_3_graphs() {
    for (name, record) in recorded() {
        let original = &record["original"];
        let optimized = &record["optimize_for_inference"];
        assert_eq!(
            original, optimized,
            "{name}: optimize_for_inference changed the graph"
        );
        // The record is of the committed fixture.
        assert_eq!(
            original["nodes"].as_u64().unwrap(),
            common::load(&name).node.len() as u64,
            "{name}"
        );
    }
}

#[test]
fn gtt_leaves_keras_3_batch_norms_and_graphopt_folds_them() {
    for (name, record) in recorded() {
        // Keras 3 writes each batch norm as Rsqrt, Sub and Muls around the convolution; GTT's
        // fold_batch_norms leaves one Mul per batch norm after folding the constant part.
        let batch_norms = ops(&record["original"], "Rsqrt");
        assert!(batch_norms > 0, "{name}");
        // "a Mul per batch norm": of the three Muls Keras 3 writes per batch norm, GTT folds
        // two and leaves one; the model's own Muls stay too.
        let left = ops(&record["gtt_standard"], "Mul");
        let own = ops(&record["original"], "Mul") - 3 * batch_norms;
        assert_eq!(
            left,
            batch_norms + own,
            "{name}: GTT left {left} Muls for {batch_norms} batch norms"
        );
        let graphopt = common::apply(&name, "@deploy");
        let muls = graphopt.node.iter().filter(|n| n.op == "Mul").count() as u64;
        assert!(
            muls + batch_norms <= left,
            "{name}: graphopt leaves {muls} Muls, GTT {left}, for {batch_norms} batch norms"
        );
    }
}

#[test]
fn gtt_output_differs_between_two_runs_and_graphopts_does_not() {
    for (name, record) in recorded() {
        let digests = record["gtt_sha256_two_processes"].as_array().unwrap();
        assert_eq!(digests.len(), 2);
        assert_ne!(
            digests[0], digests[1],
            "{name}: GTT wrote the same bytes twice"
        );
        let once = graphopt_core::io::encode_graph(&common::apply(&name, "@deploy"));
        let again = graphopt_core::io::encode_graph(&common::apply(&name, "@deploy"));
        assert_eq!(once, again, "{name}");
    }
}

#[test]
fn tensorflows_fused_convolutions_are_wrong_after_the_first_image() {
    // Why graphopt fuses only batch-1 convolutions (structural_transforms.rs checks it does).
    let fused = &record()["fused_kernels_batch_2"];
    for op in ["FusedPadConv2D", "FusedResizeAndPadConv2D"] {
        let errors: Vec<f64> = fused[op]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_f64().unwrap())
            .collect();
        assert!(
            errors[0] < 1e-5,
            "{op}: the first image is right ({errors:?})"
        );
        assert!(
            errors[1] > 1.0,
            "{op}: the second image is wrong ({errors:?})"
        );
    }
    // The README's figures are these errors, rounded.
    let readme = common::readme::figures(
        "(`expected/tf_tools.json`: errors of {} and {} on the second of two images",
    );
    let recorded: Vec<String> = ["FusedPadConv2D", "FusedResizeAndPadConv2D"]
        .iter()
        .map(|op| format!("{:.0}", fused[op][1].as_f64().unwrap()))
        .collect();
    assert_eq!(readme, recorded);
}
