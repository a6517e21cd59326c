//! NumPy/TensorFlow broadcasting for elementwise kernels.

use std::cell::Cell;

use ndarray::{ArrayD, IxDyn, Zip};

use super::KernelError;
use crate::budget;
use crate::tensor::{checked_elements, Limits};

thread_local! {
    /// The per-tensor byte limit of the kernel running on this thread (see [`with_limits`]).
    static LIMIT: Cell<u64> = Cell::new(Limits::default().max_bytes);
}

/// Runs `f` with `limits` as the per-tensor bound of every kernel helper it calls, so
/// broadcasting or a matrix product cannot build an output larger than the caller allows (the
/// command's budget bounds them all together).
pub fn with_limits<T>(limits: Limits, f: impl FnOnce() -> T) -> T {
    let previous = LIMIT.with(|l| l.replace(limits.max_bytes));
    struct Restore(u64);
    impl Drop for Restore {
        fn drop(&mut self) {
            LIMIT.with(|l| l.set(self.0));
        }
    }
    let _restore = Restore(previous);
    f()
}

/// Asks for an output of `dims` with `element_size`-byte elements: refused over the current
/// per-tensor limit or the budget's memory; its elements are charged as work. Returns the
/// element count.
pub fn check_output(dims: &[usize], element_size: usize) -> Result<usize, KernelError> {
    let limits = Limits {
        max_bytes: LIMIT.with(Cell::get),
    };
    let elements = checked_elements(dims, element_size, limits)?;
    budget::alloc_items(elements, element_size, "an output")?;
    budget::work(elements as u64)?;
    Ok(elements)
}

/// The shape two shapes broadcast to, or an error naming both.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, KernelError> {
    crate::analysis::geometry::broadcast_shape(a, b).map_err(Into::into)
}

/// Applies `f` elementwise over `a` and `b` broadcast together.
pub fn zip2<A, B, C: 'static>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    f: impl Fn(&A, &B) -> C,
) -> Result<ArrayD<C>, KernelError> {
    let shape = broadcast_shape(a.shape(), b.shape())?;
    let len = check_output(&shape, std::mem::size_of::<C>().max(1))?;
    if let Some(out) = zip_slices(a, b, &shape, len, &f) {
        return Ok(ArrayD::from_shape_vec(IxDyn(&shape), out)?);
    }
    let av = a
        .broadcast(IxDyn(&shape))
        .ok_or_else(|| KernelError(format!("cannot broadcast {:?} to {shape:?}", a.shape())))?;
    let bv = b
        .broadcast(IxDyn(&shape))
        .ok_or_else(|| KernelError(format!("cannot broadcast {:?} to {shape:?}", b.shape())))?;
    Ok(Zip::from(&av).and(&bv).map_collect(f))
}

/// [`zip2`]'s common cases on plain slices, into a recycled buffer: both operands laid out
/// row-major, one of them the whole output and the other repeating along its tail (the same
/// shape, a bias, a scalar). `None` for other layouts and broadcasts.
fn zip_slices<A, B, C: 'static>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    shape: &[usize],
    len: usize,
    f: &impl Fn(&A, &B) -> C,
) -> Option<Vec<C>> {
    let (x, y) = (a.as_slice()?, b.as_slice()?);
    // Which operand is the whole output, the other repeating along its tail (decided before
    // a buffer is taken, so that none is taken for nothing).
    let repeating = |whole: usize, part: usize, part_shape: &[usize]| {
        whole == len && repeats_along_tail(shape, part_shape).is_some_and(|p| p == part)
    };
    let a_whole = repeating(x.len(), y.len(), b.shape());
    if !a_whole && !repeating(y.len(), x.len(), a.shape()) {
        return None;
    }
    let mut out = super::recycle::take(len);
    if a_whole {
        match y {
            [one] => out.extend(x.iter().map(|v| f(v, one))),
            _ => {
                for part in x.chunks_exact(y.len().max(1)) {
                    out.extend(part.iter().zip(y).map(|(v, w)| f(v, w)));
                }
            }
        }
    } else {
        match x {
            [one] => out.extend(y.iter().map(|w| f(one, w))),
            _ => {
                for part in y.chunks_exact(x.len().max(1)) {
                    out.extend(x.iter().zip(part).map(|(v, w)| f(v, w)));
                }
            }
        }
    }
    (out.len() == len).then_some(out)
}

/// The number of elements after which `other` repeats when broadcast to `target`: its shape
/// without leading 1s is a suffix of the target's. `None` for other broadcasts.
pub fn repeats_along_tail(target: &[usize], other: &[usize]) -> Option<usize> {
    let first = other.iter().position(|&d| d != 1).unwrap_or(other.len());
    let tail = &other[first..];
    target.ends_with(tail).then(|| tail.iter().product())
}

/// Applies `f` elementwise over three arrays broadcast together.
pub fn zip3<A, B, C, D>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    c: &ArrayD<C>,
    f: impl Fn(&A, &B, &C) -> D,
) -> Result<ArrayD<D>, KernelError> {
    let shape = broadcast_shape(&broadcast_shape(a.shape(), b.shape())?, c.shape())?;
    check_output(&shape, std::mem::size_of::<D>().max(1))?;
    let dim = IxDyn(&shape);
    let err = |s: &[usize]| KernelError(format!("cannot broadcast {s:?} to {shape:?}"));
    let av = a.broadcast(dim.clone()).ok_or_else(|| err(a.shape()))?;
    let bv = b.broadcast(dim.clone()).ok_or_else(|| err(b.shape()))?;
    let cv = c.broadcast(dim).ok_or_else(|| err(c.shape()))?;
    Ok(Zip::from(&av).and(&bv).and(&cv).map_collect(f))
}
