//! Conv2D (im2col + GEMM) and DepthwiseConv2dNative, with SAME/VALID/EXPLICIT padding,
//! strides, dilations, NHWC and NCHW; plus the window geometry MaxPool/AvgPool share.

use ndarray::{Array2, ArrayD, IxDyn, LinalgScalar};
use num_traits::Float;

use super::cast::{from_f32, to_f32};
use super::shape_ops::permute;
use super::{attrs, fail, KernelContext, KernelError};
use crate::tensor::{checked_elements, Data, Tensor};

/// Output size and leading padding along one spatial axis.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub input: usize,
    pub stride: usize,
    pub dilation: usize,
    pub out: usize,
    pub pad_before: usize,
}

/// Geometry of one spatial axis for `padding` ("SAME", "VALID" or "EXPLICIT").
pub fn window(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    padding: &str,
    explicit: (usize, usize),
) -> Result<Window, KernelError> {
    if stride == 0 || dilation == 0 {
        return fail("strides and dilations must be positive");
    }
    let effective = (kernel.max(1) - 1) * dilation + 1;
    let (out, pad_before) = match padding {
        "SAME" => {
            let out = input.div_ceil(stride);
            let needed = ((out.max(1) - 1) * stride + effective).saturating_sub(input);
            (out, needed / 2)
        }
        "VALID" => (
            if input >= effective {
                (input - effective) / stride + 1
            } else {
                0
            },
            0,
        ),
        "EXPLICIT" => {
            let padded = input + explicit.0 + explicit.1;
            (
                if padded >= effective {
                    (padded - effective) / stride + 1
                } else {
                    0
                },
                explicit.0,
            )
        }
        other => return fail(format!("unknown padding '{other}'")),
    };
    Ok(Window {
        input,
        stride,
        dilation,
        out,
        pad_before,
    })
}

impl Window {
    /// Input index for output position `o` and kernel tap `k`, if inside the input.
    pub fn source(&self, o: usize, k: usize) -> Option<usize> {
        let position = (o * self.stride + k * self.dilation) as i64 - self.pad_before as i64;
        (0..self.input as i64)
            .contains(&position)
            .then_some(position as usize)
    }
}

/// Spatial parameters common to convolutions and pooling, in NHWC order.
pub struct Spatial {
    pub nchw: bool,
    pub strides: (usize, usize),
    pub dilations: (usize, usize),
    pub padding: String,
    pub explicit: [(usize, usize); 2],
}

fn pick_hw(values: &[i64], nchw: bool, name: &str) -> Result<(usize, usize), KernelError> {
    match values {
        [] => Ok((1, 1)),
        [a, b, c, d] => {
            let (h, w) = if nchw { (*c, *d) } else { (*b, *c) };
            let batch_channel = if nchw { (*a, *b) } else { (*a, *d) };
            if batch_channel != (1, 1) {
                return fail(format!(
                    "{name} on the batch or channel dimension is not supported"
                ));
            }
            Ok((
                usize::try_from(h).unwrap_or(0),
                usize::try_from(w).unwrap_or(0),
            ))
        }
        other => fail(format!("{name} must have 4 entries, got {other:?}")),
    }
}

impl Spatial {
    pub fn from_node(ctx: &KernelContext<'_>, strides_attr: &str) -> Result<Self, KernelError> {
        let nchw = attrs::string(ctx.node, "data_format").is_some_and(|f| f == "NCHW");
        let strides = pick_hw(
            &attrs::ints(ctx.node, strides_attr).unwrap_or_default(),
            nchw,
            strides_attr,
        )?;
        let dilations = pick_hw(
            &attrs::ints(ctx.node, "dilations").unwrap_or_default(),
            nchw,
            "dilations",
        )?;
        let padding = attrs::string(ctx.node, "padding").unwrap_or_else(|| "VALID".into());
        let mut explicit = [(0, 0); 2];
        if padding == "EXPLICIT" {
            let p = attrs::ints(ctx.node, "explicit_paddings").unwrap_or_default();
            if p.len() != 8 || p.iter().any(|&v| v < 0) {
                return fail("explicit_paddings must have 8 non-negative entries");
            }
            let (h, w) = if nchw { (4, 6) } else { (2, 4) };
            explicit = [
                (p[h] as usize, p[h + 1] as usize),
                (p[w] as usize, p[w + 1] as usize),
            ];
        }
        Ok(Spatial {
            nchw,
            strides,
            dilations,
            padding,
            explicit,
        })
    }

    /// Input in NHWC (permuted from NCHW when needed).
    pub fn to_nhwc(&self, x: &Tensor) -> Result<Tensor, KernelError> {
        if x.shape().len() != 4 {
            return fail(format!("expected a 4-D input, got {:?}", x.shape()));
        }
        if self.nchw {
            permute(x, &[0, 2, 3, 1])
        } else {
            Ok(x.clone())
        }
    }

    /// Output back in the node's data format.
    pub fn to_data_format(&self, y: Tensor) -> Result<Tensor, KernelError> {
        if self.nchw {
            permute(&y, &[0, 3, 1, 2])
        } else {
            Ok(y)
        }
    }

    pub fn windows(
        &self,
        h: usize,
        w: usize,
        kh: usize,
        kw: usize,
    ) -> Result<(Window, Window), KernelError> {
        Ok((
            window(
                h,
                kh,
                self.strides.0,
                self.dilations.0,
                &self.padding,
                self.explicit[0],
            )?,
            window(
                w,
                kw,
                self.strides.1,
                self.dilations.1,
                &self.padding,
                self.explicit[1],
            )?,
        ))
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
    checked_elements(
        &[n, wh.out, ww.out, out_c],
        std::mem::size_of::<T>(),
        ctx.limits,
    )?;
    checked_elements(
        &[wh.out * ww.out, kh * kw * c],
        std::mem::size_of::<T>(),
        ctx.limits,
    )?;
    let filter = f
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order((kh * kw * c, out_c))?;
    let mut out = Vec::with_capacity(n * wh.out * ww.out * out_c);
    let rows = wh.out * ww.out;
    for b in 0..n {
        let mut patches = Array2::<T>::zeros((rows, kh * kw * c));
        for oy in 0..wh.out {
            for ox in 0..ww.out {
                let row = oy * ww.out + ox;
                for ky in 0..kh {
                    let Some(iy) = wh.source(oy, ky) else {
                        continue;
                    };
                    for kx in 0..kw {
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
    checked_elements(
        &[n, wh.out, ww.out, c * mult],
        std::mem::size_of::<T>(),
        ctx.limits,
    )?;
    let mut out = ArrayD::<T>::zeros(IxDyn(&[n, wh.out, ww.out, c * mult]));
    for b in 0..n {
        for oy in 0..wh.out {
            for ox in 0..ww.out {
                for ci in 0..c {
                    for m in 0..mult {
                        let mut acc = T::zero();
                        for ky in 0..kh {
                            let Some(iy) = wh.source(oy, ky) else {
                                continue;
                            };
                            for kx in 0..kw {
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
    let spatial = Spatial::from_node(ctx, "strides")?;
    let x = spatial.to_nhwc(input)?;
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
    spatial.to_data_format(Tensor::new(input.dtype(), y)?)
}
