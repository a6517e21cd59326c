//! `fold_batch_norms`: moves per-channel multiplies and adds that follow a convolution or matrix
//! product into its weights and a single BiasAdd (see [`crate::rewrite::batch_norms`]). Run
//! after `fold_constants`.

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;
use crate::rewrite::batch_norms;

pub struct FoldBatchNorms;

impl Transform for FoldBatchNorms {
    fn name(&self) -> &str {
        "fold_batch_norms"
    }

    fn summary(&self) -> &str {
        "fold per-channel Mul/Add after Conv2D, DepthwiseConv2dNative and MatMul into weights and one BiasAdd"
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        batch_norms::fold_scales_and_shifts_deferred(
            graph,
            &context.protected_names(),
            &mut context.late_weights.borrow_mut(),
        )
        .map_err(|error| context.error(error.to_string()))
    }

    /// It scales weights through the late-weight table (large ones stay late).
    fn accepts_late_weights(&self) -> bool {
        true
    }
}
