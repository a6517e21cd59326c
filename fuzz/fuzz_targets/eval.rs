//! The reference evaluator on small structurally generated graphs (see `graphopt_fuzz::gen`),
//! fed tensors shaped like their placeholders; sometimes also `verify` of the graph against
//! itself, which seeds its own inputs, and static shape inference.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Unstructured;
use graphopt_core::tensor::Tensor;
use graphopt_core::{analysis, eval, graph, verify};
use graphopt_fuzz::gen;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(generated) = gen::graph(&mut u) else {
        return;
    };
    let feeds = gen::feeds(&mut u, &generated).unwrap_or_default();
    let also_verify = u.ratio(1, 4).unwrap_or(false);
    graphopt_fuzz::generated_budget().enter(|| {
        if graph::validate(&generated.graph).is_err() {
            return;
        }
        let feeds: BTreeMap<String, Tensor> = feeds
            .iter()
            .filter_map(|(name, proto)| Some((name.clone(), Tensor::from_proto(proto).ok()?)))
            .collect();
        let _ = analysis::shapes::infer_graph(&generated.graph);
        let result = eval::evaluate(
            &generated.graph,
            &feeds,
            &generated.outputs,
            eval::Options::default(),
        );
        if graphopt_fuzz::debug() {
            let shapes = result.map(|t| t.iter().map(|t| t.shape().to_vec()).collect::<Vec<_>>());
            eprintln!(
                "{} fed {}/{} -> {shapes:?}",
                graphopt_fuzz::ops(&generated.graph),
                feeds.len(),
                generated.placeholders.len()
            );
        }
        if also_verify {
            let options = verify::VerifyOptions {
                outputs: generated.outputs.clone(),
                unknown_dim: 1,
                ..Default::default()
            };
            let _ = verify::compare(&generated.graph, &generated.graph, &options);
        }
    });
});
