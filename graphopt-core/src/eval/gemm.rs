//! Matrix products for MatMul and the convolutions, in two kinds:
//!
//! - [`Gemm::Portable`], the default: each output element sums its products in ascending
//!   order of the inner index, with no fused multiply-add and no dispatch on the CPU's
//!   features, so the bytes are the same on every machine. Constant folding and every path
//!   that writes an artifact use it.
//! - [`Gemm::Fast`]: matrixmultiply's blocked, packed kernels, which pick SIMD code for the CPU
//!   at run time: AVX-512 where it has it (a feature graphopt-core turns on; ndarray leaves it
//!   off), else AVX2 and FMA, so their sums may differ in the last bits between machines. For
//!   `verify` and the `eval` feature, whose results are compared, not written. With the
//!   `threads` feature a large product is split over [`super::parallel`]'s threads by blocks
//!   of rows (or of columns, when it has few rows, as the late layers of a CNN at batch 1
//!   do); each element is still computed by the same kernel over the same inner blocks, so
//!   the result is bit-identical to one thread's.

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
pub fn multiply<T: LinalgScalar + Send + Sync>(
    kind: Gemm,
    shape: (usize, usize, usize),
    a: &[T],
    b: &[T],
    c: &mut [T],
) {
    multiply_over(kind, shape, a, b, c, super::parallel::threads());
}

/// [`multiply`] without splitting over threads: for a caller that has split the work already.
pub fn multiply_on_this_thread<T: LinalgScalar + Send + Sync>(
    kind: Gemm,
    shape: (usize, usize, usize),
    a: &[T],
    b: &[T],
    c: &mut [T],
) {
    multiply_over(kind, shape, a, b, c, 1);
}

/// [`multiply`], a fast product split over at most `threads`.
fn multiply_over<T: LinalgScalar + Send + Sync>(
    kind: Gemm,
    (m, k, n): (usize, usize, usize),
    a: &[T],
    b: &[T],
    c: &mut [T],
    threads: usize,
) {
    debug_assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n);
    match kind {
        Gemm::Portable => portable(k, n, a, b, c),
        // A few rows (a dense layer at batch 1): packing all of `b` would cost more than the
        // product, which the row loop streams through once.
        Gemm::Fast if m < FEW_ROWS => portable(k, n, a, b, c),
        Gemm::Fast => {
            let (Ok(a), Ok(b), Ok(c)) = (
                ArrayView2::from_shape((m, k), a),
                ArrayView2::from_shape((k, n), b),
                ArrayViewMut2::from_shape((m, n), c),
            ) else {
                // The shapes are the slices' own: cannot happen; fall back to the exact form.
                return portable(k, n, a, b, c);
            };
            threaded::split(a, b, c, threads);
        }
    }
}

/// Whether [`multiply`] splits a product of `(m, k, n)` by blocks of rows: a caller that
/// builds `a` row by row can then build and multiply each block on its own thread.
pub fn splits_by_rows(kind: Gemm, shape: (usize, usize, usize)) -> bool {
    kind == Gemm::Fast
        && shape.0 >= FEW_ROWS
        && matches!(
            threaded::blocks(shape, super::parallel::threads()),
            Some((true, _))
        )
}

/// matrixmultiply's product `c = a · b` on this thread.
fn fast<T: LinalgScalar>(a: ArrayView2<'_, T>, b: ArrayView2<'_, T>, mut c: ArrayViewMut2<'_, T>) {
    ndarray::linalg::general_mat_mul(T::one(), &a, &b, T::zero(), &mut c);
}

mod threaded {
    use ndarray::{ArrayView2, ArrayViewMut2, Axis, LinalgScalar};

    /// Below this many multiply-adds a product stays on one thread: starting threads would
    /// cost more than they save.
    const MIN_SPLIT_WORK: usize = 1 << 21;
    /// matrixmultiply packs `a` in blocks of this many rows: a split by rows gives each
    /// thread at least one.
    const ROW_BLOCK: usize = 64;
    /// The narrowest column block worth a thread.
    const MIN_COLUMNS: usize = 32;

    /// How a product of `(m, k, n)` is split over `threads`: by rows or not (columns), and
    /// into how many blocks; `None` to keep it on one thread.
    pub fn blocks((m, k, n): (usize, usize, usize), threads: usize) -> Option<(bool, usize)> {
        let work = m.saturating_mul(k).saturating_mul(n);
        if threads < 2 || work < MIN_SPLIT_WORK {
            return None;
        }
        let by_rows = m >= ROW_BLOCK * threads;
        let parts = if by_rows {
            threads.min(m / ROW_BLOCK)
        } else {
            threads.min(n / MIN_COLUMNS)
        };
        (parts >= 2).then_some((by_rows, parts))
    }

    /// `c = a · b`, in blocks of rows of `c` (many rows) or of columns (few rows), one block
    /// per thread.
    pub fn split<T: LinalgScalar + Send + Sync>(
        a: ArrayView2<'_, T>,
        b: ArrayView2<'_, T>,
        c: ArrayViewMut2<'_, T>,
        threads: usize,
    ) {
        let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
        let Some((by_rows, parts)) = blocks((m, k, n), threads) else {
            return super::fast(a, b, c);
        };
        let length = if by_rows { m } else { n };
        let axis = if by_rows { Axis(0) } else { Axis(1) };
        let mut tasks = Vec::with_capacity(parts);
        let mut rest_c = c;
        let mut rest_a = a;
        let mut rest_b = b;
        for part in 0..parts {
            // Even blocks, the remainder spread over the first ones; the sizes add up to
            // `length`.
            let size = length / parts + usize::from(part < length % parts);
            let (c_part, c_rest) = rest_c.split_at(axis, size);
            rest_c = c_rest;
            let (a_part, b_part) = if by_rows {
                let (a_part, a_rest) = rest_a.split_at(Axis(0), c_part.nrows());
                rest_a = a_rest;
                (a_part, b)
            } else {
                let (b_part, b_rest) = rest_b.split_at(Axis(1), c_part.ncols());
                rest_b = b_rest;
                (a, b_part)
            };
            tasks.push(move || super::fast(a_part, b_part, c_part));
        }
        super::super::parallel::each(tasks);
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

    /// Split over threads or not, the fast product gives the same bits: each element is the
    /// same kernel over the same inner blocks.
    #[test]
    fn threaded_products_equal_one_threads() {
        // By rows; by columns (a late CNN layer at batch 1), in three; by rows, uneven.
        let cases = [
            ((3000, 40, 20), 2, Some((true, 2))),
            ((49, 4608, 512), 3, Some((false, 3))),
            ((201, 300, 70), 3, Some((true, 3))),
        ];
        for ((m, k, n), threads, expected) in cases {
            assert_eq!(threaded::blocks((m, k, n), threads), expected);
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i % 977) as f32 * 0.37).sin())
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i % 613) as f32 * 0.11).cos())
                .collect();
            let mut one = vec![f32::NAN; m * n];
            fast(
                ArrayView2::from_shape((m, k), &a[..]).expect("a"),
                ArrayView2::from_shape((k, n), &b[..]).expect("b"),
                ArrayViewMut2::from_shape((m, n), &mut one[..]).expect("c"),
            );
            let mut split = vec![f32::NAN; m * n];
            threaded::split(
                ArrayView2::from_shape((m, k), &a[..]).expect("a"),
                ArrayView2::from_shape((k, n), &b[..]).expect("b"),
                ArrayViewMut2::from_shape((m, n), &mut split[..]).expect("c"),
                threads,
            );
            let same = one
                .iter()
                .zip(&split)
                .all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "[{m}, {k}] x [{k}, {n}] differs when split");
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
