//! `strip_unused_nodes(type, shape, name, type_for_name, shape_for_name)`: keeps only what the
//! --outputs need, cutting the graph at the --inputs, which become Placeholders.
//!
//! Differences from TensorFlow's transform, all deliberate:
//! - an existing Placeholder keeps its dtype and shape (TensorFlow's default would be a scalar
//!   for replaced inputs); a global `shape` refines it only where compatible (`?` -> `1`), and a
//!   conflicting `type`/`shape` is reported as a warning instead of silently applied;
//! - `name`/`type_for_name`/`shape_for_name` always apply to their input, with a warning where
//!   they contradict an existing Placeholder;
//! - a replaced non-Placeholder input keeps its own dtype (attribute `T` or `dtype`) and
//!   `_output_shapes` shape when no type or shape is given, and otherwise gets unknown rank,
//!   never a made-up scalar;
//! - an input whose other outputs (`:1`, ...) are read is refused, since a Placeholder has one.

use std::collections::{HashMap, HashSet, VecDeque};

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::eval::attrs;
use crate::graph::{self, InputRef};
use crate::proto::{
    attr_value, tensor_shape_proto, AttrValue, DataType, GraphDef, NodeDef, TensorShapeProto,
};

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
        if context.outputs.is_empty() {
            return Err(context.error("needs --outputs to know what to keep"));
        }
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
        let mut per_name: HashMap<&str, (Option<DataType>, Option<Vec<i64>>)> = HashMap::new();
        for (k, name) in names.iter().enumerate() {
            let t = types.get(k).map(|t| parse_type(context, t)).transpose()?;
            let s = shapes.get(k).map(|s| parse_shape(context, s)).transpose()?;
            per_name.insert(name.as_str(), (t, s));
        }

        let index: HashMap<&str, usize> = graph
            .node
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        let inputs: HashSet<&str> = context.inputs.iter().map(|n| graph::node_name(n)).collect();
        for name in inputs.iter().chain(
            context
                .outputs
                .iter()
                .map(|n| graph::node_name(n))
                .collect::<Vec<_>>()
                .iter(),
        ) {
            if !index.contains_key(name) {
                return Err(context.error(format!(
                    "node '{name}' (from --inputs/--outputs) is not in the graph"
                )));
            }
        }
        for name in per_name.keys() {
            if !inputs.contains(name) {
                return Err(context.error(format!("name={name} is not one of --inputs")));
            }
        }

        // Walk back from the outputs, stopping at inputs.
        let mut keep = vec![false; graph.node.len()];
        let mut queue: VecDeque<usize> = context
            .outputs
            .iter()
            .filter_map(|n| index.get(graph::node_name(n)).copied())
            .collect();
        while let Some(i) = queue.pop_front() {
            if std::mem::replace(&mut keep[i], true) {
                continue;
            }
            let node = &graph.node[i];
            if inputs.contains(node.name.as_str()) {
                continue;
            }
            for input in &node.input {
                if let Some(&p) = index.get(InputRef::parse(input).node) {
                    queue.push_back(p);
                }
            }
        }

        // Inputs read through an output other than 0 cannot become Placeholders.
        for node in graph
            .node
            .iter()
            .enumerate()
            .filter(|(i, _)| keep[*i])
            .map(|(_, n)| n)
        {
            if inputs.contains(node.name.as_str()) {
                continue;
            }
            for input in &node.input {
                let parsed = InputRef::parse(input);
                if inputs.contains(parsed.node) && parsed.port > 0 {
                    return Err(context.error(format!(
                        "input '{}' is read as '{input}' by '{}'; a Placeholder has only output 0",
                        parsed.node, node.name
                    )));
                }
            }
        }

        let old = std::mem::take(&mut graph.node);
        for (i, node) in old.into_iter().enumerate() {
            if !keep[i] {
                continue;
            }
            if inputs.contains(node.name.as_str()) {
                let (t, s) = per_name
                    .get(node.name.as_str())
                    .cloned()
                    .unwrap_or_default();
                graph.node.push(placeholder_for(
                    context,
                    node,
                    t,
                    s,
                    default_type,
                    default_shape.as_deref(),
                ));
            } else {
                graph.node.push(node);
            }
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

fn shape_proto(dims: &[i64]) -> TensorShapeProto {
    TensorShapeProto {
        dim: dims
            .iter()
            .map(|&size| tensor_shape_proto::Dim {
                size,
                name: String::new(),
            })
            .collect(),
        unknown_rank: false,
    }
}

fn describe(shape: Option<&TensorShapeProto>) -> String {
    match shape {
        None => "unknown".into(),
        Some(s) if s.unknown_rank => "unknown".into(),
        Some(s) => format!(
            "[{}]",
            s.dim
                .iter()
                .map(|d| if d.size < 0 {
                    "?".into()
                } else {
                    d.size.to_string()
                })
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// `given` refines `existing` if every known dimension agrees.
fn refine(existing: &TensorShapeProto, given: &[i64]) -> Option<TensorShapeProto> {
    if existing.unknown_rank {
        return Some(shape_proto(given));
    }
    if existing.dim.len() != given.len() {
        return None;
    }
    let dims: Option<Vec<i64>> = existing
        .dim
        .iter()
        .zip(given)
        .map(|(e, &g)| match (e.size, g) {
            (e, g) if e == g => Some(e),
            (-1, g) => Some(g),
            (e, -1) => Some(e),
            _ => None,
        })
        .collect();
    dims.map(|d| shape_proto(&d))
}

fn placeholder_for(
    context: &TransformContext<'_>,
    node: NodeDef,
    named_type: Option<DataType>,
    named_shape: Option<Vec<i64>>,
    default_type: Option<DataType>,
    default_shape: Option<&[i64]>,
) -> NodeDef {
    let name = node.name.clone();
    let mut placeholder = NodeDef {
        name: name.clone(),
        op: "Placeholder".into(),
        device: node.device.clone(),
        ..Default::default()
    };
    let existing_type = attrs::dtype(&node, "dtype").or_else(|| attrs::dtype(&node, "T"));
    let existing_shape = if matches!(node.op.as_str(), "Placeholder" | "PlaceholderWithDefault") {
        attrs::shape(&node, "shape").cloned()
    } else {
        match node
            .attr
            .get("_output_shapes")
            .and_then(|a| a.value.as_ref())
        {
            Some(attr_value::Value::List(list)) => list.shape.first().cloned(),
            _ => None,
        }
    };
    let is_placeholder = node.op == "Placeholder" || node.op == "PlaceholderWithDefault";

    let dtype = match (named_type, existing_type, default_type) {
        (Some(t), Some(e), _) if t != e && is_placeholder => {
            context.warn(format!(
                "input '{name}' changes type from {e:?} to {t:?} as name= asks"
            ));
            t
        }
        (Some(t), _, _) => t,
        (None, Some(e), Some(d)) if d != e && is_placeholder => {
            context.warn(format!(
                "input '{name}' keeps its type {e:?}; type={d:?} disagrees"
            ));
            e
        }
        (None, Some(e), _) if is_placeholder => e,
        (None, _, Some(d)) => d,
        (None, Some(e), None) => e,
        (None, None, None) => DataType::DtFloat,
    };
    let shape = match (named_shape, existing_shape) {
        (Some(given), Some(existing)) => {
            if refine(&existing, &given).is_none() {
                context.warn(format!(
                    "input '{name}' changes shape from {} to {} as shape_for_name asks",
                    describe(Some(&existing)),
                    describe(Some(&shape_proto(&given)))
                ));
            }
            Some(shape_proto(&given))
        }
        (Some(given), None) => Some(shape_proto(&given)),
        (None, Some(existing)) => match default_shape {
            Some(given) => match refine(&existing, given) {
                Some(refined) => Some(refined),
                None => {
                    context.warn(format!(
                        "input '{name}' keeps its shape {}; shape={} disagrees",
                        describe(Some(&existing)),
                        describe(Some(&shape_proto(given)))
                    ));
                    Some(existing)
                }
            },
            None => Some(existing),
        },
        (None, None) => default_shape.map(shape_proto),
    };
    placeholder.attr.insert(
        "dtype".into(),
        AttrValue {
            value: Some(attr_value::Value::Type(dtype as i32)),
        },
    );
    placeholder.attr.insert(
        "shape".into(),
        AttrValue {
            value: Some(attr_value::Value::Shape(shape.unwrap_or(
                TensorShapeProto {
                    dim: Vec::new(),
                    unknown_rank: true,
                },
            ))),
        },
    );
    placeholder
}
