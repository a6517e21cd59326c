//! graphopt-build: optimize TensorFlow models at compile time, from a `build.rs`.
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), graphopt_build::Error> {
//!     graphopt_build::Model::new("digits", "models/digits.pb")
//!         .inputs(["image"])
//!         .outputs(["probs"])
//!         .transforms("@deploy")
//!         .build()?;
//!     Ok(())
//! }
//! ```
//!
//! `@deploy` is graphopt's recommended pipeline for inference: the Graph Transform Tool's
//! standard steps plus scale folding through activations, leftover removal, arithmetic
//! simplification and constant sharing (`graphopt transforms` summarizes its steps). Any
//! `transform_graph` list works too, alone or around it: `"@deploy legalize(target=opencv)"`
//! or `"strip_unused_nodes fold_constants fold_batch_norms"`.
//!
//! and in the crate, `graphopt::include_model!(digits);` embeds the result as a module
//! `digits` (see the `graphopt` crate).
//!
//! [`Model::build`] reads the model (a binary or text GraphDef, or a SavedModel directory,
//! which it freezes first), runs the transform list, and writes `$OUT_DIR/graphopt/NAME.pb`
//! plus a manifest `NAME.json` that `include_model!` turns into constants. `include_model!`
//! sees exactly the models the build script's last run built: a model removed or renamed in
//! `build.rs` is a compile error listing the current ones.
//!
//! # Cache
//!
//! Results are cached under a SHA-256 key of the tool version, a fingerprint of graphopt's
//! own source code, the versions and sources of the crates graphopt-build depends on as the
//! workspace's `Cargo.lock` resolved them (a model is not cached without one, nor in a package
//! cargo fetched), the name and version of each application transform used, the canonical
//! transform list, the names, the options, the memory and work budgets and every input byte, in
//! `$GRAPHOPT_CACHE_DIR` (a relative path is taken from the workspace root), else
//! `graphopt-cache` in the target directory. An unchanged model costs a few file stats: a
//! file's SHA-256 is reused while its size, times, inode and device are unchanged (a memo in
//! `$OUT_DIR/graphopt-fingerprints.json`), cache entries are verified when first used and
//! whenever their fingerprint changes, and the artifact is a hard link to the cache entry,
//! left untouched when unchanged. The same key gives byte-identical output on any machine. After each build the cache is pruned
//! to `GRAPHOPT_CACHE_MAX_SIZE` (default `1G`; a number of bytes with an optional `K`, `M` or
//! `G` suffix) and `GRAPHOPT_CACHE_MAX_AGE_DAYS` (default 30 days since last use), least
//! recently used first; an entry used in the last ten minutes is never removed, since a
//! concurrent build may be reading it. `GRAPHOPT_CACHE_MAX_SIZE=0 cargo build` empties the
//! cache of everything not in use; `cargo clean` removes the default cache folder.
//!
//! # Application transforms
//!
//! [`Model::transform`] registers a transform written against [`transform::Transform`], which
//! the [`transform`] module re-exports with the protos it rewrites (no other dependency
//! needed). Its name and [`version`](transform::Transform::version) are part of the cache key;
//! a model that uses one without a version is not cached.
//!
//! # Guards
//!
//! [`Model::verify`] fails the build when the optimized graph's outputs drift from the
//! original's, [`Model::target`] when the result does not load in the named consumer, and
//! [`Model::memory_budget`] / [`Model::work_budget`] bound what a hostile model can make the
//! build take.
//!
//! # Reporting and errors
//!
//! Each model prints one line: cache hit or miss, nodes and size before and after, time
//! (`cargo build -vv` shows it). Warnings (`cargo:warning`) are only for problems: a
//! transform's warning, a skipped transform, a damaged cache entry. Errors are one line naming
//! the model and what to do; a `main` returning `Result<(), graphopt_build::Error>` prints
//! exactly that line.
//!
//! [`build_from_manifest`] does the same for every `[package.metadata.graphopt.models.NAME]`
//! table of the package's Cargo.toml.

mod cache;
mod dependencies;
mod error;
mod fingerprint;
mod index;
mod interface;
mod manifest;
mod metadata;
mod model;
mod pipeline;
mod sha256;
pub mod transform;

pub use error::{CoreError, Error};
pub use metadata::build_from_manifest;
pub use model::{BuiltModel, CacheStatus, Model};
