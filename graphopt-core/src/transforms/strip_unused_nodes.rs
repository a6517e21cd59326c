//! `strip_unused_nodes(type, shape, name, type_for_name, shape_for_name)`: keeps only what the
//! --outputs need, cutting the graph at the --inputs, which become Placeholders (see
//! [`crate::rewrite::strip`]).

use std::collections::HashMap;

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::{DataType, GraphDef};
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
            .map(|t| parse_type(context, t))
            .transpose()?;
        let default_shape = context
            .params
            .optional("shape")?
            .map(|s| parse_shape(context, s))
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
            let t = types.get(k).map(|t| parse_type(context, t)).transpose()?;
            let s = shapes.get(k).map(|s| parse_shape(context, s)).transpose()?;
            per_name.insert(name.clone(), (t, s));
        }

        if context.outputs.is_empty() {
            return Err(context.error("needs --outputs to know what to keep"));
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

fn parse_type(context: &TransformContext<'_>, text: &str) -> Result<DataType> {
    let upper = text.to_ascii_uppercase();
    let candidates = [format!("DT_{upper}"), upper.clone()];
    let alias = match upper.as_str() {
        "FLOAT32" => Some("DT_FLOAT"),
        "FLOAT64" => Some("DT_DOUBLE"),
        "FLOAT16" => Some("DT_HALF"),
        _ => None,
    };
    candidates
        .iter()
        .map(String::as_str)
        .chain(alias)
        .find_map(DataType::from_str_name)
        .ok_or_else(|| {
            context.error(format!(
                "'{text}' is not a TensorFlow type (e.g. float, int32, uint8)"
            ))
        })
}

fn parse_shape(context: &TransformContext<'_>, text: &str) -> Result<Vec<i64>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|d| match d.trim() {
            "?" | "-1" => Ok(-1),
            d => d.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
                context.error(format!("'{text}' is not a shape like \"1,224,224,3\""))
            }),
        })
        .collect()
}
