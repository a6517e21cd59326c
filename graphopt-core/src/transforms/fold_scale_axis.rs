//! `fold_scale_axis`: moves positive per-channel multiplies forward through ReLU, LeakyReLU,
//! pooling and zero padding into the next convolution or matrix product's weights, so a
//! pre-activation batch norm leaves only an add. See [`crate::rewrite::scale_axis`]. Run
//! after `fold_batch_norms`.

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;
use crate::rewrite::scale_axis::fold_scales_forward;

pub struct FoldScaleAxis;

impl Transform for FoldScaleAxis {
    fn name(&self) -> &str {
        "fold_scale_axis"
    }

    fn summary(&self) -> &str {
        "move positive per-channel Muls forward through ReLU/pooling into the next layer's weights"
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        fold_scales_forward(graph, &context.protected_names());
        Ok(())
    }
}
