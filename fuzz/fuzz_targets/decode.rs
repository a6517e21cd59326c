//! GraphDef bytes, binary or text, through what `graphopt summarize` does: decode, validate,
//! summarize, order, and write back out.
#![no_main]

use std::path::Path;

use graphopt_core::{graph, io, summary};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    graphopt_fuzz::budget().enter(|| {
        let data = bytes::Bytes::copy_from_slice(data);
        let Ok((graph, _format)) = io::decode_graph(data.clone(), Path::new("fuzz.pb")) else {
            return;
        };
        let _ = summary::summarize(&graph, Some(data.len() as u64));
        if graph::validate(&graph).is_err() {
            return;
        }
        let _ = summary::structure(&graph);
        let _ = graph::execution_order(&graph);
        let encoded = io::encode_graph(&graph);
        let _ = io::decode_graph(encoded.into(), Path::new("again.pb"));
        let _ = io::graph_to_text(&graph);
    });
});
