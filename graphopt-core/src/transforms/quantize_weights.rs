//! `quantize_weights(minimum_size=1024)`: stores every float Const with at least
//! `minimum_size` elements as 8-bit codes plus its range and a `Dequantize`, bit-exact with
//! TensorFlow's transform (see [`crate::rewrite::quantize`]).

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;
use crate::rewrite::quantize;

pub struct QuantizeWeights;
impl Transform for QuantizeWeights {
    fn name(&self) -> &str {
        "quantize_weights"
    }

    fn summary(&self) -> &str {
        "store large float constants as 8-bit codes plus a Dequantize (TensorFlow's MIN_FIRST encoding)"
    }

    fn params(&self) -> Option<&[&str]> {
        Some(&["minimum_size"])
    }

    fn param_defaults(&self) -> &[(&str, &str)] {
        &[("minimum_size", "1024")]
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let minimum_size = usize::try_from(context.params.int("minimum_size", 1024)?)
            .map_err(|_| context.error("minimum_size must not be negative"))?;
        quantize::quantize_weights(graph, minimum_size);
        Ok(())
    }
}
