//! `inline_partitionedcall`: replaces each PartitionedCall and StatefulPartitionedCall of a
//! library function with the function's body, repeatedly, so calls inside calls are inlined
//! too (see [`crate::graph::inline`]). `remove_nodes(op=Identity)` tidies the seams afterwards.
//!
//! Differences from TensorFlow's transform, deliberate: StatefulPartitionedCall is inlined too
//! (TF2 SavedModels call through it), nested calls are inlined, and control inputs and
//! `^call` readers are kept valid (TensorFlow's version leaves them dangling). The library is
//! kept. A function using attribute placeholders, or calling itself, is an error naming it.

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::graph::inline;
use crate::proto::GraphDef;

pub struct InlinePartitionedCall;

impl Transform for InlinePartitionedCall {
    fn name(&self) -> &str {
        "inline_partitionedcall"
    }

    fn summary(&self) -> &str {
        "replace (Stateful)PartitionedCall nodes with their function bodies, nested calls included"
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        inline::inline_all_calls(graph, inline::Limits::default())
            .map_err(|e| context.error(e.to_string()))
    }
}
