//! `set_device(device, if_default)`: places every node (or, with `if_default=true`, only nodes
//! without a placement) on `device`.

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;

pub struct SetDevice;

impl Transform for SetDevice {
    fn name(&self) -> &str {
        "set_device"
    }

    fn summary(&self) -> &str {
        "set the device of every node, or only of unplaced nodes with if_default=true"
    }

    fn params(&self) -> Option<&[&str]> {
        Some(&["device", "if_default"])
    }

    fn param_defaults(&self) -> &[(&str, &str)] {
        &[("device", ""), ("if_default", "false")]
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let device = context.params.string("device", "")?;
        let only_unplaced = context.params.bool("if_default", false)?;
        for node in &mut graph.node {
            if !only_unplaced || node.device.is_empty() {
                node.device = device.to_string();
            }
        }
        Ok(())
    }
}
