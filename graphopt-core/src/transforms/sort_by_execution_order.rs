//! `sort_by_execution_order`: reorders nodes so every node comes after its inputs, in the
//! order TensorFlow's transform writes (while-loop back edges into Merge are allowed); see
//! [`crate::rewrite::order`].

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;
use crate::rewrite::order::sort_by_execution_order;

pub struct SortByExecutionOrder;

impl Transform for SortByExecutionOrder {
    fn name(&self) -> &str {
        "sort_by_execution_order"
    }

    fn summary(&self) -> &str {
        "order nodes so that each comes after its inputs (TensorFlow's execution order)"
    }

    fn apply(&self, graph: &mut GraphDef, _context: &TransformContext<'_>) -> Result<()> {
        sort_by_execution_order(graph)?;
        Ok(())
    }

    /// It only reorders nodes: no value is read, no Const renamed or copied.
    fn accepts_late_weights(&self) -> bool {
        true
    }
}
