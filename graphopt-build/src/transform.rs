//! What an application transform is written against, for [`Model::transform`](crate::Model::transform).
//!
//! These are graphopt-core's own types, re-exported at the exact version graphopt-build runs
//! them with: a build script needs no `graphopt-core` dependency of its own to keep in step
//! (a second copy at another version would be a different trait that `Model::transform`
//! does not accept). Nothing else of graphopt-core is part of graphopt-build's API.
//!
//! ```no_run
//! use graphopt_build::transform::{proto::GraphDef, Result, Transform, TransformContext};
//!
//! /// Removes every node's device placement.
//! struct ClearDevices;
//!
//! impl Transform for ClearDevices {
//!     fn name(&self) -> &str {
//!         "clear_devices"
//!     }
//!     fn summary(&self) -> &str {
//!         "removes device placements"
//!     }
//!     // Part of the cache key: change it whenever the output changes.
//!     fn version(&self) -> Option<&str> {
//!         Some("1")
//!     }
//!     fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
//!         if graph.node.is_empty() {
//!             return Err(context.error("the graph has no nodes"));
//!         }
//!         graph.node.iter_mut().for_each(|node| node.device.clear());
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> std::result::Result<(), graphopt_build::Error> {
//!     graphopt_build::Model::new("digits", "models/digits.pb")
//!         .outputs(["probs"])
//!         .transform(ClearDevices)
//!         .transforms("clear_devices fold_constants")
//!         .build()?;
//!     Ok(())
//! }
//! ```

/// The TensorFlow protos a transform reads and rewrites (`GraphDef`, `NodeDef`, `AttrValue`,
/// `TensorProto`, ...).
pub use graphopt_core::proto;
/// The trait an application transform implements, what it sees besides the graph, and its
/// parsed parameters.
pub use graphopt_core::transforms::{Params, Transform, TransformContext};
/// A transform's error ([`TransformContext::error`] builds one naming the transform) and
/// result.
pub use graphopt_core::{Error, Result};
