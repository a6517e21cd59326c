//! graphopt-core: everything about TensorFlow graphs that graphopt does.
//!
//! The modules form layers; each uses only the layers below it (the tidy test in
//! `tests/tidy.rs` holds this):
//!
//! 1. data: [`proto`] (TensorFlow's wire types, generated with BTreeMap maps so encoding is
//!    deterministic), [`budget`] (the memory and work budget every layer above consults),
//!    [`dtype`] (type names), [`tensor`] (TensorProto <-> typed arrays),
//!    [`text_format`], [`io`] (reading without copying weights, deterministic writing),
//!    [`error`] (the crate error, which wraps the modules' own errors);
//! 2. [`graph`]: the graph model, attributes, edits, op knowledge, function inlining;
//! 3. [`analysis`]: static shape inference;
//! 4. [`eval`]: the reference evaluator's kernels and executor;
//! 5. [`rewrite`]: the shared rewrite layer, plain functions that transforms and pipelines
//!    compose (batch-norm folding, constant folding, leftover removal, pattern matching, ...);
//! 6. [`transforms`]: the transform-string grammar, the registry, one thin wrapper per
//!    transform;
//! 7. [`freeze`], [`verify`], [`summary`], [`targets`]: what the CLI and build integration call.

pub mod analysis;
pub mod budget;
pub mod dtype;
pub mod error;
pub mod eval;
#[cfg(feature = "freeze")]
pub mod freeze;
pub mod graph;
pub mod io;
pub mod late_weights;
pub mod pages;
pub mod proto;
pub mod rewrite;
pub mod summary;
pub mod targets;
pub mod tensor;
pub mod text_format;
pub mod transforms;
pub mod verify;

pub use error::{Error, Result};

/// SHA-256 of this crate's sources (`src/`, `Cargo.toml`, `build.rs`), computed by its build
/// script: graphopt-build keys its cache on it, so changed code never reuses an old artifact.
pub const SOURCE_SHA256: &str = env!("GRAPHOPT_CORE_SOURCE_SHA256");
