//! ResizeBilinear and the fused pad/resize convolutions of TensorFlow's `fuse_*` transforms.

use ndarray::{ArrayD, IxDyn};

use super::cast::to_f32;
use super::{cast::to_i64_vec, conv, fail, slicing, KernelContext, KernelError};
use crate::graph::attrs;
use crate::tensor::{Data, Tensor};

/// Source coordinate mapping of one axis.
fn mapping(
    input: usize,
    output: usize,
    align_corners: bool,
    half_pixel: bool,
) -> impl Fn(usize) -> (usize, usize, f32) {
    let scale = if align_corners && output > 1 {
        (input as f32 - 1.0) / (output as f32 - 1.0)
    } else {
        input as f32 / output as f32
    };
    move |o: usize| {
        let source = if half_pixel {
            ((o as f32 + 0.5) * scale - 0.5).max(0.0)
        } else {
            o as f32 * scale
        };
        let low = (source.floor() as usize).min(input.saturating_sub(1));
        let high = (low + 1).min(input.saturating_sub(1));
        (low, high, source - source.floor())
    }
}

/// ResizeBilinear on NHWC: output is float32, as in TensorFlow.
pub fn resize_bilinear(
    ctx: &KernelContext<'_>,
    images: &Tensor,
    size: &Tensor,
) -> Result<Tensor, KernelError> {
    let align = attrs::bool(ctx.node, "align_corners").unwrap_or(false);
    let half = attrs::bool(ctx.node, "half_pixel_centers").unwrap_or(false);
    let size = to_i64_vec(size)?;
    let [out_h, out_w] = size.as_slice() else {
        return fail("size must have 2 entries");
    };
    let (out_h, out_w) = (
        usize::try_from(*out_h).unwrap_or(0),
        usize::try_from(*out_w).unwrap_or(0),
    );
    let Data::F32(x) = to_f32(images)?.into_data() else {
        return fail("images must be numeric");
    };
    let [n, h, w, c] = x.shape() else {
        return fail("images must be 4-D");
    };
    let (n, h, w, c) = (*n, *h, *w, *c);
    if h == 0 || w == 0 || out_h == 0 || out_w == 0 {
        return fail("resize needs non-empty input and output");
    }
    super::broadcast::check_output(&[n, out_h, out_w, c], 4)?;
    let ys = mapping(h, out_h, align, half);
    let xs = mapping(w, out_w, align, half);
    let mut out = ArrayD::<f32>::zeros(IxDyn(&[n, out_h, out_w, c]));
    for b in 0..n {
        for oy in 0..out_h {
            let (y0, y1, ly) = ys(oy);
            for ox in 0..out_w {
                let (x0, x1, lx) = xs(ox);
                for ch in 0..c {
                    let tl = x[[b, y0, x0, ch]];
                    let tr = x[[b, y0, x1, ch]];
                    let bl = x[[b, y1, x0, ch]];
                    let br = x[[b, y1, x1, ch]];
                    let top = tl + (tr - tl) * lx;
                    let bottom = bl + (br - bl) * lx;
                    out[[b, oy, ox, ch]] = top + (bottom - top) * ly;
                }
            }
        }
    }
    Ok(Tensor::from_data(Data::F32(out)))
}

/// FusedPadConv2D (input, paddings, filter) and FusedResizeAndPadConv2D (input, size,
/// paddings, filter): MirrorPad (after a resize) then Conv2D, with the node's strides/padding.
pub fn fused_conv(ctx: &KernelContext<'_>, inputs: &[&Tensor]) -> Result<Tensor, KernelError> {
    let (padded_input, paddings, filter) = match inputs {
        [x, p, f] => ((*x).clone(), *p, *f),
        [x, size, p, f] => {
            let mut resize_node = ctx.node.clone();
            if let Some(a) = ctx.node.attr.get("resize_align_corners") {
                resize_node.attr.insert("align_corners".into(), a.clone());
            }
            let resize_ctx = KernelContext {
                node: &resize_node,
                ..*ctx
            };
            let resized = resize_bilinear(&resize_ctx, x, size)?;
            (crate::eval::cast_tensor(&resized, x.dtype())?, *p, *f)
        }
        _ => return fail("expected 3 or 4 inputs"),
    };
    let padded = slicing::mirror_pad(ctx, &padded_input, paddings)?;
    conv::conv2d(ctx, &padded, filter)
}
