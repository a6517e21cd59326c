//! Conv2D (im2col + GEMM) and DepthwiseConv2dNative, with SAME/VALID/EXPLICIT padding,
//! strides, dilations, NHWC and NCHW; plus the window geometry MaxPool/AvgPool share.

use ndarray::{Array2, ArrayD, IxDyn, LinalgScalar};
use num_traits::Float;

use super::alloc;
use super::cast::{from_f32, to_f32};
use super::shape_ops::permute;
use super::{fail, KernelContext, KernelError};
use crate::analysis::geometry;
use crate::tensor::{checked_elements, Data, Tensor};

pub use crate::analysis::geometry::Spatial;

/// Input in NHWC (permuted from NCHW when needed).
pub fn to_nhwc(spatial: &Spatial, x: &Tensor) -> Result<Tensor, KernelError> {
    if x.shape().len() != 4 {
        return fail(format!("expected a 4-D input, got {:?}", x.shape()));
    }
    if spatial.nchw {
        permute(x, &[0, 2, 3, 1])
    } else {
        Ok(x.clone())
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

fn conv_nhwc<T: LinalgScalar + Float>(
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
    checked_elements(&[rows, columns], std::mem::size_of::<T>(), ctx.limits)?;
    alloc::output::<T>(&[rows, columns])?;
    alloc::work(alloc::loops(&[n, rows, columns, out_c]))?;
    let filter = f
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order((columns, out_c))?;
    let mut out = Vec::with_capacity(outputs);
    for b in 0..n {
        let mut patches = Array2::<T>::zeros((rows, columns));
        for oy in 0..wh.out {
            for ox in 0..ww.out {
                let row = oy * ww.out + ox;
                for ky in wh.taps(oy, kh) {
                    let Some(iy) = wh.source(oy, ky) else {
                        continue;
                    };
                    for kx in ww.taps(ox, kw) {
                        let Some(ix) = ww.source(ox, kx) else {
                            continue;
                        };
                        for ci in 0..c {
                            patches[[row, (ky * kw + kx) * c + ci]] = x[[b, iy, ix, ci]];
                        }
                    }
                }
            }
        }
        out.extend(patches.dot(&filter).iter().copied());
    }
    Ok(ArrayD::from_shape_vec(
        IxDyn(&[n, wh.out, ww.out, out_c]),
        out,
    )?)
}

fn depthwise_nhwc<T: LinalgScalar + Float>(
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
    let out_dims = [
        n,
        wh.out,
        ww.out,
        geometry::mul(c, mult, "the depthwise channels")?,
    ];
    checked_elements(&out_dims, std::mem::size_of::<T>(), ctx.limits)?;
    let outputs = alloc::output::<T>(&out_dims)?;
    let mut out = ArrayD::<T>::zeros(IxDyn(&out_dims));
    if outputs == 0 {
        return Ok(out);
    }
    alloc::work(alloc::loops(&[outputs, kh.min(h), kw.min(w)]))?;
    for b in 0..n {
        for oy in 0..wh.out {
            for ox in 0..ww.out {
                for ci in 0..c {
                    for m in 0..mult {
                        let mut acc = T::zero();
                        for ky in wh.taps(oy, kh) {
                            let Some(iy) = wh.source(oy, ky) else {
                                continue;
                            };
                            for kx in ww.taps(ox, kw) {
                                let Some(ix) = ww.source(ox, kx) else {
                                    continue;
                                };
                                acc = acc + x[[b, iy, ix, ci]] * f[[ky, kx, ci, m]];
                            }
                        }
                        out[[b, oy, ox, ci * mult + m]] = acc;
                    }
                }
            }
        }
    }
    Ok(out)
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
