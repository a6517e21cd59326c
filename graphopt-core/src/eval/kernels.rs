//! The op-name -> kernel table. Each entry checks its input count and delegates to the family
//! module that implements it.

use super::{
    cast, conv, einsum, elementwise, fail, image, matmul, nn, quantized, reduce, shape_ops, slicing,
};
use super::{KernelContext, KernelError, KernelResult};
use crate::graph::attrs;
use crate::graph::ops::{COMPARISONS, ELEMENTWISE_BINARY, IDENTITIES, UNARY};
use crate::tensor::{Data, Tensor};

/// A kernel: node context and input tensors in, output tensors out.
pub type Kernel = fn(&KernelContext<'_>, &[&Tensor]) -> KernelResult;

/// `inputs` as exactly `N` tensors.
fn take<'a, const N: usize>(inputs: &[&'a Tensor]) -> Result<[&'a Tensor; N], KernelError> {
    <[&Tensor; N]>::try_from(inputs)
        .map_err(|_| KernelError(format!("expected {N} inputs, got {}", inputs.len())))
}

fn one(t: Result<Tensor, KernelError>) -> KernelResult {
    t.map(|t| vec![t])
}

/// A scalar bool's value.
pub fn scalar_bool(t: &Tensor) -> Option<bool> {
    match t.data() {
        Data::Bool(a) if a.len() == 1 => a.iter().next().copied(),
        _ => None,
    }
}

const REDUCTIONS: &[&str] = &["Sum", "Prod", "Mean", "Max", "Min", "All", "Any"];

fn binary(ctx: &KernelContext<'_>, inputs: &[&Tensor]) -> KernelResult {
    let [a, b] = take(inputs)?;
    one(elementwise::arithmetic(&ctx.node.op, a, b))
}

fn comparison(ctx: &KernelContext<'_>, inputs: &[&Tensor]) -> KernelResult {
    let [a, b] = take(inputs)?;
    one(elementwise::compare(&ctx.node.op, a, b))
}

fn unary(ctx: &KernelContext<'_>, inputs: &[&Tensor]) -> KernelResult {
    let [x] = take(inputs)?;
    one(elementwise::unary(ctx, x))
}

fn identity(_ctx: &KernelContext<'_>, inputs: &[&Tensor]) -> KernelResult {
    let [x] = take(inputs)?;
    super::alloc::output::<u8>(&[x.memory_bytes() as usize])?;
    Ok(vec![x.clone()])
}

fn reduction(ctx: &KernelContext<'_>, inputs: &[&Tensor]) -> KernelResult {
    let [x, axes] = take(inputs)?;
    one(reduce::reduce(ctx, x, axes))
}

/// Ops whose kernel is chosen by family, checked in this order before the single ops.
const FAMILIES: &[(&[&str], Kernel)] = &[
    (ELEMENTWISE_BINARY, binary),
    (COMPARISONS, comparison),
    (UNARY, unary),
    (IDENTITIES, identity),
    (REDUCTIONS, reduction),
];

/// The kernel for `op`, if graphopt's evaluator has one.
pub fn lookup(op: &str) -> Option<Kernel> {
    FAMILIES
        .iter()
        .find(|(ops, _)| ops.contains(&op))
        .map(|&(_, kernel)| kernel)
        .or_else(|| single_op(op))
}

/// Every op [`lookup`] has a kernel for, sorted, each once.
pub fn registered_ops() -> Vec<&'static str> {
    let mut ops: Vec<&'static str> = FAMILIES
        .iter()
        .flat_map(|(ops, _)| ops.iter().copied())
        .chain(SINGLE_OPS.iter().copied())
        .collect();
    ops.sort_unstable();
    ops.dedup();
    ops
}

/// Writes `single_op`, the kernels of the ops outside the families, and `SINGLE_OPS`, their
/// names, from one list of match arms, so that the two cannot disagree.
macro_rules! single_op_kernels {
    ($($($name:literal)|+ => $kernel:expr,)*) => {
        /// The ops `single_op` has a kernel for.
        const SINGLE_OPS: &[&str] = &[$($($name),+),*];

        fn single_op(op: &str) -> Option<Kernel> {
            let kernel: Kernel = match op {
                $($($name)|+ => $kernel,)*
                _ => return None,
            };
            Some(kernel)
        }
    };
}

single_op_kernels! {
    "Const" => |ctx, _| {
        let value = attrs::tensor(ctx.node, "value")
            .ok_or_else(|| KernelError("Const has no value".into()))?;
        one(Tensor::from_proto_with_limits(value, ctx.limits).map_err(Into::into))
    },
    "NoOp" => |_, _| Ok(Vec::new()),
    "IdentityN" => |_, inputs| {
        let bytes: u64 = inputs.iter().map(|t| t.memory_bytes()).sum();
        crate::budget::alloc(bytes)?;
        Ok(inputs.iter().map(|t| (*t).clone()).collect())
    },
    "CheckNumerics" => |ctx, inputs| {
        let [x] = take(inputs)?;
        let finite = match x.data() {
            Data::F32(a) => a.iter().all(|v| v.is_finite()),
            Data::F64(a) => a.iter().all(|v| v.is_finite()),
            Data::F16(a) => a.iter().all(|v| v.is_finite()),
            Data::BF16(a) => a.iter().all(|v| v.is_finite()),
            _ => true,
        };
        if !finite {
            let message = attrs::string(ctx.node, "message").unwrap_or_default();
            return fail(format!("CheckNumerics found NaN or Inf: {message}"));
        }
        Ok(vec![x.clone()])
    },
    "Cast" => |ctx, inputs| {
        let [x] = take(inputs)?;
        let to = attrs::dtype(ctx.node, "DstT")
            .ok_or_else(|| KernelError("Cast needs DstT".into()))?;
        one(cast::cast(x, to))
    },
    "BiasAdd" | "BiasAddV1" => |ctx, inputs| {
        let [x, b] = take(inputs)?;
        one(nn::bias_add(ctx, x, b))
    },
    "AddN" => |_, inputs| one(nn::add_n(inputs)),
    "Select" | "SelectV2" => |ctx, inputs| {
        let [c, t, e] = take(inputs)?;
        one(elementwise::select(ctx.node.op == "SelectV2", c, t, e))
    },
    "Shape" | "ShapeN" => |ctx, inputs| shape_ops::shape(ctx, inputs),
    "Size" => |ctx, inputs| {
        let [x] = take(inputs)?;
        shape_ops::size(ctx, x)
    },
    "Rank" => |_, inputs| {
        let [x] = take(inputs)?;
        shape_ops::rank(x)
    },
    "Reshape" => |_, inputs| {
        let [x, s] = take(inputs)?;
        one(shape_ops::reshape(x, s))
    },
    "ExpandDims" => |_, inputs| {
        let [x, d] = take(inputs)?;
        one(shape_ops::expand_dims(x, d))
    },
    "Squeeze" => |ctx, inputs| {
        let [x] = take(inputs)?;
        one(shape_ops::squeeze(ctx, x))
    },
    "Transpose" => |_, inputs| {
        let [x, p] = take(inputs)?;
        one(shape_ops::transpose(x, p))
    },
    "Pack" => |ctx, inputs| one(shape_ops::pack(ctx, inputs)),
    "Unpack" => |ctx, inputs| {
        let [x] = take(inputs)?;
        shape_ops::unpack(ctx, x)
    },
    "ConcatV2" => |_, inputs| one(shape_ops::concat_op(true, inputs)),
    "Concat" => |_, inputs| one(shape_ops::concat_op(false, inputs)),
    "Split" => |ctx, inputs| {
        let [axis, x] = take(inputs)?;
        shape_ops::split(ctx, axis, x)
    },
    "SplitV" => |_, inputs| {
        let [x, sizes, axis] = take(inputs)?;
        shape_ops::split_v(x, sizes, axis)
    },
    "Slice" => |_, inputs| {
        let [x, b, s] = take(inputs)?;
        one(slicing::slice(x, b, s))
    },
    "StridedSlice" => |ctx, inputs| {
        let [x, b, e, s] = take(inputs)?;
        one(slicing::strided_slice(ctx, x, b, e, s))
    },
    "Tile" => |ctx, inputs| {
        let [x, m] = take(inputs)?;
        one(shape_ops::tile(ctx, x, m))
    },
    "Pad" => |ctx, inputs| {
        let [x, p] = take(inputs)?;
        one(slicing::pad(ctx, x, p, None))
    },
    "PadV2" => |ctx, inputs| {
        let [x, p, v] = take(inputs)?;
        one(slicing::pad(ctx, x, p, Some(v)))
    },
    "MirrorPad" => |ctx, inputs| {
        let [x, p] = take(inputs)?;
        one(slicing::mirror_pad(ctx, x, p))
    },
    "Fill" => |ctx, inputs| {
        let [d, v] = take(inputs)?;
        one(shape_ops::fill(ctx, d, v))
    },
    "Range" => |ctx, inputs| {
        let [s, l, d] = take(inputs)?;
        one(shape_ops::range(ctx, s, l, d))
    },
    "ZerosLike" | "OnesLike" => |ctx, inputs| {
        let [x] = take(inputs)?;
        one(shape_ops::constant_like(x, ctx.node.op == "OnesLike"))
    },
    "BroadcastTo" => |ctx, inputs| {
        let [x, s] = take(inputs)?;
        one(shape_ops::broadcast_to(ctx, x, s))
    },
    "GatherV2" => |ctx, inputs| {
        let [p, i, a] = take(inputs)?;
        one(slicing::gather_v2(ctx, p, i, a))
    },
    "Gather" => |ctx, inputs| {
        let [p, i] = take(inputs)?;
        let zero = Tensor::from_data(Data::I32(ndarray::arr0(0).into_dyn()));
        one(slicing::gather_v2(ctx, p, i, &zero))
    },
    "DynamicPartition" => |ctx, inputs| {
        let [data, partitions] = take(inputs)?;
        slicing::dynamic_partition(ctx, data, partitions)
    },
    "DynamicStitch" | "ParallelDynamicStitch" => |_, inputs| one(slicing::dynamic_stitch(inputs)),
    "GatherNd" => |_, inputs| {
        let [p, i] = take(inputs)?;
        one(slicing::gather_nd(p, i))
    },
    "OneHot" => |ctx, inputs| {
        let [i, d, on, off] = take(inputs)?;
        one(shape_ops::one_hot(ctx, i, d, on, off))
    },
    "ArgMax" | "ArgMin" => |ctx, inputs| {
        let [x, a] = take(inputs)?;
        one(reduce::arg_reduce(ctx, x, a))
    },
    "MatMul" => |ctx, inputs| {
        let [a, b] = take(inputs)?;
        let ta = attrs::bool(ctx.node, "transpose_a").unwrap_or(false);
        let tb = attrs::bool(ctx.node, "transpose_b").unwrap_or(false);
        if a.shape().len() != 2 || b.shape().len() != 2 {
            return fail("MatMul needs 2-D inputs");
        }
        one(matmul::matmul(ctx.gemm, a, b, ta, tb))
    },
    "BatchMatMul" | "BatchMatMulV2" | "BatchMatMulV3" => |ctx, inputs| {
        let [a, b] = take(inputs)?;
        let ax = attrs::bool(ctx.node, "adj_x").unwrap_or(false);
        let ay = attrs::bool(ctx.node, "adj_y").unwrap_or(false);
        // BatchMatMulV3 multiplies in its output type: int8 x int8 -> int32 accumulates in int32.
        match attrs::dtype(ctx.node, "Tout") {
            Some(t) if t != a.dtype() || t != b.dtype() => {
                one(matmul::matmul(ctx.gemm, &cast::cast(a, t)?, &cast::cast(b, t)?, ax, ay))
            }
            _ => one(matmul::matmul(ctx.gemm, a, b, ax, ay)),
        }
    },
    "Einsum" => |ctx, inputs| one(einsum::einsum(ctx, inputs)),
    "ResizeBilinear" => |ctx, inputs| {
        let [x, size] = take(inputs)?;
        one(image::resize_bilinear(ctx, x, size))
    },
    "FusedPadConv2D" | "FusedResizeAndPadConv2D" => |ctx, inputs| {
        one(image::fused_conv(ctx, inputs))
    },
    "SpaceToBatchND" => |ctx, inputs| {
        let [x, b, p] = take(inputs)?;
        one(slicing::space_to_batch(ctx, x, b, p))
    },
    "BatchToSpaceND" => |_, inputs| {
        let [x, b, c] = take(inputs)?;
        one(slicing::batch_to_space(x, b, c))
    },
    "Dequantize" => |ctx, inputs| {
        let [q, lo, hi] = take(inputs)?;
        one(quantized::dequantize(ctx, q, lo, hi))
    },
    "Conv2D" | "DepthwiseConv2dNative" => |ctx, inputs| {
        let [x, f] = take(inputs)?;
        one(conv::conv2d(ctx, x, f))
    },
    "MaxPool" | "AvgPool" => |ctx, inputs| {
        let [x] = take(inputs)?;
        one(nn::pool(ctx, x))
    },
    "FusedBatchNorm" | "FusedBatchNormV2" | "FusedBatchNormV3" => |ctx, inputs| {
        nn::fused_batch_norm(ctx, inputs)
    },
    "BatchNormWithGlobalNormalization" => |ctx, inputs| one(nn::batch_norm_global(ctx, inputs)),
    "Softmax" | "LogSoftmax" => |ctx, inputs| {
        let [x] = take(inputs)?;
        one(nn::softmax(ctx, x))
    },
}
