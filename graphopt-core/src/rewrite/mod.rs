//! The shared rewrite layer: the building blocks of graph optimization as plain functions.
//!
//! Each registered transform in [`crate::transforms`] is a thin wrapper that reads its
//! parameters and calls one of these; composite pipelines (a target's legalization, the
//! recommended pipeline) call them directly, never the registry by name.
//!
//! - [`pattern`]: op-type pattern matching and replacement, for writing rewrites.
//! - [`weights`]: reading and scaling layer weights and per-channel vectors.

pub mod arithmetic;
pub mod atrous;
pub mod batch_norms;
pub mod concat;
pub mod constants;
pub mod duplicates;
pub mod fused_convolutions;
pub mod layout;
pub mod leftovers;
pub mod legalize;
pub mod logging;
pub mod order;
pub mod pattern;
pub mod quantize;
pub mod remove;
pub mod scale_axis;
pub mod static_shapes;
pub mod strip;
pub mod training;
pub mod weights;

/// Why a rewrite could not be applied; the transform or pipeline calling it adds its name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RewriteError(pub String);
