//! `rename_op(old_op_name, new_op_name)`: changes the op type of every node of one type.

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;

pub struct RenameOp;

impl Transform for RenameOp {
    fn name(&self) -> &str {
        "rename_op"
    }

    fn summary(&self) -> &str {
        "change the op type of every node of type old_op_name to new_op_name"
    }

    fn params(&self) -> Option<&[&str]> {
        Some(&["old_op_name", "new_op_name"])
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let old = context.params.required("old_op_name")?;
        let new = context.params.required("new_op_name")?;
        for node in &mut graph.node {
            if node.op == old {
                node.op = new.to_string();
            }
        }
        Ok(())
    }
}
