//! `sort_by_execution_order`: reorders nodes so every node comes after its inputs, in the
//! order TensorFlow's transform writes (while-loop back edges into Merge are allowed).

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::graph;
use crate::proto::GraphDef;

pub struct SortByExecutionOrder;

impl Transform for SortByExecutionOrder {
    fn name(&self) -> &str {
        "sort_by_execution_order"
    }

    fn summary(&self) -> &str {
        "order nodes so that each comes after its inputs (TensorFlow's execution order)"
    }

    fn apply(&self, graph: &mut GraphDef, _context: &TransformContext<'_>) -> Result<()> {
        let order = graph::execution_order(graph)?;
        let mut slots: Vec<Option<_>> = std::mem::take(&mut graph.node)
            .into_iter()
            .map(Some)
            .collect();
        graph.node = order
            .into_iter()
            .filter_map(|i| slots.get_mut(i).and_then(Option::take))
            .collect();
        Ok(())
    }
}
