//! `remove_attribute(attribute_name, op_name)`: deletes an attribute from every node, or only
//! from nodes of one op type. Removing an attribute a known op requires fails validation, so
//! the graph is never left unloadable.

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;

pub struct RemoveAttribute;

impl Transform for RemoveAttribute {
    fn name(&self) -> &str {
        "remove_attribute"
    }

    fn summary(&self) -> &str {
        "delete an attribute from all nodes, or from nodes of op_name only"
    }

    fn params(&self) -> Option<&[&str]> {
        Some(&["attribute_name", "op_name"])
    }

    fn param_defaults(&self) -> &[(&str, &str)] {
        &[("op_name", "*")]
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let attribute = context.params.required("attribute_name")?;
        let op = context.params.string("op_name", "*")?;
        for node in &mut graph.node {
            if op == "*" || node.op == op {
                node.attr.remove(attribute);
            }
        }
        Ok(())
    }
}
