//! `remove_control_dependencies`: drops the `^node` control inputs of the main graph.
//!
//! Difference from TensorFlow's transform, deliberate: a node with no data inputs (a Const
//! or NoOp) keeps its control inputs from inside a while loop or `tf.cond` branch. Those edges
//! are what place it in the loop's frame or the branch; without them TensorFlow's version
//! leaves loop-body constants outside their loop, and the graph no longer runs.

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::graph::{self, InputRef};
use crate::proto::GraphDef;

pub struct RemoveControlDependencies;

impl Transform for RemoveControlDependencies {
    fn name(&self) -> &str {
        "remove_control_dependencies"
    }

    fn summary(&self) -> &str {
        "drop control (^node) inputs, except those that place a constant inside a loop or branch"
    }

    fn apply(&self, graph: &mut GraphDef, _context: &TransformContext<'_>) -> Result<()> {
        let framed = graph::inside_control_flow(graph);
        for node in &mut graph.node {
            let source_like = node.input.iter().all(|i| i.starts_with('^'));
            node.input.retain(|input| {
                let parsed = InputRef::parse(input);
                !parsed.control || (source_like && framed.contains(parsed.node))
            });
        }
        Ok(())
    }
}
