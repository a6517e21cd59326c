//! Transform pipelines on structurally generated graphs (see `graphopt_fuzz::gen`): one to four
//! transforms of the registry (fold_constants, shape inference, batch-norm folding, @deploy, ...)
//! with generated parameters, run as `graphopt transform` runs them; the result is written out.
#![no_main]

use arbitrary::Unstructured;
use graphopt_core::transforms::{self, Registry};
use graphopt_core::{graph, io};
use graphopt_fuzz::gen;
use libfuzzer_sys::fuzz_target;

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
        let mut graph = generated.graph;
        if transforms::run(registry(), &mut graph, &specs, &inputs, &outputs).is_ok() {
            let _ = io::encode_graph(&graph);
        }
    });
});
