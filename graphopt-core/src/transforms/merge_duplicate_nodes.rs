//! `merge_duplicate_nodes`: merges nodes that are identical — same op, inputs, device and
//! attributes — keeping the first and pointing the others' readers at it, until nothing more
//! merges (merging two constants can make their consumers identical).
//!
//! Differences from TensorFlow's transform, both deliberate: nodes are compared in full, not by
//! a hash alone; and only ops TensorFlow's OpDefs mark stateless merge (no control-flow
//! primitives or inputs), so two random-number or variable nodes are never fused into one.
//! Names in --inputs/--outputs survive; a node named in --inputs is fed, so it is never merged. See [`crate::rewrite::duplicates`].

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;
use crate::rewrite::duplicates::merge_duplicates_except;

pub struct MergeDuplicateNodes;

impl Transform for MergeDuplicateNodes {
    fn name(&self) -> &str {
        "merge_duplicate_nodes"
    }

    fn summary(&self) -> &str {
        "merge identical stateless nodes (compared in full), keeping the first"
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let protected = context.protected_names();
        merge_duplicates_except(graph, &protected, &context.input_names())?;
        Ok(())
    }
}
