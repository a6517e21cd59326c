//! `rename_node(old_node_name, new_node_name)`: renames one node and every reference to it,
//! keeping ports and control markers (`old:1` becomes `new:1`, `^old` becomes `^new`).

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;

pub struct RenameNode;

impl Transform for RenameNode {
    fn name(&self) -> &str {
        "rename_node"
    }

    fn summary(&self) -> &str {
        "rename a node and every input that refers to it"
    }

    fn params(&self) -> Option<&[&str]> {
        Some(&["old_node_name", "new_node_name"])
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let old = context.params.required("old_node_name")?;
        let new = context.params.required("new_node_name")?;
        // A port, a `^`, a space or a leading `_` would leave a graph TensorFlow refuses.
        if !crate::graph::is_valid_node_name(new) {
            return Err(context.error(format!(
                "'{new}' is not a valid node name (letters, digits and '.' first, then also '_', '-', '/'; '>' between pieces)"
            )));
        }
        if old == new {
            return Ok(());
        }
        if graph.node.iter().any(|n| n.name == new) {
            return Err(context.error(format!("a node called '{new}' already exists")));
        }
        if !graph.node.iter().any(|n| n.name == old) {
            return Err(context.error(format!("there is no node called '{old}'")));
        }
        crate::graph::edit::rename_node(graph, old, new);
        context.renamed(old, new);
        Ok(())
    }
}
