//! `fold_constants(exclude_op, exclude_node, max_constant_size_in_bytes, clear_output_shapes)`:
//! evaluates every node whose inputs are all constant and replaces the subgraph with Const
//! nodes; Shape, Size, Rank and ShapeN of tensors whose shape is statically known become
//! constants too, so shape arithmetic collapses once input shapes are fixed.
//!
//! See [`crate::rewrite::constants`].
//!
//! - Only ops graphopt's evaluator has a kernel for are folded; all of them are stateless.
//!   Control flow, Placeholders, variables and nodes named in --inputs are never folded.
//! - No output larger than `max_constant_size_in_bytes` (default 10 MiB) is computed, let alone
//!   kept: a Fill asking for 10^15 elements stays a Fill.
//! - A node whose kernel fails on its constant inputs is left as it is, as TensorFlow does.
//! - A folded node keeps its name (output 0); other used outputs become `NAME/folded_K`.
//!   TensorFlow renames folded nodes; keeping names keeps --outputs valid.
//! - Unlike TensorFlow, nodes unreachable from --outputs are not removed here (that is
//!   `strip_unused_nodes`' job); constants left without consumers by folding are.

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::graph;
use crate::proto::GraphDef;
use crate::rewrite::constants::{fold, FoldOptions};
use crate::tensor::Limits;

pub struct FoldConstants;

const DEFAULT_MAX_BYTES: i64 = 10 << 20;

impl Transform for FoldConstants {
    fn name(&self) -> &str {
        "fold_constants"
    }

    fn summary(&self) -> &str {
        "replace subgraphs with constant inputs, and shapes known statically, by Const nodes"
    }

    fn params(&self) -> Option<&[&str]> {
        Some(&[
            "exclude_op",
            "exclude_node",
            "max_constant_size_in_bytes",
            "clear_output_shapes",
        ])
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let max_bytes = context
            .params
            .int("max_constant_size_in_bytes", DEFAULT_MAX_BYTES)?;
        let max_bytes = u64::try_from(max_bytes)
            .map_err(|_| context.error("max_constant_size_in_bytes must not be negative"))?;
        let options = FoldOptions {
            limits: Limits { max_bytes },
            exclude_ops: context.params.list("exclude_op").iter().cloned().collect(),
            exclude_nodes: context
                .params
                .list("exclude_node")
                .iter()
                .cloned()
                .collect(),
            inputs: context
                .inputs
                .iter()
                .map(|n| graph::node_name(n).to_string())
                .collect(),
            protected: context
                .outputs
                .iter()
                .map(|n| graph::node_name(n).to_string())
                .collect(),
        };
        fold(graph, &options)?;
        if context.params.bool("clear_output_shapes", true)? {
            for node in &mut graph.node {
                node.attr.remove("_output_shapes");
            }
        }
        Ok(())
    }
}
