//! Matrix products for MatMul and the convolutions, in two kinds:
//!
//! - [`Gemm::Portable`], the default: each output element sums its products in ascending
//!   order of the inner index, with no fused multiply-add and no dispatch on the CPU's
//!   features, so the bytes are the same on every machine. Constant folding and every path
//!   that writes an artifact use it.
//! - [`Gemm::Fast`]: matrixmultiply's blocked, packed kernels, which pick SIMD code for the CPU
//!   at run time (their sums may differ in the last bits between machines). For `verify` and
//!   the `eval` feature, whose results are compared, not written.

use ndarray::{ArrayView2, ArrayViewMut2, LinalgScalar};

/// Which matrix product the kernels use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Gemm {
    /// Fixed summation order, the same bytes on every machine.
    #[default]
    Portable,
    /// matrixmultiply's kernels: fast, machine-dependent in the last bits.
    Fast,
}

/// Below this many rows of `a`, [`Gemm::Fast`] uses the row loop.
const FEW_ROWS: usize = 4;

/// `c = a · b` for row-major `a` [m, k] and `b` [k, n]; `c` [m, n] is overwritten.
pub fn multiply<T: LinalgScalar>(
    kind: Gemm,
    (m, k, n): (usize, usize, usize),
    a: &[T],
    b: &[T],
    c: &mut [T],
) {
    debug_assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n);
    match kind {
        Gemm::Portable => portable(k, n, a, b, c),
        // A few rows (a dense layer at batch 1): packing all of `b` would cost more than the
        // product, which the row loop streams through once.
        Gemm::Fast if m < FEW_ROWS => portable(k, n, a, b, c),
        Gemm::Fast => {
            let (Ok(a), Ok(b), Ok(mut c)) = (
                ArrayView2::from_shape((m, k), a),
                ArrayView2::from_shape((k, n), b),
                ArrayViewMut2::from_shape((m, n), c),
            ) else {
                // The shapes are the slices' own: cannot happen; fall back to the exact form.
                return portable(k, n, a, b, c);
            };
            ndarray::linalg::general_mat_mul(T::one(), &a, &b, T::zero(), &mut c);
        }
    }
}

/// Row by row: `c[i, :] = sum over p of a[i, p] * b[p, :]`, p ascending. The inner loop runs
/// along a row of `b` and `c`, so the compiler vectorizes it without reordering any sum.
fn portable<T: LinalgScalar>(k: usize, n: usize, a: &[T], b: &[T], c: &mut [T]) {
    if n == 0 {
        return;
    }
    for (i, c_row) in c.chunks_exact_mut(n).enumerate() {
        c_row.fill(T::zero());
        for p in 0..k {
            let a_ip = a[i * k + p];
            for (c_ij, &b_pj) in c_row.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                *c_ij = *c_ij + a_ip * b_pj;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_compute_the_product() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut expected = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut sum = 0f32;
                for p in 0..k {
                    sum += a[i * k + p] * b[p * n + j];
                }
                expected[i * n + j] = sum;
            }
        }
        let mut portable = vec![f32::NAN; m * n];
        multiply(Gemm::Portable, (m, k, n), &a, &b, &mut portable);
        assert_eq!(portable, expected, "the portable order is the plain one");
        let mut fast = vec![f32::NAN; m * n];
        multiply(Gemm::Fast, (m, k, n), &a, &b, &mut fast);
        for (f, e) in fast.iter().zip(&expected) {
            assert!((f - e).abs() <= 1e-5 * e.abs().max(1.0), "{f} vs {e}");
        }
    }

    #[test]
    fn empty_inner_dimension_gives_zeros() {
        let mut c = vec![f32::NAN; 6];
        multiply(Gemm::Portable, (2, 0, 3), &[], &[], &mut c);
        assert_eq!(c, vec![0.0; 6]);
        let mut c = vec![f32::NAN; 6];
        multiply(Gemm::Fast, (2, 0, 3), &[], &[], &mut c);
        assert_eq!(c, vec![0.0; 6]);
    }
}
