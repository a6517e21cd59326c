//! Elementwise kernels that write into an input's own buffer. The executor offers an input
//! here only when nothing else refers to it any more (its last consumer, not fetched, not
//! fed, not a cached Const), so a chain such as BiasAdd, Add, Relu reuses one buffer instead
//! of allocating and faulting in a fresh one per node. Each element gets the same function of
//! the same operands, in the same order, as the allocating kernel computes: the results are
//! bit-identical to it.

use ndarray::{ArrayD, IxDyn, Zip};

use super::broadcast::{broadcast_shape, repeats_along_tail};
use super::elementwise::{float_binary, float_unary, with_float_binary, with_float_unary, Real};
use super::gemm::Gemm;
use super::{parallel, KernelContext, KernelError};
use crate::graph::attrs;
use crate::graph::ops::{ELEMENTWISE_BINARY, UNARY};
use crate::tensor::{Data, Tensor};

/// Whether `op` has an in-place form at all (the cheap test before any other).
pub fn supports(op: &str) -> bool {
    op == "BiasAdd" || ELEMENTWISE_BINARY.contains(&op) || UNARY.contains(&op)
}

/// Whether `target`, the node's data input number `position`, can take the result, given
/// the node's other data inputs `others`.
pub fn applies(
    ctx: &KernelContext<'_>,
    target: &Tensor,
    position: usize,
    others: &[&Tensor],
) -> bool {
    let op = ctx.node.op.as_str();
    let float = matches!(
        (target.data(), others.first().map(|t| t.data())),
        (Data::F32(_), None | Some(Data::F32(_))) | (Data::F64(_), None | Some(Data::F64(_)))
    );
    let contiguous = match target.data() {
        Data::F32(a) => a.is_standard_layout(),
        Data::F64(a) => a.is_standard_layout(),
        _ => false,
    };
    if !float || !contiguous {
        return false;
    }
    match (op, position, others) {
        ("BiasAdd", 0, [bias]) => {
            // Only the channels-last form is a plain broadcast of the bias.
            let rank = target.shape().len();
            let nchw = attrs::string(ctx.node, "data_format").is_some_and(|f| f.starts_with("NC"));
            rank >= 2
                && !(nchw && rank >= 3)
                && bias.shape().len() == 1
                && target.shape().last() == Some(&bias.len())
        }
        ("BiasAdd", _, _) => false,
        (_, 0 | 1, [other]) if ELEMENTWISE_BINARY.contains(&op) => {
            float_binary::<f32>(op).is_some()
                && broadcast_shape(target.shape(), other.shape())
                    .is_ok_and(|shape| shape == target.shape())
        }
        (_, 0, []) if UNARY.contains(&op) => float_unary::<f32>(op, ctx).is_some(),
        _ => false,
    }
}

/// The node's result, written over `target` (which [`applies`] accepted).
pub fn run(
    ctx: &KernelContext<'_>,
    target: Tensor,
    position: usize,
    others: &[&Tensor],
) -> Result<Tensor, KernelError> {
    let dtype = target.dtype();
    let data = match (target.into_data(), others.first().map(|t| t.data())) {
        (Data::F32(a), other) => Data::F32(compute(ctx, a, position, other_f32(other))?),
        (Data::F64(a), other) => Data::F64(compute(ctx, a, position, other_f64(other))?),
        _ => return Err(KernelError("no in-place form for this dtype".into())),
    };
    Ok(Tensor::new(dtype, data)?)
}

fn other_f32(other: Option<&Data>) -> Option<&ArrayD<f32>> {
    match other {
        Some(Data::F32(b)) => Some(b),
        _ => None,
    }
}

fn other_f64(other: Option<&Data>) -> Option<&ArrayD<f64>> {
    match other {
        Some(Data::F64(b)) => Some(b),
        _ => None,
    }
}

fn compute<T: Real>(
    ctx: &KernelContext<'_>,
    mut target: ArrayD<T>,
    position: usize,
    other: Option<&ArrayD<T>>,
) -> Result<ArrayD<T>, KernelError> {
    let op = ctx.node.op.as_str();
    let done = match other {
        None => with_float_unary!(op, T, ctx, f => each_element(ctx, &mut target, f)),
        Some(other) => {
            with_float_binary!(op, T, f => combine(ctx, &mut target, position, other, f))
                .transpose()?
        }
    };
    done.ok_or_else(|| KernelError(format!("{op} has no in-place form")))?;
    Ok(target)
}

/// `target = f(target)`, split over threads for the fast kernels (the same function of the
/// same element on any thread).
fn each_element<T: Real>(
    ctx: &KernelContext<'_>,
    target: &mut ArrayD<T>,
    f: impl Fn(T) -> T + Sync,
) {
    match (ctx.gemm, target.as_slice_mut()) {
        (Gemm::Fast, Some(values)) => {
            let work = values.len();
            parallel::rows(values, 1, work, |_, block| {
                block.iter_mut().for_each(|v| *v = f(*v));
            });
        }
        _ => target.mapv_inplace(f),
    }
}

/// `target = f(target, other)` (or `f(other, target)` at position 1), `other` broadcast.
fn combine<T: Real>(
    ctx: &KernelContext<'_>,
    target: &mut ArrayD<T>,
    position: usize,
    other: &ArrayD<T>,
    f: impl Fn(T, T) -> T + Sync,
) -> Result<(), KernelError> {
    if let Some(period) = repeats_along_tail(target.shape(), other.shape()) {
        if let (Some(t), Some(o)) = (target.as_slice_mut(), other.as_slice()) {
            // `other` repeats every `period` elements of the target (a bias, a same-shaped
            // operand, a scalar): plain slices, which vectorize. The fast kernels split them
            // over threads, by elements when `other` is the target's size, else by periods.
            if o.len() == period && period > 0 {
                let apply = |t: &mut [T], o: &[T]| {
                    if position == 0 {
                        t.iter_mut().zip(o).for_each(|(t, &o)| *t = f(*t, o));
                    } else {
                        t.iter_mut().zip(o).for_each(|(t, &o)| *t = f(o, *t));
                    }
                };
                // Split by elements when `other` is one value or the target's size, else by
                // whole periods.
                let whole = period == t.len();
                let row = if whole { 1 } else { period };
                let split = matches!(ctx.gemm, Gemm::Fast);
                let fill = |first: usize, block: &mut [T]| match *o {
                    [one] if position == 0 => block.iter_mut().for_each(|t| *t = f(*t, one)),
                    [one] => block.iter_mut().for_each(|t| *t = f(one, *t)),
                    _ if whole => apply(block, &o[first..first + block.len()]),
                    _ => block
                        .chunks_exact_mut(period)
                        .for_each(|chunk| apply(chunk, o)),
                };
                if split {
                    let work = t.len();
                    parallel::rows(t, row, work, fill);
                } else {
                    fill(0, t);
                }
                return Ok(());
            }
        }
    }
    let shape = IxDyn(target.shape());
    let other = other
        .broadcast(shape.clone())
        .ok_or_else(|| KernelError(format!("cannot broadcast {:?} to {shape:?}", other.shape())))?;
    // The operands keep their order: the target is the left one at position 0.
    if position == 0 {
        Zip::from(target)
            .and(&other)
            .for_each(|t, &o| *t = f(*t, o));
    } else {
        Zip::from(target)
            .and(&other)
            .for_each(|t, &o| *t = f(o, *t));
    }
    Ok(())
}
