//! `simplify_arithmetic`: exact arithmetic rewrites (`x*1`, `x+0`, `Neg(Neg(x))`, identity
//! transposes, chains of constant multiplies and adds folded together). See
//! [`crate::rewrite::arithmetic`]. Follow with `remove_leftovers` to splice out the
//! Identities it leaves.

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;
use crate::rewrite::arithmetic::simplify_arithmetic;

pub struct SimplifyArithmetic;

impl Transform for SimplifyArithmetic {
    fn name(&self) -> &str {
        "simplify_arithmetic"
    }

    fn summary(&self) -> &str {
        "exact rewrites: x*1, x+0, Neg(Neg(x)), identity transposes, constant Mul/Add chains folded"
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        simplify_arithmetic(graph, &context.protected_names());
        Ok(())
    }
}
