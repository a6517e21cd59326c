//! 8-bit weights: every float Const with at least `minimum_size` elements becomes 8-bit codes
//! (quint8, TensorFlow's MIN_FIRST encoding) plus its range, followed by a `Dequantize` named
//! like the original constant, a quarter of the size (the `quantize_weights` transform).
//!
//! Codes are bit-exact with TensorFlow's transform. The one deliberate difference: TensorFlow
//! starts its running maximum at FLT_MIN (the smallest positive float) instead of the lowest
//! float, so an all-zero tensor (a fresh bias) gets the range [0, 1.2e-38] and dequantizes to
//! NaN; graphopt starts at the lowest float, so that tensor takes TensorFlow's own degenerate-
//! range rule and dequantizes to exact zeros.
//!
//! Error bound: each element moves by at most half a step, (max - min) / 255 / 2, plus float
//! rounding, where [min, max] is the tensor's range widened to include 0.

use ndarray::ArrayD;

use crate::graph::edit::{const_node, control_inputs, NameReserver};
use crate::proto::{attr_value, AttrValue, DataType, GraphDef, NodeDef};
use crate::rewrite::weights::floats;
use crate::tensor::{Data, Tensor};

/// Quantizes every float Const of `graph` with at least `minimum_size` elements.
pub fn quantize_weights(graph: &mut GraphDef, minimum_size: usize) {
    let mut taken = NameReserver::new(graph);
    let old = std::mem::take(&mut graph.node);
    for node in old {
        match quantizable(&node, minimum_size) {
            Some(values) => graph.node.extend(quantize_node(node, &values, &mut taken)),
            None => graph.node.push(node),
        }
    }
}

/// The float values of a Const worth quantizing.
fn quantizable(node: &NodeDef, minimum_size: usize) -> Option<(Vec<f32>, Vec<usize>)> {
    let value = crate::graph::edit::const_value(node)?;
    if value.dtype() != DataType::DtFloat || value.len() < minimum_size.max(1) {
        return None;
    }
    let values = floats(&value)?.into_iter().map(|v| v as f32).collect();
    Some((values, value.shape().to_vec()))
}

/// The [min, max] range TensorFlow quantizes over: the values' range widened to include 0,
/// with TensorFlow's rule for a single-valued range.
pub fn quantization_range(values: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = f32::MIN;
    for &v in values {
        min = min.min(v);
        max = max.max(v);
    }
    min = min.min(0.0);
    max = max.max(0.0);
    if min == max {
        if min.abs() < 0.000_001 {
            max = min + 1.0;
        } else if min > 0.0 {
            max = 2.0 * min;
        } else {
            max = min / 2.0;
        }
    }
    (min, max)
}

/// TensorFlow's FloatToQuantized for quint8, in double precision as TensorFlow computes it.
pub fn quantize(value: f32, min: f32, max: f32) -> u8 {
    if min == max {
        return 0;
    }
    let steps = 256.0f64;
    let range = (f64::from(max) - f64::from(min)) * (steps / (steps - 1.0));
    let scale = steps / range;
    let q = (f64::from(value) * scale).round() - (f64::from(min) * scale).round();
    q.clamp(0.0, 255.0) as u8
}

fn quantize_node(
    node: NodeDef,
    (values, dims): &(Vec<f32>, Vec<usize>),
    taken: &mut NameReserver,
) -> Vec<NodeDef> {
    let (min, max) = quantization_range(values);
    let codes: Vec<u8> = values.iter().map(|&v| quantize(v, min, max)).collect();
    let Ok(array) = ArrayD::from_shape_vec(ndarray::IxDyn(dims), codes) else {
        return vec![node];
    };
    let Ok(codes) = Tensor::new(DataType::DtQuint8, Data::U8(array)) else {
        return vec![node];
    };
    let scalar = |v: f32| Tensor::from_data(Data::F32(ndarray::arr0(v).into_dyn()));
    let const_name = taken.reserve(&format!("{}_quantized_const", node.name));
    let min_name = taken.reserve(&format!("{}_quantized_min", node.name));
    let max_name = taken.reserve(&format!("{}_quantized_max", node.name));
    let mut dequantize = NodeDef {
        name: node.name.clone(),
        op: "Dequantize".into(),
        device: node.device.clone(),
        input: vec![const_name.clone(), min_name.clone(), max_name.clone()],
        ..Default::default()
    };
    // A Const's control inputs now order the Dequantize.
    dequantize.input.extend(control_inputs(&node));
    dequantize.attr.insert(
        "T".into(),
        AttrValue {
            value: Some(attr_value::Value::Type(DataType::DtQuint8 as i32)),
        },
    );
    dequantize.attr.insert(
        "mode".into(),
        AttrValue {
            value: Some(attr_value::Value::S(bytes::Bytes::from_static(
                b"MIN_FIRST",
            ))),
        },
    );
    vec![
        const_node(const_name, node.device.clone(), &codes),
        const_node(min_name, node.device.clone(), &scalar(min)),
        const_node(max_name, node.device.clone(), &scalar(max)),
        dequantize,
    ]
}
