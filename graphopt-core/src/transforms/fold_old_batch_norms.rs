//! `fold_old_batch_norms`: folds FusedBatchNorm, FusedBatchNormV2, FusedBatchNormV3 (inference)
//! and BatchNormWithGlobalNormalization that follow a Conv2D, DepthwiseConv2dNative or MatMul
//! into the layer's weights and a BiasAdd named after the batch norm. Run after
//! `fold_constants` so the parameters are Consts.
//!
//! Differences from TensorFlow's transform, all deliberate:
//! - V2 and V3 are folded (TensorFlow's transform only knows FusedBatchNorm, though every
//!   graph since TF 1.14 uses V3);
//! - a BiasAdd or Add of a Const between the layer and the norm is folded too, with the bias
//!   scaled and shifted (`Conv2D -> BiasAdd -> BatchNorm`, Keras' `use_bias=True`);
//! - NCHW is honoured: the norm's data format must match the layer's;
//! - weights another node also reads are copied, never scaled under it;
//! - a norm whose other outputs (batch mean, variance) are read is left alone.

use std::collections::HashSet;

use super::{Transform, TransformContext};
use crate::edit::{const_value, data_inputs, Edits, Uses};
use crate::error::Result;
use crate::eval::attrs;
use crate::graph;
use crate::proto::GraphDef;
use crate::weights::{floats, vector, Layer};

pub struct FoldOldBatchNorms;

impl Transform for FoldOldBatchNorms {
    fn name(&self) -> &str {
        "fold_old_batch_norms"
    }

    fn summary(&self) -> &str {
        "fold FusedBatchNorm(V2/V3) and BatchNormWithGlobalNormalization after conv/matmul into weights and a BiasAdd"
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let protected = context.protected_names();
        while sweep(graph, &protected) {}
        Ok(())
    }
}

fn sweep(graph: &mut GraphDef, protected: &HashSet<String>) -> bool {
    let uses = Uses::new(graph);
    let mut edits = Edits::new(graph, protected);
    for i in 0..graph.node.len() {
        if matches!(
            graph.node[i].op.as_str(),
            "FusedBatchNorm"
                | "FusedBatchNormV2"
                | "FusedBatchNormV3"
                | "BatchNormWithGlobalNormalization"
        ) && edits.free(&[i])
        {
            fold(graph, &uses, &mut edits, protected, i);
        }
    }
    edits.finish(graph)
}

/// Per-channel (scale, offset) of a batch norm node, from its Const parameters.
fn norm_parameters(
    graph: &GraphDef,
    uses: &Uses,
    bn: usize,
) -> Option<(Vec<f64>, Vec<f64>, Vec<usize>)> {
    let node = &graph.node[bn];
    let inputs = data_inputs(node);
    let producers: Vec<usize> = inputs
        .iter()
        .skip(1)
        .map(|s| uses.producer(s))
        .collect::<Option<_>>()?;
    let values: Vec<Vec<f64>> = producers
        .iter()
        .map(|&p| floats(&const_value(graph.node.get(p)?)?))
        .collect::<Option<_>>()?;
    let (gamma, beta, mean, var, epsilon) = if node.op == "BatchNormWithGlobalNormalization" {
        let [mean, var, beta, gamma] = values.as_slice() else {
            return None;
        };
        let gamma = if attrs::bool(node, "scale_after_normalization").unwrap_or(false) {
            gamma.clone()
        } else {
            vec![1.0; mean.len()]
        };
        (
            gamma,
            beta.clone(),
            mean.clone(),
            var.clone(),
            attrs::float(node, "variance_epsilon")?,
        )
    } else {
        if attrs::bool(node, "is_training").unwrap_or(true) {
            return None;
        }
        let [scale, offset, mean, var] = values.as_slice() else {
            return None;
        };
        (
            scale.clone(),
            offset.clone(),
            mean.clone(),
            var.clone(),
            attrs::float(node, "epsilon").unwrap_or(1e-4),
        )
    };
    let c = mean.len();
    if [gamma.len(), beta.len(), var.len()].iter().any(|&l| l != c) {
        return None;
    }
    let epsilon = f64::from(epsilon);
    let scale: Vec<f64> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| g / (v + epsilon).sqrt())
        .collect();
    let offset: Vec<f64> = beta
        .iter()
        .zip(&mean)
        .zip(&scale)
        .map(|((b, m), s)| b - m * s)
        .collect();
    Some((scale, offset, producers))
}

fn fold(
    graph: &mut GraphDef,
    uses: &Uses,
    edits: &mut Edits,
    protected: &HashSet<String>,
    bn: usize,
) {
    if uses.reads_other_outputs(bn) {
        return;
    }
    let Some((scale, mut offset, params)) = norm_parameters(graph, uses, bn) else {
        return;
    };
    let Some(x_input) = data_inputs(&graph.node[bn]).first().map(|s| s.to_string()) else {
        return;
    };
    if graph::InputRef::parse(&x_input).port != 0 {
        return;
    }
    let Some(mut x) = uses.producer(&x_input) else {
        return;
    };
    let mut between = None;
    // An optional BiasAdd/Add of a Const between the layer and the norm.
    if matches!(graph.node[x].op.as_str(), "BiasAdd" | "Add" | "AddV2") {
        let inputs: Vec<String> = data_inputs(&graph.node[x])
            .iter()
            .map(|s| s.to_string())
            .collect();
        let [y, b] = inputs.as_slice() else { return };
        let (Some(l), Some(bp)) = (uses.producer(y), uses.producer(b)) else {
            return;
        };
        let Some(bias) = const_value(&graph.node[bp]).and_then(|v| floats(&v)) else {
            return;
        };
        if uses.count(x) != 1
            || protected.contains(&graph.node[x].name)
            || bias.len() != offset.len()
        {
            return;
        }
        for (o, (b, s)) in offset.iter_mut().zip(bias.iter().zip(&scale)) {
            *o += b * s;
        }
        between = Some(x);
        x = l;
    }
    let layer_node = &graph.node[x];
    let Some(layer) = Layer::of(layer_node) else {
        return;
    };
    if uses.count(x) != 1 || protected.contains(&layer_node.name) {
        return;
    }
    let bn_nchw = attrs::string(&graph.node[bn], "data_format").is_some_and(|f| f == "NCHW");
    let layer_nchw = attrs::string(layer_node, "data_format").is_some_and(|f| f == "NCHW");
    if matches!(layer, Layer::MatMul { .. }) && bn_nchw
        || !matches!(layer, Layer::MatMul { .. }) && bn_nchw != layer_nchw
    {
        return;
    }
    let Some(w_input) = data_inputs(layer_node).get(1).map(|s| s.to_string()) else {
        return;
    };
    let Some(w) = uses.producer(&w_input) else {
        return;
    };
    let Some(w_value) = const_value(&graph.node[w]) else {
        return;
    };
    if layer.channels(&w_value) != Some(scale.len()) {
        return;
    }
    let mut involved = vec![bn, x, w];
    involved.extend(&params);
    involved.extend(between);
    if !edits.free(&involved) {
        return;
    }
    let Some(new_w) = layer.scale(&w_value, &scale) else {
        return;
    };
    let Some(bias) = vector(&offset, w_value.dtype()) else {
        return;
    };
    edits.touch(&involved);
    edits.set_input_value(graph, uses, x, 1, w, &new_w);
    let base = format!("{}/bias", graph.node[bn].name);
    let bias_name = edits.new_const(graph, bn, &base, &bias);
    let layer_output = graph.node[x].name.clone();
    let node = &mut graph.node[bn];
    let controls: Vec<String> = node
        .input
        .iter()
        .filter(|i| i.starts_with('^'))
        .cloned()
        .collect();
    let t = node.attr.get("T").cloned();
    node.op = "BiasAdd".into();
    node.input = vec![layer_output, bias_name];
    node.input.extend(controls);
    node.attr.clear();
    if let Some(t) = t {
        node.attr.insert("T".into(), t);
    }
    let format = if bn_nchw { "NCHW" } else { "NHWC" };
    node.attr.insert(
        "data_format".into(),
        crate::proto::AttrValue {
            value: Some(crate::proto::attr_value::Value::S(
                bytes::Bytes::from_static(format.as_bytes()),
            )),
        },
    );
    if let Some(b) = between {
        edits.removed.insert(b);
    }
}
