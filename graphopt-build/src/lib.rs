//! graphopt-build: optimize TensorFlow models at compile time, from a `build.rs`.
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), graphopt_build::Error> {
//!     graphopt_build::Model::new("digits", "models/digits.pb")
//!         .inputs(["image"])
//!         .outputs(["probs"])
//!         .transforms("strip_unused_nodes remove_nodes(op=Identity) fold_constants fold_batch_norms sort_by_execution_order")
//!         .build()?;
//!     Ok(())
//! }
//! ```
//!
//! `build()` reads the model, runs the transform list with graphopt-core, and writes
//! `$OUT_DIR/graphopt/NAME.pb` plus a manifest `NAME.json` that `graphopt::include_model!`
//! turns into constants. Results are cached under a SHA-256 key of the tool version, the
//! canonical transform list, the names, the options and every input byte
//! (`$GRAPHOPT_CACHE_DIR`, else `graphopt-cache` in the target directory), so an unchanged
//! model costs a hash and a copy, and the same key gives byte-identical output on any machine.
//! Errors are one line naming the model, file, transform and node; a `main` returning
//! `Result<(), graphopt_build::Error>` prints exactly that line.
//!
//! [`build_from_manifest`] does the same for every `[package.metadata.graphopt.models.NAME]`
//! table (`path`, `inputs`, `outputs`, `transforms`, optional `signature`, `tag_set`).

mod cache;
mod error;
mod index;
mod manifest;
mod model;

pub use error::Error;
pub use manifest::{Manifest, TensorManifest};
pub use model::{build_from_manifest, BuiltModel, Model};

/// graphopt-core, for build scripts that want to load, check or transform graphs themselves
/// (for example to register their own transform on a `Registry`).
pub use graphopt_core as core;
