//! Static shapes: [`fix_input_shapes`] gives graph inputs fixed dimensions (a `-1` or `?`
//! becomes a size), after which constant folding collapses the shape arithmetic that depended
//! on them; [`add_output_shapes`] writes every node's inferred output shapes into the
//! `_output_shapes` attribute that TVM's importer (and TensorFlow's own `add_shapes`) uses.

use crate::analysis::shapes;
use crate::budget;
use crate::dtype::shape_from_dims;
use crate::error::Error;
use crate::graph::{attrs, ops};
use crate::proto::{attr_value, tensor_shape_proto, AttrValue, GraphDef, TensorShapeProto};
use crate::rewrite::RewriteError;

/// Sets the `shape` of each named Placeholder to the given dims, which must agree with the
/// dims it already knows (a `-1` in the graph takes the given size; a `-1` given keeps the
/// dimension unknown) and, for a PlaceholderWithDefault, with its default's (TensorFlow
/// refuses to import one whose default does not fit its shape).
pub fn fix_input_shapes(
    graph: &mut GraphDef,
    shapes: &[(String, Vec<i64>)],
) -> Result<(), RewriteError> {
    let defaults = graph
        .node
        .iter()
        .any(|n| n.op == "PlaceholderWithDefault")
        .then(|| shapes::infer_graph(graph));
    let mut default_shapes = Vec::new();
    for (name, _) in shapes {
        let default = graph
            .node
            .iter()
            .find(|n| n.name == *name && n.op == "PlaceholderWithDefault")
            .and_then(|n| {
                crate::graph::edit::data_inputs(n)
                    .first()
                    .map(|d| d.to_string())
            })
            .and_then(|d| defaults.as_ref()?.partial_of(&d).map(<[_]>::to_vec));
        default_shapes.push(default);
    }
    for ((name, dims), default) in shapes.iter().zip(default_shapes) {
        let node = graph
            .node
            .iter_mut()
            .find(|n| n.name == *name)
            .ok_or_else(|| RewriteError(format!("there is no input called '{name}'")))?;
        if !matches!(node.op.as_str(), "Placeholder" | "PlaceholderWithDefault") {
            return Err(RewriteError(format!(
                "'{name}' is a {}, not a Placeholder; cut the graph there with strip_unused_nodes first",
                node.op
            )));
        }
        if dims.iter().any(|&d| d < -1) {
            return Err(RewriteError(format!(
                "'{name}': dimensions must be sizes or -1, got {dims:?}"
            )));
        }
        let fixed = match attrs::shape(node, "shape") {
            Some(existing) if !existing.unknown_rank => {
                if existing.dim.len() != dims.len() {
                    return Err(RewriteError(format!(
                        "'{name}' has rank {}, but {} dimensions were given",
                        existing.dim.len(),
                        dims.len()
                    )));
                }
                let mut out = Vec::with_capacity(dims.len());
                for (k, (e, &g)) in existing.dim.iter().zip(dims).enumerate() {
                    out.push(match (e.size, g) {
                        (e, g) if e == g => e,
                        (-1, g) => g,
                        (e, -1) => e,
                        (e, g) => {
                            return Err(RewriteError(format!(
                                "'{name}' dimension {k} is {e}; it cannot become {g}"
                            )))
                        }
                    });
                }
                out
            }
            _ => dims.clone(),
        };
        if let Some(default) = default {
            let fits = default.len() == fixed.len()
                && default.iter().zip(&fixed).all(|(d, &f)| match d {
                    Some(d) => f == -1 || i64::try_from(*d).is_ok_and(|d| d == f),
                    None => true,
                });
            if !fits {
                let shown: Vec<i64> = default
                    .iter()
                    .map(|d| d.and_then(|d| i64::try_from(d).ok()).unwrap_or(-1))
                    .collect();
                return Err(RewriteError(format!(
                    "'{name}' defaults to a tensor of shape {shown:?}; it cannot take the shape {fixed:?}"
                )));
            }
        }
        node.attr.insert(
            "shape".into(),
            AttrValue {
                value: Some(attr_value::Value::Shape(shape_from_dims(&fixed))),
            },
        );
    }
    Ok(())
}

/// Writes `_output_shapes` on every node whose output count is known: the inferred shape of
/// each output, as far as known (-1 for an unknown dim, unknown rank where inference cannot
/// tell the rank). Returns how many nodes got one.
///
/// The output count may come from an attribute (Split's `num_split`, Unpack's `num`), so each
/// list is asked of the budget first: a node claiming 2^40 outputs is an error naming it.
pub fn add_output_shapes(graph: &mut GraphDef) -> Result<usize, Error> {
    write_output_shapes(graph, false)
}

/// Rewrites the `_output_shapes` of the nodes that have one with the shapes inferred now: a
/// rewrite that changes what nodes output (a layout conversion) leaves them stale, and
/// TensorFlow refuses to import a graph whose `_output_shapes` contradict it. Returns how many
/// nodes were rewritten.
pub fn refresh_output_shapes(graph: &mut GraphDef) -> Result<usize, Error> {
    if !graph
        .node
        .iter()
        .any(|n| n.attr.contains_key("_output_shapes"))
    {
        return Ok(0);
    }
    write_output_shapes(graph, true)
}

/// [`add_output_shapes`], on every node or (`existing`) on those that have the attribute.
fn write_output_shapes(graph: &mut GraphDef, existing: bool) -> Result<usize, Error> {
    let known = shapes::infer_graph(graph);
    let mut count = 0;
    for node in &mut graph.node {
        if existing && !node.attr.contains_key("_output_shapes") {
            continue;
        }
        let inferred = known.partial(&node.name);
        let outputs = ops::output_count(node).or_else(|| inferred.map(Vec::len));
        let Some(outputs) = outputs else {
            // Nothing to say: a stale list goes.
            node.attr.remove("_output_shapes");
            continue;
        };
        let dims: usize = inferred
            .map(|s| s.iter().flatten().map(Vec::len).sum())
            .unwrap_or(0);
        budget::alloc_items(
            outputs,
            std::mem::size_of::<TensorShapeProto>(),
            "the output shape list",
        )
        .and_then(|()| {
            budget::alloc_items(
                dims,
                std::mem::size_of::<tensor_shape_proto::Dim>(),
                "the output shapes",
            )
        })
        .map_err(|source| Error::Budget {
            node: node.name.clone(),
            source,
        })?;
        let list: Vec<TensorShapeProto> = (0..outputs)
            .map(
                |k| match inferred.and_then(|s| s.get(k)).and_then(Option::as_ref) {
                    Some(dims) => shape_from_dims(
                        &dims
                            .iter()
                            .map(|d| d.and_then(|d| i64::try_from(d).ok()).unwrap_or(-1))
                            .collect::<Vec<_>>(),
                    ),
                    None => TensorShapeProto {
                        dim: Vec::new(),
                        unknown_rank: true,
                    },
                },
            )
            .collect();
        node.attr.insert(
            "_output_shapes".into(),
            AttrValue {
                value: Some(attr_value::Value::List(Box::new(attr_value::ListValue {
                    shape: list,
                    ..Default::default()
                }))),
            },
        );
        count += 1;
    }
    Ok(count)
}
