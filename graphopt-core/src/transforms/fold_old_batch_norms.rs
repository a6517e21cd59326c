//! `fold_old_batch_norms`: folds FusedBatchNorm, FusedBatchNormV2, FusedBatchNormV3 (inference)
//! and BatchNormWithGlobalNormalization that follow a Conv2D, DepthwiseConv2dNative or MatMul
//! into the layer's weights and a BiasAdd named after the batch norm (see
//! [`crate::rewrite::batch_norms`]). Run after `fold_constants`.

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;
use crate::rewrite::batch_norms;

pub struct FoldOldBatchNorms;

impl Transform for FoldOldBatchNorms {
    fn name(&self) -> &str {
        "fold_old_batch_norms"
    }

    fn summary(&self) -> &str {
        "fold FusedBatchNorm(V2/V3) and BatchNormWithGlobalNormalization after conv/matmul into weights and a BiasAdd"
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        batch_norms::fold_batch_norm_ops_deferred(
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
