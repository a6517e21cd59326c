//! Transform pipelines on structurally generated graphs (see `graphopt_fuzz::gen`): one to four
//! transforms of the registry (fold_constants, shape inference, batch-norm folding, @deploy, ...)
//! with generated parameters, run as `graphopt transform` runs them; the result is written out.
//!
//! Besides panics and runaway memory, a transform that leaves an invalid graph is a finding
//! (the runner reports it as an error, but the transform is wrong), except for the ones that
//! edit exactly what they are told to (renaming an op, removing an attribute). So is a
//! difference between the two ways a pipeline's result is written: the CLI's (batch-norm
//! folding's weights left late and computed as the file is written) and the in-memory one.
#![no_main]

use arbitrary::Unstructured;
use graphopt_core::proto::GraphDef;
use graphopt_core::transforms::{self, Registry};
use graphopt_core::{graph, io, Error};
use graphopt_fuzz::gen;
use libfuzzer_sys::fuzz_target;

/// Transforms that may legitimately leave an invalid graph: they do what the parameters say.
const TOLD_TO: &[&str] = &["rename_op", "rename_attribute", "remove_attribute"];

fn told_to(transform: &str) -> bool {
    TOLD_TO.iter().any(|t| transform.starts_with(t))
}

fn registry() -> &'static Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(Registry::with_builtins)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(generated) = gen::graph(&mut u) else {
        return;
    };
    let Ok(text) = gen::transforms(&mut u, registry(), &generated) else {
        return;
    };
    let give_inputs = u.ratio(3, 4).unwrap_or(true);
    let give_outputs = u.ratio(4, 5).unwrap_or(true);
    let compare = graphopt_fuzz::generated_budget().enter(|| {
        if graph::validate(&generated.graph).is_err() {
            return None;
        }
        let specs = transforms::parse(&text)
            .unwrap_or_else(|e| panic!("generated transform string {text:?}: {e}"));
        let inputs: Vec<String> = if give_inputs {
            generated.placeholders.iter().map(|p| p.0.clone()).collect()
        } else {
            Vec::new()
        };
        let outputs = if give_outputs {
            generated.outputs.clone()
        } else {
            Vec::new()
        };
        let before = graphopt_fuzz::debug().then(|| graphopt_fuzz::ops(&generated.graph));
        let original = generated.graph.clone();
        let mut graph = generated.graph;
        let result = transforms::run(registry(), &mut graph, &specs, &inputs, &outputs);
        if let Some(before) = before {
            let ignored: Vec<String> = result
                .iter()
                .flatten()
                .filter_map(|o| o.ignored_error.clone())
                .collect();
            eprintln!(
                "{before} | {text} -> {:?} ignored {ignored:?} => {}",
                result.as_ref().err().map(ToString::to_string),
                graphopt_fuzz::ops(&graph)
            );
        }
        match &result {
            Ok(outcomes) => {
                for outcome in outcomes {
                    if let Some(error) = &outcome.ignored_error {
                        assert!(
                            told_to(&outcome.transform) || !error.contains("left an invalid graph"),
                            "{text}: {error}"
                        );
                    }
                }
                let written = io::encode_graph(&graph);
                Some((original, specs, inputs, outputs, skipped(outcomes), written))
            }
            Err(error @ Error::TransformBrokeGraph { transform, .. }) => {
                assert!(told_to(transform), "{text}: {error}");
                None
            }
            Err(_) => None,
        }
    });
    // A budget of its own, as a second `graphopt transform` would have: what the first run
    // still holds must not starve it.
    if let Some((original, specs, inputs, outputs, skipped, written)) = compare {
        graphopt_fuzz::generated_budget().enter(|| {
            deferred_writes_the_same(
                original, &specs, &inputs, &outputs, &skipped, &written, &text,
            )
        });
    }
});

/// Which transforms `ignore_errors=true` skipped.
fn skipped(outcomes: &[transforms::TransformOutcome]) -> Vec<bool> {
    outcomes.iter().map(|o| o.ignored_error.is_some()).collect()
}

/// Runs the pipeline again as `graphopt transform` does (`run_deferred`, then the binary
/// writer computing late weights chunk by chunk) and holds its bytes to `expected`, what the
/// in-memory run encoded. Runs where a different set of transforms was skipped (the deferred
/// run needs less memory, so a step skipped for want of it may run) are not compared.
fn deferred_writes_the_same(
    original: GraphDef,
    specs: &[transforms::TransformSpec],
    inputs: &[String],
    outputs: &[String],
    expected_skipped: &[bool],
    expected: &[u8],
    text: &str,
) {
    let (deferred, outcomes) =
        transforms::run_deferred(registry(), original, specs, inputs, outputs).unwrap_or_else(
            |e| panic!("{text}: the in-memory run succeeded, the deferred one: {e}"),
        );
    if skipped(&outcomes) != expected_skipped {
        return;
    }
    let written = if deferred.late_count() == 0 {
        io::encode_graph(&computed(deferred, text))
    } else {
        let path = std::env::temp_dir().join(format!("graphopt-fuzz-{}.pb", std::process::id()));
        io::write_deferred(&path, &deferred, io::GraphFormat::Binary)
            .unwrap_or_else(|e| panic!("{text}: writing late weights: {e}"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading back: {e}"));
        let _ = std::fs::remove_file(&path);
        // Text output computes them all first.
        assert!(
            io::encode_graph(&computed(deferred, text)) == expected,
            "{text}: computing the late weights at once differs from the in-memory run"
        );
        bytes
    };
    if written != expected {
        let text_of = |bytes: &[u8]| {
            io::decode_graph(bytes.to_vec().into(), std::path::Path::new("written"))
                .and_then(|(graph, _)| io::graph_to_text(&graph))
                .unwrap_or_else(|e| e.to_string())
        };
        panic!(
            "{text}: the deferred write ({} bytes) differs from the in-memory run ({} bytes)\n\
             deferred:\n{}\nin memory:\n{}",
            written.len(),
            expected.len(),
            text_of(&written),
            text_of(expected)
        );
    }
}

/// The graph with its late weights computed at once (as text output and `transforms::run`
/// compute them).
fn computed(deferred: graphopt_core::late_weights::Deferred, text: &str) -> GraphDef {
    deferred
        .into_graph()
        .unwrap_or_else(|e| panic!("{text}: computing the late weights: {e}"))
}
