//! `flatten_atrous_conv`: turns TF1's atrous convolutions, `BatchToSpaceND(conv(SpaceToBatchND(
//! x, block, paddings), filter), block, crops)`, back into one dilated convolution on `x`.
//! See [`crate::rewrite::atrous`].

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;
use crate::rewrite::atrous::flatten_atrous_convolutions;
use crate::rewrite::static_shapes::refresh_output_shapes;

pub struct FlattenAtrousConv;

impl Transform for FlattenAtrousConv {
    fn name(&self) -> &str {
        "flatten_atrous_conv"
    }

    fn summary(&self) -> &str {
        "replace SpaceToBatchND -> conv -> BatchToSpaceND with one dilated convolution"
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let before = graph.node.len();
        flatten_atrous_convolutions(graph, &context.protected_names());
        if graph.node.len() != before {
            // The convolution now outputs the whole image, not the blocks: `_output_shapes`
            // (from add_shapes) would contradict it, and TensorFlow refuses such a graph.
            refresh_output_shapes(graph)?;
        }
        Ok(())
    }
}
