//! `add_default_attributes`: writes out every attribute a node leaves to its op's default, using
//! TensorFlow 2.21's op definitions for the ops graphopt carries (about 200; see
//! `src/graph/op_defs.pb`). Nodes of other ops are left as they are, so the result is exactly what
//! TensorFlow would fill in for every op graphopt knows.

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::graph::ops;
use crate::proto::GraphDef;

pub struct AddDefaultAttributes;

impl Transform for AddDefaultAttributes {
    fn name(&self) -> &str {
        "add_default_attributes"
    }

    fn summary(&self) -> &str {
        "fill in attributes left at their op's default (for the ops graphopt has definitions of)"
    }

    fn apply(&self, graph: &mut GraphDef, _context: &TransformContext<'_>) -> Result<()> {
        for node in &mut graph.node {
            let Some(def) = ops::op_def(&node.op) else {
                continue;
            };
            for attr in &def.attr {
                if let Some(default) = &attr.default_value {
                    node.attr
                        .entry(attr.name.clone())
                        .or_insert_with(|| default.clone());
                }
            }
        }
        Ok(())
    }
}
