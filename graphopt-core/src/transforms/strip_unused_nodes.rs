//! `strip_unused_nodes(type, shape, name, type_for_name, shape_for_name)`: keeps only what the
//! --outputs need, cutting the graph at the --inputs, which become Placeholders (see
//! [`crate::rewrite::strip`]).

use std::collections::HashMap;

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;
use crate::rewrite::strip::{strip_unused, StripOptions};

pub struct StripUnusedNodes;

impl Transform for StripUnusedNodes {
    fn name(&self) -> &str {
        "strip_unused_nodes"
    }

    fn summary(&self) -> &str {
        "keep only what --outputs need; --inputs become Placeholders"
    }

    fn params(&self) -> Option<&[&str]> {
        Some(&["type", "shape", "name", "type_for_name", "shape_for_name"])
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let default_type = context
            .params
            .optional("type")?
            .map(|t| context.params.parse_type(t))
            .transpose()?;
        let default_shape = context
            .params
            .optional("shape")?
            .map(|s| context.params.parse_shape(s))
            .transpose()?;
        let names = context.params.list("name");
        let types = context.params.list("type_for_name");
        let shapes = context.params.list("shape_for_name");
        if types.len() != names.len() && !types.is_empty()
            || shapes.len() != names.len() && !shapes.is_empty()
        {
            return Err(context.error(
                "name, type_for_name and shape_for_name must be given the same number of times",
            ));
        }
        let mut per_name = HashMap::new();
        for (k, name) in names.iter().enumerate() {
            let t = types
                .get(k)
                .map(|t| context.params.parse_type(t))
                .transpose()?;
            let s = shapes
                .get(k)
                .map(|s| context.params.parse_shape(s))
                .transpose()?;
            per_name.insert(name.clone(), (t, s));
        }

        if context.outputs.is_empty() {
            return Err(context
                .error("needs the outputs to know what to keep (--outputs, or Model::outputs)"));
        }
        let options = StripOptions {
            inputs: context.inputs.to_vec(),
            outputs: context.outputs.to_vec(),
            default_type,
            default_shape,
            per_name,
        };
        let warnings = strip_unused(graph, &options).map_err(|e| context.error(e.to_string()))?;
        for warning in warnings {
            context.warn(warning);
        }
        Ok(())
    }
}
