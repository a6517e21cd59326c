//! MatMul and BatchMatMul(V2/V3): floats through [`super::gemm`] (portable or fast, as the
//! context says), integers through a plain wrapping triple loop.

use std::borrow::Cow;

use ndarray::{Array2, ArrayD, ArrayView2, IxDyn, LinalgScalar};

use super::alloc;
use super::broadcast::broadcast_shape;
use super::cast::{from_f32, to_f32};
use super::gemm::{self, Gemm};
use super::recycle;
use super::{fail, KernelError};
use crate::tensor::{Data, Tensor};

trait MatElem: Clone + 'static {
    /// The additive identity, that outputs start from.
    fn zero() -> Self;
    /// `c = a · b`, `c` row-major [a rows, b columns].
    fn matmul_into(gemm: Gemm, a: ArrayView2<'_, Self>, b: ArrayView2<'_, Self>, c: &mut [Self]);
}

impl<T: LinalgScalar + Send + Sync> MatElem for T {
    fn zero() -> Self {
        <T as num_traits::Zero>::zero()
    }

    fn matmul_into(gemm: Gemm, a: ArrayView2<'_, T>, b: ArrayView2<'_, T>, c: &mut [T]) {
        let ((m, k), n) = (a.dim(), b.ncols());
        gemm::multiply(gemm, (m, k, n), &row_major(a), &row_major(b), c);
    }
}

/// The elements of `v` in row-major order, copied only where the view is transposed (adj_x,
/// adj_y).
fn row_major<T: Copy>(v: ArrayView2<'_, T>) -> Cow<'_, [T]> {
    match v.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(v.iter().copied().collect()),
    }
}

/// The `count` matrices of `x` [..., rows, columns] broadcast to the `batch` dimensions, one
/// after another in row-major order: `x`'s own elements when no dimension is broadcast (its
/// batch dimensions hold `count` matrices too) and it is laid out so, else a copy.
fn stacked<'a, T: Copy>(
    x: &'a ArrayD<T>,
    batch: &[usize],
    count: usize,
) -> Result<Cow<'a, [T]>, KernelError> {
    let rank = x.ndim();
    if alloc::count(&x.shape()[..rank - 2])? == count {
        if let Some(elements) = x.as_slice() {
            return Ok(Cow::Borrowed(elements));
        }
    }
    let mut dims = batch.to_vec();
    dims.extend_from_slice(&x.shape()[rank - 2..]);
    alloc::output::<T>(&dims)?;
    let view = x
        .broadcast(IxDyn(&dims))
        .ok_or_else(|| KernelError(format!("cannot broadcast {:?}", x.shape())))?;
    Ok(Cow::Owned(view.iter().copied().collect()))
}

/// One matrix of a stack, [rows, columns] as stored, transposed when `adjoint`.
fn matrix<T>(
    elements: &[T],
    (rows, columns): (usize, usize),
    adjoint: bool,
) -> Result<ArrayView2<'_, T>, KernelError> {
    let stored = ArrayView2::from_shape((rows, columns), elements)?;
    Ok(if adjoint {
        stored.reversed_axes()
    } else {
        stored
    })
}

/// Batched product of `a` [..., m, k] and `b` [..., k, n] with broadcast batch dimensions.
fn batched<T: MatElem + Copy>(
    gemm: Gemm,
    a: &ArrayD<T>,
    b: &ArrayD<T>,
    adj_a: bool,
    adj_b: bool,
) -> Result<ArrayD<T>, KernelError> {
    let (ra, rb) = (a.ndim(), b.ndim());
    if ra < 2 || rb < 2 {
        return fail("matrix multiplication needs inputs of rank >= 2");
    }
    let (am, ak) = if adj_a {
        (a.shape()[ra - 1], a.shape()[ra - 2])
    } else {
        (a.shape()[ra - 2], a.shape()[ra - 1])
    };
    let (bk, bn) = if adj_b {
        (b.shape()[rb - 1], b.shape()[rb - 2])
    } else {
        (b.shape()[rb - 2], b.shape()[rb - 1])
    };
    if ak != bk {
        return fail(format!(
            "inner dimensions differ: {:?} x {:?}",
            a.shape(),
            b.shape()
        ));
    }
    let batch = broadcast_shape(&a.shape()[..ra - 2], &b.shape()[..rb - 2])?;
    let mut out_dims = batch.clone();
    out_dims.extend([am, bn]);
    let outputs = alloc::output::<T>(&out_dims)?;
    let count = alloc::count(&batch)?;
    if outputs == 0 {
        return Ok(ArrayD::from_shape_vec(IxDyn(&out_dims), Vec::new())?);
    }
    // One multiply-add per output and inner index.
    alloc::work(alloc::loops(&[count, am, bn, ak]))?;
    let a_all = stacked(a, &batch, count)?;
    let b_all = stacked(b, &batch, count)?;
    // Each factor is bounded by an input's or the output's size (outputs > 0).
    let (a_size, b_size, c_size) = (am * ak, bk * bn, am * bn);
    let stored_a = (a.shape()[ra - 2], a.shape()[ra - 1]);
    let stored_b = (b.shape()[rb - 2], b.shape()[rb - 1]);
    // Each product overwrites its block of the output.
    let mut out = recycle::overwritten(outputs, <T as MatElem>::zero());
    for (i, c) in out.chunks_exact_mut(c_size).enumerate() {
        let x = matrix(&a_all[i * a_size..(i + 1) * a_size], stored_a, adj_a)?;
        let y = matrix(&b_all[i * b_size..(i + 1) * b_size], stored_b, adj_b)?;
        T::matmul_into(gemm, x, y, c);
    }
    Ok(ArrayD::from_shape_vec(IxDyn(&out_dims), out)?)
}

fn int_matmul<T>(a: ArrayView2<'_, T>, b: ArrayView2<'_, T>) -> Array2<T>
where
    T: Copy + num_traits::WrappingAdd + num_traits::WrappingMul + num_traits::Zero,
{
    let (m, k) = a.dim();
    let n = b.dim().1;
    Array2::from_shape_fn((m, n), |(i, j)| {
        (0..k).fold(T::zero(), |acc, p| {
            acc.wrapping_add(&a[[i, p]].wrapping_mul(&b[[p, j]]))
        })
    })
}

/// MatMul (rank 2) and BatchMatMul (any rank >= 2): `adj_a`/`adj_b` transpose the last two axes.
pub fn matmul(
    gemm: Gemm,
    a: &Tensor,
    b: &Tensor,
    adj_a: bool,
    adj_b: bool,
) -> Result<Tensor, KernelError> {
    let data = match (a.data(), b.data()) {
        (Data::F32(x), Data::F32(y)) => Data::F32(batched(gemm, x, y, adj_a, adj_b)?),
        (Data::F64(x), Data::F64(y)) => Data::F64(batched(gemm, x, y, adj_a, adj_b)?),
        (Data::F16(_), Data::F16(_)) | (Data::BF16(_), Data::BF16(_)) => {
            return from_f32(
                &matmul(gemm, &to_f32(a)?, &to_f32(b)?, adj_a, adj_b)?,
                a.dtype(),
            );
        }
        (Data::I32(x), Data::I32(y)) => Data::I32(batched_int(x, y, adj_a, adj_b)?),
        (Data::I64(x), Data::I64(y)) => Data::I64(batched_int(x, y, adj_a, adj_b)?),
        _ => {
            return fail(format!(
                "matrix multiplication of {:?} and {:?} is not supported",
                a.dtype(),
                b.dtype()
            ))
        }
    };
    Tensor::new(a.dtype(), data).map_err(Into::into)
}

/// Integers go through the same batching with a plain triple loop.
fn batched_int<T>(
    a: &ArrayD<T>,
    b: &ArrayD<T>,
    adj_a: bool,
    adj_b: bool,
) -> Result<ArrayD<T>, KernelError>
where
    T: Copy + num_traits::WrappingAdd + num_traits::WrappingMul + num_traits::Zero + 'static,
{
    #[derive(Clone, Copy)]
    struct W<T>(T);
    impl<T> MatElem for W<T>
    where
        T: Copy + num_traits::WrappingAdd + num_traits::WrappingMul + num_traits::Zero + 'static,
    {
        fn zero() -> Self {
            W(T::zero())
        }

        fn matmul_into(_: Gemm, a: ArrayView2<'_, Self>, b: ArrayView2<'_, Self>, c: &mut [Self]) {
            let product = int_matmul(a.mapv(|v| v.0).view(), b.mapv(|v| v.0).view());
            for (to, from) in c.iter_mut().zip(product) {
                *to = W(from);
            }
        }
    }
    alloc::output::<T>(a.shape())?;
    alloc::output::<T>(b.shape())?;
    let out = batched(Gemm::Portable, &a.mapv(W), &b.mapv(W), adj_a, adj_b)?;
    alloc::output::<T>(out.shape())?;
    Ok(out.mapv(|v| v.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(dims: &[usize], seed: f32) -> Tensor {
        let count: usize = dims.iter().product();
        let values = (0..count)
            .map(|i| ((i as f32 + seed) * 0.37).sin())
            .collect();
        let array = ArrayD::from_shape_vec(IxDyn(dims), values).expect("shape");
        Tensor::from_data(Data::F32(array))
    }

    /// Element `[batch..., i, j]` of `x`, with the batch index broadcast (size-1 dims repeat)
    /// and the last two axes swapped when `adjoint`.
    fn at(x: &ArrayD<f32>, batch: &[usize], (i, j): (usize, usize), adjoint: bool) -> f32 {
        let rank = x.ndim();
        let mut index: Vec<usize> = batch[batch.len() - (rank - 2)..]
            .iter()
            .zip(x.shape())
            .map(|(&b, &d)| if d == 1 { 0 } else { b })
            .collect();
        index.extend(if adjoint { [j, i] } else { [i, j] });
        x[IxDyn(&index)]
    }

    /// Broadcast batches, operands used in place or copied, every adjoint combination: each
    /// output element is the plain sum over the inner index.
    #[test]
    fn batched_products_broadcast_and_transpose() {
        let (m, k, n) = (3, 4, 2);
        for (adj_a, adj_b) in [(false, false), (true, false), (false, true), (true, true)] {
            let a_dims: &[usize] = if adj_a { &[2, 1, k, m] } else { &[2, 1, m, k] };
            let b_dims: &[usize] = if adj_b { &[5, n, k] } else { &[5, k, n] };
            let (a, b) = (tensor(a_dims, 1.0), tensor(b_dims, 2.0));
            let c = matmul(Gemm::Portable, &a, &b, adj_a, adj_b).expect("product");
            assert_eq!(c.shape(), &[2, 5, m, n]);
            let (Data::F32(x), Data::F32(y), Data::F32(z)) = (a.data(), b.data(), c.data()) else {
                panic!("float tensors");
            };
            for ((b0, b1), (i, j)) in (0..2)
                .flat_map(|p| (0..5).map(move |q| (p, q)))
                .flat_map(|batch| (0..m).flat_map(move |i| (0..n).map(move |j| (batch, (i, j)))))
            {
                let batch = [b0, b1];
                let expected: f32 = (0..k)
                    .map(|p| at(x, &batch, (i, p), adj_a) * at(y, &batch, (p, j), adj_b))
                    .fold(0.0, |s, v| s + v);
                assert_eq!(
                    z[[b0, b1, i, j]],
                    expected,
                    "adj ({adj_a}, {adj_b}) at {batch:?}"
                );
            }
        }
    }
}
