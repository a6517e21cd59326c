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
//!   TensorFlow renames folded nodes; keeping names keeps --outputs valid. A node named in
//!   --outputs through another output (`split:1`) is not folded, for the same reason.
//! - Unlike TensorFlow, nodes unreachable from --outputs are not removed here (that is
//!   `strip_unused_nodes`' job); constants left without consumers by folding are.

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;
use crate::rewrite::constants::{fold, FoldOptions, DEFAULT_MAX_FOLDED_BYTES};

pub struct FoldConstants;

/// `max_constant_size_in_bytes`' default, as the transform string spells it.
const DEFAULT_MAX_BYTES: i64 = DEFAULT_MAX_FOLDED_BYTES as i64;

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

    fn param_defaults(&self) -> &[(&str, &str)] {
        &[
            ("max_constant_size_in_bytes", "10485760"),
            ("clear_output_shapes", "true"),
        ]
    }

    /// Parameters are read first and folding changes the graph only once nothing can fail.
    fn keeps_graph_on_error(&self) -> bool {
        true
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let max_bytes = context
            .params
            .int("max_constant_size_in_bytes", DEFAULT_MAX_BYTES)?;
        let max_bytes = u64::try_from(max_bytes)
            .map_err(|_| context.error("max_constant_size_in_bytes must not be negative"))?;
        let options = FoldOptions {
            exclude_ops: context.params.list("exclude_op").iter().cloned().collect(),
            exclude_nodes: context
                .params
                .list("exclude_node")
                .iter()
                .cloned()
                .collect(),
            ..FoldOptions::around(context.inputs, context.outputs, max_bytes)
        };
        let clear_output_shapes = context.params.bool("clear_output_shapes", true)?;
        fold(graph, &options)?;
        if clear_output_shapes {
            for node in &mut graph.node {
                node.attr.remove("_output_shapes");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::proto::{GraphDef, NodeDef};
    use crate::transforms::{parse, run, Registry};

    /// A fold that fails (here: a cycle) is skipped under ignore_errors=true without a copy
    /// of the graph, and leaves it exactly as it was.
    #[test]
    fn failed_fold_with_ignore_errors_leaves_the_graph_alone() {
        let node = |name: &str, input: &str| NodeDef {
            name: name.into(),
            op: "Identity".into(),
            input: vec![input.into()],
            ..Default::default()
        };
        let mut graph = GraphDef {
            node: vec![node("a", "b"), node("b", "a")],
            ..Default::default()
        };
        let before = graph.clone();
        let registry = Registry::with_builtins();
        let specs = parse("fold_constants(ignore_errors=true)").unwrap_or_default();
        let outcomes = run(&registry, &mut graph, &specs, &[], &[]);
        assert!(matches!(&outcomes, Ok(o) if o.len() == 1 && o[0].ignored_error.is_some()));
        assert_eq!(graph, before);
        let specs = parse("fold_constants").unwrap_or_default();
        assert!(run(&registry, &mut graph, &specs, &[], &[]).is_err());
    }
}
