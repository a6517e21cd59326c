//! graphopt-macros: the `include_model!` proc-macro, re-exported by the `graphopt` crate.
//!
//! `include_model!(name)` will read the artifact manifest `$OUT_DIR/graphopt/NAME.json` that
//! `graphopt-build` writes and expand to `pub mod NAME` with `GRAPH_DEF` (via `include_bytes!`),
//! `SHA256`, `TRANSFORMS`, `INPUTS`/`OUTPUTS` and one constant per tensor. It reads only the
//! manifest and never links graphopt-core. The macro lands with the build-integration work;
//! until then this crate exports nothing.
