//! The interface recorded in the manifest: each input's and output's node, tensor, dtype and
//! shape, and the graph's op counts.

use std::collections::BTreeMap;

use graphopt_core::analysis::shapes;
use graphopt_core::graph::{self, attrs, ops};
use graphopt_core::proto::{DataType, GraphDef, NodeDef};

use crate::manifest::TensorManifest;

/// The dtype of output `port` of `node`: what its op's OpDef says of that output (a fixed
/// type, or the attribute it takes its type from, defaults included), else, for an op
/// graphopt does not know, the first of the attributes ops commonly type outputs with. The
/// first attribute alone called ArgMax's int64 output and Equal's bool one float (`T`, their
/// inputs' type), so the typed constants described another tensor.
fn output_dtype(node: &NodeDef, port: u32) -> Option<DataType> {
    if ops::op_def(&node.op).is_some() {
        // A reference type (a TF1 variable's) is its value's type.
        let raw = ops::output_type(node, usize::try_from(port).ok()?)? as i32;
        return DataType::try_from(graphopt_core::tensor::base_dtype(raw)).ok();
    }
    ["dtype", "T", "DstT", "out_type", "Tout"]
        .iter()
        .find_map(|a| attrs::dtype(node, a))
}

/// The shape of `tensor` that shape inference knows, unknown dimensions as -1 (`None` when
/// not even its rank is known). Unknown input dims stay unknown through every op: a dim is
/// known only where it does not depend on them.
fn static_shape(known: &shapes::StaticShapes, tensor: &str) -> Option<Vec<i64>> {
    let dims = known.partial_of(tensor)?;
    Some(
        dims.iter()
            .map(|d| d.and_then(|d| i64::try_from(d).ok()).unwrap_or(-1))
            .collect(),
    )
}

/// The manifest entry of an input or output. Its shape is what the SavedModel signature
/// declares (`declared`, by node name), refined by shape inference (`known`, of `graph`) where
/// the signature leaves a dimension unknown; `None` when neither knows the rank.
pub fn tensor_manifest(
    graph: &GraphDef,
    known: &shapes::StaticShapes,
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
    let dtype = output_dtype(node, parsed.port)
        .map(|d| graphopt_core::dtype::dtype_name(d as i32))
        .unwrap_or_else(|| "unknown".into());
    let inferred = if node.op == "Placeholder" {
        attrs::shape(node, "shape").and_then(graphopt_core::dtype::shape_dims)
    } else {
        static_shape(known, name)
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
    use super::*;
    use graphopt_core::proto::{attr_value, AttrValue, TensorProto, TensorShapeProto};

    fn attr(value: attr_value::Value) -> (String, AttrValue) {
        (String::new(), AttrValue { value: Some(value) })
    }

    fn node(
        name: &str,
        op: &str,
        inputs: &[&str],
        attrs: Vec<(&str, attr_value::Value)>,
    ) -> NodeDef {
        NodeDef {
            name: name.into(),
            op: op.into(),
            input: inputs.iter().map(|i| i.to_string()).collect(),
            attr: attrs
                .into_iter()
                .map(|(k, v)| (k.to_string(), attr(v).1))
                .collect(),
            ..Default::default()
        }
    }

    fn shape(dims: &[i64]) -> TensorShapeProto {
        graphopt_core::dtype::shape_from_dims(dims)
    }

    #[test]
    fn unknown_input_dims_stay_unknown_through_a_strided_convolution() {
        // Probing unknown dims with sizes 1 and 2 would find ceil(1/2) = ceil(2/2) = 1 here.
        let float = attr_value::Value::Type(DataType::DtFloat as i32);
        let graph = GraphDef {
            node: vec![
                node(
                    "x",
                    "Placeholder",
                    &[],
                    vec![
                        ("dtype", float.clone()),
                        ("shape", attr_value::Value::Shape(shape(&[1, -1, -1, 3]))),
                    ],
                ),
                node(
                    "w",
                    "Const",
                    &[],
                    vec![
                        ("dtype", float.clone()),
                        (
                            "value",
                            attr_value::Value::Tensor(Box::new(TensorProto {
                                dtype: DataType::DtFloat as i32,
                                tensor_shape: Some(shape(&[3, 3, 3, 8])),
                                ..Default::default()
                            })),
                        ),
                    ],
                ),
                node(
                    "conv",
                    "Conv2D",
                    &["x", "w"],
                    vec![
                        ("T", float),
                        (
                            "strides",
                            attr_value::Value::List(Box::new(attr_value::ListValue {
                                i: vec![1, 2, 2, 1],
                                ..Default::default()
                            })),
                        ),
                        ("padding", attr_value::Value::S(b"SAME".to_vec().into())),
                    ],
                ),
            ],
            ..Default::default()
        };
        let known = shapes::infer_graph(&graph);
        let manifest = tensor_manifest(&graph, &known, "conv", &BTreeMap::new()).unwrap();
        assert_eq!(manifest.shape, Some(vec![1, -1, -1, 8]));
        let manifest = tensor_manifest(&graph, &known, "x", &BTreeMap::new()).unwrap();
        assert_eq!(manifest.shape, Some(vec![1, -1, -1, 3]));
        // A signature's unknown dim stays unknown where inference does not know it either.
        let declared = [("conv".to_string(), Some(vec![-1, -1, -1, -1]))].into();
        let manifest = tensor_manifest(&graph, &known, "conv", &declared).unwrap();
        assert_eq!(manifest.shape, Some(vec![1, -1, -1, 8]));
    }

    /// Outputs typed otherwise than their inputs: an index, a comparison, a shape, a
    /// multi-output op's second output, a cast.
    #[test]
    fn output_dtypes_come_from_the_op_def() {
        let float = || attr_value::Value::Type(DataType::DtFloat as i32);
        let int32 = attr_value::Value::Type(DataType::DtInt32 as i32);
        let graph = GraphDef {
            node: vec![
                node("x", "Placeholder", &[], vec![("dtype", float())]),
                node("k", "Const", &[], vec![("dtype", int32.clone())]),
                node(
                    "argmax",
                    "ArgMax",
                    &["x", "k"],
                    vec![("T", float()), ("Tidx", int32)],
                ),
                node("equal", "Equal", &["x", "x"], vec![("T", float())]),
                node("shape", "Shape", &["x"], vec![("T", float())]),
                node("top", "TopKV2", &["x", "k"], vec![("T", float())]),
                node(
                    "cast",
                    "Cast",
                    &["x"],
                    vec![
                        ("SrcT", float()),
                        ("DstT", attr_value::Value::Type(DataType::DtHalf as i32)),
                    ],
                ),
                node("custom", "MyOp", &["x"], vec![("T", float())]),
            ],
            ..Default::default()
        };
        let known = shapes::infer_graph(&graph);
        let dtype = |name: &str| {
            tensor_manifest(&graph, &known, name, &BTreeMap::new())
                .unwrap()
                .dtype
        };
        assert_eq!(dtype("argmax"), "int64");
        assert_eq!(dtype("equal"), "bool");
        assert_eq!(dtype("shape"), "int32");
        assert_eq!(dtype("top:0"), "float");
        assert_eq!(dtype("top:1"), "int32");
        assert_eq!(dtype("cast"), "half");
        assert_eq!(dtype("x"), "float");
        // An op graphopt does not know: its type attributes.
        assert_eq!(dtype("custom"), "float");
    }

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
