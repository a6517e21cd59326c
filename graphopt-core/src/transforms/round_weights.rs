//! `round_weights(num_steps=256)`: rounds every float Const with at least 16 elements to
//! `num_steps` evenly spaced values between its minimum and maximum, so the file compresses
//! far better while the graph stays exactly the same shape.
//!
//! Values are those TensorFlow's transform writes (same float arithmetic; the maximum lands
//! half a step above the range, as in TensorFlow, still within half a step of itself). The one
//! deliberate difference: TensorFlow starts its running maximum at FLT_MIN, so an all-negative
//! tensor gets the range [min, ~0] and coarser steps; graphopt uses the tensor's true range.
//! Every value moves by at most half a step, (max - min) / num_steps / 2.

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::graph::edit::{const_value, set_const_value};
use crate::proto::{DataType, GraphDef};
use crate::rewrite::weights::{floats, map_floats};

pub struct RoundWeights;

/// Tensors smaller than this are left alone, as TensorFlow does.
const MINIMUM_ELEMENTS: usize = 16;

impl Transform for RoundWeights {
    fn name(&self) -> &str {
        "round_weights"
    }

    fn summary(&self) -> &str {
        "round large float constants to num_steps values each, so the file compresses well"
    }

    fn params(&self) -> Option<&[&str]> {
        Some(&["num_steps"])
    }

    fn param_defaults(&self) -> &[(&str, &str)] {
        &[("num_steps", "256")]
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let steps = context.params.int("num_steps", 256)?;
        if !(1..=1 << 24).contains(&steps) {
            return Err(context.error(format!(
                "num_steps must be between 1 and 16777216, not {steps}"
            )));
        }
        let steps = steps as f64;
        for node in &mut graph.node {
            let Some(value) = const_value(node) else {
                continue;
            };
            if value.dtype() != DataType::DtFloat || value.len() < MINIMUM_ELEMENTS {
                continue;
            }
            let Some(values) = floats(&value) else {
                continue;
            };
            let (min, max) = values
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            if !(min.is_finite() && max.is_finite()) {
                continue;
            }
            if min == max {
                // A constant tensor is already as compressible as it gets.
                continue;
            }
            // Float arithmetic, as TensorFlow computes it, so untouched buckets get its exact values.
            let (min, max) = (min as f32, max as f32);
            let width = (max - min) / steps as f32;
            let rounded = map_floats(&value, |_, v| {
                let bucket = ((v as f32 - min) / width).floor();
                f64::from(min + width * (bucket + 0.5))
            });
            if let Some(rounded) = rounded {
                set_const_value(node, &rounded);
            }
        }
        Ok(())
    }
}
