//! The transform-string parser on arbitrary strings: a string that parses has a canonical
//! form that parses to the same transforms, and the registry checks it without panicking.
#![no_main]

use graphopt_core::transforms::{self, spec, Registry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    graphopt_fuzz::budget().enter(|| {
        let Ok(specs) = transforms::parse(text) else {
            return;
        };
        let canonical = spec::canonical(&specs);
        let again = transforms::parse(&canonical)
            .unwrap_or_else(|e| panic!("canonical form {canonical:?} does not parse: {e}"));
        let strip = |specs: &[transforms::TransformSpec]| {
            specs
                .iter()
                .map(|s| (s.name.clone(), s.params.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&specs), strip(&again), "canonical form {canonical:?}");
        static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
        let _ = REGISTRY.get_or_init(Registry::with_builtins).check(&specs);
    });
});
