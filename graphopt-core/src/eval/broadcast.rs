//! NumPy/TensorFlow broadcasting for elementwise kernels.

use ndarray::{ArrayD, IxDyn, Zip};

use super::{fail, KernelError};

/// The shape two shapes broadcast to, or an error naming both.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, KernelError> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return fail(format!(
                    "shapes {a:?} and {b:?} are not broadcast-compatible"
                ))
            }
        };
    }
    Ok(out)
}

/// Applies `f` elementwise over `a` and `b` broadcast together.
pub fn zip2<A, B, C>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    f: impl Fn(&A, &B) -> C,
) -> Result<ArrayD<C>, KernelError> {
    let shape = broadcast_shape(a.shape(), b.shape())?;
    let av = a
        .broadcast(IxDyn(&shape))
        .ok_or_else(|| KernelError(format!("cannot broadcast {:?} to {shape:?}", a.shape())))?;
    let bv = b
        .broadcast(IxDyn(&shape))
        .ok_or_else(|| KernelError(format!("cannot broadcast {:?} to {shape:?}", b.shape())))?;
    Ok(Zip::from(&av).and(&bv).map_collect(f))
}

/// Applies `f` elementwise over three arrays broadcast together.
pub fn zip3<A, B, C, D>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    c: &ArrayD<C>,
    f: impl Fn(&A, &B, &C) -> D,
) -> Result<ArrayD<D>, KernelError> {
    let shape = broadcast_shape(&broadcast_shape(a.shape(), b.shape())?, c.shape())?;
    let dim = IxDyn(&shape);
    let err = |s: &[usize]| KernelError(format!("cannot broadcast {s:?} to {shape:?}"));
    let av = a.broadcast(dim.clone()).ok_or_else(|| err(a.shape()))?;
    let bv = b.broadcast(dim.clone()).ok_or_else(|| err(b.shape()))?;
    let cv = c.broadcast(dim).ok_or_else(|| err(c.shape()))?;
    Ok(Zip::from(&av).and(&bv).and(&cv).map_collect(f))
}
