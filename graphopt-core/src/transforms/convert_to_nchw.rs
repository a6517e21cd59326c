//! `convert_to_nchw(keep_io_layout=true)`: runs convolutions, pooling, bias adds and batch
//! norms channels-first, with the Transposes between them sunk and cancelled, so a CNN keeps
//! one at its input and one where it leaves 4-D (none before a dense layer that reads a
//! flattening: its weights' rows are reordered instead); `keep_io_layout=false` makes every
//! 4-D input that reaches a converted op NCHW too (ops that stay NHWC read it transposed back).
//! `_output_shapes` (from `add_shapes`) are rewritten afterwards, where there are any.
//! See [`crate::rewrite::layout`].

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;
use crate::rewrite::layout::to_nchw;
use crate::rewrite::static_shapes::refresh_output_shapes;

pub struct ConvertToNchw;

impl Transform for ConvertToNchw {
    fn name(&self) -> &str {
        "convert_to_nchw"
    }

    fn summary(&self) -> &str {
        "run convolutions, pooling, bias adds and batch norms in NCHW, Transposes sunk and cancelled"
    }

    fn params(&self) -> Option<&[&str]> {
        Some(&["keep_io_layout"])
    }

    fn param_defaults(&self) -> &[(&str, &str)] {
        &[("keep_io_layout", "true")]
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let keep = context.params.bool("keep_io_layout", true)?;
        if to_nchw(graph, &context.protected_names(), keep) > 0 {
            // Converted nodes output NCHW now: `_output_shapes` (from add_shapes) would say NHWC.
            refresh_output_shapes(graph)?;
        }
        Ok(())
    }
}
