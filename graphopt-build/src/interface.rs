//! The interface recorded in the manifest: each input's and output's node, tensor, dtype and
//! shape, and the graph's op counts.

use std::collections::BTreeMap;

use graphopt_core::analysis::shapes;
use graphopt_core::graph::{self, attrs};
use graphopt_core::proto::{GraphDef, NodeDef};

use crate::manifest::TensorManifest;

fn output_dtype(node: &NodeDef) -> Option<graphopt_core::proto::DataType> {
    ["dtype", "T", "DstT", "out_type", "Tout"]
        .iter()
        .find_map(|a| attrs::dtype(node, a))
}

/// Static shape of `tensor` with unknown dimensions as -1: the graph is probed with two batch
/// sizes, and dimensions that follow the batch are unknown.
fn static_shape(graph: &GraphDef, tensor: &str) -> Option<Vec<i64>> {
    let parsed = graph::InputRef::parse(tensor);
    let probe = |batch: i64| -> Option<Vec<usize>> {
        let mut g = graph.clone();
        for node in g.node.iter_mut().filter(|n| n.op == "Placeholder") {
            if let Some(graphopt_core::proto::attr_value::Value::Shape(s)) =
                node.attr.get_mut("shape").and_then(|a| a.value.as_mut())
            {
                for d in &mut s.dim {
                    if d.size < 0 {
                        d.size = batch;
                    }
                }
            }
        }
        shapes::infer_graph(&g)
            .get(parsed.node)?
            .get(parsed.port as usize)?
            .clone()
    };
    let (a, b) = (probe(1)?, probe(2)?);
    if a.len() != b.len() {
        return None;
    }
    Some(
        a.iter()
            .zip(&b)
            .map(|(&x, &y)| if x == y { x as i64 } else { -1 })
            .collect(),
    )
}

/// The manifest entry of an input or output. Its shape is what the SavedModel signature
/// declares (`declared`, by node name), refined by shape inference where the signature leaves
/// a dimension unknown; `None` when neither knows the rank.
pub fn tensor_manifest(
    graph: &GraphDef,
    name: &str,
    declared: &BTreeMap<String, Option<Vec<i64>>>,
) -> Result<TensorManifest, String> {
    let parsed = graph::InputRef::parse(name);
    let node = graph
        .node
        .iter()
        .find(|n| n.name == parsed.node)
        .ok_or_else(|| {
            format!("'{name}' is not in the optimized graph (did a transform remove or rename it?)")
        })?;
    let dtype = output_dtype(node)
        .map(|d| graphopt_core::dtype::dtype_name(d as i32))
        .unwrap_or_else(|| "unknown".into());
    let inferred = if node.op == "Placeholder" {
        attrs::shape(node, "shape").and_then(graphopt_core::dtype::shape_dims)
    } else {
        static_shape(graph, name)
    };
    let declared = if parsed.port == 0 {
        declared.get(parsed.node).cloned().flatten()
    } else {
        None
    };
    Ok(TensorManifest {
        name: parsed.node.to_string(),
        tensor: format!("{}:{}", parsed.node, parsed.port),
        dtype,
        shape: merge_shapes(declared, inferred),
    })
}

/// How often each op occurs among `nodes`.
pub fn op_counts<'a>(nodes: impl Iterator<Item = &'a NodeDef>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for node in nodes {
        *counts.entry(node.op.clone()).or_insert(0) += 1;
    }
    counts
}

/// A declared shape with its unknown dimensions filled from an inferred one of the same rank.
fn merge_shapes(declared: Option<Vec<i64>>, inferred: Option<Vec<i64>>) -> Option<Vec<i64>> {
    match (declared, inferred) {
        (Some(declared), Some(inferred)) if declared.len() == inferred.len() => Some(
            declared
                .iter()
                .zip(&inferred)
                .map(|(&d, &i)| if d >= 0 { d } else { i })
                .collect(),
        ),
        (Some(declared), _) => Some(declared),
        (None, inferred) => inferred,
    }
}

#[cfg(test)]
mod tests {
    use super::merge_shapes;

    #[test]
    fn signature_shapes_are_refined_by_inference() {
        let shape = |d: &[i64]| Some(d.to_vec());
        assert_eq!(
            merge_shapes(shape(&[-1, 4]), shape(&[-1, 4])),
            shape(&[-1, 4])
        );
        assert_eq!(
            merge_shapes(shape(&[-1, -1]), shape(&[-1, 4])),
            shape(&[-1, 4])
        );
        // The signature wins over an inference of another rank, and alone.
        assert_eq!(merge_shapes(shape(&[-1, 4]), shape(&[4])), shape(&[-1, 4]));
        assert_eq!(merge_shapes(shape(&[-1, 4]), None), shape(&[-1, 4]));
        assert_eq!(merge_shapes(None, shape(&[1, 5])), shape(&[1, 5]));
        assert_eq!(merge_shapes(None, None), None);
    }
}
