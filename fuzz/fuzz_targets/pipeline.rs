//! Transform pipelines on structurally generated graphs (see `graphopt_fuzz::gen`): one to four
//! transforms of the registry (fold_constants, shape inference, batch-norm folding, @deploy, ...)
//! with generated parameters, run as `graphopt transform` runs them; the result is written out.
//!
//! Besides panics and runaway memory, a transform that leaves an invalid graph is a finding
//! (the runner reports it as an error, but the transform is wrong), except for the ones that
//! edit exactly what they are told to (renaming an op, removing an attribute).
#![no_main]

use arbitrary::Unstructured;
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
    graphopt_fuzz::generated_budget().enter(|| {
        if graph::validate(&generated.graph).is_err() {
            return;
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
                let _ = io::encode_graph(&graph);
            }
            Err(error @ Error::TransformBrokeGraph { transform, .. }) => {
                assert!(told_to(transform), "{text}: {error}");
            }
            Err(_) => {}
        }
    });
});
