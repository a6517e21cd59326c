//! `fix_input_shapes(name=..., shape=...)`: gives inputs fixed dimensions (`-1`/`?` becomes a
//! size; known dimensions must agree), then folds the shape arithmetic that becomes constant,
//! so `Shape`, `Reshape` targets and the like turn into Consts. Give `name` and `shape` once per
//! input, in the same order; a lone `shape` applies to every --inputs node. See
//! [`crate::rewrite::static_shapes`].

use std::collections::HashSet;

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::graph;
use crate::proto::GraphDef;
use crate::rewrite::constants::{fold, FoldOptions, DEFAULT_MAX_FOLDED_BYTES};
use crate::rewrite::static_shapes::fix_input_shapes;
use crate::tensor::Limits;

pub struct FixInputShapes;

impl Transform for FixInputShapes {
    fn name(&self) -> &str {
        "fix_input_shapes"
    }

    fn summary(&self) -> &str {
        "fix input dimensions (name=..., shape=\"1,224,224,3\") and fold the shape arithmetic that becomes constant"
    }

    fn params(&self) -> Option<&[&str]> {
        Some(&["name", "shape"])
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let names = context.params.list("name");
        let shapes = context.params.list("shape");
        let pairs: Vec<(String, Vec<i64>)> = match (names.len(), shapes.len()) {
            (0, 1) if !context.inputs.is_empty() => {
                let dims = context.params.parse_shape(&shapes[0])?;
                context
                    .inputs
                    .iter()
                    .map(|i| (graph::node_name(i).to_string(), dims.clone()))
                    .collect()
            }
            (n, m) if n == m && n > 0 => names
                .iter()
                .zip(shapes)
                .map(|(n, s)| Ok((n.clone(), context.params.parse_shape(s)?)))
                .collect::<Result<_>>()?,
            _ => {
                return Err(context.error(
                    "give name and shape once per input, e.g. fix_input_shapes(name=input, shape=\"1,224,224,3\"), or one shape alone for every declared input",
                ))
            }
        };
        fix_input_shapes(graph, &pairs).map_err(|e| context.error(e.to_string()))?;
        let options = FoldOptions {
            limits: Limits {
                max_bytes: DEFAULT_MAX_FOLDED_BYTES,
            },
            exclude_ops: HashSet::new(),
            exclude_nodes: HashSet::new(),
            inputs: pairs.iter().map(|(n, _)| n.clone()).collect(),
            protected: context.protected_names(),
            outputs: context.outputs.to_vec(),
        };
        fold(graph, &options)?;
        Ok(())
    }
}
