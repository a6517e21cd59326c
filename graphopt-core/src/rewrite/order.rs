//! Node order: [`sort_by_execution_order`] puts every node after its inputs, in the order
//! TensorFlow's transform writes (while-loop back edges into Merge are allowed).

use crate::graph::{self, GraphError};
use crate::proto::GraphDef;

/// Reorders `graph.node` into TensorFlow's execution order.
pub fn sort_by_execution_order(graph: &mut GraphDef) -> Result<(), GraphError> {
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
