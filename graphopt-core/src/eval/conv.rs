//! Conv2D (im2col + GEMM) and DepthwiseConv2dNative, with SAME/VALID/EXPLICIT padding,
//! strides, dilations, NHWC and NCHW; plus the window geometry MaxPool/AvgPool share.

use std::borrow::Cow;

use ndarray::{ArrayD, IxDyn, LinalgScalar};
use num_traits::Float;

use super::alloc;
use super::cast::{from_f32, to_f32};
use super::shape_ops::permute;
use super::{fail, KernelContext, KernelError};
use super::{gemm, parallel, recycle};
use crate::analysis::geometry;
use crate::tensor::{checked_elements, Data, Tensor};

pub use crate::analysis::geometry::Spatial;

/// Input in NHWC: permuted from NCHW when needed, else the input itself (not a copy).
pub fn to_nhwc<'a>(spatial: &Spatial, x: &'a Tensor) -> Result<Cow<'a, Tensor>, KernelError> {
    if x.shape().len() != 4 {
        return fail(format!("expected a 4-D input, got {:?}", x.shape()));
    }
    if spatial.nchw {
        permute(x, &[0, 2, 3, 1]).map(Cow::Owned)
    } else {
        Ok(Cow::Borrowed(x))
    }
}

/// Output back in the node's data format.
pub fn to_data_format(spatial: &Spatial, y: Tensor) -> Result<Tensor, KernelError> {
    if spatial.nchw {
        permute(&y, &[0, 3, 1, 2])
    } else {
        Ok(y)
    }
}

/// A contiguous row-major slice of `a`, copied only when `a` is not laid out so already.
fn row_major<T: Copy>(a: &ArrayD<T>) -> Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().copied().collect()),
    }
}

/// Whether the window maps each output position to the same input position (a 1-tap window
/// with stride 1 and no padding).
fn is_identity(window: &geometry::Window, kernel: usize) -> bool {
    kernel == 1
        && window.out == window.input
        && (0..window.out).all(|o| window.source(o, 0) == Some(o))
}

fn conv_nhwc<T: LinalgScalar + Float + Send + Sync>(
    ctx: &KernelContext<'_>,
    x: &ArrayD<T>,
    f: &ArrayD<T>,
    spatial: &Spatial,
) -> Result<ArrayD<T>, KernelError> {
    let (n, h, w, c) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    if f.ndim() != 4 || f.shape()[2] == 0 || c % f.shape()[2] != 0 {
        return fail(format!(
            "filter {:?} does not fit input {:?}",
            f.shape(),
            x.shape()
        ));
    }
    let (kh, kw, fc, out_c) = (f.shape()[0], f.shape()[1], f.shape()[2], f.shape()[3]);
    if fc != c {
        return fail("grouped convolutions are not supported by graphopt's evaluator");
    }
    let (wh, ww) = spatial.windows(h, w, kh, kw)?;
    let out_dims = [n, wh.out, ww.out, out_c];
    checked_elements(&out_dims, std::mem::size_of::<T>(), ctx.limits)?;
    let outputs = alloc::output::<T>(&out_dims)?;
    if outputs == 0 {
        return Ok(ArrayD::zeros(IxDyn(&out_dims)));
    }
    // With outputs, every factor below is bounded by an input's or the output's size.
    let rows = geometry::mul(wh.out, ww.out, "the convolution's rows")?;
    let columns = geometry::element_count(&[kh, kw, c])?;
    alloc::work(alloc::loops(&[n, rows, columns, out_c]))?;
    let xs = row_major(x);
    // HWIO is already the [kh * kw * c, out_c] matrix the patches multiply.
    let filter = row_major(f);
    // Every element is written by a product (`gemm` overwrites its output).
    let mut out = recycle::overwritten(outputs, T::zero());
    let image = h * w * c;
    if is_identity(&wh, kh) && is_identity(&ww, kw) {
        // A pointwise convolution: each image is already the patch matrix.
        for (b, y) in out.chunks_exact_mut(rows * out_c).enumerate() {
            let xb = &xs[b * image..(b + 1) * image];
            gemm::multiply(ctx.gemm, (rows, columns, out_c), xb, &filter, y);
        }
        return Ok(ArrayD::from_shape_vec(IxDyn(&out_dims), out)?);
    }
    checked_elements(&[rows, columns], std::mem::size_of::<T>(), ctx.limits)?;
    alloc::output::<T>(&[rows, columns])?;
    // The output rows from `first` on, of one image: their patch rows, then their product.
    // Each patch row is written once, in order: taps inside the image copied, taps in the
    // padding zero (no clearing pass first: zeroing every row cost DenseNet-121 a tenth of
    // its time in memset).
    let convolve = |xb: &[T], first: usize, y: &mut [T], split: bool| {
        let count = y.len() / out_c;
        let mut patches = recycle::take(count * columns);
        for row in first..first + count {
            let (oy, ox) = (row / ww.out, row % ww.out);
            for ky in 0..kh {
                let iy = wh.source(oy, ky);
                for kx in 0..kw {
                    match (iy, ww.source(ox, kx)) {
                        (Some(iy), Some(ix)) => {
                            let from = (iy * w + ix) * c;
                            patches.extend_from_slice(&xb[from..from + c]);
                        }
                        _ => patches.resize(patches.len() + c, T::zero()),
                    }
                }
            }
        }
        let shape = (count, columns, out_c);
        if split {
            gemm::multiply(ctx.gemm, shape, &patches, &filter, y);
        } else {
            gemm::multiply_on_this_thread(ctx.gemm, shape, &patches, &filter, y);
        }
        recycle::give(patches);
    };
    // Where the product would be split by rows anyway, each thread builds its own rows'
    // patches too, and multiplies them (the same bits: see `gemm`).
    let by_rows = gemm::splits_by_rows(ctx.gemm, (rows, columns, out_c));
    for (b, y) in out.chunks_exact_mut(rows * out_c).enumerate() {
        let xb = &xs[b * image..(b + 1) * image];
        if by_rows {
            parallel::rows(y, out_c, usize::MAX, |first, block| {
                convolve(xb, first, block, false)
            });
        } else {
            convolve(xb, 0, y, true);
        }
    }
    // A tap in the padding must add nothing, but its zero patch column times an inf or NaN
    // weight made NaN: where the filter has one and the output a NaN, the rows are summed
    // again over the taps inside the image. The cheaper of the two scans goes first (a late
    // layer's filter is far larger than its output); VALID has no taps in the padding.
    if spatial.padding != "VALID" && padding_may_be_nan(&filter, &out) {
        alloc::work(alloc::loops(&[n, rows, columns, out_c]))?;
        let (window, shape) = ((&wh, &ww), (kh, kw, c, out_c));
        let work = rows.saturating_mul(columns).saturating_mul(out_c);
        for (b, y) in out.chunks_exact_mut(rows * out_c).enumerate() {
            let xb = &xs[b * image..(b + 1) * image];
            let fill = |first: usize, block: &mut [T]| {
                direct(xb, &filter, window, shape, w, first, block);
            };
            match ctx.gemm {
                gemm::Gemm::Fast => parallel::rows(y, out_c, work, fill),
                gemm::Gemm::Portable => fill(0, y),
            }
        }
    }
    Ok(ArrayD::from_shape_vec(IxDyn(&out_dims), out)?)
}

/// Whether `filter` holds an inf or NaN and `out` a NaN (each scanned whole, without an early
/// exit, which vectorizes; the smaller first).
fn padding_may_be_nan<T: Float>(filter: &[T], out: &[T]) -> bool {
    let non_finite = || filter.iter().fold(false, |any, v| any | !v.is_finite());
    let nan = || out.iter().fold(false, |any, v| any | v.is_nan());
    let (first, second): (&dyn Fn() -> bool, &dyn Fn() -> bool) = if filter.len() <= out.len() {
        (&non_finite, &nan)
    } else {
        (&nan, &non_finite)
    };
    first() && second()
}

/// The output rows from `first` on, of one image `xb`, as sums over the taps inside the
/// image only, in the order of the patch columns (ky, kx, input channel): for a filter
/// holding inf or NaN, whose product with a padding zero is NaN. TensorFlow 2.21's default
/// (oneDNN) Conv2D skips the padding so, as the depthwise kernel and the poolings do.
fn direct<T: LinalgScalar>(
    xb: &[T],
    filter: &[T],
    (wh, ww): (&geometry::Window, &geometry::Window),
    (kh, kw, c, out_c): (usize, usize, usize, usize),
    w: usize,
    first: usize,
    y: &mut [T],
) {
    for (r, pixel) in y.chunks_exact_mut(out_c).enumerate() {
        let (oy, ox) = ((first + r) / ww.out, (first + r) % ww.out);
        pixel.fill(T::zero());
        for ky in wh.taps(oy, kh) {
            let Some(iy) = wh.source(oy, ky) else {
                continue;
            };
            for kx in ww.taps(ox, kw) {
                let Some(ix) = ww.source(ox, kx) else {
                    continue;
                };
                let from = (iy * w + ix) * c;
                let taps = &filter[(ky * kw + kx) * c * out_c..][..c * out_c];
                for (&xv, weights) in xb[from..from + c].iter().zip(taps.chunks_exact(out_c)) {
                    for (o, &fv) in pixel.iter_mut().zip(weights) {
                        *o = *o + xv * fv;
                    }
                }
            }
        }
    }
}

/// Each output channel sums its taps in (ky, kx) order from zero, on every path: the inner
/// loops run along the channels of one pixel, contiguous in NHWC.
fn depthwise_nhwc<T: LinalgScalar + Float + Send + Sync>(
    ctx: &KernelContext<'_>,
    x: &ArrayD<T>,
    f: &ArrayD<T>,
    spatial: &Spatial,
) -> Result<ArrayD<T>, KernelError> {
    let (n, h, w, c) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    if f.ndim() != 4 || f.shape()[2] != c {
        return fail(format!(
            "depthwise filter {:?} does not fit input {:?}",
            f.shape(),
            x.shape()
        ));
    }
    let (kh, kw, mult) = (f.shape()[0], f.shape()[1], f.shape()[3]);
    let (wh, ww) = spatial.windows(h, w, kh, kw)?;
    let channels = geometry::mul(c, mult, "the depthwise channels")?;
    let out_dims = [n, wh.out, ww.out, channels];
    checked_elements(&out_dims, std::mem::size_of::<T>(), ctx.limits)?;
    let outputs = alloc::output::<T>(&out_dims)?;
    if outputs == 0 {
        return Ok(ArrayD::zeros(IxDyn(&out_dims)));
    }
    alloc::work(alloc::loops(&[outputs, kh.min(h), kw.min(w)]))?;
    let xs = row_major(x);
    let fs = row_major(f);
    // Each pixel is cleared right before its taps are summed into it, on the thread that
    // sums them, rather than the whole output in a pass of its own.
    let mut out = recycle::overwritten(outputs, T::zero());
    let image = h * w * c;
    // The taps of each output column, worked out once rather than per pixel.
    let column_taps: Vec<_> = (0..ww.out).map(|ox| ww.taps(ox, kw)).collect();
    let fill_rows = |first: usize, block: &mut [T]| {
        for (r, out_row) in block.chunks_exact_mut(ww.out * channels).enumerate() {
            let (b, oy) = ((first + r) / wh.out, (first + r) % wh.out);
            let xb = &xs[b * image..(b + 1) * image];
            let row_taps = wh.taps(oy, kh);
            let pixels = out_row.chunks_exact_mut(channels).zip(&column_taps);
            for (ox, (pixel, columns)) in pixels.enumerate() {
                pixel.fill(T::zero());
                for ky in row_taps.clone() {
                    let Some(iy) = wh.source(oy, ky) else {
                        continue;
                    };
                    for kx in columns.clone() {
                        let Some(ix) = ww.source(ox, kx) else {
                            continue;
                        };
                        let from = (iy * w + ix) * c;
                        let tap = (ky * kw + kx) * channels;
                        accumulate(pixel, &xb[from..from + c], &fs[tap..tap + channels], mult);
                    }
                }
            }
        }
    };
    let work = outputs.saturating_mul(kh.min(h)).saturating_mul(kw.min(w));
    match ctx.gemm {
        // Each row is computed the same way on any thread: the bytes do not depend on the split.
        gemm::Gemm::Fast => parallel::rows(&mut out, ww.out * channels, work, fill_rows),
        gemm::Gemm::Portable => fill_rows(0, &mut out),
    }
    Ok(ArrayD::from_shape_vec(IxDyn(&out_dims), out)?)
}

/// `pixel += x · f` for one tap: `mult` outputs per input channel, each its channel's value
/// times its own weight.
fn accumulate<T: LinalgScalar>(pixel: &mut [T], x: &[T], f: &[T], mult: usize) {
    if mult == 1 {
        for ((o, &xv), &fv) in pixel.iter_mut().zip(x).zip(f) {
            *o = *o + xv * fv;
        }
    } else {
        for ((group, &xv), weights) in pixel
            .chunks_exact_mut(mult)
            .zip(x)
            .zip(f.chunks_exact(mult))
        {
            for (o, &fv) in group.iter_mut().zip(weights) {
                *o = *o + xv * fv;
            }
        }
    }
}

/// Conv2D and DepthwiseConv2dNative.
pub fn conv2d(
    ctx: &KernelContext<'_>,
    input: &Tensor,
    filter: &Tensor,
) -> Result<Tensor, KernelError> {
    let depthwise = ctx.node.op == "DepthwiseConv2dNative";
    if matches!(input.data(), Data::F16(_) | Data::BF16(_)) {
        let y = conv2d(ctx, &to_f32(input)?, &to_f32(filter)?)?;
        return from_f32(&y, input.dtype());
    }
    let spatial = Spatial::from_node(ctx.node, "strides")?;
    let x = to_nhwc(&spatial, input)?;
    let y = match (x.data(), filter.data()) {
        (Data::F32(a), Data::F32(f)) if depthwise => {
            Data::F32(depthwise_nhwc(ctx, a, f, &spatial)?)
        }
        (Data::F32(a), Data::F32(f)) => Data::F32(conv_nhwc(ctx, a, f, &spatial)?),
        (Data::F64(a), Data::F64(f)) if depthwise => {
            Data::F64(depthwise_nhwc(ctx, a, f, &spatial)?)
        }
        (Data::F64(a), Data::F64(f)) => Data::F64(conv_nhwc(ctx, a, f, &spatial)?),
        _ => {
            return fail(format!(
                "convolution of {:?} by {:?} is not supported",
                input.dtype(),
                filter.dtype()
            ))
        }
    };
    to_data_format(&spatial, Tensor::new(input.dtype(), y)?)
}
