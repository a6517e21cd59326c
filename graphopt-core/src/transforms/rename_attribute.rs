//! `rename_attribute(old_attribute_name, new_attribute_name, op_name)`: renames an attribute on
//! every node, or on nodes of one op type.
//!
//! Difference from TensorFlow: where a node already has both names, TensorFlow silently drops
//! the old value; graphopt stops with an error naming the node.

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;

pub struct RenameAttribute;

impl Transform for RenameAttribute {
    fn name(&self) -> &str {
        "rename_attribute"
    }

    fn summary(&self) -> &str {
        "rename an attribute on all nodes, or on nodes of op_name only"
    }

    fn params(&self) -> Option<&[&str]> {
        Some(&["old_attribute_name", "new_attribute_name", "op_name"])
    }

    fn param_defaults(&self) -> &[(&str, &str)] {
        &[("op_name", "*")]
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let old = context.params.required("old_attribute_name")?;
        let new = context.params.required("new_attribute_name")?;
        let op = context.params.string("op_name", "*")?;
        if old == new {
            return Ok(());
        }
        for node in &mut graph.node {
            if op != "*" && node.op != op {
                continue;
            }
            let Some(value) = node.attr.remove(old) else {
                continue;
            };
            if node.attr.contains_key(new) {
                return Err(context.error(format!(
                    "node '{}' already has an attribute '{new}'; renaming '{old}' would lose one of them",
                    node.name
                )));
            }
            node.attr.insert(new.to_string(), value);
        }
        Ok(())
    }
}
