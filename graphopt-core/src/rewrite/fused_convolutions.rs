//! MirrorPad and ResizeBilinear folded into the Conv2D after them: TensorFlow's FusedPadConv2D
//! and FusedResizeAndPadConv2D pad and resize while building the convolution's patches (the
//! `fuse_pad_and_conv`, `fuse_resize_and_conv` and `fuse_resize_pad_and_conv` transforms).
//!
//! Differences from TensorFlow's transforms, all deliberate:
//! - only where the convolution's input batch is statically 1: TensorFlow 2.21's CPU kernels
//!   for both fused ops compute wrong values for every image after the first in a batch
//!   (measured; graphopt's evaluator implements the documented semantics), so fusing larger or
//!   unknown batches would change results; skipped matches are reported as warnings;
//! - a ResizeBilinear with `half_pixel_centers=true`, a dilated or NCHW convolution is left
//!   alone, since the fused ops cannot express them (TensorFlow's transform drops those
//!   attributes);
//! - a MirrorPad or ResizeBilinear that something else also reads stays (pattern API rule);
//! - so does a match whose values the fused op's OpDef does not take (TensorFlow refuses the
//!   graph): a convolution with EXPLICIT padding or of a type the fused op lacks (int32), or
//!   int64 paddings (the fused ops read int32 ones).

use std::collections::HashSet;

use crate::analysis::shapes;
use crate::graph::attrs;
use crate::graph::edit::{const_node, data_inputs};
use crate::proto::{attr_value, AttrValue, DataType, GraphDef, NodeDef};
use crate::rewrite::pattern::{self, Match, Pattern};
use crate::rewrite::RewriteError;
use crate::tensor::{Data, Tensor};

/// What is folded into the convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fusion {
    /// `Conv2D(MirrorPad(x))` becomes FusedPadConv2D.
    Pad,
    /// `Conv2D(ResizeBilinear(x))` becomes FusedResizeAndPadConv2D.
    Resize,
    /// `Conv2D(MirrorPad(ResizeBilinear(x)))` becomes FusedResizeAndPadConv2D.
    ResizePad,
}

/// Fuses every match of `fusion` whose nodes `protected` does not keep; returns a message per
/// match left alone, saying why.
pub fn fuse_convolutions(
    graph: &mut GraphDef,
    fusion: Fusion,
    protected: &HashSet<String>,
) -> Result<Vec<String>, RewriteError> {
    let pattern_text = match fusion {
        Fusion::Pad => "Conv2D(MirrorPad(*, Const), *)",
        Fusion::Resize => "Conv2D(ResizeBilinear(*, Const), *)",
        Fusion::ResizePad => "Conv2D(MirrorPad(ResizeBilinear(*, Const), Const), *)",
    };
    let pattern = Pattern::parse(pattern_text).map_err(RewriteError)?;
    let static_shapes = shapes::infer_graph(graph);
    let mut skipped = Vec::new();
    let result = pattern::replace(graph, &pattern, protected, |g, m| {
        let fused = fuse(fusion, g, m, &static_shapes);
        if let Err(reason) = &fused {
            skipped.push(format!("'{}' not fused: {reason}", g.node[m.node].name));
        }
        fused.ok()
    });
    skipped.extend(result.refused);
    Ok(skipped)
}

fn copy(from: &NodeDef, to: &mut NodeDef, name: &str, as_name: &str) {
    if let Some(v) = from.attr.get(name) {
        to.attr.insert(as_name.into(), v.clone());
    }
}

fn fuse(
    kind: Fusion,
    g: &GraphDef,
    m: &Match,
    static_shapes: &shapes::StaticShapes,
) -> std::result::Result<Vec<NodeDef>, String> {
    let conv = &g.node[m.node];
    if attrs::string(conv, "data_format").is_some_and(|f| f != "NHWC") {
        return Err("NCHW convolution".into());
    }
    if attrs::ints(conv, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
        return Err("dilated convolution".into());
    }
    let before = &g.node[m.inputs[0].node];
    let innermost = if kind == Fusion::ResizePad {
        &g.node[m.inputs[0].inputs[0].node]
    } else {
        before
    };
    let source_shape = data_inputs(innermost)
        .first()
        .and_then(|input| static_shapes.of(input));
    let batch_one = source_shape.is_some_and(|s| s.first() == Some(&1));
    if !batch_one {
        return Err("the batch is not statically 1, and TensorFlow's fused kernels are wrong for larger batches".into());
    }
    let filter = data_inputs(conv)
        .get(1)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let mut fused = NodeDef {
        name: conv.name.clone(),
        device: conv.device.clone(),
        ..Default::default()
    };
    for attr in ["T", "strides", "padding"] {
        copy(conv, &mut fused, attr, attr);
    }
    let mut extra = Vec::new();
    match kind {
        Fusion::Pad => {
            let pad = before;
            fused.op = "FusedPadConv2D".into();
            int32_paddings(pad)?;
            fused.input = vec![
                data_inputs(pad)[0].to_string(),
                data_inputs(pad)[1].to_string(),
                filter,
            ];
            copy(pad, &mut fused, "mode", "mode");
        }
        Fusion::Resize | Fusion::ResizePad => {
            let (resize, pad) = if kind == Fusion::Resize {
                (before, None)
            } else {
                (&g.node[m.inputs[0].inputs[0].node], Some(before))
            };
            if attrs::bool(resize, "half_pixel_centers").unwrap_or(false) {
                return Err(
                    "ResizeBilinear uses half_pixel_centers, which the fused op cannot".into(),
                );
            }
            fused.op = "FusedResizeAndPadConv2D".into();
            let paddings = match pad {
                Some(p) => {
                    int32_paddings(p)?;
                    copy(p, &mut fused, "mode", "mode");
                    data_inputs(p)[1].to_string()
                }
                None => {
                    let name = format!("{}_dummy_paddings", conv.name);
                    let zeros =
                        Tensor::from_data(Data::I32(ndarray::ArrayD::zeros(ndarray::IxDyn(&[
                            4, 2,
                        ]))));
                    extra.push(const_node(name.clone(), conv.device.clone(), &zeros));
                    fused.attr.insert(
                        "mode".into(),
                        AttrValue {
                            value: Some(attr_value::Value::S(bytes::Bytes::from_static(
                                b"REFLECT",
                            ))),
                        },
                    );
                    name
                }
            };
            fused.input = vec![
                data_inputs(resize)[0].to_string(),
                data_inputs(resize)[1].to_string(),
                paddings,
                filter,
            ];
            copy(resize, &mut fused, "align_corners", "resize_align_corners");
        }
    }
    if !crate::graph::ops::values_allowed(&fused, &fused.op) {
        return Err(format!(
            "{} does not take the convolution's type or padding",
            fused.op
        ));
    }
    extra.push(fused);
    Ok(extra)
}

/// The fused ops read their paddings as int32; a MirrorPad may have int64 ones.
fn int32_paddings(pad: &NodeDef) -> std::result::Result<(), String> {
    match attrs::dtype(pad, "Tpaddings") {
        None | Some(DataType::DtInt32) => Ok(()),
        Some(_) => Err("the paddings are not int32, which the fused op reads".into()),
    }
}
