//! The text-format parser on arbitrary UTF-8, as GraphDef and as SavedModel; what parses is
//! written back as text and parsed again.
#![no_main]

use graphopt_core::proto::{GraphDef, SavedModel};
use graphopt_core::text_format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    graphopt_fuzz::budget().enter(|| {
        if text_format::check_nesting(text).is_err() {
            return;
        }
        if let Ok(graph) = text_format::parse::<GraphDef>(text) {
            if let Ok(again) = text_format::to_text(&graph) {
                let reparsed = text_format::parse::<GraphDef>(&again);
                assert!(
                    reparsed.is_ok(),
                    "graphopt's own text output does not parse: {reparsed:?}"
                );
            }
        }
        let _ = text_format::parse::<SavedModel>(text);
    });
});
