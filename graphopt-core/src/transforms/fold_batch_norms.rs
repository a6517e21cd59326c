//! `fold_batch_norms`: moves per-channel multiplies and adds that follow a convolution or matrix
//! product into its weights and a single BiasAdd. Run after `fold_constants`.
//!
//! Rules, applied until nothing changes:
//! - `Mul(layer(x, W), m)` -> `layer(x, W*m)` (GTT's rule; the layer takes the Mul's name).
//! - `Mul(BiasAdd(layer(x, W), b), m)` -> `BiasAdd(layer(x, W*m), b*m)` (TF1's unfused
//!   `tf.nn.batch_normalization` after a biased conv: the bias is scaled too).
//! - `Add|AddV2(layer, c)`, `Sub(layer, c)` -> `BiasAdd(layer, ±c)`: the add half of Keras 3's
//!   decomposed batch norm, which TensorFlow's tool leaves in place.
//! - `Add|AddV2|Sub(BiasAdd(y, b), c)` and `BiasAdd(BiasAdd(y, b), c)` -> `BiasAdd(y, b±c)`.
//!
//! `layer` is Conv2D, DepthwiseConv2dNative or MatMul with Const weights; `m`, `b`, `c` are
//! Consts that vary only along the output channels (or are scalars). Weights that another node
//! also reads are copied (`NAME_bn_folded`) rather than scaled under the other reader. A
//! multiply is never folded into a layer whose output something else reads, and no node named
//! in --inputs/--outputs loses its name.

use std::collections::HashSet;

use super::{Transform, TransformContext};
use crate::edit::{const_value, data_inputs, Edits, Uses};
use crate::error::Result;
use crate::graph;
use crate::proto::{attr_value, AttrValue, GraphDef, NodeDef};
use crate::tensor::Tensor;
use crate::weights::{floats, per_channel, vector, Layer};

pub struct FoldBatchNorms;

impl Transform for FoldBatchNorms {
    fn name(&self) -> &str {
        "fold_batch_norms"
    }

    fn summary(&self) -> &str {
        "fold per-channel Mul/Add after Conv2D, DepthwiseConv2dNative and MatMul into weights and one BiasAdd"
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let protected = context.protected_names();
        while sweep(graph, &protected) {}
        Ok(())
    }
}

/// Position of the one Const among two data inputs, with the other input's producer.
fn split_operands(
    graph: &GraphDef,
    uses: &Uses,
    node: &NodeDef,
    const_second_only: bool,
) -> Option<(usize, usize, usize)> {
    let inputs = data_inputs(node);
    let [a, b] = inputs.as_slice() else {
        return None;
    };
    let pa = uses.producer(a)?;
    let pb = uses.producer(b)?;
    let a_const = graph.node.get(pa)?.op == "Const";
    let b_const = graph.node.get(pb)?.op == "Const";
    let plain = |s: &str| graph::InputRef::parse(s).port == 0;
    match (a_const, b_const) {
        (false, true) if plain(a) => Some((pa, pb, 1)),
        (true, false) if plain(b) && !const_second_only => Some((pb, pa, 0)),
        _ => None,
    }
}

fn bias_add_attrs(node: &mut NodeDef, data_format: Option<AttrValue>) {
    let t = node.attr.get("T").cloned();
    node.attr.clear();
    if let Some(t) = t {
        node.attr.insert("T".into(), t);
    }
    node.attr.insert(
        "data_format".into(),
        data_format.unwrap_or(AttrValue {
            value: Some(attr_value::Value::S(bytes::Bytes::from_static(b"NHWC"))),
        }),
    );
}

/// (rank, channel axis) of a BiasAdd's output, given its bias length.
fn bias_layout(node: &NodeDef) -> (usize, usize) {
    let nchw = crate::eval::attrs::string(node, "data_format").is_some_and(|f| f == "NCHW");
    if nchw {
        (4, 1)
    } else {
        (0, usize::MAX)
    }
}

/// Per-channel values of `c` for a BiasAdd-like output; NHWC accepts any trailing layout.
fn bias_values(c: &Tensor, channels: usize, layout: (usize, usize)) -> Option<Vec<f64>> {
    match layout {
        (0, _) => {
            let rank = c.shape().len().max(1);
            per_channel(c, channels, rank - 1, rank)
        }
        (rank, axis) => per_channel(c, channels, axis, rank),
    }
}

/// One pass over the graph; true if anything changed.
fn sweep(graph: &mut GraphDef, protected: &HashSet<String>) -> bool {
    let uses = Uses::new(graph);
    let mut edits = Edits::new(graph, protected);
    for i in 0..graph.node.len() {
        if !edits.free(&[i]) {
            continue;
        }
        let op = graph.node[i].op.clone();
        match op.as_str() {
            "Mul" => fold_mul(graph, &uses, &mut edits, protected, i),
            "Add" | "AddV2" | "Sub" | "BiasAdd" => fold_add(graph, &uses, &mut edits, protected, i),
            _ => {}
        }
    }
    edits.finish(graph)
}

/// Layer node `l` with its Const weights: (weights node, weights value, layer kind).
fn layer_with_weights(graph: &GraphDef, uses: &Uses, l: usize) -> Option<(usize, Tensor, Layer)> {
    let node = graph.node.get(l)?;
    let layer = Layer::of(node)?;
    let w_input = data_inputs(node).get(1).copied()?;
    let w = uses.producer(w_input)?;
    let value = const_value(graph.node.get(w)?)?;
    floats(&value)?;
    Some((w, value, layer))
}

fn fold_mul(
    graph: &mut GraphDef,
    uses: &Uses,
    edits: &mut Edits,
    protected: &HashSet<String>,
    mul: usize,
) {
    let Some((x, m, _)) = split_operands(graph, uses, &graph.node[mul], false) else {
        return;
    };
    let Some(m_value) = const_value(&graph.node[m]) else {
        return;
    };
    if uses.count(x) != 1 || protected.contains(&graph.node[x].name) || uses.reads_other_outputs(x)
    {
        return;
    }
    if graph.node[x].op == "BiasAdd" {
        // Mul(BiasAdd(layer, b), m): scale weights and bias.
        let inputs: Vec<String> = data_inputs(&graph.node[x])
            .iter()
            .map(|s| s.to_string())
            .collect();
        let [y, b] = inputs.as_slice() else { return };
        let (Some(l), Some(bn)) = (uses.producer(y), uses.producer(b)) else {
            return;
        };
        let Some(b_value) = const_value(&graph.node[bn]) else {
            return;
        };
        if uses.count(l) != 1
            || protected.contains(&graph.node[l].name)
            || !edits.free(&[x, l, bn, m])
        {
            return;
        }
        let Some((w, w_value, layer)) = layer_with_weights(graph, uses, l) else {
            return;
        };
        let Some(channels) = layer.channels(&w_value) else {
            return;
        };
        let (rank, axis) = layer.output_layout(&graph.node[l]);
        let (Some(scale), Some(bias)) = (
            per_channel(&m_value, channels, axis, rank),
            floats(&b_value),
        ) else {
            return;
        };
        if bias.len() != channels {
            return;
        }
        let Some(new_w) = layer.scale(&w_value, &scale) else {
            return;
        };
        let scaled_bias: Vec<f64> = bias.iter().zip(&scale).map(|(b, s)| b * s).collect();
        let Some(new_b) = vector(&scaled_bias, b_value.dtype()) else {
            return;
        };
        edits.touch(&[mul, x, l, w, bn, m]);
        edits.set_input_value(graph, uses, l, 1, w, &new_w);
        edits.set_input_value(graph, uses, x, 1, bn, &new_b);
        graph.node[x].name = graph.node[mul].name.clone();
        edits.removed.insert(mul);
        return;
    }
    // Mul(layer, m).
    let Some((w, w_value, layer)) = layer_with_weights(graph, uses, x) else {
        return;
    };
    if !edits.free(&[x, w, m]) {
        return;
    }
    let Some(channels) = layer.channels(&w_value) else {
        return;
    };
    let (rank, axis) = layer.output_layout(&graph.node[x]);
    let Some(scale) = per_channel(&m_value, channels, axis, rank) else {
        return;
    };
    let Some(new_w) = layer.scale(&w_value, &scale) else {
        return;
    };
    edits.touch(&[mul, x, w, m]);
    edits.set_input_value(graph, uses, x, 1, w, &new_w);
    graph.node[x].name = graph.node[mul].name.clone();
    edits.removed.insert(mul);
}

fn fold_add(
    graph: &mut GraphDef,
    uses: &Uses,
    edits: &mut Edits,
    protected: &HashSet<String>,
    add: usize,
) {
    let op = graph.node[add].op.clone();
    let is_bias_add = op == "BiasAdd";
    let Some((x, c, c_slot)) =
        split_operands(graph, uses, &graph.node[add], op == "Sub" || is_bias_add)
    else {
        return;
    };
    let Some(c_value) = const_value(&graph.node[c]) else {
        return;
    };
    let sign = if op == "Sub" { -1.0 } else { 1.0 };
    let x_input = data_inputs(&graph.node[add])
        .get(1 - c_slot)
        .map(|s| s.to_string())
        .unwrap_or_default();

    if graph.node[x].op == "BiasAdd" {
        // (y + b) + c -> y + (b + c).
        if uses.count(x) != 1 || protected.contains(&graph.node[x].name) || !edits.free(&[x, c]) {
            return;
        }
        let inputs: Vec<String> = data_inputs(&graph.node[x])
            .iter()
            .map(|s| s.to_string())
            .collect();
        let [y, b] = inputs.as_slice() else { return };
        let Some(bn) = uses.producer(b) else { return };
        let Some(b_value) = const_value(&graph.node[bn]) else {
            return;
        };
        let Some(bias) = floats(&b_value) else { return };
        let layout = bias_layout(&graph.node[x]);
        if is_bias_add && bias_layout(&graph.node[add]) != layout {
            return;
        }
        let Some(extra) = bias_values(&c_value, bias.len(), layout) else {
            return;
        };
        let merged: Vec<f64> = bias.iter().zip(&extra).map(|(b, e)| b + sign * e).collect();
        let Some(new_b) = vector(&merged, b_value.dtype()) else {
            return;
        };
        if !edits.free(&[bn]) {
            return;
        }
        edits.touch(&[add, x, c, bn]);
        let base = format!("{}/bias", graph.node[add].name);
        let bias_name = edits.new_const(graph, add, &base, &new_b);
        let data_format = graph.node[x].attr.get("data_format").cloned();
        let node = &mut graph.node[add];
        let controls: Vec<String> = node
            .input
            .iter()
            .filter(|i| i.starts_with('^'))
            .cloned()
            .collect();
        node.op = "BiasAdd".into();
        node.input = vec![y.clone(), bias_name];
        node.input.extend(controls);
        bias_add_attrs(node, data_format);
        edits.removed.insert(x);
        return;
    }
    if is_bias_add {
        return;
    }
    // layer + c -> BiasAdd(layer, c).
    let Some((_, w_value, layer)) = layer_with_weights(graph, uses, x) else {
        return;
    };
    let Some(channels) = layer.channels(&w_value) else {
        return;
    };
    let (rank, axis) = layer.output_layout(&graph.node[x]);
    let Some(values) = per_channel(&c_value, channels, axis, rank) else {
        return;
    };
    let values: Vec<f64> = values.iter().map(|v| sign * v).collect();
    let Some(bias) = vector(&values, c_value.dtype()) else {
        return;
    };
    if !edits.free(&[c]) {
        return;
    }
    edits.touch(&[add, c]);
    let base = format!("{}/bias", graph.node[add].name);
    let bias_name = edits.new_const(graph, add, &base, &bias);
    let data_format = match layer {
        Layer::MatMul { .. } => None,
        _ => graph.node[x].attr.get("data_format").cloned(),
    };
    let node = &mut graph.node[add];
    let controls: Vec<String> = node
        .input
        .iter()
        .filter(|i| i.starts_with('^'))
        .cloned()
        .collect();
    node.op = "BiasAdd".into();
    node.input = vec![x_input, bias_name];
    node.input.extend(controls);
    bias_add_attrs(node, data_format);
}
