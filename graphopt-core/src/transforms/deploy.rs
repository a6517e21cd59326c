//! `@deploy`: graphopt's recommended pipeline for an inference graph, composed from the shared
//! rewrite layer (never from other transforms):
//!
//! 1. cut to what --outputs need (when outputs are given), --inputs becoming Placeholders;
//! 2. training leftovers: learning-phase flags pinned, Asserts dropped, constant conds resolved;
//! 3. constant folding (skipped, with a warning, if it fails);
//! 4. batch-norm folding, both the fused ops and Keras 3's decomposed Mul/Add, and
//!    per-channel scales moved forward into the next layer's weights (through pooling, means,
//!    zero padding and concatenation; through activations only when positive);
//! 5. arithmetic simplification (`x*1`, `x+0`, constant chains, identity transposes, common
//!    factors hoisted out of sums);
//! 6. leftover removal: identity-like ops, CheckNumerics, same-type casts, shape no-ops,
//!    control edges that order nothing, idle NoOps;
//! 7. identical nodes merged (constants shared);
//! 8. steps 4-7 again until a round removes no node, then unread nodes cut;
//! 9. the bodies of the library functions the graph calls get steps 3-7 too (their return
//!    values, arguments and signatures kept), then execution order.
//!
//! Every step keeps results within 1e-5 relative of the input graph.

use std::collections::HashSet;

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::graph::body;
use crate::graph::edit::remove_unread;
use crate::proto::GraphDef;
use crate::rewrite::constants::{fold, FoldOptions, DEFAULT_MAX_FOLDED_BYTES};
use crate::rewrite::strip::{strip_unused, StripOptions};
use crate::rewrite::{
    arithmetic, batch_norms, duplicates, leftovers, order, remove, scale_axis, training,
};

pub struct Deploy;

/// The most rounds of the rewrite steps (real graphs settle in two or three).
const MAX_ROUNDS: usize = 16;

impl Transform for Deploy {
    fn name(&self) -> &str {
        "@deploy"
    }

    fn summary(&self) -> &str {
        "the recommended pipeline: strip, fold constants and batch norms, move scales into the next layer, simplify arithmetic, remove leftovers, merge duplicates, sort"
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let protected = context.protected_names_or_ends(graph);
        let strip = StripOptions {
            inputs: context.inputs.to_vec(),
            outputs: context.outputs.to_vec(),
            ..Default::default()
        };
        let cut = |graph: &mut GraphDef| -> Result<()> {
            if strip.outputs.is_empty() {
                return Ok(());
            }
            for warning in strip_unused(graph, &strip).map_err(|e| context.error(e.to_string()))? {
                context.warn(warning);
            }
            Ok(())
        };
        cut(graph)?;
        training::remove_training_nodes(graph, &["keras_learning_phase".into()], &protected);
        let checks: HashSet<&str> = ["CheckNumerics"].into_iter().collect();
        remove::remove_nodes(graph, &checks, 1, &protected);

        let folding =
            FoldOptions::around(context.inputs, context.outputs, DEFAULT_MAX_FOLDED_BYTES);
        // Folding changes nothing when it fails, so no copy of the graph is kept for that.
        if let Err(error) = fold(graph, &folding) {
            context.warn(format!("constant folding skipped: {error}"));
        }
        // Each step can open work for an earlier one (two bias adds merged by the scale fold
        // let a fused batch norm after them fold; a NoOp removed makes two constants in a loop
        // frame identical, and then their readers), so the steps repeat until a round removes no node: `@deploy` of its
        // own output changes nothing. A round that goes on removed a node, so the rounds are
        // bounded by the graph's size; the cap is a guard.
        // A Const named in --inputs holds what is fed: merging an identical Const into it (or
        // it into one) would hand the fed value to the other's readers.
        let fed = context.input_names();
        rounds(graph, &protected, &fed)?;
        cut(graph)?;
        // The bodies of the functions the graph calls, the same way: folded, then the rounds,
        // then what no return value needs removed.
        // A body a step fails on is left as it was.
        body::rewrite_reachable_bodies(graph, |body| -> Result<()> {
            let folding = FoldOptions {
                protected: body.protected.clone(),
                ..FoldOptions::around(&body.arguments, &body.outputs(), DEFAULT_MAX_FOLDED_BYTES)
            };
            fold(&mut body.graph, &folding)?;
            let fed = body.arguments.iter().cloned().collect();
            rounds(&mut body.graph, &body.protected, &fed)?;
            let names = body.graph.node.iter().map(|n| n.name.clone()).collect();
            remove_unread(&mut body.graph, names, &body.protected);
            Ok(())
        });
        order::sort_by_execution_order(graph)?;
        Ok(())
    }
}

/// Steps 4-7, repeated until a round removes no node.
/// `fed` nodes hold what the caller feeds; they never merge.
fn rounds(graph: &mut GraphDef, protected: &HashSet<String>, fed: &HashSet<String>) -> Result<()> {
    for _ in 0..MAX_ROUNDS {
        let before = graph.node.len();
        batch_norms::fold_batch_norm_ops(graph, protected)?;
        batch_norms::fold_scales_and_shifts(graph, protected)?;
        scale_axis::fold_scales_forward(graph, protected);
        arithmetic::simplify_arithmetic(graph, protected);
        leftovers::remove_leftovers(graph, protected);
        duplicates::merge_duplicates_except(graph, protected, fed)?;
        if graph.node.len() >= before {
            break;
        }
    }
    Ok(())
}
