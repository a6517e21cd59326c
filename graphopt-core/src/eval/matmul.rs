//! MatMul and BatchMatMul(V2/V3): floats through [`super::gemm`] (portable or fast, as the
//! context says), integers through a plain wrapping triple loop.

use ndarray::{Array2, ArrayD, ArrayView2, Axis, Ix2, IxDyn, LinalgScalar};

use super::alloc;
use super::broadcast::broadcast_shape;
use super::cast::{from_f32, to_f32};
use super::gemm::{self, Gemm};
use super::{fail, KernelError};
use crate::tensor::{Data, Tensor};

trait MatElem: Clone + 'static {
    fn matmul(gemm: Gemm, a: ArrayView2<'_, Self>, b: ArrayView2<'_, Self>) -> Vec<Self>;
}

impl<T: LinalgScalar + Send + Sync> MatElem for T {
    fn matmul(gemm: Gemm, a: ArrayView2<'_, T>, b: ArrayView2<'_, T>) -> Vec<T> {
        let ((m, k), n) = (a.dim(), b.ncols());
        let mut c = vec![T::zero(); m * n];
        gemm::multiply(gemm, (m, k, n), &row_major(a), &row_major(b), &mut c);
        c
    }
}

/// The elements of `v` in row-major order, copied only where the view is transposed (adj_x,
/// adj_y).
fn row_major<T: Copy>(v: ArrayView2<'_, T>) -> std::borrow::Cow<'_, [T]> {
    match v.to_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(v.iter().copied().collect()),
    }
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
    // The broadcast copies of both operands, and one multiply-add per output and inner index.
    alloc::output::<T>(&[count, am, ak])?;
    alloc::output::<T>(&[count, bk, bn])?;
    alloc::work(alloc::loops(&[count, am, bn, ak]))?;
    let broadcast = |x: &ArrayD<T>, rank: usize| -> Result<ArrayD<T>, KernelError> {
        let mut dims = batch.clone();
        dims.extend_from_slice(&x.shape()[rank - 2..]);
        let view = x
            .broadcast(IxDyn(&dims))
            .ok_or_else(|| KernelError(format!("cannot broadcast {:?}", x.shape())))?;
        let rows = x.shape()[rank - 2];
        let cols = x.shape()[rank - 1];
        Ok(ArrayD::from_shape_vec(
            IxDyn(&[count, rows, cols]),
            view.iter().copied().collect(),
        )?)
    };
    let a3 = broadcast(a, ra)?;
    let b3 = broadcast(b, rb)?;
    let mut out = Vec::with_capacity(count * am * bn);
    for i in 0..count {
        let mut x = a3.index_axis(Axis(0), i).into_dimensionality::<Ix2>()?;
        let mut y = b3.index_axis(Axis(0), i).into_dimensionality::<Ix2>()?;
        if adj_a {
            x = x.reversed_axes();
        }
        if adj_b {
            y = y.reversed_axes();
        }
        out.extend(T::matmul(gemm, x, y));
    }
    let mut dims = batch;
    dims.extend([am, bn]);
    Ok(ArrayD::from_shape_vec(IxDyn(&dims), out)?)
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
        fn matmul(_: Gemm, a: ArrayView2<'_, Self>, b: ArrayView2<'_, Self>) -> Vec<Self> {
            int_matmul(a.mapv(|v| v.0).view(), b.mapv(|v| v.0).view())
                .into_iter()
                .map(W)
                .collect()
        }
    }
    alloc::output::<T>(a.shape())?;
    alloc::output::<T>(b.shape())?;
    let out = batched(Gemm::Portable, &a.mapv(W), &b.mapv(W), adj_a, adj_b)?;
    alloc::output::<T>(out.shape())?;
    Ok(out.mapv(|v| v.0))
}
