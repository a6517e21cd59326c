//! Neural-network kernels: BiasAdd, MaxPool, AvgPool, FusedBatchNorm (all versions, inference),
//! BatchNormWithGlobalNormalization, Softmax, LogSoftmax, AddN.

use ndarray::{ArrayD, Axis, IxDyn};

use super::alloc;
use super::cast::cast;
use super::conv::Spatial;
use super::elementwise::arithmetic;
use super::shape_ops::reshape;
use super::{fail, KernelContext, KernelError, KernelResult};
use crate::analysis::geometry::Window;
use crate::graph::attrs;
use crate::proto::DataType;
use crate::tensor::{Data, Tensor};

/// `v` reshaped so it broadcasts along `axis` of a rank-`rank` tensor.
fn along_axis(v: &Tensor, axis: usize, rank: usize) -> Result<Tensor, KernelError> {
    let mut dims = vec![1i64; rank];
    if let Some(d) = dims.get_mut(axis) {
        *d = crate::analysis::geometry::dim_i64(v.len())?;
    }
    let shape = Tensor::from_data(Data::I64(ndarray::Array1::from(dims).into_dyn()));
    reshape(v, &shape)
}

fn channel_axis(ctx: &KernelContext<'_>, rank: usize) -> usize {
    let nchw = attrs::string(ctx.node, "data_format").is_some_and(|f| f.starts_with("NC"));
    if nchw && rank >= 3 {
        1
    } else {
        rank.saturating_sub(1)
    }
}

pub fn bias_add(ctx: &KernelContext<'_>, x: &Tensor, bias: &Tensor) -> Result<Tensor, KernelError> {
    let rank = x.shape().len();
    if rank < 2 || bias.shape().len() != 1 {
        return fail("BiasAdd needs an input of rank >= 2 and a 1-D bias");
    }
    let axis = channel_axis(ctx, rank);
    if x.shape()[axis] != bias.len() {
        return fail(format!(
            "bias of {} does not match {} channels",
            bias.len(),
            x.shape()[axis]
        ));
    }
    arithmetic("Add", x, &along_axis(bias, axis, rank)?)
}

/// MaxPool and AvgPool (AvgPool divides by the number of in-bounds taps, as TensorFlow does).
pub fn pool(ctx: &KernelContext<'_>, input: &Tensor) -> Result<Tensor, KernelError> {
    let max = ctx.node.op == "MaxPool";
    let spatial = Spatial::from_node(ctx.node, "strides")?;
    let ksize = attrs::ints(ctx.node, "ksize").unwrap_or_default();
    let (kh, kw) = match ksize.as_slice() {
        [_, b, c, d] => {
            if spatial.nchw {
                (*c, *d)
            } else {
                (*b, *c)
            }
        }
        _ => return fail("ksize must have 4 entries"),
    };
    let (kh, kw) = (
        usize::try_from(kh).unwrap_or(0),
        usize::try_from(kw).unwrap_or(0),
    );
    if kh == 0 || kw == 0 {
        return fail("ksize must be positive");
    }
    let nhwc = super::conv::to_nhwc(&spatial, input)?;
    // int64 past 2^53 has no float64 of its own: its maximum is taken as int64.
    if let (true, Data::I64(a)) = (max, nhwc.data()) {
        let a = a.as_standard_layout();
        let (window, out_dims) = pool_geometry(&spatial, a.shape(), (kh, kw), true)?;
        let mut out = vec![i64::MIN; alloc::count(&out_dims)?];
        if let Some(window) = window {
            window.max_i64(a.as_slice().unwrap_or_default(), &mut out);
        }
        let out = ArrayD::from_shape_vec(IxDyn(&out_dims), out)?;
        return super::conv::to_data_format(&spatial, Tensor::from_data(Data::I64(out)));
    }
    // float32 is read as it is; other types through a float64 copy. Either way each tap is
    // widened to float64, so the results are the same.
    let wide;
    let (elements, dims): (Elements<'_>, _) = match nhwc.data() {
        Data::F32(a) => (Elements::F32(a.as_standard_layout()), a.shape().to_vec()),
        _ => {
            wide = cast(&nhwc, DataType::DtDouble)?;
            let Data::F64(a) = wide.data() else {
                return fail("pooling needs a numeric input");
            };
            (Elements::F64(a.as_standard_layout()), a.shape().to_vec())
        }
    };
    let (window, out_dims) = pool_geometry(&spatial, &dims, (kh, kw), max)?;
    // TensorFlow's MaxPool starts every window at the type's lowest value and skips NaN, so
    // a window of only -inf and NaN gives the lowest value, not -inf.
    let start = if max { lowest(input.dtype()) } else { 0.0 };
    let mut out = vec![start; alloc::count(&out_dims)?];
    if let Some(window) = window {
        match &elements {
            Elements::F32(a) => window.pool(a.as_slice().unwrap_or_default(), &mut out),
            Elements::F64(a) => window.pool(a.as_slice().unwrap_or_default(), &mut out),
        }
    }
    let out = ArrayD::from_shape_vec(IxDyn(&out_dims), out)?;
    let y = super::conv::to_data_format(&spatial, Tensor::from_data(Data::F64(out)))?;
    cast(&y, input.dtype())
}

/// The windows of a pooling of NHWC `dims`, its output's dimensions, asked for and charged
/// as float64 elements (the widest a pooling keeps), and the walk over them (`None` when
/// the output is empty).
fn pool_geometry(
    spatial: &Spatial,
    dims: &[usize],
    (kh, kw): (usize, usize),
    max: bool,
) -> Result<(Option<PoolWindow>, [usize; 4]), KernelError> {
    let [n, h, w, c] = *dims else {
        return fail(format!("expected a 4-D input, got {dims:?}"));
    };
    let (wh, ww) = spatial.windows(h, w, kh, kw)?;
    let out_dims = [n, wh.out, ww.out, c];
    let outputs = alloc::output::<f64>(&out_dims)?;
    // Only the taps inside the input are visited: a ksize far beyond the input costs what the
    // input holds.
    alloc::work(alloc::loops(&[outputs, kh.min(h), kw.min(w)]))?;
    // With outputs, h * w * c is bounded by the input's size.
    let window = (outputs > 0).then(|| PoolWindow {
        wh,
        ww,
        kh,
        kw,
        w,
        c,
        image: h * w * c,
        max,
    });
    Ok((window, out_dims))
}

/// The lowest finite value of `dtype`, as float64 (exact for every type).
fn lowest(dtype: DataType) -> f64 {
    match dtype {
        DataType::DtFloat => f64::from(f32::MIN),
        DataType::DtDouble => f64::MIN,
        DataType::DtHalf => f64::from(half::f16::MIN),
        DataType::DtBfloat16 => f64::from(half::bf16::MIN),
        DataType::DtInt8 | DataType::DtQint8 => f64::from(i8::MIN),
        DataType::DtInt16 => f64::from(i16::MIN),
        DataType::DtInt32 => f64::from(i32::MIN),
        DataType::DtInt64 => i64::MIN as f64,
        _ => f64::NEG_INFINITY,
    }
}

/// A pooling input's elements, row-major NHWC.
enum Elements<'a> {
    F32(ndarray::CowArray<'a, f32, IxDyn>),
    F64(ndarray::CowArray<'a, f64, IxDyn>),
}

/// The windows of one pooling.
struct PoolWindow {
    wh: Window,
    ww: Window,
    kh: usize,
    kw: usize,
    w: usize,
    c: usize,
    image: usize,
    max: bool,
}

impl PoolWindow {
    /// `visit(pixel, first)` for every output pixel's in-bounds taps in (ky, kx) order,
    /// `first` the tap's first channel in `xs`; then `done(pixel, taps)`.
    fn each_tap<A>(
        &self,
        out: &mut [A],
        mut visit: impl FnMut(&mut [A], usize),
        mut done: impl FnMut(&mut [A], usize),
    ) {
        let (wh, ww, c) = (&self.wh, &self.ww, self.c);
        for (position, pixel) in out.chunks_exact_mut(c).enumerate() {
            let b = position / (wh.out * ww.out);
            let (oy, ox) = (position / ww.out % wh.out, position % ww.out);
            let mut taps = 0usize;
            for ky in wh.taps(oy, self.kh) {
                let Some(iy) = wh.source(oy, ky) else {
                    continue;
                };
                for kx in ww.taps(ox, self.kw) {
                    let Some(ix) = ww.source(ox, kx) else {
                        continue;
                    };
                    visit(pixel, b * self.image + (iy * self.w + ix) * c);
                    taps += 1;
                }
            }
            done(pixel, taps);
        }
    }

    /// MaxPool of int64, exact: each channel's largest tap.
    fn max_i64(&self, xs: &[i64], out: &mut [i64]) {
        let c = self.c;
        let visit = |pixel: &mut [i64], from: usize| {
            for (acc, &v) in pixel.iter_mut().zip(&xs[from..from + c]) {
                *acc = (*acc).max(v);
            }
        };
        self.each_tap(out, visit, |_, _| {});
    }

    /// Every output pixel's max or mean over its in-bounds taps, in float64: channels
    /// innermost, contiguous in NHWC; each channel takes its taps in (ky, kx) order.
    fn pool<T: Copy + Into<f64>>(&self, xs: &[T], out: &mut [f64]) {
        let c = self.c;
        let visit = |pixel: &mut [f64], from: usize| {
            let row = &xs[from..from + c];
            if self.max {
                for (acc, &v) in pixel.iter_mut().zip(row) {
                    *acc = acc.max(v.into());
                }
            } else {
                for (acc, &v) in pixel.iter_mut().zip(row) {
                    *acc += v.into();
                }
            }
        };
        let done = |pixel: &mut [f64], taps: usize| {
            if !self.max {
                let taps = taps.max(1) as f64;
                for acc in pixel.iter_mut() {
                    *acc /= taps;
                }
            }
        };
        self.each_tap(out, visit, done);
    }
}

/// Batch normalization at inference: `(x - mean) * scale / sqrt(var + eps) + offset`.
fn normalize(
    x: &Tensor,
    axis: usize,
    scale: &Tensor,
    offset: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    epsilon: f64,
) -> Result<Tensor, KernelError> {
    let rank = x.shape().len();
    let f64_of = |t: &Tensor| -> Result<Tensor, KernelError> {
        along_axis(&cast(t, DataType::DtDouble)?, axis, rank)
    };
    let eps = Tensor::from_data(Data::F64(ndarray::arr0(epsilon).into_dyn()));
    let inv = super::elementwise::unary(
        &KernelContext {
            node: &crate::proto::NodeDef {
                op: "Rsqrt".into(),
                ..Default::default()
            },
            limits: crate::tensor::Limits {
                max_bytes: u64::MAX,
            },
            gemm: super::Gemm::Portable,
        },
        &arithmetic("Add", &f64_of(var)?, &eps)?,
    )?;
    let factor = arithmetic("Mul", &f64_of(scale)?, &inv)?;
    let centered = arithmetic("Sub", &cast(x, DataType::DtDouble)?, &f64_of(mean)?)?;
    let y = arithmetic(
        "Add",
        &arithmetic("Mul", &centered, &factor)?,
        &f64_of(offset)?,
    )?;
    cast(&y, x.dtype())
}

/// FusedBatchNorm, V2 and V3 with `is_training=false`; outputs y, mean, variance and the
/// reserve outputs (copies of mean and variance).
pub fn fused_batch_norm(ctx: &KernelContext<'_>, inputs: &[&Tensor]) -> KernelResult {
    let [x, scale, offset, mean, var] = inputs else {
        return fail("FusedBatchNorm needs 5 inputs");
    };
    if attrs::bool(ctx.node, "is_training").unwrap_or(true) {
        return fail("batch norm in training mode computes batch statistics; only is_training=false is evaluated");
    }
    let epsilon = f64::from(attrs::float(ctx.node, "epsilon").unwrap_or(1e-4));
    let axis = channel_axis(ctx, x.shape().len());
    let y = normalize(x, axis, scale, offset, mean, var, epsilon)?;
    // The statistics outputs are copies.
    crate::budget::alloc(
        mean.memory_bytes()
            .saturating_mul(3)
            .saturating_add(var.memory_bytes().saturating_mul(2)),
    )?;
    let count = if ctx.node.op == "FusedBatchNormV3" {
        6
    } else {
        5
    };
    let mut outputs = vec![
        y,
        (*mean).clone(),
        (*var).clone(),
        (*mean).clone(),
        (*var).clone(),
    ];
    if count == 6 {
        outputs.push((*mean).clone());
    }
    Ok(outputs)
}

/// The pre-2016 batch norm op: inputs x, mean, variance, beta, gamma.
pub fn batch_norm_global(
    ctx: &KernelContext<'_>,
    inputs: &[&Tensor],
) -> Result<Tensor, KernelError> {
    let [x, mean, var, beta, gamma] = inputs else {
        return fail("BatchNormWithGlobalNormalization needs 5 inputs");
    };
    let epsilon = f64::from(attrs::float(ctx.node, "variance_epsilon").unwrap_or(1e-3));
    let scale = if attrs::bool(ctx.node, "scale_after_normalization").unwrap_or(false) {
        (*gamma).clone()
    } else {
        super::shape_ops::constant_like(gamma, true)?
    };
    normalize(
        x,
        x.shape().len().saturating_sub(1),
        &scale,
        beta,
        mean,
        var,
        epsilon,
    )
}

/// Softmax and LogSoftmax over the last axis, computed in f64.
pub fn softmax(ctx: &KernelContext<'_>, x: &Tensor) -> Result<Tensor, KernelError> {
    let log = ctx.node.op == "LogSoftmax";
    let Data::F64(mut a) = cast(x, DataType::DtDouble)?.into_data() else {
        return fail("softmax needs a float input");
    };
    let Some(last) = a.ndim().checked_sub(1) else {
        return fail("softmax needs an input of rank >= 1");
    };
    if a.is_empty() {
        return cast(&Tensor::from_data(Data::F64(a)), x.dtype());
    }
    for mut lane in a.lanes_mut(Axis(last)) {
        let max = lane.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = lane.iter().map(|v| libm::exp(v - max)).sum();
        lane.mapv_inplace(|v| {
            if log {
                v - max - libm::log(sum)
            } else {
                libm::exp(v - max) / sum
            }
        });
    }
    cast(&Tensor::from_data(Data::F64(a)), x.dtype())
}

pub fn add_n(inputs: &[&Tensor]) -> Result<Tensor, KernelError> {
    let (first, rest) = inputs
        .split_first()
        .ok_or_else(|| KernelError("AddN needs inputs".into()))?;
    rest.iter()
        .try_fold((*first).clone(), |acc, t| arithmetic("Add", &acc, t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{Gemm, Limits};
    use crate::proto::{attr_value, AttrValue, NodeDef};

    fn max_pool_2x2(x: Tensor) -> Tensor {
        let mut node = NodeDef {
            op: "MaxPool".into(),
            ..Default::default()
        };
        let list = |i: Vec<i64>| AttrValue {
            value: Some(attr_value::Value::List(Box::new(attr_value::ListValue {
                i,
                ..Default::default()
            }))),
        };
        node.attr.insert("ksize".into(), list(vec![1, 2, 2, 1]));
        node.attr.insert("strides".into(), list(vec![1, 2, 2, 1]));
        node.attr.insert(
            "padding".into(),
            AttrValue {
                value: Some(attr_value::Value::S("VALID".into())),
            },
        );
        let ctx = KernelContext {
            node: &node,
            limits: Limits::default(),
            gemm: Gemm::Portable,
        };
        pool(&ctx, &x).expect("MaxPool")
    }

    /// TensorFlow 2.21: a window of only -inf and NaN pools to the type's lowest value
    /// (graphopt gave -inf).
    #[test]
    fn max_pool_of_only_minus_infinity_and_nan_is_the_lowest_value() {
        let (inf, nan) = (f32::INFINITY, f32::NAN);
        let x = ndarray::Array::from_shape_vec(
            (1, 2, 4, 1),
            vec![-inf, nan, -inf, -inf, nan, -inf, -inf, 2.0],
        )
        .expect("shape")
        .into_dyn();
        let Data::F32(y) = max_pool_2x2(Tensor::from_data(Data::F32(x))).into_data() else {
            panic!("not float32")
        };
        assert_eq!(y.iter().copied().collect::<Vec<_>>(), [f32::MIN, 2.0]);
        let x = ndarray::Array::from_elem((1, 2, 2, 1), f64::NEG_INFINITY).into_dyn();
        let Data::F64(y) = max_pool_2x2(Tensor::from_data(Data::F64(x))).into_data() else {
            panic!("not float64")
        };
        assert_eq!(y.iter().copied().collect::<Vec<_>>(), [f64::MIN]);
    }

    /// TensorFlow 2.21 (`tf.raw_ops.MaxPool`, int64, 2x2 VALID): 2^53 + 1 is the maximum of
    /// [2^53 + 1, 2^53, 3, 5]; graphopt pooled through float64 and gave 2^53. Beside it, a
    /// window holding int64's lowest value and one past 2^62.
    #[test]
    fn max_pool_of_int64_is_exact() {
        let x = ndarray::Array::from_shape_vec(
            (1, 2, 4, 1),
            vec![(1 << 53) + 1, 1 << 53, i64::MIN, (1 << 62) + 1, 3, 5, -1, 7],
        )
        .expect("shape")
        .into_dyn();
        let Data::I64(y) = max_pool_2x2(Tensor::from_data(Data::I64(x))).into_data() else {
            panic!("not int64")
        };
        assert_eq!(
            y.iter().copied().collect::<Vec<_>>(),
            [9_007_199_254_740_993, 4_611_686_018_427_387_905]
        );
    }
}
