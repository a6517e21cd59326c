//! `add_shapes`: writes each node's output shapes, as far as static shape inference knows them
//! (-1 for an unknown dim, an unknown rank where not even the rank is known), into its
//! `_output_shapes` attribute (TVM's TensorFlow importer reads it), as TensorFlow's
//! `as_graph_def(add_shapes=True)` does: on every fixture graphopt knows each rank and dim
//! TensorFlow knows (graphopt-core/tests/add_shapes.rs). Run `fix_input_shapes` first so more
//! shapes are known. See [`crate::rewrite::static_shapes`].

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;
use crate::rewrite::static_shapes::add_output_shapes;

pub struct AddShapes;

impl Transform for AddShapes {
    fn name(&self) -> &str {
        "add_shapes"
    }

    fn summary(&self) -> &str {
        "write inferred output shapes into each node's _output_shapes attribute"
    }

    fn apply(&self, graph: &mut GraphDef, _context: &TransformContext<'_>) -> Result<()> {
        add_output_shapes(graph)?;
        Ok(())
    }
}
