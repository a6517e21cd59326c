//! `remove_control_dependencies`: drops every `^node` control input of the main graph.

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;

pub struct RemoveControlDependencies;

impl Transform for RemoveControlDependencies {
    fn name(&self) -> &str {
        "remove_control_dependencies"
    }

    fn summary(&self) -> &str {
        "drop every control (^node) input"
    }

    fn apply(&self, graph: &mut GraphDef, _context: &TransformContext<'_>) -> Result<()> {
        for node in &mut graph.node {
            node.input.retain(|input| !input.starts_with('^'));
        }
        Ok(())
    }
}
