//! Cutting a graph to what its outputs need: [`strip_unused`] keeps only the nodes the outputs
//! depend on, cutting at the inputs, which become Placeholders (the `strip_unused_nodes`
//! transform).
//!
//! Differences from TensorFlow's transform, all deliberate:
//! - an existing Placeholder keeps its dtype and shape (TensorFlow's default would be a scalar
//!   for replaced inputs); a global `shape` refines it only where compatible (`?` -> `1`), and a
//!   conflicting `type`/`shape` is reported as a warning instead of silently applied;
//! - per-name types and shapes always apply to their input, with a warning where they
//!   contradict an existing Placeholder;
//! - a replaced non-Placeholder input keeps the dtype of its output 0 (from its OpDef, which
//!   a global `type` does not override but warns about; else its attribute `dtype` or `T`) and
//!   its `_output_shapes` shape when no type or shape is given, and otherwise gets unknown
//!   rank, never a made-up scalar;
//! - an input whose other outputs (`:1`, ...) are read is refused, since a Placeholder has one.

use std::collections::{HashMap, VecDeque};

use super::RewriteError;
use crate::dtype::shape_from_dims;
use crate::graph::attrs;
use crate::graph::{self, InputRef};
use crate::proto::{attr_value, AttrValue, DataType, GraphDef, NodeDef, TensorShapeProto};

/// What to keep and how inputs become Placeholders.
#[derive(Debug, Clone, Default)]
pub struct StripOptions {
    /// Where the graph is cut (`name` or `name:port`).
    pub inputs: Vec<String>,
    /// What must be kept (`name` or `name:port`); at least one.
    pub outputs: Vec<String>,
    /// Type for inputs that have none of their own.
    pub default_type: Option<DataType>,
    /// Shape for inputs (refines an existing one where compatible).
    pub default_shape: Option<Vec<i64>>,
    /// Per input node: its type and shape, applied as given.
    pub per_name: HashMap<String, (Option<DataType>, Option<Vec<i64>>)>,
}

/// Keeps what `options.outputs` need, replacing `options.inputs` by Placeholders; returns the
/// warnings (types or shapes asked for that contradict an existing Placeholder).
pub fn strip_unused(
    graph: &mut GraphDef,
    options: &StripOptions,
) -> Result<Vec<String>, RewriteError> {
    if options.outputs.is_empty() {
        return Err(RewriteError("needs outputs to know what to keep".into()));
    }
    let mut warnings = Vec::new();
    let index = crate::graph::GraphIndex::new(graph);
    let inputs: graph::NameSet<&str> = options.inputs.iter().map(|n| graph::node_name(n)).collect();
    for name in inputs.iter().chain(
        options
            .outputs
            .iter()
            .map(|n| graph::node_name(n))
            .collect::<Vec<_>>()
            .iter(),
    ) {
        if index.index_of(name).is_none() {
            return Err(RewriteError(format!(
                "node '{name}' (a declared input or output) is not in the graph"
            )));
        }
    }
    for name in options.per_name.keys() {
        if !inputs.contains(name.as_str()) {
            return Err(RewriteError(format!(
                "name={name} is not one of the declared inputs"
            )));
        }
    }

    // Walk back from the outputs, stopping at inputs.
    let mut keep = vec![false; graph.node.len()];
    let mut queue: VecDeque<usize> = options
        .outputs
        .iter()
        .filter_map(|n| index.index_of(graph::node_name(n)))
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
            if let Some(p) = index.index_of(InputRef::parse(input).node) {
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
                return Err(RewriteError(format!(
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
            let (t, s) = options
                .per_name
                .get(node.name.as_str())
                .cloned()
                .unwrap_or_default();
            graph.node.push(placeholder_for(
                &mut warnings,
                node,
                t,
                s,
                options.default_type,
                options.default_shape.as_deref(),
            ));
        } else {
            graph.node.push(node);
        }
    }
    Ok(warnings)
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
        return Some(shape_from_dims(given));
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
    dims.map(|d| shape_from_dims(&d))
}

fn placeholder_for(
    warnings: &mut Vec<String>,
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
    let is_placeholder = node.op == "Placeholder" || node.op == "PlaceholderWithDefault";
    // What the node outputs, which its readers expect: not always its `T` (Equal's is bool).
    // The type its readers expect, when certain: a Placeholder's, or what the OpDef says.
    let known_type = if is_placeholder {
        attrs::dtype(&node, "dtype")
    } else {
        crate::graph::ops::output_type(&node, 0)
    };
    let existing_type = known_type
        .or_else(|| attrs::dtype(&node, "dtype"))
        .or_else(|| attrs::dtype(&node, "T"));
    let existing_shape = if is_placeholder {
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
    let dtype = match (named_type, existing_type, default_type) {
        (Some(t), Some(e), _) if t != e && is_placeholder => {
            warnings.push(format!(
                "input '{name}' changes type from {e:?} to {t:?} as name= asks"
            ));
            t
        }
        (Some(t), _, _) => t,
        // A global type= is for inputs of unknown type: another one would make a graph its
        // readers refuse (a uint8 DecodeJpeg cut with type=float).
        (None, Some(e), Some(d)) if d != e && known_type.is_some() => {
            warnings.push(format!(
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
                warnings.push(format!(
                    "input '{name}' changes shape from {} to {} as shape_for_name asks",
                    describe(Some(&existing)),
                    describe(Some(&shape_from_dims(&given)))
                ));
            }
            Some(shape_from_dims(&given))
        }
        (Some(given), None) => Some(shape_from_dims(&given)),
        (None, Some(existing)) => match default_shape {
            Some(given) => match refine(&existing, given) {
                Some(refined) => Some(refined),
                None => {
                    warnings.push(format!(
                        "input '{name}' keeps its shape {}; shape={} disagrees",
                        describe(Some(&existing)),
                        describe(Some(&shape_from_dims(given)))
                    ));
                    Some(existing)
                }
            },
            None => Some(existing),
        },
        (None, None) => default_shape.map(shape_from_dims),
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
