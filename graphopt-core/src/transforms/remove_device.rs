//! `remove_device`: clears the device placement of every node of the main graph.

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;

pub struct RemoveDevice;

impl Transform for RemoveDevice {
    fn name(&self) -> &str {
        "remove_device"
    }

    fn summary(&self) -> &str {
        "clear every node's device placement"
    }

    fn apply(&self, graph: &mut GraphDef, _context: &TransformContext<'_>) -> Result<()> {
        for node in &mut graph.node {
            node.device.clear();
        }
        Ok(())
    }
}
