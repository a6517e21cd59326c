//! graphopt-build: the build-script side of graphopt.
//!
//! In a `build.rs`, `graphopt_build::Model::new("name", "models/model.pb")` with
//! `.inputs()`, `.outputs()` and `.transforms("...")` will freeze, optimize, content-hash and
//! cache the model and write `$OUT_DIR/graphopt/NAME.pb` plus its manifest for
//! `include_model!`. That API lands with the build-integration work; today this crate
//! re-exports graphopt-core so build scripts can already load, validate and transform graphs:
//!
//! ```no_run
//! use graphopt_build::core::{io, transforms};
//! let mut graph = io::read_graph("models/model.pb")?.graph;
//! let specs = transforms::parse("remove_device sort_by_execution_order")?;
//! transforms::run(&transforms::Registry::with_builtins(), &mut graph, &specs, &[], &[])?;
//! io::write_graph("optimized.pb", &graph, io::GraphFormat::Binary)?;
//! # Ok::<(), graphopt_build::core::Error>(())
//! ```

pub use graphopt_core as core;
